//! The chat rules: who may read and write which conversation, and what a valid request is.
//! Storage is reached only through the [`Store`](crate::ports::Store) port.

use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::identity::Caller;
use crate::ids::{ConversationId, IdentityId, MessageId};
use crate::limits::metadata_bytes;
use crate::model::{
    Audience, Conversation, ConversationKind, ConversationSummary, Message, MessageContent,
    MessageType, Metadata, Page, Participant, ReadReceipt, RetentionPolicy, Role,
};
use crate::ports::{
    ConversationUpdate, ListQuery, MemberAccess, MessageEdit, MessageQuery, NewConversation,
    NewMessage,
};
use crate::ratelimit::Operation;
use crate::Core;

/// A participant to add, as a face parsed it.
#[derive(Clone, Debug, PartialEq)]
pub struct ParticipantInput {
    pub identity: IdentityId,
    pub display_name: Option<String>,
    pub share_history_time: Option<OffsetDateTime>,
    pub metadata: Metadata,
}

#[derive(Clone, Debug, Default)]
pub struct CreateConversation {
    pub topic: String,
    pub participants: Vec<ParticipantInput>,
    pub metadata: Metadata,
    pub retention: Option<RetentionPolicy>,
    pub repeatability_key: Option<String>,
}

#[derive(Clone, Debug)]
pub struct SendMessage {
    pub kind: MessageType,
    pub text: String,
    pub sender_display_name: Option<String>,
    pub metadata: Metadata,
}

/// Paging parameters as a face received them.
#[derive(Clone, Debug, Default)]
pub struct PageRequest {
    pub max_page_size: Option<usize>,
    pub continuation: Option<String>,
    pub skip: usize,
}

const DEFAULT_PAGE_SIZE: usize = 100;

impl Core {
    pub async fn create_conversation(
        &self,
        caller: &Caller,
        request: CreateConversation,
    ) -> Result<Conversation> {
        self.throttle
            .check(&caller.identity, Operation::CreateThread)?;
        require(
            caller.can_manage_threads(),
            "The token's scopes do not allow creating threads.",
        )?;
        self.check_topic(&request.topic)?;
        self.check_metadata(&request.metadata, "metadata")?;
        self.check_retention(request.retention)?;
        if request.participants.len() > self.limits.max_participants_per_batch {
            return Err(Error::invalid(
                format!(
                    "At most {} participants can be added in one request.",
                    self.limits.max_participants_per_batch
                ),
                "participants",
            ));
        }
        if let Some(key) = &request.repeatability_key {
            if key.is_empty() || key.len() > 256 {
                return Err(Error::invalid(
                    "The repeatability-request-id is not valid.",
                    "repeatability-request-id",
                ));
            }
        }
        let mut participants = self.participants_from(request.participants)?;
        // The creator always belongs to the thread, as its admin.
        match participants
            .iter_mut()
            .find(|p| p.identity == caller.identity)
        {
            Some(creator) => creator.role = Role::Admin,
            None => participants.insert(
                0,
                Participant {
                    identity: caller.identity.clone(),
                    display_name: None,
                    share_history_time: None,
                    metadata: Metadata::new(),
                    role: Role::Admin,
                },
            ),
        }
        if participants.len() > self.limits.max_participants {
            return Err(Error::invalid(
                format!(
                    "A thread can have at most {} participants.",
                    self.limits.max_participants
                ),
                "participants",
            ));
        }
        let created = self
            .store
            .create_conversation(NewConversation {
                id: ConversationId::generate(),
                topic: request.topic,
                created_by: caller.identity.clone(),
                metadata: request.metadata,
                retention: request.retention,
                participants,
                // Keys are the caller's own: another caller's key must not find their thread.
                repeatability_key: request
                    .repeatability_key
                    .map(|key| format!("{}\n{key}", caller.identity)),
                kind: ConversationKind::Chat,
                welcome_message: None,
            })
            .await?;
        Ok(created.conversation)
    }

    pub async fn get_conversation(
        &self,
        caller: &Caller,
        id: ConversationId,
    ) -> Result<Conversation> {
        self.throttle.check(&caller.identity, Operation::Other)?;
        require_chat(caller)?;
        self.membership(caller, id).await?;
        self.live_conversation(id).await
    }

