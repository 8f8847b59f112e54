//! Writes taken together: the appends, and the creations, waiting for the writer go into one
//! statement each.
//!
//! Each such write costs a round trip to the server, and the writer makes them one after the
//! other: with many callers, most of a batch's time was spent waiting for answers. So
//! `Store::append_message` queues its message here (and `Store::create_conversation` its
//! creation, in a queue of their own), and the caller that finds the queue empty hands the writer
//! one [`Group`] job; when the job runs it takes everything queued by then and writes it in one
//! statement ([`Grouped::write`]), and after the COMMIT answers each caller. A message whose
//! conversation is missing, or a creation that finds its id or repeatability key taken, fails or
//! answers alone; a group that fails fails its own callers only (the writer replays the batch
//! with a savepoint per job).

use std::sync::Arc;

use confab_core::model::Message;
use confab_core::ports::{CreatedConversation, NewMessage, StoreError, StoreResult};
use confab_store_common::creation::Creation;
use confab_store_common::write_queue::{closed, Job};
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::writer::Writer;
use crate::PostgresStore;

/// A kind of write that a group takes together.
pub(crate) trait Grouped: Send + 'static {
    type Output: Send + 'static;

    /// Writes every item, in order, in one statement: one answer an item.
    fn write(writer: &mut Writer, items: &[&Self]) -> StoreResult<Vec<StoreResult<Self::Output>>>;
}

impl Grouped for NewMessage {
    type Output = Message;

    fn write(writer: &mut Writer, items: &[&Self]) -> StoreResult<Vec<StoreResult<Message>>> {
        let (now, now_us) = writer.now()?;
        writer.append_messages(items, now, now_us)
    }
}

impl Grouped for Creation {
    type Output = CreatedConversation;

    fn write(
        writer: &mut Writer,
        items: &[&Self],
    ) -> StoreResult<Vec<StoreResult<CreatedConversation>>> {
        writer.create_conversations(items)
    }
}

/// An item waiting for the writer, with where its answer goes.
struct Waiting<T: Grouped> {
    item: T,
    reply: oneshot::Sender<StoreResult<T::Output>>,
}

/// The items waiting for their group's job to run.
pub(crate) struct GroupQueue<T: Grouped>(Mutex<Vec<Waiting<T>>>);

impl<T: Grouped> Default for GroupQueue<T> {
    fn default() -> Self {
        Self(Mutex::new(Vec::new()))
    }
}

impl<T: Grouped> GroupQueue<T> {
    /// Queues an item; answers whether the queue was empty, in which case the caller must hand
    /// the writer a job to take it (every later item until that job runs joins it).
    fn push(&self, waiting: Waiting<T>) -> bool {
        let mut queue = self.0.lock();
        queue.push(waiting);
        queue.len() == 1
    }

    fn take(&self) -> Vec<Waiting<T>> {
        std::mem::take(&mut *self.0.lock())
    }
}

/// The writer job of one group.
struct Group<T: Grouped> {
    queue: Arc<GroupQueue<T>>,
    /// Taken from the queue when the job first runs (a replay writes the same items).
    taken: Option<Vec<Waiting<T>>>,
    /// One answer an item, in order, from the job's last run; or why the whole group failed.
    outcome: Option<StoreResult<Vec<StoreResult<T::Output>>>>,
}

impl<T: Grouped> Job<Writer> for Group<T> {
    fn run(&mut self, writer: &mut Writer) -> bool {
        let queue = &self.queue;
        let taken = self.taken.get_or_insert_with(|| queue.take());
        let items: Vec<&T> = taken.iter().map(|w| &w.item).collect();
        // A panic must not take the writer thread down with it.
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| T::write(writer, &items)))
                .unwrap_or_else(|_| {
                    tracing::error!("a store write panicked");
                    Err(StoreError::Unavailable("store write failed".into()))
                });
        let ok = outcome.is_ok();
        self.outcome = Some(outcome);
        ok
    }

    fn finish(self: Box<Self>, batch_error: Option<&str>) {
        // Not run at all (the batch failed before it): its items are still queued.
        let taken = match self.taken {
            Some(taken) => taken,
            None => self.queue.take(),
        };
        let group_error = match (&self.outcome, batch_error) {
            (Some(Ok(_)), None) => None,
            (Some(Err(err)), _) => Some(err.clone()),
            (_, Some(err)) => Some(StoreError::Unavailable(err.to_owned())),
            (None, None) => Some(StoreError::Unavailable("store write did not run".into())),
        };
        let mut answers = match (self.outcome, &group_error) {
            (Some(Ok(answers)), None) => answers.into_iter(),
            _ => Vec::new().into_iter(),
        };
        for waiting in taken {
            let answer = match &group_error {
                Some(err) => Err(err.clone()),
                None => answers
                    .next()
                    .unwrap_or(Err(StoreError::Unavailable("no answer".into()))),
            };
            // The caller may have gone away (a cancelled request); the write stands regardless.
            let _ = waiting.reply.send(answer);
        }
    }
}

impl PostgresStore {
    /// Writes `item` with whatever others of its kind are waiting in `queue` (see the module
    /// doc).
    pub(crate) async fn grouped<T: Grouped>(
        &self,
        queue: &Arc<GroupQueue<T>>,
        item: T,
    ) -> StoreResult<T::Output> {
        let (reply, answer) = oneshot::channel();
        if queue.push(Waiting { item, reply }) {
            let group = Box::new(Group {
                queue: Arc::clone(queue),
                taken: None,
                outcome: None,
            });
            if self.writer.submit(group).is_err() {
                // Closed: fail what is queued (dropping the replies answers `closed` below).
                drop(queue.take());
            }
        }
        answer.await.map_err(|_| closed())?
    }
}
