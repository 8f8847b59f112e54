//! The Store conformance suite (`confab-store-conformance`), run against a file store and an
//! `in_memory` one.

use std::sync::Arc;

use confab_store_conformance::{Fixture, PublishedEvents, TestClock};
use confab_store_sqlite::SqliteStore;

mod support;
use support::TempDir;

/// A store in a file under a fresh temp dir (whose parent directory `open` must create).
async fn file_store() -> Option<Fixture> {
    let dir = TempDir::new();
    let clock = TestClock::new();
    let store = SqliteStore::open(&dir.db(), clock.clone()).expect("open");
    Some(publishing(store, clock).with_guard(dir))
}

async fn memory_store() -> Option<Fixture> {
    let clock = TestClock::new();
    let store = SqliteStore::in_memory(clock.clone()).expect("in_memory");
    Some(publishing(store, clock))
}

/// The fixture of `store`, whose committed events go to the fixture's `published`.
fn publishing(store: SqliteStore, clock: Arc<TestClock>) -> Fixture {
    let published = Arc::new(PublishedEvents::default());
    assert!(store.set_event_sink(published.clone()));
    Fixture::new(Arc::new(store), clock).with_published(published)
}

mod file {
    confab_store_conformance::all_checks!(super::file_store);
}

mod in_memory {
    confab_store_conformance::all_checks!(super::memory_store);
}
