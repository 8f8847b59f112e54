//! confab's scale-out store: PostgreSQL, for when one machine is not enough. Several confab
//! nodes share one database.
//!
//! * Writes go to the node's one writer thread (`writer.rs`), which commits whatever is queued
//!   in one transaction and answers only after the commit: an `Ok` from a write means
//!   committed. The writers of all nodes take turns through an advisory lock, which keeps the
//!   event log in commit order.
//! * Reads run on a small pool of connections with the async client, on confab's own runtime
//!   (`read_pool.rs`).
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
//! The writer and the tail are threads with the synchronous client, which runs its own small
//! runtime per connection: such a connection must never be used or dropped on an async worker.

mod actions;
mod connectors;
mod db;
mod events;
mod groups;
mod hierarchy;
mod identities;
mod media;
mod memberships;
mod read_pool;
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

pub use tokio_postgres::Config;

use crate::read_pool::{ReadPool, Reader};
use crate::writer::Writer;
use confab_store_common::write_queue::WriteQueue;

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
    /// Appends waiting for the writer, taken together (`groups.rs`).
    appends: Arc<groups::GroupQueue<confab_core::ports::NewMessage>>,
    /// Creations waiting for the writer, taken together (`groups.rs`).
    creations: Arc<groups::GroupQueue<confab_store_common::creation::Creation>>,
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
        let writer = writer::start(
            postgres::Config::from(config.clone()),
            clock,
            node.clone(),
            delivery_wakeup.clone(),
        )
        .await?;
        Ok(Self {
            writer,
            appends: Arc::default(),
            creations: Arc::default(),
            delivery_wakeup,
            node,
            tail: OnceLock::new(),
            reads: Arc::new(ReadPool::new(config)),
        })
    }

    /// Sets where committed events go: this node's own, handed over by the writer after each
    /// COMMIT (one call per batch), and from then on those the other nodes commit, in the
    /// log's order. Set once; answers false if one was set already.
    pub fn set_event_sink(&self, sink: Arc<dyn EventSink>) -> bool {
        if self.node.sink.set(Arc::clone(&sink)).is_err() {
            return false;
        }
        let config = postgres::Config::from(self.reads.config.clone());
        match tail::start(config, self.node.clone(), sink) {
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

    /// A read connection of the pool, for one read (see `read_pool.rs`).
    async fn reader(&self) -> StoreResult<Reader> {
        Arc::clone(&self.reads).reader().await
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.writer.close_now();
    }
}