    pub async fn update_conversation(
        &self,
        caller: &Caller,
        id: ConversationId,
        update: ConversationUpdate,
    ) -> Result<()> {
        self.throttle.check(&caller.identity, Operation::Other)?;
        require(
            caller.can_manage_threads(),
            "The token's scopes do not allow updating threads.",
        )?;
        if let Some(topic) = &update.topic {
            self.check_topic(topic)?;
        }
        if let Some(metadata) = &update.metadata {
            self.check_metadata(metadata, "metadata")?;
        }
        if let Some(retention) = update.retention {
            self.check_retention(retention)?;
        }
        require_member(&self.membership(caller, id).await?)?;
        Ok(self
            .store
            .update_conversation(id, update, &caller.identity)
            .await?)
    }

    pub async fn delete_conversation(&self, caller: &Caller, id: ConversationId) -> Result<()> {
        self.throttle.check(&caller.identity, Operation::Other)?;
        require(
            caller.can_manage_threads(),
            "The token's scopes do not allow deleting threads.",
        )?;
        require_member(&self.membership(caller, id).await?)?;
        Ok(self
            .store
            .delete_conversation(id, Some(&caller.identity))
            .await?)
    }

    pub async fn list_conversations(
        &self,
        caller: &Caller,
        active_since: Option<OffsetDateTime>,
        page: PageRequest,
    ) -> Result<Page<ConversationSummary>> {
        self.throttle.check(&caller.identity, Operation::Other)?;
        require_chat(caller)?;
        let limit = self.page_size(page.max_page_size)?;
        Ok(self
            .store
            .list_conversations(&caller.identity, active_since, page.continuation, limit)
            .await?)
    }

    pub async fn send_message(
        &self,
        caller: &Caller,
        id: ConversationId,
        message: SendMessage,
    ) -> Result<Message> {
        self.post_message(caller, id, message, Audience::Members)
            .await
    }

    /// Sends a message to `audience`. Subscribers never post; in a public group only admins
    /// do. Messages to subscribers are checked by the group rules before they get here.
    pub(crate) async fn post_message(
        &self,
        caller: &Caller,
        id: ConversationId,
        message: SendMessage,
        audience: Audience,
    ) -> Result<Message> {
        self.throttle
            .check(&caller.identity, Operation::WriteMessage(id))?;
        require_chat(caller)?;
        if message.kind.is_system() {
            return Err(Error::invalid(
                "Only text and html messages can be sent.",
                "type",
            ));
        }
        self.check_message_text(&message.text)?;
        self.check_display_name(message.sender_display_name.as_deref(), "senderDisplayName")?;
        self.check_message_metadata(&message.metadata)?;
        let (me, kind) = self.membership_in(caller, id).await?;
        require_member(&me)?;
        if kind == ConversationKind::ConnectGroup && me.role != Role::Admin {
            return Err(Error::Forbidden(
                "Only admins post in a public group.".into(),
            ));
        }
        Ok(self
            .store
            .append_message(NewMessage {
                conversation: id,
                kind: message.kind,
                content: MessageContent {
                    text: Some(message.text),
                    ..Default::default()
                },
                sender: Some(caller.identity.clone()),
                sender_display_name: message.sender_display_name,
                metadata: message.metadata,
                audience,
            })
            .await?)
    }

    pub async fn get_message(
        &self,
        caller: &Caller,
        id: ConversationId,
        message_id: MessageId,
    ) -> Result<Message> {
        self.throttle.check(&caller.identity, Operation::Other)?;
        require_chat(caller)?;
        let me = self.membership(caller, id).await?;
        self.visible_message(&me, id, message_id).await
    }

    /// Messages newest first. `changed_since` returns everything created, edited or deleted since.
    pub async fn list_messages(
        &self,
        caller: &Caller,
        id: ConversationId,
        changed_since: Option<OffsetDateTime>,
        page: PageRequest,
    ) -> Result<Page<Message>> {
        self.throttle
            .check(&caller.identity, Operation::ListMessages(id))?;
        require_chat(caller)?;
        let limit = self.page_size(page.max_page_size)?;
        let me = self.membership(caller, id).await?;
        let subscriber = (me.role == Role::Subscriber).then(|| me.identity.clone());
        let mut listed = self
            .store
            .list_messages(
                id,
                MessageQuery {
                    changed_since,
                    created_from: me.share_history_time,
                    after: page.continuation,
                    limit,
                    subscriber: subscriber.clone(),
                },
            )
            .await?;
        if let Some(subscriber) = subscriber {
            for message in &mut listed.items {
                message.audience = message.audience.seen_by_subscriber(&subscriber);
            }
        }
        Ok(listed)
    }

