//! The `Store` contract and the domain ports it extends, as the PostgreSQL store serves them:
//! each write runs on the writer thread (`writes.rs`, `hierarchy.rs`, `actions.rs`,
//! `webhooks.rs`, `events.rs`), each read on a pooled connection (`reads.rs` and the same
//! domain files). The connector and media ports are in `connectors.rs` and `media.rs`.

use std::sync::Arc;

use async_trait::async_trait;
use confab_core::actions::{Action, ActionResponse};
use confab_core::ids::{ConversationId, IdentityId, MessageId};
use confab_core::model::{
    Conversation, ConversationSummary, GroupView, Identity, Member, Message, Page, Participant,
    ReadReceipt, Role, SubgroupLink, SubscribeOutcome,
};
use confab_core::ports::webhooks::{DeliveryAttempt, Webhook, WebhookDelivery, WebhookObject};
use confab_core::ports::{
    ActionStore, CommittedEvent, ConversationUpdate, CreatedConversation, EventBounds,
    HierarchyStore, ListQuery, MemberAccess, Membership, MessageEdit, MessageQuery,
    NewConversation, NewMessage, Store, StoreResult, WebhookStore,
};
use confab_store_common::creation::Creation;
use confab_store_common::stored::micros;
use time::OffsetDateTime;

use crate::{actions, events, identities, reads, webhooks, PostgresStore};

#[async_trait]
impl Store for PostgresStore {
    async fn create_identity(&self, identity: &Identity) -> StoreResult<()> {
        let identity = identity.clone();
        self.writer
            .call(move |w| w.create_identity(&identity))
            .await
    }

    async fn get_identity(&self, id: &IdentityId) -> StoreResult<Option<Identity>> {
        identities::get_identity(&*self.reader().await?, id).await
    }

    async fn bump_token_generation(&self, id: &IdentityId) -> StoreResult<u32> {
        let id = id.clone();
        self.writer
            .call(move |w| w.bump_token_generation(&id))
            .await
    }

    async fn delete_identity(&self, id: &IdentityId) -> StoreResult<()> {
        let id = id.clone();
        self.writer.call(move |w| w.delete_identity(&id)).await
    }

    async fn create_conversation(&self, new: NewConversation) -> StoreResult<CreatedConversation> {
        self.grouped(&self.creations, Creation::new(new)).await
    }

    async fn get_conversation(&self, id: ConversationId) -> StoreResult<Option<Conversation>> {
        reads::get_conversation(&*self.reader().await?, id).await
    }

    async fn update_conversation(
        &self,
        id: ConversationId,
        update: ConversationUpdate,
        by: &IdentityId,
    ) -> StoreResult<()> {
        let by = by.clone();
        self.writer
            .call(move |w| w.update_conversation(id, &update, &by))
            .await
    }

    async fn delete_conversation(
        &self,
        id: ConversationId,
        by: Option<&IdentityId>,
    ) -> StoreResult<()> {
        let by = by.cloned();
        self.writer
            .call(move |w| w.delete_conversation(id, by.as_ref()))
            .await
    }

    async fn list_conversations(
        &self,
        member: &IdentityId,
        active_since: Option<OffsetDateTime>,
        after: Option<String>,
        limit: usize,
    ) -> StoreResult<Page<ConversationSummary>> {
        let db = self.reader().await?;
        reads::list_conversations(&*db, member, active_since, after.as_deref(), limit).await
    }

    async fn delete_expired_conversations(&self) -> StoreResult<Vec<ConversationId>> {
        self.writer.call(|w| w.delete_expired_conversations()).await
    }

    async fn get_participant(
        &self,
        conversation: ConversationId,
        identity: &IdentityId,
    ) -> StoreResult<Option<Participant>> {
        reads::get_participant(&*self.reader().await?, conversation, identity).await
    }

