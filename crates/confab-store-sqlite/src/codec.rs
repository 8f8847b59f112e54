//! Conversions between the model and SQLite values: the column readers and whole rows, with the
//! SQL that selects them, and the `meta` table. The conversions every store shares (times, ids,
//! JSON columns, paging cursors) are `confab_store_common`'s, re-exported here so that the rest
//! of the crate names one module.

use confab_core::ids::{ConversationId, IdentityId, MessageId};
use confab_core::model::{
    Application, Conversation, ConversationKind, GroupView, Identity, Member, Message,
    MessageContent, MessageType, Metadata, Participant, ReadReceipt, RefreshToken, Role,
    SubgroupLink,
};
use confab_core::ports::{StoreError, StoreResult};
pub(crate) use confab_store_common::cursors::{
    conversation_cursor, fetch_limit, group_cursor, into_page, message_cursor, name_cursor,
    page_size, parse_conversation_cursor, parse_group_cursor, parse_message_cursor,
    parse_name_cursor, parse_subscriber_cursor, subscriber_cursor,
};
pub(crate) use confab_store_common::stored::{
    conv_key, conversation_from_key, decode_audience, decode_content, decode_metadata,
    encode_audience, encode_content, encode_metadata, event_kind_name, expires_on, from_micros,
    join_scopes, micros, micros_ceil, retention_days, retention_policy, split_scopes, truncate,
    ALL_SUBSCRIBERS,
};
use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, Row};
use time::OffsetDateTime;

/// Maps a SQLite failure to the store's error. Constraint violations that mean something to the
/// caller are mapped where they can happen; everything else is the store being unavailable.
pub(crate) fn db_err(err: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(format!("sqlite: {err}"))
}

/// `.db()?` instead of `.map_err(db_err)?` everywhere.
pub(crate) trait DbResult<T> {
    fn db(self) -> StoreResult<T>;
}

impl<T> DbResult<T> for rusqlite::Result<T> {
    fn db(self) -> StoreResult<T> {
        self.map_err(db_err)
    }
}

pub(crate) fn is_constraint_violation(err: &rusqlite::Error) -> bool {
    matches!(
        err,
        rusqlite::Error::SqliteFailure(e, _) if e.code == rusqlite::ErrorCode::ConstraintViolation
    )
}

// ---------------------------------------------------------------------------------------------
// Column readers. Decoding failures become rusqlite conversion errors so that row closures stay
// plain `rusqlite::Result`s; they surface as `StoreError::Unavailable`.

fn bad_value(idx: usize, what: impl std::fmt::Display) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, what.to_string().into())
}

pub(crate) fn time_at(row: &Row<'_>, idx: usize) -> rusqlite::Result<OffsetDateTime> {
    let us: i64 = row.get(idx)?;
    from_micros(us).ok_or_else(|| bad_value(idx, format!("time out of range: {us}")))
}

pub(crate) fn opt_time_at(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<OffsetDateTime>> {
    let us: Option<i64> = row.get(idx)?;
    us.map(|us| from_micros(us).ok_or_else(|| bad_value(idx, format!("time out of range: {us}"))))
        .transpose()
}

pub(crate) fn conversation_at(row: &Row<'_>, idx: usize) -> rusqlite::Result<ConversationId> {
    Ok(conversation_from_key(row.get(idx)?))
}

pub(crate) fn identity_at(row: &Row<'_>, idx: usize) -> rusqlite::Result<IdentityId> {
    Ok(IdentityId::from_stored(row.get(idx)?))
}

pub(crate) fn opt_identity_at(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<IdentityId>> {
    let text: Option<String> = row.get(idx)?;
    Ok(text.map(IdentityId::from_stored))
}

/// A TEXT column borrowed from the row, for values that are parsed rather than kept: no
/// `String` copy of what is only read once.
fn text_ref<'r>(row: &'r Row<'_>, idx: usize) -> rusqlite::Result<&'r str> {
    let value = row.get_ref(idx)?;
    value
        .as_str()
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, value.data_type(), e.into()))
}

