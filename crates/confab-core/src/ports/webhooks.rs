//! The ports of webhooks: the subscriptions and their delivery outbox ([`WebhookStore`]), and
//! the outbound HTTP client that calls receivers ([`WebhookClient`]).
//!
//! The store writes one delivery row per matching active subscription in the same transaction
//! as the event it is about (the transactional outbox); the delivery worker
//! (`crate::webhooks`) reads due rows, posts them and records each attempt.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreResult;
use crate::ids::{ConversationId, IdentityId, MessageId};

/// What a webhook subscribes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WebhookObject {
    /// A group (conversation): its id is the conversation's GUID.
    Group,
    /// One action: its id is the action's message id (decimal).
    Action,
    /// Every action of a custom package: its id is the package id (lower-cased).
    ActionPackage,
    /// Every conversation of the server (ACS event subscriptions, made by an admin): its id is
    /// empty; a subscription may narrow itself to some threads.
    Resource,
}

impl WebhookObject {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookObject::Group => "Group",
            WebhookObject::Action => "Action",
            WebhookObject::ActionPackage => "ActionPackage",
            WebhookObject::Resource => "Resource",
        }
    }

    /// Case-insensitive.
    pub fn parse(text: &str) -> Option<Self> {
        [
            WebhookObject::Group,
            WebhookObject::Action,
            WebhookObject::ActionPackage,
            WebhookObject::Resource,
        ]
        .into_iter()
        .find(|o| o.as_str().eq_ignore_ascii_case(text.trim()))
    }
}

/// The envelope a subscription's events are delivered in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventSchema {
    /// The Kaizala webhook envelope (connectors/EventSchema.md).
    Kaizala,
    /// Event Grid: a JSON array of one event, `aeg-*` headers.
    EventGrid,
    /// CloudEvents 1.0, structured mode (`application/cloudevents+json`).
    CloudEvents,
}

impl EventSchema {
    /// The name in the store and on the wire (Event Grid's `eventDeliverySchema` names).
    pub fn as_str(self) -> &'static str {
        match self {
            EventSchema::Kaizala => "Kaizala",
            EventSchema::EventGrid => "EventGridSchema",
            EventSchema::CloudEvents => "CloudEventSchemaV1_0",
        }
    }

    /// Case-insensitive.
    pub fn parse(text: &str) -> Option<Self> {
        [
            EventSchema::Kaizala,
            EventSchema::EventGrid,
            EventSchema::CloudEvents,
        ]
        .into_iter()
        .find(|s| s.as_str().eq_ignore_ascii_case(text.trim()))
    }
}

/// A webhook subscription as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct Webhook {
    /// A GUID.
    pub id: String,
    pub object: WebhookObject,
    /// The canonical object id (see [`WebhookObject`]).
    pub object_id: String,
    /// Documented event type names (`TextMessageCreated`, …; ACS ones without their
    /// `Microsoft.Communication.` prefix).
    pub event_types: Vec<String>,
    pub schema: EventSchema,
    /// A name for people (ACS event subscriptions; `aeg-subscription-name`).
    pub name: Option<String>,
    /// Only events of these conversations (ACS event subscriptions); empty: all of them.
    pub threads: Vec<ConversationId>,
    pub callback_url: String,
    pub callback_token: Option<String>,
    pub callback_context: Option<String>,
    /// The per-subscription signing secret (`X-Confab-Signature`).
    pub secret: String,
    /// Who registered it; `None` for an admin's (ACS event subscriptions).
    pub owner: Option<IdentityId>,
    /// Until when it delivers.
    pub validity: OffsetDateTime,
    /// False once disabled (deliveries failing past the last retry); `PUT` re-enables.
    pub active: bool,
    pub created_on: OffsetDateTime,
    /// Why it was disabled, if it was.
    pub disabled_reason: Option<String>,
}

/// Where a delivery is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// To be (re)tried at `next_attempt_on`.
    Pending,
    /// A receiver answered 2xx.
    Delivered,
    /// Every retry failed; the webhook was disabled. Re-enabling it resumes the delivery.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            DeliveryStatus::Pending,
            DeliveryStatus::Delivered,
            DeliveryStatus::Failed,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// One event to deliver to one webhook, with its attempts so far.
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookDelivery {
    pub id: i64,
    pub webhook: String,
    /// The event's stable id (the `eventId` of the envelope; the same for every retry and
    /// every subscription).
    pub event_id: String,
    pub event_type: String,
    /// Deliveries of one webhook with the same key go out in id order (the conversation).
    pub order_key: String,
    /// The envelope, JSON.
    pub payload: String,
    pub status: DeliveryStatus,
    /// Attempts made, in all.
    pub attempts: u32,
    /// Attempts made before the current round of retries (a re-enable or a manual
    /// redelivery starts a new round).
    pub round_start: u32,
    pub next_attempt_on: OffsetDateTime,
    pub last_attempt_on: Option<OffsetDateTime>,
    /// The HTTP status of the last answer, if there was one.
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub created_on: OffsetDateTime,
    pub delivered_on: Option<OffsetDateTime>,
}

