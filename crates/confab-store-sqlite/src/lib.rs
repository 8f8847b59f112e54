//! confab's embedded store: SQLite in WAL mode, one writer thread with group commit, and a small
//! pool of read-only connections.
//!
//! * Writes go to one thread that owns the read-write connection (`writer.rs`; the writes
//!   themselves are in `writes.rs`). It commits whatever is queued in one transaction (a failing
//!   write fails alone) and answers only after the commit: an `Ok` from a write means committed
//!   (with `synchronous=FULL`, durable across power loss). Another thread checkpoints the WAL
//!   (`checkpoint.rs`) so that commits never stop for it.
//! * Reads run against pooled read-only connections (`reads.rs`), on the calling async worker
//!   while reads are served from memory and on `spawn_blocking` for a while after one went to
//!   the disk (see `SqliteStore::read`); WAL lets them run alongside the writer and see every
//!   commit that finished before they started.
//! * The schema is versioned (`schema.rs`); rows are mapped in `codec.rs`.
//!
//! Dropping the store closes the write queue, lets the writer finish every queued write and
//! joins it (this blocks the dropping thread for that long); [`SqliteStore::close`] does the same
//! without blocking an async runtime thread.

mod actions;
mod checkpoint;
mod codec;
mod events;
mod hierarchy;
mod media;
mod memberships;
mod pcache;
mod reads;
mod schema;
mod wal_buffer;
mod webhooks;
mod writer;
mod writes;

use std::cell::Cell;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use confab_core::ids::{ConversationId, IdentityId, MessageId};
use confab_core::model::{
    Application, Conversation, ConversationSummary, GroupView, Identity, Member, Message, Page,
    Participant, PinChallenge, ReadReceipt, RefreshToken, Role, SubgroupLink, SubscribeOutcome,
};
use confab_core::ports::webhooks::{DeliveryAttempt, Webhook, WebhookDelivery, WebhookObject};
use confab_core::ports::{
    Clock, CommittedEvent, ConnectorStore, ConversationUpdate, CreatedConversation, EventBounds,
    EventSink, HierarchyStore, ListQuery, MemberAccess, Membership, MessageEdit, MessageQuery,
    NewConversation, NewMessage, PinOutcome, PinRedemption, Store, StoreError, StoreResult,
};
use parking_lot::Mutex;
use rusqlite::Connection;
use time::OffsetDateTime;
use tokio::sync::Semaphore;

use crate::schema::Durability;
use crate::writer::Writer;
use confab_store_common::memberships::Memberships;
use confab_store_common::write_queue::WriteQueue;

/// Read connections, and so reads running at once. Further reads wait for a connection rather
/// than open one: opening costs far more than a read (file, pragmas, a cold statement cache),
/// and more readers than this gain nothing on a machine of a few cores.
const READ_POOL_SIZE: usize = 8;

/// The SQLite store. Cheap to share behind an `Arc`; every method may be called concurrently.
pub struct SqliteStore {
    writer: WriteQueue<Writer>,
    /// Woken after each commit that recorded webhook deliveries.
    delivery_wakeup: Arc<tokio::sync::Notify>,
    /// Where the writer hands committed events (see [`SqliteStore::set_event_sink`]).
    sink: events::SinkSlot,
    reads: Arc<ReadPool>,
    /// What `get_membership` answers without a read; the writer forgets what it changes.
    memberships: Arc<Memberships>,
    path: PathBuf,
    /// Set by [`SqliteStore::in_memory`]: removes the throw-away files on drop. Declared last so
    /// that it runs after the writer has stopped.
    _scratch: Option<ScratchFiles>,
}

