//! Conversions between the model and SQLite values: times, ids, JSON columns, whole rows, and the
//! opaque paging cursors.

use confab_core::ids::{ConversationId, IdentityId, MessageId};
use confab_core::model::{
    Application, Audience, Conversation, ConversationKind, EventKind, GroupView, Identity, Member,
    Message, MessageContent, MessageType, Metadata, Page, Participant, ReadReceipt, RefreshToken,
    RetentionPolicy, Role, SubgroupLink,
};
use confab_core::ports::{StoreError, StoreResult};
use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, Row};
use time::OffsetDateTime;

/// One day in microseconds.
pub(crate) const DAY_MICROS: i64 = 86_400_000_000;

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
// Times: integer unix microseconds.

/// The time in microseconds, rounded down.
pub(crate) fn micros(t: OffsetDateTime) -> i64 {
    let us = t.unix_timestamp_nanos().div_euclid(1000);
    i64::try_from(us).unwrap_or(if us < 0 { i64::MIN } else { i64::MAX })
}

/// The time in microseconds, rounded up: for `column >= t` bounds, so that a stored value
/// (always whole microseconds) passes exactly when the full-precision time would.
pub(crate) fn micros_ceil(t: OffsetDateTime) -> i64 {
    let us = (t.unix_timestamp_nanos() + 999).div_euclid(1000);
    i64::try_from(us).unwrap_or(if us < 0 { i64::MIN } else { i64::MAX })
}

pub(crate) fn from_micros(us: i64) -> Option<OffsetDateTime> {
    // Whole seconds and the microseconds past them, in i64: the i128 arithmetic of
    // `from_unix_timestamp_nanos` was a fifth of decoding a time.
    let micros = u32::try_from(us.rem_euclid(1_000_000)).ok()?;
    OffsetDateTime::from_unix_timestamp(us.div_euclid(1_000_000))
        .ok()?
        .replace_microsecond(micros)
        .ok()
}

/// A time truncated to what the database keeps, with its microseconds: every time the store
/// hands out is one it can read back unchanged.
pub(crate) fn truncate(t: OffsetDateTime) -> StoreResult<(OffsetDateTime, i64)> {
    let us = micros(t);
    let exact = from_micros(us)
        .ok_or_else(|| StoreError::Unavailable(format!("time out of range: {t}")))?;
    Ok((exact, us))
}

// ---------------------------------------------------------------------------------------------
// Ids and JSON columns.

/// A conversation id as stored: 16 bytes big-endian, so BLOB order is numeric order.
pub(crate) fn conv_key(id: ConversationId) -> [u8; 16] {
    id.0.to_be_bytes()
}

/// Metadata as stored: a JSON object, NULL when empty (most messages carry none).
pub(crate) fn encode_metadata(metadata: &Metadata) -> StoreResult<Option<String>> {
    if metadata.is_empty() {
        return Ok(None);
    }
    serde_json::to_string(metadata)
        .map(Some)
        .map_err(|e| StoreError::Unavailable(format!("metadata: {e}")))
}

pub(crate) fn encode_content(content: &MessageContent) -> StoreResult<String> {
    serde_json::to_string(content).map_err(|e| StoreError::Unavailable(format!("content: {e}")))
}

pub(crate) fn decode_content(text: &str) -> Result<MessageContent, serde_json::Error> {
    match plain_text(text) {
        Some(plain) => Ok(MessageContent {
            text: Some(plain.to_owned()),
            ..MessageContent::default()
        }),
        None => serde_json::from_str(text),
    }
}

/// The text of content stored as `{"text":"..."}` with nothing in the text to unescape — what
/// `encode_content` writes for most user messages — read without the JSON parser, which took
/// a fifth of the decoding of a page of messages. Anything else is left to the parser.
fn plain_text(stored: &str) -> Option<&str> {
    let text = stored.strip_prefix(r#"{"text":""#)?.strip_suffix(r#""}"#)?;
    // A `"` or `\` inside would be (part of) an escape, or the end of the string; a control
    // character is not JSON at all (the parser rejects it, and so must this).
    (!text.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20)).then_some(text)
}

