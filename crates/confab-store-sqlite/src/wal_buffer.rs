//! The writer's WAL appends, gathered into one write per commit (per 128 KiB of it).
//!
//! SQLite appends a commit to the WAL with two writes per page, the 24-byte frame header and
//! then the page, and syncs once at the end. When sends go to 1,000 threads a batch of ~30
//! messages dirties ~30 leaf pages: ~80,000 `pwrite` calls a second, each a trip through the
//! file system's write path for a frame that straddles two page-cache pages. `perf trace` of
//! the writer thread: as much of its time in `pwrite` (27 %) as in `fdatasync` (30 %).
//!
//! The writer's connection opens its files through this VFS, the default one with one change:
//! its WAL file keeps appends that follow each other in memory, and writes them with one call
//! before anything that needs them in the file — the sync, a read, a truncation, the file's
//! size, a file control, the close. Every other file, and every other call, is the default
//! VFS's own.
//!
//! Why the sync is soon enough: other connections read only the frames the shared WAL index
//! lists as committed, and SQLite writes a commit into that index after the commit's frames
//! are synced. With `synchronous = FULL` every commit syncs the WAL, so no frame becomes
//! visible while it is still in the buffer, and a crash of the process loses only frames of a
//! transaction that had not committed. Hence [`NAME`] is for `synchronous = FULL` connections
//! only (under `OFF` a commit would be listed before its frames reach the file).

use std::cell::Cell;
use std::ffi::CStr;
use std::os::raw::{c_char, c_int, c_void};
use std::sync::{Once, OnceLock};

use rusqlite::ffi;

/// The VFS's name, for `Connection::open_with_flags_and_vfs`.
pub(crate) const NAME: &str = "confab-wal-buffer";
const NAME_C: &CStr = c"confab-wal-buffer";

/// The most the buffer holds, so that one write of the default (unix) VFS takes it: that VFS
/// writes at most this many bytes a call (`seekAndWriteFd` masks the length with `0x1ffff`),
/// so a longer buffer would be cut short, and one of a multiple of 128 KiB not written at all.
/// A commit of up to 31 frames of 4 KiB is one write.
const MAX_WRITE: usize = 0x1_ffff;

/// The default VFS, whose methods ours call.
static DEFAULT: OnceLock<VfsPtr> = OnceLock::new();

struct VfsPtr(*mut ffi::sqlite3_vfs);

// SAFETY: a registered VFS is shared by every connection of the process, on any thread;
// SQLite never frees it.
unsafe impl Send for VfsPtr {}
unsafe impl Sync for VfsPtr {}

/// A WAL file opened through this VFS. SQLite allocates `szOsFile` bytes per file: this
/// struct, then (at [`INNER_OFFSET`]) the default VFS's own file.
#[repr(C)]
struct WalFile {
    /// What SQLite sees: `pMethods` is [`WAL_METHODS`].
    base: ffi::sqlite3_file,
    inner: *mut ffi::sqlite3_file,
    /// Bytes written by SQLite and not yet by us, to go at `start`.
    pending: Vec<u8>,
    start: i64,
}

/// Where the default VFS's file sits in our allocation, aligned as any of its fields may need.
const INNER_OFFSET: usize = std::mem::size_of::<WalFile>().next_multiple_of(16);

/// Registers the VFS, once per process. Not the default one: a connection asks for it by
/// [`NAME`]. Answers whether it is there to be asked for.
pub(crate) fn register() -> bool {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: `sqlite3_vfs_find(NULL)` answers the default VFS, which lives as long as the
        // process; the struct we register is leaked, so it does too, as SQLite requires.
        unsafe {
            let default = ffi::sqlite3_vfs_find(std::ptr::null());
            if default.is_null() {
                tracing::debug!("no default sqlite vfs; WAL appends left unbuffered");
                return;
            }
            let Ok(inner_size) = usize::try_from((*default).szOsFile) else {
                return;
            };
            let Ok(size) = c_int::try_from(INNER_OFFSET + inner_size) else {
                return;
            };
            // A copy of the default VFS: every method but `xOpen` is the default's, and they
            // find what they read of the struct (`pAppData`, `mxPathname`) in the copy.
            let ours = Box::leak(Box::new(*default));
            ours.szOsFile = size;
            ours.zName = NAME_C.as_ptr();
            ours.pNext = std::ptr::null_mut();
            ours.xOpen = Some(open);
            let _ = DEFAULT.set(VfsPtr(default));
            let rc = ffi::sqlite3_vfs_register(ours, 0);
            if rc != ffi::SQLITE_OK {
                tracing::debug!(rc, "sqlite refused the WAL buffer vfs");
            }
        }
    });
    // SAFETY: a name without NUL; the lookup only reads the list of registered VFSes.
    unsafe { !ffi::sqlite3_vfs_find(NAME_C.as_ptr()).is_null() }
}

