//! The event log as the real-time stream sees it: committed events handed to the event sink
//! right after COMMIT (no re-read: each is made where its row is inserted), the keyset read a
//! reconnecting stream resumes with, the resumable bounds, retention, and the memberships a
//! stream starts from.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use confab_core::ids::{ConversationId, IdentityId};
use confab_core::model::{
    Audience, EventKind, Message, MessageContent, MessageType, Metadata, Role,
};
use confab_core::ports::bus::{EventParts, MessageRef};
use confab_core::ports::{
    CommittedEvent, EventBounds, EventSink, Membership, StoreError, StoreResult,
};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::codec::{self, DbResult};
use crate::writer::Writer;

/// The `meta` key of the purge watermark: every position up to it may be gone.
const PURGED_THROUGH: &str = "events_purged_through";

/// Where the writer puts committed events; set at most once, read with one atomic load.
pub(crate) type SinkSlot = Arc<OnceLock<Arc<dyn EventSink>>>;

/// What the log row of a message event does not say but a stream needs to decide who sees it,
/// and what that row does say: the message's change (see [`MessageChange`]).
#[derive(Clone, Debug)]
pub(crate) struct MessageHints {
    pub(crate) message: MessageRef,
    pub(crate) audience: Audience,
    pub(crate) logged: String,
}

impl MessageHints {
    pub(crate) fn new(message: &Message, logged: String) -> Self {
        Self {
            message: MessageRef {
                id: message.id.0,
                created_us: codec::micros(message.created_on),
                system: message.kind.is_system(),
            },
            audience: message.audience.clone(),
            logged,
        }
    }
}

/// What an event's log row keeps as its payload (and whether its identity).
#[derive(Clone, Debug)]
pub(crate) enum EventRow {
    /// The event's data as published, and its identity.
    Whole,
    /// A shortened form of the data that a read makes whole again ([`lengthen`]), and the
    /// identity.
    Short(String),
    /// A message event: the message's change; the identity is the message's sender.
    Message(MessageHints),
}

/// The text of a conversationCreated event from its data without `participants`, which would
/// list again the ids of `members`: the data as published (the list put in), and its row, which
/// keeps it without (a thread created with ten ACS users: 2.5 KB → 1.7 KB, two rows to a page
/// instead of one); [`lengthen`] puts the list back on a read.
pub(crate) fn creation_event(mut short: serde_json::Value) -> (String, EventRow) {
    let row = short.to_string();
    if let Some(object) = short.as_object_mut() {
        add_participants(object);
    }
    (short.to_string(), EventRow::Short(row))
}

/// Puts into a conversationCreated event's data its `participants`: the ids of its `members`,
/// in their order.
fn add_participants(object: &mut serde_json::Map<String, serde_json::Value>) {
    let ids: Vec<serde_json::Value> = object
        .get("members")
        .and_then(serde_json::Value::as_array)
        .map(|members| {
            members
                .iter()
                .filter_map(|m| m.get("id").cloned())
                .collect()
        })
        .unwrap_or_default();
    object.insert("participants".into(), serde_json::Value::Array(ids));
}

/// The data of a non-message event from its row's payload: what [`creation_event`] left out
/// put back. A row logged whole (any other kind, or a creation from before rows were shortened)
/// is its data.
fn lengthen(kind: &EventKind, payload: String) -> Result<String, serde_json::Error> {
    if *kind != EventKind::ConversationCreated {
        return Ok(payload);
    }
    let mut data: serde_json::Value = serde_json::from_str(&payload)?;
    match data.as_object_mut() {
        Some(object) if !object.contains_key("participants") => {
            add_participants(object);
            Ok(data.to_string())
        }
        _ => Ok(payload),
    }
}

