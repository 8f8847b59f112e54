//! The queue in front of a store's one writer thread, and the thread's batching loop.
//!
//! Both stores write through a single thread that owns a connection and commits in groups:
//! async callers hand it a job (a closure over the store's writer state `W`) with a oneshot for
//! the answer; the thread blocks for the first job, drains whatever else is queued (up to a
//! batch's size), runs them all in one transaction and answers only after the commit. What
//! differs between stores is the batch itself (its transaction, savepoints, what a commit
//! publishes), which each passes to [`serve`].

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::thread::JoinHandle;

use confab_core::ports::{StoreError, StoreResult};
use parking_lot::{Mutex, RwLock};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::sync::oneshot;

/// A unit of work for the writer thread, over its state `W`.
pub trait Job<W>: Send {
    /// Runs the job inside the batch transaction and keeps its outcome (replacing that of an
    /// earlier, rolled-back run). Answers whether it succeeded.
    fn run(&mut self, writer: &mut W) -> bool;
    /// Sends the kept outcome, or `batch_error` if the batch did not commit.
    fn finish(self: Box<Self>, batch_error: Option<&str>);
}

/// A job made of a closure, answering through a oneshot.
struct Call<T, F> {
    work: F,
    outcome: Option<StoreResult<T>>,
    reply: oneshot::Sender<StoreResult<T>>,
}

impl<W, T, F> Job<W> for Call<T, F>
where
    T: Send,
    F: FnMut(&mut W) -> StoreResult<T> + Send,
{
    fn run(&mut self, writer: &mut W) -> bool {
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
            // A job's own error stands: it left no change (none made, or its savepoint undone).
            (Some(Err(err)), _) => Err(err),
            (_, Some(err)) => Err(StoreError::Unavailable(err.to_owned())),
            (Some(Ok(value)), None) => Ok(value),
            (None, None) => Err(StoreError::Unavailable("store write did not run".into())),
        };
        // The caller may have gone away (a cancelled request); the write stands regardless.
        let _ = self.reply.send(answer);
    }
}

/// Wraps `work` as a job, with the receiver of its answer. Jobs are re-runnable (`FnMut`): a
/// batch that fails may be run again.
pub fn job<W, T, F>(work: F) -> (Box<dyn Job<W>>, oneshot::Receiver<StoreResult<T>>)
where
    W: 'static,
    T: Send + 'static,
    F: FnMut(&mut W) -> StoreResult<T> + Send + 'static,
{
    let (reply, answer) = oneshot::channel();
    let job = Box::new(Call {
        work,
        outcome: None,
        reply,
    });
    (job, answer)
}

/// The error of a write handed to a closed store.
pub fn closed() -> StoreError {
    StoreError::Unavailable("the store is closed".into())
}

/// The receiving end the writer thread serves.
pub type Jobs<W> = UnboundedReceiver<Box<dyn Job<W>>>;

/// The async side's handle on a writer thread.
pub struct WriteQueue<W> {
    /// `None` once closed. Behind a lock only so that `shut` can drop it through `&self`.
    sender: RwLock<Option<UnboundedSender<Box<dyn Job<W>>>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl<W: 'static> WriteQueue<W> {
    /// Starts the writer thread, named `name`, running `serve_jobs` on the queue's receiving
    /// end.
    pub fn start(
        name: &str,
        serve_jobs: impl FnOnce(Jobs<W>) + Send + 'static,
    ) -> StoreResult<Self> {
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel::<Box<dyn Job<W>>>();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || serve_jobs(receiver))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the writer: {e}")))?;
        Ok(Self {
            sender: RwLock::new(Some(sender)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Runs `work` on the writer thread; answers once its batch has committed.
    pub async fn call<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnMut(&mut W) -> StoreResult<T> + Send + 'static,
    {
        let (job, answer) = job(work);
        self.submit(job)?;
        answer.await.map_err(|_| closed())?
    }

    /// Queues a job of the store's own making (one that answers several callers, say).
    /// `Err` (closed): the job was dropped without running.
    pub fn submit(&self, job: Box<dyn Job<W>>) -> StoreResult<()> {
        let sender = self.sender.read();
        let sender = sender.as_ref().ok_or_else(closed)?;
        sender.send(job).map_err(|_| closed())
    }

    /// Closes the queue and returns the thread to join: it finishes the queued jobs first.
    fn shut(&self) -> Option<JoinHandle<()>> {
        drop(self.sender.write().take());
        self.thread.lock().take()
    }

    /// Stops taking writes, waits (on the blocking pool, not on an async worker) until every
    /// queued write has committed or failed and the thread has stopped. Later writes answer
    /// `Unavailable`. Closing again does nothing.
    pub async fn close(&self) {
        if let Some(thread) = self.shut() {
            let joined = tokio::task::spawn_blocking(move || thread.join()).await;
            if !matches!(joined, Ok(Ok(()))) {
                tracing::error!("the store writer thread did not stop cleanly");
            }
        }
    }

    /// [`WriteQueue::close`], blocking the calling thread (for a store's `Drop`).
    pub fn close_now(&self) {
        if let Some(thread) = self.shut() {
            if thread.join().is_err() {
                tracing::error!("the store writer thread panicked");
            }
        }
    }
}

/// The writer thread's loop: takes batches of up to `max_batch` jobs off the queue, has
/// `run_batch` run each in one transaction (answering the error that failed the whole batch,
/// if any), then answers every job of it. Returns once the queue is closed and empty.
pub fn serve<W>(
    jobs: &mut Jobs<W>,
    max_batch: usize,
    mut run_batch: impl FnMut(&mut [Box<dyn Job<W>>]) -> Option<String>,
) {
    let mut batch: Vec<Box<dyn Job<W>>> = Vec::with_capacity(max_batch);
    // `blocking_recv` ends only once the queue is both closed and empty: queued work is
    // finished. (tokio's queue parks the thread at once when it is empty; crossbeam's spun and
    // yielded first, ~2 % of a send's server time taken from the cores the requests need.)
    while let Some(first) = jobs.blocking_recv() {
        batch.push(first);
        while batch.len() < max_batch {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let failure = run_batch(&mut batch);
        if let Some(err) = &failure {
            tracing::error!(error = %err, jobs = batch.len(), "store batch failed");
        }
        for job in batch.drain(..) {
            job.finish(failure.as_deref());
        }
    }
}
