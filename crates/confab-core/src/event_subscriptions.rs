//! ACS event subscriptions: an admin subscribes an endpoint to the chat events of Event Grid
//! (reference/NOTES.md), in the Event Grid schema or as CloudEvents 1.0, optionally for some
//! threads only.
//!
//! They are webhooks on the object [`WebhookObject::Resource`], so the same outbox, delivery
//! worker, retries, signatures, delivery log and redelivery serve them (see `crate::webhooks`).
//! An endpoint is validated before the subscription exists: Event Grid posts a
//! `SubscriptionValidationEvent` whose `validationCode` must come back as
//! `{"validationResponse": code}`; CloudEvents uses the abuse-protection handshake of the
//! CloudEvents webhook spec (an `OPTIONS` with `WebHook-Request-Origin`, answered with
//! `WebHook-Allowed-Origin`).

use serde_json::json;
use time::format_description::well_known::Rfc3339;

use crate::error::{Error, Result};
use crate::ids::ConversationId;
use crate::ports::webhooks::{EventSchema, Webhook, WebhookObject};
use crate::webhooks::{check_url, known_event_types, new_secret};
use crate::Core;

/// The prefix of every ACS event type on the wire.
pub const EVENT_TYPE_PREFIX: &str = "Microsoft.Communication.";

/// The chat event types, thread-level first, without their prefix.
pub const ACS_EVENT_TYPES: &[&str] = &[
    "ChatThreadCreated",
    "ChatThreadDeleted",
    "ChatThreadParticipantAdded",
    "ChatThreadParticipantRemoved",
    "ChatMessageReceivedInThread",
    "ChatThreadPropertiesUpdated",
    "ChatMessageEditedInThread",
    "ChatMessageDeletedInThread",
    "ChatMessageReceived",
    "ChatMessageEdited",
    "ChatMessageDeleted",
    "ChatThreadCreatedWithUser",
    "ChatThreadWithUserDeleted",
    "ChatThreadPropertiesUpdatedPerUser",
    "ChatParticipantAddedToThreadWithUser",
    "ChatParticipantRemovedFromThreadWithUser",
];

/// The most event subscriptions on one server.
pub const MAX_EVENT_SUBSCRIPTIONS: usize = 100;
/// The most threads one subscription may name.
pub const MAX_FILTER_THREADS: usize = 1000;
const MAX_NAME: usize = 64;
/// Admin subscriptions last until deleted.
const FOREVER: time::Duration = time::Duration::days(365 * 100);

/// A new subscription.
#[derive(Clone, Debug, Default)]
pub struct NewEventSubscription {
    pub name: Option<String>,
    pub endpoint_url: String,
    /// Default: Event Grid.
    pub schema: Option<EventSchema>,
    /// Default: every chat event type.
    pub event_types: Option<Vec<String>>,
    /// Thread ids (ACS `19:…@thread.v2` or GUID); default: every thread.
    pub threads: Option<Vec<String>>,
}

/// A change to a subscription; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct EventSubscriptionChange {
    pub endpoint_url: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub threads: Option<Vec<String>>,
    /// `Some(true)` re-enables a disabled subscription (its failed deliveries resume).
    pub enabled: Option<bool>,
}

/// The canonical (prefix-less) name of an ACS event type, given with or without its prefix,
/// in any case.
pub fn acs_event_type(name: &str) -> Option<&'static str> {
    let name = name.trim();
    let short = match name.get(..EVENT_TYPE_PREFIX.len()) {
        Some(head) if head.eq_ignore_ascii_case(EVENT_TYPE_PREFIX) => {
            &name[EVENT_TYPE_PREFIX.len()..]
        }
        _ => name,
    };
    ACS_EVENT_TYPES
        .iter()
        .copied()
        .find(|t| t.eq_ignore_ascii_case(short))
}

fn event_types(names: Option<Vec<String>>) -> Result<Vec<String>> {
    let Some(names) = names else {
        return Ok(ACS_EVENT_TYPES.iter().map(|t| (*t).to_owned()).collect());
    };
    known_event_types(&names, "includedEventTypes", acs_event_type, || {
        format!(
            "{EVENT_TYPE_PREFIX}{}",
            ACS_EVENT_TYPES.join(&format!(", {EVENT_TYPE_PREFIX}"))
        )
    })
}

