//! Values read from the store and kept, so that checking a token costs no query, and changed
//! in place by this node's own writes (a token revoked, an identity or application deleted).
//!
//! A miss reads the store and fills the entry afterwards. A write that lands during that read
//! sets its entry first, and the fill would then put the old value back for good: a revoked
//! token, or one of a deleted identity, would work again. Hence the epoch, as in the stores'
//! membership cache: every write bumps it, and a fill is kept only if the epoch is still the
//! one taken before the read began (the read then saw every write that bumped it).
//!
//! Writes of other nodes sharing the store are not heard of here: with a `max_age`, a value is
//! read again once it is that old, which bounds how long another node's revocation goes
//! unseen.

use std::borrow::Borrow;
use std::hash::Hash;
use std::time::{Duration, Instant};

use parking_lot::RwLock;

use crate::FastMap;

pub(crate) struct ReadCache<K, V> {
    inner: RwLock<Inner<K, V>>,
    /// How long a value is used before it is read again; `None`: until a write changes it.
    max_age: Option<Duration>,
}

struct Inner<K, V> {
    /// Bumped by every write.
    epoch: u64,
    /// Each value with when it was read or written.
    map: FastMap<K, (V, Instant)>,
}

impl<K, V> Default for ReadCache<K, V> {
    fn default() -> Self {
        Self {
            inner: RwLock::new(Inner {
                epoch: 0,
                map: FastMap::default(),
            }),
            max_age: None,
        }
    }
}

impl<K, V> ReadCache<K, V> {
    /// A cache whose values are read again once `max_age` old.
    pub(crate) fn with_max_age(max_age: Duration) -> Self {
        Self {
            max_age: Some(max_age),
            ..Self::default()
        }
    }
}

impl<K: Eq + Hash, V: Clone> ReadCache<K, V> {
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        let inner = self.inner.read();
        let (value, at) = inner.map.get(key)?;
        match self.max_age {
            Some(max_age) if at.elapsed() > max_age => None,
            _ => Some(value.clone()),
        }
    }

    /// The epoch to take before a read whose answer goes to [`ReadCache::fill`].
    pub(crate) fn epoch(&self) -> u64 {
        self.inner.read().epoch
    }

    /// Keeps what a read that began at `epoch` found, unless a write came in between.
    pub(crate) fn fill(&self, epoch: u64, key: K, value: V) {
        let mut inner = self.inner.write();
        if inner.epoch == epoch {
            inner.map.insert(key, (value, Instant::now()));
        }
    }

    /// What a write of this node made the value (after the store committed it).
    pub(crate) fn set(&self, key: K, value: V) {
        let mut inner = self.inner.write();
        inner.epoch += 1;
        inner.map.insert(key, (value, Instant::now()));
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

    #[test]
    fn with_a_max_age_an_old_value_is_read_again() {
        let cache: ReadCache<String, bool> = ReadCache::with_max_age(Duration::from_millis(20));
        cache.set("app".into(), true);
        assert_eq!(cache.get("app"), Some(true));
        std::thread::sleep(Duration::from_millis(40));
        // Another node may have deleted it meanwhile: ask the store again.
        assert_eq!(cache.get("app"), None);
        let epoch = cache.epoch();
        cache.fill(epoch, "app".into(), false);
        assert_eq!(cache.get("app"), Some(false));
    }
}
