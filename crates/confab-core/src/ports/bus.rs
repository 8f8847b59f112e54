//! The Bus port: committed events, from the store that committed them to whoever streams them.
//!
//! The store hands every committed batch of events to its [`EventSink`] right after COMMIT (one
//! call per batch, on the writer's thread: it must not block). A [`Bus`] is such a sink that
//! also lets any number of subscribers follow the feed. Each event is serialized once, when it
//! is made ([`CommittedEvent::wire`]), and shared by reference among every receiver.
//!
//! The bus is a live feed, not a log: a subscriber that falls behind by more than the bus keeps
//! is told how many it missed ([`BusError::Lagged`]) and re-reads them from the store's event
//! log (positioned events) — only ephemeral events (typing, control) are lost to it.
//!
//! [`LocalBus`] is the in-process implementation (a bounded `tokio::sync::broadcast`); a NATS
//! implementation carries the same events between nodes in the scale-out setup.

use std::fmt::Write as _;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use time::OffsetDateTime;
use tokio::sync::broadcast;

use crate::ids::{ConversationId, IdentityId};
use crate::model::{Audience, EventKind, Role};

/// The message an event is about (message events only): enough to decide who may see it
/// without reading the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageRef {
    pub id: i64,
    /// The message's creation time, µs since the epoch (shared-history checks).
    pub created_us: i64,
    /// A system message (participantAdded, topicUpdated, …) rather than a user's.
    pub system: bool,
}

/// Appends `at_us` (µs since the epoch) as an RFC 3339 UTC time; nothing if it is out of range.
fn push_rfc3339(out: &mut String, at_us: i64) {
    let Ok(at) = OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_us) * 1000) else {
        return;
    };
    if let Some(text) = crate::model::rfc3339_text(at, &mut [0; 40]) {
        out.push_str(text);
    }
}

/// One event, committed (or, without a position, ephemeral), with its wire form made once.
#[derive(Clone, Debug, PartialEq)]
pub struct CommittedEvent {
    /// The event log position: increasing, never reused. `None`: an ephemeral event (typing,
    /// control) that is not in the log and cannot be resumed from.
    pub position: Option<i64>,
    pub kind: EventKind,
    pub conversation: Option<ConversationId>,
    /// Who the event is by or about, as logged: the sender, the reader, the removed one, …
    pub identity: Option<IdentityId>,
    pub message: Option<MessageRef>,
    /// Who a message event reaches besides the members (subscribers of a public group);
    /// [`visible_to`](crate::stream::visible_to) honours it. `Members` for every other event.
    pub audience: Audience,
    /// When it happened, µs since the epoch.
    pub at_us: i64,
    /// The wire form, `{"position":…,"conversation":…,"type":…,"at":…,"data":{…}}`: compact
    /// JSON on one line, shared by every stream that sends it.
    pub wire: Bytes,
    /// Where [`data`](Self::data) sits in `wire` (empty for an event made without data).
    data_span: std::ops::Range<usize>,
}

/// The parts of an event, before its wire form is made.
#[derive(Clone, Debug)]
pub struct EventParts {
    pub position: Option<i64>,
    pub kind: EventKind,
    pub conversation: Option<ConversationId>,
    pub identity: Option<IdentityId>,
    pub message: Option<MessageRef>,
    pub audience: Audience,
    pub at_us: i64,
    /// The `data` object, compact JSON (as `serde_json` writes it: no raw line breaks).
    pub data: String,
}