/// [`text_ref`] of a column that may be NULL.
fn opt_text_ref<'r>(row: &'r Row<'_>, idx: usize) -> rusqlite::Result<Option<&'r str>> {
    let value = row.get_ref(idx)?;
    value
        .as_str_or_null()
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, value.data_type(), e.into()))
}

pub(crate) fn metadata_at(row: &Row<'_>, idx: usize) -> rusqlite::Result<Metadata> {
    decode_metadata(opt_text_ref(row, idx)?).map_err(|e| bad_value(idx, e))
}

pub(crate) fn content_at(row: &Row<'_>, idx: usize) -> rusqlite::Result<MessageContent> {
    decode_content(text_ref(row, idx)?).map_err(|e| bad_value(idx, e))
}

// ---------------------------------------------------------------------------------------------
// Whole rows. Each `*_COLUMNS` list goes with the `*_from_row` that reads it.

pub(crate) const IDENTITY_COLUMNS: &str = "id, created_on, token_generation";

pub(crate) fn identity_from_row(row: &Row<'_>) -> rusqlite::Result<Identity> {
    let generation: i64 = row.get(2)?;
    Ok(Identity {
        id: identity_at(row, 0)?,
        created_on: time_at(row, 1)?,
        token_generation: u32::try_from(generation).map_err(|e| bad_value(2, e))?,
    })
}

/// A column of the newest message of the conversation aliased `c` (NULL before the first): one
/// step down the messages key, `(conversation, id)`. Messages are never removed and ids grow
/// with every append, so this row holds the conversation's last activity, its highest sequence
/// id and its highest message id; they are read here instead of kept in the conversation row,
/// so that an append writes no page of the conversations table.
macro_rules! newest_message {
    ($column:literal) => {
        concat!(
            "(SELECT m.",
            $column,
            " FROM messages AS m WHERE m.conversation = c.id ORDER BY m.id DESC LIMIT 1)"
        )
    };
}
pub(crate) use newest_message;

/// A conversation's last activity: the time of its newest message (system messages included).
macro_rules! last_message_on {
    () => {
        $crate::codec::newest_message!("created_on")
    };
}
pub(crate) use last_message_on;

/// The columns of a conversation, from a conversations table aliased `c`.
pub(crate) const CONVERSATION_COLUMNS: &str = concat!(
    "c.id, c.topic, c.created_by, c.created_on, c.deleted_on, c.metadata, c.retention_days, ",
    last_message_on!(),
    ", c.kind, c.welcome_message"
);

pub(crate) fn conversation_from_row(row: &Row<'_>) -> rusqlite::Result<Conversation> {
    conversation_from_offset(row, 0)
}

/// `CONVERSATION_COLUMNS` starting at column `at`.
pub(crate) fn conversation_from_offset(row: &Row<'_>, at: usize) -> rusqlite::Result<Conversation> {
    let days: Option<i64> = row.get(at + 6)?;
    let retention = retention_policy(
        days.map(|d| u32::try_from(d).map_err(|e| bad_value(at + 6, e)))
            .transpose()?,
    );
    Ok(Conversation {
        id: conversation_at(row, at)?,
        topic: row.get(at + 1)?,
        created_by: identity_at(row, at + 2)?,
        created_on: time_at(row, at + 3)?,
        deleted_on: opt_time_at(row, at + 4)?,
        metadata: metadata_at(row, at + 5)?,
        retention,
        last_message_on: opt_time_at(row, at + 7)?,
        kind: {
            let kind: String = row.get(at + 8)?;
            ConversationKind::parse(&kind)
                .ok_or_else(|| bad_value(at + 8, format!("unknown conversation kind {kind:?}")))?
        },
        welcome_message: row.get(at + 9)?,
    })
}