impl Writer {
    /// Keeps the event just inserted (at `position`) for the sink, if there is one.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn keep_event(
        &self,
        position: i64,
        kind: EventKind,
        conversation: Option<ConversationId>,
        identity: Option<&IdentityId>,
        hints: Option<MessageHints>,
        data: String,
        at_us: i64,
    ) {
        if self.sink.get().is_none() {
            return;
        }
        let (message, audience) = match hints {
            Some(h) => (Some(h.message), h.audience),
            None => (None, Audience::Members),
        };
        self.pending
            .borrow_mut()
            .push(Arc::new(CommittedEvent::new(EventParts {
                position: Some(position),
                kind,
                conversation,
                identity: identity.cloned(),
                message,
                audience,
                at_us,
                data,
            })));
    }

    /// Hands the events of the batch that just committed to the sink.
    pub(crate) fn publish_committed(&mut self) {
        let events = std::mem::take(self.pending.get_mut());
        if events.is_empty() {
            return;
        }
        if let Some(sink) = self.sink.get() {
            sink.committed(events);
        }
    }

    /// Deletes old events, oldest first, at most `max_rows` positions' worth; see
    /// `Store::purge_events`.
    pub(crate) fn purge_events(
        &mut self,
        older_than: Option<OffsetDateTime>,
        keep_last: Option<u64>,
        max_rows: usize,
    ) -> StoreResult<usize> {
        if older_than.is_none() && keep_last.is_none() {
            return Ok(0);
        }
        let bounds = bounds(&self.conn)?;
        let chunk = i64::try_from(max_rows).unwrap_or(i64::MAX);
        let window = bounds.purged_through.saturating_add(chunk).min(bounds.head);
        // An event goes if it is too old OR beyond the newest `keep_last`.
        let mut through = bounds.purged_through;
        if let Some(keep) = keep_last {
            let keep = i64::try_from(keep).unwrap_or(i64::MAX);
            through = through.max(bounds.head.saturating_sub(keep));
        }
        if let Some(older_than) = older_than {
            // Walks the oldest rows of this chunk in position order and stops at the first young
            // one: costs at most a chunk of rows.
            let first_young: Option<i64> = self
                .conn
                .prepare_cached(
                    "SELECT position FROM events WHERE position > ?1 AND position <= ?2
                         AND at >= ?3
                     ORDER BY position LIMIT 1",
                )
                .db()?
                .query_row(
                    params![bounds.purged_through, window, codec::micros(older_than)],
                    |row| row.get(0),
                )
                .optional()
                .db()?;
            through = through.max(first_young.map_or(window, |young| young - 1));
        }
        let through = through.min(window);
        if through <= bounds.purged_through {
            return Ok(0);
        }
        let deleted = self
            .conn
            .prepare_cached("DELETE FROM events WHERE position > ?1 AND position <= ?2")
            .db()?
            .execute(params![bounds.purged_through, through])
            .db()?;
        codec::set_meta(&self.conn, PURGED_THROUGH, through)?;
        Ok(deleted)
    }
}

/// The resumable range of positions.
pub(crate) fn bounds(conn: &Connection) -> StoreResult<EventBounds> {
    let purged_through = codec::meta_value(conn, PURGED_THROUGH)?.unwrap_or(0);
    // AUTOINCREMENT keeps the largest position ever handed out here, even once its row is gone.
    let head: i64 = conn
        .prepare_cached(
            "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)",
        )
        .db()?
        .query_row([], |row| row.get(0))
        .db()?;
    Ok(EventBounds {
        purged_through,
        head,
    })
}

/// The columns of a message that its events read back with them (`m`, joined to the event).
struct MessageRow {
    created_us: i64,
    kind: String,
    audience: Option<String>,
    sequence_id: i64,
    sender_display_name: Option<String>,
    content: String,
    metadata: Option<String>,
}

