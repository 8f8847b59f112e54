//! The conversation reads. Each takes any connection ([`Queries`]): the read pool's, or the
//! writer's (through `at_once`) when a write needs to read inside its own transaction.
//!
//! Every listing is keyset-paged on an index, so a page costs the same however deep it is (the
//! short per-conversation lists by identity also take a first-page `skip`, as OFFSET).

use std::sync::LazyLock;

use confab_core::ids::{ConversationId, IdentityId, MessageId};
use confab_core::model::{
    Conversation, ConversationKind, ConversationSummary, GroupView, Member, Message, Page,
    Participant, ReadReceipt, SubgroupLink,
};
use confab_core::ports::{ListQuery, MemberAccess, MessageQuery, StoreError, StoreResult};
use confab_store_common::cursors::{
    conversation_cursor, fetch_limit, group_cursor, into_page, message_cursor, name_cursor,
    page_size, parse_conversation_cursor, parse_group_cursor, parse_message_cursor,
    parse_name_cursor, parse_subscriber_cursor, subscriber_cursor,
};
use confab_store_common::stored::{conv_key, micros_ceil, ALL_SUBSCRIBERS};
use postgres::types::ToSql;
use postgres::Row;
use time::OffsetDateTime;

use crate::db::{conversation_at, get, Queries};
use crate::rows::{
    self, last_message_on, opt_time_at, CONVERSATION_COLUMNS, GROUP_COUNTS, MESSAGE_COLUMNS,
    M_MESSAGE_COLUMNS, PARTICIPANT_COLUMNS, RECEIPT_COLUMNS,
};

/// Decodes every row.
fn decode<T>(rows: &[Row], from_row: fn(&Row) -> StoreResult<T>) -> StoreResult<Vec<T>> {
    rows.iter().map(from_row).collect()
}

pub(crate) async fn get_conversation(
    db: &impl Queries,
    id: ConversationId,
) -> StoreResult<Option<Conversation>> {
    let sql = format!("SELECT {CONVERSATION_COLUMNS} FROM conversations AS c WHERE c.id = $1");
    db.query_opt(&sql, &[&conv_key(id).as_slice()])
        .await?
        .as_ref()
        .map(rows::conversation_from_row)
        .transpose()
}

/// The conversations `member` is in, most recent activity (last message, else creation) first,
/// then by id. The sort runs over the member's conversations only (participants_by_identity).
pub(crate) async fn list_conversations(
    db: &impl Queries,
    member: &IdentityId,
    active_since: Option<OffsetDateTime>,
    after: Option<&str>,
    limit: usize,
) -> StoreResult<Page<ConversationSummary>> {
    // Without a cursor, start above every possible key.
    let (before_activity, before_id) = match after {
        Some(cursor) => parse_conversation_cursor(cursor)?,
        None => (i64::MAX, [0xff; 16]),
    };
    let since = active_since.map_or(i64::MIN, micros_ceil);
    let found = db
        .query(
            concat!(
                "SELECT id, topic, deleted_on, last_message_on,
                    COALESCE(last_message_on, created_on) AS activity
             FROM (SELECT c.id, c.topic, c.deleted_on, c.created_on, ",
                last_message_on!(),
                " AS last_message_on
                   FROM participants AS p
                   JOIN conversations AS c ON c.id = p.conversation
                   WHERE p.identity = $1) AS mine
             WHERE COALESCE(last_message_on, created_on) >= $2
               AND (COALESCE(last_message_on, created_on) < $3
                    OR (COALESCE(last_message_on, created_on) = $3 AND id < $4))
             ORDER BY activity DESC, id DESC
             LIMIT $5"
            ),
            &[
                &member.as_str(),
                &since,
                &before_activity,
                &before_id.as_slice(),
                &fetch_limit(limit),
            ],
        )
        .await?;
    let rows = found
        .iter()
        .map(|row| {
            let summary = ConversationSummary {
                id: conversation_at(row, 0)?,
                topic: get(row, 1)?,
                deleted_on: opt_time_at(row, 2)?,
                last_message_on: opt_time_at(row, 3)?,
            };
            Ok((summary, get::<i64>(row, 4)?))
        })
        .collect::<StoreResult<Vec<_>>>()?;
    let page = into_page(rows, limit, |(summary, activity)| {
        conversation_cursor(*activity, summary.id)
    });
    Ok(Page {
        items: page.items.into_iter().map(|(summary, _)| summary).collect(),
        next: page.next,
    })
}