impl SqliteStore {
    /// Opens (creating it and its parent directory if needed) the database file at `path`,
    /// bringing its schema up to date.
    pub fn open(path: &Path, clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::Unavailable(format!("cannot create {}: {e}", parent.display()))
            })?;
        }
        Self::start(path.to_path_buf(), Durability::Full, clock, None)
    }

    /// A throw-away store for tests and demos. It is a uniquely named file in the system's
    /// temporary directory, opened exactly like [`SqliteStore::open`] (WAL, same pool, same
    /// visibility rules) but without fsync, and removed when the store is dropped.
    ///
    /// (A shared-cache `:memory:` database would not do: it cannot use WAL, and its table locks
    /// make readers fail with SQLITE_LOCKED while the writer holds a transaction, which under
    /// group commit is nearly always.)
    pub fn in_memory(clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        let scratch = ScratchFiles::new("store");
        Self::start(scratch.0.clone(), Durability::Off, clock, Some(scratch))
    }

    fn start(
        path: PathBuf,
        durability: Durability,
        clock: Arc<dyn Clock>,
        scratch: Option<ScratchFiles>,
    ) -> Result<Self, StoreError> {
        let sink = events::SinkSlot::default();
        let memberships = Arc::new(Memberships::default());
        let (writer, delivery_wakeup) =
            writer::start(&path, durability, clock, sink.clone(), memberships.clone())?;
        let reads = Arc::new(ReadPool {
            path: path.clone(),
            idle: Mutex::new(Vec::with_capacity(READ_POOL_SIZE)),
            permits: Arc::new(Semaphore::new(READ_POOL_SIZE)),
        });
        Ok(Self {
            writer,
            delivery_wakeup,
            sink,
            reads,
            memberships,
            path,
            _scratch: scratch,
        })
    }

    /// Sets where committed events go: after every COMMIT, the writer hands the batch's
    /// events to `sink` (one call per batch). Set once; answers false if one was set already.
    pub fn set_event_sink(&self, sink: Arc<dyn EventSink>) -> bool {
        self.sink.set(sink).is_ok()
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops taking writes, waits until every queued write has committed (or failed), and stops
    /// the writer thread. Later writes answer `Unavailable`; reads still work.
    pub async fn close(&self) {
        self.writer.close().await;
    }

    /// Runs a read on a pooled read-only connection: on the calling async worker while reads
    /// are fast, on `spawn_blocking` otherwise.
    ///
    /// Why inline: nearly every read is a keyset walk of a page over an index that is in the
    /// page cache, tens of microseconds. Handing such a read to the blocking pool and back (a
    /// thread wake-up each way, futexes, the task's re-scheduling) cost more CPU than the read
    /// itself: a page of 50 messages took ~17 % less server CPU inline, and more pages/s.
    ///
    /// Why not always: a read that waits for the disk (a cold file after a restart, a data set
    /// larger than memory), or a SQLITE_BUSY wait, would stall every task of that worker for as
    /// long. So each read is watched: after one took longer than [`INLINE_READ_LIMIT`] *and*
    /// went to the disk (its thread's block reads or major page faults grew), reads go through
    /// `spawn_blocking` for [`OFFLOAD_WINDOW`] (still watched), then inline again. A worker is
    /// held up by at most about one slow read per window, and a warm store pays no hand-off.
    ///
    /// Wall time alone would not do: on a busy machine a read from memory is often preempted
    /// for milliseconds. Measured with the list benchmark saturating two cores: a 2 ms
    /// wall-time rule sent most reads to the blocking pool, and so did "2 ms and the thread
    /// slept" (reads sleep briefly on contended malloc/SQLite mutexes there). Disk reads are
    /// what a worker must not wait for, so they are what is counted. Not covered: a reader
    /// waiting out SQLITE_BUSY (rare in WAL mode: only while the WAL is being recovered).
    ///
    /// A read that would have to open a connection (slow: file, pragmas) also goes to the
    /// blocking pool.
    async fn read<T, F>(&self, read: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let pool = Arc::clone(&self.reads);
        // Wait here, on the async side, so that waiting reads hold no blocking thread.
        let permit = Arc::clone(&pool.permits)
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Unavailable("the store is closed".into()))?;
        if !offloading() {
            if let Some(conn) = pool.take_idle() {
                let result = pool.run(conn, read);
                drop(permit);
                return result;
            }
        }
        tokio::task::spawn_blocking(move || {
            let result = pool.take().and_then(|conn| pool.run(conn, read));
            drop(permit);
            result
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("read task failed: {e}")))?
    }
}