/// Up to `limit` events after `after`. A message event's data is made whole again from the
/// message it is about (one primary-key lookup each), which also gives its stream hints.
pub(crate) fn events_after(
    conn: &Connection,
    after: i64,
    limit: usize,
) -> StoreResult<Vec<CommittedEvent>> {
    let mut stmt = conn
        .prepare_cached(concat!(
            "SELECT e.position, e.conversation, e.kind, e.message_id,
                    COALESCE(e.identity, m.sender), e.payload, e.at,
                    m.created_on, m.kind, m.audience, m.sequence_id, m.sender_display_name, ",
            codec::message_content!("m"),
            ", m.metadata
             FROM events AS e
             LEFT JOIN messages AS m ON m.conversation = e.conversation AND m.id = e.message_id
                 AND e.kind IN ('messageReceived', 'messageEdited', 'messageDeleted')
             WHERE e.position > ?1
             ORDER BY e.position
             LIMIT ?2"
        ))
        .db()?;
    let rows = stmt
        .query_map(
            params![after, i64::try_from(limit).unwrap_or(i64::MAX)],
            |row| {
                let message = match row.get::<_, Option<i64>>(7)? {
                    Some(created_us) => Some(MessageRow {
                        created_us,
                        kind: row.get(8)?,
                        audience: row.get(9)?,
                        sequence_id: row.get(10)?,
                        sender_display_name: row.get(11)?,
                        content: row.get(12)?,
                        metadata: row.get(13)?,
                    }),
                    None => None,
                };
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, Option<[u8; 16]>>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, Option<i64>>(3)?,
                    row.get::<_, Option<String>>(4)?,
                    row.get::<_, String>(5)?,
                    row.get::<_, i64>(6)?,
                    message,
                ))
            },
        )
        .db()?;
    let mut events = Vec::new();
    for row in rows {
        let (position, conversation, kind, message_id, identity, payload, at_us, message) =
            row.db()?;
        let bad = |what: &str| StoreError::Unavailable(format!("event {position}: bad {what}"));
        let kind = EventKind::parse(&kind).ok_or_else(|| bad("kind"))?;
        let conversation = conversation.map(|key| ConversationId(u128::from_be_bytes(key)));
        let audience = codec::decode_audience(message.as_ref().and_then(|m| m.audience.as_deref()))
            .map_err(|_| bad("audience"))?;
        let (message_ref, data) = match (message_id, conversation, &message) {
            (Some(id), Some(conversation), Some(m)) => {
                let mut change: MessageChange<'_> =
                    serde_json::from_str(&payload).map_err(|_| bad("message change"))?;
                if change.content.is_none() && change.deleted_on.is_none() {
                    // A system message's: its content and metadata are its row's.
                    let content =
                        codec::decode_content(&m.content).map_err(|_| bad("message content"))?;
                    let metadata = codec::decode_metadata(m.metadata.as_deref())
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
                    created_on: codec::from_micros(m.created_us).ok_or_else(|| bad("time"))?,
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
        events.push(CommittedEvent::new(EventParts {
            position: Some(position),
            kind,
            conversation,
            identity,
            message: message_ref,
            audience,
            at_us,
            data,
        }));
    }
    Ok(events)
}

/// The live conversations `identity` belongs to, as a participant or a subscriber.
pub(crate) fn list_memberships(
    conn: &Connection,
    identity: &IdentityId,
) -> StoreResult<Vec<Membership>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT p.conversation, p.role, p.share_history_time, p.added_on
             FROM participants AS p JOIN conversations AS c ON c.id = p.conversation
             WHERE p.identity = ?1 AND c.deleted_on IS NULL
             UNION ALL
             SELECT s.conversation, 'subscriber', NULL, s.added_on
             FROM subscribers AS s JOIN conversations AS c ON c.id = s.conversation
             WHERE s.identity = ?1 AND c.deleted_on IS NULL",
        )
        .db()?;
    let rows = stmt
        .query_map([identity.as_str()], |row| {
            let role: String = row.get(1)?;
            Ok(Membership {
                conversation: codec::conversation_at(row, 0)?,
                role: Role::parse(&role).unwrap_or(Role::Member),
                share_history_us: row.get(2)?,
                added_us: row.get(3)?,
            })
        })
        .db()?;
    rows.collect::<rusqlite::Result<Vec<_>>>().db()
}