/// The columns after `CONVERSATION_COLUMNS` in a group read: the viewer's role (NULL: not a
/// member), the member count, the count of members without an identity row.
pub(crate) fn group_from_row(row: &Row<'_>) -> rusqlite::Result<GroupView> {
    let role: Option<String> = row.get(10)?;
    let count = |idx: usize| -> rusqlite::Result<usize> {
        let n: i64 = row.get(idx)?;
        usize::try_from(n).map_err(|e| bad_value(idx, e))
    };
    Ok(GroupView {
        conversation: conversation_from_row(row)?,
        viewer_role: role
            .map(|r| Role::parse(&r).ok_or_else(|| bad_value(10, format!("unknown role {r:?}"))))
            .transpose()?,
        member_count: count(11)?,
        unprovisioned_count: count(12)?,
        subgroup_count: count(13)?,
        parent_count: count(14)?,
    })
}

/// A subgroup link: the parent id, then `CONVERSATION_COLUMNS` of the child, then whether the
/// child has subgroups.
pub(crate) fn subgroup_link_from_row(row: &Row<'_>) -> rusqlite::Result<SubgroupLink> {
    let child = conversation_from_offset(row, 1)?;
    Ok(SubgroupLink {
        parent: conversation_at(row, 0)?,
        child,
        child_has_subgroups: row.get(11)?,
    })
}

/// The SQL of a group's counts, for a conversations row aliased `c`: members, members without
/// an identity row, live subgroups, live parents.
pub(crate) const GROUP_COUNTS: &str =
    "(SELECT COUNT(*) FROM participants AS m WHERE m.conversation = c.id),
     (SELECT COUNT(*) FROM participants AS m WHERE m.conversation = c.id
          AND NOT EXISTS (SELECT 1 FROM identities AS i WHERE i.id = m.identity)),
     (SELECT COUNT(*) FROM subgroups AS s JOIN conversations AS k ON k.id = s.child
          WHERE s.parent = c.id AND k.deleted_on IS NULL),
     (SELECT COUNT(*) FROM subgroups AS s JOIN conversations AS k ON k.id = s.parent
          WHERE s.child = c.id AND k.deleted_on IS NULL)";

/// A member: `PARTICIPANT_COLUMNS` then whether the identity exists.
pub(crate) fn member_from_row(row: &Row<'_>) -> rusqlite::Result<Member> {
    Ok(Member {
        participant: participant_from_row(row)?,
        provisioned: row.get(5)?,
    })
}

pub(crate) const APPLICATION_COLUMNS: &str = "id, name, secret_hash, scopes, created_on";

pub(crate) fn application_from_row(row: &Row<'_>) -> rusqlite::Result<Application> {
    Ok(Application {
        id: row.get(0)?,
        name: row.get(1)?,
        secret_hash: row.get(2)?,
        scopes: split_scopes(row.get(3)?),
        created_on: time_at(row, 4)?,
    })
}

pub(crate) const REFRESH_TOKEN_COLUMNS: &str =
    "hash, application, identity, scopes, created_on, expires_on";

pub(crate) fn refresh_token_from_row(row: &Row<'_>) -> rusqlite::Result<RefreshToken> {
    Ok(RefreshToken {
        hash: row.get(0)?,
        application: row.get(1)?,
        identity: identity_at(row, 2)?,
        scopes: split_scopes(row.get(3)?),
        created_on: time_at(row, 4)?,
        expires_on: time_at(row, 5)?,
    })
}

pub(crate) const PARTICIPANT_COLUMNS: &str =
    "identity, display_name, share_history_time, metadata, role";

pub(crate) fn participant_from_row(row: &Row<'_>) -> rusqlite::Result<Participant> {
    let role: String = row.get(4)?;
    Ok(Participant {
        identity: identity_at(row, 0)?,
        display_name: row.get(1)?,
        share_history_time: opt_time_at(row, 2)?,
        metadata: metadata_at(row, 3)?,
        role: Role::parse(&role).ok_or_else(|| bad_value(4, format!("unknown role {role:?}")))?,
    })
}

/// The most bytes of a message row (its content and the other columns) kept in the row
/// itself. SQLite keeps at most `(page - 12) * 64 / 255 - 23` bytes of a row of a WITHOUT ROWID
/// table on its b-tree page, 1,002 at 4 KiB pages, and moves the rest of a bigger row to an
/// overflow page of its own; a row over this size keeps its content in `message_bodies`
/// instead (migration 0013). The margin covers the record header and integer columns, which
/// [`message_row_bytes`] does not count.
pub(crate) const INLINE_ROW_BYTES: usize = 900;