    /// Edits a message. Only its sender may, and only text and html messages.
    pub async fn edit_message(
        &self,
        caller: &Caller,
        id: ConversationId,
        message_id: MessageId,
        edit: MessageEdit,
    ) -> Result<()> {
        self.throttle
            .check(&caller.identity, Operation::WriteMessage(id))?;
        require_chat(caller)?;
        if let Some(text) = &edit.text {
            self.check_message_text(text)?;
        }
        if let Some(metadata) = &edit.metadata {
            self.check_message_metadata(metadata)?;
        }
        let me = self.membership(caller, id).await?;
        require_member(&me)?;
        let message = self.visible_message(&me, id, message_id).await?;
        own_message(caller, &message, "edit")?;
        self.store.edit_message(id, message_id, edit).await?;
        Ok(())
    }

    /// Deletes a message. Only its sender may.
    pub async fn delete_message(
        &self,
        caller: &Caller,
        id: ConversationId,
        message_id: MessageId,
    ) -> Result<()> {
        self.throttle
            .check(&caller.identity, Operation::WriteMessage(id))?;
        require_chat(caller)?;
        let me = self.membership(caller, id).await?;
        require_member(&me)?;
        let message = self.visible_message(&me, id, message_id).await?;
        own_message(caller, &message, "delete")?;
        if message.deleted_on.is_some() {
            return Ok(());
        }
        Ok(self.store.delete_message(id, message_id).await?)
    }

    pub async fn add_participants(
        &self,
        caller: &Caller,
        id: ConversationId,
        participants: Vec<ParticipantInput>,
    ) -> Result<()> {
        self.throttle.check(&caller.identity, Operation::Other)?;
        require(
            caller.can_manage_participants(),
            "The token's scopes do not allow adding participants.",
        )?;
        if participants.is_empty() {
            return Err(Error::invalid(
                "At least one participant is required.",
                "participants",
            ));
        }
        if participants.len() > self.limits.max_participants_per_batch {
            return Err(Error::invalid(
                format!(
                    "At most {} participants can be added in one request.",
                    self.limits.max_participants_per_batch
                ),
                "participants",
            ));
        }
        let participants = self.participants_from(participants)?;
        require_member(&self.membership(caller, id).await?)?;
        Ok(self
            .store
            .add_participants(
                id,
                participants,
                &caller.identity,
                self.limits.max_participants,
            )
            .await?)
    }

    pub async fn list_participants(
        &self,
        caller: &Caller,
        id: ConversationId,
        page: PageRequest,
    ) -> Result<Page<Participant>> {
        self.throttle.check(&caller.identity, Operation::Other)?;
        require_chat(caller)?;
        let limit = self.page_size(page.max_page_size)?;
        require_member(&self.membership(caller, id).await?)?;
        let query = ListQuery {
            after: page.continuation,
            skip: page.skip,
            limit,
        };
        Ok(self.store.list_participants(id, query).await?)
    }

    /// Removes a participant (anyone may remove anyone, themselves included, as in the cloud).
    pub async fn remove_participant(
        &self,
        caller: &Caller,
        id: ConversationId,
        who: &IdentityId,
    ) -> Result<()> {
        self.throttle.check(&caller.identity, Operation::Other)?;
        require_chat(caller)?;
        if *who != caller.identity {
            require(
                caller.can_manage_participants(),
                "The token's scopes do not allow removing participants.",
            )?;
        }
        require_member(&self.membership(caller, id).await?)?;
        self.store
            .remove_participant(id, who, &caller.identity)
            .await
            .map_err(|err| match err {
                crate::ports::StoreError::NotFound => {
                    Error::NotFound("The participant is not in the thread.".into())
                }
                other => other.into(),
            })
    }

    pub async fn send_read_receipt(
        &self,
        caller: &Caller,
        id: ConversationId,
        message_id: MessageId,
    ) -> Result<()> {
        self.throttle.check(&caller.identity, Operation::Other)?;
        require_chat(caller)?;
        let me = self.membership(caller, id).await?;
        self.visible_message(&me, id, message_id).await?;
        Ok(self
            .store
            .put_read_receipt(id, &caller.identity, message_id)
            .await?)
    }

