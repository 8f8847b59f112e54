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

use std::cell::{Cell, RefCell};

use confab_core::ids::{ConversationId, IdentityId};
use confab_core::model::{EventKind, Message};
use confab_core::ports::{Clock, CommittedEvent, StoreError, StoreResult};
use confab_store_common::event_payloads::EventRow;
use confab_store_common::memberships::membership_changed;
use confab_store_common::message_events::{committed_event, message_event_text, MessageHints};
use confab_store_common::outbox::{self, HookCache};
use confab_store_common::sequence_ids::SequenceIds;
use confab_store_common::stored::{conv_key, event_kind_name, truncate};
use confab_store_common::write_queue::{serve, Job, Jobs, WriteQueue};
use postgres::Config;
use time::OffsetDateTime;
use tokio::sync::oneshot;
use tokio::sync::Notify;

use crate::db::{get, Conn};
use crate::{schema, tail, webhooks, Node};

/// The most jobs committed in one transaction. Bounds the latency a job can add to the others
/// in its batch, and the work lost to a failed commit.
pub(crate) const MAX_BATCH: usize = 1024;

/// Opens the batch's transaction, takes the writers' lock for it, then reads the id clock and
/// the webhook subscriptions' version: three statements in one round trip. The reads are a
/// statement of their own: a statement reads what was committed when it began, so reads in the
/// statement that waited for the lock would miss what the lock's last holder (another node's
/// writer) committed meanwhile. The lock is keyed by the schema, so that stores in other
/// schemas of one database (tests) do not wait for each other.
const BEGIN_BATCH: &str = "BEGIN;
     SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.confab_writes'));
     SELECT (SELECT value FROM meta WHERE key = 'id_clock'),
         (SELECT value FROM meta WHERE key = 'webhooks_version')";

/// Bumped by every change to a webhook subscription, so that every node's writer reloads its
/// copy of the active subscriptions at the start of its next batch.
const BUMP_WEBHOOKS_VERSION: &str = "INSERT INTO meta (key, value) VALUES ('webhooks_version', 1)
     ON CONFLICT (key) DO UPDATE SET value = meta.value + 1";

/// Saves the id clock, never backwards: the clock is only ever read under the lock, but a stale
/// value must not undo another node's. Sent with the COMMIT, in its round trip (`id` is an
/// integer, written into the text).
fn save_id_clock(id: i64) -> String {
    format!(
        "INSERT INTO meta (key, value) VALUES ('id_clock', {id})
         ON CONFLICT (key) DO UPDATE SET value = GREATEST(meta.value, excluded.value); "
    )
}

