//! Webhooks (Kaizala connectors/webHooks.md): the rules of who may subscribe to what, the
//! registration handshake, and the delivery worker.
//!
//! A subscription names an object (a group, an action, or a custom action package) and event
//! types. The store writes one delivery row per event and matching active subscription in the
//! event's own transaction (the outbox); [`run_delivery_worker`] posts them: per webhook and
//! conversation in order, with bounded concurrency, a timeout per attempt, exponential backoff
//! with jitter, and after the last failed try the webhook is disabled until a `PUT` re-enables
//! it. Every delivery carries `kz-callback-token` (if set), `X-Confab-Event-Id` and
//! `X-Confab-Signature: sha256=<hex HMAC-SHA256 of the body with the subscription's secret>`.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use rand::{Rng, RngCore};
use sha2::Sha256;
use time::OffsetDateTime;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::chat::require;
use crate::connector::require_permission;
use crate::error::{Error, Result};
use crate::groups::require_admin;
use crate::identity::Caller;
use crate::ids::{ConversationId, IdentityId, MessageId};
use crate::model::Role;
use crate::ports::webhooks::{
    DeliveryAttempt, EventSchema, Webhook, WebhookClient, WebhookDelivery, WebhookObject,
};
use crate::ratelimit::Operation;
use crate::Core;

/// The event types a webhook may subscribe to: the documented ones, plus the poll events
/// (polls are actions of their own type here).
pub const EVENT_TYPES: &[&str] = &[
    "ActionCreated",
    "ActionResponse",
    "SurveyCreated",
    "JobCreated",
    "PollCreated",
    "SurveyResponse",
    "JobResponse",
    "PollResponse",
    "TextMessageCreated",
    "AttachmentCreated",
    "Announcement",
    "MemberAdded",
    "MemberRemoved",
    "GroupAdded",
    "GroupRemoved",
];

/// The most webhooks on one object.
pub const MAX_WEBHOOKS_PER_OBJECT: usize = 50;
const MAX_URL: usize = 2048;
const MAX_TOKEN: usize = 1024;
const MAX_CONTEXT: usize = 4096;
/// How long a subscription lasts unless it says otherwise.
const DEFAULT_VALIDITY: time::Duration = time::Duration::days(730);

/// Webhook settings.
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// How long the receiver has to echo the validation token.
    pub handshake_timeout: Duration,
    /// How long one delivery attempt may take.
    pub attempt_timeout: Duration,
    /// Tries per delivery before the webhook is disabled.
    pub max_attempts: u32,
    /// The wait after the first failed try; each later wait is `retry_factor` times longer.
    pub retry_base: Duration,
    pub retry_factor: u32,
    /// Attempts in flight at once, over all webhooks.
    pub concurrency: usize,
    /// How often the worker looks for due deliveries when nothing wakes it.
    pub poll_interval: Duration,
    /// Refuse `http://` callback URLs.
    pub require_https: bool,
    /// How long delivered deliveries stay in the log.
    pub keep_delivered: Duration,
}

impl Default for WebhookConfig {
    /// 6 tries over about two days: waits of 1 min, 7 min, 49 min, 5.7 h and 40 h.
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(5),
            attempt_timeout: Duration::from_secs(10),
            max_attempts: 6,
            retry_base: Duration::from_secs(60),
            retry_factor: 7,
            concurrency: 16,
            poll_interval: Duration::from_secs(5),
            require_https: false,
            keep_delivered: Duration::from_secs(7 * 86_400),
        }
    }
}

impl WebhookConfig {
    /// The wait after failed try number `attempt` (1-based), ±20 % jitter.
    pub fn retry_delay(&self, attempt: u32) -> Duration {
        let factor = f64::from(self.retry_factor.max(1));
        let exponent = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let base = self.retry_base.as_secs_f64() * factor.powi(exponent);
        let jitter = rand::thread_rng().gen_range(0.8..1.2);
        Duration::try_from_secs_f64((base * jitter).min(30.0 * 86_400.0)).unwrap_or_default()
    }
}

/// The object of a subscription, as the face parsed it.
#[derive(Clone, Debug, PartialEq)]
pub enum WebhookTarget {
    Group(ConversationId),
    Action(MessageId),
    ActionPackage(String),
}

