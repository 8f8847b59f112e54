//! Which events change memberships. Shared because every store that caches what
//! `get_membership` answers must forget a conversation after the same writes.

use confab_core::model::EventKind;

/// Whether an event of this kind may change what `get_membership` answers for its
/// conversation: who is in it, with which role, whether it is deleted. Every write that changes
/// those logs such an event (no wildcard here, so that a new kind needs a decision).
pub fn changes_membership(kind: &EventKind) -> bool {
    match kind {
        EventKind::ConversationCreated
        | EventKind::ConversationDeleted
        | EventKind::ParticipantsAdded
        | EventKind::ParticipantRemoved
        | EventKind::ParticipantRoleChanged => true,
        EventKind::ConversationUpdated
        | EventKind::MessageReceived
        | EventKind::MessageEdited
        | EventKind::MessageDeleted
        | EventKind::ReadReceipt
        | EventKind::Typing
        | EventKind::CredentialsChanged
        | EventKind::ActionCreated
        | EventKind::ActionResponse => false,
    }
}
