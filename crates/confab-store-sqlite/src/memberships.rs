//! Memberships kept in memory: nearly every call is authorized with `get_membership`, and
//! answering it from here instead of a read saves a trip through the read pool and its
//! blocking threads per call.
//!
//! It stays right because the writer is the only thing that changes the database: after each
//! COMMIT, before it answers any job of the batch, it forgets every conversation whose
//! membership the batch changed (see [`membership_changed`]). So once a write that removes a
//! participant (or deletes a conversation, or changes a role) has returned, no later call sees
//! the old entry.
//!
//! (How a read racing a commit is kept from putting a forgotten entry back: the epoch of
//! [`confab_store_common::memberships::Memberships`].)

use confab_core::ids::ConversationId;
use confab_core::model::EventKind;
use confab_store_common::memberships::membership_changed;

use crate::writer::Writer;

impl Writer {
    /// Notes that the batch changed this conversation's membership, if an event of `kind` does.
    pub(crate) fn note_membership_change(
        &self,
        kind: &EventKind,
        conversation: Option<ConversationId>,
    ) {
        if let Some(conversation) = membership_changed(kind, conversation) {
            self.membership_changes.borrow_mut().push(conversation);
        }
    }
}
