//! The read queries. Each takes a plain connection: the read pool's, or the writer's when a write
//! needs to read inside its own transaction.
//!
//! Every listing is keyset-paged on an index, so a page costs the same however deep it is.

use confab_core::ids::{ConversationId, IdentityId, MessageId};
use confab_core::model::{
    Application, Conversation, ConversationSummary, GroupView, Identity, Member, Message, Page,
    Participant, ReadReceipt, RefreshToken, SubgroupLink,
};
use confab_core::ports::{ListQuery, MessageQuery, StoreResult};
use rusqlite::{params, Connection, OptionalExtension};
use time::OffsetDateTime;

use crate::codec::{
    self, conv_key, fetch_limit, into_page, DbResult, APPLICATION_COLUMNS, CONVERSATION_COLUMNS,
    GROUP_COUNTS, IDENTITY_COLUMNS, MESSAGE_COLUMNS, M_MESSAGE_COLUMNS, PARTICIPANT_COLUMNS,
    RECEIPT_COLUMNS, REFRESH_TOKEN_COLUMNS,
};

pub(crate) fn get_identity(conn: &Connection, id: &IdentityId) -> StoreResult<Option<Identity>> {
    let sql = format!("SELECT {IDENTITY_COLUMNS} FROM identities WHERE id = ?1");
    conn.prepare_cached(&sql)
        .db()?
        .query_row([id.as_str()], codec::identity_from_row)
        .optional()
        .db()
}

pub(crate) fn get_conversation(
    conn: &Connection,
    id: ConversationId,
) -> StoreResult<Option<Conversation>> {
    let sql = format!("SELECT {CONVERSATION_COLUMNS} FROM conversations AS c WHERE c.id = ?1");
    conn.prepare_cached(&sql)
        .db()?
        .query_row([conv_key(id)], codec::conversation_from_row)
        .optional()
        .db()
}

/// The conversations `member` is in, most recent activity (last message, else creation) first,
/// then by id. The sort runs over the member's conversations only (participants_by_identity).
pub(crate) fn list_conversations(
    conn: &Connection,
    member: &IdentityId,
    active_since: Option<OffsetDateTime>,
    after: Option<&str>,
    limit: usize,
) -> StoreResult<Page<ConversationSummary>> {
    // Without a cursor, start above every possible key.
    let (before_activity, before_id) = match after {
        Some(cursor) => codec::parse_conversation_cursor(cursor)?,
        None => (i64::MAX, [0xff; 16]),
    };
    let since = active_since.map_or(i64::MIN, codec::micros_ceil);
    let mut stmt = conn
        .prepare_cached(concat!(
            "SELECT id, topic, deleted_on, last_message_on,
                        COALESCE(last_message_on, created_on) AS activity
                 FROM (SELECT c.id, c.topic, c.deleted_on, c.created_on, ",
            codec::last_message_on!(),
            " AS last_message_on
                       FROM participants AS p
                       JOIN conversations AS c ON c.id = p.conversation
                       WHERE p.identity = ?1)
                 WHERE activity >= ?2
                   AND (activity < ?3 OR (activity = ?3 AND id < ?4))
                 ORDER BY activity DESC, id DESC
                 LIMIT ?5"
        ))
        .db()?;
    let rows = stmt
        .query_map(
            params![
                member.as_str(),
                since,
                before_activity,
                before_id,
                fetch_limit(limit)
            ],
            |row| {
                let summary = ConversationSummary {
                    id: codec::conversation_at(row, 0)?,
                    topic: row.get(1)?,
                    deleted_on: codec::opt_time_at(row, 2)?,
                    last_message_on: codec::opt_time_at(row, 3)?,
                };
                Ok((summary, row.get::<_, i64>(4)?))
            },
        )
        .db()?
        .collect::<rusqlite::Result<Vec<_>>>()
        .db()?;
    let page = into_page(rows, limit, |(summary, activity)| {
        codec::conversation_cursor(*activity, summary.id)
    });
    Ok(Page {
        items: page.items.into_iter().map(|(summary, _)| summary).collect(),
        next: page.next,
    })
}

pub(crate) fn get_participant(
    conn: &Connection,
    conversation: ConversationId,
    identity: &IdentityId,
) -> StoreResult<Option<Participant>> {
    // A subscriber is answered with role `subscriber` (an identity is never both: the writes
    // keep the two tables apart).
    let sql = format!(
        "SELECT {PARTICIPANT_COLUMNS} FROM participants WHERE conversation = ?1 AND identity = ?2
         UNION ALL
         SELECT identity, NULL, NULL, NULL, 'subscriber' FROM subscribers
         WHERE conversation = ?1 AND identity = ?2
         LIMIT 1"
    );
    conn.prepare_cached(&sql)
        .db()?
        .query_row(
            params![conv_key(conversation), identity.as_str()],
            codec::participant_from_row,
        )
        .optional()
        .db()
}

