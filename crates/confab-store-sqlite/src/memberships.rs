//! Memberships kept in memory: nearly every call is authorized with `get_membership`, and
//! answering it from here instead of a read saves a trip through the read pool and its
//! blocking threads per call.
//!
//! It stays right because the writer is the only thing that changes the database: after each
//! COMMIT, before it answers any job of the batch, it forgets every conversation whose
//! membership the batch changed (see [`changes_membership`]). So once a write that removes a
//! participant (or deletes a conversation, or changes a role) has returned, no later call sees
//! the old entry.
//!
//! A read that misses fills the entry afterwards, which could put back what a commit made
//! during the read just forgot. Hence the epoch: every forget bumps it, and an entry is only
//! filled if the epoch is still the one taken before the read began (the read then saw every
//! commit that bumped it).

use std::collections::HashMap;

use confab_core::ids::{ConversationId, IdentityId};
use confab_core::model::EventKind;
use confab_core::ports::MemberAccess;
use confab_store_common::memberships::changes_membership;
use parking_lot::Mutex;

use crate::writer::Writer;

/// Entries kept at most; past it the cache starts over empty (it refills on demand). Bounds
/// its memory (some 10 MB) whatever the number of identities and conversations.
const MAX_ENTRIES: usize = 50_000;

#[derive(Default)]
pub(crate) struct Memberships {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Bumped by every forget.
    epoch: u64,
    /// Per conversation, so that forgetting one is one removal.
    conversations: HashMap<ConversationId, HashMap<IdentityId, MemberAccess>>,
    entries: usize,
}

impl Memberships {
    pub(crate) fn get(
        &self,
        conversation: ConversationId,
        identity: &IdentityId,
    ) -> Option<MemberAccess> {
        let inner = self.inner.lock();
        inner
            .conversations
            .get(&conversation)?
            .get(identity)
            .cloned()
    }

    /// The epoch to take before a read whose answer goes to [`Memberships::fill`].
    pub(crate) fn epoch(&self) -> u64 {
        self.inner.lock().epoch
    }

    /// Keeps what a read that began at `epoch` found, unless a forget came in between.
    pub(crate) fn fill(
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

    /// Forgets everything known about these conversations (called after they changed).
    pub(crate) fn forget(&self, conversations: impl IntoIterator<Item = ConversationId>) {
        let mut inner = self.inner.lock();
        inner.epoch += 1;
        for conversation in conversations {
            if let Some(members) = inner.conversations.remove(&conversation) {
                inner.entries -= members.len();
            }
        }
    }
}

impl Writer {
    /// Notes that the batch changed this conversation's membership, if an event of `kind` does.
    pub(crate) fn note_membership_change(
        &self,
        kind: &EventKind,
        conversation: Option<ConversationId>,
    ) {
        if let Some(conversation) = conversation.filter(|_| changes_membership(kind)) {
            self.membership_changes.borrow_mut().push(conversation);
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