/// A read that takes longer than this (wall time) and reads from the disk sends the following
/// reads to the blocking pool for a while. A page of messages from the page cache takes ~0.05 ms of CPU; a
/// read from disk takes milliseconds.
const INLINE_READ_LIMIT: Duration = Duration::from_millis(2);

/// How long reads stay on the blocking pool after a slow one.
const OFFLOAD_WINDOW: Duration = Duration::from_secs(1);

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.writer.close_now();
    }
}

/// Read-only connections, reused; at most [`READ_POOL_SIZE`], opened on first need.
struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// One per connection: a read holds one from before it takes a connection until after it
    /// gives it back, so `take` finds an idle connection or may open a new one within the cap.
    permits: Arc<Semaphore>,
}

/// Until when (µs since [`read_epoch`]) reads run on the blocking pool, because one was slow.
/// Process-wide rather than per store: what makes reads slow (the disk, memory pressure, a
/// loaded machine) is the machine's, and the stores of one process share it.
static OFFLOAD_UNTIL: AtomicU64 = AtomicU64::new(0);

fn read_epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn micros_since_epoch(at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(read_epoch()).as_micros()).unwrap_or(u64::MAX)
}

#[cfg(target_os = "linux")]
type DiskReadCount = libc::c_long;
#[cfg(not(target_os = "linux"))]
type DiskReadCount = i64;

/// How often the calling thread has gone to the disk: its block reads (page-cache misses of
/// `read`) plus its major page faults. Reads served from memory leave both unchanged.
#[cfg(target_os = "linux")]
fn thread_disk_reads() -> Option<DiskReadCount> {
    // SAFETY: `rusage` is plain integers, for which all zeroes is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes one `rusage` through a pointer to a live one.
    let done = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) } == 0;
    done.then(|| usage.ru_inblock.saturating_add(usage.ru_majflt))
}

#[cfg(not(target_os = "linux"))]
fn thread_disk_reads() -> Option<DiskReadCount> {
    None
}

/// Whether a read went to the disk, from its thread's disk-read counts before and after it.
/// Where they cannot be counted, it is taken to have gone (wall time alone then decides).
fn went_to_disk<C: PartialOrd>(before: Option<C>, after: Option<C>) -> bool {
    match (before, after) {
        (Some(before), Some(after)) => after > before,
        _ => true,
    }
}

/// The disk-read count of this thread when it was last looked at. Counted only around slow
/// reads (and once per thread, before its first read), not around every read: the system call
/// was ~1 % of a page of messages' server time. So "went to the disk" means "since the last
/// slow read", which may also count disk reads of fast reads in between; that errs towards
/// the blocking pool, which is the safe side.
struct DiskReads;

thread_local! {
    static SEEN_DISK_READS: Cell<Option<Option<DiskReadCount>>> = const { Cell::new(None) };
}

impl DiskReads {
    fn note_first() {
        SEEN_DISK_READS.with(|seen| {
            if seen.get().is_none() {
                seen.set(Some(thread_disk_reads()));
            }
        });
    }

    /// Whether the count grew since it was last looked at (which is now).
    fn grew() -> bool {
        let now = thread_disk_reads();
        let before = SEEN_DISK_READS
            .with(|seen| seen.replace(Some(now)))
            .flatten();
        went_to_disk(before, now)
    }
}

/// Whether a read was slow within the last [`OFFLOAD_WINDOW`].
fn offloading() -> bool {
    micros_since_epoch(Instant::now()) < OFFLOAD_UNTIL.load(Ordering::Relaxed)
}

impl ReadPool {
    fn take(&self) -> StoreResult<Connection> {
        // Pop under the lock, open (slow) outside it.
        match self.take_idle() {
            Some(conn) => Ok(conn),
            None => schema::open_reader(&self.path),
        }
    }

    fn take_idle(&self) -> Option<Connection> {
        self.idle.lock().pop()
    }

    fn give_back(&self, conn: Connection) {
        let mut idle = self.idle.lock();
        if idle.len() < READ_POOL_SIZE {
            idle.push(conn);
        }
    }