pub(crate) async fn get_participant(
    db: &impl Queries,
    conversation: ConversationId,
    identity: &IdentityId,
) -> StoreResult<Option<Participant>> {
    // A subscriber is answered with role `subscriber` (an identity is never both: the writes
    // keep the two tables apart).
    let sql = format!(
        "SELECT {PARTICIPANT_COLUMNS} FROM participants WHERE conversation = $1 AND identity = $2
         UNION ALL
         SELECT identity, NULL, NULL, NULL, 'subscriber' FROM subscribers
         WHERE conversation = $1 AND identity = $2
         LIMIT 1"
    );
    db.query_opt(
        &sql,
        &[&conv_key(conversation).as_slice(), &identity.as_str()],
    )
    .await?
    .as_ref()
    .map(rows::participant_from_row)
    .transpose()
}

/// What an authorization check needs, in one statement (it runs on nearly every call): the
/// conversation's kind and whether it is deleted, and `identity`'s place in it — a participant,
/// or a subscriber (answered with role `subscriber`, as [`get_participant`] does).
pub(crate) async fn get_membership(
    db: &impl Queries,
    conversation: ConversationId,
    identity: &IdentityId,
) -> StoreResult<Option<MemberAccess>> {
    let Some(row) = db
        .query_opt(
            "SELECT c.kind, c.deleted_on IS NOT NULL,
                COALESCE(p.identity, s.identity), p.display_name, p.share_history_time,
                p.metadata,
                CASE WHEN p.identity IS NOT NULL THEN p.role
                     WHEN s.identity IS NOT NULL THEN 'subscriber' END
         FROM conversations AS c
         LEFT JOIN participants AS p ON p.conversation = c.id AND p.identity = $2
         LEFT JOIN subscribers AS s ON s.conversation = c.id AND s.identity = $2
         WHERE c.id = $1",
            &[&conv_key(conversation).as_slice(), &identity.as_str()],
        )
        .await?
    else {
        return Ok(None);
    };
    let kind: &str = get(&row, 0)?;
    let role: Option<&str> = get(&row, 6)?;
    Ok(Some(MemberAccess {
        kind: ConversationKind::parse(kind).ok_or_else(|| {
            StoreError::Unavailable(format!("unknown conversation kind {kind:?}"))
        })?,
        deleted: get(&row, 1)?,
        participant: match role {
            Some(_) => Some(rows::participant_from_offset(&row, 2)?),
            None => None,
        },
    }))
}

/// Participants by identity. `skip` applies to the first page only (OFFSET is cheap here: a
/// conversation has a few hundred participants at most).
pub(crate) async fn list_participants(
    db: &impl Queries,
    conversation: ConversationId,
    query: &ListQuery,
) -> StoreResult<Page<Participant>> {
    let sql = format!(
        "SELECT {PARTICIPANT_COLUMNS} FROM participants
         WHERE conversation = $1 AND identity > $2
         ORDER BY identity LIMIT $3 OFFSET $4"
    );
    list_by_identity(
        db,
        &sql,
        conversation,
        query,
        rows::participant_from_row,
        |p| &p.identity,
    )
    .await
}

/// One page of a per-conversation list ordered by an identity column: `sql` takes the
/// conversation, the cursor's identity, the fetch limit and the first page's skip.
async fn list_by_identity<T>(
    db: &impl Queries,
    sql: &str,
    conversation: ConversationId,
    query: &ListQuery,
    from_row: fn(&Row) -> StoreResult<T>,
    identity_of: fn(&T) -> &IdentityId,
) -> StoreResult<Page<T>> {
    let (after, skip) = name_bounds(query)?;
    let found = db
        .query(
            sql,
            &[
                &conv_key(conversation).as_slice(),
                &after,
                &fetch_limit(query.limit),
                &skip,
            ],
        )
        .await?;
    let rows = decode(&found, from_row)?;
    Ok(into_page(rows, query.limit, |item| {
        name_cursor(identity_of(item))
    }))
}

