//! confab's scale-out store: PostgreSQL, for when one machine is not enough. Several confab
//! nodes share one database.
//!
//! * Writes go to the node's one writer thread (`writer.rs`), which commits whatever is queued
//!   in one transaction and answers only after the commit: an `Ok` from a write means
//!   committed. The writers of all nodes take turns through an advisory lock, which keeps the
//!   event log in commit order.
//! * Reads run on a small pool of connections (`READ_POOL_SIZE`), on tokio's blocking threads:
//!   the client is synchronous, and a read waits for the network.
//! * The schema is versioned (`schema.rs`, `migrations/`); its tables are the SQLite store's,
//!   so that both share their row encodings.
//! * It serves the whole [`confab_core::ports::Store`] contract and passes the conformance
//!   suite the SQLite store passes (`tests/postgres.rs`); what both must write identically
//!   (cursors, JSON columns, event payloads, webhook envelopes) comes from
//!   `confab_store_common`.
//! * Nothing is cached across batches that another node could change, but the active webhook
//!   subscriptions, reloaded whenever any node changes them (`meta.webhooks_version`). Due
//!   webhook deliveries are claimed for a while, so that the delivery workers of several
//!   nodes do not send one twice ([`DELIVERY_CLAIM_LEASE`]).
//! * Each node's real-time stream carries every node's events, in the log's order: its own
//!   from its writer, the others' read from the log when their writers notify (`tail.rs`).
//!
//! The client runs its own small runtime per connection, so a connection must never be used
//! or dropped on an async worker: the writer thread and the blocking pool own them, and the
//! pool's idle connections are dropped on a thread of their own.

mod actions;
mod appends;
mod connectors;
mod db;
mod events;
mod hierarchy;
mod identities;
mod media;
mod memberships;
mod reads;
mod rows;
mod schema;
mod store;
mod tail;
mod webhooks;
mod writer;
mod writes;

use std::sync::{Arc, OnceLock};

use confab_core::ports::{Clock, EventSink, StoreError, StoreResult};
use parking_lot::Mutex;
use tokio::sync::Semaphore;

pub use postgres::Config;

use crate::db::Conn;
use crate::writer::Writer;
use confab_store_common::write_queue::WriteQueue;

/// Connections for reads, and so reads running at once. Further reads wait for one.
const READ_POOL_SIZE: usize = 8;

/// How long a node's delivery worker holds a webhook delivery it took: well above an attempt's
/// timeout (confab refuses a `webhook_timeout_ms` of half of it or more), so that an attempt
/// still running is not sent again by another node, and short enough that the deliveries of a
/// node that died mid-attempt go out again soon.
pub const DELIVERY_CLAIM_LEASE: std::time::Duration = std::time::Duration::from_secs(60);

/// Where the writer hands committed events (set once).
pub(crate) type SinkSlot = Arc<OnceLock<Arc<dyn EventSink>>>;

/// This node, as its writer and its tail know it.
#[derive(Clone)]
pub(crate) struct Node {
    /// Tells this node's notifications from the other nodes' (random).
    pub(crate) id: u64,
    pub(crate) sink: SinkSlot,
    /// How far the sink has carried the event log (`tail.rs`).
    pub(crate) published: tail::PublishedThrough,
    pub(crate) memberships: Arc<memberships::NodeMemberships>,
}