    /// Runs `read` on `conn`, gives the connection back and notes how long the read took. A
    /// panicking read fails alone, as it would on the blocking pool, and its connection is
    /// dropped rather than reused.
    fn run<T>(
        &self,
        conn: Connection,
        read: impl FnOnce(&Connection) -> StoreResult<T>,
    ) -> StoreResult<T> {
        DiskReads::note_first();
        let started = Instant::now();
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| read(&conn)));
        let took = started.elapsed();
        if took > INLINE_READ_LIMIT && DiskReads::grew() {
            let until = micros_since_epoch(Instant::now() + OFFLOAD_WINDOW);
            OFFLOAD_UNTIL.fetch_max(until, Ordering::Relaxed);
        }
        match result {
            Ok(result) => {
                self.give_back(conn);
                result
            }
            Err(_) => Err(StoreError::Unavailable("a read panicked".into())),
        }
    }
}

/// The files of an `in_memory` store, removed on drop (the WAL and shared-memory files too).
struct ScratchFiles(PathBuf);

impl ScratchFiles {
    /// A database path in the system's temporary directory that no other store of any process
    /// uses: `confab-{what}-{pid}-{counter}-{time}.sqlite`.
    fn new(what: &str) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        Self(std::env::temp_dir().join(format!(
            "confab-{what}-{}-{}-{}.sqlite",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            OffsetDateTime::now_utc().unix_timestamp_nanos()
        )))
    }
}

impl Drop for ScratchFiles {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut path = self.0.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_identity(&self, identity: &Identity) -> StoreResult<()> {
        let identity = identity.clone();
        self.writer
            .call(move |w| w.create_identity(&identity))
            .await
    }

    async fn get_identity(&self, id: &IdentityId) -> StoreResult<Option<Identity>> {
        let id = id.clone();
        self.read(move |conn| reads::get_identity(conn, &id)).await
    }

    async fn bump_token_generation(&self, id: &IdentityId) -> StoreResult<u32> {
        let id = id.clone();
        self.writer
            .call(move |w| w.bump_token_generation(&id))
            .await
    }

    async fn delete_identity(&self, id: &IdentityId) -> StoreResult<()> {
        let id = id.clone();
        self.writer.call(move |w| w.delete_identity(&id)).await
    }

    async fn create_conversation(&self, new: NewConversation) -> StoreResult<CreatedConversation> {
        let creation = confab_store_common::creation::Creation::new(new);
        self.writer
            .call(move |w| w.create_conversation(&creation))
            .await
    }

    async fn get_conversation(&self, id: ConversationId) -> StoreResult<Option<Conversation>> {
        self.read(move |conn| reads::get_conversation(conn, id))
            .await
    }

    async fn update_conversation(
        &self,
        id: ConversationId,
        update: ConversationUpdate,
        by: &IdentityId,
    ) -> StoreResult<()> {
        let by = by.clone();
        self.writer
            .call(move |w| w.update_conversation(id, &update, &by))
            .await
    }

    async fn delete_conversation(
        &self,
        id: ConversationId,
        by: Option<&IdentityId>,
    ) -> StoreResult<()> {
        let by = by.cloned();
        self.writer
            .call(move |w| w.delete_conversation(id, by.as_ref()))
            .await
    }

    async fn list_conversations(
        &self,
        member: &IdentityId,
        active_since: Option<OffsetDateTime>,
        after: Option<String>,
        limit: usize,
    ) -> StoreResult<Page<ConversationSummary>> {
        let member = member.clone();
        self.read(move |conn| {
            reads::list_conversations(conn, &member, active_since, after.as_deref(), limit)
        })
        .await
    }

    async fn delete_expired_conversations(&self) -> StoreResult<Vec<ConversationId>> {
        self.writer.call(|w| w.delete_expired_conversations()).await
    }

    async fn get_participant(
        &self,
        conversation: ConversationId,
        identity: &IdentityId,
    ) -> StoreResult<Option<Participant>> {
        let identity = identity.clone();
        self.read(move |conn| reads::get_participant(conn, conversation, &identity))
            .await
    }