impl WebhookTarget {
    fn parts(&self) -> (WebhookObject, String) {
        match self {
            WebhookTarget::Group(id) => (WebhookObject::Group, id.to_guid()),
            WebhookTarget::Action(id) => (WebhookObject::Action, id.0.to_string()),
            WebhookTarget::ActionPackage(id) => {
                (WebhookObject::ActionPackage, id.trim().to_ascii_lowercase())
            }
        }
    }
}

/// A subscription request.
#[derive(Clone, Debug)]
pub struct Subscribe {
    pub target: WebhookTarget,
    pub event_types: Vec<String>,
    pub callback_url: String,
    pub callback_token: Option<String>,
    pub callback_context: Option<String>,
    pub validity: Option<OffsetDateTime>,
}

/// A change to a subscription; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct WebhookChange {
    pub target: Option<WebhookTarget>,
    pub event_types: Option<Vec<String>>,
    pub callback_url: Option<String>,
    pub callback_token: Option<String>,
    pub callback_context: Option<String>,
    pub validity: Option<OffsetDateTime>,
    /// `Some(true)` re-enables a disabled webhook (its failed deliveries resume).
    pub active: Option<bool>,
}

/// The canonical name of an event type (case-insensitive), if it is one.
pub fn event_type(name: &str) -> Option<&'static str> {
    EVENT_TYPES
        .iter()
        .copied()
        .find(|t| t.eq_ignore_ascii_case(name.trim()))
}

/// The event types of a subscription: each known, without repeats, at least one.
fn event_types(names: &[String]) -> Result<Vec<String>> {
    known_event_types(names, "eventTypes", event_type, || EVENT_TYPES.join(", "))
}

/// The canonical names of the event types of a subscription (`field` of the request), each
/// known to `lookup`, without repeats, at least one; `supported` lists them for the error.
pub(crate) fn known_event_types(
    names: &[String],
    field: &str,
    lookup: impl Fn(&str) -> Option<&'static str>,
    supported: impl Fn() -> String,
) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for name in names {
        let known = lookup(name).ok_or_else(|| {
            Error::invalid(
                format!("Unknown event type '{name}'. Supported: {}.", supported()),
                field,
            )
        })?;
        if !out.iter().any(|t| t == known) {
            out.push(known.to_owned());
        }
    }
    if out.is_empty() {
        return Err(Error::invalid(
            format!("{field} must name at least one event type."),
            field,
        ));
    }
    Ok(out)
}

/// The event type a subscription gets `specific` as: itself if subscribed to, else the generic
/// `ActionCreated`/`ActionResponse` it falls under.
pub fn subscribed_as<'a>(
    subscribed: &[String],
    specific: &'a str,
    generic: Option<&'a str>,
) -> Option<&'a str> {
    if subscribed.iter().any(|t| t == specific) {
        return Some(specific);
    }
    generic.filter(|g| subscribed.iter().any(|t| t == g))
}

/// The webhook event types of an action created / responded to, by its type name: the
/// specific one and the generic one it also counts as.
pub fn action_event_types(type_name: &str, response: bool) -> (&'static str, Option<&'static str>) {
    let generic = if response {
        "ActionResponse"
    } else {
        "ActionCreated"
    };
    let specific = match (type_name.to_ascii_lowercase().as_str(), response) {
        ("survey", false) => "SurveyCreated",
        ("survey", true) => "SurveyResponse",
        ("job", false) => "JobCreated",
        ("job", true) => "JobResponse",
        ("poll", false) => "PollCreated",
        ("poll", true) => "PollResponse",
        ("announcement", false) => "Announcement",
        ("image" | "photo" | "video" | "audio" | "document" | "album", false) => {
            "AttachmentCreated"
        }
        _ => return (generic, None),
    };
    (specific, Some(generic))
}

pub(crate) fn check_url(url: &str, require_https: bool, field: &str) -> Result<String> {
    let url = url.trim();
    let lower = url.to_ascii_lowercase();
    let https = lower.starts_with("https://");
    let http = lower.starts_with("http://");
    let host_part = url.split_once("://").map(|(_, rest)| rest).unwrap_or("");
    if url.len() > MAX_URL
        || !(https || http)
        || host_part.is_empty()
        || host_part.starts_with('/')
        || url.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(Error::invalid(
            format!("{field} must be an absolute http(s) URL."),
            field,
        ));
    }
    if require_https && !https {
        return Err(Error::invalid(
            format!("{field} must be an https URL on this server."),
            field,
        ));
    }
    Ok(url.to_owned())
}

