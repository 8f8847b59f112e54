//! The group rules (the Kaizala view of conversations): creating groups of phone numbers,
//! their details, members and roles, and messages to a group.
//!
//! A group is a conversation like any other: a group made here is an ACS thread, and an ACS
//! thread is a group here. What is particular to groups: the creator is its admin; only admins
//! add members, remove others and change roles; a group keeps at least one admin; a message
//! has at most 4000 characters.

use std::collections::HashSet;

use crate::chat::{require, require_chat, require_member, SendMessage};
use crate::connector::require_permission;
use crate::error::{Error, Result};
use crate::identity::Caller;
use crate::ids::{ConversationId, IdentityId, MessageId};
use crate::model::{
    Audience, Conversation, ConversationKind, GroupView, Member, Message, MessageType, Metadata,
    Participant, Role,
};
use crate::ports::{ListQuery, NewConversation, StoreError};
use crate::ratelimit::Operation;
use crate::Core;

/// Members given when creating a group (besides its creator).
pub const MAX_CREATE_MEMBERS: usize = 100;
/// Members added in one request.
pub const MAX_ADD_MEMBERS: usize = 100;
/// Characters (Unicode scalar values) of a group message.
pub const MAX_MESSAGE_CHARS: usize = 4000;
pub const MAX_WELCOME_MESSAGE_CHARS: usize = 4000;
/// The metadata key under which a reply records the message it answers.
pub const REPLY_TO_KEY: &str = "replyToMessageId";
/// Subscribers one message may list.
pub const MAX_LISTED_SUBSCRIBERS: usize = 1000;

/// A group to create, as a face parsed it.
#[derive(Clone, Debug)]
pub struct CreateGroup {
    pub name: String,
    pub welcome_message: Option<String>,
    pub members: Vec<IdentityId>,
    /// `Group` or `ConnectGroup`.
    pub kind: ConversationKind,
}

/// A text message to a group.
#[derive(Clone, Debug)]
pub struct GroupMessage {
    pub text: String,
    pub reply_to: Option<MessageId>,
    /// `Members` for a message to the group; the subscribers of a public group otherwise
    /// (admins only).
    pub audience: Audience,
}

impl Core {
    /// Creates a group; its creator is its admin, the members are members.
    pub async fn create_group(
        &self,
        caller: &Caller,
        request: CreateGroup,
    ) -> Result<Conversation> {
        let new = self.new_group(caller, request)?;
        let created = self.store.create_conversation(new).await?;
        Ok(created.conversation)
    }

    /// Checks a group to create (rate limits, scopes, fields) and makes the store's record:
    /// the creator is its admin.
    pub(crate) fn new_group(
        &self,
        caller: &Caller,
        request: CreateGroup,
    ) -> Result<NewConversation> {
        self.throttle_connector_call(caller, Operation::CreateThread)?;
        require(
            caller.can_manage_threads(),
            "The token's scopes do not allow creating groups.",
        )?;
        require_permission(caller, "groupinfo", "creating groups")?;
        self.check_topic(&request.name)
            .map_err(|_| group_name_error(self.limits.max_topic_chars))?;
        if request.kind == ConversationKind::Chat {
            return Err(Error::invalid(
                "groupType must be Group or ConnectGroup.",
                "groupType",
            ));
        }
        if let Some(welcome) = &request.welcome_message {
            if welcome.chars().count() > MAX_WELCOME_MESSAGE_CHARS {
                return Err(Error::invalid(
                    format!(
                        "The welcome message is longer than {MAX_WELCOME_MESSAGE_CHARS} characters."
                    ),
                    "welcomeMessage",
                ));
            }
        }
        if request.members.len() > MAX_CREATE_MEMBERS {
            return Err(Error::invalid(
                format!("A group can be created with at most {MAX_CREATE_MEMBERS} members."),
                "members",
            ));
        }
        let mut participants: Vec<Participant> = Vec::with_capacity(request.members.len() + 1);
        participants.push(participant(caller.identity.clone(), Role::Admin));
        for member in request.members {
            if !participants.iter().any(|p| p.identity == member) {
                participants.push(participant(member, Role::Member));
            }
        }
        if participants.len() > self.limits.max_participants {
            return Err(Error::invalid(
                format!(
                    "A group can have at most {} members.",
                    self.limits.max_participants
                ),
                "members",
            ));
        }
        Ok(NewConversation {
            id: ConversationId::generate(),
            topic: request.name,
            created_by: caller.identity.clone(),
            metadata: Metadata::new(),
            retention: None,
            participants,
            repeatability_key: None,
            kind: request.kind,
            welcome_message: request.welcome_message.filter(|w| !w.is_empty()),
        })
    }