pub(crate) async fn get_message(
    db: &impl Queries,
    conversation: ConversationId,
    id: MessageId,
) -> StoreResult<Option<Message>> {
    let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1 AND conversation = $2");
    db.query_opt(&sql, &[&id.0, &conv_key(conversation).as_slice()])
        .await?
        .as_ref()
        .map(rows::message_from_row)
        .transpose()
}

/// Messages newest first, keyset-paged on the id.
///
/// Unset bounds are passed as the extreme values rather than `$n IS NULL OR …`, which would
/// keep the planner from using them as index range bounds.
pub(crate) async fn list_messages(
    db: &impl Queries,
    conversation: ConversationId,
    query: &MessageQuery,
) -> StoreResult<Page<Message>> {
    let before = match &query.after {
        Some(cursor) => parse_message_cursor(cursor)?,
        None => i64::MAX,
    };
    let created_from = query.created_from.map_or(i64::MIN, micros_ceil);
    // A message's id is max(previous id + 1, its creation time in µs), so created_on >= t
    // implies id >= t: the id bound lets the scan stop at the shared-history boundary.
    let min_id = created_from;
    let key = conv_key(conversation);
    let limit = fetch_limit(query.limit);
    let rows = if let Some(subscriber) = &query.subscriber {
        let changed_since = query.changed_since.map_or(i64::MIN, micros_ceil);
        collect_messages(
            db,
            &SUBSCRIBER_MESSAGES_SQL,
            &[
                &key.as_slice(),
                &before,
                &min_id,
                &created_from,
                &limit,
                &subscriber.as_str(),
                &changed_since,
            ],
            query.limit,
        )
        .await?
    } else {
        match query.changed_since {
            None => {
                collect_messages(
                    db,
                    &MESSAGES_SQL,
                    &[&key.as_slice(), &before, &min_id, &created_from, &limit],
                    query.limit,
                )
                .await?
            }
            Some(since) => {
                collect_messages(
                    db,
                    &CHANGED_MESSAGES_SQL,
                    &[
                        &key.as_slice(),
                        &micros_ceil(since),
                        &before,
                        &min_id,
                        &created_from,
                        &limit,
                    ],
                    query.limit,
                )
                .await?
            }
        }
    };
    Ok(into_page(rows, query.limit, |m| message_cursor(m.id)))
}

/// The listing query: plain (walks `(conversation, id)` backwards from the cursor and stops
/// after a page) or by change time.
// Built once: a page's query is looked up among the prepared statements by its text.
static MESSAGES_SQL: LazyLock<String> = LazyLock::new(|| messages_sql(false));
static CHANGED_MESSAGES_SQL: LazyLock<String> = LazyLock::new(|| messages_sql(true));
static SUBSCRIBER_MESSAGES_SQL: LazyLock<String> = LazyLock::new(subscriber_messages_sql);

fn messages_sql(by_change: bool) -> String {
    if by_change {
        // What changed since t: what was created since t — ids from t on, since an id is never
        // below its creation time in µs — and what was created before but edited or deleted
        // since, which is all `messages_by_change` holds (a partial index, so that appending a
        // message does not write to it). Each arm walks its key backwards and stops after a
        // page; a message in both arms is one row (UNION).
        format!(
            "(SELECT {MESSAGE_COLUMNS} FROM messages
              WHERE conversation = $1 AND id < $3 AND id >= GREATEST($4::bigint, $2::bigint)
                AND changed_on >= $2 AND created_on >= $5
              ORDER BY id DESC LIMIT $6)
             UNION
             (SELECT {MESSAGE_COLUMNS} FROM messages
              WHERE conversation = $1 AND (edited_on IS NOT NULL OR deleted_on IS NOT NULL)
                AND changed_on >= $2 AND id < $3 AND id >= $4 AND created_on >= $5
              ORDER BY id DESC LIMIT $6)
             ORDER BY id DESC LIMIT $6"
        )
    } else {
        format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages
             WHERE conversation = $1 AND id < $2 AND id >= $3 AND created_on >= $4
             ORDER BY id DESC LIMIT $5"
        )
    }
}

