//! The read pool: a few connections of the async client, on confab's own runtime, each taking
//! several reads at once.
//!
//! The client pipelines the queries of the reads that share a connection: the server runs them
//! one after the other, but the next one is already there when one ends, so a connection's
//! backend is not left waiting for the network and for confab between reads (on a 2-core
//! machine, +15 % pages of messages a second against one read a connection at a time). A read
//! takes the connection with the fewest reads in flight, so that a slow read holds up few
//! others; beyond [`READS_PER_CONNECTION`] a connection on average, reads wait for one to end.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use confab_core::ports::{StoreError, StoreResult};
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};

use crate::db::ReadConn;
use crate::schema;

/// Connections for reads, opened on first need.
const READ_CONNECTIONS: usize = 8;

/// Reads in flight a connection, on average, before further reads wait.
const READS_PER_CONNECTION: usize = 4;

pub(crate) struct ReadPool {
    pub(crate) config: tokio_postgres::Config,
    slots: Vec<Slot>,
    permits: Arc<Semaphore>,
}

/// One connection of the pool: opened on first need, and again once it broke.
#[derive(Default)]
struct Slot {
    /// Locked only to take the connection, or to open it.
    conn: Mutex<Option<Arc<ReadConn>>>,
    in_flight: AtomicUsize,
}

impl ReadPool {
    pub(crate) fn new(config: tokio_postgres::Config) -> Self {
        Self {
            config,
            slots: (0..READ_CONNECTIONS).map(|_| Slot::default()).collect(),
            permits: Arc::new(Semaphore::new(READ_CONNECTIONS * READS_PER_CONNECTION)),
        }
    }

    /// A connection for one read: the one with the fewest reads in flight.
    pub(crate) async fn reader(self: Arc<Self>) -> StoreResult<Reader> {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Unavailable("the store is closed".into()))?;
        let slot = (0..self.slots.len())
            .min_by_key(|&i| self.slots[i].in_flight.load(Ordering::Relaxed))
            .unwrap_or(0);
        // Counted from here: a read that cannot open its connection uncounts itself.
        self.slots[slot].in_flight.fetch_add(1, Ordering::Relaxed);
        let in_flight = InFlight {
            pool: Arc::clone(&self),
            slot,
        };
        let mut kept = self.slots[slot].conn.lock().await;
        let conn = match kept.as_ref().filter(|conn| !conn.is_closed()) {
            Some(open) => Arc::clone(open),
            None => {
                let opened = Arc::new(schema::connect_reader(&self.config).await?);
                *kept = Some(Arc::clone(&opened));
                opened
            }
        };
        drop(kept);
        Ok(Reader {
            conn,
            _in_flight: in_flight,
            _permit: permit,
        })
    }
}

/// A connection of the pool, for one read. A read cancelled halfway leaves the connection
/// good: the client discards the answer nobody waits for.
pub(crate) struct Reader {
    conn: Arc<ReadConn>,
    _in_flight: InFlight,
    _permit: OwnedSemaphorePermit,
}

impl std::ops::Deref for Reader {
    type Target = ReadConn;

    fn deref(&self) -> &ReadConn {
        &self.conn
    }
}

/// A read counted on its connection until dropped.
struct InFlight {
    pool: Arc<ReadPool>,
    slot: usize,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.pool.slots[self.slot]
            .in_flight
            .fetch_sub(1, Ordering::Relaxed);
    }
}
