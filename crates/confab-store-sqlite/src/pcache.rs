//! SQLite's own page cache, wrapped to skip a needless scan at the end of every transaction.
//!
//! When a b-tree split hands out sibling pages out of order, `balance_nonroot` swaps two page
//! numbers through a temporary one: the page after the lock-byte page (page 262,145 with 4 KiB
//! pages, just past the first GiB). The cache remembers it as the highest page number it ever
//! held. At the end of every transaction the pager truncates the cache to the database size,
//! and with that remembered number far above it, the default cache (`pcache1`) walks every page
//! it holds — for nothing, since the temporary page was renumbered again at once. Measured: 4 %
//! of the server's samples when sends go to 1,000 threads, ~5 % when creating threads, on a
//! database under 1 GiB (past it the number is below the database size and the walk stops).
//!
//! The wrapper forwards every call to the default cache and keeps its own highest page number,
//! which skips the temporary one; a truncation reaches the default cache only when a page at or
//! past the limit may exist. Everything else, including every page's memory, stays the default
//! cache's.

use std::os::raw::{c_int, c_uint, c_void};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Once, OnceLock};

use rusqlite::ffi;

/// Where SQLite's lock-byte page sits (`PENDING_BYTE`, unchanged unless a test reconfigures it).
const PENDING_BYTE: u32 = 0x4000_0000;

/// The default cache's methods, which every wrapper method calls.
static INNER: OnceLock<Methods> = OnceLock::new();

/// Truncations passed to the default cache, and skipped; counted in tests only (see [`count`]).
static TRUNCATIONS_PASSED: AtomicU64 = AtomicU64::new(0);
static TRUNCATIONS_SKIPPED: AtomicU64 = AtomicU64::new(0);
/// Page numbers swapped through the temporary one.
static SWAPS: AtomicU64 = AtomicU64::new(0);

struct Methods(ffi::sqlite3_pcache_methods2);

// SAFETY: the struct holds function pointers and the default cache's `pArg`, which SQLite
// itself shares between all threads.
unsafe impl Send for Methods {}
unsafe impl Sync for Methods {}

/// One cache (one connection's pager): the default cache's, and the highest page number it may
/// hold. A pager calls its cache from one thread at a time; the atomics only keep that sound.
struct Wrapped {
    inner: *mut ffi::sqlite3_pcache,
    max_key: AtomicU32,
    /// The temporary page number of `balance_nonroot` for this page size.
    swap_key: u32,
}

/// Installs the wrapper, once per process, before SQLite initializes: every connection the
/// store opens calls this first. Where SQLite was initialized already (another part of the
/// process opened a connection first), it stays as it is; that only costs the scan.
pub(crate) fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: `sqlite3_config` before `sqlite3_initialize`, not concurrently with another
        // configuration (the `Once`); GETPCACHE2 writes one struct through a pointer to a live
        // one, PCACHE2 copies the one it is given.
        unsafe {
            let mut default: ffi::sqlite3_pcache_methods2 = std::mem::zeroed();
            if ffi::sqlite3_config(
                ffi::SQLITE_CONFIG_GETPCACHE2,
                &mut default as *mut ffi::sqlite3_pcache_methods2,
            ) != ffi::SQLITE_OK
            {
                tracing::debug!("sqlite was initialized already; page cache left as it is");
                return;
            }
            if INNER.set(Methods(default)).is_err() {
                return;
            }
            let ours = ffi::sqlite3_pcache_methods2 {
                iVersion: 1,
                pArg: std::ptr::null_mut(),
                xInit: Some(init),
                xShutdown: Some(shutdown),
                xCreate: Some(create),
                xCachesize: Some(cachesize),
                xPagecount: Some(pagecount),
                xFetch: Some(fetch),
                xUnpin: Some(unpin),
                xRekey: Some(rekey),
                xTruncate: Some(truncate),
                xDestroy: Some(destroy),
                xShrink: Some(shrink),
            };
            let rc = ffi::sqlite3_config(
                ffi::SQLITE_CONFIG_PCACHE2,
                &ours as *const ffi::sqlite3_pcache_methods2,
            );
            if rc != ffi::SQLITE_OK {
                tracing::debug!(rc, "sqlite refused the page cache wrapper");
            }
        }
    });
}

