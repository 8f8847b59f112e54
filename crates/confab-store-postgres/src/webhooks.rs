//! STUB: to be ported from the SQLite store.
#![allow(unused_variables, unused_imports, dead_code)]

use confab_core::ids::{ConversationId, IdentityId, MessageId};
use confab_core::ports::webhooks::{
    DeliveryAttempt, DeliveryStatus, EventSchema, Webhook, WebhookDelivery, WebhookObject,
};
use confab_core::ports::{StoreError, StoreResult};
use confab_store_common::event_grid::Thread;
use confab_store_common::outbox::{hook_cache, Delivery, HookCache, OutboxStore};
use confab_store_common::stored;
use time::OffsetDateTime;

use crate::db::Conn;
use crate::writer::Writer;

impl Writer {
    pub(crate) fn reload_webhooks(&mut self) -> StoreResult<()> {
        Err(crate::not_yet("reload_webhooks"))
    }

    pub(crate) fn create_webhook(&mut self, webhook: &Webhook) -> StoreResult<()> {
        Err(crate::not_yet("create_webhook"))
    }

    pub(crate) fn update_webhook(&mut self, webhook: &Webhook, resume: bool) -> StoreResult<()> {
        Err(crate::not_yet("update_webhook"))
    }

    pub(crate) fn delete_webhook(&mut self, id: &str) -> StoreResult<()> {
        Err(crate::not_yet("delete_webhook"))
    }

    pub(crate) fn record_delivery_attempt(&mut self, a: &DeliveryAttempt) -> StoreResult<()> {
        Err(crate::not_yet("record_delivery_attempt"))
    }

    pub(crate) fn purge_deliveries(
        &mut self,
        older_than_us: i64,
        max_rows: usize,
    ) -> StoreResult<usize> {
        Err(crate::not_yet("purge_deliveries"))
    }

    pub(crate) fn redeliver(
        &mut self,
        webhook: &str,
        delivery: i64,
    ) -> StoreResult<WebhookDelivery> {
        Err(crate::not_yet("redeliver"))
    }
}

pub(crate) fn get_webhook(db: &Conn, id: &str) -> StoreResult<Option<Webhook>> {
    Err(crate::not_yet("get_webhook"))
}

pub(crate) fn list_webhooks(
    db: &Conn,
    object: WebhookObject,
    object_id: &str,
) -> StoreResult<Vec<Webhook>> {
    Err(crate::not_yet("list_webhooks"))
}

pub(crate) fn due_deliveries(
    db: &Conn,
    now_us: i64,
    limit: usize,
) -> StoreResult<Vec<WebhookDelivery>> {
    Err(crate::not_yet("due_deliveries"))
}

pub(crate) fn next_delivery_due(db: &Conn) -> StoreResult<Option<OffsetDateTime>> {
    Err(crate::not_yet("next_delivery_due"))
}

pub(crate) fn list_deliveries(
    db: &Conn,
    webhook: &str,
    before: Option<i64>,
    limit: usize,
) -> StoreResult<Vec<WebhookDelivery>> {
    Err(crate::not_yet("list_deliveries"))
}

pub(crate) fn action_conversation(
    db: &Conn,
    action: MessageId,
) -> StoreResult<Option<ConversationId>> {
    Err(crate::not_yet("action_conversation"))
}

/// Every active subscription, by object. (Until subscriptions are stored here, there are none.)
pub(crate) fn load_cache(db: &Conn) -> StoreResult<HookCache> {
    Ok(HookCache::new())
}

impl OutboxStore for Writer {
    fn thread_facts(&self, conversation: ConversationId) -> StoreResult<Option<Thread>> {
        Err(crate::not_yet("thread_facts"))
    }
    fn participant_ids(&self, conversation: ConversationId) -> StoreResult<Vec<IdentityId>> {
        Err(crate::not_yet("participant_ids"))
    }
    fn is_participant(
        &self,
        conversation: ConversationId,
        identity: &IdentityId,
    ) -> StoreResult<bool> {
        Err(crate::not_yet("is_participant"))
    }
    fn display_name(
        &self,
        conversation: ConversationId,
        identity: &IdentityId,
    ) -> StoreResult<Option<String>> {
        Err(crate::not_yet("display_name"))
    }
    fn action_row(&self, action: i64) -> StoreResult<Option<(String, Option<String>)>> {
        Err(crate::not_yet("action_row"))
    }
    fn action_response_body(&self, action: i64, response_id: &str) -> StoreResult<Option<String>> {
        Err(crate::not_yet("action_response_body"))
    }
    fn insert_delivery(&self, delivery: &Delivery<'_>) -> StoreResult<()> {
        Err(crate::not_yet("insert_delivery"))
    }
}