/// Participants by identity. `skip` applies to the first page only (OFFSET is cheap here: a
/// conversation has a few hundred participants at most).
pub(crate) fn list_participants(
    conn: &Connection,
    conversation: ConversationId,
    query: &ListQuery,
) -> StoreResult<Page<Participant>> {
    let sql = format!(
        "SELECT {PARTICIPANT_COLUMNS} FROM participants
         WHERE conversation = ?1 AND identity > ?2
         ORDER BY identity LIMIT ?3 OFFSET ?4"
    );
    list_by_identity(
        conn,
        &sql,
        conversation,
        query,
        codec::participant_from_row,
        |p| &p.identity,
    )
}

/// One page of a per-conversation list ordered by an identity column: `sql` takes the
/// conversation, the cursor's identity, the fetch limit and the first page's skip.
fn list_by_identity<T>(
    conn: &Connection,
    sql: &str,
    conversation: ConversationId,
    query: &ListQuery,
    from_row: fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    identity_of: fn(&T) -> &IdentityId,
) -> StoreResult<Page<T>> {
    let (after, skip) = name_bounds(query)?;
    let rows = conn
        .prepare_cached(sql)
        .db()?
        .query_map(
            params![
                conv_key(conversation),
                after,
                fetch_limit(query.limit),
                skip
            ],
            from_row,
        )
        .db()?
        .collect::<rusqlite::Result<Vec<_>>>()
        .db()?;
    Ok(into_page(rows, query.limit, |item| {
        codec::name_cursor(identity_of(item))
    }))
}

pub(crate) fn get_message(
    conn: &Connection,
    conversation: ConversationId,
    id: MessageId,
) -> StoreResult<Option<Message>> {
    let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?1 AND conversation = ?2");
    conn.prepare_cached(&sql)
        .db()?
        .query_row(
            params![id.0, conv_key(conversation)],
            codec::message_from_row,
        )
        .optional()
        .db()
}

/// Messages newest first, keyset-paged on the id.
///
/// Unset bounds are passed as the extreme values rather than `?n IS NULL OR …`, which would stop
/// SQLite from using them as index range bounds (and page 50,000 would scan 50,000 pages).
pub(crate) fn list_messages(
    conn: &Connection,
    conversation: ConversationId,
    query: &MessageQuery,
) -> StoreResult<Page<Message>> {
    let before = match &query.after {
        Some(cursor) => codec::parse_message_cursor(cursor)?,
        None => i64::MAX,
    };
    let created_from = query.created_from.map_or(i64::MIN, codec::micros_ceil);
    // A message's id is max(previous id + 1, its creation time in µs), so created_on >= t
    // implies id >= t: the id bound lets the scan stop at the shared-history boundary.
    let min_id = created_from;
    if let Some(subscriber) = &query.subscriber {
        let rows = collect_messages(
            conn,
            &subscriber_messages_sql(),
            params![
                conv_key(conversation),
                before,
                min_id,
                created_from,
                fetch_limit(query.limit),
                subscriber.as_str(),
                query.changed_since.map_or(i64::MIN, codec::micros_ceil),
            ],
            query.limit,
        )?;
        return Ok(into_page(rows, query.limit, |m| {
            codec::message_cursor(m.id)
        }));
    }
    let rows = match query.changed_since {
        None => collect_messages(
            conn,
            &messages_sql(false),
            params![
                conv_key(conversation),
                before,
                min_id,
                created_from,
                fetch_limit(query.limit)
            ],
            query.limit,
        )?,
        Some(since) => collect_messages(
            conn,
            &messages_sql(true),
            params![
                conv_key(conversation),
                codec::micros_ceil(since),
                before,
                min_id,
                created_from,
                fetch_limit(query.limit)
            ],
            query.limit,
        )?,
    };
    Ok(into_page(rows, query.limit, |m| {
        codec::message_cursor(m.id)
    }))
}

