//! The one writer: a thread that owns the read-write connection and commits in groups.
//!
//! Async callers hand it a job (a closure over [`Writer`]) with a oneshot for the answer. The
//! thread blocks for the first job, drains whatever else is queued (up to [`MAX_BATCH`]), runs
//! them all in ONE transaction, COMMITs once and only then answers: an `Ok` answer means
//! committed. Under load this turns thousands of writes into one fsync.
//!
//! A failing job must fail alone. Every write first checks what can fail (missing
//! conversation, limits, conflicts) and only then writes, so a job that fails has nothing to
//! undo, and the batch runs without savepoints (a savepoint per job costs about a fifth of the
//! writer's time: SQLite copies every page a job touches into the savepoint's journal). If a job
//! does fail after writing (SQLite's change counter moved), the batch is rolled back and run
//! again from the start with each job inside its own SAVEPOINT; jobs are re-runnable closures
//! for that reason, and nothing is answered before the commit.

use std::cell::{Cell, RefCell};
use std::path::Path;
use std::sync::Arc;

use confab_core::ids::ConversationId;
use confab_core::ports::{Clock, CommittedEvent, StoreResult};
use rusqlite::Connection;

use crate::checkpoint::Checkpointer;
use crate::codec::{meta_value, set_meta, DbResult};
use crate::events::SinkSlot;
use crate::schema::{self, Durability};
use confab_store_common::memberships::Memberships;
use confab_store_common::outbox::HookCache;
use confab_store_common::sequence_ids::SequenceIds;
use confab_store_common::write_queue::{serve, Job, Jobs, WriteQueue};

use crate::webhooks;

/// The most jobs committed in one transaction. Bounds the latency a job can add to the others
/// in its batch, and the work lost to a failed commit.
pub(crate) const MAX_BATCH: usize = 1024;

/// Opens the write connection (migrating the schema) and starts the writer thread; answers
/// its queue and the notification woken after each commit that recorded webhook deliveries.
pub(crate) fn start(
    path: &Path,
    durability: Durability,
    clock: Arc<dyn Clock>,
    sink: SinkSlot,
    memberships: Arc<Memberships>,
) -> StoreResult<(WriteQueue<Writer>, Arc<tokio::sync::Notify>)> {
    let conn = schema::open_writer(path, durability)?;
    let mut writer = Writer::new(conn, clock)?;
    writer.sink = sink;
    writer.memberships = memberships;
    writer.checkpointer = Some(Checkpointer::start(path, durability)?);
    let delivery_wakeup = writer.delivery_wakeup.clone();
    let queue = WriteQueue::start("confab-sqlite-writer", move |jobs| writer.run(jobs))?;
    Ok((queue, delivery_wakeup))
}

/// How an attempt at a batch ended.
enum Pass {
    Committed,
    /// A job failed after writing: roll back and run the batch again with savepoints.
    Replay,
    /// The whole batch failed, for this reason.
    Failed(String),
}

/// The writer thread's state: the connection and the message id clock.
pub(crate) struct Writer {
    pub(crate) conn: Connection,
    pub(crate) clock: Arc<dyn Clock>,
    /// The last value the id clock handed out (a message id or a version).
    pub(crate) last_id: i64,
    /// Whether an edit or delete moved the id clock past MAX(messages.id) since the last commit,
    /// so that `meta.id_clock` must be written for the clock to survive a restart.
    pub(crate) clock_dirty: bool,
    /// Told about every commit (absent in unit tests).
    checkpointer: Option<Checkpointer>,
    /// Batches that had to be run again with savepoints.
    pub(crate) replays: u64,
    /// The events the current batch logged, handed to `sink` once it commits.
    /// (A `RefCell` so that logging an event needs only `&self`, like the rest of a write.)
    pub(crate) pending: RefCell<Vec<Arc<CommittedEvent>>>,
    pub(crate) sink: SinkSlot,
    /// The store's cached memberships, and the conversations whose membership the current
    /// batch changed: forgotten after COMMIT, before any job is answered.
    memberships: Arc<Memberships>,
    pub(crate) membership_changes: RefCell<Vec<ConversationId>>,
    /// The active webhook subscriptions, by object (see `webhooks.rs`).
    pub(crate) webhooks: HookCache,
    /// A subscription write ran in this batch: a rollback must reload `webhooks`.
    pub(crate) webhooks_touched: bool,
    /// The batch recorded (or re-queued) webhook deliveries: wake the worker after COMMIT.
    pub(crate) deliveries_recorded: Cell<bool>,
    pub(crate) delivery_wakeup: Arc<tokio::sync::Notify>,
    /// The newest sequence id of live conversations the writer appended to.
    pub(crate) sequence_ids: SequenceIds,
}

