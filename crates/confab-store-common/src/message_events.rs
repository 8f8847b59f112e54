//! Message events (received, edited, deleted): their data as published, what their log row
//! keeps, and the event made whole again from that row and the message's. Shared because a
//! stream or a webhook must get the same bytes whichever store logged the event, live or read
//! back from the log.

use std::borrow::Cow;

use confab_core::ids::{ConversationId, IdentityId};
use confab_core::model::{Audience, EventKind, Message, MessageContent, MessageType, Metadata};
use confab_core::ports::bus::{EventParts, MessageRef};
use confab_core::ports::{CommittedEvent, StoreError, StoreResult};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::event_payloads::{audience_name, lengthen, rfc3339};
use crate::stored;

/// What the log row of a message event does not say but a stream needs to decide who sees it,
/// and what that row does say: the message's change (see [`MessageChange`]).
#[derive(Clone, Debug)]
pub struct MessageHints {
    pub message: MessageRef,
    pub audience: Audience,
    pub logged: String,
}

impl MessageHints {
    pub fn new(message: &Message, logged: String) -> Self {
        Self {
            message: MessageRef {
                id: message.id.0,
                created_us: stored::micros(message.created_on),
                system: message.kind.is_system(),
            },
            audience: message.audience.clone(),
            logged,
        }
    }
}

/// An event just logged at `position`, as it is published: a message event's `hints` give its
/// message and audience; any other event reaches the members.
pub fn committed_event(
    position: i64,
    kind: EventKind,
    conversation: Option<ConversationId>,
    identity: Option<&IdentityId>,
    hints: Option<MessageHints>,
    data: String,
    at_us: i64,
) -> CommittedEvent {
    let (message, audience) = match hints {
        Some(h) => (Some(h.message), h.audience),
        None => (None, Audience::Members),
    };
    CommittedEvent::new(EventParts {
        position: Some(position),
        kind,
        conversation,
        identity: identity.cloned(),
        message,
        audience,
        at_us,
        data,
    })
}

/// The data of a message event (received, edited, deleted): the whole message, so that a
/// stream renders it without reading it back. A deleted message's shows when it was deleted and
/// neither its content, its metadata nor an edit; an edited one's when it was edited.
/// Written as these fields, serialized straight from the message (no `serde_json::Value` in
/// between), followed by those of its [`MessageChange`] — the JSON its log row keeps, so that
/// the message's text and metadata are escaped once for both.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MessageEventData<'a> {
    /// Who may read it besides the members: stream and webhook deliveries filter on the typed
    /// audience (`messages.audience`); the data names only its kind.
    audience: &'static str,
    conversation: AsText<confab_core::ids::AcsForm>,
    created_on: Rfc3339Text,
    message_id: AsText<i64>,
    sender: Option<&'a str>,
    sender_display_name: Option<&'a str>,
    sequence_id: i64,
    #[serde(rename = "type")]
    kind: &'a str,
}

/// Serializes as the text its `Display` writes, with no `String` in between.
pub struct AsText<T>(pub T);

impl<T: std::fmt::Display> Serialize for AsText<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

/// Serializes a time as [`rfc3339`] does, formatted on the stack.
pub struct Rfc3339Text(pub OffsetDateTime);

impl Serialize for Rfc3339Text {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0; 40];
        serializer
            .serialize_str(confab_core::model::rfc3339_text(self.0, &mut buf).unwrap_or_default())
    }
}

/// What never changes in a message, as its event data shows it: the same in every event of the
/// message and in its own row, which is never removed (a deleted message keeps it).
pub struct MessageFacts<'a> {
    pub conversation: ConversationId,
    pub id: i64,
    pub sequence_id: i64,
    pub kind: &'a str,
    pub sender: Option<&'a str>,
    pub sender_display_name: Option<&'a str>,
    pub created_on: OffsetDateTime,
    pub audience: &'static str,
}

/// What a message event's row in the log keeps: the part of the data an edit or a delete
/// changes. The rest ([`MessageFacts`]) is read back from the message's row with the event, so a
/// logged message costs a few dozen bytes instead of a second copy of the whole message (the
/// log was three times the size of the messages). A row logged whole, before, reads back the
/// same: the fields it has beyond these are the message's facts and are ignored.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageChange<'a> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Cow<'a, MessageContent>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_on: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_on: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Cow<'a, Metadata>>,
    pub version: String,
}

