//! The event log as the real-time stream sees it: committed events handed to the event sink
//! right after COMMIT (no re-read: each is made where its row is inserted), the keyset read a
//! reconnecting stream resumes with, the resumable bounds, retention, and the memberships a
//! stream starts from.

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
use serde::Serialize;
use time::OffsetDateTime;

use crate::codec::{self, DbResult};
use crate::writer::Writer;

/// The `meta` key of the purge watermark: every position up to it may be gone.
const PURGED_THROUGH: &str = "events_purged_through";

/// Where the writer puts committed events; set at most once, read with one atomic load.
pub(crate) type SinkSlot = Arc<OnceLock<Arc<dyn EventSink>>>;

/// What the log row of a message event does not say but a stream needs to decide who sees it.
#[derive(Clone, Debug)]
pub(crate) struct MessageHints {
    pub(crate) message: MessageRef,
    pub(crate) audience: Audience,
}

impl MessageHints {
    pub(crate) fn new(id: i64, created_us: i64, kind: MessageType, audience: &Audience) -> Self {
        Self {
            message: MessageRef {
                id,
                created_us,
                system: kind.is_system(),
            },
            audience: audience.clone(),
        }
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

/// Up to `limit` events after `after`, with the hints of message events read from the
/// messages they are about (one primary-key lookup each).
pub(crate) fn events_after(
    conn: &Connection,
    after: i64,
    limit: usize,
) -> StoreResult<Vec<CommittedEvent>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT e.position, e.conversation, e.kind, e.message_id, e.identity, e.payload, e.at,
                    m.created_on, m.kind, m.audience
             FROM events AS e
             LEFT JOIN messages AS m ON m.conversation = e.conversation AND m.id = e.message_id
                 AND e.kind IN ('messageReceived', 'messageEdited', 'messageDeleted')
             WHERE e.position > ?1
             ORDER BY e.position
             LIMIT ?2",
        )
        .db()?;
    let rows = stmt
        .query_map(
            params![after, i64::try_from(limit).unwrap_or(i64::MAX)],
            |row| {
                let kind: String = row.get(2)?;
                let conversation: Option<[u8; 16]> = row.get(1)?;
                let message_id: Option<i64> = row.get(3)?;
                let identity: Option<String> = row.get(4)?;
                let created_on: Option<i64> = row.get(7)?;
                let message_kind: Option<String> = row.get(8)?;
                let audience: Option<String> = row.get(9)?;
                Ok((
                    row.get::<_, i64>(0)?,
                    conversation,
                    kind,
                    message_id,
                    identity,
                    row.get::<_, String>(5)?,
                    row.get::<_, i64>(6)?,
                    created_on.zip(message_kind),
                    audience,
                ))
            },
        )
        .db()?;
    let mut events = Vec::new();
    for row in rows {
        let (position, conversation, kind, message_id, identity, data, at_us, message, audience) =
            row.db()?;
        let bad = |what: &str| StoreError::Unavailable(format!("event {position}: bad {what}"));
        let kind = EventKind::parse(&kind).ok_or_else(|| bad("kind"))?;
        let identity = identity
            .map(codec::identity_from_text)
            .transpose()
            .map_err(|_| bad("identity"))?;
        let message = match (message_id, message) {
            (Some(id), Some((created_us, message_kind))) => Some(MessageRef {
                id,
                created_us,
                system: MessageType::parse(&message_kind).is_none_or(MessageType::is_system),
            }),
            _ => None,
        };
        events.push(CommittedEvent::new(EventParts {
            position: Some(position),
            kind,
            conversation: conversation.map(|key| ConversationId(u128::from_be_bytes(key))),
            identity,
            message,
            audience: decode_audience(audience.as_deref()).ok_or_else(|| bad("audience"))?,
            at_us,
            data,
        }));
    }
    Ok(events)
}