    /// This runs on nearly every call: answered from memory when it can (`memberships.rs` says
    /// why that stays right), else both reads on one connection in one trip to the blocking
    /// pool.
    async fn get_membership(
        &self,
        conversation: ConversationId,
        identity: &IdentityId,
    ) -> StoreResult<Option<MemberAccess>> {
        if let Some(known) = self.memberships.get(conversation, identity) {
            return Ok(Some(known));
        }
        let epoch = self.memberships.epoch();
        let key = identity.clone();
        let found = self
            .read(move |conn| {
                let Some(found) = reads::get_conversation(conn, conversation)? else {
                    return Ok(None);
                };
                let participant = reads::get_participant(conn, conversation, &key)?;
                Ok(Some(MemberAccess {
                    kind: found.kind,
                    deleted: found.deleted_on.is_some(),
                    participant,
                }))
            })
            .await?;
        // An unknown conversation is not kept: anyone could fill the cache with made-up ids.
        if let Some(access) = &found {
            self.memberships
                .fill(epoch, conversation, identity.clone(), access.clone());
        }
        Ok(found)
    }

    async fn list_participants(
        &self,
        conversation: ConversationId,
        query: ListQuery,
    ) -> StoreResult<Page<Participant>> {
        self.read(move |conn| reads::list_participants(conn, conversation, &query))
            .await
    }

    async fn add_participants(
        &self,
        conversation: ConversationId,
        participants: Vec<Participant>,
        by: &IdentityId,
        max_participants: usize,
    ) -> StoreResult<()> {
        let by = by.clone();
        self.writer
            .call(move |w| w.add_participants(conversation, &participants, &by, max_participants))
            .await
    }

    async fn remove_participant(
        &self,
        conversation: ConversationId,
        identity: &IdentityId,
        by: &IdentityId,
    ) -> StoreResult<()> {
        let (identity, by) = (identity.clone(), by.clone());
        self.writer
            .call(move |w| w.remove_participant(conversation, &identity, &by))
            .await
    }

    async fn append_message(&self, message: NewMessage) -> StoreResult<Message> {
        self.writer.call(move |w| w.append_message(&message)).await
    }

    async fn get_message(
        &self,
        conversation: ConversationId,
        id: MessageId,
    ) -> StoreResult<Option<Message>> {
        self.read(move |conn| reads::get_message(conn, conversation, id))
            .await
    }

    async fn list_messages(
        &self,
        conversation: ConversationId,
        query: MessageQuery,
    ) -> StoreResult<Page<Message>> {
        self.read(move |conn| reads::list_messages(conn, conversation, &query))
            .await
    }

    async fn edit_message(
        &self,
        conversation: ConversationId,
        id: MessageId,
        edit: MessageEdit,
    ) -> StoreResult<Message> {
        self.writer
            .call(move |w| w.edit_message(conversation, id, &edit))
            .await
    }

    async fn delete_message(&self, conversation: ConversationId, id: MessageId) -> StoreResult<()> {
        self.writer
            .call(move |w| w.delete_message(conversation, id))
            .await
    }

    async fn put_read_receipt(
        &self,
        conversation: ConversationId,
        reader: &IdentityId,
        message: MessageId,
    ) -> StoreResult<()> {
        let reader = reader.clone();
        self.writer
            .call(move |w| w.put_read_receipt(conversation, &reader, message))
            .await
    }

    async fn list_read_receipts(
        &self,
        conversation: ConversationId,
        query: ListQuery,
    ) -> StoreResult<Page<ReadReceipt>> {
        self.read(move |conn| reads::list_read_receipts(conn, conversation, &query))
            .await
    }

    async fn get_group(
        &self,
        id: ConversationId,
        viewer: &IdentityId,
    ) -> StoreResult<Option<GroupView>> {
        let viewer = viewer.clone();
        self.read(move |conn| reads::get_group(conn, id, &viewer))
            .await
    }

    async fn list_groups(
        &self,
        member: &IdentityId,
        after: Option<String>,
        limit: usize,
    ) -> StoreResult<Page<GroupView>> {
        let member = member.clone();
        self.read(move |conn| reads::list_groups(conn, &member, after.as_deref(), limit))
            .await
    }

    async fn list_members(
        &self,
        conversation: ConversationId,
        query: ListQuery,
    ) -> StoreResult<Page<Member>> {
        self.read(move |conn| reads::list_members(conn, conversation, &query))
            .await
    }