    pub async fn list_read_receipts(
        &self,
        caller: &Caller,
        id: ConversationId,
        page: PageRequest,
    ) -> Result<Page<ReadReceipt>> {
        self.throttle.check(&caller.identity, Operation::Other)?;
        require_chat(caller)?;
        let limit = self.page_size(page.max_page_size)?;
        require_member(&self.membership(caller, id).await?)?;
        let query = ListQuery {
            after: page.continuation,
            skip: page.skip,
            limit,
        };
        Ok(self.store.list_read_receipts(id, query).await?)
    }

    /// Checks a typing notification. Nothing is stored: typing reaches live clients only.
    pub async fn send_typing(
        &self,
        caller: &Caller,
        id: ConversationId,
        sender_display_name: Option<&str>,
    ) -> Result<()> {
        self.throttle.check(&caller.identity, Operation::Other)?;
        require_chat(caller)?;
        self.check_display_name(sender_display_name, "senderDisplayName")?;
        require_member(&self.membership(caller, id).await?)?;
        self.bus.publish(crate::ports::CommittedEvent::typing(
            id,
            &caller.identity,
            sender_display_name,
            self.clock.now(),
        ));
        Ok(())
    }

    /// Deletes the conversations whose retention has run out. Run periodically by the server.
    pub async fn enforce_retention(&self) -> Result<Vec<ConversationId>> {
        Ok(self.store.delete_expired_conversations().await?)
    }

    /// The caller's participant record, or 403; 404 if the conversation is unknown or deleted.
    /// A subscriber of a public group is answered too (role `Subscriber`): callers that need a
    /// member check [`require_member`].
    pub(crate) async fn membership(
        &self,
        caller: &Caller,
        id: ConversationId,
    ) -> Result<Participant> {
        Ok(self.membership_in(caller, id).await?.0)
    }

    /// [`Core::membership`] with the conversation's kind.
    pub(crate) async fn membership_in(
        &self,
        caller: &Caller,
        id: ConversationId,
    ) -> Result<(Participant, ConversationKind)> {
        match self.store.get_membership(id, &caller.identity).await? {
            Some(MemberAccess {
                deleted: false,
                participant: Some(participant),
                kind,
            }) => Ok((participant, kind)),
            // An unknown thread and a forbidden one are told apart.
            Some(MemberAccess {
                deleted: false,
                participant: None,
                ..
            }) => Err(Error::Forbidden(
                "The caller is not a participant of the thread.".into(),
            )),
            _ => Err(thread_not_found()),
        }
    }

    async fn live_conversation(&self, id: ConversationId) -> Result<Conversation> {
        match self.store.get_conversation(id).await? {
            Some(conversation) if conversation.deleted_on.is_none() => Ok(conversation),
            _ => Err(thread_not_found()),
        }
    }

    /// A message the participant may see: it exists, is within their shared history, and (for
    /// a subscriber) its audience reaches them.
    pub(crate) async fn visible_message(
        &self,
        me: &Participant,
        id: ConversationId,
        message_id: MessageId,
    ) -> Result<Message> {
        let message = self.store.get_message(id, message_id).await?;
        match message {
            Some(mut m)
                if me
                    .share_history_time
                    .is_none_or(|from| m.created_on >= from) =>
            {
                if me.role == Role::Subscriber {
                    if !m.audience.reaches_subscriber(&me.identity) {
                        return Err(Error::NotFound("The message does not exist.".into()));
                    }
                    m.audience = m.audience.seen_by_subscriber(&me.identity);
                }
                Ok(m)
            }
            _ => Err(Error::NotFound("The message does not exist.".into())),
        }
    }

    fn participants_from(&self, inputs: Vec<ParticipantInput>) -> Result<Vec<Participant>> {
        inputs
            .into_iter()
            .map(|input| {
                self.check_display_name(input.display_name.as_deref(), "displayName")?;
                self.check_metadata(&input.metadata, "participants.metadata")?;
                if input
                    .share_history_time
                    .is_some_and(|t| !crate::model::within_year_range(t))
                {
                    return Err(Error::invalid(
                        "shareHistoryTime must fall within the years 0 to 9999 in UTC.",
                        "shareHistoryTime",
                    ));
                }
                Ok(Participant {
                    identity: input.identity,
                    display_name: input.display_name,
                    share_history_time: input.share_history_time,
                    metadata: input.metadata,
                    role: Role::Member,
                })
            })
            .collect()
    }