fn check_len(value: Option<String>, max: usize, name: &str) -> Result<Option<String>> {
    match value {
        Some(v) if v.len() > max => Err(Error::invalid(
            format!("{name} must have at most {max} characters."),
            name,
        )),
        other => Ok(other),
    }
}

/// `HMAC-SHA256(secret, body)` as lower-case hex: the `X-Confab-Signature` value after
/// `sha256=`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub(crate) fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn not_found() -> Error {
    Error::NotFound("The webhook does not exist.".into())
}

impl Core {
    pub(crate) fn webhook_client(&self) -> Result<&Arc<dyn WebhookClient>> {
        self.webhook_client
            .as_ref()
            .ok_or_else(|| Error::Unavailable("Webhooks are not enabled on this server.".into()))
    }

    pub fn webhook_config(&self) -> &WebhookConfig {
        &self.webhook_config
    }

    /// Whether the caller may subscribe to (and see the subscriptions of) `target`: an admin
    /// of the group; a member of the action's group; any connector caller for a package.
    async fn check_target(&self, caller: &Caller, target: &WebhookTarget) -> Result<()> {
        match target {
            WebhookTarget::Group(id) => {
                let group = self.group_as_member(caller, *id).await?;
                require_admin(&group, "manage the group's webhooks")
            }
            WebhookTarget::Action(action) => {
                let conversation = self
                    .store
                    .action_conversation(*action)
                    .await?
                    .ok_or_else(|| Error::NotFound("The action does not exist.".into()))?;
                let group = self.group_as_member(caller, conversation).await?;
                require(
                    group.viewer_role != Some(Role::Subscriber),
                    "Subscribers may not register webhooks.",
                )
            }
            WebhookTarget::ActionPackage(id) => {
                if id.trim().is_empty() || id.len() > 256 {
                    return Err(Error::invalid(
                        "objectId must name an action package.",
                        "objectId",
                    ));
                }
                require(
                    caller.connector.is_some(),
                    "Only connector applications may subscribe to action packages.",
                )
            }
        }
    }

    /// `GET url?validationToken=X` must answer X (plain text) within the handshake timeout.
    async fn handshake(&self, url: &str) -> Result<()> {
        let client = self.webhook_client()?;
        let token = new_secret();
        let separator = if url.contains('?') { '&' } else { '?' };
        let target = format!("{url}{separator}validationToken={token}");
        let timeout = self.webhook_config.handshake_timeout;
        let answer = client
            .exchange("GET", &target, Vec::new(), Vec::new(), timeout)
            .await;
        let failure = match answer {
            Ok(a) if (200..300).contains(&a.status) && a.body.trim() == token => return Ok(()),
            Ok(a) if !(200..300).contains(&a.status) => format!("it answered HTTP {}", a.status),
            Ok(_) => "it did not echo the validation token".to_owned(),
            Err(err) => err,
        };
        Err(Error::invalid(
            format!(
                "The callback URL failed validation: a GET with a validationToken must answer \
                 the token as plain text within {} s ({failure}).",
                timeout.as_secs_f64()
            ),
            "callBackUrl",
        ))
    }