/// A subscriber's messages: two keyset walks down `message_audience` (the messages listing the
/// subscriber, the messages to every subscriber), each stopping after a page, merged. The
/// members' messages are never scanned.
fn subscriber_messages_sql() -> String {
    let arm = |identity: &str| {
        format!(
            "(SELECT {M_MESSAGE_COLUMNS} FROM message_audience AS a
              JOIN messages AS m ON m.conversation = a.conversation AND m.id = a.message_id
              WHERE a.conversation = $1 AND a.identity = {identity}
                AND a.message_id < $2 AND a.message_id >= $3
                AND m.created_on >= $4 AND m.changed_on >= $7
              ORDER BY a.message_id DESC LIMIT $5)"
        )
    };
    format!(
        "{} UNION ALL {} ORDER BY id DESC LIMIT $5",
        arm("$6"),
        arm(&format!("'{ALL_SUBSCRIBERS}'"))
    )
}

/// The messages of a listing of at most `limit` messages (plus the one that says whether there
/// is a next page).
async fn collect_messages(
    db: &impl Queries,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    limit: usize,
) -> StoreResult<Vec<Message>> {
    let found = db.query(sql, params).await?;
    // Capped: the limit is the caller's page size, not a promise of that many rows.
    let mut messages = Vec::with_capacity(page_size(limit).saturating_add(1).min(found.len()));
    for row in &found {
        messages.push(rows::message_from_row(row)?);
    }
    Ok(messages)
}

/// Read receipts by reader, paged like participants.
pub(crate) async fn list_read_receipts(
    db: &impl Queries,
    conversation: ConversationId,
    query: &ListQuery,
) -> StoreResult<Page<ReadReceipt>> {
    let sql = format!(
        "SELECT {RECEIPT_COLUMNS} FROM read_receipts
         WHERE conversation = $1 AND reader > $2
         ORDER BY reader LIMIT $3 OFFSET $4"
    );
    list_by_identity(db, &sql, conversation, query, rows::receipt_from_row, |r| {
        &r.reader
    })
    .await
}

/// A conversation as a group seen by `viewer`, in one statement.
pub(crate) async fn get_group(
    db: &impl Queries,
    id: ConversationId,
    viewer: &IdentityId,
) -> StoreResult<Option<GroupView>> {
    let sql = format!(
        "SELECT {CONVERSATION_COLUMNS},
             COALESCE(
                 (SELECT role FROM participants AS v WHERE v.conversation = c.id AND v.identity = $2),
                 (SELECT 'subscriber' FROM subscribers AS v
                  WHERE v.conversation = c.id AND v.identity = $2)),
             {GROUP_COUNTS}
         FROM conversations AS c WHERE c.id = $1"
    );
    db.query_opt(&sql, &[&conv_key(id).as_slice(), &viewer.as_str()])
        .await?
        .as_ref()
        .map(rows::group_from_row)
        .transpose()
}

/// The live conversations of `member` as groups, keyset-paged by id on
/// participants_by_identity.
pub(crate) async fn list_groups(
    db: &impl Queries,
    member: &IdentityId,
    after: Option<&str>,
    limit: usize,
) -> StoreResult<Page<GroupView>> {
    // Without a cursor, start after the empty byte string, which sorts before every id.
    let after: Vec<u8> = match after {
        Some(cursor) => parse_group_cursor(cursor)?.to_vec(),
        None => Vec::new(),
    };
    let sql = format!(
        "SELECT {CONVERSATION_COLUMNS}, p.role, {GROUP_COUNTS}
         FROM participants AS p
         JOIN conversations AS c ON c.id = p.conversation
         WHERE p.identity = $1 AND p.conversation > $2 AND c.deleted_on IS NULL
         ORDER BY p.conversation
         LIMIT $3"
    );
    let found = db
        .query(
            &sql,
            &[&member.as_str(), &after.as_slice(), &fetch_limit(limit)],
        )
        .await?;
    let rows = decode(&found, rows::group_from_row)?;
    Ok(into_page(rows, limit, |g| group_cursor(g.conversation.id)))
}