/// The event data of a message: its facts, then the fields of `change` (its JSON, as
/// [`change_json`] writes it).
pub fn render(facts: &MessageFacts<'_>, change: &str) -> StoreResult<String> {
    let mut data = Vec::with_capacity(change.len() + 256);
    serde_json::to_writer(
        &mut data,
        &MessageEventData {
            audience: facts.audience,
            conversation: AsText(facts.conversation.acs()),
            created_on: Rfc3339Text(facts.created_on),
            message_id: AsText(facts.id),
            sender: facts.sender,
            sender_display_name: facts.sender_display_name,
            sequence_id: facts.sequence_id,
            kind: facts.kind,
        },
    )
    .map_err(|e| StoreError::Unavailable(format!("event data: {e}")))?;
    // `{…facts}` + `{…change}` → `{…facts,…change}`: a change always has its version.
    match (data.pop(), change.strip_prefix('{')) {
        (Some(b'}'), Some(fields)) if fields.len() > 1 => {
            data.push(b',');
            data.extend_from_slice(fields.as_bytes());
        }
        _ => return Err(StoreError::Unavailable("event data: not an object".into())),
    }
    String::from_utf8(data).map_err(|e| StoreError::Unavailable(format!("event data: {e}")))
}

/// What a message event's row keeps, as JSON.
pub fn change_json(change: &MessageChange<'_>) -> StoreResult<String> {
    serde_json::to_string(change).map_err(|e| StoreError::Unavailable(format!("event data: {e}")))
}

/// A message event as it is published (the whole data) and as its log row keeps it (the
/// [`MessageChange`], JSON).
pub struct MessageEventText {
    pub data: String,
    pub logged: String,
}

/// The texts of a message event about `message` as it now is.
pub fn message_event_text(message: &Message) -> StoreResult<MessageEventText> {
    let change = MessageChangeText::of(message)?;
    let data = change.data(message)?;
    Ok(MessageEventText {
        data,
        logged: change.into_logged(),
    })
}

/// A message event's change, in the two forms it takes: whole (what the published data ends
/// with) and as its log row keeps it. Neither depends on the message's sequence id, so a store
/// may write the log row in the same statement that gives the message its sequence id, and
/// render the data ([`MessageChangeText::data`]) afterwards.
pub struct MessageChangeText {
    full: String,
    /// What a system message's row keeps instead of `full`.
    system_logged: Option<String>,
}

impl MessageChangeText {
    pub fn of(message: &Message) -> StoreResult<Self> {
        let deleted = message.deleted_on.is_some();
        let mut change = MessageChange {
            content: (!deleted).then_some(Cow::Borrowed(&message.content)),
            deleted_on: message.deleted_on.map(rfc3339),
            edited_on: message.edited_on.filter(|_| !deleted).map(rfc3339),
            metadata: (!deleted).then_some(Cow::Borrowed(&message.metadata)),
            version: message.version.to_string(),
        };
        let full = change_json(&change)?;
        // A system message never changes (the core refuses to edit or delete one), so its row
        // keeps its content and metadata for its event too: the content lists participants and
        // can be long. A change with neither content nor a delete time is read back that way.
        let system_logged = if message.kind.is_system() {
            change.content = None;
            change.metadata = None;
            Some(change_json(&change)?)
        } else {
            None
        };
        Ok(Self {
            full,
            system_logged,
        })
    }

    /// What the event's log row keeps.
    pub fn logged(&self) -> &str {
        self.system_logged.as_deref().unwrap_or(&self.full)
    }

    pub fn into_logged(self) -> String {
        self.system_logged.unwrap_or(self.full)
    }

    /// The event's data: `message`'s facts (with its sequence id), then the change.
    pub fn data(&self, message: &Message) -> StoreResult<String> {
        let facts = MessageFacts {
            conversation: message.conversation,
            id: message.id.0,
            sequence_id: message.sequence_id,
            kind: message.kind.as_str(),
            sender: message.sender.as_ref().map(IdentityId::as_str),
            sender_display_name: message.sender_display_name.as_deref(),
            created_on: message.created_on,
            audience: audience_name(&message.audience),
        };
        render(&facts, &self.full)
    }
}