    /// This runs on nearly every call: one statement (no cache: with several nodes writing, a
    /// node cannot know what the others changed).
    async fn get_membership(
        &self,
        conversation: ConversationId,
        identity: &IdentityId,
    ) -> StoreResult<Option<MemberAccess>> {
        // From memory while the node follows every node's changes (`memberships.rs`).
        let memberships = &self.node.memberships;
        if let Some(known) = memberships.get(conversation, identity) {
            return Ok(Some(known));
        }
        let epoch = memberships.epoch();
        let key = identity.clone();
        let found = reads::get_membership(&*self.reader().await?, conversation, &key).await?;
        // An unknown conversation is not kept: anyone could fill the cache with made-up ids.
        if let Some(access) = &found {
            memberships.fill(epoch, conversation, identity.clone(), access.clone());
        }
        Ok(found)
    }

    async fn list_participants(
        &self,
        conversation: ConversationId,
        query: ListQuery,
    ) -> StoreResult<Page<Participant>> {
        reads::list_participants(&*self.reader().await?, conversation, &query).await
    }

    async fn add_participants(
        &self,
        conversation: ConversationId,
        participants: Vec<Participant>,
        by: &IdentityId,
        max_participants: usize,
    ) -> StoreResult<()> {
        let by = by.clone();
        self.writer
            .call(move |w| w.add_participants(conversation, &participants, &by, max_participants))
            .await
    }

    async fn remove_participant(
        &self,
        conversation: ConversationId,
        identity: &IdentityId,
        by: &IdentityId,
    ) -> StoreResult<()> {
        let (identity, by) = (identity.clone(), by.clone());
        self.writer
            .call(move |w| w.remove_participant(conversation, &identity, &by))
            .await
    }

    async fn append_message(&self, message: NewMessage) -> StoreResult<Message> {
        self.grouped(&self.appends, message).await
    }

    async fn get_message(
        &self,
        conversation: ConversationId,
        id: MessageId,
    ) -> StoreResult<Option<Message>> {
        reads::get_message(&*self.reader().await?, conversation, id).await
    }

    async fn list_messages(
        &self,
        conversation: ConversationId,
        query: MessageQuery,
    ) -> StoreResult<Page<Message>> {
        reads::list_messages(&*self.reader().await?, conversation, &query).await
    }

    async fn edit_message(
        &self,
        conversation: ConversationId,
        id: MessageId,
        edit: MessageEdit,
    ) -> StoreResult<Message> {
        self.writer
            .call(move |w| w.edit_message(conversation, id, &edit))
            .await
    }

    async fn delete_message(&self, conversation: ConversationId, id: MessageId) -> StoreResult<()> {
        self.writer
            .call(move |w| w.delete_message(conversation, id))
            .await
    }

    async fn put_read_receipt(
        &self,
        conversation: ConversationId,
        reader: &IdentityId,
        message: MessageId,
    ) -> StoreResult<()> {
        let reader = reader.clone();
        self.writer
            .call(move |w| w.put_read_receipt(conversation, &reader, message))
            .await
    }

    async fn list_read_receipts(
        &self,
        conversation: ConversationId,
        query: ListQuery,
    ) -> StoreResult<Page<ReadReceipt>> {
        reads::list_read_receipts(&*self.reader().await?, conversation, &query).await
    }

    async fn get_group(
        &self,
        id: ConversationId,
        viewer: &IdentityId,
    ) -> StoreResult<Option<GroupView>> {
        reads::get_group(&*self.reader().await?, id, viewer).await
    }

    async fn list_groups(
        &self,
        member: &IdentityId,
        after: Option<String>,
        limit: usize,
    ) -> StoreResult<Page<GroupView>> {
        reads::list_groups(&*self.reader().await?, member, after.as_deref(), limit).await
    }

    async fn list_members(
        &self,
        conversation: ConversationId,
        query: ListQuery,
    ) -> StoreResult<Page<Member>> {
        reads::list_members(&*self.reader().await?, conversation, &query).await
    }

