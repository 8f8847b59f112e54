//! WAL checkpoints, off the write path.
//!
//! SQLite's automatic checkpoint runs inside the COMMIT that crosses the threshold: the writer
//! would stop to copy pages into the database file and fsync it, stalling every queued write.
//! Instead the writer pokes this thread after each commit, and it runs PASSIVE checkpoints (which
//! never block the writer or readers) on its own connection, at most one per [`PAUSE`].

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use confab_core::ports::{StoreError, StoreResult};
use rusqlite::Connection;

use crate::schema::{self, Durability};

/// The longest rest between two checkpoints under load.
const PAUSE: Duration = Duration::from_millis(25);
/// The shortest.
const MIN_PAUSE: Duration = Duration::from_millis(5);
/// About how many WAL frames one checkpoint should carry. The writer's WAL syncs queue on the
/// disk behind each checkpoint's fsync of the database file, so the rest between checkpoints
/// shrinks as writes come faster (it is set from the rate since the previous one), within
/// [`MIN_PAUSE`]..[`PAUSE`]. Measured at 64 connections (2 vCPUs, one virtual disk): a fixed
/// 5 ms pause cut the p99 of sends over 1,000 threads from 13–15 ms to ~8 ms but cost the mixed
/// reads-and-sends scenario 15 % (a checkpoint costs an fsync whatever it carries); paced by the
/// rate, sends over many threads get the short pauses and the mixed scenario keeps the long ones.
const FRAMES_PER_CHECKPOINT: f64 = 300.0;

/// What the writer and the checkpointer thread share. The thread parks and is unparked: a
/// channel's receive spun before it slept, ~2 % of a send's server time on a thread that
/// mostly waits.
#[derive(Default)]
struct Signals {
    /// Set by every commit; taken by the thread when it decides on a checkpoint, so that the
    /// pokes of the commits made meanwhile fold into one.
    poked: AtomicBool,
    /// The writer has gone: stop.
    closed: AtomicBool,
}

pub(crate) struct Checkpointer {
    signals: Arc<Signals>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    pub(crate) fn start(path: &Path, durability: Durability) -> StoreResult<Self> {
        let conn = schema::open_checkpointer(path, durability)?;
        let signals = Arc::new(Signals::default());
        let thread = std::thread::Builder::new()
            .name("confab-sqlite-checkpoint".into())
            .spawn({
                let signals = Arc::clone(&signals);
                move || run(&conn, &signals)
            })
            .map_err(|e| StoreError::Unavailable(format!("cannot start the checkpointer: {e}")))?;
        Ok(Self {
            signals,
            thread: Some(thread),
        })
    }

    /// Says that there are new commits. Never blocks; wakes the thread only for the first
    /// poke since it last looked.
    pub(crate) fn poke(&self) {
        if !self.signals.poked.swap(true, Ordering::AcqRel) {
            if let Some(thread) = &self.thread {
                thread.thread().unpark();
            }
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.signals.closed.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            if thread.join().is_err() {
                tracing::error!("the checkpointer thread panicked");
            }
        }
    }
}

/// Sleeps until poked; false once the writer has gone.
fn wait_for_poke(signals: &Signals) -> bool {
    loop {
        if signals.closed.load(Ordering::Acquire) {
            return false;
        }
        if signals.poked.load(Ordering::Acquire) {
            return true;
        }
        // A wakeup between the loads and here is not lost: unpark before park makes park
        // return at once.
        std::thread::park();
    }
}

/// Sleeps until `deadline`; false if the writer went meanwhile.
fn rest_until(signals: &Signals, deadline: Instant) -> bool {
    loop {
        if signals.closed.load(Ordering::Acquire) {
            return false;
        }
        let now = Instant::now();
        if now >= deadline {
            return true;
        }
        std::thread::park_timeout(deadline - now);
    }
}

