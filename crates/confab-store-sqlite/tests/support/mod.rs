//! What the SQLite test binaries share: temp dirs.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use time::OffsetDateTime;

/// A unique directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        Self(std::env::temp_dir().join(format!(
            "confab-store-test-{}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            OffsetDateTime::now_utc().unix_timestamp_nanos()
        )))
    }

    /// The database file, in a directory that does not exist yet: `open` must create it.
    pub fn db(&self) -> PathBuf {
        self.0.join("data").join("confab.sqlite")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
