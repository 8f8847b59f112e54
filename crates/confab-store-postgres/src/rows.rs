//! Whole rows of the conversation tables, and the SQL that selects them: each `*_COLUMNS` list
//! goes with the `*_from_row` that reads it. The decoding of the stored values themselves
//! (JSON columns, times, ids) is `confab_store_common::stored`'s, shared with the SQLite store.

use confab_core::ids::{IdentityId, MessageId};
use confab_core::model::{
    Conversation, ConversationKind, GroupView, Member, Message, MessageType, Metadata, Participant,
    ReadReceipt, Role, SubgroupLink,
};
use confab_core::ports::{StoreError, StoreResult};
use confab_store_common::stored::{
    decode_audience, decode_content, decode_metadata, from_micros, retention_policy,
};
use postgres::Row;
use time::OffsetDateTime;

use crate::db::{conversation_at, get, identity_at, time_at};

/// A stored value that does not decode.
fn bad_value(idx: usize, what: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("stored column {idx}: {what}"))
}

/// Column `idx` of `row`: a stored time, or NULL.
pub(crate) fn opt_time_at(row: &Row, idx: usize) -> StoreResult<Option<OffsetDateTime>> {
    let us: Option<i64> = get(row, idx)?;
    us.map(|us| from_micros(us).ok_or_else(|| bad_value(idx, format!("time out of range: {us}"))))
        .transpose()
}

/// Column `idx` of `row`: an identity's raw id, or NULL.
pub(crate) fn opt_identity_at(row: &Row, idx: usize) -> StoreResult<Option<IdentityId>> {
    Ok(get::<Option<String>>(row, idx)?.map(IdentityId::from_stored))
}

/// Column `idx` of `row`: a JSON metadata column (NULL: empty).
pub(crate) fn metadata_at(row: &Row, idx: usize) -> StoreResult<Metadata> {
    decode_metadata(get::<Option<&str>>(row, idx)?).map_err(|e| bad_value(idx, e))
}

/// Column `idx` of `row`: a count.
fn count_at(row: &Row, idx: usize) -> StoreResult<usize> {
    let n: i64 = get(row, idx)?;
    usize::try_from(n).map_err(|e| bad_value(idx, e))
}

/// Column `idx` of `row`: a role's name, or NULL.
fn opt_role_at(row: &Row, idx: usize) -> StoreResult<Option<Role>> {
    get::<Option<&str>>(row, idx)?
        .map(|r| Role::parse(r).ok_or_else(|| bad_value(idx, format!("unknown role {r:?}"))))
        .transpose()
}

/// A column of the newest message of the conversation aliased `c` (NULL before the first): one
/// step down the messages key, `(conversation, id)`. Messages are never removed and ids grow
/// with every append, so this row holds the conversation's last activity, its highest sequence
/// id and its highest message id; they are read here instead of kept in the conversation row,
/// so that an append writes no row of the conversations table.
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
        $crate::rows::newest_message!("created_on")
    };
}
pub(crate) use last_message_on;

/// The columns of a conversation, from a conversations table aliased `c`.
pub(crate) const CONVERSATION_COLUMNS: &str = concat!(
    "c.id, c.topic, c.created_by, c.created_on, c.deleted_on, c.metadata, c.retention_days, ",
    last_message_on!(),
    ", c.kind, c.welcome_message"
);

pub(crate) fn conversation_from_row(row: &Row) -> StoreResult<Conversation> {
    conversation_from_offset(row, 0)
}

/// `CONVERSATION_COLUMNS` starting at column `at`.
pub(crate) fn conversation_from_offset(row: &Row, at: usize) -> StoreResult<Conversation> {
    let days: Option<i64> = get(row, at + 6)?;
    let retention = retention_policy(
        days.map(|d| u32::try_from(d).map_err(|e| bad_value(at + 6, e)))
            .transpose()?,
    );
    let kind: &str = get(row, at + 8)?;
    Ok(Conversation {
        id: conversation_at(row, at)?,
        topic: get(row, at + 1)?,
        created_by: identity_at(row, at + 2)?,
        created_on: time_at(row, at + 3)?,
        deleted_on: opt_time_at(row, at + 4)?,
        metadata: metadata_at(row, at + 5)?,
        retention,
        last_message_on: opt_time_at(row, at + 7)?,
        kind: ConversationKind::parse(kind)
            .ok_or_else(|| bad_value(at + 8, format!("unknown conversation kind {kind:?}")))?,
        welcome_message: get(row, at + 9)?,
    })
}

