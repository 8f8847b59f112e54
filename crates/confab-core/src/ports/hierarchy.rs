//! The ports of group hierarchies and public groups: subgroup links (a DAG: a conversation may
//! have several parents, never a cycle) and the subscribers of public groups (Kaizala
//! ConnectGroups).
//!
//! Subscribers are not participants: they are kept apart from members, so member lists, member
//! counts and the participant limit never see them. `Store::get_participant` answers a
//! subscriber with role `Subscriber` (so that the faces' membership checks find it); every other
//! participant read leaves subscribers out.

use async_trait::async_trait;

use super::{NewConversation, StoreResult};
use crate::ids::{ConversationId, IdentityId};
use crate::model::{Conversation, Member, Page, SubgroupLink, SubscribeOutcome};

/// Storage of subgroup links and subscribers.
#[async_trait]
pub trait HierarchyStore: Send + Sync + 'static {
    // Subgroups
    /// Creates a conversation (like `Store::create_conversation`) as a subgroup of `parent`, in
    /// one transaction (`NotFound` if the parent is unknown or deleted).
    async fn create_subgroup(
        &self,
        new: NewConversation,
        parent: ConversationId,
    ) -> StoreResult<Conversation>;
    /// Makes `child` a subgroup of `parent`. `NotFound` if either is unknown or deleted;
    /// `Conflict` if the link would close a cycle (`parent` is `child` or one of its
    /// descendants). Answers false when the link existed already (nothing changed).
    async fn add_subgroup(
        &self,
        parent: ConversationId,
        child: ConversationId,
        by: &IdentityId,
    ) -> StoreResult<bool>;
    /// Removes the link (`NotFound` if there is none).
    async fn remove_subgroup(
        &self,
        parent: ConversationId,
        child: ConversationId,
        by: &IdentityId,
    ) -> StoreResult<()>;
    /// The links below `root` to live subgroups: the direct ones, or (`all`) every link
    /// reachable from `root`, each once, ordered by parent then child. At most `limit` links.
    async fn list_subgroups(
        &self,
        root: ConversationId,
        all: bool,
        limit: usize,
    ) -> StoreResult<Vec<SubgroupLink>>;

    // Subscribers
    /// Subscribes phone numbers (or any identities) to a conversation, in one transaction;
    /// members and admins are left as they are (`IsMember`). `NotFound` if the conversation is
    /// unknown or deleted. Logs one `ParticipantsAdded` event with `{"subscribers": [...]}`.
    async fn add_subscribers(
        &self,
        conversation: ConversationId,
        identities: Vec<IdentityId>,
        by: &IdentityId,
    ) -> StoreResult<Vec<(IdentityId, SubscribeOutcome)>>;
    /// Unsubscribes; answers for each whether it was a subscriber. Logs one
    /// `ParticipantRemoved` event with `{"subscribers": [...]}` if any was removed.
    async fn remove_subscribers(
        &self,
        conversation: ConversationId,
        identities: Vec<IdentityId>,
        by: &IdentityId,
    ) -> StoreResult<Vec<(IdentityId, bool)>>;
    /// Subscribers (role `Subscriber`) with whether each identity exists, keyset-paged by
    /// identity.
    async fn list_subscribers(
        &self,
        conversation: ConversationId,
        after: Option<String>,
        limit: usize,
    ) -> StoreResult<Page<Member>>;
    /// Those of `identities` that are subscribers of the conversation, in the given order.
    async fn find_subscribers(
        &self,
        conversation: ConversationId,
        identities: Vec<IdentityId>,
    ) -> StoreResult<Vec<IdentityId>>;
}
