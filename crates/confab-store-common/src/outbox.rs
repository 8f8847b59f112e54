//! The webhook outbox: which subscriptions an event reaches and the delivery rows it makes.
//!
//! A store keeps its active subscriptions in memory, by object ([`HookCache`]), and runs
//! [`outbox`] where an event row is inserted, in the same transaction: one delivery row per
//! event and matching subscription ([`OutboxStore::insert_delivery`]), built from the event's
//! data and what the outbox reads through [`OutboxStore`]. Shared because every store must
//! reach the same subscriptions with the same envelopes, in the same order.

use std::collections::HashMap;

use confab_core::ids::{ConversationId, IdentityId};
use confab_core::model::EventKind;
use confab_core::ports::webhooks::{EventSchema, Webhook, WebhookObject};
use confab_core::ports::StoreResult;
use serde_json::Value;

use crate::event_grid::{self, Thread};
use crate::kaizala;
use crate::stored;

/// An active subscription as the outbox needs it.
#[derive(Clone, Debug)]
pub struct CachedHook {
    pub id: String,
    /// Who registered it: it gets events only of conversations it is a participant of. `None`
    /// (an admin's ACS subscription): every conversation.
    pub owner: Option<IdentityId>,
    pub event_types: Vec<String>,
    pub context: Option<String>,
    pub validity_us: i64,
    pub schema: EventSchema,
    /// Only these conversations; empty: all.
    pub threads: Vec<ConversationId>,
}

/// Active subscriptions by (object type, object id).
pub type HookCache = HashMap<(WebhookObject, String), Vec<CachedHook>>;

/// The cache of these subscriptions (give it the active ones).
pub fn hook_cache(hooks: impl IntoIterator<Item = Webhook>) -> HookCache {
    let mut cache = HookCache::new();
    for hook in hooks {
        cache
            .entry((hook.object, hook.object_id))
            .or_default()
            .push(CachedHook {
                id: hook.id,
                owner: hook.owner,
                event_types: hook.event_types,
                context: hook.callback_context,
                validity_us: stored::micros(hook.validity),
                schema: hook.schema,
                threads: hook.threads,
            });
    }
    cache
}

/// The cache key of ACS event subscriptions.
pub fn resource_key() -> (WebhookObject, String) {
    (WebhookObject::Resource, String::new())
}

/// One delivery row.
pub struct Delivery<'a> {
    pub webhook: &'a str,
    pub event_position: i64,
    pub event_id: &'a str,
    pub event_type: &'a str,
    /// Deliveries of one subscription and order key go out in order, one at a time.
    pub order_key: &'a str,
    pub envelope: &'a Value,
    /// When the event happened: the delivery's creation and first attempt.
    pub at: i64,
}

/// What the outbox reads, in the transaction that logged the event, and where it writes.
pub trait OutboxStore {
    /// The thread's creation time, topic and metadata; `None` if there is no such thread.
    fn thread_facts(&self, conversation: ConversationId) -> StoreResult<Option<Thread>>;
    /// The ids of the conversation's participants.
    fn participant_ids(&self, conversation: ConversationId) -> StoreResult<Vec<IdentityId>>;
    fn is_participant(
        &self,
        conversation: ConversationId,
        identity: &IdentityId,
    ) -> StoreResult<bool>;
    /// A participant's display name (`None`: no such participant, or no name).
    fn display_name(
        &self,
        conversation: ConversationId,
        identity: &IdentityId,
    ) -> StoreResult<Option<String>>;
    /// An action's body (its JSON, as stored) and package.
    fn action_row(&self, action: i64) -> StoreResult<Option<(String, Option<String>)>>;
    /// A response's body (its JSON, as stored).
    fn action_response_body(&self, action: i64, response_id: &str) -> StoreResult<Option<String>>;
    fn insert_delivery(&self, delivery: &Delivery<'_>) -> StoreResult<()>;
}

/// The outbox: one delivery row per subscription the event matches. To call for every logged
/// event, after its row is inserted (at `position`), when any subscription exists; `payload` is
/// the event's data.
#[allow(clippy::too_many_arguments)]
pub fn outbox(
    store: &impl OutboxStore,
    hooks: &HookCache,
    position: i64,
    kind: &EventKind,
    conversation: Option<ConversationId>,
    message: Option<i64>,
    identity: Option<&IdentityId>,
    payload: &Value,
    at: i64,
) -> StoreResult<()> {
    let Some(conversation) = conversation else {
        return Ok(());
    };
    if hooks.contains_key(&resource_key()) {
        event_grid::acs_outbox(
            store,
            hooks,
            position,
            kind,
            conversation,
            identity,
            payload,
            at,
        )?;
    }
    kaizala::kaizala_outbox(
        store,
        hooks,
        position,
        kind,
        conversation,
        message,
        identity,
        payload,
        at,
    )
}