    /// Registers a webhook after the callback URL passed the validation handshake.
    pub async fn subscribe_webhook(&self, caller: &Caller, request: Subscribe) -> Result<Webhook> {
        self.throttle_connector_call(caller, Operation::Other)?;
        require_permission(caller, "webhook", "managing webhooks")?;
        self.webhook_client()?;
        let events = event_types(&request.event_types)?;
        let url = check_url(
            &request.callback_url,
            self.webhook_config.require_https,
            "callBackUrl",
        )?;
        let token = check_len(request.callback_token, MAX_TOKEN, "callBackToken")?;
        let context = check_len(request.callback_context, MAX_CONTEXT, "callBackContext")?;
        let now = self.clock.now();
        let validity = request.validity.unwrap_or(now + DEFAULT_VALIDITY);
        if validity <= now {
            return Err(Error::invalid(
                "validity must be in the future.",
                "validity",
            ));
        }
        self.check_target(caller, &request.target).await?;
        let (object, object_id) = request.target.parts();
        let existing = self.store.list_webhooks(object, &object_id).await?;
        if existing.len() >= MAX_WEBHOOKS_PER_OBJECT {
            return Err(Error::Conflict(format!(
                "An object can have at most {MAX_WEBHOOKS_PER_OBJECT} webhooks."
            )));
        }
        self.handshake(&url).await?;
        let webhook = Webhook {
            id: uuid::Uuid::new_v4().to_string(),
            object,
            object_id,
            event_types: events,
            callback_url: url,
            callback_token: token,
            callback_context: context,
            secret: new_secret(),
            owner: Some(caller.identity.clone()),
            schema: EventSchema::Kaizala,
            name: None,
            threads: Vec::new(),
            validity,
            active: true,
            created_on: now,
            disabled_reason: None,
        };
        self.store.create_webhook(webhook.clone()).await?;
        Ok(webhook)
    }

    /// The webhooks on an object the caller may see: all of them for whoever may subscribe to
    /// it.
    pub async fn list_webhooks(
        &self,
        caller: &Caller,
        target: WebhookTarget,
    ) -> Result<Vec<Webhook>> {
        self.throttle_connector_call(caller, Operation::Other)?;
        require_permission(caller, "webhook", "managing webhooks")?;
        self.check_target(caller, &target).await?;
        let (object, object_id) = target.parts();
        let mut list = self.store.list_webhooks(object, &object_id).await?;
        if object == WebhookObject::ActionPackage {
            list.retain(|w| w.owner.as_ref() == Some(&caller.identity));
        }
        Ok(list)
    }

    /// A webhook the caller may manage: its owner, or an admin of its group.
    async fn manageable_webhook(&self, caller: &Caller, id: &str) -> Result<Webhook> {
        let webhook = self.store.get_webhook(id).await?.ok_or_else(not_found)?;
        if webhook.owner.as_ref() == Some(&caller.identity) {
            return Ok(webhook);
        }
        if webhook.object == WebhookObject::Group {
            if let Some(group) = ConversationId::parse(&webhook.object_id) {
                if self
                    .check_target(caller, &WebhookTarget::Group(group))
                    .await
                    .is_ok()
                {
                    return Ok(webhook);
                }
            }
        }
        Err(not_found())
    }

    /// Changes a webhook; a changed callback URL is validated again. `active: true`
    /// re-enables it.
    pub async fn update_webhook(
        &self,
        caller: &Caller,
        id: &str,
        change: WebhookChange,
    ) -> Result<Webhook> {
        self.throttle_connector_call(caller, Operation::Other)?;
        require_permission(caller, "webhook", "managing webhooks")?;
        let mut webhook = self.manageable_webhook(caller, id).await?;
        if let Some(target) = change.target {
            self.check_target(caller, &target).await?;
            let (object, object_id) = target.parts();
            webhook.object = object;
            webhook.object_id = object_id;
        }
        if let Some(types) = change.event_types {
            webhook.event_types = event_types(&types)?;
        }
        if let Some(url) = change.callback_url {
            let url = check_url(&url, self.webhook_config.require_https, "callBackUrl")?;
            if url != webhook.callback_url {
                self.handshake(&url).await?;
            }
            webhook.callback_url = url;
        }
        if let Some(token) = check_len(change.callback_token, MAX_TOKEN, "callBackToken")? {
            webhook.callback_token = Some(token);
        }
        if let Some(context) = check_len(change.callback_context, MAX_CONTEXT, "callBackContext")? {
            webhook.callback_context = Some(context);
        }
        if let Some(validity) = change.validity {
            if validity <= self.clock.now() {
                return Err(Error::invalid(
                    "validity must be in the future.",
                    "validity",
                ));
            }
            webhook.validity = validity;
        }
        let resume = change.active == Some(true) && !webhook.active;
        if let Some(active) = change.active {
            webhook.active = active;
            if active {
                webhook.disabled_reason = None;
            } else {
                webhook.disabled_reason = Some("disabled by its owner".into());
            }
        }
        self.store.update_webhook(webhook.clone(), resume).await?;
        Ok(webhook)
    }