/// The listing query: plain (walks `(conversation, id)` backwards from the cursor and stops
/// after a page) or by change time.
fn messages_sql(by_change: bool) -> String {
    if by_change {
        // What changed since t: what was created since t — ids from t on, since an id is never
        // below its creation time in µs — and what was created before but edited or deleted
        // since, which is all `messages_by_change` holds (a partial index, so that appending a
        // message does not write to it). Each arm walks its key backwards (the table's own,
        // then the partial index) and stops after a page; a message in both arms is one row
        // (UNION).
        format!(
            "SELECT * FROM (
                 SELECT {MESSAGE_COLUMNS} FROM messages
                 WHERE conversation = ?1 AND id < ?3 AND id >= max(?4, ?2)
                   AND changed_on >= ?2 AND created_on >= ?5
                 ORDER BY id DESC LIMIT ?6)
             UNION
             SELECT * FROM (
                 SELECT {MESSAGE_COLUMNS} FROM messages INDEXED BY messages_by_change
                 WHERE conversation = ?1 AND (edited_on IS NOT NULL OR deleted_on IS NOT NULL)
                   AND changed_on >= ?2 AND id < ?3 AND id >= ?4 AND created_on >= ?5
                 ORDER BY id DESC LIMIT ?6)
             ORDER BY id DESC LIMIT ?6"
        )
    } else {
        format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages
             WHERE conversation = ?1 AND id < ?2 AND id >= ?3 AND created_on >= ?4
             ORDER BY id DESC LIMIT ?5"
        )
    }
}

/// A subscriber's messages: two keyset walks down `message_audience` (the messages listing the
/// subscriber, the messages to every subscriber), each stopping after a page, merged. The
/// members' messages are never scanned.
fn subscriber_messages_sql() -> String {
    let arm = |identity: &str| {
        format!(
            "SELECT * FROM (
                 SELECT {M_MESSAGE_COLUMNS} FROM message_audience AS a
                 JOIN messages AS m ON m.conversation = a.conversation AND m.id = a.message_id
                 WHERE a.conversation = ?1 AND a.identity = {identity}
                   AND a.message_id < ?2 AND a.message_id >= ?3
                   AND m.created_on >= ?4 AND m.changed_on >= ?7
                 ORDER BY a.message_id DESC LIMIT ?5)"
        )
    };
    format!(
        "{} UNION ALL {} ORDER BY id DESC LIMIT ?5",
        arm("?6"),
        arm(&format!("'{}'", codec::ALL_SUBSCRIBERS))
    )
}

/// The rows of a message listing of at most `limit` messages (plus the one that says whether
/// there is a next page). The vector is sized for them up front: rows come from an iterator of
/// unknown length, and a page of 50 messages regrown 4, 8, 16, 32 … was copied four times.
fn collect_messages(
    conn: &Connection,
    sql: &str,
    params: &[&dyn rusqlite::ToSql],
    limit: usize,
) -> StoreResult<Vec<Message>> {
    let mut stmt = conn.prepare_cached(sql).db()?;
    let rows = stmt.query_map(params, codec::message_from_row).db()?;
    // Capped: the limit is the caller's page size, not a promise of that many rows.
    let mut messages = Vec::with_capacity(codec::page_size(limit).saturating_add(1).min(1024));
    for row in rows {
        messages.push(row.db()?);
    }
    Ok(messages)
}

/// Read receipts by reader, paged like participants.
pub(crate) fn list_read_receipts(
    conn: &Connection,
    conversation: ConversationId,
    query: &ListQuery,
) -> StoreResult<Page<ReadReceipt>> {
    let sql = format!(
        "SELECT {RECEIPT_COLUMNS} FROM read_receipts
         WHERE conversation = ?1 AND reader > ?2
         ORDER BY reader LIMIT ?3 OFFSET ?4"
    );
    list_by_identity(
        conn,
        &sql,
        conversation,
        query,
        codec::receipt_from_row,
        |r| &r.reader,
    )
}

/// A conversation as a group seen by `viewer`, in one statement.
pub(crate) fn get_group(
    conn: &Connection,
    id: ConversationId,
    viewer: &IdentityId,
) -> StoreResult<Option<GroupView>> {
    let sql = format!(
        "SELECT {CONVERSATION_COLUMNS},
             COALESCE(
                 (SELECT role FROM participants AS v WHERE v.conversation = c.id AND v.identity = ?2),
                 (SELECT 'subscriber' FROM subscribers AS v
                  WHERE v.conversation = c.id AND v.identity = ?2)),
             {GROUP_COUNTS}
         FROM conversations AS c WHERE c.id = ?1"
    );
    conn.prepare_cached(&sql)
        .db()?
        .query_row(
            params![conv_key(id), viewer.as_str()],
            codec::group_from_row,
        )
        .optional()
        .db()
}