/// The `message_audience` identity that stands for every subscriber (no raw id is `*`).
pub(crate) const ALL_SUBSCRIBERS: &str = "*";

/// A message's audience as stored in `messages.audience`: NULL for the members, `*` for every
/// subscriber, or a JSON array of raw ids.
pub(crate) fn encode_audience(audience: &Audience) -> StoreResult<Option<String>> {
    match audience {
        Audience::Members => Ok(None),
        Audience::AllSubscribers => Ok(Some(ALL_SUBSCRIBERS.to_owned())),
        Audience::Subscribers(list) => serde_json::to_string(list)
            .map(Some)
            .map_err(|e| StoreError::Unavailable(format!("audience: {e}"))),
    }
}

/// `messages.audience` read back: NULL for the members, `*` for every subscriber, or a JSON
/// array of raw ids.
pub(crate) fn decode_audience(text: Option<&str>) -> Result<Audience, serde_json::Error> {
    match text {
        None => Ok(Audience::Members),
        Some(ALL_SUBSCRIBERS) => Ok(Audience::AllSubscribers),
        Some(list) => serde_json::from_str(list).map(Audience::Subscribers),
    }
}

pub(crate) fn retention_days(retention: Option<RetentionPolicy>) -> Option<u32> {
    retention.map(|RetentionPolicy::ThreadCreationDate { delete_after_days }| delete_after_days)
}

/// When a conversation created at `created_on` expires under `days` of retention.
pub(crate) fn expires_on(created_on: i64, days: Option<u32>) -> Option<i64> {
    days.map(|days| created_on.saturating_add(i64::from(days).saturating_mul(DAY_MICROS)))
}

/// The event kind as written in `events.kind`: its serde name.
pub(crate) fn event_kind_name(kind: &EventKind) -> &'static str {
    kind.name()
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
    let bytes: [u8; 16] = row.get(idx)?;
    Ok(ConversationId(u128::from_be_bytes(bytes)))
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

/// A metadata column read back: NULL when empty, else a JSON object.
pub(crate) fn decode_metadata(text: Option<&str>) -> Result<Metadata, serde_json::Error> {
    text.map_or_else(|| Ok(Metadata::new()), serde_json::from_str)
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
    let retention = days
        .map(|d| u32::try_from(d).map_err(|e| bad_value(at + 6, e)))
        .transpose()?
        .map(|delete_after_days| RetentionPolicy::ThreadCreationDate { delete_after_days });
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

/// Permission lists as stored: comma-separated.
pub(crate) fn join_scopes(scopes: &[String]) -> String {
    scopes.join(",")
}

fn split_scopes(text: String) -> Vec<String> {
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
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

// ---------------------------------------------------------------------------------------------
// Paging. Cursors are opaque to callers but URL-safe (digits, hex, `_`), and each kind has its
// own shape so that a cursor from another listing is rejected rather than misread.

/// How many rows a page may hold: at least one, so that paging always progresses.
pub(crate) fn page_size(limit: usize) -> usize {
    limit.max(1)
}

/// The SQL LIMIT for a page: one more row than the page, to learn whether another page exists.
pub(crate) fn fetch_limit(limit: usize) -> i64 {
    i64::try_from(page_size(limit).saturating_add(1)).unwrap_or(i64::MAX)
}

/// Builds a page from up to `limit + 1` fetched rows; `cursor` names the last row kept.
pub(crate) fn into_page<T>(
    mut rows: Vec<T>,
    limit: usize,
    cursor: impl FnOnce(&T) -> String,
) -> Page<T> {
    let limit = page_size(limit);
    let next = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(cursor)
    } else {
        None
    };
    Page { items: rows, next }
}

/// Messages: the message id, in decimal.
pub(crate) fn message_cursor(id: MessageId) -> String {
    id.0.to_string()
}

pub(crate) fn parse_message_cursor(text: &str) -> StoreResult<i64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(StoreError::InvalidCursor);
    }
    text.parse::<i64>().map_err(|_| StoreError::InvalidCursor)
}

