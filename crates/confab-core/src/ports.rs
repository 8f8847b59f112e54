//! The ports the core talks through. Adapters (SQLite, PostgreSQL, …) implement them; the core
//! never knows which one it has.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::ids::{ConversationId, IdentityId, MessageId};
use crate::model::{
    Audience, Conversation, ConversationKind, ConversationSummary, GroupView, Identity, Member,
    Message, MessageContent, MessageType, Metadata, Page, Participant, ReadReceipt,
    RetentionPolicy, Role,
};

pub mod connectors;
pub use connectors::{ConnectorStore, PinMessage, PinOutcome, PinRedemption, PinSender};
pub mod bus;
pub use bus::{
    Bus, BusError, BusSubscription, CommittedEvent, EventBounds, EventSink, LocalBus, Membership,
};
pub mod hierarchy;
pub use hierarchy::HierarchyStore;
pub mod actions;
pub use actions::{ActionQuery, ActionStore, NewAction, NewActionResponse};
pub mod blobs;
pub use blobs::{BlobError, BlobReader, BlobResult, BlobWriter, Blobs, MemoryBlobs};
pub mod media;
pub use media::{MediaKind, MediaRecord, MediaStore};
pub mod webhooks;
pub use webhooks::{WebhookClient, WebhookStore};

#[derive(Clone, Debug, thiserror::Error, PartialEq)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("invalid cursor")]
    InvalidCursor,
    /// Adding would take a conversation past this many participants.
    #[error("participant limit {0} reached")]
    ParticipantLimit(usize),
    /// Text the store cannot keep: PostgreSQL takes no NUL character (`\u0000`), in values
    /// to write or to look up by. The faces refuse NUL in request bodies before a store sees
    /// them; what is left comes from a path or a query string.
    #[error("text holds a NUL character")]
    InvalidText,
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A new conversation with its first participants, committed in one transaction.
/// A conversation as an authorization check sees it, with one identity's place in it.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberAccess {
    pub kind: ConversationKind,
    pub deleted: bool,
    /// The identity's participant record (role `Subscriber` for a subscriber); `None`: not in
    /// the conversation.
    pub participant: Option<Participant>,
}

#[derive(Clone, Debug)]
pub struct NewConversation {
    pub id: ConversationId,
    pub topic: String,
    pub created_by: IdentityId,
    pub metadata: Metadata,
    pub retention: Option<RetentionPolicy>,
    pub participants: Vec<Participant>,
    /// A client's idempotency key: a repeat with the same key returns the first conversation.
    pub repeatability_key: Option<String>,
    pub kind: ConversationKind,
    pub welcome_message: Option<String>,
}