/// The columns of a message that its events read back with them.
pub struct LoggedMessage {
    pub created_us: i64,
    pub kind: String,
    pub audience: Option<String>,
    pub sequence_id: i64,
    pub sender_display_name: Option<String>,
    /// The content as stored (see [`stored::encode_content`]).
    pub content: String,
    pub metadata: Option<String>,
}

/// One row of the event log as read, with the message it is about when it is a message event
/// whose message was found.
pub struct LoggedEvent {
    pub position: i64,
    pub conversation: Option<ConversationId>,
    /// As written in `events.kind` ([`stored::event_kind_name`]).
    pub kind: String,
    pub message_id: Option<i64>,
    /// The row's identity, or for a message event logged without one, the message's sender.
    pub identity: Option<String>,
    pub payload: String,
    pub at_us: i64,
    pub message: Option<LoggedMessage>,
}

impl LoggedEvent {
    /// The event as it was published: a message event's data made whole again from the
    /// message it is about, which also gives its stream hints; any other event's from its row,
    /// maybe shortened.
    pub fn into_committed(self) -> StoreResult<CommittedEvent> {
        let LoggedEvent {
            position,
            conversation,
            kind,
            message_id,
            identity,
            payload,
            at_us,
            message,
        } = self;
        let bad = |what: &str| StoreError::Unavailable(format!("event {position}: bad {what}"));
        let kind = EventKind::parse(&kind).ok_or_else(|| bad("kind"))?;
        let audience =
            stored::decode_audience(message.as_ref().and_then(|m| m.audience.as_deref()))
                .map_err(|_| bad("audience"))?;
        let (message_ref, data) = match (message_id, conversation, &message) {
            (Some(id), Some(conversation), Some(m)) => {
                let mut change: MessageChange<'_> =
                    serde_json::from_str(&payload).map_err(|_| bad("message change"))?;
                if change.content.is_none() && change.deleted_on.is_none() {
                    // A system message's: its content and metadata are its row's.
                    let content =
                        stored::decode_content(&m.content).map_err(|_| bad("message content"))?;
                    let metadata = stored::decode_metadata(m.metadata.as_deref())
                        .map_err(|_| bad("metadata"))?;
                    change.content = Some(Cow::Owned(content));
                    change.metadata = Some(Cow::Owned(metadata));
                }
                let facts = MessageFacts {
                    conversation,
                    id,
                    sequence_id: m.sequence_id,
                    kind: &m.kind,
                    sender: identity.as_deref(),
                    sender_display_name: m.sender_display_name.as_deref(),
                    created_on: stored::from_micros(m.created_us).ok_or_else(|| bad("time"))?,
                    audience: audience_name(&audience),
                };
                let message_ref = MessageRef {
                    id,
                    created_us: m.created_us,
                    system: MessageType::parse(&m.kind).is_none_or(MessageType::is_system),
                };
                (Some(message_ref), render(&facts, &change_json(&change)?)?)
            }
            // Not a message event (the join found nothing): its row holds its data, maybe
            // shortened.
            _ => (None, lengthen(&kind, payload).map_err(|_| bad("payload"))?),
        };
        let identity = identity.map(IdentityId::from_stored);
        Ok(CommittedEvent::new(EventParts {
            position: Some(position),
            kind,
            conversation,
            identity,
            message: message_ref,
            audience,
            at_us,
            data,
        }))
    }
}

#[cfg(test)]
mod tests {
    use confab_core::ids::{ConversationId, IdentityId, MessageId};
    use confab_core::model::{Audience, Message, MessageContent, MessageType, Metadata};