/// About how many bytes a message row takes besides its integer columns.
pub(crate) fn message_row_bytes(
    content: &str,
    sender: Option<&str>,
    sender_display_name: Option<&str>,
    metadata: Option<&str>,
    audience: Option<&str>,
) -> usize {
    let text = |column: Option<&str>| column.map_or(0, str::len);
    // The conversation key (16 bytes) and the kind (at most ~20).
    content.len() + text(sender) + text(sender_display_name) + text(metadata) + text(audience) + 36
}

/// A message's content as read, from a messages table named or aliased `$table`: the row's
/// own, or, where the row holds `''`, its `message_bodies` row (see [`INLINE_ROW_BYTES`]).
macro_rules! message_content {
    ($table:literal) => {
        concat!(
            "CASE ",
            $table,
            ".content WHEN '' THEN (SELECT b.body FROM message_bodies AS b \
             WHERE b.id = ",
            $table,
            ".id) ELSE ",
            $table,
            ".content END"
        )
    };
}
pub(crate) use message_content;

/// The columns [`message_from_row`] reads, from a messages table read by its own name.
pub(crate) const MESSAGE_COLUMNS: &str = concat!(
    "messages.id, messages.conversation, messages.sequence_id, messages.kind, ",
    message_content!("messages"),
    ", messages.sender, messages.sender_display_name, messages.metadata, messages.version, \
     messages.created_on, messages.edited_on, messages.deleted_on, messages.audience"
);

/// `MESSAGE_COLUMNS` of a messages table aliased `m`, for joins.
pub(crate) const M_MESSAGE_COLUMNS: &str = concat!(
    "m.id, m.conversation, m.sequence_id, m.kind, ",
    message_content!("m"),
    ", m.sender, m.sender_display_name, m.metadata, m.version, m.created_on, \
     m.edited_on, m.deleted_on, m.audience"
);

pub(crate) fn message_from_row(row: &Row<'_>) -> rusqlite::Result<Message> {
    let kind = text_ref(row, 3)?;
    Ok(Message {
        id: MessageId(row.get(0)?),
        conversation: conversation_at(row, 1)?,
        sequence_id: row.get(2)?,
        kind: MessageType::parse(kind)
            .ok_or_else(|| bad_value(3, format!("unknown message type {kind:?}")))?,
        content: content_at(row, 4)?,
        sender: opt_identity_at(row, 5)?,
        sender_display_name: row.get(6)?,
        metadata: metadata_at(row, 7)?,
        version: row.get(8)?,
        created_on: time_at(row, 9)?,
        edited_on: opt_time_at(row, 10)?,
        deleted_on: opt_time_at(row, 11)?,
        audience: decode_audience(opt_text_ref(row, 12)?).map_err(|e| bad_value(12, e))?,
    })
}

pub(crate) const RECEIPT_COLUMNS: &str = "reader, message_id, read_on";

pub(crate) fn receipt_from_row(row: &Row<'_>) -> rusqlite::Result<ReadReceipt> {
    Ok(ReadReceipt {
        reader: identity_at(row, 0)?,
        message_id: MessageId(row.get(1)?),
        read_on: time_at(row, 2)?,
    })
}

/// A value of the `meta` table (the store's own settings: the id clock, the event purge
/// watermark, whether a writer is open), if set.
pub(crate) fn meta_value(conn: &Connection, key: &str) -> StoreResult<Option<i64>> {
    conn.prepare_cached("SELECT value FROM meta WHERE key = ?1")
        .db()?
        .query_row([key], |row| row.get(0))
        .optional()
        .db()
}

/// Sets a value of the `meta` table.
pub(crate) fn set_meta(conn: &Connection, key: &str, value: i64) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )
    .db()?
    .execute(rusqlite::params![key, value])
    .db()?;
    Ok(())
}