/// The PostgreSQL store. Cheap to share behind an `Arc`; every method may be called
/// concurrently.
pub struct PostgresStore {
    writer: WriteQueue<Writer>,
    /// Appends waiting for the writer, taken together (`appends.rs`).
    appends: Arc<appends::AppendQueue>,
    /// Woken after each commit that recorded webhook deliveries.
    delivery_wakeup: Arc<tokio::sync::Notify>,
    node: Node,
    /// Publishes the other nodes' events once there is a sink.
    tail: OnceLock<tail::Tail>,
    reads: Arc<ReadPool>,
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user@host:port/db`, or the key=value
    /// form), bringing its schema up to date.
    pub async fn open(url: &str, clock: Arc<dyn Clock>) -> StoreResult<Self> {
        let config = url
            .parse::<Config>()
            .map_err(|e| StoreError::Unavailable(format!("bad PostgreSQL URL: {e}")))?;
        Self::connect(config, clock).await
    }

    /// [`PostgresStore::open`] with a parsed configuration (say, with `options` setting a
    /// `search_path`, to keep confab's tables in a schema of their own).
    pub async fn connect(config: Config, clock: Arc<dyn Clock>) -> StoreResult<Self> {
        let node = Node {
            id: std::hash::BuildHasher::hash_one(&std::hash::RandomState::new(), clock.now()),
            sink: SinkSlot::default(),
            published: tail::PublishedThrough::default(),
            memberships: Arc::default(),
        };
        let delivery_wakeup = Arc::new(tokio::sync::Notify::new());
        let writer =
            writer::start(config.clone(), clock, node.clone(), delivery_wakeup.clone()).await?;
        Ok(Self {
            writer,
            appends: Arc::default(),
            delivery_wakeup,
            node,
            tail: OnceLock::new(),
            reads: Arc::new(ReadPool {
                config,
                idle: Mutex::new(Vec::with_capacity(READ_POOL_SIZE)),
                permits: Arc::new(Semaphore::new(READ_POOL_SIZE)),
            }),
        })
    }

    /// Sets where committed events go: this node's own, handed over by the writer after each
    /// COMMIT (one call per batch), and from then on those the other nodes commit, in the
    /// log's order. Set once; answers false if one was set already.
    pub fn set_event_sink(&self, sink: Arc<dyn EventSink>) -> bool {
        if self.node.sink.set(Arc::clone(&sink)).is_err() {
            return false;
        }
        match tail::start(self.reads.config.clone(), self.node.clone(), sink) {
            Ok(tail) => {
                // Set once: only the call that set the sink gets here.
                let _ = self.tail.set(tail);
            }
            Err(err) => {
                tracing::error!(error = %err, "the other nodes' events will not be streamed")
            }
        }
        true
    }

    /// Whether this node follows the other nodes' commits right now: its tail (started with the
    /// event sink) is connected and has caught up with the log. While it does, memberships are
    /// answered from memory.
    pub fn follows_other_nodes(&self) -> bool {
        self.node.memberships.following()
    }

    /// Stops taking writes, waits until every queued write has committed (or failed), and stops
    /// the writer thread. Later writes answer `Unavailable`; reads still work.
    pub async fn close(&self) {
        self.writer.close().await;
    }

    /// Runs a read on a pooled connection, on the blocking pool.
    async fn read<T, F>(&self, read: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Conn) -> StoreResult<T> + Send + 'static,
    {
        let pool = Arc::clone(&self.reads);
        // Wait here, on the async side, so that waiting reads hold no blocking thread.
        let permit = Arc::clone(&pool.permits)
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Unavailable("the store is closed".into()))?;
        tokio::task::spawn_blocking(move || {
            let result = pool.run(read);
            drop(permit);
            result
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("read task failed: {e}")))?
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.writer.close_now();
    }
}

/// Read connections, reused; at most [`READ_POOL_SIZE`], opened on first need.
struct ReadPool {
    config: postgres::Config,
    idle: Mutex<Vec<Conn>>,
    /// One per connection: a read holds one from before it takes a connection until after it
    /// gives it back, so a read finds an idle connection or may open one within the cap.
    permits: Arc<Semaphore>,
}

impl ReadPool {
    /// Runs `read` on an idle connection (or a new one) and gives it back, unless the read
    /// panicked or the connection broke. Blocks: on the blocking pool only.
    fn run<T>(&self, read: impl FnOnce(&Conn) -> StoreResult<T>) -> StoreResult<T> {
        let idle = self.idle.lock().pop();
        let conn = match idle {
            Some(conn) => conn,
            None => Conn::new(schema::connect(&self.config)?),
        };
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read(&conn)));
        match result {
            Ok(result) => {
                if !conn.is_closed() {
                    self.idle.lock().push(conn);
                }
                result
            }
            Err(_) => Err(StoreError::Unavailable("a read panicked".into())),
        }
    }
}

impl Drop for ReadPool {
    /// The idle connections close on a thread of their own: closing one blocks on the client's
    /// runtime, which must not happen on an async worker (where the last store handle is often
    /// dropped).
    fn drop(&mut self) {
        let idle = std::mem::take(&mut *self.idle.lock());
        if idle.is_empty() {
            return;
        }
        let spawned = std::thread::Builder::new()
            .name("confab-postgres-close".into())
            .spawn(move || drop(idle));
        if let Err(err) = spawned {
            tracing::warn!(error = %err, "cannot close the read connections");
        }
    }
}