/// `messages.audience` read back: NULL for the members, `*` for every subscriber, or a JSON
/// array of raw ids.
fn decode_audience(text: Option<&str>) -> Option<Audience> {
    match text {
        None => Some(Audience::Members),
        Some(codec::ALL_SUBSCRIBERS) => Some(Audience::AllSubscribers),
        Some(list) => serde_json::from_str(list).ok().map(Audience::Subscribers),
    }
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
/// Serialized straight from the message (no `serde_json::Value` in between); the fields are in
/// alphabetical order, as a JSON object map writes them.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MessageEventData<'a> {
    /// Who may read it besides the members: stream and webhook deliveries filter on the typed
    /// audience (`messages.audience`); the data names only its kind.
    audience: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a MessageContent>,
    conversation: String,
    created_on: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    deleted_on: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    edited_on: Option<String>,
    message_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<&'a Metadata>,
    sender: Option<&'a str>,
    sender_display_name: Option<&'a str>,
    sequence_id: i64,
    #[serde(rename = "type")]
    kind: &'static str,
    version: String,
}

pub(crate) fn message_event_data(message: &Message) -> StoreResult<String> {
    let deleted = message.deleted_on.is_some();
    serde_json::to_string(&MessageEventData {
        audience: audience_name(&message.audience),
        content: (!deleted).then_some(&message.content),
        conversation: message.conversation.to_acs(),
        created_on: rfc3339(message.created_on),
        deleted_on: message.deleted_on.map(rfc3339),
        edited_on: message.edited_on.filter(|_| !deleted).map(rfc3339),
        message_id: message.id.0.to_string(),
        metadata: (!deleted).then_some(&message.metadata),
        sender: message.sender.as_ref().map(IdentityId::as_str),
        sender_display_name: message.sender_display_name.as_deref(),
        sequence_id: message.sequence_id,
        kind: message.kind.as_str(),
        version: message.version.to_string(),
    })
    .map_err(|e| StoreError::Unavailable(format!("event data: {e}")))
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
        CommittedEvent, EventSink, NewConversation, NewMessage, Store, SystemClock,
    };
    use parking_lot::Mutex;

    /// The typed data of a message event is the JSON object each event carried before it was
    /// typed: the same fields and values, in the same order (the stream and webhooks send it as
    /// it is).
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
            let text = super::message_event_data(message).expect("data");
            let parsed: serde_json::Value = serde_json::from_str(&text).expect("JSON");
            assert_eq!(parsed, expected);
            // Written in the order a JSON object map writes its keys.
            assert_eq!(text, expected.to_string());
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
        for i in 0..5 {
            store
                .append_message(NewMessage {
                    conversation: id,
                    kind: MessageType::Text,
                    content: MessageContent {
                        text: Some(format!("m{i}")),
                        ..MessageContent::default()
                    },
                    sender: Some(alice.clone()),
                    sender_display_name: None,
                    metadata: Metadata::new(),
                    audience: Audience::Members,
                })
                .await
                .expect("append");
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

        let live: Vec<Arc<CommittedEvent>> = sink.0.lock().clone();
        assert_eq!(live.len(), 7, "created, participantAdded, 5 messages");
        assert_eq!(live[0].kind, EventKind::ConversationCreated);
        let logged = store.events_after(0, 100).await.expect("read");
        assert_eq!(logged.len(), 7);
        for (published, read) in live.iter().zip(&logged) {
            // The same event, byte for byte, whether it came live or from the log.
            assert_eq!(**published, *read);
        }
        assert!(logged[2].message.is_some_and(|m| !m.system));
        assert!(logged[1].message.is_some_and(|m| m.system));
        assert_eq!(store.events_after(5, 100).await.expect("read").len(), 2);

        let bounds = store.event_bounds().await.expect("bounds");
        assert_eq!((bounds.purged_through, bounds.head), (0, 7));
        // Keep the newest 3, two positions per write.
        assert_eq!(
            store.purge_events(None, Some(3), 2).await.expect("purge"),
            2
        );
        assert_eq!(
            store.purge_events(None, Some(3), 2).await.expect("purge"),
            2
        );
        assert_eq!(
            store.purge_events(None, Some(3), 2).await.expect("purge"),
            0
        );
        let bounds = store.event_bounds().await.expect("bounds");
        assert_eq!((bounds.purged_through, bounds.head), (4, 7));
        let kept = store.events_after(0, 100).await.expect("read");
        assert_eq!(kept.first().and_then(|e| e.position), Some(5));
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
            7
        );

        let memberships = store.list_memberships(&alice).await.expect("memberships");
        assert_eq!(memberships.len(), 1);
        assert_eq!(memberships[0].conversation, id);
        assert_eq!(memberships[0].role, Role::Admin);
        store.close().await;
    }
}