/// A time as event data shows it (RFC 3339, UTC).
pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
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
struct AsText<T>(T);

impl<T: std::fmt::Display> Serialize for AsText<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

/// Serializes a time as [`rfc3339`] does, formatted on the stack.
struct Rfc3339Text(OffsetDateTime);

impl Serialize for Rfc3339Text {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0; 40];
        serializer
            .serialize_str(confab_core::model::rfc3339_text(self.0, &mut buf).unwrap_or_default())
    }
}

/// What never changes in a message, as its event data shows it: the same in every event of the
/// message and in its own row, which is never removed (a deleted message keeps it).
struct MessageFacts<'a> {
    conversation: ConversationId,
    id: i64,
    sequence_id: i64,
    kind: &'a str,
    sender: Option<&'a str>,
    sender_display_name: Option<&'a str>,
    created_on: OffsetDateTime,
    audience: &'static str,
}

/// What a message event's row in the log keeps: the part of the data an edit or a delete
/// changes. The rest ([`MessageFacts`]) is read back from the message's row with the event, so a
/// logged message costs a few dozen bytes instead of a second copy of the whole message (the
/// log was three times the size of the messages). A row logged whole, before, reads back the
/// same: the fields it has beyond these are the message's facts and are ignored.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageChange<'a> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    content: Option<Cow<'a, MessageContent>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deleted_on: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    edited_on: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    metadata: Option<Cow<'a, Metadata>>,
    version: String,
}

/// The event data of a message: its facts, then the fields of `change` (its JSON, as
/// [`change_json`] writes it).
fn render(facts: &MessageFacts<'_>, change: &str) -> StoreResult<String> {
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
fn change_json(change: &MessageChange<'_>) -> StoreResult<String> {
    serde_json::to_string(change).map_err(|e| StoreError::Unavailable(format!("event data: {e}")))
}

/// A message event as it is published (the whole data) and as its log row keeps it (the
/// [`MessageChange`], JSON).
pub(crate) struct MessageEventText {
    pub(crate) data: String,
    pub(crate) logged: String,
}

pub(crate) fn message_event_text(message: &Message) -> StoreResult<MessageEventText> {
    let deleted = message.deleted_on.is_some();
    let mut change = MessageChange {
        content: (!deleted).then_some(Cow::Borrowed(&message.content)),
        deleted_on: message.deleted_on.map(rfc3339),
        edited_on: message.edited_on.filter(|_| !deleted).map(rfc3339),
        metadata: (!deleted).then_some(Cow::Borrowed(&message.metadata)),
        version: message.version.to_string(),
    };
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
    let full = change_json(&change)?;
    let data = render(&facts, &full)?;
    // A system message never changes (the core refuses to edit or delete one), so its row
    // keeps its content and metadata for its event too: the content lists participants and can
    // be long. A change with neither content nor a delete time is read back that way.
    let logged = if message.kind.is_system() {
        change.content = None;
        change.metadata = None;
        change_json(&change)?
    } else {
        full
    };
    Ok(MessageEventText { data, logged })
}

/// A message's audience as event data shows it: its kind only, so that subscribers do not
/// learn of each other (the list itself stays in `messages.audience`).
pub(crate) fn audience_name(audience: &Audience) -> &'static str {
    match audience {
        Audience::Members => "members",
        Audience::AllSubscribers => "allSubscribers",
        Audience::Subscribers(_) => "subscribers",
    }
}

/// Participants as membership events list them: enough for a stream to follow its identity's
/// role and shared history without reading the participant back.
pub(crate) fn member_details<'a>(
    participants: impl Iterator<Item = &'a confab_core::model::Participant>,
) -> Vec<serde_json::Value> {
    participants
        .map(|p| {
            serde_json::json!({
                "id": p.identity.as_str(),
                "displayName": p.display_name,
                "role": p.role.as_str(),
                "shareHistoryTime": p.share_history_time.map(rfc3339),
            })
        })
        .collect()
}