    async fn set_participant_role(
        &self,
        conversation: ConversationId,
        identity: &IdentityId,
        role: Role,
        by: &IdentityId,
    ) -> StoreResult<()> {
        let (identity, by) = (identity.clone(), by.clone());
        self.writer
            .call(move |w| w.set_participant_role(conversation, &identity, role, &by))
            .await
    }

    async fn events_after(&self, after: i64, limit: usize) -> StoreResult<Vec<CommittedEvent>> {
        self.read(move |conn| events::events_after(conn, after, limit))
            .await
    }

    async fn event_bounds(&self) -> StoreResult<EventBounds> {
        self.read(events::bounds).await
    }

    async fn purge_events(
        &self,
        older_than: Option<OffsetDateTime>,
        keep_last: Option<u64>,
        max_rows: usize,
    ) -> StoreResult<usize> {
        self.writer
            .call(move |w| w.purge_events(older_than, keep_last, max_rows))
            .await
    }

    async fn list_memberships(&self, identity: &IdentityId) -> StoreResult<Vec<Membership>> {
        let identity = identity.clone();
        self.read(move |conn| events::list_memberships(conn, &identity))
            .await
    }
}

#[async_trait]
impl ConnectorStore for SqliteStore {
    async fn create_application(&self, application: &Application) -> StoreResult<()> {
        let application = application.clone();
        self.writer
            .call(move |w| w.create_application(&application))
            .await
    }

    async fn get_application(&self, id: &str) -> StoreResult<Option<Application>> {
        let id = id.to_owned();
        self.read(move |conn| reads::get_application(conn, &id))
            .await
    }

    async fn list_applications(&self) -> StoreResult<Vec<Application>> {
        self.read(reads::list_applications).await
    }

    async fn delete_application(&self, id: &str) -> StoreResult<()> {
        let id = id.to_owned();
        self.writer.call(move |w| w.delete_application(&id)).await
    }

    async fn put_pin(&self, pin: &PinChallenge) -> StoreResult<()> {
        let pin = pin.clone();
        self.writer.call(move |w| w.put_pin(&pin)).await
    }

    async fn redeem_pin(&self, redemption: PinRedemption) -> StoreResult<PinOutcome> {
        self.writer.call(move |w| w.redeem_pin(&redemption)).await
    }

    async fn get_refresh_token(&self, hash: &[u8; 32]) -> StoreResult<Option<RefreshToken>> {
        let hash = *hash;
        self.read(move |conn| reads::get_refresh_token(conn, &hash))
            .await
    }

    async fn add_refresh_token(&self, token: &RefreshToken) -> StoreResult<()> {
        let token = token.clone();
        self.writer.call(move |w| w.add_refresh_token(&token)).await
    }

    async fn purge_expired_credentials(&self, now: OffsetDateTime) -> StoreResult<usize> {
        self.writer
            .call(move |w| w.purge_expired_credentials(now))
            .await
    }
}

#[async_trait]
impl HierarchyStore for SqliteStore {
    async fn create_subgroup(
        &self,
        new: NewConversation,
        parent: ConversationId,
    ) -> StoreResult<Conversation> {
        let creation = confab_store_common::creation::Creation::new(new);
        self.writer
            .call(move |w| w.create_subgroup(&creation, parent))
            .await
    }

    async fn add_subgroup(
        &self,
        parent: ConversationId,
        child: ConversationId,
        by: &IdentityId,
    ) -> StoreResult<bool> {
        let by = by.clone();
        self.writer
            .call(move |w| w.add_subgroup(parent, child, &by))
            .await
    }

    async fn remove_subgroup(
        &self,
        parent: ConversationId,
        child: ConversationId,
        by: &IdentityId,
    ) -> StoreResult<()> {
        let by = by.clone();
        self.writer
            .call(move |w| w.remove_subgroup(parent, child, &by))
            .await
    }

    async fn list_subgroups(
        &self,
        root: ConversationId,
        all: bool,
        limit: usize,
    ) -> StoreResult<Vec<SubgroupLink>> {
        self.read(move |conn| reads::list_subgroups(conn, root, all, limit))
            .await
    }