impl Writer {
    fn new(conn: Connection, clock: Arc<dyn Clock>) -> StoreResult<Self> {
        let saved = meta_value(&conn, "id_clock")?.unwrap_or(0);
        // After a clean close the saved clock is the last id handed out. Otherwise (a crash, or
        // a data dir from before the flag) it may be behind the newest message: find that one,
        // one step down the messages key per conversation (keyed by (conversation, id), a plain
        // MAX(id) would read every row). On 2.7 M messages in 53,000 conversations that took
        // ~0.6 s, which is why a clean close saves the clock instead.
        let last_id = if meta_value(&conn, WRITER_OPEN)? == Some(0) {
            saved
        } else {
            let newest: i64 = conn
                .query_row(
                    concat!(
                        "SELECT COALESCE(MAX(",
                        crate::codec::newest_message!("id"),
                        "), 0) FROM conversations AS c"
                    ),
                    [],
                    |r| r.get(0),
                )
                .db()?;
            newest.max(saved)
        };
        set_meta(&conn, WRITER_OPEN, 1)?;
        let hooks = webhooks::load_cache(&conn)?;
        Ok(Self {
            conn,
            clock,
            last_id,
            clock_dirty: false,
            checkpointer: None,
            replays: 0,
            pending: RefCell::new(Vec::new()),
            sink: SinkSlot::default(),
            memberships: Arc::default(),
            membership_changes: RefCell::new(Vec::new()),
            webhooks: hooks,
            webhooks_touched: false,
            deliveries_recorded: Cell::new(false),
            delivery_wakeup: Arc::new(tokio::sync::Notify::new()),
            sequence_ids: SequenceIds::default(),
        })
    }

    fn run(mut self, mut jobs: Jobs<Writer>) {
        serve(&mut jobs, MAX_BATCH, |batch| self.run_batch(batch));
        self.close();
    }

