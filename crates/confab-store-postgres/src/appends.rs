//! Sends taken together: the appends waiting for the writer go into one statement.
//!
//! An append costs a round trip to the server, and the writer makes them one after the other:
//! with many senders, most of a batch's time was spent waiting for answers. So
//! `Store::append_message` queues its message here, and the caller that finds the queue empty
//! hands the writer one [`AppendGroup`] job; when the job runs it takes every message queued by
//! then and appends them in one statement (`Writer::append_messages`), and after the COMMIT
//! answers each caller. A message whose conversation is missing fails alone; a group that
//! fails fails its own callers only (the writer replays the batch with a savepoint per job).

use std::sync::Arc;

use confab_core::model::Message;
use confab_core::ports::{NewMessage, StoreError, StoreResult};
use confab_store_common::write_queue::{closed, Job};
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::writer::Writer;
use crate::PostgresStore;

/// A message waiting for the writer, with where its answer goes.
struct Waiting {
    message: NewMessage,
    reply: oneshot::Sender<StoreResult<Message>>,
}

/// The messages waiting for their group's job to run.
#[derive(Default)]
pub(crate) struct AppendQueue(Mutex<Vec<Waiting>>);

impl AppendQueue {
    /// Queues a message; answers whether the queue was empty, in which case the caller must
    /// hand the writer a job to take it (every later message until that job runs joins it).
    fn push(&self, waiting: Waiting) -> bool {
        let mut queue = self.0.lock();
        queue.push(waiting);
        queue.len() == 1
    }

    fn take(&self) -> Vec<Waiting> {
        std::mem::take(&mut *self.0.lock())
    }
}

/// The writer job of one group of appends.
struct AppendGroup {
    queue: Arc<AppendQueue>,
    /// Taken from the queue when the job first runs (a replay appends the same messages).
    taken: Option<Vec<Waiting>>,
    /// One answer a message, in order, from the job's last run; or why the whole group failed.
    outcome: Option<StoreResult<Vec<StoreResult<Message>>>>,
}

impl Job<Writer> for AppendGroup {
    fn run(&mut self, writer: &mut Writer) -> bool {
        let queue = &self.queue;
        let taken = self.taken.get_or_insert_with(|| queue.take());
        let messages: Vec<&NewMessage> = taken.iter().map(|w| &w.message).collect();
        // A panic must not take the writer thread down with it.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            writer
                .now()
                .and_then(|(now, now_us)| writer.append_messages(&messages, now, now_us))
        }))
        .unwrap_or_else(|_| {
            tracing::error!("a store write panicked");
            Err(StoreError::Unavailable("store write failed".into()))
        });
        let ok = outcome.is_ok();
        self.outcome = Some(outcome);
        ok
    }

    fn finish(self: Box<Self>, batch_error: Option<&str>) {
        // Not run at all (the batch failed before it): its messages are still queued.
        let taken = match self.taken {
            Some(taken) => taken,
            None => self.queue.take(),
        };
        let mut answers = match (self.outcome, batch_error) {
            (Some(Ok(answers)), None) => answers.into_iter(),
            (Some(Err(err)), _) => vec![Err(err); taken.len()].into_iter(),
            (_, Some(err)) => {
                vec![Err(StoreError::Unavailable(err.to_owned())); taken.len()].into_iter()
            }
            (None, None) => {
                vec![Err(StoreError::Unavailable("store write did not run".into())); taken.len()]
                    .into_iter()
            }
        };
        for waiting in taken {
            let answer = answers
                .next()
                .unwrap_or(Err(StoreError::Unavailable("no answer".into())));
            // The caller may have gone away (a cancelled request); the write stands regardless.
            let _ = waiting.reply.send(answer);
        }
    }
}

impl PostgresStore {
    /// Appends `message` with whatever other appends are waiting (see the module doc).
    pub(crate) async fn append(&self, message: NewMessage) -> StoreResult<Message> {
        let (reply, answer) = oneshot::channel();
        if self.appends.push(Waiting { message, reply }) {
            let group = Box::new(AppendGroup {
                queue: Arc::clone(&self.appends),
                taken: None,
                outcome: None,
            });
            if self.writer.submit(group).is_err() {
                // Closed: fail what is queued (dropping the replies answers `closed` below).
                drop(self.appends.take());
            }
        }
        answer.await.map_err(|_| closed())?
    }
}