/// Conversations: last activity (microseconds) and id, `<activity>_<32 hex>`.
pub(crate) fn conversation_cursor(activity: i64, id: ConversationId) -> String {
    format!("{activity}_{:032x}", id.0)
}

pub(crate) fn parse_conversation_cursor(text: &str) -> StoreResult<(i64, [u8; 16])> {
    let (activity, id) = text.split_once('_').ok_or(StoreError::InvalidCursor)?;
    let digits = activity.strip_prefix('-').unwrap_or(activity);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(StoreError::InvalidCursor);
    }
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(StoreError::InvalidCursor);
    }
    let activity = activity
        .parse::<i64>()
        .map_err(|_| StoreError::InvalidCursor)?;
    let id = u128::from_str_radix(id, 16).map_err(|_| StoreError::InvalidCursor)?;
    Ok((activity, id.to_be_bytes()))
}

/// Groups of a member: `g` and the conversation id in hex.
pub(crate) fn group_cursor(id: ConversationId) -> String {
    format!("g{:032x}", id.0)
}

pub(crate) fn parse_group_cursor(text: &str) -> StoreResult<[u8; 16]> {
    let hex = text.strip_prefix('g').ok_or(StoreError::InvalidCursor)?;
    if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(StoreError::InvalidCursor);
    }
    let id = u128::from_str_radix(hex, 16).map_err(|_| StoreError::InvalidCursor)?;
    Ok(id.to_be_bytes())
}

/// Subscribers: `s` and the identity's raw id, hex-encoded.
pub(crate) fn subscriber_cursor(name: &IdentityId) -> String {
    format!("s{}", name_cursor(name))
}

pub(crate) fn parse_subscriber_cursor(text: &str) -> StoreResult<String> {
    parse_name_cursor(text.strip_prefix('s').ok_or(StoreError::InvalidCursor)?)
}

