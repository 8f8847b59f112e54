//! The event log as the real-time stream sees it: the keyset read a reconnecting stream resumes
//! with, the resumable bounds, retention, and the memberships a stream starts from. (Events are
//! logged, and handed to the sink after COMMIT, by the writer: `writer.rs`.)

use confab_core::ids::IdentityId;
use confab_core::model::Role;
use confab_core::ports::{CommittedEvent, EventBounds, Membership, StoreResult};
use confab_store_common::message_events::{LoggedEvent, LoggedMessage};
use confab_store_common::stored::micros;
use postgres::Row;
use time::OffsetDateTime;

use crate::db::{at_once, conversation_at, get, opt_conversation_at, Queries};
use crate::writer::Writer;

/// The `meta` key of the purge watermark: every position up to it may be gone.
const PURGED_THROUGH: &str = "events_purged_through";

/// The resumable range of positions. The head is the newest logged position, or the purge
/// watermark once every row up to it is gone. (Not the identity sequence's last value: a batch
/// that rolled back took positions that will never be logged.)
pub(crate) async fn bounds(db: &impl Queries) -> StoreResult<EventBounds> {
    let row = db
        .query_one(
            "SELECT COALESCE((SELECT value FROM meta WHERE key = $1), 0),
                COALESCE((SELECT MAX(position) FROM events), 0)",
            &[&PURGED_THROUGH],
        )
        .await?;
    let purged_through: i64 = get(&row, 0)?;
    let newest: i64 = get(&row, 1)?;
    Ok(EventBounds {
        purged_through,
        head: newest.max(purged_through),
    })
}

fn logged_event(row: &Row) -> StoreResult<LoggedEvent> {
    let conversation = opt_conversation_at(row, 1)?;
    let message = match get::<Option<i64>>(row, 7)? {
        Some(created_us) => Some(LoggedMessage {
            created_us,
            kind: get(row, 8)?,
            audience: get(row, 9)?,
            sequence_id: get(row, 10)?,
            sender_display_name: get(row, 11)?,
            content: get(row, 12)?,
            metadata: get(row, 13)?,
        }),
        None => None,
    };
    Ok(LoggedEvent {
        position: get(row, 0)?,
        conversation,
        kind: get(row, 2)?,
        message_id: get(row, 3)?,
        identity: get(row, 4)?,
        payload: get(row, 5)?,
        at_us: get(row, 6)?,
        message,
    })
}

/// Up to `limit` events after `after`. A message event's data is made whole again from the
/// message it is about (one primary-key lookup each), which also gives its stream hints.
pub(crate) async fn events_after(
    db: &impl Queries,
    after: i64,
    limit: usize,
) -> StoreResult<Vec<CommittedEvent>> {
    let rows = db
        .query(
            "SELECT e.position, e.conversation, e.kind, e.message_id,
                COALESCE(e.identity, m.sender), e.payload, e.at,
                m.created_on, m.kind, m.audience, m.sequence_id, m.sender_display_name,
                m.content, m.metadata
         FROM events AS e
         LEFT JOIN messages AS m ON m.conversation = e.conversation AND m.id = e.message_id
             AND e.kind IN ('messageReceived', 'messageEdited', 'messageDeleted')
         WHERE e.position > $1
         ORDER BY e.position
         LIMIT $2",
            &[&after, &i64::try_from(limit).unwrap_or(i64::MAX)],
        )
        .await?;
    rows.iter()
        .map(|row| logged_event(row)?.into_committed())
        .collect()
}

/// The live conversations `identity` belongs to, as a participant or a subscriber.
pub(crate) async fn list_memberships(
    db: &impl Queries,
    identity: &IdentityId,
) -> StoreResult<Vec<Membership>> {
    let rows = db
        .query(
            "SELECT p.conversation, p.role, p.share_history_time, p.added_on
         FROM participants AS p JOIN conversations AS c ON c.id = p.conversation
         WHERE p.identity = $1 AND c.deleted_on IS NULL
         UNION ALL
         SELECT s.conversation, 'subscriber', NULL, s.added_on
         FROM subscribers AS s JOIN conversations AS c ON c.id = s.conversation
         WHERE s.identity = $1 AND c.deleted_on IS NULL",
            &[&identity.as_str()],
        )
        .await?;
    rows.iter()
        .map(|row| {
            let role: &str = get(row, 1)?;
            Ok(Membership {
                conversation: conversation_at(row, 0)?,
                role: Role::parse(role).unwrap_or(Role::Member),
                share_history_us: get(row, 2)?,
                added_us: get(row, 3)?,
            })
        })
        .collect()
}

impl Writer {
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
        let bounds = at_once(bounds(&self.db))?;
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
            let first_young = self.db.query_opt(
                "SELECT position FROM events WHERE position > $1 AND position <= $2
                     AND at >= $3
                 ORDER BY position LIMIT 1",
                &[&bounds.purged_through, &window, &micros(older_than)],
            )?;
            let first_young: Option<i64> =
                first_young.as_ref().map(|row| get(row, 0)).transpose()?;
            through = through.max(first_young.map_or(window, |young| young - 1));
        }
        let through = through.min(window);
        if through <= bounds.purged_through {
            return Ok(0);
        }
        let deleted = self.db.execute(
            "DELETE FROM events WHERE position > $1 AND position <= $2",
            &[&bounds.purged_through, &through],
        )?;
        self.db.execute(
            "INSERT INTO meta (key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            &[&PURGED_THROUGH, &through],
        )?;
        Ok(usize::try_from(deleted).unwrap_or(usize::MAX))
    }
}
