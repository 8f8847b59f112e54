//! The subscriber rules of public groups (Kaizala ConnectGroups). Admins add and remove
//! subscribers; admins and members list them (50 a page at most); a subscriber may remove only
//! itself. Subscribers are not members: they are not in member lists or counts, do not post,
//! and read only the messages sent to all subscribers or to them (see `chat.rs`).

use crate::chat::require;
use crate::connector::require_permission;
use crate::error::{Error, Result};
use crate::groups::{require_admin, require_not_subscriber};
use crate::identity::Caller;
use crate::ids::{ConversationId, IdentityId};
use crate::model::{ConversationKind, GroupView, Member, Page, Role, SubscribeOutcome};
use crate::ratelimit::Operation;
use crate::Core;

/// Subscribers added or removed in one request.
pub const MAX_SUBSCRIBERS_PER_REQUEST: usize = 100;
/// Subscribers in one page of a listing (also the default).
pub const MAX_SUBSCRIBER_PAGE: usize = 50;

impl Core {
    /// Subscribes phone numbers to a public group (admins).
    pub async fn add_subscribers(
        &self,
        caller: &Caller,
        id: ConversationId,
        identities: Vec<IdentityId>,
    ) -> Result<Vec<(IdentityId, SubscribeOutcome)>> {
        self.throttle_connector_call(caller, Operation::Other)?;
        require(
            caller.can_manage_participants(),
            "The token's scopes do not allow adding subscribers.",
        )?;
        require_permission(caller, "groupmember", "adding subscribers")?;
        check_batch(&identities)?;
        let group = self.public_group(caller, id).await?;
        require_admin(&group, "add subscribers")?;
        Ok(self
            .store
            .add_subscribers(id, identities, &caller.identity)
            .await?)
    }

    /// Unsubscribes (admins; a subscriber may remove itself); answers for each whether it was
    /// a subscriber.
    pub async fn remove_subscribers(
        &self,
        caller: &Caller,
        id: ConversationId,
        identities: Vec<IdentityId>,
    ) -> Result<Vec<(IdentityId, bool)>> {
        self.throttle_connector_call(caller, Operation::Other)?;
        require_permission(caller, "groupmember", "removing subscribers")?;
        check_batch(&identities)?;
        let group = self.public_group(caller, id).await?;
        let only_self = identities.iter().all(|i| *i == caller.identity);
        if !(only_self && group.viewer_role == Some(Role::Subscriber)) {
            require(
                caller.can_manage_participants(),
                "The token's scopes do not allow removing subscribers.",
            )?;
            require_admin(&group, "remove subscribers")?;
        }
        Ok(self
            .store
            .remove_subscribers(id, identities, &caller.identity)
            .await?)
    }

    /// One page of a public group's subscribers (admins and members). `count` defaults to and
    /// is capped at 50.
    pub async fn list_subscribers(
        &self,
        caller: &Caller,
        id: ConversationId,
        cursor: Option<String>,
        count: Option<i64>,
    ) -> Result<Page<Member>> {
        self.throttle_connector_call(caller, Operation::Other)?;
        require_permission(caller, "groupmember", "reading subscribers")?;
        let limit = match count {
            None => MAX_SUBSCRIBER_PAGE,
            Some(n) if n >= 1 => usize::try_from(n)
                .unwrap_or(usize::MAX)
                .min(MAX_SUBSCRIBER_PAGE),
            Some(_) => {
                return Err(Error::invalid("count must be at least 1.", "count"));
            }
        };
        let group = self.public_group(caller, id).await?;
        require_not_subscriber(&group)?;
        self.store
            .list_subscribers(id, cursor, limit)
            .await
            .map_err(|err| match err {
                crate::ports::StoreError::InvalidCursor => {
                    Error::invalid("The cursor is not valid.", "cursor")
                }
                other => other.into(),
            })
    }

    /// A public group the caller belongs to (as anything, subscriber included).
    async fn public_group(&self, caller: &Caller, id: ConversationId) -> Result<GroupView> {
        let group = self.group_as_member(caller, id).await?;
        if group.conversation.kind != ConversationKind::ConnectGroup {
            return Err(Error::invalid(
                "Only public groups (ConnectGroup) have subscribers.",
                "groupId",
            ));
        }
        Ok(group)
    }
}

fn check_batch(identities: &[IdentityId]) -> Result<()> {
    if identities.is_empty() {
        return Err(Error::invalid(
            "subscribers must list at least one mobile number.",
            "subscribers",
        ));
    }
    if identities.len() > MAX_SUBSCRIBERS_PER_REQUEST {
        return Err(Error::invalid(
            format!("At most {MAX_SUBSCRIBERS_PER_REQUEST} subscribers per request."),
            "subscribers",
        ));
    }
    Ok(())
}