    pub async fn delete_webhook(&self, caller: &Caller, id: &str) -> Result<()> {
        self.throttle_connector_call(caller, Operation::Other)?;
        require_permission(caller, "webhook", "managing webhooks")?;
        let webhook = self.manageable_webhook(caller, id).await?;
        Ok(self.store.delete_webhook(&webhook.id).await?)
    }

    /// A webhook with its newest deliveries (admin API).
    pub async fn webhook_deliveries(
        &self,
        id: &str,
        before: Option<i64>,
        limit: usize,
    ) -> Result<(Webhook, Vec<WebhookDelivery>)> {
        let webhook = self.store.get_webhook(id).await?.ok_or_else(not_found)?;
        let deliveries = self
            .store
            .list_deliveries(id, before, limit.clamp(1, 1000))
            .await?;
        Ok((webhook, deliveries))
    }

    /// Drops delivered deliveries older than `keep_delivered` from the log (a sweep's worth);
    /// answers how many went.
    pub async fn purge_webhook_deliveries(&self) -> Result<usize> {
        let keep = time::Duration::try_from(self.webhook_config.keep_delivered)
            .unwrap_or(time::Duration::days(7));
        Ok(self
            .store
            .purge_deliveries(self.clock.now() - keep, 10_000)
            .await?)
    }

    /// Queues a delivery again, due now (admin API).
    pub async fn redeliver_webhook(&self, id: &str, delivery: i64) -> Result<WebhookDelivery> {
        let delivery = self
            .store
            .redeliver(id, delivery)
            .await
            .map_err(|err| match err {
                crate::ports::StoreError::NotFound => {
                    Error::NotFound("The delivery does not exist.".into())
                }
                other => other.into(),
            })?;
        self.store.delivery_wakeup().notify_one();
        Ok(delivery)
    }
}

/// A delivery as both admin APIs show it in a delivery log.
pub fn delivery_view(d: &WebhookDelivery) -> serde_json::Value {
    let time = |t: Option<OffsetDateTime>| {
        t.and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
    };
    serde_json::json!({
        "id": d.id,
        "eventId": d.event_id,
        "eventType": d.event_type,
        "status": d.status.as_str(),
        "attempts": d.attempts,
        "lastStatus": d.last_status,
        "lastError": d.last_error,
        "createdOn": time(Some(d.created_on)),
        "lastAttemptOn": time(d.last_attempt_on),
        "nextAttemptOn": time(Some(d.next_attempt_on)),
        "deliveredOn": time(d.delivered_on),
        "payload": serde_json::from_str::<serde_json::Value>(&d.payload)
            .unwrap_or(serde_json::Value::Null),
    })
}

/// The Kaizala GUID of a member that is a phone number (as the Kaizala face shows member ids;
/// the same tagging as `confab_kaizala::wire::member_id`), else the raw identity.
pub fn kaizala_member_id(identity: &IdentityId) -> String {
    const MEMBER_TAG: u64 = 0x4b5a_4d42_0000_8000;
    match identity
        .phone_number()
        .and_then(|n| n.trim_start_matches('+').parse::<u64>().ok())
    {
        Some(number) => tagged(MEMBER_TAG, number),
        None => identity.to_string(),
    }
}

/// The Kaizala `actionId` / `referenceId` of a message (as `confab_kaizala::wire::reference_id`).
pub fn kaizala_reference_id(message: i64) -> String {
    const REFERENCE_TAG: u64 = 0x4b5a_4d53_0000_8000;
    tagged(REFERENCE_TAG, u64::try_from(message).unwrap_or(0))
}

fn tagged(tag: u64, payload: u64) -> String {
    const VARIANT: u64 = 0x8000_0000_0000_0000;
    const PAYLOAD: u64 = 0x3fff_ffff_ffff_ffff;
    let value = (u128::from(tag) << 64) | u128::from(VARIANT | (payload & PAYLOAD));
    uuid::Uuid::from_u128(value).hyphenated().to_string()
}

