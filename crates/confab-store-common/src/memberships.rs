//! Memberships kept in memory, and which events change them. Shared because every store
//! that caches what `get_membership` answers must forget a conversation after the same writes.
//!
//! A read that misses fills the entry afterwards, which could put back what a commit made
//! during the read just forgot. Hence the epoch: every forget bumps it, and an entry is only
//! filled if the epoch is still the one taken before the read began (the read then saw every
//! commit that bumped it).

use confab_core::ids::{ConversationId, IdentityId};
use confab_core::model::EventKind;
use confab_core::ports::MemberAccess;
use confab_core::FastMap;
use parking_lot::Mutex;

/// The conversation whose memberships an event of `kind` in `conversation` may have changed:
/// what a store forgets from its [`Memberships`] once the event is committed (or read from
/// another node's commits).
pub fn membership_changed(
    kind: &EventKind,
    conversation: Option<ConversationId>,
) -> Option<ConversationId> {
    conversation.filter(|_| changes_membership(kind))
}

/// Whether an event of this kind may change what `get_membership` answers for its
/// conversation: who is in it, with which role, whether it is deleted. Every write that changes
/// those logs such an event (no wildcard here, so that a new kind needs a decision).
fn changes_membership(kind: &EventKind) -> bool {
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

/// Entries kept at most; past it the cache starts over empty (it refills on demand). Bounds
/// its memory (some 10 MB) whatever the number of identities and conversations.
const MAX_ENTRIES: usize = 50_000;

#[derive(Default)]
pub struct Memberships {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Bumped by every forget.
    epoch: u64,
    /// Per conversation, so that forgetting one is one removal.
    conversations: FastMap<ConversationId, FastMap<IdentityId, MemberAccess>>,
    entries: usize,
}

impl Memberships {
    pub fn get(&self, conversation: ConversationId, identity: &IdentityId) -> Option<MemberAccess> {
        let inner = self.inner.lock();
        inner
            .conversations
            .get(&conversation)?
            .get(identity)
            .cloned()
    }

    /// The epoch to take before a read whose answer goes to [`Memberships::fill`].
    pub fn epoch(&self) -> u64 {
        self.inner.lock().epoch
    }

    /// Keeps what a read that began at `epoch` found, unless a forget came in between.
    pub fn fill(
        &self,
        epoch: u64,
        conversation: ConversationId,
        identity: IdentityId,
        access: MemberAccess,
    ) {
        let mut inner = self.inner.lock();
        if inner.epoch != epoch {
            return;
        }
        if inner.entries >= MAX_ENTRIES {
            inner.conversations.clear();
            inner.entries = 0;
        }
        let members = inner.conversations.entry(conversation).or_default();
        if members.insert(identity, access).is_none() {
            inner.entries += 1;
        }
    }

    /// Forgets everything (called when the changes can no longer be followed).
    pub fn forget_all(&self) {
        let mut inner = self.inner.lock();
        inner.epoch += 1;
        inner.conversations.clear();
        inner.entries = 0;
    }

    /// Forgets everything known about these conversations (called after they changed).
    pub fn forget(&self, conversations: impl IntoIterator<Item = ConversationId>) {
        let mut inner = self.inner.lock();
        inner.epoch += 1;
        for conversation in conversations {
            if let Some(members) = inner.conversations.remove(&conversation) {
                inner.entries -= members.len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use confab_core::model::{ConversationKind, Metadata, Participant, Role};

    use super::*;

    fn access(role: Role) -> MemberAccess {
        MemberAccess {
            kind: ConversationKind::Chat,
            deleted: false,
            participant: Some(Participant {
                identity: alice(),
                display_name: None,
                share_history_time: None,
                metadata: Metadata::new(),
                role,
            }),
        }
    }

    fn alice() -> IdentityId {
        IdentityId::parse("8:acs:res_alice").expect("id")
    }

    #[test]
    fn a_fill_after_a_forget_is_dropped() {
        let cache = Memberships::default();
        let c = ConversationId(1);
        let epoch = cache.epoch();
        cache.fill(epoch, c, alice(), access(Role::Member));
        assert_eq!(cache.get(c, &alice()), Some(access(Role::Member)));

        // A read began, then a commit changed the conversation: what the read found is stale.
        let epoch = cache.epoch();
        cache.forget([c]);
        assert_eq!(cache.get(c, &alice()), None);
        cache.fill(epoch, c, alice(), access(Role::Admin));
        assert_eq!(cache.get(c, &alice()), None);

        let epoch = cache.epoch();
        cache.fill(epoch, c, alice(), access(Role::Admin));
        assert_eq!(cache.get(c, &alice()), Some(access(Role::Admin)));
    }

    #[test]
    fn forgetting_everything_drops_the_reads_begun_before() {
        let cache = Memberships::default();
        let (c, d) = (ConversationId(1), ConversationId(2));
        let epoch = cache.epoch();
        cache.fill(epoch, c, alice(), access(Role::Member));
        cache.fill(epoch, d, alice(), access(Role::Member));
        let before = cache.epoch();
        cache.forget_all();
        assert_eq!(cache.get(c, &alice()), None);
        assert_eq!(cache.get(d, &alice()), None);
        cache.fill(before, c, alice(), access(Role::Member));
        assert_eq!(cache.get(c, &alice()), None);
        assert_eq!(cache.inner.lock().entries, 0);
    }

    #[test]
    fn the_cache_starts_over_when_full() {
        let cache = Memberships::default();
        let epoch = cache.epoch();
        for i in 0..=MAX_ENTRIES {
            cache.fill(
                epoch,
                ConversationId(i as u128),
                alice(),
                access(Role::Member),
            );
        }
        assert_eq!(cache.inner.lock().entries, 1);
        cache.forget([ConversationId(MAX_ENTRIES as u128)]);
        assert_eq!(cache.inner.lock().entries, 0);
    }
}