    async fn add_subscribers(
        &self,
        conversation: ConversationId,
        identities: Vec<IdentityId>,
        by: &IdentityId,
    ) -> StoreResult<Vec<(IdentityId, SubscribeOutcome)>> {
        let by = by.clone();
        self.writer
            .call(move |w| w.add_subscribers(conversation, &identities, &by))
            .await
    }

    async fn remove_subscribers(
        &self,
        conversation: ConversationId,
        identities: Vec<IdentityId>,
        by: &IdentityId,
    ) -> StoreResult<Vec<(IdentityId, bool)>> {
        let by = by.clone();
        self.writer
            .call(move |w| w.remove_subscribers(conversation, &identities, &by))
            .await
    }

    async fn list_subscribers(
        &self,
        conversation: ConversationId,
        after: Option<String>,
        limit: usize,
    ) -> StoreResult<Page<Member>> {
        self.read(move |conn| reads::list_subscribers(conn, conversation, after.as_deref(), limit))
            .await
    }

    async fn find_subscribers(
        &self,
        conversation: ConversationId,
        identities: Vec<IdentityId>,
    ) -> StoreResult<Vec<IdentityId>> {
        self.read(move |conn| reads::find_subscribers(conn, conversation, &identities))
            .await
    }
}

#[async_trait]
impl confab_core::ports::MediaStore for SqliteStore {
    async fn put_media(&self, records: Vec<confab_core::ports::MediaRecord>) -> StoreResult<()> {
        self.writer.call(move |w| w.put_media(&records)).await
    }

    async fn get_media(&self, id: &str) -> StoreResult<Option<confab_core::ports::MediaRecord>> {
        let id = id.to_owned();
        self.read(move |conn| media::get_media(conn, &id)).await
    }

    async fn link_message_media(
        &self,
        conversation: ConversationId,
        message: MessageId,
        media: Vec<String>,
    ) -> StoreResult<()> {
        self.writer
            .call(move |w| w.link_message_media(conversation, message, &media))
            .await
    }

    async fn media_visible_to(&self, id: &str, identity: &IdentityId) -> StoreResult<bool> {
        let id = id.to_owned();
        let identity = identity.clone();
        self.read(move |conn| media::media_visible_to(conn, &id, &identity))
            .await
    }
}

#[async_trait]
impl confab_core::ports::ActionStore for SqliteStore {
    async fn create_action(
        &self,
        new: confab_core::ports::NewAction,
    ) -> StoreResult<confab_core::actions::Action> {
        self.writer.call(move |w| w.create_action(&new)).await
    }

    async fn get_action(
        &self,
        conversation: ConversationId,
        id: MessageId,
    ) -> StoreResult<Option<confab_core::actions::Action>> {
        self.read(move |conn| actions::get_action(conn, conversation, id))
            .await
    }

    async fn list_actions(
        &self,
        conversation: ConversationId,
        query: confab_core::ports::ActionQuery,
    ) -> StoreResult<Page<confab_core::actions::Action>> {
        self.read(move |conn| actions::list_actions(conn, conversation, &query))
            .await
    }

    async fn put_action_response(
        &self,
        response: confab_core::ports::NewActionResponse,
    ) -> StoreResult<confab_core::actions::ActionResponse> {
        self.writer
            .call(move |w| w.put_action_response(&response))
            .await
    }

    async fn get_action_response(
        &self,
        action: MessageId,
        id: &str,
    ) -> StoreResult<Option<confab_core::actions::ActionResponse>> {
        let id = id.to_owned();
        self.read(move |conn| actions::get_action_response(conn, action, &id))
            .await
    }

    async fn list_action_responses(
        &self,
        action: MessageId,
        limit: usize,
    ) -> StoreResult<Vec<confab_core::actions::ActionResponse>> {
        self.read(move |conn| actions::list_action_responses(conn, action, limit))
            .await
    }
}

#[async_trait]
impl confab_core::ports::WebhookStore for SqliteStore {
    async fn create_webhook(&self, webhook: Webhook) -> StoreResult<()> {
        self.writer.call(move |w| w.create_webhook(&webhook)).await
    }

    async fn get_webhook(&self, id: &str) -> StoreResult<Option<Webhook>> {
        let id = id.to_owned();
        self.read(move |conn| webhooks::get_webhook(conn, &id))
            .await
    }

