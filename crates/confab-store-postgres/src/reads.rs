//! STUB: to be ported from the SQLite store.
#![allow(unused_variables, unused_imports, dead_code)]

use confab_core::ids::{ConversationId, IdentityId, MessageId};
use confab_core::model::{
    Application, Conversation, ConversationSummary, GroupView, Identity, Member, Message, Page,
    Participant, ReadReceipt, RefreshToken, SubgroupLink,
};
use confab_core::ports::{ListQuery, MessageQuery, StoreResult};
use time::OffsetDateTime;

use crate::db::Conn;
use crate::writer::Writer;

pub(crate) fn get_conversation(db: &Conn, id: ConversationId) -> StoreResult<Option<Conversation>> {
    Err(crate::not_yet("get_conversation"))
}

pub(crate) fn list_conversations(
    db: &Conn,
    member: &IdentityId,
    active_since: Option<OffsetDateTime>,
    after: Option<&str>,
    limit: usize,
) -> StoreResult<Page<ConversationSummary>> {
    Err(crate::not_yet("list_conversations"))
}

pub(crate) fn get_participant(
    db: &Conn,
    conversation: ConversationId,
    identity: &IdentityId,
) -> StoreResult<Option<Participant>> {
    Err(crate::not_yet("get_participant"))
}

pub(crate) fn list_participants(
    db: &Conn,
    conversation: ConversationId,
    query: &ListQuery,
) -> StoreResult<Page<Participant>> {
    Err(crate::not_yet("list_participants"))
}

pub(crate) fn get_message(
    db: &Conn,
    conversation: ConversationId,
    id: MessageId,
) -> StoreResult<Option<Message>> {
    Err(crate::not_yet("get_message"))
}

pub(crate) fn list_messages(
    db: &Conn,
    conversation: ConversationId,
    query: &MessageQuery,
) -> StoreResult<Page<Message>> {
    Err(crate::not_yet("list_messages"))
}

pub(crate) fn list_read_receipts(
    db: &Conn,
    conversation: ConversationId,
    query: &ListQuery,
) -> StoreResult<Page<ReadReceipt>> {
    Err(crate::not_yet("list_read_receipts"))
}

pub(crate) fn get_group(
    db: &Conn,
    id: ConversationId,
    viewer: &IdentityId,
) -> StoreResult<Option<GroupView>> {
    Err(crate::not_yet("get_group"))
}

pub(crate) fn list_groups(
    db: &Conn,
    member: &IdentityId,
    after: Option<&str>,
    limit: usize,
) -> StoreResult<Page<GroupView>> {
    Err(crate::not_yet("list_groups"))
}

pub(crate) fn list_members(
    db: &Conn,
    conversation: ConversationId,
    query: &ListQuery,
) -> StoreResult<Page<Member>> {
    Err(crate::not_yet("list_members"))
}

pub(crate) fn list_subgroups(
    db: &Conn,
    root: ConversationId,
    all: bool,
    limit: usize,
) -> StoreResult<Vec<SubgroupLink>> {
    Err(crate::not_yet("list_subgroups"))
}

pub(crate) fn list_subscribers(
    db: &Conn,
    conversation: ConversationId,
    after: Option<&str>,
    limit: usize,
) -> StoreResult<Page<Member>> {
    Err(crate::not_yet("list_subscribers"))
}

pub(crate) fn find_subscribers(
    db: &Conn,
    conversation: ConversationId,
    identities: &[IdentityId],
) -> StoreResult<Vec<IdentityId>> {
    Err(crate::not_yet("find_subscribers"))
}
