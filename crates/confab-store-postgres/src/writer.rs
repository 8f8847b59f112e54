//! The node's one writer: a thread that owns a connection and commits in groups.
//!
//! Async callers hand it a job (a closure over [`Writer`]) with a oneshot for the answer. The
//! thread blocks for the first job, drains whatever else is queued (up to [`MAX_BATCH`]), runs
//! them all in ONE transaction, COMMITs once and only then answers: an `Ok` answer means
//! committed. Under load this turns many writes into one WAL flush and one round trip of
//! transaction control, whatever PostgreSQL's own group commit adds.
//!
//! Every batch first takes the store's advisory lock (held to the end of the transaction), so
//! that the writers of several nodes on one database commit one after the other. That is what
//! keeps the event log's positions in commit order (a reader resuming after position `p`
//! never misses an event that commits later with a smaller one) and lets the id clock and each
//! conversation's sequence ids be read and advanced without races.
//!
//! A failing job must fail alone. A job that fails cleanly has changed nothing, but PostgreSQL
//! cannot say so cheaply, and a failed statement aborts the whole transaction; so the first
//! failure rolls the batch back and runs it again with each job inside its own SAVEPOINT
//! (jobs are re-runnable closures for that reason, and nothing is answered before the commit).
//! Batches without failures, nearly all of them, pay for no savepoint.

use std::sync::Arc;

use confab_core::ports::{CommittedEvent, StoreError, StoreResult};
use confab_store_common::write_queue::{serve, Job, Jobs, WriteQueue};
use postgres::Config;
use tokio::sync::oneshot;

use crate::db::Conn;
use crate::schema;
use crate::SinkSlot;

/// The most jobs committed in one transaction. Bounds the latency a job can add to the others
/// in its batch, and the work lost to a failed commit.
pub(crate) const MAX_BATCH: usize = 1024;

/// Takes the writers' lock for the transaction and reads the id clock, in one round trip. The
/// lock is keyed by the schema, so that stores in other schemas of one database (tests) do not
/// wait for each other.
const BEGIN_BATCH: &str =
    "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.confab_writes'))::text,
        (SELECT value FROM meta WHERE key = 'id_clock')";

const SAVE_ID_CLOCK: &str = "INSERT INTO meta (key, value) VALUES ('id_clock', $1)
     ON CONFLICT (key) DO UPDATE SET value = excluded.value";

/// Starts the writer thread, which connects and brings the schema up to date; answers its
/// queue once it has (or why it could not). Connecting blocks, so it runs there rather than on
/// the caller's task.
pub(crate) async fn start(config: Config, sink: SinkSlot) -> StoreResult<WriteQueue<Writer>> {
    let (ready, started) = oneshot::channel::<StoreResult<()>>();
    let queue = WriteQueue::start("confab-postgres-writer", move |jobs| {
        let writer = schema::connect(&config).and_then(|mut client| {
            schema::migrate(&mut client)?;
            Ok(Writer::new(Conn::new(client), sink))
        });
        match writer {
            Ok(writer) => {
                let _ = ready.send(Ok(()));
                writer.run(jobs);
            }
            Err(err) => {
                let _ = ready.send(Err(err));
            }
        }
    })?;
    match started.await {
        Ok(Ok(())) => Ok(queue),
        Ok(Err(err)) => Err(err),
        Err(_) => Err(StoreError::Unavailable("the writer did not start".into())),
    }
}

/// How an attempt at a batch ended.
enum Pass {
    Committed,
    /// A job failed: roll back and run the batch again with savepoints.
    Replay,
    /// The whole batch failed, for this reason.
    Failed(String),
}

/// The writer thread's state: the connection, the id clock and the batch's events.
pub(crate) struct Writer {
    pub(crate) db: Conn,
    /// The last value the id clock handed out (a message id or a version).
    pub(crate) last_id: i64,
    /// The id clock as the database held it when the batch began.
    saved_id: i64,
    /// Batches that had to be run again with savepoints.
    pub(crate) replays: u64,
    /// The events the current batch logged, handed to `sink` once it commits.
    pending: Vec<Arc<CommittedEvent>>,
    sink: SinkSlot,
}