thread_local! {
    /// The writes SQLite made to WAL files through this VFS on this thread, and the writes
    /// they became; counted in tests only (see [`count`]). Per thread, so that a test sees its
    /// own connection's alone.
    static WRITES_IN: Cell<u64> = const { Cell::new(0) };
    static WRITES_OUT: Cell<u64> = const { Cell::new(0) };
}

fn count(counter: &'static std::thread::LocalKey<Cell<u64>>) {
    if cfg!(test) {
        counter.with(|n| n.set(n.get() + 1));
    }
}

fn default_vfs() -> *mut ffi::sqlite3_vfs {
    // `register` sets it before the VFS it registers can be used.
    DEFAULT.get().map_or(std::ptr::null_mut(), |vfs| vfs.0)
}

unsafe extern "C" fn open(
    _: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let default = default_vfs();
    let Some(default_open) = default.as_ref().and_then(|vfs| vfs.xOpen) else {
        return ffi::SQLITE_CANTOPEN;
    };
    if flags & ffi::SQLITE_OPEN_WAL == 0 {
        // Not the WAL: the default file, in place (our allocation is larger than it needs).
        return default_open(default, name, file, flags, out_flags);
    }
    let inner = file
        .cast::<u8>()
        .add(INNER_OFFSET)
        .cast::<ffi::sqlite3_file>();
    let rc = default_open(default, name, inner, flags, out_flags);
    if rc != ffi::SQLITE_OK {
        // SQLite calls `xClose` after a failed open only if `pMethods` is set: close the
        // default file if it needs it, and leave ours unset.
        if let Some(close) = (*inner).pMethods.as_ref().and_then(|m| m.xClose) {
            close(inner);
        }
        (*file).pMethods = std::ptr::null();
        return rc;
    }
    file.cast::<WalFile>().write(WalFile {
        base: ffi::sqlite3_file {
            pMethods: &WAL_METHODS,
        },
        inner,
        pending: Vec::new(),
        start: 0,
    });
    ffi::SQLITE_OK
}

static WAL_METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(close),
    xRead: Some(read),
    xWrite: Some(write),
    xTruncate: Some(truncate),
    xSync: Some(sync),
    xFileSize: Some(file_size),
    xLock: Some(lock),
    xUnlock: Some(unlock),
    xCheckReservedLock: Some(check_reserved_lock),
    xFileControl: Some(file_control),
    xSectorSize: Some(sector_size),
    xDeviceCharacteristics: Some(device_characteristics),
    xShmMap: Some(shm_map),
    xShmLock: Some(shm_lock),
    xShmBarrier: Some(shm_barrier),
    xShmUnmap: Some(shm_unmap),
    xFetch: Some(fetch),
    xUnfetch: Some(unfetch),
};

/// Our file behind a handle whose methods are [`WAL_METHODS`].
///
/// # Safety
/// `file` must have been opened by [`open`] as a WAL file and not closed; SQLite uses a file
/// from one thread at a time.
unsafe fn wal<'a>(file: *mut ffi::sqlite3_file) -> &'a mut WalFile {
    &mut *file.cast::<WalFile>()
}

/// The default file's methods.
///
/// # Safety
/// As for [`wal`].
unsafe fn methods<'a>(wal: &WalFile) -> &'a ffi::sqlite3_io_methods {
    &*(*wal.inner).pMethods
}

/// Writes the buffered bytes, if any. The buffer is emptied either way: after a failed write
/// SQLite fails the transaction, and its frames past the last commit are never read.
unsafe fn flush(wal: &mut WalFile) -> c_int {
    if wal.pending.is_empty() {
        return ffi::SQLITE_OK;
    }
    let Some(write) = methods(wal).xWrite else {
        return ffi::SQLITE_IOERR_WRITE;
    };
    // At most MAX_WRITE long.
    let len = c_int::try_from(wal.pending.len()).unwrap_or(c_int::MAX);
    let rc = write(wal.inner, wal.pending.as_ptr().cast(), len, wal.start);
    wal.pending.clear();
    count(&WRITES_OUT);
    rc
}