/// A retention policy as event data shows it (the ACS wire shape).
pub(crate) fn retention_json(policy: confab_core::model::RetentionPolicy) -> serde_json::Value {
    match policy {
        confab_core::model::RetentionPolicy::ThreadCreationDate { delete_after_days } => {
            serde_json::json!({
                "kind": "threadCreationDate",
                "deleteThreadAfterDays": delete_after_days,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use confab_core::ids::{ConversationId, IdentityId, MessageId};
    use confab_core::model::{
        Audience, EventKind, Message, MessageContent, MessageType, Metadata, Participant, Role,
    };
    use confab_core::ports::{
        CommittedEvent, EventSink, MessageEdit, NewConversation, NewMessage, Store, SystemClock,
    };
    use parking_lot::Mutex;

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

    use crate::SqliteStore;

    #[derive(Default)]
    struct Collect(Mutex<Vec<Arc<CommittedEvent>>>);

    impl EventSink for Collect {
        fn committed(&self, events: Vec<Arc<CommittedEvent>>) {
            self.0.lock().extend(events);
        }
    }

    #[tokio::test]
    async fn committed_events_are_published_read_back_alike_and_purged() {
        let store = SqliteStore::in_memory(Arc::new(SystemClock)).expect("store");
        let sink = Arc::new(Collect::default());
        assert!(store.set_event_sink(sink.clone()));
        let alice = IdentityId::parse("8:acs:r_alice").expect("id");
        let id = ConversationId::generate();
        store
            .create_conversation(NewConversation {
                id,
                topic: "t".into(),
                created_by: alice.clone(),
                metadata: Metadata::new(),
                retention: None,
                participants: vec![Participant {
                    identity: alice.clone(),
                    display_name: None,
                    share_history_time: None,
                    metadata: Metadata::new(),
                    role: Role::Admin,
                }],
                repeatability_key: None,
                kind: Default::default(),
                welcome_message: None,
            })
            .await
            .expect("create");
        let mut sent = Vec::new();
        for i in 0..5 {
            let mut metadata = Metadata::new();
            metadata.insert("n".into(), i.to_string());
            let message = store
                .append_message(NewMessage {
                    conversation: id,
                    kind: MessageType::Text,
                    content: MessageContent {
                        text: Some(format!("m{i} \"quoted\"")),
                        ..MessageContent::default()
                    },
                    sender: Some(alice.clone()),
                    sender_display_name: (i % 2 == 0).then(|| format!("Alice {i}")),
                    metadata,
                    audience: if i == 4 {
                        Audience::Subscribers(vec![alice.clone()])
                    } else {
                        Audience::Members
                    },
                })
                .await
                .expect("append");
            sent.push(message.id);
        }
        // A failing write publishes nothing.
        assert!(store
            .append_message(NewMessage {
                conversation: ConversationId(7),
                kind: MessageType::Text,
                content: MessageContent::default(),
                sender: None,
                sender_display_name: None,
                metadata: Metadata::new(),
                audience: Audience::Members,
            })
            .await
            .is_err());

        // An edit and a delete after the message's own event: each event reads back as it
        // was (its message's row now says something else).
        store
            .edit_message(
                id,
                sent[0],
                MessageEdit {
                    text: Some("m0 edited".into()),
                    metadata: Some(Metadata::new()),
                },
            )
            .await
            .expect("edit");
        store.delete_message(id, sent[1]).await.expect("delete");

        let live: Vec<Arc<CommittedEvent>> = sink.0.lock().clone();
        let kinds: Vec<EventKind> = live.iter().map(|e| e.kind.clone()).collect();
        assert_eq!(
            kinds.len(),
            9,
            "created, participantAdded, 5 messages, edit, delete"
        );
        assert_eq!(kinds[0], EventKind::ConversationCreated);
        assert_eq!(kinds[7], EventKind::MessageEdited);
        assert_eq!(kinds[8], EventKind::MessageDeleted);
        let logged = store.events_after(0, 100).await.expect("read");
        assert_eq!(logged.len(), 9);
        for (published, read) in live.iter().zip(&logged) {
            // The same event, byte for byte, whether it came live or from the log.
            assert_eq!(**published, *read);
        }
        assert!(logged[2].data().contains("\"text\":\"m0 \\\"quoted\\\"\""));
        assert!(logged[7].data().contains("m0 edited"));
        assert!(logged[2].message.is_some_and(|m| !m.system));
        assert!(logged[1].message.is_some_and(|m| m.system));
        assert_eq!(
            logged[6].audience,
            Audience::Subscribers(vec![alice.clone()])
        );
        assert_eq!(store.events_after(5, 100).await.expect("read").len(), 4);

        // The creation's row keeps its data without the participants' ids (its members say
        // them), and a read put them back above.
        let created_row: String = store
            .writer
            .call(|w| {
                w.conn
                    .query_row("SELECT payload FROM events WHERE position = 1", [], |row| {
                        row.get(0)
                    })
                    .map_err(crate::codec::db_err)
            })
            .await
            .expect("row");
        assert!(!created_row.contains("participants"), "{created_row}");
        assert!(live[0]
            .data()
            .contains(r#""participants":["8:acs:r_alice"]"#));

        // A message event logged whole (data and identity in its row, as before the change was
        // logged alone), and a creation logged whole (before it was shortened), read back the
        // same.
        let whole: Vec<(i64, String)> = live
            .iter()
            .filter(|e| e.message.is_some() || e.kind == EventKind::ConversationCreated)
            .map(|e| (e.position.expect("position"), e.data().to_string()))
            .collect();
        let sender = alice.as_str().to_owned();
        store
            .writer
            .call(move |w| {
                for (position, data) in &whole {
                    w.conn
                        .execute(
                            "UPDATE events SET payload = ?1,
                                 identity = CASE WHEN position != 2 THEN ?2 END
                             WHERE position = ?3",
                            rusqlite::params![data, sender, position],
                        )
                        .map_err(crate::codec::db_err)?;
                }
                Ok(())
            })
            .await
            .expect("rewrite");
        assert_eq!(store.events_after(0, 100).await.expect("read"), logged);

        let bounds = store.event_bounds().await.expect("bounds");
        assert_eq!((bounds.purged_through, bounds.head), (0, 9));
        // Keep the newest 3, two positions per write.
        for _ in 0..3 {
            assert_eq!(
                store.purge_events(None, Some(3), 2).await.expect("purge"),
                2
            );
        }
        assert_eq!(
            store.purge_events(None, Some(3), 2).await.expect("purge"),
            0
        );
        let bounds = store.event_bounds().await.expect("bounds");
        assert_eq!((bounds.purged_through, bounds.head), (6, 9));
        let kept = store.events_after(0, 100).await.expect("read");
        assert_eq!(kept.first().and_then(|e| e.position), Some(7));
        // By age: everything is younger than an hour ago; nothing goes.
        let hour_ago = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
        assert_eq!(
            store
                .purge_events(Some(hour_ago), None, 100)
                .await
                .expect("purge"),
            0
        );
        let future = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
        assert_eq!(
            store
                .purge_events(Some(future), None, 100)
                .await
                .expect("purge"),
            3
        );
        assert_eq!(
            store.event_bounds().await.expect("bounds").purged_through,
            9
        );

        let memberships = store.list_memberships(&alice).await.expect("memberships");
        assert_eq!(memberships.len(), 1);
        assert_eq!(memberships[0].conversation, id);
        assert_eq!(memberships[0].role, Role::Admin);
        store.close().await;
    }
}