/// Starts the writer thread, which connects and brings the schema up to date; answers its
/// queue once it has (or why it could not). Connecting blocks, so it runs there rather than on
/// the caller's task.
pub(crate) async fn start(
    config: Config,
    clock: Arc<dyn Clock>,
    node: Node,
    delivery_wakeup: Arc<Notify>,
) -> StoreResult<WriteQueue<Writer>> {
    let (ready, started) = oneshot::channel::<StoreResult<()>>();
    let queue = WriteQueue::start("confab-postgres-writer", move |jobs| {
        let writer = schema::connect(&config).and_then(|mut client| {
            schema::migrate(&mut client)?;
            let channel = tail::channel(&mut client)?;
            Ok(Writer {
                db: Conn::new(client),
                clock,
                last_id: 0,
                saved_id: 0,
                committed_clock: None,
                sequence_ids: SequenceIds::default(),
                replays: 0,
                pending: RefCell::new(Vec::new()),
                batch_last_position: Cell::new(None),
                channel,
                membership_changes: RefCell::new(Vec::new()),
                node,
                webhooks: HookCache::new(),
                webhooks_version: None,
                deliveries_recorded: Cell::new(false),
                delivery_wakeup,
            })
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

/// The writer thread's state: the connection, the id clock, the batch's events and the
/// active webhook subscriptions.
pub(crate) struct Writer {
    pub(crate) db: Conn,
    pub(crate) clock: Arc<dyn Clock>,
    /// The last value the id clock handed out (a message id or a version).
    pub(crate) last_id: i64,
    /// The id clock as the database held it when the batch began.
    saved_id: i64,
    /// The id clock as this writer's last committed batch left it (`None`: no batch yet, or
    /// the last one rolled back). Every batch that appends a message moves the clock on, so a
    /// batch that finds another value knows another node's writer appended since.
    committed_clock: Option<i64>,
    /// The newest sequence id of the conversations this writer appended to; cleared when
    /// another node's writer may have appended since (see `committed_clock`).
    pub(crate) sequence_ids: SequenceIds,
    /// Batches that had to be run again with savepoints.
    pub(crate) replays: u64,
    /// The events the current batch logged, handed to `sink` once it commits. (A `RefCell` so
    /// that logging an event needs only `&self`, like the rest of a write.)
    pending: RefCell<Vec<Arc<CommittedEvent>>>,
    /// The position of the last event the current batch logged, for the other nodes'
    /// notification (`tail.rs`).
    batch_last_position: Cell<Option<i64>>,
    /// The schema's notification channel.
    channel: String,
    /// The conversations whose membership the current batch changed: forgotten from the
    /// node's memberships after the COMMIT, before any job is answered.
    membership_changes: RefCell<Vec<ConversationId>>,
    node: Node,
    /// The active webhook subscriptions, by object, as of `webhooks_version`.
    pub(crate) webhooks: HookCache,
    /// The `meta.webhooks_version` `webhooks` was loaded at (`None`: not loaded yet).
    webhooks_version: Option<i64>,
    /// The batch recorded (or re-queued) webhook deliveries: wake the workers after COMMIT.
    pub(crate) deliveries_recorded: Cell<bool>,
    delivery_wakeup: Arc<Notify>,
}

impl Writer {
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
        self.pending.get_mut().clear();
        self.batch_last_position.set(None);
        self.membership_changes.get_mut().clear();
        self.deliveries_recorded.set(false);
        if let Err(err) = self.begin() {
            return Pass::Failed(self.abort(format!("cannot begin: {err}")));
        }
        for job in batch.iter_mut() {
            if savepoints {
                if let Err(err) = self.db.batch("SAVEPOINT job") {
                    return Pass::Failed(self.abort(format!("cannot open a savepoint: {err}")));
                }
            }
            let logged = self.pending.get_mut().len();
            let ok = job.run(self);
            if savepoints {
                let end = if ok {
                    self.db.batch("RELEASE job")
                } else {
                    // The job's events and appends are undone with its savepoint.
                    self.pending.get_mut().truncate(logged);
                    self.sequence_ids.clear();
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
        // The id clock (if it moved) is saved and the other nodes hear of the batch's events in
        // the COMMIT's round trip: one round trip, where a batch of appends has three in all.
        let mut commit = String::new();
        if self.last_id != self.saved_id {
            commit.push_str(&save_id_clock(self.last_id));
        }
        if let Some(last) = self.batch_last_position.get() {
            commit.push_str(&format!(
                "SELECT pg_notify('{}', '{}'); ",
                self.channel,
                tail::notification_payload(self.node.id, last)
            ));
        }
        commit.push_str("COMMIT");
        // The publication cursor is held from before the COMMIT until the batch is published:
        // the tail, which starts the cursor at the log's head, must never find this batch
        // committed but not yet published (it would count it as published, and it would be lost).
        // A batch that logged no event has nothing to publish (every kept event is logged).
        let published = Arc::clone(&self.node.published);
        let mut through = self
            .batch_last_position
            .get()
            .is_some()
            .then(|| published.lock());
        if let Err(err) = self.db.batch(&commit) {
            return Pass::Failed(self.abort(format!("commit failed: {err}")));
        }
        // What the clock now holds: `last_id` began the batch at least at the saved clock, and
        // was saved if it moved.
        self.committed_clock = Some(self.last_id);
        self.node
            .memberships
            .forget(self.membership_changes.get_mut().drain(..));
        if self.deliveries_recorded.take() {
            self.delivery_wakeup.notify_one();
        }
        // After COMMIT, never before: what goes on the bus is committed.
        if let Some(through) = through.as_deref_mut() {
            self.publish_committed(through);
        }
        Pass::Committed
    }

    /// Opens the batch's transaction under the writers' lock, catches the id clock up with
    /// what other nodes handed out, and reloads the webhook subscriptions if any node changed
    /// them.
    fn begin(&mut self) -> StoreResult<()> {
        let row = self.db.batch_row(BEGIN_BATCH)?;
        let number = |column: usize| -> StoreResult<i64> {
            match row.get(column).and_then(Option::as_deref) {
                None => Ok(0),
                Some(text) => text
                    .parse()
                    .map_err(|_| StoreError::Unavailable(format!("meta value {text:?}"))),
            }
        };
        self.saved_id = number(0)?;
        if self.committed_clock != Some(self.saved_id) {
            // Another node's writer appended (or this writer's last batch rolled back): the
            // sequence ids remembered may be behind.
            self.sequence_ids.clear();
        }
        self.last_id = self.last_id.max(self.saved_id);
        let version = number(1)?;
        if self.webhooks_version != Some(version) {
            self.webhooks = webhooks::load_cache(&self.db)?;
            self.webhooks_version = Some(version);
        }
        Ok(())
    }

    /// Marks the webhook subscriptions changed: every node's writer (this one included)
    /// reloads them at its next batch. Within this batch the change is already in `webhooks`
    /// or the caller reloads them itself.
    pub(crate) fn webhooks_changed(&mut self) -> StoreResult<()> {
        self.db.execute(BUMP_WEBHOOKS_VERSION, &[])?;
        // Forget the version: a rollback undoes the bump, and this writer's copy must then be
        // reloaded too.
        self.webhooks_version = None;
        Ok(())
    }

    /// Rolls the batch back and answers `reason`.
    fn abort(&mut self, reason: String) -> String {
        self.rollback();
        reason
    }

    fn rollback(&mut self) {
        // The batch's appends and deletions are undone: what was remembered of them is wrong.
        self.sequence_ids.clear();
        self.committed_clock = None;
        if let Err(err) = self.db.batch("ROLLBACK") {
            tracing::error!(error = %err, "store rollback failed");
        }
    }

    // -----------------------------------------------------------------------------------------
    // What every write uses.

    /// The clock's now, truncated to what the database keeps.
    pub(crate) fn now(&self) -> StoreResult<(OffsetDateTime, i64)> {
        truncate(self.clock.now())
    }

    /// The next value of the id clock: the time in µs, bumped to stay strictly increasing.
    pub(crate) fn next_id(&mut self, now_us: i64) -> i64 {
        self.last_id = now_us.max(self.last_id.saturating_add(1));
        self.last_id
    }

    /// Fails with `NotFound` unless the conversation exists and is not deleted.
    pub(crate) fn ensure_open(&self, conversation: ConversationId) -> StoreResult<()> {
        self.db
            .query_opt(
                "SELECT 1 FROM conversations WHERE id = $1 AND deleted_on IS NULL",
                &[&conv_key(conversation).as_slice()],
            )?
            .map(|_| ())
            .ok_or(StoreError::NotFound)
    }

    /// Appends one row to the event log.
    pub(crate) fn event(
        &self,
        kind: EventKind,
        conversation: Option<ConversationId>,
        message: Option<i64>,
        identity: Option<&IdentityId>,
        payload: serde_json::Value,
        at: i64,
    ) -> StoreResult<()> {
        let data = payload.to_string();
        self.log_event(
            kind,
            conversation,
            message,
            identity,
            EventRow::Whole,
            data,
            at,
        )
    }

    /// [`Writer::event`] with the event's data already serialized, and what its row keeps: the
    /// wire event's `data`, a shortened form of it, or for a message event the message's change
    /// and no identity (the sender is in the message's row); a read puts the data together
    /// again (`events::events_after`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn log_event(
        &self,
        kind: EventKind,
        conversation: Option<ConversationId>,
        message: Option<i64>,
        identity: Option<&IdentityId>,
        row: EventRow,
        data: String,
        at: i64,
    ) -> StoreResult<()> {
        let (row_identity, row_payload) = row.columns(identity, &data);
        let key = conversation.map(conv_key);
        let inserted = self.db.query_one(
            "INSERT INTO events (conversation, kind, message_id, identity, payload, at)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING position",
            &[
                &key.as_ref().map(|k| k.as_slice()),
                &event_kind_name(&kind),
                &message,
                &row_identity,
                &row_payload,
                &at,
            ],
        )?;
        let position: i64 = get(&inserted, 0)?;
        let hints = row.into_hints();
        self.event_logged(
            position,
            kind,
            conversation,
            message,
            identity,
            hints,
            data,
            at,
        )
    }

    /// What follows the insert of an event's row (at `position`): the outbox, and the event
    /// kept for the sink.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn event_logged(
        &self,
        position: i64,
        kind: EventKind,
        conversation: Option<ConversationId>,
        message: Option<i64>,
        identity: Option<&IdentityId>,
        hints: Option<MessageHints>,
        data: String,
        at: i64,
    ) -> StoreResult<()> {
        // The outbox: with no webhook subscription at all this is one `is_empty` check (and the
        // data is parsed back only when some subscription exists).
        if !self.webhooks.is_empty() {
            let payload: serde_json::Value = serde_json::from_str(&data)
                .map_err(|e| StoreError::Unavailable(format!("event data: {e}")))?;
            outbox::outbox(
                self,
                &self.webhooks,
                position,
                &kind,
                conversation,
                message,
                identity,
                &payload,
                at,
            )?;
        }
        self.batch_last_position.set(Some(position));
        if let Some(conversation) = membership_changed(&kind, conversation) {
            self.membership_changes.borrow_mut().push(conversation);
        }
        self.keep_event(position, kind, conversation, identity, hints, data, at);
        Ok(())
    }

    /// Logs a message event (received, edited, deleted) with the whole message as its data, so
    /// that a stream renders it without reading it back.
    pub(crate) fn log_message_event(
        &self,
        kind: EventKind,
        message: &Message,
        at: i64,
    ) -> StoreResult<()> {
        let text = message_event_text(message)?;
        self.log_event(
            kind,
            Some(message.conversation),
            Some(message.id.0),
            message.sender.as_ref(),
            EventRow::Message(MessageHints::new(message, text.logged)),
            text.data,
            at,
        )
    }

    /// Keeps the event just inserted (at `position`) for the sink, if there is one.
    #[allow(clippy::too_many_arguments)]
    fn keep_event(
        &self,
        position: i64,
        kind: EventKind,
        conversation: Option<ConversationId>,
        identity: Option<&IdentityId>,
        hints: Option<MessageHints>,
        data: String,
        at_us: i64,
    ) {
        if self.node.sink.get().is_none() {
            return;
        }
        self.pending.borrow_mut().push(Arc::new(committed_event(
            position,
            kind,
            conversation,
            identity,
            hints,
            data,
            at_us,
        )));
    }

    /// Hands the events of the batch that just committed to the sink.
    fn publish_committed(&mut self, through: &mut Option<i64>) {
        let events = std::mem::take(self.pending.get_mut());
        if events.is_empty() {
            return;
        }
        if let Some(sink) = self.node.sink.get() {
            tail::publish_own(&self.db, &**sink, &self.node, events, through);
        }
    }
}
