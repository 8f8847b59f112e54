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

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::JoinHandle;

use confab_core::ports::{CommittedEvent, StoreError, StoreResult};
use parking_lot::{Mutex, RwLock};
use postgres::Config;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
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

/// A unit of work for the writer thread.
pub(crate) trait Job: Send {
    /// Runs the job inside the batch transaction and keeps its outcome (replacing that of an
    /// earlier, rolled-back run). Answers whether it succeeded.
    fn run(&mut self, writer: &mut Writer) -> bool;
    /// Sends the kept outcome, or `batch_error` if the batch did not commit.
    fn finish(self: Box<Self>, batch_error: Option<&str>);
}

/// A job made of a closure, answering through a oneshot.
struct Call<T, F> {
    work: F,
    outcome: Option<StoreResult<T>>,
    reply: oneshot::Sender<StoreResult<T>>,
}

impl<T, F> Job for Call<T, F>
where
    T: Send,
    F: FnMut(&mut Writer) -> StoreResult<T> + Send,
{
    fn run(&mut self, writer: &mut Writer) -> bool {
        let work = &mut self.work;
        // A panic must not take the writer thread (and every later write) down with it.
        let outcome = catch_unwind(AssertUnwindSafe(|| work(writer))).unwrap_or_else(|_| {
            tracing::error!("a store write panicked");
            Err(StoreError::Unavailable("store write failed".into()))
        });
        let ok = outcome.is_ok();
        self.outcome = Some(outcome);
        ok
    }

    fn finish(self: Box<Self>, batch_error: Option<&str>) {
        let answer = match (self.outcome, batch_error) {
            // A job's own error stands: it left no change (its savepoint undone).
            (Some(Err(err)), _) => Err(err),
            (_, Some(err)) => Err(StoreError::Unavailable(err.to_owned())),
            (Some(Ok(value)), None) => Ok(value),
            (None, None) => Err(StoreError::Unavailable("store write did not run".into())),
        };
        // The caller may have gone away (a cancelled request); the write stands regardless.
        let _ = self.reply.send(answer);
    }
}

/// The async side's handle on the writer thread.
pub(crate) struct WriterHandle {
    /// `None` once closed. Behind a lock only so that `close` can drop it through `&self`.
    sender: RwLock<Option<UnboundedSender<Box<dyn Job>>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl WriterHandle {
    /// Starts the thread, which connects and brings the schema up to date; answers once it has
    /// (or could not). Connecting blocks, so it runs there rather than on the caller's task.
    pub(crate) async fn start(config: Config, sink: SinkSlot) -> StoreResult<Self> {
        let (ready, started) = oneshot::channel::<StoreResult<()>>();
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel::<Box<dyn Job>>();
        let thread = std::thread::Builder::new()
            .name("confab-postgres-writer".into())
            .spawn(move || {
                let writer = schema::connect(&config).and_then(|mut client| {
                    schema::migrate(&mut client)?;
                    Ok(Writer::new(Conn::new(client), sink))
                });
                match writer {
                    Ok(writer) => {
                        let _ = ready.send(Ok(()));
                        writer.run(receiver);
                    }
                    Err(err) => {
                        let _ = ready.send(Err(err));
                    }
                }
            })
            .map_err(|e| StoreError::Unavailable(format!("cannot start the writer: {e}")))?;
        let handle = Self {
            sender: RwLock::new(Some(sender)),
            thread: Mutex::new(Some(thread)),
        };
        match started.await {
            Ok(Ok(())) => Ok(handle),
            Ok(Err(err)) => Err(err),
            Err(_) => Err(StoreError::Unavailable("the writer did not start".into())),
        }
    }

    /// Runs `work` on the writer thread; answers once its batch has committed.
    pub(crate) async fn call<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnMut(&mut Writer) -> StoreResult<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(Call {
            work,
            outcome: None,
            reply,
        });
        {
            let sender = self.sender.read();
            let sender = sender.as_ref().ok_or_else(closed)?;
            sender.send(job).map_err(|_| closed())?;
        }
        answer.await.map_err(|_| closed())?
    }

    /// Closes the queue and returns the thread to join: it finishes the queued jobs first.
    pub(crate) fn shut(&self) -> Option<JoinHandle<()>> {
        drop(self.sender.write().take());
        self.thread.lock().take()
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

fn closed() -> StoreError {
    StoreError::Unavailable("the store is closed".into())
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

    fn run(mut self, mut jobs: UnboundedReceiver<Box<dyn Job>>) {
        let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
        // `blocking_recv` ends only once the queue is both closed and empty: queued work is
        // finished.
        while let Some(first) = jobs.blocking_recv() {
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            let failure = self.run_batch(&mut batch);
            if let Some(err) = &failure {
                tracing::error!(error = %err, jobs = batch.len(), "store batch failed");
            }
            for job in batch.drain(..) {
                job.finish(failure.as_deref());
            }
        }
    }

    /// Runs the jobs in one transaction. Answers the error that failed the whole batch, if any.
    pub(crate) fn run_batch(&mut self, batch: &mut [Box<dyn Job>]) -> Option<String> {
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
    fn try_batch(&mut self, batch: &mut [Box<dyn Job>], savepoints: bool) -> Pass {
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