/// How one attempt went, to record.
#[derive(Clone, Debug, PartialEq)]
pub struct DeliveryAttempt {
    pub delivery: i64,
    pub webhook: String,
    pub at: OffsetDateTime,
    pub delivered: bool,
    pub status: Option<u16>,
    pub error: Option<String>,
    /// When to try again; `None` after a failure: that was the last try, the delivery fails
    /// and the webhook is disabled.
    pub retry_at: Option<OffsetDateTime>,
}

/// Storage of webhook subscriptions and of their deliveries.
#[async_trait]
pub trait WebhookStore: Send + Sync + 'static {
    async fn create_webhook(&self, webhook: Webhook) -> StoreResult<()>;
    async fn get_webhook(&self, id: &str) -> StoreResult<Option<Webhook>>;
    async fn list_webhooks(
        &self,
        object: WebhookObject,
        object_id: &str,
    ) -> StoreResult<Vec<Webhook>>;
    /// Replaces the subscription (`NotFound` if unknown). `resume`: it is being re-enabled,
    /// so its failed deliveries become pending again (a new round of retries, in order).
    async fn update_webhook(&self, webhook: Webhook, resume: bool) -> StoreResult<()>;
    /// Deletes the subscription and its deliveries (`NotFound` if unknown).
    async fn delete_webhook(&self, id: &str) -> StoreResult<()>;
    /// The pending deliveries due at `now` that are first in line (the oldest pending one of
    /// their webhook and order key), of active webhooks, most overdue first, at most `limit`.
    async fn due_deliveries(
        &self,
        now: OffsetDateTime,
        limit: usize,
    ) -> StoreResult<Vec<WebhookDelivery>>;
    /// Whether `due_deliveries` claims what it answers: holds those deliveries back from every
    /// caller (the delivery workers of other nodes sharing the store) until their attempt is
    /// recorded or a lease runs out. A worker then asks for no more than it can start at once,
    /// since what it leaves would wait for the lease. A store that does not claim answers the
    /// deliveries in flight again, which the worker skips.
    fn claims_due_deliveries(&self) -> bool {
        false
    }
    /// When the next pending delivery of an active webhook that is first in line is due, if
    /// any is.
    async fn next_delivery_due(&self) -> StoreResult<Option<OffsetDateTime>>;
    /// Records an attempt; a last failure disables the webhook in the same transaction.
    async fn record_delivery_attempt(&self, attempt: DeliveryAttempt) -> StoreResult<()>;
    /// A webhook's deliveries, newest first, with an id below `before` if given.
    async fn list_deliveries(
        &self,
        webhook: &str,
        before: Option<i64>,
        limit: usize,
    ) -> StoreResult<Vec<WebhookDelivery>>;
    /// Makes a delivery pending again, due now, in a new round of retries (`NotFound` unless
    /// it is one of `webhook`'s).
    async fn redeliver(&self, webhook: &str, delivery: i64) -> StoreResult<WebhookDelivery>;
    /// Deletes, at most `max_rows` of them, the delivered deliveries created before
    /// `older_than`; answers how many went.
    async fn purge_deliveries(
        &self,
        older_than: OffsetDateTime,
        max_rows: usize,
    ) -> StoreResult<usize>;
    /// The conversation of an action (its message id), if it is a live action.
    async fn action_conversation(&self, action: MessageId) -> StoreResult<Option<ConversationId>>;
    /// Woken after each commit that recorded deliveries (and by subscription changes).
    fn delivery_wakeup(&self) -> Arc<tokio::sync::Notify>;
}

/// Why an outbound call failed (no answer at all).
pub type ClientError = String;

/// An answer whose details matter (the validation handshakes).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Exchange {
    pub status: u16,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    /// At most a few KiB of it.
    pub body: String,
}

impl Exchange {
    /// The first value of a header (`name` lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The outbound HTTP client webhooks are delivered with.
#[async_trait]
pub trait WebhookClient: Send + Sync + 'static {
    /// `POST url` with a JSON body and these extra headers; answers the status.
    async fn post(
        &self,
        url: &str,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<u16, ClientError>;
    /// Any request (`method` upper-case, the query already in `url`), answering status,
    /// headers and the start of the body: the validation handshakes.
    async fn exchange(
        &self,
        method: &str,
        url: &str,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Exchange, ClientError>;
}