fn threads(ids: Option<Vec<String>>) -> Result<Vec<ConversationId>> {
    let ids = ids.unwrap_or_default();
    if ids.len() > MAX_FILTER_THREADS {
        return Err(Error::invalid(
            format!("threadIds may name at most {MAX_FILTER_THREADS} threads."),
            "threadIds",
        ));
    }
    let mut out: Vec<ConversationId> = Vec::new();
    for id in &ids {
        let thread = ConversationId::parse(id.trim()).ok_or_else(|| {
            Error::invalid(format!("'{id}' is not a valid thread id."), "threadIds")
        })?;
        if !out.contains(&thread) {
            out.push(thread);
        }
    }
    Ok(out)
}

fn name(name: Option<String>, id: &str) -> Result<String> {
    let name = name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
    match name {
        None => Ok(format!("sub-{}", &id[..8.min(id.len())])),
        Some(n)
            if n.len() <= MAX_NAME && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') =>
        {
            Ok(n)
        }
        Some(_) => Err(Error::invalid(
            format!("name must be 1 to {MAX_NAME} letters, digits or hyphens."),
            "name",
        )),
    }
}

fn not_found() -> Error {
    Error::NotFound("The event subscription does not exist.".into())
}

impl Core {
    /// Validates the endpoint, then records the subscription.
    pub async fn create_event_subscription(
        &self,
        request: NewEventSubscription,
    ) -> Result<Webhook> {
        self.webhook_client()?;
        let id = uuid::Uuid::new_v4().to_string();
        let name = name(request.name, &id)?;
        let url = check_url(
            &request.endpoint_url,
            self.webhook_config.require_https,
            "endpointUrl",
        )?;
        let schema = request.schema.unwrap_or(EventSchema::EventGrid);
        if schema == EventSchema::Kaizala {
            return Err(Error::invalid(
                "eventDeliverySchema must be EventGridSchema or CloudEventSchemaV1_0.",
                "eventDeliverySchema",
            ));
        }
        let types = event_types(request.event_types)?;
        let threads = threads(request.threads)?;
        let existing = self
            .store
            .list_webhooks(WebhookObject::Resource, "")
            .await?;
        if existing.len() >= MAX_EVENT_SUBSCRIPTIONS {
            return Err(Error::Conflict(format!(
                "A server can have at most {MAX_EVENT_SUBSCRIPTIONS} event subscriptions."
            )));
        }
        if existing
            .iter()
            .any(|s| s.name.as_deref() == Some(name.as_str()))
        {
            return Err(Error::Conflict(format!(
                "An event subscription named '{name}' already exists."
            )));
        }
        self.validate_endpoint(schema, &url).await?;
        let now = self.clock.now();
        let subscription = Webhook {
            id,
            object: WebhookObject::Resource,
            object_id: String::new(),
            event_types: types,
            schema,
            name: Some(name),
            threads,
            callback_url: url,
            callback_token: None,
            callback_context: None,
            secret: new_secret(),
            owner: None,
            validity: now + FOREVER,
            active: true,
            created_on: now,
            disabled_reason: None,
        };
        self.store.create_webhook(subscription.clone()).await?;
        Ok(subscription)
    }

    /// Every event subscription, oldest first.
    pub async fn list_event_subscriptions(&self) -> Result<Vec<Webhook>> {
        Ok(self
            .store
            .list_webhooks(WebhookObject::Resource, "")
            .await?)
    }

    /// One event subscription (`NotFound` for a Kaizala webhook's id too).
    pub async fn event_subscription(&self, id: &str) -> Result<Webhook> {
        match self.store.get_webhook(id.trim()).await? {
            Some(s) if s.object == WebhookObject::Resource => Ok(s),
            _ => Err(not_found()),
        }
    }

    /// Changes a subscription; a changed endpoint is validated again.
    pub async fn update_event_subscription(
        &self,
        id: &str,
        change: EventSubscriptionChange,
    ) -> Result<Webhook> {
        let mut subscription = self.event_subscription(id).await?;
        if let Some(types) = change.event_types {
            subscription.event_types = event_types(Some(types))?;
        }
        if let Some(ids) = change.threads {
            subscription.threads = threads(Some(ids))?;
        }
        if let Some(url) = change.endpoint_url {
            let url = check_url(&url, self.webhook_config.require_https, "endpointUrl")?;
            if url != subscription.callback_url {
                self.validate_endpoint(subscription.schema, &url).await?;
            }
            subscription.callback_url = url;
        }
        let resume = change.enabled == Some(true) && !subscription.active;
        if let Some(enabled) = change.enabled {
            subscription.active = enabled;
            subscription.disabled_reason = (!enabled).then(|| "disabled by an admin".to_owned());
        }
        self.store
            .update_webhook(subscription.clone(), resume)
            .await?;
        if resume {
            self.store.delivery_wakeup().notify_one();
        }
        Ok(subscription)
    }