impl CommittedEvent {
    /// Makes the event and its wire form. `data` must be a compact JSON object.
    pub fn new(parts: EventParts) -> Self {
        // One allocation: every field is written straight into the wire form, which also
        // holds `data` (an event is made for every message, on the writer's thread).
        let mut wire = String::with_capacity(parts.data.len() + 160);
        wire.push('{');
        if let Some(position) = parts.position {
            wire.push_str("\"position\":");
            wire.push_str(itoa::Buffer::new().format(position));
            wire.push(',');
        }
        if let Some(conversation) = parts.conversation {
            wire.push_str("\"conversation\":\"");
            // `19:<hex>@thread.v2`: nothing to escape.
            // Writing into a String cannot fail.
            let _ = write!(wire, "{}", conversation.acs());
            wire.push_str("\",");
        }
        wire.push_str("\"type\":\"");
        wire.push_str(parts.kind.name());
        wire.push_str("\",\"at\":\"");
        push_rfc3339(&mut wire, parts.at_us);
        wire.push_str("\",\"data\":");
        let data_span = if parts.data.is_empty() {
            wire.push_str("{}");
            wire.len()..wire.len()
        } else {
            let start = wire.len();
            wire.push_str(&parts.data);
            start..wire.len()
        };
        wire.push('}');
        Self {
            position: parts.position,
            kind: parts.kind,
            conversation: parts.conversation,
            identity: parts.identity,
            message: parts.message,
            audience: parts.audience,
            at_us: parts.at_us,
            wire: Bytes::from(wire),
            data_span,
        }
    }

    /// The event's `data` object as JSON text (what the log row keeps as its payload), as the
    /// event was given it: empty if it was made without.
    pub fn data(&self) -> &str {
        self.wire
            .get(self.data_span.clone())
            .and_then(|data| std::str::from_utf8(data).ok())
            .unwrap_or_default()
    }

    /// A typing notification: ephemeral, never stored.
    pub fn typing(
        conversation: ConversationId,
        sender: &IdentityId,
        sender_display_name: Option<&str>,
        at: OffsetDateTime,
    ) -> Self {
        let data = serde_json::json!({
            "conversation": conversation.to_acs(),
            "sender": sender.as_str(),
            "senderDisplayName": sender_display_name,
        });
        Self::new(EventParts {
            position: None,
            kind: EventKind::Typing,
            conversation: Some(conversation),
            identity: Some(sender.clone()),
            message: None,
            audience: Audience::Members,
            at_us: micros(at),
            data: data.to_string(),
        })
    }

    /// A control event: the credentials of `identity` (every identity when `None`) changed, so
    /// open streams re-check their tokens now. Never sent to clients.
    pub fn credentials_changed(identity: Option<&IdentityId>, at: OffsetDateTime) -> Self {
        Self::new(EventParts {
            position: None,
            kind: EventKind::CredentialsChanged,
            conversation: None,
            identity: identity.cloned(),
            message: None,
            audience: Audience::Members,
            at_us: micros(at),
            data: String::new(),
        })
    }
}

fn micros(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX)
}

/// Where a store puts what it committed. Called once per committed batch, on the store's
/// writer thread, right after COMMIT: it must be cheap and must not block.
pub trait EventSink: Send + Sync + 'static {
    fn committed(&self, events: Vec<Arc<CommittedEvent>>);
}

/// Why a subscription could not hand out the next event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BusError {
    /// The subscriber fell behind and this many events went past it; re-read the log.
    #[error("lagged behind by {0} events")]
    Lagged(u64),
    /// The bus is gone.
    #[error("the bus is closed")]
    Closed,
}

/// One subscriber's view of the live feed, from the moment it subscribed.
#[async_trait]
pub trait BusSubscription: Send + Sync {
    async fn recv(&mut self) -> Result<Arc<CommittedEvent>, BusError>;
}

/// The live feed of committed (and ephemeral) events.
pub trait Bus: EventSink {
    /// Puts an ephemeral event (typing, control) on the feed.
    fn publish(&self, event: CommittedEvent);
    /// Follows the feed from now on.
    fn subscribe(&self) -> Box<dyn BusSubscription>;
}

/// The in-process bus: a bounded broadcast channel. Publishing never waits; a subscriber more
/// than `capacity` events behind gets [`BusError::Lagged`].
pub struct LocalBus {
    sender: broadcast::Sender<Arc<CommittedEvent>>,
}

/// Events the local bus keeps for its slowest subscriber by default.
pub const DEFAULT_BUS_CAPACITY: usize = 4096;

impl LocalBus {
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Self { sender }
    }

    /// Subscribers right now.
    pub fn subscribers(&self) -> usize {
        self.sender.receiver_count()
    }
}

impl Default for LocalBus {
    fn default() -> Self {
        Self::new(DEFAULT_BUS_CAPACITY)
    }
}