    fn page_size(&self, requested: Option<usize>) -> Result<usize> {
        match requested {
            None => Ok(DEFAULT_PAGE_SIZE.min(self.limits.max_page_size)),
            Some(size) if (1..=self.limits.max_page_size).contains(&size) => Ok(size),
            Some(_) => Err(Error::invalid(
                format!(
                    "maxPageSize must be between 1 and {}.",
                    self.limits.max_page_size
                ),
                "maxPageSize",
            )),
        }
    }

    pub(crate) fn check_topic(&self, topic: &str) -> Result<()> {
        if topic.trim().is_empty() {
            return Err(Error::invalid("The topic must not be empty.", "topic"));
        }
        if topic.chars().count() > self.limits.max_topic_chars {
            return Err(Error::invalid(
                format!(
                    "The topic is longer than {} characters.",
                    self.limits.max_topic_chars
                ),
                "topic",
            ));
        }
        Ok(())
    }

    fn check_display_name(&self, name: Option<&str>, target: &str) -> Result<()> {
        match name {
            Some(name) if name.chars().count() > self.limits.max_display_name_chars => {
                Err(Error::invalid(
                    format!(
                        "The display name is longer than {} characters.",
                        self.limits.max_display_name_chars
                    ),
                    target,
                ))
            }
            _ => Ok(()),
        }
    }

    fn check_metadata(&self, metadata: &Metadata, target: &str) -> Result<()> {
        if metadata_bytes(metadata) > self.limits.max_metadata_bytes {
            return Err(Error::invalid(
                format!(
                    "The metadata is larger than {} bytes.",
                    self.limits.max_metadata_bytes
                ),
                target,
            ));
        }
        Ok(())
    }

    fn check_message_metadata(&self, metadata: &Metadata) -> Result<()> {
        if metadata_bytes(metadata) > self.limits.max_message_metadata_bytes {
            return Err(Error::TooLarge(format!(
                "The message metadata is larger than {} bytes.",
                self.limits.max_message_metadata_bytes
            )));
        }
        Ok(())
    }

    fn check_message_text(&self, text: &str) -> Result<()> {
        if text.is_empty() {
            return Err(Error::invalid(
                "The message content must not be empty.",
                "content",
            ));
        }
        if text.len() > self.limits.max_message_bytes {
            return Err(Error::TooLarge(format!(
                "The message content is larger than {} bytes.",
                self.limits.max_message_bytes
            )));
        }
        Ok(())
    }

    fn check_retention(&self, retention: Option<RetentionPolicy>) -> Result<()> {
        match retention {
            Some(RetentionPolicy::ThreadCreationDate { delete_after_days })
                if !self.limits.retention_days.contains(&delete_after_days) =>
            {
                Err(Error::invalid(
                    format!(
                        "deleteThreadAfterDays must be between {} and {}.",
                        self.limits.retention_days.start(),
                        self.limits.retention_days.end()
                    ),
                    "retentionPolicy.deleteThreadAfterDays",
                ))
            }
            _ => Ok(()),
        }
    }
}

pub(crate) fn require(allowed: bool, message: &str) -> Result<()> {
    if allowed {
        Ok(())
    } else {
        Err(Error::Forbidden(message.into()))
    }
}

/// Subscribers of a public group read what is addressed to them and nothing else: they do not
/// post, list participants or receipts, or change the conversation (403).
pub(crate) fn require_member(me: &Participant) -> Result<()> {
    if me.role == Role::Subscriber {
        Err(Error::Forbidden(
            "Subscribers of a public group can only read the messages sent to them.".into(),
        ))
    } else {
        Ok(())
    }
}

pub(crate) fn require_chat(caller: &Caller) -> Result<()> {
    require(caller.can_chat(), "The token's scopes do not allow chat.")
}

fn own_message(caller: &Caller, message: &Message, verb: &str) -> Result<()> {
    if message.kind.is_system() {
        return Err(Error::Forbidden(
            "System messages cannot be changed.".into(),
        ));
    }
    if message.sender.as_ref() != Some(&caller.identity) {
        return Err(Error::Forbidden(format!(
            "Only the sender may {verb} a message."
        )));
    }
    Ok(())
}

fn thread_not_found() -> Error {
    Error::NotFound("The thread does not exist.".into())
}