impl Writer {
    fn new(db: Conn, sink: SinkSlot) -> Self {
        Self {
            db,
            last_id: 0,
            saved_id: 0,
            replays: 0,
            pending: Vec::new(),
            sink,
        }
    }

    fn run(mut self, mut jobs: Jobs<Writer>) {
        serve(&mut jobs, MAX_BATCH, |batch| self.run_batch(batch));
    }

    /// Runs the jobs in one transaction. Answers the error that failed the whole batch, if any.
    pub(crate) fn run_batch(&mut self, batch: &mut [Box<dyn Job<Writer>>]) -> Option<String> {
        match self.try_batch(batch, false) {
            Pass::Committed => None,
            Pass::Failed(err) => Some(err),
            Pass::Replay => {
                self.replays += 1;
                match self.try_batch(batch, true) {
                    Pass::Committed => None,
                    Pass::Failed(err) => Some(err),
                    Pass::Replay => Some("store batch replay failed".into()),
                }
            }
        }
    }

    /// One attempt at a batch: without savepoints (asking for a replay if a job fails), or
    /// with one savepoint per job.
    fn try_batch(&mut self, batch: &mut [Box<dyn Job<Writer>>], savepoints: bool) -> Pass {
        // Events of an earlier, failed attempt are not committed.
        self.pending.clear();
        if let Err(err) = self.begin() {
            return Pass::Failed(self.abort(format!("cannot begin: {err}")));
        }
        for job in batch.iter_mut() {
            if savepoints {
                if let Err(err) = self.db.batch("SAVEPOINT job") {
                    return Pass::Failed(self.abort(format!("cannot open a savepoint: {err}")));
                }
            }
            let logged = self.pending.len();
            let ok = job.run(self);
            if savepoints {
                let end = if ok {
                    self.db.batch("RELEASE job")
                } else {
                    // The job's events are undone with its savepoint.
                    self.pending.truncate(logged);
                    self.db.batch("ROLLBACK TO job; RELEASE job")
                };
                if let Err(err) = end {
                    return Pass::Failed(self.abort(format!("cannot end a savepoint: {err}")));
                }
            } else if !ok {
                self.rollback();
                return Pass::Replay;
            }
        }
        if self.last_id != self.saved_id {
            if let Err(err) = self.db.execute(SAVE_ID_CLOCK, &[&self.last_id]) {
                return Pass::Failed(self.abort(format!("cannot save the id clock: {err}")));
            }
        }
        if let Err(err) = self.db.batch("COMMIT") {
            return Pass::Failed(self.abort(format!("commit failed: {err}")));
        }
        // After COMMIT, never before: what goes on the bus is committed.
        self.publish_committed();
        Pass::Committed
    }

    /// Opens the batch's transaction under the writers' lock and catches the id clock up with
    /// what other nodes handed out.
    fn begin(&mut self) -> StoreResult<()> {
        self.db.batch("BEGIN")?;
        let row = self.db.query_one(BEGIN_BATCH, &[])?;
        let saved: Option<i64> = row.try_get(1).map_err(crate::db::db_err)?;
        self.saved_id = saved.unwrap_or(0);
        self.last_id = self.last_id.max(self.saved_id);
        Ok(())
    }

    /// Rolls the batch back and answers `reason`.
    fn abort(&mut self, reason: String) -> String {
        self.rollback();
        reason
    }

    fn rollback(&mut self) {
        if let Err(err) = self.db.batch("ROLLBACK") {
            tracing::error!(error = %err, "store rollback failed");
        }
    }

    /// Hands the events of the batch that just committed to the sink.
    fn publish_committed(&mut self) {
        let events = std::mem::take(&mut self.pending);
        if events.is_empty() {
            return;
        }
        if let Some(sink) = self.sink.get() {
            sink.committed(events);
        }
    }
}