impl EventSink for LocalBus {
    fn committed(&self, events: Vec<Arc<CommittedEvent>>) {
        for event in events {
            // No subscriber is not an error: nobody is streaming.
            let _ = self.sender.send(event);
        }
    }
}

impl Bus for LocalBus {
    fn publish(&self, event: CommittedEvent) {
        let _ = self.sender.send(Arc::new(event));
    }

    fn subscribe(&self) -> Box<dyn BusSubscription> {
        Box::new(LocalSubscription(self.sender.subscribe()))
    }
}

struct LocalSubscription(broadcast::Receiver<Arc<CommittedEvent>>);

#[async_trait]
impl BusSubscription for LocalSubscription {
    async fn recv(&mut self) -> Result<Arc<CommittedEvent>, BusError> {
        self.0.recv().await.map_err(|err| match err {
            broadcast::error::RecvError::Lagged(n) => BusError::Lagged(n),
            broadcast::error::RecvError::Closed => BusError::Closed,
        })
    }
}

/// What a stream needs to know about one of its identity's memberships.
#[derive(Clone, Debug, PartialEq)]
pub struct Membership {
    pub conversation: ConversationId,
    pub role: Role,
    /// Messages created before this time (µs) are hidden from the participant.
    pub share_history_us: Option<i64>,
    /// When the identity joined (µs): earlier events of the conversation are not its business.
    pub added_us: i64,
}

/// The positions the event log can be resumed from: after `purged_through` (older events were
/// deleted by retention) and up to `head` (the newest position ever handed out).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventBounds {
    pub purged_through: i64,
    pub head: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_form_is_one_line_of_json() {
        let conversation = ConversationId(0xabc);
        let event = CommittedEvent::new(EventParts {
            position: Some(42),
            kind: EventKind::MessageReceived,
            conversation: Some(conversation),
            identity: None,
            message: None,
            audience: Audience::Members,
            at_us: 1_700_000_000_123_456,
            data: serde_json::json!({"text": "a\nb \"c\""}).to_string(),
        });
        let text = std::str::from_utf8(&event.wire).expect("utf-8");
        assert!(!text.contains('\n'));
        let value: serde_json::Value = serde_json::from_str(text).expect("json");
        assert_eq!(value["position"], 42);
        assert_eq!(value["conversation"], conversation.to_acs());
        assert_eq!(value["type"], "messageReceived");
        assert_eq!(value["at"], "2023-11-14T22:13:20.123456Z");
        assert_eq!(value["data"]["text"], "a\nb \"c\"");
        assert_eq!(event.data(), r#"{"text":"a\nb \"c\""}"#);

        let typing = CommittedEvent::typing(
            conversation,
            &IdentityId::parse("8:acs:r_u").expect("id"),
            None,
            OffsetDateTime::UNIX_EPOCH,
        );
        let value: serde_json::Value = serde_json::from_slice(&typing.wire).expect("json");
        assert!(value.get("position").is_none());
        assert_eq!(value["type"], "typing");
        assert_eq!(value["data"]["sender"], "8:acs:r_u");
        assert_eq!(value["at"], "1970-01-01T00:00:00Z");
        assert_eq!(typing.data(), value["data"].to_string());
    }

    #[test]
    fn an_event_without_data_shows_an_empty_object() {
        let event = CommittedEvent::new(EventParts {
            position: None,
            kind: EventKind::Typing,
            conversation: None,
            identity: None,
            message: None,
            audience: Audience::Members,
            at_us: 0,
            data: String::new(),
        });
        assert_eq!(event.data(), "");
        let value: serde_json::Value = serde_json::from_slice(&event.wire).expect("json");
        assert_eq!(value["data"], serde_json::json!({}));
        assert!(value.get("conversation").is_none());
    }

    #[tokio::test]
    async fn a_lagging_subscriber_is_told_how_many_it_missed() {
        let bus = LocalBus::new(2);
        let mut sub = bus.subscribe();
        for _ in 0..5 {
            bus.publish(CommittedEvent::credentials_changed(
                None,
                OffsetDateTime::UNIX_EPOCH,
            ));
        }
        assert_eq!(sub.recv().await.err(), Some(BusError::Lagged(3)));
        assert!(sub.recv().await.is_ok());
    }
}