    /// After the last batch: saves the id clock and says so, in that order, so that the next
    /// writer starts from it without looking for the newest message; then stops the
    /// checkpointer and leaves an empty WAL behind. Best effort: without them the next start
    /// only takes longer.
    fn close(&mut self) {
        if let Err(err) = self
            .save_clock()
            .and_then(|()| set_meta(&self.conn, WRITER_OPEN, 0))
        {
            tracing::warn!(error = %err, "saving the id clock failed");
        }
        drop(self.checkpointer.take());
        if let Err(err) = self.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);") {
            tracing::warn!(error = %err, "final checkpoint failed");
        }
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

    /// One attempt at a batch: without savepoints (asking for a replay if a job fails after
    /// writing), or with one savepoint per job.
    fn try_batch(&mut self, batch: &mut [Box<dyn Job<Writer>>], savepoints: bool) -> Pass {
        // Events of an earlier, failed attempt are not committed.
        self.pending.get_mut().clear();
        self.membership_changes.get_mut().clear();
        self.deliveries_recorded.set(false);
        if let Err(err) = self.exec("BEGIN IMMEDIATE") {
            return Pass::Failed(format!("cannot begin: {err}"));
        }
        for job in batch.iter_mut() {
            if savepoints {
                if let Err(err) = self.exec("SAVEPOINT job") {
                    return Pass::Failed(self.abort(format!("cannot open a savepoint: {err}")));
                }
            }
            let changes = self.conn.total_changes();
            let logged = self.pending.get_mut().len();
            let ok = job.run(self);
            if savepoints {
                let end = if ok {
                    self.exec("RELEASE job")
                } else {
                    // The job's events and appends are undone with its savepoint.
                    self.pending.get_mut().truncate(logged);
                    self.sequence_ids.clear();
                    self.exec("ROLLBACK TO job")
                        .and_then(|()| self.exec("RELEASE job"))
                        .and_then(|()| self.reload_webhooks_if_touched())
                };
                if let Err(err) = end {
                    return Pass::Failed(self.abort(format!("cannot end a savepoint: {err}")));
                }
            } else if !ok && self.conn.total_changes() != changes {
                // It failed after writing, and without a savepoint its writes cannot be undone
                // alone.
                self.rollback();
                return Pass::Replay;
            }
            // Some failures (disk full, I/O error) make SQLite roll back the whole transaction
            // by itself, taking the earlier jobs' work with it.
            if self.conn.is_autocommit() {
                return Pass::Failed(self.abort("the transaction was rolled back".into()));
            }
        }
        if self.clock_dirty {
            if let Err(err) = self.save_clock() {
                return Pass::Failed(self.abort(format!("cannot save the id clock: {err}")));
            }
        }
        if let Err(err) = self.exec("COMMIT") {
            return Pass::Failed(self.abort(format!("commit failed: {err}")));
        }
        self.memberships
            .forget(self.membership_changes.get_mut().drain(..));
        self.clock_dirty = false;
        self.webhooks_touched = false;
        if self.deliveries_recorded.take() {
            self.delivery_wakeup.notify_one();
        }
        // After COMMIT, never before: what goes on the bus is committed.
        self.publish_committed();
        if let Some(checkpointer) = &self.checkpointer {
            checkpointer.poke();
        }
        Pass::Committed
    }

    /// Rolls the batch back and answers `reason`.
    fn abort(&mut self, reason: String) -> String {
        self.rollback();
        reason
    }

    /// Rolls the batch back, unless SQLite already has.
    fn rollback(&mut self) {
        self.sequence_ids.clear();
        if !self.conn.is_autocommit() {
            if let Err(err) = self.conn.execute_batch("ROLLBACK") {
                tracing::error!(error = %err, "store rollback failed");
            }
        }
        if let Err(err) = self.reload_webhooks_if_touched() {
            tracing::error!(error = %err, "reloading webhook subscriptions failed");
        }
    }

    /// After a rollback: the subscriptions as the database has them again.
    fn reload_webhooks_if_touched(&mut self) -> StoreResult<()> {
        if self.webhooks_touched {
            self.reload_webhooks()?;
        }
        Ok(())
    }

    fn exec(&self, sql: &str) -> StoreResult<()> {
        self.conn.prepare_cached(sql).db()?.execute([]).db()?;
        Ok(())
    }

    fn save_clock(&self) -> StoreResult<()> {
        set_meta(&self.conn, "id_clock", self.last_id)
    }
}

/// The `meta` key that says whether `meta.id_clock` is the last id handed out: 1 while a writer
/// has the database open, 0 once it closed cleanly (saving the clock as it closed).
const WRITER_OPEN: &str = "writer_open";

#[cfg(test)]
pub(crate) mod tests {
    use confab_core::ids::{ConversationId, IdentityId, MessageId};
    use confab_core::model::{Message, MessageContent, MessageType, Metadata, Participant, Role};
    use confab_core::ports::{NewConversation, NewMessage, StoreError, SystemClock};
    use confab_store_common::write_queue::job;

    use super::*;
    use crate::codec::conv_key;
    use crate::ScratchFiles;

    /// A writer on a fresh file, removed (with its WAL) when the `ScratchFiles` drop.
    pub(crate) fn writer(name: &str) -> (Writer, ScratchFiles) {
        let scratch = ScratchFiles::new(&format!("writer-{name}"));
        let conn = schema::open_writer(&scratch.0, Durability::Off).expect("open");
        (
            Writer::new(conn, Arc::new(SystemClock)).expect("writer"),
            scratch,
        )
    }

    /// The one value a query answers (a check, a count).
    pub(crate) fn value<T: rusqlite::types::FromSql>(conn: &rusqlite::Connection, sql: &str) -> T {
        conn.query_row(sql, [], |row| row.get(0)).expect(sql)
    }