fn run(conn: &Connection, signals: &Signals) {
    let mut last: Option<Instant> = None;
    let mut pause = PAUSE;
    let mut wal_frames = 0;
    while wait_for_poke(signals) {
        // Rest until the pause has passed since the last checkpoint; pokes meanwhile fold into
        // the coming one.
        if let Some(deadline) = last.map(|at| at + pause) {
            if !rest_until(signals, deadline) {
                return;
            }
        }
        // Taken before the checkpoint looks at the WAL: a commit after this point pokes again.
        signals.poked.store(false, Ordering::Release);
        let started = Instant::now();
        if let Some(frames) = checkpoint(conn) {
            // A smaller WAL than before means the writer started it over (one that started over
            // and outgrew the old size is undercounted once; the next rate corrects it).
            let appended = if frames >= wal_frames {
                frames - wal_frames
            } else {
                frames
            };
            wal_frames = frames;
            if let Some(at) = last {
                pause = next_pause(appended, started - at);
            }
        }
        last = Some(started);
    }
}

/// The rest before the next checkpoint, for `appended` frames in `elapsed` since the last.
fn next_pause(appended: i64, elapsed: Duration) -> Duration {
    let per_second = appended as f64 / elapsed.as_secs_f64().max(1e-3);
    if per_second <= 0.0 {
        return PAUSE;
    }
    Duration::from_secs_f64(FRAMES_PER_CHECKPOINT / per_second).clamp(MIN_PAUSE, PAUSE)
}

/// Runs a PASSIVE checkpoint; answers the frames in the WAL, when it could look.
fn checkpoint(conn: &Connection) -> Option<i64> {
    let result = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        Ok((row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
    });
    match result {
        Ok((frames, copied)) => {
            tracing::trace!(frames, copied, "wal checkpoint");
            (frames >= 0).then_some(frames)
        }
        Err(err) => {
            tracing::warn!(error = %err, "wal checkpoint failed");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::{next_pause, Checkpointer, MIN_PAUSE, PAUSE};
    use crate::schema::{self, Durability};

    #[test]
    fn a_poke_gets_the_commits_copied_into_the_database_and_a_drop_stops_the_thread() {
        let scratch = crate::ScratchFiles::new("checkpoint");
        let path = scratch.0.clone();
        let conn = schema::open_writer(&path, Durability::Off).expect("open");
        let db_bytes = || std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        conn.execute_batch(
            "CREATE TABLE filler (n INTEGER PRIMARY KEY, pad TEXT);
             WITH RECURSIVE k(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM k WHERE n < 2000)
             INSERT INTO filler SELECT n, printf('%.500c', 'x') FROM k;",
        )
        .expect("fill");
        // The commit sits in the WAL (the writer's own automatic checkpoint is far off).
        let before = db_bytes();

        let checkpointer = Checkpointer::start(&path, Durability::Off).expect("start");
        checkpointer.poke();
        let deadline = Instant::now() + Duration::from_secs(10);
        while db_bytes() <= before && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            db_bytes() > before + 500_000,
            "the checkpoint copied the pages"
        );
        // Dropping it wakes the parked thread and joins it.
        drop(checkpointer);
    }

    #[test]
    fn the_pause_shrinks_as_writes_come_faster() {
        let ms = Duration::from_millis;
        // Nothing or little written: the longest pause.
        assert_eq!(next_pause(0, ms(25)), PAUSE);
        assert_eq!(next_pause(100, ms(25)), PAUSE);
        // 300 frames in 20 ms: the next checkpoint after 20 ms carries about 300 again.
        assert_eq!(next_pause(300, ms(20)), ms(20));
        assert_eq!(next_pause(600, ms(20)), ms(10));
        // Very fast writes: never below the shortest pause.
        assert_eq!(next_pause(100_000, ms(25)), MIN_PAUSE);
        // A clock that did not move does not divide by zero.
        assert_eq!(next_pause(300, Duration::ZERO), MIN_PAUSE);
    }
}