    /// A group the caller belongs to, with its counts and the caller's role.
    pub async fn get_group(&self, caller: &Caller, id: ConversationId) -> Result<GroupView> {
        self.throttle_connector_call(caller, Operation::Other)?;
        require_chat(caller)?;
        require_permission(caller, "groupinfo", "reading groups")?;
        self.group_as_member(caller, id).await
    }

    /// Every live group the caller belongs to.
    pub async fn list_groups(&self, caller: &Caller) -> Result<Vec<GroupView>> {
        self.throttle_connector_call(caller, Operation::Other)?;
        require_chat(caller)?;
        require_permission(caller, "groupinfo", "reading groups")?;
        let mut groups = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .store
                .list_groups(&caller.identity, after, self.limits.max_page_size)
                .await?;
            groups.extend(page.items);
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(groups),
            }
        }
    }

    /// Adds members (admins only). Members already in the group are left as they are.
    pub async fn add_group_members(
        &self,
        caller: &Caller,
        id: ConversationId,
        members: Vec<IdentityId>,
    ) -> Result<()> {
        self.throttle_connector_call(caller, Operation::Other)?;
        require(
            caller.can_manage_participants(),
            "The token's scopes do not allow adding members.",
        )?;
        require_permission(caller, "groupmember", "adding members")?;
        if members.is_empty() {
            return Err(Error::invalid(
                "At least one member is required.",
                "members",
            ));
        }
        if members.len() > MAX_ADD_MEMBERS {
            return Err(Error::invalid(
                format!("At most {MAX_ADD_MEMBERS} members can be added in one request."),
                "members",
            ));
        }
        let group = self.group_as_member(caller, id).await?;
        require_admin(&group, "add members")?;
        // Re-adding a member is a no-op: it must not reset an admin to member.
        let existing: HashSet<IdentityId> = self
            .all_members(id)
            .await?
            .into_iter()
            .map(|m| m.participant.identity)
            .collect();
        let participants: Vec<Participant> = members
            .into_iter()
            .filter(|m| !existing.contains(m))
            .map(|m| participant(m, Role::Member))
            .collect();
        if participants.is_empty() {
            return Ok(());
        }
        self.store
            .add_participants(
                id,
                participants,
                &caller.identity,
                self.limits.max_participants,
            )
            .await
            .map_err(|err| match err {
                StoreError::ParticipantLimit(max) => Error::invalid(
                    format!("A group can have at most {max} members."),
                    "members",
                ),
                other => other.into(),
            })
    }

    /// The members of a group the caller belongs to, by identity.
    pub async fn list_group_members(
        &self,
        caller: &Caller,
        id: ConversationId,
    ) -> Result<Vec<Member>> {
        self.throttle_connector_call(caller, Operation::Other)?;
        require_chat(caller)?;
        require_permission(caller, "groupmember", "reading members")?;
        let group = self.group_as_member(caller, id).await?;
        require_not_subscriber(&group)?;
        self.all_members(id).await
    }

    /// Removes a member. Admins remove anyone; a member may remove (only) themselves. The last
    /// admin cannot leave.
    pub async fn remove_group_member(
        &self,
        caller: &Caller,
        id: ConversationId,
        who: &IdentityId,
    ) -> Result<()> {
        self.throttle_connector_call(caller, Operation::Other)?;
        require_chat(caller)?;
        require_permission(caller, "groupmember", "removing members")?;
        let group = self.group_as_member(caller, id).await?;
        require_not_subscriber(&group)?;
        if *who == caller.identity {
            if group.viewer_role == Some(Role::Admin) {
                self.keep_an_admin(id, who).await?;
            }
        } else {
            require(
                caller.can_manage_participants(),
                "The token's scopes do not allow removing members.",
            )?;
            require_admin(&group, "remove other members")?;
        }
        self.store
            .remove_participant(id, who, &caller.identity)
            .await
            .map_err(|err| match err {
                StoreError::NotFound => Error::NotFound("The member is not in the group.".into()),
                other => other.into(),
            })
    }

    /// Makes a member an admin or a plain member (admins only).
    pub async fn set_group_member_role(
        &self,
        caller: &Caller,
        id: ConversationId,
        who: &IdentityId,
        role: Role,
    ) -> Result<()> {
        self.throttle_connector_call(caller, Operation::Other)?;
        require(
            caller.can_manage_participants(),
            "The token's scopes do not allow changing roles.",
        )?;
        require_permission(caller, "groupmember", "changing roles")?;
        if role == Role::Subscriber {
            return Err(Error::invalid("The role must be Admin or Member.", "role"));
        }
        let group = self.group_as_member(caller, id).await?;
        require_admin(&group, "change roles")?;
        if *who == caller.identity && role != Role::Admin {
            self.keep_an_admin(id, who).await?;
        }
        self.store
            .set_participant_role(id, who, role, &caller.identity)
            .await
            .map_err(|err| match err {
                StoreError::NotFound => Error::NotFound("The member is not in the group.".into()),
                other => other.into(),
            })
    }

    /// Sends a text message to a group (≤ 4000 characters), optionally as a reply.
    pub async fn send_group_message(
        &self,
        caller: &Caller,
        id: ConversationId,
        message: GroupMessage,
    ) -> Result<Message> {
        if let Some(grant) = &caller.connector {
            self.throttle.check_connector(&grant.application)?;
        }
        require_permission(caller, "textmessage", "sending messages")?;
        if message.text.trim().is_empty() {
            return Err(Error::invalid("The message must not be empty.", "message"));
        }
        if message.text.chars().count() > MAX_MESSAGE_CHARS {
            return Err(Error::TooLarge(format!(
                "The message is longer than {MAX_MESSAGE_CHARS} characters."
            )));
        }
        let audience = self.check_audience(caller, id, message.audience).await?;
        let mut metadata = Metadata::new();
        if let Some(reply_to) = message.reply_to {
            require_chat(caller)?;
            let me = self.membership(caller, id).await?;
            require_member(&me)?;
            self.visible_message(&me, id, reply_to).await.map_err(|_| {
                Error::invalid(
                    "The message to reply to does not exist in this group.",
                    "replyToReferenceId",
                )
            })?;
            metadata.insert(REPLY_TO_KEY.into(), reply_to.to_string());
        }
        // The chat rule does the rest (identity rate limits, scopes, membership, who posts in a
        // public group, commit).
        self.post_message(
            caller,
            id,
            SendMessage {
                kind: MessageType::Text,
                text: message.text,
                sender_display_name: None,
                metadata,
            },
            audience,
        )
        .await
    }

    /// Checks a message's audience: messages to subscribers go to a public group, from one of
    /// its admins, and name only its subscribers (each once).
    pub(crate) async fn check_audience(
        &self,
        caller: &Caller,
        id: ConversationId,
        audience: Audience,
    ) -> Result<Audience> {
        if audience == Audience::Members {
            return Ok(audience);
        }
        require_chat(caller)?;
        let group = self.group_as_member(caller, id).await?;
        if group.conversation.kind != ConversationKind::ConnectGroup {
            return Err(Error::invalid(
                "Only public groups (ConnectGroup) have subscribers.",
                "subscribers",
            ));
        }
        require_admin(&group, "send messages to subscribers")?;
        let Audience::Subscribers(listed) = audience else {
            return Ok(audience);
        };
        let mut unique: Vec<IdentityId> = Vec::with_capacity(listed.len());
        for identity in listed {
            if !unique.contains(&identity) {
                unique.push(identity);
            }
        }
        if unique.len() > MAX_LISTED_SUBSCRIBERS {
            return Err(Error::invalid(
                format!("A message can list at most {MAX_LISTED_SUBSCRIBERS} subscribers."),
                "subscribers",
            ));
        }
        let found = self.store.find_subscribers(id, unique.clone()).await?;
        let missing: Vec<&str> = unique
            .iter()
            .filter(|i| !found.contains(i))
            .map(|i| i.phone_number().unwrap_or(i.as_str()))
            .collect();
        if !missing.is_empty() {
            return Err(Error::invalid(
                format!("Not subscribers of the group: {}.", missing.join(", ")),
                "subscribers",
            ));
        }
        Ok(Audience::Subscribers(unique))
    }

    /// The group seen by the caller: 404 if unknown or deleted, 403 if not a member. A
    /// subscriber of a public group passes (role `Subscriber`): see [`require_not_subscriber`].
    pub(crate) async fn group_as_member(
        &self,
        caller: &Caller,
        id: ConversationId,
    ) -> Result<GroupView> {
        match self.store.get_group(id, &caller.identity).await? {
            Some(group) if group.conversation.deleted_on.is_none() => {
                if group.viewer_role.is_none() {
                    return Err(Error::Forbidden(
                        "The caller is not a member of the group.".into(),
                    ));
                }
                Ok(group)
            }
            _ => Err(Error::NotFound("The group does not exist.".into())),
        }
    }

    async fn all_members(&self, id: ConversationId) -> Result<Vec<Member>> {
        let mut members = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .store
                .list_members(
                    id,
                    ListQuery {
                        after,
                        skip: 0,
                        limit: self.limits.max_page_size,
                    },
                )
                .await?;
            members.extend(page.items);
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(members),
            }
        }
    }

    /// Fails if `leaving` is the group's only admin.
    async fn keep_an_admin(&self, id: ConversationId, leaving: &IdentityId) -> Result<()> {
        let others = self
            .all_members(id)
            .await?
            .into_iter()
            .any(|m| m.participant.role == Role::Admin && m.participant.identity != *leaving);
        if others {
            Ok(())
        } else {
            Err(Error::Conflict(
                "The group must keep at least one admin: make another member admin first.".into(),
            ))
        }
    }
}

pub(crate) fn participant(identity: IdentityId, role: Role) -> Participant {
    Participant {
        identity,
        display_name: None,
        share_history_time: None,
        metadata: Metadata::new(),
        role,
    }
}

/// 403 for a subscriber: it reads what is sent to it, and sees neither members nor other
/// subscribers.
pub(crate) fn require_not_subscriber(group: &GroupView) -> Result<()> {
    if group.viewer_role == Some(Role::Subscriber) {
        Err(Error::Forbidden(
            "Subscribers of a public group can only read the messages sent to them.".into(),
        ))
    } else {
        Ok(())
    }
}

pub(crate) fn require_admin(group: &GroupView, what: &str) -> Result<()> {
    if group.viewer_role == Some(Role::Admin) {
        Ok(())
    } else {
        Err(Error::Forbidden(format!("Only group admins may {what}.")))
    }
}

fn group_name_error(max: usize) -> Error {
    Error::invalid(
        format!("The group name must have 1 to {max} characters."),
        "name",
    )
}