/// Participants with whether their identity exists, paged like `list_participants`.
pub(crate) async fn list_members(
    db: &impl Queries,
    conversation: ConversationId,
    query: &ListQuery,
) -> StoreResult<Page<Member>> {
    let sql = format!(
        "SELECT {PARTICIPANT_COLUMNS},
             EXISTS (SELECT 1 FROM identities AS i WHERE i.id = participants.identity)
         FROM participants
         WHERE conversation = $1 AND identity > $2
         ORDER BY identity LIMIT $3 OFFSET $4"
    );
    list_by_identity(db, &sql, conversation, query, rows::member_from_row, |m| {
        &m.participant.identity
    })
    .await
}

/// The links below `root` to live subgroups: direct, or every link reachable through live
/// groups (a recursive walk; `UNION` visits each group once).
pub(crate) async fn list_subgroups(
    db: &impl Queries,
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
                 SELECT $1::bytea
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
             ORDER BY s.parent, s.child LIMIT $2"
        )
    } else {
        format!(
            "SELECT {columns} FROM subgroups AS s
             JOIN conversations AS c ON c.id = s.child
             WHERE s.parent = $1 AND c.deleted_on IS NULL
             ORDER BY s.parent, s.child LIMIT $2"
        )
    };
    let found = db
        .query(
            &sql,
            &[
                &conv_key(root).as_slice(),
                &i64::try_from(limit).unwrap_or(i64::MAX),
            ],
        )
        .await?;
    decode(&found, rows::subgroup_link_from_row)
}

/// Subscribers as members (role `subscriber`), keyset-paged by identity on the primary key.
pub(crate) async fn list_subscribers(
    db: &impl Queries,
    conversation: ConversationId,
    after: Option<&str>,
    limit: usize,
) -> StoreResult<Page<Member>> {
    let after = match after {
        Some(cursor) => parse_subscriber_cursor(cursor)?,
        None => String::new(),
    };
    let found = db
        .query(
            "SELECT identity, NULL::text, NULL::bigint, NULL::text, 'subscriber',
             EXISTS (SELECT 1 FROM identities AS i WHERE i.id = s.identity)
         FROM subscribers AS s
         WHERE conversation = $1 AND identity > $2
         ORDER BY identity LIMIT $3",
            &[
                &conv_key(conversation).as_slice(),
                &after,
                &fetch_limit(limit),
            ],
        )
        .await?;
    let rows = decode(&found, rows::member_from_row)?;
    Ok(into_page(rows, limit, |m| {
        subscriber_cursor(&m.participant.identity)
    }))
}

/// Those of `identities` that subscribe to the conversation, in order.
pub(crate) async fn find_subscribers(
    db: &impl Queries,
    conversation: ConversationId,
    identities: &[IdentityId],
) -> StoreResult<Vec<IdentityId>> {
    let key = conv_key(conversation);
    let mut found = Vec::new();
    for identity in identities {
        let hit = db
            .query_opt(
                "SELECT 1 FROM subscribers WHERE conversation = $1 AND identity = $2",
                &[&key.as_slice(), &identity.as_str()],
            )
            .await?;
        if hit.is_some() {
            found.push(identity.clone());
        }
    }
    Ok(found)
}

/// The lower bound (exclusive) and the OFFSET for a by-identity listing: `skip` counts on the
/// first page only; "" sorts before every identity.
fn name_bounds(query: &ListQuery) -> StoreResult<(String, i64)> {
    match &query.after {
        Some(cursor) => Ok((parse_name_cursor(cursor)?, 0)),
        None => Ok((String::new(), i64::try_from(query.skip).unwrap_or(i64::MAX))),
    }
}
