//! The event log as the real-time stream sees it: committed events handed to the event sink
//! right after COMMIT (no re-read: each is made where its row is inserted), the keyset read a
//! reconnecting stream resumes with, the resumable bounds, retention, and the memberships a
//! stream starts from.

use std::sync::{Arc, OnceLock};

use confab_core::ids::{ConversationId, IdentityId};
use confab_core::model::{EventKind, Role};
use confab_core::ports::{CommittedEvent, EventBounds, EventSink, Membership, StoreResult};
use confab_store_common::message_events::{
    committed_event, LoggedEvent, LoggedMessage, MessageHints,
};
use rusqlite::{params, Connection, OptionalExtension};
use time::OffsetDateTime;

use crate::codec::{self, DbResult};
use crate::writer::Writer;

/// The `meta` key of the purge watermark: every position up to it may be gone.
const PURGED_THROUGH: &str = "events_purged_through";

/// Where the writer puts committed events; set at most once, read with one atomic load.
pub(crate) type SinkSlot = Arc<OnceLock<Arc<dyn EventSink>>>;

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
        self.pending.borrow_mut().push(Arc::new(committed_event(
            position,
            kind,
            conversation,
            identity,
            hints,
            data,
            at_us,
        )));
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
                    Some(created_us) => Some(LoggedMessage {
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
                Ok(LoggedEvent {
                    position: row.get(0)?,
                    conversation: row
                        .get::<_, Option<[u8; 16]>>(1)?
                        .map(codec::conversation_from_key),
                    kind: row.get(2)?,
                    message_id: row.get(3)?,
                    identity: row.get(4)?,
                    payload: row.get(5)?,
                    at_us: row.get(6)?,
                    message,
                })
            },
        )
        .db()?;
    let mut events = Vec::new();
    for row in rows {
        events.push(row.db()?.into_committed()?);
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use confab_core::ids::{ConversationId, IdentityId};
    use confab_core::model::{
        Audience, EventKind, MessageContent, MessageType, Metadata, Participant, Role,
    };
    use confab_core::ports::{
        CommittedEvent, EventSink, MessageEdit, NewConversation, NewMessage, Store, SystemClock,
    };
    use parking_lot::Mutex;

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
