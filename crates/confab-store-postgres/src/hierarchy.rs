//! STUB: to be ported from the SQLite store.
#![allow(unused_variables, unused_imports, dead_code)]

use confab_core::ids::{ConversationId, IdentityId};
use confab_core::model::{Conversation, EventKind, SubscribeOutcome};
use confab_core::ports::{StoreError, StoreResult};
use confab_store_common::creation::Creation;
use confab_store_common::event_payloads;

use crate::db::Conn;
use crate::writer::Writer;

impl Writer {
    pub(crate) fn create_subgroup(
        &mut self,
        creation: &Creation,
        parent: ConversationId,
    ) -> StoreResult<Conversation> {
        Err(crate::not_yet("create_subgroup"))
    }

    pub(crate) fn add_subgroup(
        &mut self,
        parent: ConversationId,
        child: ConversationId,
        by: &IdentityId,
    ) -> StoreResult<bool> {
        Err(crate::not_yet("add_subgroup"))
    }

    pub(crate) fn remove_subgroup(
        &mut self,
        parent: ConversationId,
        child: ConversationId,
        by: &IdentityId,
    ) -> StoreResult<()> {
        Err(crate::not_yet("remove_subgroup"))
    }

    pub(crate) fn add_subscribers(
        &mut self,
        conversation: ConversationId,
        identities: &[IdentityId],
        by: &IdentityId,
    ) -> StoreResult<Vec<(IdentityId, SubscribeOutcome)>> {
        Err(crate::not_yet("add_subscribers"))
    }

    pub(crate) fn remove_subscribers(
        &mut self,
        conversation: ConversationId,
        identities: &[IdentityId],
        by: &IdentityId,
    ) -> StoreResult<Vec<(IdentityId, bool)>> {
        Err(crate::not_yet("remove_subscribers"))
    }
}