/// Participants and read receipts: the identity's raw id, hex-encoded (raw ids contain `:` and
/// `+`, which are not URL-safe).
pub(crate) fn name_cursor(name: &IdentityId) -> String {
    name.as_str().bytes().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn parse_name_cursor(text: &str) -> StoreResult<String> {
    if text.is_empty() {
        return Err(StoreError::InvalidCursor);
    }
    let bytes = text
        .as_bytes()
        .chunks(2)
        .map(|pair| match pair {
            [high, low] => Some(hex_digit(*high)? << 4 | hex_digit(*low)?),
            _ => None, // an odd length
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or(StoreError::InvalidCursor)?;
    String::from_utf8(bytes).map_err(|_| StoreError::InvalidCursor)
}

fn hex_digit(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_kind_names_are_the_serde_names() {
        for kind in [
            EventKind::ConversationCreated,
            EventKind::ConversationUpdated,
            EventKind::ConversationDeleted,
            EventKind::ParticipantsAdded,
            EventKind::ParticipantRemoved,
            EventKind::MessageReceived,
            EventKind::MessageEdited,
            EventKind::MessageDeleted,
            EventKind::ReadReceipt,
            EventKind::ParticipantRoleChanged,
            EventKind::ActionCreated,
            EventKind::ActionResponse,
        ] {
            let serde = serde_json::to_value(&kind).expect("serialize");
            assert_eq!(serde.as_str(), Some(event_kind_name(&kind)));
        }
    }

    #[test]
    fn content_reads_back_as_written_with_or_without_the_parser() {
        let text = |t: &str| MessageContent {
            text: Some(t.into()),
            ..MessageContent::default()
        };
        let contents = [
            text("hello"),
            text(""),
            text("héllo ✓ 👋"),
            text(r#"say "hi""#),
            text(r"back\slash"),
            text("two\nlines\tand\u{1}control"),
            text(r#"ends with "}"#),
            MessageContent {
                text: Some("t".into()),
                topic: Some("topic".into()),
                ..MessageContent::default()
            },
            MessageContent {
                topic: Some("only a topic".into()),
                ..MessageContent::default()
            },
            MessageContent::default(),
        ];
        for content in contents {
            let stored = encode_content(&content).expect("encode");
            assert_eq!(
                decode_content(&stored).expect("decode"),
                content,
                "{stored}"
            );
        }
        // The plain path takes only escape-free text-only content.
        assert_eq!(plain_text(r#"{"text":"hello"}"#), Some("hello"));
        assert_eq!(plain_text(r#"{"text":""}"#), Some(""));
        assert_eq!(plain_text(r#"{"text":"a\"b"}"#), None);
        assert_eq!(plain_text(r#"{"text":"a","topic":"b"}"#), None);
        assert_eq!(plain_text("{\"text\":\"a\u{1}b\"}"), None);
        // What the parser rejects stays rejected.
        assert!(decode_content("{\"text\":\"a\u{1}b\"}").is_err());
        assert!(decode_content(r#"{"text":"x"#).is_err());
    }

    #[test]
    fn micros_round_down_and_up() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_789).expect("t");
        assert_eq!(micros(t), 1_700_000_000_123_456);
        assert_eq!(micros_ceil(t), 1_700_000_000_123_457);
        let exact = from_micros(micros(t)).expect("exact");
        assert_eq!(micros(exact), micros_ceil(exact));
        let before = OffsetDateTime::from_unix_timestamp_nanos(-1_500).expect("t");
        assert_eq!(micros(before), -2);
        assert_eq!(micros_ceil(before), -1);
        // Back from microseconds, before the epoch too; out of range is None.
        for us in [
            0, 1, 999_999, 1_000_000, -1, -2, -999_999, -1_000_000, -1_000_001,
        ] {
            let expected = OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000).ok();
            assert_eq!(from_micros(us), expected, "{us}");
            assert_eq!(from_micros(us).map(micros), Some(us));
        }
        assert_eq!(from_micros(i64::MAX), None);
        assert_eq!(from_micros(i64::MIN), None);
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let id = ConversationId(0x0123_4567_89ab_cdef_0011_2233_4455_6677);
        let cursor = conversation_cursor(-42, id);
        assert_eq!(parse_conversation_cursor(&cursor), Ok((-42, conv_key(id))));
        let who = IdentityId::parse("4:+14255550123").expect("id");
        assert_eq!(
            parse_name_cursor(&name_cursor(&who)).as_deref(),
            Ok(who.as_str())
        );
        assert_eq!(parse_message_cursor(&message_cursor(MessageId(17))), Ok(17));
        for bad in ["", "x", "-1", "1_", "_00", "12_zz", "1_0123"] {
            assert_eq!(parse_message_cursor(bad).ok(), None, "{bad}");
            assert_eq!(parse_conversation_cursor(bad).ok(), None, "{bad}");
        }
        for bad in ["", "a", "abc", "zz", "ff", "+1"] {
            assert_eq!(parse_name_cursor(bad).ok(), None, "{bad}");
        }
        assert_eq!(parse_group_cursor(&group_cursor(id)), Ok(conv_key(id)));
        for bad in ["", "g", "g12", "x0123456789abcdef0011223344556677", "gzz"] {
            assert_eq!(parse_group_cursor(bad).ok(), None, "{bad}");
        }
    }

    #[test]
    fn expiry_saturates() {
        assert_eq!(expires_on(10, None), None);
        assert_eq!(expires_on(10, Some(1)), Some(10 + DAY_MICROS));
        assert_eq!(expires_on(10, Some(u32::MAX)), Some(i64::MAX));
    }
}