/// Flushes, then calls `call` on the default file unless the flush failed.
unsafe fn flushed(
    file: *mut ffi::sqlite3_file,
    call: impl FnOnce(&ffi::sqlite3_io_methods, *mut ffi::sqlite3_file) -> c_int,
) -> c_int {
    let wal = wal(file);
    let rc = flush(wal);
    if rc != ffi::SQLITE_OK {
        return rc;
    }
    call(methods(wal), wal.inner)
}

unsafe extern "C" fn close(file: *mut ffi::sqlite3_file) -> c_int {
    let wal = wal(file);
    let flushed = flush(wal);
    let closed = match methods(wal).xClose {
        Some(close) => close(wal.inner),
        None => ffi::SQLITE_OK,
    };
    std::ptr::drop_in_place(std::ptr::addr_of_mut!(wal.pending));
    if flushed != ffi::SQLITE_OK {
        flushed
    } else {
        closed
    }
}

unsafe extern "C" fn write(
    file: *mut ffi::sqlite3_file,
    data: *const c_void,
    amount: c_int,
    offset: ffi::sqlite3_int64,
) -> c_int {
    let wal = wal(file);
    let Ok(len) = usize::try_from(amount) else {
        return ffi::SQLITE_IOERR_WRITE;
    };
    count(&WRITES_IN);
    let end = wal.start + wal.pending.len() as i64;
    if !wal.pending.is_empty() && (offset != end || wal.pending.len() + len > MAX_WRITE) {
        // Not the next append (a frame rewritten in place, the header of a restarted WAL), or
        // no room: what came before goes to the file first, so that writes land in order.
        let rc = flush(wal);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
    }
    if len > MAX_WRITE {
        // Larger than any write SQLite makes to a WAL (a frame is at most 64 KiB and 24 bytes).
        count(&WRITES_OUT);
        return methods(wal)
            .xWrite
            .map_or(ffi::SQLITE_IOERR_WRITE, |write| {
                write(wal.inner, data, amount, offset)
            });
    }
    if wal.pending.is_empty() {
        wal.start = offset;
    }
    wal.pending
        .extend_from_slice(std::slice::from_raw_parts(data.cast::<u8>(), len));
    ffi::SQLITE_OK
}

unsafe extern "C" fn read(
    file: *mut ffi::sqlite3_file,
    buf: *mut c_void,
    amount: c_int,
    offset: ffi::sqlite3_int64,
) -> c_int {
    flushed(file, |m, inner| match m.xRead {
        Some(read) => read(inner, buf, amount, offset),
        None => ffi::SQLITE_IOERR_READ,
    })
}

unsafe extern "C" fn truncate(file: *mut ffi::sqlite3_file, size: ffi::sqlite3_int64) -> c_int {
    flushed(file, |m, inner| match m.xTruncate {
        Some(truncate) => truncate(inner, size),
        None => ffi::SQLITE_IOERR_TRUNCATE,
    })
}

unsafe extern "C" fn sync(file: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    flushed(file, |m, inner| match m.xSync {
        Some(sync) => sync(inner, flags),
        None => ffi::SQLITE_IOERR_FSYNC,
    })
}

unsafe extern "C" fn file_size(
    file: *mut ffi::sqlite3_file,
    size: *mut ffi::sqlite3_int64,
) -> c_int {
    flushed(file, |m, inner| match m.xFileSize {
        Some(file_size) => file_size(inner, size),
        None => ffi::SQLITE_IOERR_FSTAT,
    })
}

unsafe extern "C" fn file_control(
    file: *mut ffi::sqlite3_file,
    op: c_int,
    arg: *mut c_void,
) -> c_int {
    flushed(file, |m, inner| match m.xFileControl {
        Some(file_control) => file_control(inner, op, arg),
        None => ffi::SQLITE_NOTFOUND,
    })
}

// The rest pass straight through.

unsafe extern "C" fn lock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    let wal = wal(file);
    methods(wal)
        .xLock
        .map_or(ffi::SQLITE_OK, |f| f(wal.inner, level))
}

unsafe extern "C" fn unlock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    let wal = wal(file);
    methods(wal)
        .xUnlock
        .map_or(ffi::SQLITE_OK, |f| f(wal.inner, level))
}

unsafe extern "C" fn check_reserved_lock(file: *mut ffi::sqlite3_file, out: *mut c_int) -> c_int {
    let wal = wal(file);
    methods(wal)
        .xCheckReservedLock
        .map_or(ffi::SQLITE_OK, |f| f(wal.inner, out))
}

unsafe extern "C" fn sector_size(file: *mut ffi::sqlite3_file) -> c_int {
    let wal = wal(file);
    methods(wal).xSectorSize.map_or(4096, |f| f(wal.inner))
}