impl NewConversation {
    /// The conversation as a store keeps it once created at `now` (its first message, the
    /// participants added, is from the same moment).
    pub fn created(&self, now: OffsetDateTime) -> Conversation {
        Conversation {
            id: self.id,
            topic: self.topic.clone(),
            created_by: self.created_by.clone(),
            created_on: now,
            deleted_on: None,
            metadata: self.metadata.clone(),
            retention: self.retention,
            last_message_on: Some(now),
            kind: self.kind,
            welcome_message: self.welcome_message.clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct CreatedConversation {
    pub conversation: Conversation,
    /// False when the repeatability key matched an earlier create.
    pub created: bool,
}

/// A change to a conversation's properties; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct ConversationUpdate {
    pub topic: Option<String>,
    pub metadata: Option<Metadata>,
    /// `Some(None)` removes the policy.
    pub retention: Option<Option<RetentionPolicy>>,
}

/// A message to append. The store assigns id, sequence id, version and times at commit.
#[derive(Clone, Debug)]
pub struct NewMessage {
    pub conversation: ConversationId,
    pub kind: MessageType,
    pub content: MessageContent,
    pub sender: Option<IdentityId>,
    pub sender_display_name: Option<String>,
    pub metadata: Metadata,
    /// Who may read it besides the members (`Members` for every system message).
    pub audience: Audience,
}

impl NewMessage {
    /// A system message (no sender) for the members, such as the participants added.
    pub fn system(
        conversation: ConversationId,
        kind: MessageType,
        content: MessageContent,
    ) -> Self {
        Self {
            conversation,
            kind,
            content,
            sender: None,
            sender_display_name: None,
            metadata: Metadata::new(),
            audience: Audience::Members,
        }
    }

    /// The message as a store keeps it once appended: `id` (from the store's id clock, also its
    /// first version), its sequence id in the conversation, and its time.
    pub fn stored(&self, id: i64, sequence_id: i64, created_on: OffsetDateTime) -> Message {
        Message {
            id: MessageId(id),
            conversation: self.conversation,
            sequence_id,
            kind: self.kind,
            content: self.content.clone(),
            sender: self.sender.clone(),
            sender_display_name: self.sender_display_name.clone(),
            metadata: self.metadata.clone(),
            version: id,
            created_on,
            edited_on: None,
            deleted_on: None,
            audience: self.audience.clone(),
        }
    }
}

/// A change to a message; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct MessageEdit {
    pub text: Option<String>,
    pub metadata: Option<Metadata>,
}

/// Which messages of a conversation to list, newest first.
#[derive(Clone, Debug, Default)]
pub struct MessageQuery {
    /// Only messages created, edited or deleted at or after this time.
    pub changed_since: Option<OffsetDateTime>,
    /// Only messages created at or after this time (a participant's shared history).
    pub created_from: Option<OffsetDateTime>,
    /// Continue after this cursor (from a previous page's `next`).
    pub after: Option<String>,
    pub limit: usize,
    /// Set when the reader is this subscriber: only messages whose audience reaches it.
    /// `None`: every message (members and admins).
    pub subscriber: Option<IdentityId>,
}

/// Listing parameters for the short lists (participants, read receipts).
#[derive(Clone, Debug, Default)]
pub struct ListQuery {
    pub after: Option<String>,
    /// Items to skip from the start (first page only; these lists are bounded by the participant
    /// limit, so skipping costs little).
    pub skip: usize,
    pub limit: usize,
}

/// Repository-level, transactional storage. Every write commits its change, its system messages
/// and its event rows in one transaction; a returned `Ok` means committed. The connector
/// (Kaizala application, PIN, refresh token) storage is the supertrait [`ConnectorStore`];
/// subgroups and subscribers are [`HierarchyStore`]; media records are [`MediaStore`];
/// actions are [`ActionStore`]; webhook subscriptions and deliveries are [`WebhookStore`].
#[async_trait]
pub trait Store:
    ConnectorStore + HierarchyStore + MediaStore + ActionStore + WebhookStore + Send + Sync + 'static
{
    // Identities
    async fn create_identity(&self, identity: &Identity) -> StoreResult<()>;
    async fn get_identity(&self, id: &IdentityId) -> StoreResult<Option<Identity>>;
    /// Invalidates every token minted so far; answers the new generation (`NotFound` if unknown).
    async fn bump_token_generation(&self, id: &IdentityId) -> StoreResult<u32>;
    /// Deletes the identity (`NotFound` if unknown). Its memberships stay, as in the cloud.
    async fn delete_identity(&self, id: &IdentityId) -> StoreResult<()>;

    // Conversations
    /// Creates the conversation, its participants, and a participantAdded system message.
    async fn create_conversation(&self, new: NewConversation) -> StoreResult<CreatedConversation>;
    /// A conversation, deleted or not.
    async fn get_conversation(&self, id: ConversationId) -> StoreResult<Option<Conversation>>;
    /// Applies the update; a changed topic appends a topicUpdated message from `by`.
    async fn update_conversation(
        &self,
        id: ConversationId,
        update: ConversationUpdate,
        by: &IdentityId,
    ) -> StoreResult<()>;
    /// Marks the conversation deleted (`NotFound` if unknown or already deleted).
    /// `by`: who deleted it (the events name them), if anyone did.
    async fn delete_conversation(
        &self,
        id: ConversationId,
        by: Option<&IdentityId>,
    ) -> StoreResult<()>;
    /// The conversations `member` belongs to, most recent activity first.
    async fn list_conversations(
        &self,
        member: &IdentityId,
        active_since: Option<OffsetDateTime>,
        after: Option<String>,
        limit: usize,
    ) -> StoreResult<Page<ConversationSummary>>;
    /// Deletes every conversation whose retention policy has run out; answers their ids.
    async fn delete_expired_conversations(&self) -> StoreResult<Vec<ConversationId>>;

    // Participants
    /// A participant; a subscriber of the conversation is answered with role `Subscriber`.
    async fn get_participant(
        &self,
        conversation: ConversationId,
        identity: &IdentityId,
    ) -> StoreResult<Option<Participant>>;
    /// What every authorization check needs: the conversation's kind, whether it is deleted,
    /// and `identity`'s participant record in it (`None`: unknown conversation). It runs on
    /// nearly every call, so adapters override it to read both at once or to answer from
    /// memory — but a change committed before it is called must be seen: a participant removed
    /// by a call that has returned is not answered any more. This default reads the two one
    /// after the other.
    async fn get_membership(
        &self,
        conversation: ConversationId,
        identity: &IdentityId,
    ) -> StoreResult<Option<MemberAccess>> {
        let Some(found) = self.get_conversation(conversation).await? else {
            return Ok(None);
        };
        let participant = self.get_participant(conversation, identity).await?;
        Ok(Some(MemberAccess {
            kind: found.kind,
            deleted: found.deleted_on.is_some(),
            participant,
        }))
    }
    async fn list_participants(
        &self,
        conversation: ConversationId,
        query: ListQuery,
    ) -> StoreResult<Page<Participant>>;
    /// Adds (or updates) participants, failing with `ParticipantLimit` past `max_participants`.
    /// Appends one participantAdded message from `by` listing the newly added ones (if any).
    async fn add_participants(
        &self,
        conversation: ConversationId,
        participants: Vec<Participant>,
        by: &IdentityId,
        max_participants: usize,
    ) -> StoreResult<()>;
    /// Removes a participant and appends a participantRemoved message (`NotFound` if absent).
    async fn remove_participant(
        &self,
        conversation: ConversationId,
        identity: &IdentityId,
        by: &IdentityId,
    ) -> StoreResult<()>;

    // Messages
    async fn append_message(&self, message: NewMessage) -> StoreResult<Message>;
    async fn get_message(
        &self,
        conversation: ConversationId,
        id: MessageId,
    ) -> StoreResult<Option<Message>>;
    async fn list_messages(
        &self,
        conversation: ConversationId,
        query: MessageQuery,
    ) -> StoreResult<Page<Message>>;
    /// Edits a message that is not deleted; bumps its version and `edited_on`.
    async fn edit_message(
        &self,
        conversation: ConversationId,
        id: MessageId,
        edit: MessageEdit,
    ) -> StoreResult<Message>;
    /// Marks a message deleted and clears its content.
    async fn delete_message(&self, conversation: ConversationId, id: MessageId) -> StoreResult<()>;

    // Read receipts
    /// Records that `reader` read up to `message`; keeps the newest per reader.
    async fn put_read_receipt(
        &self,
        conversation: ConversationId,
        reader: &IdentityId,
        message: MessageId,
    ) -> StoreResult<()>;
    async fn list_read_receipts(
        &self,
        conversation: ConversationId,
        query: ListQuery,
    ) -> StoreResult<Page<ReadReceipt>>;

    // Groups (the Kaizala view of conversations)
    /// A conversation with its member counts and `viewer`'s role, in one read. `None` if the
    /// conversation is unknown (deleted ones are returned; the caller decides).
    async fn get_group(
        &self,
        id: ConversationId,
        viewer: &IdentityId,
    ) -> StoreResult<Option<GroupView>>;
    /// The live (not deleted) conversations `member` belongs to, as groups, keyset-paged by id.
    async fn list_groups(
        &self,
        member: &IdentityId,
        after: Option<String>,
        limit: usize,
    ) -> StoreResult<Page<GroupView>>;
    /// Participants with whether each identity exists (has ever logged in), paged like
    /// `list_participants`.
    async fn list_members(
        &self,
        conversation: ConversationId,
        query: ListQuery,
    ) -> StoreResult<Page<Member>>;
    /// Changes a participant's role (`NotFound` if absent or the conversation is gone); logs
    /// `ParticipantRoleChanged` from `by`. Setting the role it already has changes nothing.
    async fn set_participant_role(
        &self,
        conversation: ConversationId,
        identity: &IdentityId,
        role: Role,
        by: &IdentityId,
    ) -> StoreResult<()>;

    // The event log (what the real-time stream resumes from)
    /// Up to `limit` logged events with a position after `after`, in position order.
    async fn events_after(&self, after: i64, limit: usize) -> StoreResult<Vec<CommittedEvent>>;
    /// The resumable range of positions.
    async fn event_bounds(&self) -> StoreResult<EventBounds>;
    /// Deletes, oldest first and at most `max_rows` of them, the events older than
    /// `older_than` or beyond the newest `keep_last`; answers how many went. Every position up
    /// to the last deleted one counts as purged from then on.
    async fn purge_events(
        &self,
        older_than: Option<OffsetDateTime>,
        keep_last: Option<u64>,
        max_rows: usize,
    ) -> StoreResult<usize>;
    /// The live conversations `identity` belongs to (as a participant or a subscriber).
    async fn list_memberships(&self, identity: &IdentityId) -> StoreResult<Vec<Membership>>;
}

/// The time source. Tests substitute a clock they move by hand.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> OffsetDateTime;
}

/// The real clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}