/// The stable id of the `index`th webhook event made from the event at log position
/// `position` (one logged event may make several, e.g. one `MemberAdded` per member): a GUID,
/// the same for every retry and every subscription.
pub fn event_id(position: i64, index: u16) -> String {
    const EVENT_TAG: u64 = 0x4b5a_4556_0000_8000;
    tagged(
        EVENT_TAG | (u64::from(index) << 16),
        u64::try_from(position).unwrap_or(0),
    )
}

/// The stable id of an ACS event: the `change`th change made by the event at log position
/// `position`, thread-level (`recipient` 0) or for its `recipient`th recipient.
pub fn acs_event_id(position: i64, change: u16, recipient: u16) -> String {
    const ACS_EVENT_TAG: u64 = 0x4143_0000_0000_8000;
    tagged(
        ACS_EVENT_TAG | (u64::from(change) << 32) | (u64::from(recipient) << 16),
        u64::try_from(position).unwrap_or(0),
    )
}

/// Runs the delivery worker until `stop` turns true; in-flight attempts then get `grace` to
/// finish (unfinished ones stay pending and go out after a restart).
pub async fn run_delivery_worker(
    core: Arc<Core>,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
) {
    let Some(client) = core.webhook_client.clone() else {
        return;
    };
    let config = core.webhook_config.clone();
    let wake = core.store.delivery_wakeup();
    let claims = core.store.claims_due_deliveries();
    let slots = Arc::new(Semaphore::new(config.concurrency.max(1)));
    let in_flight: Arc<Mutex<HashSet<(String, String)>>> = Arc::default();
    let mut tasks = JoinSet::new();
    loop {
        if *stop.borrow() {
            break;
        }
        while tasks.try_join_next().is_some() {}
        let now = core.clock.now();
        // A claiming store holds back what it answers: ask for what can start now, and nothing
        // while every slot is busy (a finishing attempt wakes the worker).
        let batch = if claims {
            slots.available_permits()
        } else {
            config.concurrency.max(1).saturating_mul(4)
        };
        let due = if batch == 0 {
            Ok(Vec::new())
        } else {
            core.store.due_deliveries(now, batch).await
        };
        match due {
            Ok(due) => {
                for delivery in due {
                    let key = (delivery.webhook.clone(), delivery.order_key.clone());
                    if in_flight.lock().contains(&key) {
                        continue;
                    }
                    let Ok(permit) = slots.clone().try_acquire_owned() else {
                        break;
                    };
                    in_flight.lock().insert(key.clone());
                    let core = core.clone();
                    let client = client.clone();
                    let config = config.clone();
                    let in_flight = in_flight.clone();
                    let wake = wake.clone();
                    tasks.spawn(async move {
                        attempt(&core, client.as_ref(), &config, delivery).await;
                        in_flight.lock().remove(&key);
                        drop(permit);
                        wake.notify_one();
                    });
                }
            }
            Err(err) => tracing::warn!(error = %err, "reading due webhook deliveries failed"),
        }
        // Until the next retry falls due. Whatever is due now was claimed, or is in flight, or
        // waits for a free slot: a finishing attempt wakes the worker, as does a commit that
        // recorded deliveries.
        let now = core.clock.now();
        let wait = match core.store.next_delivery_due().await {
            Ok(Some(at)) if at > now => Duration::try_from(at - now)
                .unwrap_or_default()
                .min(config.poll_interval),
            _ => config.poll_interval,
        }
        .max(Duration::from_millis(1));
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => {}
        }
    }
    let finish = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(grace, finish).await.is_err() {
        tasks.abort_all();
    }
}

/// The headers of a delivery that its envelope calls for.
fn schema_headers(webhook: &Webhook, delivery: &WebhookDelivery) -> Vec<(String, String)> {
    let header = |name: &str, value: String| (name.to_owned(), value);
    match webhook.schema {
        EventSchema::Kaizala => {
            let mut headers = vec![header("content-type", "application/json".into())];
            if let Some(token) = &webhook.callback_token {
                headers.push(header("kz-callback-token", token.clone()));
            }
            headers
        }
        EventSchema::EventGrid => vec![
            header("content-type", "application/json".into()),
            header("aeg-event-type", "Notification".into()),
            header(
                "aeg-subscription-name",
                webhook
                    .name
                    .as_deref()
                    .unwrap_or(&webhook.id)
                    .to_ascii_uppercase(),
            ),
            header("aeg-delivery-count", delivery.attempts.to_string()),
            header("aeg-data-version", "1.0".into()),
            header("aeg-metadata-version", "1".into()),
        ],
        EventSchema::CloudEvents => vec![header(
            "content-type",
            "application/cloudevents+json; charset=utf-8".into(),
        )],
    }
}