    async fn set_participant_role(
        &self,
        conversation: ConversationId,
        identity: &IdentityId,
        role: Role,
        by: &IdentityId,
    ) -> StoreResult<()> {
        let (identity, by) = (identity.clone(), by.clone());
        self.writer
            .call(move |w| w.set_participant_role(conversation, &identity, role, &by))
            .await
    }

    async fn events_after(&self, after: i64, limit: usize) -> StoreResult<Vec<CommittedEvent>> {
        events::events_after(&*self.reader().await?, after, limit).await
    }

    async fn event_bounds(&self) -> StoreResult<EventBounds> {
        events::bounds(&*self.reader().await?).await
    }

    async fn purge_events(
        &self,
        older_than: Option<OffsetDateTime>,
        keep_last: Option<u64>,
        max_rows: usize,
    ) -> StoreResult<usize> {
        self.writer
            .call(move |w| w.purge_events(older_than, keep_last, max_rows))
            .await
    }

    async fn list_memberships(&self, identity: &IdentityId) -> StoreResult<Vec<Membership>> {
        events::list_memberships(&*self.reader().await?, identity).await
    }
}

#[async_trait]
impl HierarchyStore for PostgresStore {
    async fn create_subgroup(
        &self,
        new: NewConversation,
        parent: ConversationId,
    ) -> StoreResult<Conversation> {
        let creation = Creation::new(new);
        self.writer
            .call(move |w| w.create_subgroup(&creation, parent))
            .await
    }

    async fn add_subgroup(
        &self,
        parent: ConversationId,
        child: ConversationId,
        by: &IdentityId,
    ) -> StoreResult<bool> {
        let by = by.clone();
        self.writer
            .call(move |w| w.add_subgroup(parent, child, &by))
            .await
    }

    async fn remove_subgroup(
        &self,
        parent: ConversationId,
        child: ConversationId,
        by: &IdentityId,
    ) -> StoreResult<()> {
        let by = by.clone();
        self.writer
            .call(move |w| w.remove_subgroup(parent, child, &by))
            .await
    }

    async fn list_subgroups(
        &self,
        root: ConversationId,
        all: bool,
        limit: usize,
    ) -> StoreResult<Vec<SubgroupLink>> {
        reads::list_subgroups(&*self.reader().await?, root, all, limit).await
    }

    async fn add_subscribers(
        &self,
        conversation: ConversationId,
        identities: Vec<IdentityId>,
        by: &IdentityId,
    ) -> StoreResult<Vec<(IdentityId, SubscribeOutcome)>> {
        let by = by.clone();
        self.writer
            .call(move |w| w.add_subscribers(conversation, &identities, &by))
            .await
    }

    async fn remove_subscribers(
        &self,
        conversation: ConversationId,
        identities: Vec<IdentityId>,
        by: &IdentityId,
    ) -> StoreResult<Vec<(IdentityId, bool)>> {
        let by = by.clone();
        self.writer
            .call(move |w| w.remove_subscribers(conversation, &identities, &by))
            .await
    }

    async fn list_subscribers(
        &self,
        conversation: ConversationId,
        after: Option<String>,
        limit: usize,
    ) -> StoreResult<Page<Member>> {
        reads::list_subscribers(
            &*self.reader().await?,
            conversation,
            after.as_deref(),
            limit,
        )
        .await
    }

    async fn find_subscribers(
        &self,
        conversation: ConversationId,
        identities: Vec<IdentityId>,
    ) -> StoreResult<Vec<IdentityId>> {
        reads::find_subscribers(&*self.reader().await?, conversation, &identities).await
    }
}

#[async_trait]
impl ActionStore for PostgresStore {
    async fn create_action(&self, new: confab_core::ports::NewAction) -> StoreResult<Action> {
        self.writer.call(move |w| w.create_action(&new)).await
    }

    async fn get_action(
        &self,
        conversation: ConversationId,
        id: MessageId,
    ) -> StoreResult<Option<Action>> {
        actions::get_action(&*self.reader().await?, conversation, id).await
    }