    pub(crate) fn alice() -> IdentityId {
        IdentityId::parse("8:acs:res_alice").expect("id")
    }

    pub(crate) fn conversation(w: &mut Writer) -> ConversationId {
        let id = ConversationId::generate();
        let new = NewConversation {
            id,
            topic: "t".into(),
            created_by: alice(),
            metadata: Metadata::new(),
            retention: None,
            participants: vec![Participant {
                identity: alice(),
                display_name: None,
                share_history_time: None,
                metadata: Metadata::new(),
                role: Role::Admin,
            }],
            repeatability_key: None,
            kind: Default::default(),
            welcome_message: None,
        };
        let creation = confab_store_common::creation::Creation::new(new);
        let created = run_jobs(w, vec![Box::new(move |w| w.create_conversation(&creation))]);
        assert!(created[0].is_ok(), "created");
        id
    }

    /// A job's work, for `run_jobs`.
    pub(crate) type Work<T> = Box<dyn FnMut(&mut Writer) -> StoreResult<T> + Send>;

    /// Runs the jobs as one batch, which must commit, and answers their results in order.
    pub(crate) fn run_jobs<T: Send + 'static>(
        w: &mut Writer,
        jobs: Vec<Work<T>>,
    ) -> Vec<StoreResult<T>> {
        let mut batch = Vec::new();
        let mut answers = Vec::new();
        for work in jobs {
            let (j, answer) = job(work);
            batch.push(j);
            answers.push(answer);
        }
        assert_eq!(w.run_batch(&mut batch), None, "the batch commits");
        for j in batch {
            j.finish(None);
        }
        answers
            .into_iter()
            .map(|a| a.blocking_recv().expect("answer"))
            .collect()
    }

    pub(crate) fn text(conversation: ConversationId, text: &str) -> NewMessage {
        NewMessage {
            conversation,
            kind: MessageType::Text,
            content: MessageContent {
                text: Some(text.into()),
                ..MessageContent::default()
            },
            sender: Some(alice()),
            sender_display_name: None,
            metadata: Metadata::new(),
            audience: Default::default(),
        }
    }

    #[test]
    fn a_failing_job_rolls_back_alone_and_leaves_no_sequence_gap() {
        let (mut w, _scratch) = writer("batch");
        let a = conversation(&mut w);
        let jobs: Vec<Work<Message>> = (0..6)
            .map(|i| -> Work<Message> {
                match i {
                    // Appends to a conversation that does not exist.
                    1 => Box::new(|w| w.append_message(&text(ConversationId(7), "lost"))),
                    // Appends (taking a sequence id), then fails: the append must be undone.
                    3 => Box::new(move |w| {
                        w.append_message(&text(a, "undone"))?;
                        Err(StoreError::Conflict("changed my mind".into()))
                    }),
                    _ => Box::new(move |w| w.append_message(&text(a, "kept"))),
                }
            })
            .collect();
        let results = run_jobs(&mut w, jobs);
        assert_eq!(results[1].as_ref().err(), Some(&StoreError::NotFound));
        assert!(matches!(results[3], Err(StoreError::Conflict(_))));
        let sequences: Vec<i64> = results
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .map(|m| m.sequence_id)
            .collect();
        // Sequence 1 is the conversation's participantAdded message.
        assert_eq!(sequences, vec![2, 3, 4, 5]);
        let texts: Vec<String> = w
            .conn
            .prepare("SELECT content FROM messages ORDER BY id")
            .expect("prepare")
            .query_map([], |row| row.get::<_, String>(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert_eq!(texts.len(), 5);
        assert!(texts
            .iter()
            .all(|t| !t.contains("undone") && !t.contains("lost")));
        // The job that failed after writing made the batch run again with savepoints.
        assert_eq!(w.replays, 1);
        // The next append continues the sequence.
        let next = w.append_message(&text(a, "after")).expect("append");
        assert_eq!(next.sequence_id, 6);
    }

    /// Appends take the newest sequence id from memory once the writer has appended to a
    /// conversation; a deletion must still stop them, in the same batch and in later ones, and a
    /// deletion that is rolled back must not.
    #[test]
    fn a_remembered_sequence_id_does_not_outlive_its_conversation() {
        let (mut w, _scratch) = writer("sequence-ids");
        let a = conversation(&mut w);
        let b = conversation(&mut w);
        let appended = run_jobs::<i64>(
            &mut w,
            vec![
                Box::new(move |w| w.append_message(&text(a, "1")).map(|m| m.sequence_id)),
                Box::new(move |w| w.append_message(&text(a, "2")).map(|m| m.sequence_id)),
                Box::new(move |w| w.delete_conversation(a, None).map(|()| 0)),
                Box::new(move |w| w.append_message(&text(a, "3")).map(|m| m.sequence_id)),
            ],
        );
        assert_eq!(
            appended,
            vec![Ok(2), Ok(3), Ok(0), Err(StoreError::NotFound)]
        );
        assert_eq!(w.sequence_ids.get(&conv_key(a)), None);
        assert_eq!(
            w.append_message(&text(a, "later")).map(|m| m.sequence_id),
            Err(StoreError::NotFound)
        );

        // A deletion undone (its job fails after deleting, so the batch runs again and that
        // job's savepoint undoes it) leaves the conversation open and its sequence going on.
        assert_eq!(
            w.append_message(&text(b, "1")).map(|m| m.sequence_id),
            Ok(2)
        );
        let undone = run_jobs::<()>(
            &mut w,
            vec![Box::new(move |w| {
                w.delete_conversation(b, None)?;
                Err(StoreError::Conflict("changed my mind".into()))
            })],
        );
        assert!(matches!(undone[0], Err(StoreError::Conflict(_))));
        assert_eq!(
            w.append_message(&text(b, "2")).map(|m| m.sequence_id),
            Ok(3)
        );
        assert_eq!(
            w.append_message(&text(b, "3")).map(|m| m.sequence_id),
            Ok(4)
        );
        let stored: i64 = w
            .conn
            .query_row(
                "SELECT MAX(sequence_id) FROM messages WHERE conversation = ?1",
                [conv_key(b)],
                |row| row.get(0),
            )
            .expect("max");
        assert_eq!(w.sequence_ids.get(&conv_key(b)), Some(stored));
    }

    /// The common failures (missing conversation, participant limit, conflicts) happen before
    /// any write, so they need no savepoint and no replay.
    #[test]
    fn clean_failures_do_not_replay_the_batch() {
        let (mut w, _scratch) = writer("clean");
        let a = conversation(&mut w);
        let jobs: Vec<Work<()>> = (0..8)
            .map(|i| -> Work<()> {
                match i % 4 {
                    0 => Box::new(move |w| {
                        w.append_message(&text(ConversationId(9), "lost"))
                            .map(|_| ())
                    }),
                    1 => Box::new(move |w| {
                        let extra = Participant {
                            identity: IdentityId::parse("8:acs:res_bob").expect("id"),
                            display_name: None,
                            share_history_time: None,
                            metadata: Metadata::new(),
                            role: Role::Member,
                        };
                        w.add_participants(a, &[extra], &alice(), 1)
                    }),
                    2 => Box::new(move |w| w.delete_message(a, MessageId(1))),
                    _ => Box::new(move |w| w.append_message(&text(a, "kept")).map(|_| ())),
                }
            })
            .collect();
        let results = run_jobs(&mut w, jobs);
        assert_eq!(results[0], Err(StoreError::NotFound));
        assert_eq!(results[1], Err(StoreError::ParticipantLimit(1)));
        assert_eq!(results[2], Err(StoreError::NotFound));
        assert_eq!(results[3], Ok(()));
        assert_eq!(w.replays, 0);
        assert_eq!(
            w.append_message(&text(a, "next"))
                .expect("append")
                .sequence_id,
            4
        );
    }

    /// An UPDATE … RETURNING read with `query_row` (stepped once, then reset) still counts as a
    /// change, so a job failing after one is replayed and its change undone.
    #[test]
    fn a_returning_update_counts_as_a_change() {
        let (mut w, _scratch) = writer("returning");
        let a = conversation(&mut w);
        let results = run_jobs::<()>(
            &mut w,
            vec![Box::new(move |w| {
                let _topic: String = w
                    .conn
                    .query_row(
                        "UPDATE conversations SET topic = 'changed' WHERE id = ?1 RETURNING topic",
                        [conv_key(a)],
                        |row| row.get(0),
                    )
                    .db()?;
                Err(StoreError::Conflict("no".into()))
            })],
        );
        assert!(matches!(results[0], Err(StoreError::Conflict(_))));
        assert_eq!(w.replays, 1);
        let topic: String = w
            .conn
            .query_row("SELECT topic FROM conversations", [], |row| row.get(0))
            .expect("topic");
        assert_eq!(topic, "t");
    }

    #[test]
    fn a_batch_that_cannot_commit_fails_every_job() {
        let (mut w, _scratch) = writer("abort");
        let a = conversation(&mut w);
        let mut batch = Vec::new();
        let (ok, ok_answer) = job(move |w: &mut Writer| w.append_message(&text(a, "x")));
        // Ends the transaction behind the writer's back, as an I/O error would.
        let (bad, bad_answer) = job(|w: &mut Writer| {
            w.conn.execute_batch("ROLLBACK").db()?;
            Ok(())
        });
        batch.push(ok);
        batch.push(bad);
        let failure = w.run_batch(&mut batch);
        assert!(failure.is_some());
        for j in batch {
            j.finish(failure.as_deref());
        }
        assert!(matches!(
            ok_answer.blocking_recv().expect("answer"),
            Err(StoreError::Unavailable(_))
        ));
        assert!(matches!(
            bad_answer.blocking_recv().expect("answer"),
            Err(StoreError::Unavailable(_))
        ));
        let count: i64 = w
            .conn
            .query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))
            .expect("count");
        assert_eq!(count, 1, "only the participantAdded message of the create");
        // The writer carries on.
        assert_eq!(
            w.append_message(&text(a, "y")).expect("append").sequence_id,
            2
        );
    }

    /// A clean close saves the id clock and the next writer starts from it; after a crash (the
    /// open flag still set) the next writer finds the newest message instead.
    #[test]
    fn the_id_clock_survives_a_clean_close_and_is_recovered_after_a_crash() {
        let (mut w, scratch) = writer("clock");
        let a = conversation(&mut w);
        let newest = w.append_message(&text(a, "x")).expect("append").id.0;
        let reopen = || {
            let conn = schema::open_writer(&scratch.0, Durability::Off).expect("open");
            Writer::new(conn, Arc::new(SystemClock)).expect("writer")
        };
        // Crashed: the flag is still 1, the saved clock behind.
        set_meta(&w.conn, "id_clock", 5).expect("meta");
        assert_eq!(meta_value(&w.conn, WRITER_OPEN).expect("meta"), Some(1));
        let mut recovered = reopen();
        assert_eq!(recovered.last_id, newest);
        // Closed cleanly: the saved clock is taken as it is (the messages are not read).
        recovered.last_id = newest + 1_000;
        recovered.close();
        assert_eq!(meta_value(&w.conn, WRITER_OPEN).expect("meta"), Some(0));
        let mut next = reopen();
        assert_eq!(next.last_id, newest + 1_000);
        assert_eq!(meta_value(&w.conn, WRITER_OPEN).expect("meta"), Some(1));
        assert!(next.append_message(&text(a, "y")).expect("append").id.0 > newest + 1_000);
    }

    #[test]
    fn a_panicking_job_answers_unavailable_and_the_batch_commits() {
        let (mut w, _scratch) = writer("panic");
        let a = conversation(&mut w);
        let results = run_jobs::<i64>(
            &mut w,
            vec![
                Box::new(|_| panic!("boom")),
                Box::new(move |w| w.append_message(&text(a, "x")).map(|m| m.sequence_id)),
            ],
        );
        assert!(matches!(results[0], Err(StoreError::Unavailable(_))));
        assert_eq!(results[1], Ok(2));
    }
}
