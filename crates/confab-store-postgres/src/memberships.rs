//! Memberships kept in memory on a node, as the SQLite store keeps them: nearly every call is
//! authorized with `get_membership`, and answering it from here saves a read (a trip through
//! the blocking pool and one to the server) per call.
//!
//! Other nodes change memberships too, so the cache is used only while this node follows their
//! changes: while its tail (`tail.rs`) is connected and has caught up with the log. Each change
//! is forgotten when it is published here — by the writer after its own COMMIT, before it
//! answers; by whoever reads another node's events from the log. A change another node commits
//! is therefore seen here once the tail has read it, a few milliseconds after its COMMIT (the
//! notification's trip), as the store's reads see it a trip after theirs. When the tail loses
//! its connection, the cache is emptied and not used until it is back and caught up.

use std::sync::atomic::{AtomicBool, Ordering};

use confab_core::ids::{ConversationId, IdentityId};
use confab_core::ports::MemberAccess;
use confab_store_common::memberships::Memberships;

#[derive(Default)]
pub(crate) struct NodeMemberships {
    cache: Memberships,
    /// Whether the other nodes' changes are being followed (the cache may be used).
    following: AtomicBool,
}

impl NodeMemberships {
    pub(crate) fn get(
        &self,
        conversation: ConversationId,
        identity: &IdentityId,
    ) -> Option<MemberAccess> {
        if !self.following() {
            return None;
        }
        self.cache.get(conversation, identity)
    }

    /// The epoch to take before a read whose answer goes to [`NodeMemberships::fill`].
    pub(crate) fn epoch(&self) -> u64 {
        self.cache.epoch()
    }

    /// Keeps what a read that began at `epoch` found, unless a forget came in between (a
    /// change, or the following starting or stopping).
    pub(crate) fn fill(
        &self,
        epoch: u64,
        conversation: ConversationId,
        identity: IdentityId,
        access: MemberAccess,
    ) {
        if self.following() {
            self.cache.fill(epoch, conversation, identity, access);
        }
    }

    pub(crate) fn forget(&self, conversations: impl IntoIterator<Item = ConversationId>) {
        self.cache.forget(conversations);
    }

    pub(crate) fn following(&self) -> bool {
        self.following.load(Ordering::Acquire)
    }

    /// The tail has caught up with the log: from now on every change reaches the cache. What
    /// it held, and the reads begun before, are dropped (changes may have been missed).
    pub(crate) fn start_following(&self) {
        self.cache.forget_all();
        self.following.store(true, Ordering::Release);
    }

    /// The tail lost the log: nothing is answered from memory until it is back.
    pub(crate) fn stop_following(&self) {
        self.following.store(false, Ordering::Release);
        self.cache.forget_all();
    }
}

#[cfg(test)]
mod tests {
    use confab_core::model::ConversationKind;

    use super::*;

    fn access() -> MemberAccess {
        MemberAccess {
            kind: ConversationKind::Chat,
            deleted: false,
            participant: None,
        }
    }

    fn alice() -> IdentityId {
        IdentityId::parse("8:acs:res_alice").expect("id")
    }

    #[test]
    fn nothing_is_kept_or_answered_unless_following() {
        let node = NodeMemberships::default();
        let c = ConversationId(1);
        node.fill(node.epoch(), c, alice(), access());
        assert_eq!(node.get(c, &alice()), None);

        // A read begun before the following started is not kept.
        let before = node.epoch();
        node.start_following();
        node.fill(before, c, alice(), access());
        assert_eq!(node.get(c, &alice()), None);
        node.fill(node.epoch(), c, alice(), access());
        assert_eq!(node.get(c, &alice()), Some(access()));

        node.stop_following();
        assert_eq!(node.get(c, &alice()), None);
        node.start_following();
        assert_eq!(
            node.get(c, &alice()),
            None,
            "emptied when the following stopped"
        );
    }
}