    async fn list_actions(
        &self,
        conversation: ConversationId,
        query: confab_core::ports::ActionQuery,
    ) -> StoreResult<Page<Action>> {
        actions::list_actions(&*self.reader().await?, conversation, &query).await
    }

    async fn put_action_response(
        &self,
        response: confab_core::ports::NewActionResponse,
    ) -> StoreResult<ActionResponse> {
        self.writer
            .call(move |w| w.put_action_response(&response))
            .await
    }

    async fn get_action_response(
        &self,
        action: MessageId,
        id: &str,
    ) -> StoreResult<Option<ActionResponse>> {
        actions::get_action_response(&*self.reader().await?, action, id).await
    }

    async fn list_action_responses(
        &self,
        action: MessageId,
        limit: usize,
    ) -> StoreResult<Vec<ActionResponse>> {
        actions::list_action_responses(&*self.reader().await?, action, limit).await
    }
}

#[async_trait]
impl WebhookStore for PostgresStore {
    async fn create_webhook(&self, webhook: Webhook) -> StoreResult<()> {
        self.writer.call(move |w| w.create_webhook(&webhook)).await
    }

    async fn get_webhook(&self, id: &str) -> StoreResult<Option<Webhook>> {
        webhooks::get_webhook(&*self.reader().await?, id).await
    }

    async fn list_webhooks(
        &self,
        object: WebhookObject,
        object_id: &str,
    ) -> StoreResult<Vec<Webhook>> {
        webhooks::list_webhooks(&*self.reader().await?, object, object_id).await
    }

    async fn update_webhook(&self, webhook: Webhook, resume: bool) -> StoreResult<()> {
        self.writer
            .call(move |w| w.update_webhook(&webhook, resume))
            .await
    }

    async fn delete_webhook(&self, id: &str) -> StoreResult<()> {
        let id = id.to_owned();
        self.writer.call(move |w| w.delete_webhook(&id)).await
    }

    async fn due_deliveries(
        &self,
        now: OffsetDateTime,
        limit: usize,
    ) -> StoreResult<Vec<WebhookDelivery>> {
        // A writer job: it claims what it answers (every node runs a delivery worker).
        let now_us = micros(now);
        self.writer
            .call(move |w| w.claim_due_deliveries(now_us, limit))
            .await
    }

    /// Due deliveries are claimed (see `webhooks.rs`): the workers of several nodes must not
    /// send one twice.
    fn claims_due_deliveries(&self) -> bool {
        true
    }

    async fn next_delivery_due(&self) -> StoreResult<Option<OffsetDateTime>> {
        webhooks::next_delivery_due(&*self.reader().await?).await
    }

    async fn record_delivery_attempt(&self, attempt: DeliveryAttempt) -> StoreResult<()> {
        self.writer
            .call(move |w| w.record_delivery_attempt(&attempt))
            .await
    }

    async fn list_deliveries(
        &self,
        webhook: &str,
        before: Option<i64>,
        limit: usize,
    ) -> StoreResult<Vec<WebhookDelivery>> {
        webhooks::list_deliveries(&*self.reader().await?, webhook, before, limit).await
    }

    async fn redeliver(&self, webhook: &str, delivery: i64) -> StoreResult<WebhookDelivery> {
        let webhook = webhook.to_owned();
        self.writer
            .call(move |w| w.redeliver(&webhook, delivery))
            .await
    }

    async fn purge_deliveries(
        &self,
        older_than: OffsetDateTime,
        max_rows: usize,
    ) -> StoreResult<usize> {
        let older_than_us = micros(older_than);
        self.writer
            .call(move |w| w.purge_deliveries(older_than_us, max_rows))
            .await
    }

    async fn action_conversation(&self, action: MessageId) -> StoreResult<Option<ConversationId>> {
        webhooks::action_conversation(&*self.reader().await?, action).await
    }

    fn delivery_wakeup(&self) -> Arc<tokio::sync::Notify> {
        self.delivery_wakeup.clone()
    }
}