    pub async fn delete_event_subscription(&self, id: &str) -> Result<()> {
        let subscription = self.event_subscription(id).await?;
        Ok(self.store.delete_webhook(&subscription.id).await?)
    }

    async fn validate_endpoint(&self, schema: EventSchema, url: &str) -> Result<()> {
        let client = self.webhook_client()?;
        let timeout = self.webhook_config.handshake_timeout;
        let failure = match schema {
            EventSchema::CloudEvents => {
                let origin = "confab";
                let answer = client
                    .exchange(
                        "OPTIONS",
                        url,
                        vec![("webhook-request-origin".to_owned(), origin.to_owned())],
                        Vec::new(),
                        timeout,
                    )
                    .await;
                match answer {
                    Ok(a) if !(200..300).contains(&a.status) => {
                        format!("it answered HTTP {}", a.status)
                    }
                    Ok(a) => match a.header("webhook-allowed-origin").map(str::trim) {
                        Some(allowed) if allowed == "*" || allowed == origin => return Ok(()),
                        _ => "it did not answer WebHook-Allowed-Origin".to_owned(),
                    },
                    Err(err) => err,
                }
            }
            _ => {
                let code = uuid::Uuid::new_v4().to_string();
                let event = json!([{
                    "id": uuid::Uuid::new_v4().to_string(),
                    "topic": TOPIC,
                    "subject": "",
                    "data": { "validationCode": code },
                    "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
                    "eventTime": self.clock.now().format(&Rfc3339).unwrap_or_default(),
                    "metadataVersion": "1",
                    "dataVersion": "1",
                }]);
                let answer = client
                    .exchange(
                        "POST",
                        url,
                        vec![
                            ("content-type".to_owned(), "application/json".to_owned()),
                            (
                                "aeg-event-type".to_owned(),
                                "SubscriptionValidation".to_owned(),
                            ),
                        ],
                        event.to_string().into_bytes(),
                        timeout,
                    )
                    .await;
                match answer {
                    Ok(a) if !(200..300).contains(&a.status) => {
                        format!("it answered HTTP {}", a.status)
                    }
                    Ok(a) => {
                        let echoed = serde_json::from_str::<serde_json::Value>(&a.body)
                            .ok()
                            .and_then(|v| v["validationResponse"].as_str().map(str::to_owned));
                        if echoed.as_deref() == Some(code.as_str()) {
                            return Ok(());
                        }
                        "it did not answer {\"validationResponse\": <validationCode>}".to_owned()
                    }
                    Err(err) => err,
                }
            }
        };
        Err(Error::invalid(
            format!(
                "The endpoint failed validation within {} s: {failure}.",
                timeout.as_secs_f64()
            ),
            "endpointUrl",
        ))
    }
}

/// Where events of ACS subscriptions come from (`topic` / CloudEvents `source`).
pub const TOPIC: &str = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/confab/providers/Microsoft.Communication/communicationServices/confab";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_with_or_without_prefix() {
        assert_eq!(
            acs_event_type("microsoft.communication.chatmessagereceived"),
            Some("ChatMessageReceived")
        );
        assert_eq!(
            acs_event_type("ChatThreadCreated"),
            Some("ChatThreadCreated")
        );
        assert_eq!(acs_event_type("Microsoft.Communication.SMSReceived"), None);
        assert_eq!(event_types(None).map(|t| t.len()), Ok(16));
        assert!(event_types(Some(vec![])).is_err());
        assert!(event_types(Some(vec!["Nope".into()])).is_err());
    }

    #[test]
    fn names_and_threads_are_checked() {
        assert_eq!(name(None, "0123456789"), Ok("sub-01234567".to_owned()));
        assert!(name(Some("has space".into()), "x").is_err());
        assert_eq!(
            name(Some(" orders-1 ".into()), "x"),
            Ok("orders-1".to_owned())
        );
        assert!(threads(Some(vec!["nope".into()])).is_err());
        let id = ConversationId(7).to_acs();
        assert_eq!(threads(Some(vec![id.clone(), id])).map(|t| t.len()), Ok(1));
    }
}