/// How many truncations the wrapper passed on to the default cache, how many it skipped, and
/// how many pages went through the temporary number.
#[cfg(test)]
pub(crate) fn counts() -> (u64, u64, u64) {
    (
        TRUNCATIONS_PASSED.load(Ordering::Relaxed),
        TRUNCATIONS_SKIPPED.load(Ordering::Relaxed),
        SWAPS.load(Ordering::Relaxed),
    )
}

/// Adds one to a counter of the tests. Compiled out elsewhere: every read transaction of every
/// thread ends in a truncation, and would bump a counter all threads share.
fn count(counter: &AtomicU64) {
    if cfg!(test) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

fn inner() -> &'static ffi::sqlite3_pcache_methods2 {
    // `install` sets it before SQLite can call any of the functions below.
    &INNER.get().expect("the default page cache is known").0
}

/// The wrapper behind a cache handle SQLite got from `create`.
///
/// # Safety
/// `cache` must come from `create` and not have been destroyed.
unsafe fn wrapped<'a>(cache: *mut ffi::sqlite3_pcache) -> &'a Wrapped {
    &*(cache as *const Wrapped)
}

unsafe extern "C" fn init(_: *mut c_void) -> c_int {
    let inner = inner();
    match inner.xInit {
        Some(init) => init(inner.pArg),
        None => ffi::SQLITE_OK,
    }
}

unsafe extern "C" fn shutdown(_: *mut c_void) {
    let inner = inner();
    if let Some(shutdown) = inner.xShutdown {
        shutdown(inner.pArg);
    }
}

unsafe extern "C" fn create(
    page_size: c_int,
    extra: c_int,
    purgeable: c_int,
) -> *mut ffi::sqlite3_pcache {
    let Some(create) = inner().xCreate else {
        return std::ptr::null_mut();
    };
    let cache = create(page_size, extra, purgeable);
    if cache.is_null() {
        return cache;
    }
    let page_size = u32::try_from(page_size).unwrap_or(1).max(1);
    Box::into_raw(Box::new(Wrapped {
        inner: cache,
        max_key: AtomicU32::new(0),
        swap_key: PENDING_BYTE / page_size + 1,
    }))
    .cast()
}

unsafe extern "C" fn cachesize(cache: *mut ffi::sqlite3_pcache, size: c_int) {
    if let Some(cachesize) = inner().xCachesize {
        cachesize(wrapped(cache).inner, size);
    }
}

unsafe extern "C" fn pagecount(cache: *mut ffi::sqlite3_pcache) -> c_int {
    match inner().xPagecount {
        Some(pagecount) => pagecount(wrapped(cache).inner),
        None => 0,
    }
}

unsafe extern "C" fn fetch(
    cache: *mut ffi::sqlite3_pcache,
    key: c_uint,
    create: c_int,
) -> *mut ffi::sqlite3_pcache_page {
    let Some(fetch) = inner().xFetch else {
        return std::ptr::null_mut();
    };
    let cache = wrapped(cache);
    let page = fetch(cache.inner, key, create);
    if !page.is_null() {
        cache.max_key.fetch_max(key, Ordering::Relaxed);
    }
    page
}

unsafe extern "C" fn unpin(
    cache: *mut ffi::sqlite3_pcache,
    page: *mut ffi::sqlite3_pcache_page,
    discard: c_int,
) {
    if let Some(unpin) = inner().xUnpin {
        unpin(wrapped(cache).inner, page, discard);
    }
}

unsafe extern "C" fn rekey(
    cache: *mut ffi::sqlite3_pcache,
    page: *mut ffi::sqlite3_pcache_page,
    old: c_uint,
    new: c_uint,
) {
    let Some(rekey) = inner().xRekey else {
        return;
    };
    let cache = wrapped(cache);
    rekey(cache.inner, page, old, new);
    // The swap's temporary number is given up again within the same split (see the module
    // doc); any other new number is a page the cache now holds.
    if new == cache.swap_key {
        count(&SWAPS);
    } else {
        cache.max_key.fetch_max(new, Ordering::Relaxed);
    }
}

unsafe extern "C" fn truncate(cache: *mut ffi::sqlite3_pcache, limit: c_uint) {
    let Some(truncate) = inner().xTruncate else {
        return;
    };
    let cache = wrapped(cache);
    // Pages numbered `limit` and above go; none can exist if the highest number held is below.
    if cache.max_key.load(Ordering::Relaxed) >= limit {
        truncate(cache.inner, limit);
        cache
            .max_key
            .store(limit.saturating_sub(1), Ordering::Relaxed);
        count(&TRUNCATIONS_PASSED);
    } else {
        count(&TRUNCATIONS_SKIPPED);
    }
}