/// The live conversations of `member` as groups, keyset-paged by id on
/// participants_by_identity.
pub(crate) fn list_groups(
    conn: &Connection,
    member: &IdentityId,
    after: Option<&str>,
    limit: usize,
) -> StoreResult<Page<GroupView>> {
    // Without a cursor, start after the empty BLOB, which sorts before every id.
    let after: Vec<u8> = match after {
        Some(cursor) => codec::parse_group_cursor(cursor)?.to_vec(),
        None => Vec::new(),
    };
    let sql = format!(
        "SELECT {CONVERSATION_COLUMNS}, p.role, {GROUP_COUNTS}
         FROM participants AS p
         JOIN conversations AS c ON c.id = p.conversation
         WHERE p.identity = ?1 AND p.conversation > ?2 AND c.deleted_on IS NULL
         ORDER BY p.conversation
         LIMIT ?3"
    );
    let rows = conn
        .prepare_cached(&sql)
        .db()?
        .query_map(
            params![member.as_str(), after, fetch_limit(limit)],
            codec::group_from_row,
        )
        .db()?
        .collect::<rusqlite::Result<Vec<_>>>()
        .db()?;
    Ok(into_page(rows, limit, |g| {
        codec::group_cursor(g.conversation.id)
    }))
}

/// Participants with whether their identity exists, paged like `list_participants`.
pub(crate) fn list_members(
    conn: &Connection,
    conversation: ConversationId,
    query: &ListQuery,
) -> StoreResult<Page<Member>> {
    let (after, skip) = name_bounds(query)?;
    let sql = format!(
        "SELECT {PARTICIPANT_COLUMNS},
             EXISTS (SELECT 1 FROM identities AS i WHERE i.id = participants.identity)
         FROM participants
         WHERE conversation = ?1 AND identity > ?2
         ORDER BY identity LIMIT ?3 OFFSET ?4"
    );
    let rows = conn
        .prepare_cached(&sql)
        .db()?
        .query_map(
            params![
                conv_key(conversation),
                after,
                fetch_limit(query.limit),
                skip
            ],
            codec::member_from_row,
        )
        .db()?
        .collect::<rusqlite::Result<Vec<_>>>()
        .db()?;
    Ok(into_page(rows, query.limit, |m| {
        codec::name_cursor(&m.participant.identity)
    }))
}

/// The links below `root` to live subgroups: direct, or every link reachable through live
/// groups (a recursive walk; `UNION` visits each group once).
pub(crate) fn list_subgroups(
    conn: &Connection,
    root: ConversationId,
    all: bool,
    limit: usize,
) -> StoreResult<Vec<SubgroupLink>> {
    let columns = format!(
        "s.parent, {CONVERSATION_COLUMNS},
         EXISTS (SELECT 1 FROM subgroups AS g JOIN conversations AS k ON k.id = g.child
                 WHERE g.parent = c.id AND k.deleted_on IS NULL)"
    );
    let sql = if all {
        format!(
            "WITH RECURSIVE reach(id) AS (
                 SELECT ?1
                 UNION
                 SELECT s.child FROM reach
                 JOIN subgroups AS s ON s.parent = reach.id
                 JOIN conversations AS k ON k.id = s.child
                 WHERE k.deleted_on IS NULL
             )
             SELECT {columns} FROM reach
             JOIN subgroups AS s ON s.parent = reach.id
             JOIN conversations AS c ON c.id = s.child
             WHERE c.deleted_on IS NULL
             ORDER BY s.parent, s.child LIMIT ?2"
        )
    } else {
        format!(
            "SELECT {columns} FROM subgroups AS s
             JOIN conversations AS c ON c.id = s.child
             WHERE s.parent = ?1 AND c.deleted_on IS NULL
             ORDER BY s.parent, s.child LIMIT ?2"
        )
    };
    conn.prepare_cached(&sql)
        .db()?
        .query_map(
            params![conv_key(root), i64::try_from(limit).unwrap_or(i64::MAX)],
            codec::subgroup_link_from_row,
        )
        .db()?
        .collect::<rusqlite::Result<Vec<_>>>()
        .db()
}

/// Subscribers as members (role `subscriber`), keyset-paged by identity on the primary key.
pub(crate) fn list_subscribers(
    conn: &Connection,
    conversation: ConversationId,
    after: Option<&str>,
    limit: usize,
) -> StoreResult<Page<Member>> {
    let after = match after {
        Some(cursor) => codec::parse_subscriber_cursor(cursor)?,
        None => String::new(),
    };
    let rows = conn
        .prepare_cached(
            "SELECT identity, NULL, NULL, NULL, 'subscriber',
                 EXISTS (SELECT 1 FROM identities AS i WHERE i.id = s.identity)
             FROM subscribers AS s
             WHERE conversation = ?1 AND identity > ?2
             ORDER BY identity LIMIT ?3",
        )
        .db()?
        .query_map(
            params![conv_key(conversation), after, fetch_limit(limit)],
            codec::member_from_row,
        )
        .db()?
        .collect::<rusqlite::Result<Vec<_>>>()
        .db()?;
    Ok(into_page(rows, limit, |m| {
        codec::subscriber_cursor(&m.participant.identity)
    }))
}