    /// The typed data of a message event is the JSON object each event carried before it was
    /// typed: the same fields and values.
    #[test]
    fn message_event_data_is_the_message_as_json() {
        let conversation = ConversationId::generate();
        let mut metadata = Metadata::new();
        metadata.insert("b".into(), "2".into());
        metadata.insert("a".into(), "\"quoted\"".into());
        let created = time::macros::datetime!(2026-12-02 03:04:05.123456 UTC);
        let later = time::macros::datetime!(2026-12-02 03:04:06 UTC);
        let mut message = Message {
            id: MessageId(42),
            conversation,
            sequence_id: 7,
            kind: MessageType::Text,
            content: MessageContent {
                text: Some("hello\nworld".into()),
                ..MessageContent::default()
            },
            sender: Some(IdentityId::parse("8:acs:res_alice").expect("id")),
            sender_display_name: None,
            metadata,
            version: 42,
            created_on: created,
            edited_on: None,
            deleted_on: None,
            audience: Audience::AllSubscribers,
        };
        let check = |message: &Message, expected: serde_json::Value| {
            let text = super::message_event_text(message).expect("data");
            let parsed: serde_json::Value = serde_json::from_str(&text.data).expect("JSON");
            assert_eq!(parsed, expected);
            // The message's facts, then the fields its log row keeps, written once for both.
            let change_fields = text.logged.strip_prefix('{').expect("an object");
            assert!(text.data.ends_with(change_fields), "{}", text.data);
            // The log row keeps only what an edit or a delete changes.
            let logged: serde_json::Value = serde_json::from_str(&text.logged).expect("JSON");
            let changing = ["content", "metadata", "version", "editedOn", "deletedOn"];
            let expected_logged: serde_json::Map<String, serde_json::Value> = expected
                .as_object()
                .expect("object")
                .iter()
                .filter(|(key, _)| changing.contains(&key.as_str()))
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect();
            assert_eq!(logged, serde_json::Value::Object(expected_logged));
        };
        let acs = conversation.to_acs();
        check(
            &message,
            serde_json::json!({
                "conversation": acs,
                "messageId": "42",
                "sequenceId": 7,
                "type": "text",
                "sender": "8:acs:res_alice",
                "senderDisplayName": null,
                "content": {"text": "hello\nworld"},
                "metadata": {"a": "\"quoted\"", "b": "2"},
                "version": "42",
                "createdOn": "2026-12-02T03:04:05.123456Z",
                "audience": "allSubscribers",
            }),
        );
        message.version = 50;
        message.edited_on = Some(later);
        check(
            &message,
            serde_json::json!({
                "conversation": acs,
                "messageId": "42",
                "sequenceId": 7,
                "type": "text",
                "sender": "8:acs:res_alice",
                "senderDisplayName": null,
                "content": {"text": "hello\nworld"},
                "metadata": {"a": "\"quoted\"", "b": "2"},
                "version": "50",
                "createdOn": "2026-12-02T03:04:05.123456Z",
                "editedOn": "2026-12-02T03:04:06Z",
                "audience": "allSubscribers",
            }),
        );
        // A deleted message (edited before): no content, metadata or edit time.
        message.version = 60;
        message.content.text = None;
        message.deleted_on = Some(later);
        check(
            &message,
            serde_json::json!({
                "conversation": acs,
                "messageId": "42",
                "sequenceId": 7,
                "type": "text",
                "sender": "8:acs:res_alice",
                "senderDisplayName": null,
                "version": "60",
                "createdOn": "2026-12-02T03:04:05.123456Z",
                "deletedOn": "2026-12-02T03:04:06Z",
                "audience": "allSubscribers",
            }),
        );
    }

    /// A system message's event row leaves its content and metadata to the message's own row.
    #[test]
    fn a_system_message_event_logs_no_content() {
        let message = Message {
            id: MessageId(42),
            conversation: ConversationId::generate(),
            sequence_id: 1,
            kind: MessageType::ParticipantAdded,
            content: MessageContent {
                participants: vec![confab_core::model::ParticipantRef {
                    identity: IdentityId::parse("8:acs:res_alice").expect("id"),
                    display_name: None,
                    share_history_time: None,
                }],
                ..MessageContent::default()
            },
            sender: None,
            sender_display_name: None,
            metadata: Metadata::new(),
            version: 42,
            created_on: time::macros::datetime!(2026-12-02 03:04:05 UTC),
            edited_on: None,
            deleted_on: None,
            audience: Audience::Members,
        };
        let text = super::message_event_text(&message).expect("data");
        assert!(text
            .data
            .contains("\"participants\":[{\"identity\":\"8:acs:res_alice\"}]"));
        assert_eq!(text.logged, r#"{"version":"42"}"#);
    }
}