unsafe extern "C" fn device_characteristics(file: *mut ffi::sqlite3_file) -> c_int {
    let wal = wal(file);
    methods(wal)
        .xDeviceCharacteristics
        .map_or(0, |f| f(wal.inner))
}

unsafe extern "C" fn shm_map(
    file: *mut ffi::sqlite3_file,
    region: c_int,
    size: c_int,
    extend: c_int,
    out: *mut *mut c_void,
) -> c_int {
    let wal = wal(file);
    methods(wal).xShmMap.map_or(ffi::SQLITE_IOERR_SHMMAP, |f| {
        f(wal.inner, region, size, extend, out)
    })
}

unsafe extern "C" fn shm_lock(
    file: *mut ffi::sqlite3_file,
    offset: c_int,
    n: c_int,
    flags: c_int,
) -> c_int {
    let wal = wal(file);
    methods(wal)
        .xShmLock
        .map_or(ffi::SQLITE_IOERR_SHMLOCK, |f| {
            f(wal.inner, offset, n, flags)
        })
}

unsafe extern "C" fn shm_barrier(file: *mut ffi::sqlite3_file) {
    let wal = wal(file);
    if let Some(f) = methods(wal).xShmBarrier {
        f(wal.inner);
    }
}

unsafe extern "C" fn shm_unmap(file: *mut ffi::sqlite3_file, delete: c_int) -> c_int {
    let wal = wal(file);
    methods(wal)
        .xShmUnmap
        .map_or(ffi::SQLITE_OK, |f| f(wal.inner, delete))
}

unsafe extern "C" fn fetch(
    file: *mut ffi::sqlite3_file,
    offset: ffi::sqlite3_int64,
    amount: c_int,
    out: *mut *mut c_void,
) -> c_int {
    // A mapping would show the file without the buffer.
    flushed(file, |m, inner| match m.xFetch {
        Some(fetch) => fetch(inner, offset, amount, out),
        None => {
            *out = std::ptr::null_mut();
            ffi::SQLITE_OK
        }
    })
}

