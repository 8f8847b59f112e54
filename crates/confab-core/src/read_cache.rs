//! Values read from the store and kept, so that checking a token costs no query, and changed
//! in place by this node's own writes (a token revoked, an identity or application deleted).
//!
//! A miss reads the store and fills the entry afterwards. A write that lands during that read
//! sets its entry first, and the fill would then put the old value back for good: a revoked
//! token, or one of a deleted identity, would work again. Hence the epoch, as in the stores'
//! membership cache: every write bumps it, and a fill is kept only if the epoch is still the
//! one taken before the read began (the read then saw every write that bumped it).

use std::borrow::Borrow;
use std::hash::Hash;

use parking_lot::RwLock;

use crate::FastMap;

pub(crate) struct ReadCache<K, V> {
    inner: RwLock<Inner<K, V>>,
}

struct Inner<K, V> {
    /// Bumped by every write.
    epoch: u64,
    map: FastMap<K, V>,
}

impl<K, V> Default for ReadCache<K, V> {
    fn default() -> Self {
        Self {
            inner: RwLock::new(Inner {
                epoch: 0,
                map: FastMap::default(),
            }),
        }
    }
}

impl<K: Eq + Hash, V: Clone> ReadCache<K, V> {
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.inner.read().map.get(key).cloned()
    }

    /// The epoch to take before a read whose answer goes to [`ReadCache::fill`].
    pub(crate) fn epoch(&self) -> u64 {
        self.inner.read().epoch
    }

    /// Keeps what a read that began at `epoch` found, unless a write came in between.
    pub(crate) fn fill(&self, epoch: u64, key: K, value: V) {
        let mut inner = self.inner.write();
        if inner.epoch == epoch {
            inner.map.insert(key, value);
        }
    }

    /// What a write of this node made the value (after the store committed it).
    pub(crate) fn set(&self, key: K, value: V) {
        let mut inner = self.inner.write();
        inner.epoch += 1;
        inner.map.insert(key, value);
    }

    /// Forgets the value: the next check reads the store.
    pub(crate) fn forget<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        let mut inner = self.inner.write();
        inner.epoch += 1;
        inner.map.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fill_from_a_read_that_a_write_overtook_is_dropped() {
        let cache: ReadCache<String, Option<u32>> = ReadCache::default();
        // A token check misses and starts reading: the identity still has generation 0.
        let epoch = cache.epoch();
        // Meanwhile the identity is deleted and the cache told.
        cache.set("a".into(), None);
        // The read answers what it found before the delete: not kept.
        cache.fill(epoch, "a".into(), Some(0));
        assert_eq!(cache.get("a"), Some(None));
        // A read that no write overtook is kept.
        let epoch = cache.epoch();
        cache.fill(epoch, "b".into(), Some(3));
        assert_eq!(cache.get("b"), Some(Some(3)));
        // Forgetting is a write too.
        let epoch = cache.epoch();
        cache.forget("b");
        cache.fill(epoch, "b".into(), Some(3));
        assert_eq!(cache.get("b"), None);
    }
}