/// The columns after `CONVERSATION_COLUMNS` in a group read: the viewer's role (NULL: not a
/// member), then [`GROUP_COUNTS`].
pub(crate) fn group_from_row(row: &Row) -> StoreResult<GroupView> {
    Ok(GroupView {
        conversation: conversation_from_row(row)?,
        viewer_role: opt_role_at(row, 10)?,
        member_count: count_at(row, 11)?,
        unprovisioned_count: count_at(row, 12)?,
        subgroup_count: count_at(row, 13)?,
        parent_count: count_at(row, 14)?,
    })
}

/// A subgroup link: the parent id, then `CONVERSATION_COLUMNS` of the child, then whether the
/// child has subgroups.
pub(crate) fn subgroup_link_from_row(row: &Row) -> StoreResult<SubgroupLink> {
    Ok(SubgroupLink {
        parent: conversation_at(row, 0)?,
        child: conversation_from_offset(row, 1)?,
        child_has_subgroups: get(row, 11)?,
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

pub(crate) const PARTICIPANT_COLUMNS: &str =
    "identity, display_name, share_history_time, metadata, role";

pub(crate) fn participant_from_row(row: &Row) -> StoreResult<Participant> {
    participant_from_offset(row, 0)
}

/// `PARTICIPANT_COLUMNS` starting at column `at`.
pub(crate) fn participant_from_offset(row: &Row, at: usize) -> StoreResult<Participant> {
    let role: &str = get(row, at + 4)?;
    Ok(Participant {
        identity: identity_at(row, at)?,
        display_name: get(row, at + 1)?,
        share_history_time: opt_time_at(row, at + 2)?,
        metadata: metadata_at(row, at + 3)?,
        role: Role::parse(role)
            .ok_or_else(|| bad_value(at + 4, format!("unknown role {role:?}")))?,
    })
}

/// A member: `PARTICIPANT_COLUMNS` then whether the identity exists.
pub(crate) fn member_from_row(row: &Row) -> StoreResult<Member> {
    Ok(Member {
        participant: participant_from_row(row)?,
        provisioned: get(row, 5)?,
    })
}

/// The columns [`message_from_row`] reads, from a messages table read by its own name.
pub(crate) const MESSAGE_COLUMNS: &str =
    "messages.id, messages.conversation, messages.sequence_id, messages.kind, messages.content, \
     messages.sender, messages.sender_display_name, messages.metadata, messages.version, \
     messages.created_on, messages.edited_on, messages.deleted_on, messages.audience";

/// `MESSAGE_COLUMNS` of a messages table aliased `m`, for joins.
pub(crate) const M_MESSAGE_COLUMNS: &str =
    "m.id, m.conversation, m.sequence_id, m.kind, m.content, m.sender, m.sender_display_name, \
     m.metadata, m.version, m.created_on, m.edited_on, m.deleted_on, m.audience";

pub(crate) fn message_from_row(row: &Row) -> StoreResult<Message> {
    let kind: &str = get(row, 3)?;
    let content: &str = get(row, 4)?;
    Ok(Message {
        id: MessageId(get(row, 0)?),
        conversation: conversation_at(row, 1)?,
        sequence_id: get(row, 2)?,
        kind: MessageType::parse(kind)
            .ok_or_else(|| bad_value(3, format!("unknown message type {kind:?}")))?,
        content: decode_content(content).map_err(|e| bad_value(4, e))?,
        sender: opt_identity_at(row, 5)?,
        sender_display_name: get(row, 6)?,
        metadata: metadata_at(row, 7)?,
        version: get(row, 8)?,
        created_on: time_at(row, 9)?,
        edited_on: opt_time_at(row, 10)?,
        deleted_on: opt_time_at(row, 11)?,
        audience: decode_audience(get::<Option<&str>>(row, 12)?).map_err(|e| bad_value(12, e))?,
    })
}

pub(crate) const RECEIPT_COLUMNS: &str = "reader, message_id, read_on";

pub(crate) fn receipt_from_row(row: &Row) -> StoreResult<ReadReceipt> {
    Ok(ReadReceipt {
        reader: identity_at(row, 0)?,
        message_id: MessageId(get(row, 1)?),
        read_on: time_at(row, 2)?,
    })
}