unsafe extern "C" fn unfetch(
    file: *mut ffi::sqlite3_file,
    offset: ffi::sqlite3_int64,
    page: *mut c_void,
) -> c_int {
    let wal = wal(file);
    methods(wal)
        .xUnfetch
        .map_or(ffi::SQLITE_OK, |f| f(wal.inner, offset, page))
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;
    use crate::schema::{self, Durability};
    use crate::writer::tests::value;
    use crate::ScratchFiles;

    /// The writer's connection (through this VFS) on a fresh file, with the table `put` writes
    /// to, and a page cache of `cache_pages`.
    fn writer_with_table(name: &str, cache_pages: u32) -> (Connection, ScratchFiles) {
        let scratch = ScratchFiles::new(&format!("wal-buffer-{name}"));
        let writer = schema::open_writer(&scratch.0, Durability::Full).expect("writer");
        writer
            .execute_batch(&format!(
                "PRAGMA cache_size = {cache_pages};
                 CREATE TABLE t (k INTEGER PRIMARY KEY, round INTEGER, v BLOB)"
            ))
            .expect("table");
        (writer, scratch)
    }

    /// Row `k`'s value in its `round`: 4,000 bytes, nearly a page, that differ by row and round.
    fn content(k: i64, round: i64) -> Vec<u8> {
        (0..4000i64)
            .map(|i| u8::try_from((i * 7 + k * 13 + round * 31) % 251).unwrap_or(0))
            .collect()
    }

    fn put(conn: &Connection, k: i64, round: i64) {
        conn.execute(
            "INSERT OR REPLACE INTO t (k, round, v) VALUES (?1, ?2, ?3)",
            (k, round, content(k, round)),
        )
        .expect("put");
    }

    /// Every row as another connection reads it, compared with what was written.
    fn assert_all_read_back(reader: &Connection, rows: i64) {
        assert_eq!(value::<String>(reader, "PRAGMA integrity_check"), "ok");
        let mut select = reader
            .prepare("SELECT k, round, v FROM t ORDER BY k")
            .expect("select");
        let read: Vec<(i64, i64, Vec<u8>)> = select
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert_eq!(read.len(), usize::try_from(rows).expect("rows"));
        for (k, round, v) in read {
            assert!(v == content(k, round), "row {k} of round {round} differs");
        }
    }

    fn writes() -> (u64, u64) {
        (WRITES_IN.with(Cell::get), WRITES_OUT.with(Cell::get))
    }

    #[test]
    fn commits_of_any_size_reach_other_connections_whole() {
        let (writer, scratch) = writer_with_table("sizes", 2000);
        let reader = schema::open_reader(&scratch.0).expect("reader");
        let (in_before, out_before) = writes();
        let mut rows = 0;
        // Around one write's worth of frames (31 of 4 KiB), and past several.
        for pages in [1, 30, 31, 32, 33, 64, 300] {
            writer.execute_batch("BEGIN IMMEDIATE").expect("begin");
            for k in rows..rows + pages {
                put(&writer, k, 0);
            }
            writer.execute_batch("COMMIT").expect("commit");
            rows += pages;
            assert_all_read_back(&reader, rows);
        }
        let (sqlite_writes, file_writes) = (writes().0 - in_before, writes().1 - out_before);
        // Two writes a frame became one per ~31 frames.
        assert!(
            file_writes * 10 < sqlite_writes,
            "{sqlite_writes} writes became {file_writes}"
        );
    }

    #[test]
    fn pages_spilled_before_the_commit_read_back_within_the_transaction() {
        // A cache of 8 pages: the transaction's pages go to the WAL (the buffer) as it runs,
        // leave the cache, and are read back from there before the commit.
        let (writer, scratch) = writer_with_table("spills", 8);
        writer.execute_batch("BEGIN IMMEDIATE").expect("begin");
        for k in 0..20 {
            put(&writer, k, 1);
        }
        assert_all_read_back(&writer, 20);
        writer.execute_batch("COMMIT").expect("commit");
        let reader = schema::open_reader(&scratch.0).expect("reader");
        assert_all_read_back(&reader, 20);
    }

    #[test]
    fn spilled_and_rewritten_frames_restarts_and_rollbacks_land_in_order() {
        // A cache of 8 pages: a transaction's pages spill to the WAL before its commit, and
        // SQLite rewrites a spilled page's frame in place when it changes again.
        let (writer, scratch) = writer_with_table("rewrites", 8);
        let reader = schema::open_reader(&scratch.0).expect("reader");
        let checkpointer = schema::open_checkpointer(&scratch.0, Durability::Full).expect("ckpt");
        for round in 0..4 {
            writer.execute_batch("BEGIN IMMEDIATE").expect("begin");
            for pass in 0..3 {
                for k in 0..40 {
                    put(&writer, k, round * 10 + pass);
                }
            }
            // A savepoint rolled back: its frames are written over by what follows.
            writer.execute_batch("SAVEPOINT s").expect("savepoint");
            for k in 0..40 {
                put(&writer, k, 999);
            }
            writer
                .execute_batch("ROLLBACK TO s; RELEASE s")
                .expect("rollback to");
            writer.execute_batch("COMMIT").expect("commit");
            assert_all_read_back(&reader, 40);
            let round_read: i64 = value(&reader, "SELECT MIN(round) FROM t");
            assert_eq!(round_read, round * 10 + 2);
            // A whole transaction rolled back.
            writer.execute_batch("BEGIN IMMEDIATE").expect("begin");
            for k in 0..40 {
                put(&writer, k, 998);
            }
            writer.execute_batch("ROLLBACK").expect("rollback");
            assert_all_read_back(&reader, 40);
            // Every frame checkpointed (but in the last round): the next commit starts the
            // WAL over from its header.
            if round < 3 {
                let busy: i64 = value(&checkpointer, "PRAGMA wal_checkpoint(PASSIVE)");
                assert_eq!(busy, 0);
            }
        }
        // What a crash would leave: the database and the WAL as they are now. Opening the copy
        // recovers the last round's commit from the WAL, which checks every frame's checksum.
        let crashed = ScratchFiles::new("wal-buffer-rewrites-crashed");
        for suffix in ["", "-wal"] {
            let from = format!("{}{suffix}", scratch.0.display());
            let to = format!("{}{suffix}", crashed.0.display());
            std::fs::copy(from, to).expect("copy");
        }
        let recovered = Connection::open(&crashed.0).expect("recovered");
        assert_all_read_back(&recovered, 40);
        assert_eq!(value::<i64>(&recovered, "SELECT MIN(round) FROM t"), 32);
        writer
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .expect("truncate");
        put(&writer, 40, 7);
        drop((writer, checkpointer, reader));
        // Reopened with the default VFS, as after a clean restart.
        let reopened = Connection::open(&scratch.0).expect("reopen");
        assert_all_read_back(&reopened, 41);
    }
}