/// Those of `identities` that subscribe to the conversation, in order.
pub(crate) fn find_subscribers(
    conn: &Connection,
    conversation: ConversationId,
    identities: &[IdentityId],
) -> StoreResult<Vec<IdentityId>> {
    let mut stmt = conn
        .prepare_cached("SELECT 1 FROM subscribers WHERE conversation = ?1 AND identity = ?2")
        .db()?;
    let mut found = Vec::new();
    for identity in identities {
        let hit = stmt
            .query_row(params![conv_key(conversation), identity.as_str()], |_| {
                Ok(())
            })
            .optional()
            .db()?;
        if hit.is_some() {
            found.push(identity.clone());
        }
    }
    Ok(found)
}

pub(crate) fn get_application(conn: &Connection, id: &str) -> StoreResult<Option<Application>> {
    let sql = format!("SELECT {APPLICATION_COLUMNS} FROM applications WHERE id = ?1");
    conn.prepare_cached(&sql)
        .db()?
        .query_row([id], codec::application_from_row)
        .optional()
        .db()
}

pub(crate) fn list_applications(conn: &Connection) -> StoreResult<Vec<Application>> {
    let sql = format!("SELECT {APPLICATION_COLUMNS} FROM applications ORDER BY created_on, id");
    conn.prepare_cached(&sql)
        .db()?
        .query_map([], codec::application_from_row)
        .db()?
        .collect::<rusqlite::Result<Vec<_>>>()
        .db()
}

pub(crate) fn get_refresh_token(
    conn: &Connection,
    hash: &[u8; 32],
) -> StoreResult<Option<RefreshToken>> {
    let sql = format!("SELECT {REFRESH_TOKEN_COLUMNS} FROM refresh_tokens WHERE hash = ?1");
    conn.prepare_cached(&sql)
        .db()?
        .query_row([hash], codec::refresh_token_from_row)
        .optional()
        .db()
}

/// The lower bound (exclusive) and the OFFSET for a by-identity listing: `skip` counts on the
/// first page only; "" sorts before every identity.
fn name_bounds(query: &ListQuery) -> StoreResult<(String, i64)> {
    match &query.after {
        Some(cursor) => Ok((codec::parse_name_cursor(cursor)?, 0)),
        None => Ok((String::new(), i64::try_from(query.skip).unwrap_or(i64::MAX))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{self, Durability};

    fn plan(conn: &Connection, sql: &str) -> String {
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("explain");
        let count = stmt.parameter_count();
        let params: Vec<i64> = vec![0; count];
        stmt.query_map(rusqlite::params_from_iter(params), |row| {
            row.get::<_, String>(3)
        })
        .expect("plan")
        .collect::<rusqlite::Result<Vec<_>>>()
        .expect("rows")
        .join("\n")
    }

    /// Paging must be an index range walk that stops after a page: no sort, no OFFSET.
    #[test]
    fn message_pages_walk_the_index_without_sorting() {
        let scratch = crate::ScratchFiles::new("plan");
        let conn = schema::open_writer(&scratch.0, Durability::Off).expect("open");
        let subscriber = plan(&conn, &subscriber_messages_sql());
        // Two index range walks; the only sorts are of their outputs (a page each) for the merge.
        assert!(
            subscriber.matches("SEARCH a USING PRIMARY KEY").count() == 2,
            "{subscriber}"
        );
        assert!(!subscriber.contains("SCAN a"), "{subscriber}");
        assert!(!subscriber.contains("SCAN m"), "{subscriber}");
        let plain = plan(&conn, &messages_sql(false));
        assert!(plain.contains("USING PRIMARY KEY"), "{plain}");
        assert!(plain.contains("id<?") && plain.contains("id>?"), "{plain}");
        assert!(!plain.contains("TEMP B-TREE"), "{plain}");
        let conversations = plan(
            &conn,
            "SELECT 1 FROM participants AS p JOIN conversations AS c ON c.id = p.conversation
             WHERE p.identity = ?1",
        );
        assert!(
            conversations.contains("participants_by_identity"),
            "{conversations}"
        );
    }
}
