//! STUB: to be ported from the SQLite store.
#![allow(unused_variables, unused_imports, dead_code)]

use confab_core::actions::{Action, ActionBody, ActionResponse, ResponseBody, ACTION_ID_KEY};
use confab_core::ids::{ConversationId, MessageId};
use confab_core::model::{EventKind, Page};
use confab_core::ports::{ActionQuery, NewAction, NewActionResponse, StoreError, StoreResult};
use confab_store_common::event_payloads;
use confab_store_common::stored::encode_json;

use crate::db::Conn;
use crate::writer::Writer;

impl Writer {
    pub(crate) fn create_action(&mut self, new: &NewAction) -> StoreResult<Action> {
        Err(crate::not_yet("create_action"))
    }

    pub(crate) fn put_action_response(
        &mut self,
        new: &NewActionResponse,
    ) -> StoreResult<ActionResponse> {
        Err(crate::not_yet("put_action_response"))
    }
}

pub(crate) fn get_action(
    db: &Conn,
    conversation: ConversationId,
    id: MessageId,
) -> StoreResult<Option<Action>> {
    Err(crate::not_yet("get_action"))
}

pub(crate) fn list_actions(
    db: &Conn,
    conversation: ConversationId,
    query: &ActionQuery,
) -> StoreResult<Page<Action>> {
    Err(crate::not_yet("list_actions"))
}

pub(crate) fn get_action_response(
    db: &Conn,
    action: MessageId,
    id: &str,
) -> StoreResult<Option<ActionResponse>> {
    Err(crate::not_yet("get_action_response"))
}

pub(crate) fn list_action_responses(
    db: &Conn,
    action: MessageId,
    limit: usize,
) -> StoreResult<Vec<ActionResponse>> {
    Err(crate::not_yet("list_action_responses"))
}