/// One attempt at one delivery, recorded.
async fn attempt(
    core: &Core,
    client: &dyn WebhookClient,
    config: &WebhookConfig,
    delivery: WebhookDelivery,
) {
    let webhook = match core.store.get_webhook(&delivery.webhook).await {
        Ok(Some(w)) if w.active => w,
        Ok(_) => return,
        Err(err) => {
            tracing::warn!(error = %err, "reading a webhook failed");
            return;
        }
    };
    let body = delivery.payload.clone().into_bytes();
    let mut headers = vec![
        (
            "x-confab-signature".to_owned(),
            format!("sha256={}", signature(&webhook.secret, &body)),
        ),
        ("x-confab-event-id".to_owned(), delivery.event_id.clone()),
        ("x-confab-delivery-id".to_owned(), delivery.id.to_string()),
    ];
    headers.extend(schema_headers(&webhook, &delivery));
    let result = client
        .post(&webhook.callback_url, headers, body, config.attempt_timeout)
        .await;
    let at = core.clock.now();
    let (delivered, status, error) = match result {
        Ok(status) if (200..300).contains(&status) => (true, Some(status), None),
        Ok(status) => (false, Some(status), Some(format!("HTTP {status}"))),
        Err(err) => (false, None, Some(err)),
    };
    let tries = delivery
        .attempts
        .saturating_sub(delivery.round_start)
        .saturating_add(1);
    let retry_at =
        (!delivered && tries < config.max_attempts).then(|| at + config.retry_delay(tries));
    if !delivered {
        tracing::debug!(
            webhook = %webhook.id,
            delivery = delivery.id,
            tries,
            error = error.as_deref().unwrap_or(""),
            "webhook delivery failed"
        );
        if retry_at.is_none() {
            tracing::warn!(webhook = %webhook.id, "webhook disabled after its last failed try");
        }
    }
    let record = DeliveryAttempt {
        delivery: delivery.id,
        webhook: webhook.id.clone(),
        at,
        delivered,
        status,
        error,
        retry_at,
    };
    if let Err(err) = core.store.record_delivery_attempt(record).await {
        tracing::warn!(error = %err, "recording a webhook attempt failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_are_checked_and_canonical() {
        assert_eq!(
            event_types(&["textmessagecreated".into(), "TextMessageCreated".into()]),
            Ok(vec!["TextMessageCreated".to_owned()])
        );
        assert!(event_types(&["Nope".into()]).is_err());
        assert!(event_types(&[]).is_err());
    }

    #[test]
    fn urls_and_signatures() {
        assert!(check_url("http://127.0.0.1:1/x", false, "u").is_ok());
        assert!(check_url("http://127.0.0.1:1/x", true, "u").is_err());
        assert!(check_url("ftp://x", false, "u").is_err());
        assert!(check_url("https://", false, "u").is_err());
        // RFC 4231 test case 2.
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").expect("key");
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            mac.finalize()
                .into_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        assert!(signature("Jefe", b"what do ya want for nothing?").starts_with("5bdcc146"));
    }

    #[test]
    fn retries_grow_to_about_two_days() {
        let config = WebhookConfig::default();
        let total: f64 = (1..config.max_attempts)
            .map(|n| {
                config.retry_base.as_secs_f64() * f64::from(config.retry_factor).powi(n as i32 - 1)
            })
            .sum();
        assert!((40.0 * 3600.0..56.0 * 3600.0).contains(&total), "{total}");
        let first = config.retry_delay(1).as_secs_f64();
        assert!((48.0..72.0).contains(&first));
        assert_eq!(
            action_event_types("Survey", true),
            ("SurveyResponse", Some("ActionResponse"))
        );
        assert_eq!(
            action_event_types("com.x.pkg", false),
            ("ActionCreated", None)
        );
    }
}
