//! STUB: to be ported from the SQLite store.
#![allow(unused_variables, unused_imports, dead_code)]

use confab_core::ids::{ConversationId, IdentityId, MessageId};
use confab_core::model::{
    Application, Audience, Conversation, EventKind, Identity, Message, MessageContent, MessageType,
    Metadata, Participant, ParticipantRef, PinChallenge, RefreshToken, Role,
};
use confab_core::ports::connectors::constant_time_eq;
use confab_core::ports::{
    ConversationUpdate, CreatedConversation, MessageEdit, NewMessage, PinOutcome, PinRedemption,
    StoreError, StoreResult,
};
use confab_store_common::creation::{dedupe, participant_ref, Creation};
use confab_store_common::event_payloads::{self, EventRow};
use confab_store_common::message_events::{message_event_text, MessageHints};
use confab_store_common::outbox;
use time::OffsetDateTime;

use crate::db::Conn;
use crate::writer::Writer;

impl Writer {
    pub(crate) fn is_participant(
        &self,
        conversation: ConversationId,
        identity: &IdentityId,
    ) -> StoreResult<bool> {
        Err(crate::not_yet("is_participant"))
    }

    pub(crate) fn create_conversation(
        &mut self,
        creation: &Creation,
    ) -> StoreResult<CreatedConversation> {
        Err(crate::not_yet("create_conversation"))
    }

    pub(crate) fn update_conversation(
        &mut self,
        id: ConversationId,
        update: &ConversationUpdate,
        by: &IdentityId,
    ) -> StoreResult<()> {
        Err(crate::not_yet("update_conversation"))
    }

    pub(crate) fn delete_conversation(
        &mut self,
        id: ConversationId,
        by: Option<&IdentityId>,
    ) -> StoreResult<()> {
        Err(crate::not_yet("delete_conversation"))
    }

    pub(crate) fn delete_expired_conversations(&mut self) -> StoreResult<Vec<ConversationId>> {
        Err(crate::not_yet("delete_expired_conversations"))
    }

    pub(crate) fn add_participants(
        &mut self,
        conversation: ConversationId,
        participants: &[Participant],
        by: &IdentityId,
        max_participants: usize,
    ) -> StoreResult<()> {
        Err(crate::not_yet("add_participants"))
    }

    pub(crate) fn remove_participant(
        &mut self,
        conversation: ConversationId,
        identity: &IdentityId,
        by: &IdentityId,
    ) -> StoreResult<()> {
        Err(crate::not_yet("remove_participant"))
    }

    pub(crate) fn append_message(&mut self, message: &NewMessage) -> StoreResult<Message> {
        Err(crate::not_yet("append_message"))
    }

    pub(crate) fn edit_message(
        &mut self,
        conversation: ConversationId,
        id: MessageId,
        edit: &MessageEdit,
    ) -> StoreResult<Message> {
        Err(crate::not_yet("edit_message"))
    }

    pub(crate) fn delete_message(
        &mut self,
        conversation: ConversationId,
        id: MessageId,
    ) -> StoreResult<()> {
        Err(crate::not_yet("delete_message"))
    }

    pub(crate) fn put_read_receipt(
        &mut self,
        conversation: ConversationId,
        reader: &IdentityId,
        message: MessageId,
    ) -> StoreResult<()> {
        Err(crate::not_yet("put_read_receipt"))
    }

    pub(crate) fn set_participant_role(
        &mut self,
        conversation: ConversationId,
        identity: &IdentityId,
        role: Role,
        by: &IdentityId,
    ) -> StoreResult<()> {
        Err(crate::not_yet("set_participant_role"))
    }
}
