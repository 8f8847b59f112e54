//! The ports the core talks through. Adapters (SQLite, PostgreSQL, …) implement them; the core
//! never knows which one it has.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::ids::{ConversationId, IdentityId, MessageId};
use crate::model::{
    Conversation, ConversationKind, ConversationSummary, GroupView, Identity, Member, Message,
    MessageContent, MessageType, Metadata, Page, Participant, ReadReceipt, RetentionPolicy, Role,
};

pub mod connectors;
pub use connectors::{ConnectorStore, PinMessage, PinOutcome, PinRedemption, PinSender};

#[derive(Debug, thiserror::Error, PartialEq)]
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
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A new conversation with its first participants, committed in one transaction.
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
/// (Kaizala application, PIN, refresh token) storage is the supertrait [`ConnectorStore`].
#[async_trait]
pub trait Store: ConnectorStore + Send + Sync + 'static {
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
    async fn delete_conversation(&self, id: ConversationId) -> StoreResult<()>;
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
    async fn get_participant(
        &self,
        conversation: ConversationId,
        identity: &IdentityId,
    ) -> StoreResult<Option<Participant>>;
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