    async fn list_webhooks(
        &self,
        object: WebhookObject,
        object_id: &str,
    ) -> StoreResult<Vec<Webhook>> {
        let object_id = object_id.to_owned();
        self.read(move |conn| webhooks::list_webhooks(conn, object, &object_id))
            .await
    }

    async fn update_webhook(&self, webhook: Webhook, resume: bool) -> StoreResult<()> {
        self.writer
            .call(move |w| w.update_webhook(&webhook, resume))
            .await
    }

    async fn delete_webhook(&self, id: &str) -> StoreResult<()> {
        let id = id.to_owned();
        self.writer.call(move |w| w.delete_webhook(&id)).await
    }

    async fn due_deliveries(
        &self,
        now: OffsetDateTime,
        limit: usize,
    ) -> StoreResult<Vec<WebhookDelivery>> {
        let now_us = codec::micros(now);
        self.read(move |conn| webhooks::due_deliveries(conn, now_us, limit))
            .await
    }

    async fn next_delivery_due(&self) -> StoreResult<Option<OffsetDateTime>> {
        self.read(webhooks::next_delivery_due).await
    }

    async fn record_delivery_attempt(&self, attempt: DeliveryAttempt) -> StoreResult<()> {
        self.writer
            .call(move |w| w.record_delivery_attempt(&attempt))
            .await
    }

    async fn list_deliveries(
        &self,
        webhook: &str,
        before: Option<i64>,
        limit: usize,
    ) -> StoreResult<Vec<WebhookDelivery>> {
        let webhook = webhook.to_owned();
        self.read(move |conn| webhooks::list_deliveries(conn, &webhook, before, limit))
            .await
    }

    async fn redeliver(&self, webhook: &str, delivery: i64) -> StoreResult<WebhookDelivery> {
        let webhook = webhook.to_owned();
        self.writer
            .call(move |w| w.redeliver(&webhook, delivery))
            .await
    }

    async fn purge_deliveries(
        &self,
        older_than: OffsetDateTime,
        max_rows: usize,
    ) -> StoreResult<usize> {
        let older_than_us = codec::micros(older_than);
        self.writer
            .call(move |w| w.purge_deliveries(older_than_us, max_rows))
            .await
    }

    async fn action_conversation(&self, action: MessageId) -> StoreResult<Option<ConversationId>> {
        self.read(move |conn| webhooks::action_conversation(conn, action))
            .await
    }

    fn delivery_wakeup(&self) -> Arc<tokio::sync::Notify> {
        self.delivery_wakeup.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_counts_as_gone_to_disk_when_its_counts_grew_or_cannot_be_known() {
        assert!(!went_to_disk(Some(5), Some(5)));
        assert!(went_to_disk(Some(5), Some(6)));
        assert!(went_to_disk::<i64>(None, Some(6)));
        assert!(went_to_disk::<i64>(Some(5), None));
    }

    /// The counter the rule relies on exists where confab runs in production.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_threads_disk_reads_can_be_counted_on_linux() {
        let first = thread_disk_reads().expect("getrusage");
        let second = thread_disk_reads().expect("getrusage");
        assert!(first >= 0 && second >= first);
    }

    /// The baseline is taken before a thread's first read and moved on by every look: with no
    /// disk read in between, a slow read is not taken for one that went to the disk.
    #[cfg(target_os = "linux")]
    #[test]
    fn disk_reads_are_counted_from_the_last_look() {
        std::thread::spawn(|| {
            assert_eq!(SEEN_DISK_READS.with(Cell::get), None);
            DiskReads::note_first();
            let first = SEEN_DISK_READS.with(Cell::get).flatten().expect("counted");
            DiskReads::note_first();
            assert_eq!(SEEN_DISK_READS.with(Cell::get).flatten(), Some(first));
            assert!(!DiskReads::grew());
            assert!(!DiskReads::grew());
            // A count that went up since the last look is a disk read.
            SEEN_DISK_READS.with(|seen| seen.set(Some(Some(first - 1))));
            assert!(DiskReads::grew());
        })
        .join()
        .expect("thread");
    }
}