unsafe extern "C" fn destroy(cache: *mut ffi::sqlite3_pcache) {
    let wrapper = Box::from_raw(cache.cast::<Wrapped>());
    if let Some(destroy) = inner().xDestroy {
        destroy(wrapper.inner);
    }
}

unsafe extern "C" fn shrink(cache: *mut ffi::sqlite3_pcache) {
    if let Some(shrink) = inner().xShrink {
        shrink(wrapped(cache).inner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::writer::tests::{value, writer};

    /// Keys in a scattered order, so that leaves split in the middle of the tree (where
    /// `balance_nonroot` swaps page numbers), as appends to many threads do.
    fn scattered(i: u64) -> i64 {
        i64::try_from(i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 20).unwrap_or(0)
    }

    fn fill(conn: &rusqlite::Connection, from: u64, to: u64, pad: &str) {
        let mut insert = conn
            .prepare("INSERT INTO t (k, v) VALUES (?1, ?2)")
            .expect("prepare");
        for i in from..to {
            insert.execute((scattered(i), pad)).expect("insert");
        }
    }

    /// A fresh writer's connection with the table `fill` writes to.
    fn table(name: &str) -> (crate::writer::Writer, crate::ScratchFiles) {
        let (w, scratch) = writer(name);
        w.conn
            .execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL) WITHOUT ROWID")
            .expect("table");
        (w, scratch)
    }

    #[test]
    fn splits_in_the_middle_of_a_tree_cost_no_truncation_of_the_cache() {
        let (w, _scratch) = table("pcache-splits");
        let conn = &w.conn;
        let (_, skipped_before, swaps_before) = counts();
        let pad = "x".repeat(200);
        for batch in 0..40 {
            conn.execute_batch("BEGIN").expect("begin");
            fill(conn, batch * 100, batch * 100 + 100, &pad);
            conn.execute_batch("COMMIT").expect("commit");
        }
        let (_, skipped_after, swaps_after) = counts();
        // Splits swapped page numbers through the temporary one, after which the default cache
        // would have walked all its pages at every commit; the wrapper skipped the truncations.
        // (Other tests may add to the counts, never subtract.)
        assert!(swaps_after > swaps_before, "no page was swapped");
        assert!(
            skipped_after - skipped_before >= 40,
            "skipped {}",
            skipped_after - skipped_before
        );
        assert_eq!(value::<String>(conn, "PRAGMA integrity_check"), "ok");
        assert_eq!(value::<i64>(conn, "SELECT COUNT(*) FROM t"), 4_000);
    }

    /// A rolled-back transaction that grew the database leaves pages past its old end in the
    /// cache; they must go, or the next growth would find their stale contents.
    #[test]
    fn a_rolled_back_growth_leaves_no_stale_page() {
        let (w, _scratch) = table("pcache-rollback");
        let conn = &w.conn;
        fill(conn, 0, 200, "kept");
        let pages = |conn| value::<i64>(conn, "PRAGMA page_count");
        let before = pages(conn);
        let (passed_before, _, _) = counts();
        conn.execute_batch("BEGIN").expect("begin");
        fill(conn, 1_000, 3_000, &"rolled back ".repeat(20));
        assert!(pages(conn) > before + 50, "the database grew");
        conn.execute_batch("ROLLBACK").expect("rollback");
        let (passed_after, _, _) = counts();
        assert!(
            passed_after > passed_before,
            "the truncation reached the cache"
        );
        assert_eq!(pages(conn), before);
        // Grow again, over the same page numbers, with other contents.
        conn.execute_batch("BEGIN").expect("begin");
        fill(conn, 5_000, 7_000, &"grown again ".repeat(20));
        conn.execute_batch("COMMIT").expect("commit");
        assert_eq!(value::<String>(conn, "PRAGMA integrity_check"), "ok");
        let rolled_back = "SELECT COUNT(*) FROM t WHERE v LIKE 'rolled back%'";
        assert_eq!(value::<i64>(conn, rolled_back), 0);
        assert_eq!(value::<i64>(conn, "SELECT COUNT(*) FROM t"), 2_200);
    }
}
