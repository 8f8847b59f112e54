//! The subgroup rules: groups form a DAG (a group may be the subgroup of several parents; no
//! cycles). Admins of a parent create subgroups under it (the creator is the new group's
//! admin) and detach them; attaching an existing group takes an admin of both groups, so that
//! nobody pulls a group they do not run into their hierarchy. Members of a group list its
//! subgroups, direct or every descendant.

use crate::chat::require_chat;
use crate::connector::require_permission;
use crate::error::{Error, Result};
use crate::groups::{require_admin, require_not_subscriber, CreateGroup};
use crate::identity::Caller;
use crate::ids::ConversationId;
use crate::model::{Conversation, GroupView, SubgroupLink};
use crate::ports::StoreError;
use crate::ratelimit::Operation;
use crate::Core;

/// Links one listing answers at most (`fetchAllGroups` over a large hierarchy).
pub const MAX_LISTED_LINKS: usize = 2000;

/// A group and the links below it.
#[derive(Clone, Debug)]
pub struct SubgroupTree {
    pub root: GroupView,
    /// Direct links, or every link reachable from the root; ordered by parent then child.
    pub links: Vec<SubgroupLink>,
}

impl Core {
    /// Creates a group as a subgroup of `parent` (admins of the parent).
    pub async fn create_subgroup(
        &self,
        caller: &Caller,
        parent: ConversationId,
        request: CreateGroup,
    ) -> Result<Conversation> {
        let new = self.new_group(caller, request)?;
        let group = self.group_as_member(caller, parent).await?;
        require_admin(&group, "create subgroups")?;
        Ok(self.store.create_subgroup(new, parent).await?)
    }

    /// Makes existing groups subgroups of `parent` (admins of both). A group already below the
    /// parent is left as it is; a link that would close a cycle is refused (409).
    pub async fn add_subgroups(
        &self,
        caller: &Caller,
        parent: ConversationId,
        children: &[ConversationId],
    ) -> Result<()> {
        self.throttle_connector_call(caller, Operation::Other)?;
        self.require_group_writes(caller, "adding subgroups")?;
        if children.is_empty() {
            return Err(Error::invalid(
                "subGroups must list at least one group id.",
                "subGroups",
            ));
        }
        if children.len() > crate::groups::MAX_ADD_MEMBERS {
            return Err(Error::invalid(
                format!(
                    "At most {} subgroups can be added in one request.",
                    crate::groups::MAX_ADD_MEMBERS
                ),
                "subGroups",
            ));
        }
        let group = self.group_as_member(caller, parent).await?;
        require_admin(&group, "add subgroups")?;
        for child in children {
            if *child == parent {
                return Err(Error::Conflict(
                    "A group cannot be a subgroup of itself.".into(),
                ));
            }
            let sub = self.group_as_member(caller, *child).await?;
            require_admin(&sub, "attach their group as a subgroup")?;
        }
        for child in children {
            self.store
                .add_subgroup(parent, *child, &caller.identity)
                .await
                .map_err(|err| match err {
                    StoreError::Conflict(_) => Error::Conflict(format!(
                        "Group {} is an ancestor of group {}: the link would make a cycle.",
                        child.to_guid(),
                        parent.to_guid()
                    )),
                    StoreError::NotFound => Error::NotFound("The group does not exist.".into()),
                    other => other.into(),
                })?;
        }
        Ok(())
    }

    /// Detaches a subgroup from `parent` (admins of the parent). The subgroup itself stays.
    pub async fn remove_subgroup(
        &self,
        caller: &Caller,
        parent: ConversationId,
        child: ConversationId,
    ) -> Result<()> {
        self.throttle_connector_call(caller, Operation::Other)?;
        self.require_group_writes(caller, "removing subgroups")?;
        let group = self.group_as_member(caller, parent).await?;
        require_admin(&group, "remove subgroups")?;
        self.store
            .remove_subgroup(parent, child, &caller.identity)
            .await
            .map_err(|err| match err {
                StoreError::NotFound => {
                    Error::NotFound("The group is not a subgroup of this group.".into())
                }
                other => other.into(),
            })
    }

    /// The subgroups of a group the caller belongs to (not as a subscriber): the direct ones,
    /// or (`all`) every descendant.
    pub async fn list_subgroups(
        &self,
        caller: &Caller,
        id: ConversationId,
        all: bool,
    ) -> Result<SubgroupTree> {
        self.throttle_connector_call(caller, Operation::Other)?;
        require_chat(caller)?;
        require_permission(caller, "groupinfo", "reading groups")?;
        let root = self.group_as_member(caller, id).await?;
        require_not_subscriber(&root)?;
        let links = self.store.list_subgroups(id, all, MAX_LISTED_LINKS).await?;
        Ok(SubgroupTree { root, links })
    }

    /// Every live group the caller belongs to, and the links below them (`GET /groups` with
    /// `fetchAllGroups`): the descendants the caller is not a member of are in the links only.
    pub async fn list_groups_with_descendants(
        &self,
        caller: &Caller,
    ) -> Result<(Vec<GroupView>, Vec<SubgroupLink>)> {
        let groups = self.list_groups(caller).await?;
        let mut links = Vec::new();
        for group in groups.iter().filter(|g| g.subgroup_count > 0) {
            if links.len() >= MAX_LISTED_LINKS {
                break;
            }
            let below = self
                .store
                .list_subgroups(group.conversation.id, true, MAX_LISTED_LINKS - links.len())
                .await?;
            links.extend(below);
        }
        Ok((groups, links))
    }

    fn require_group_writes(&self, caller: &Caller, what: &str) -> Result<()> {
        crate::chat::require(
            caller.can_manage_threads(),
            &format!("The token's scopes do not allow {what}."),
        )?;
        require_permission(caller, "groupinfo", what)
    }
}
