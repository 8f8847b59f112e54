//! WAL checkpoints, off the write path.
//!
//! SQLite's automatic checkpoint runs inside the COMMIT that crosses the threshold: the writer
//! would stop to copy pages into the database file and fsync it, stalling every queued write.
//! Instead the writer pokes this thread after each commit, and it runs PASSIVE checkpoints (which
//! never block the writer or readers) on its own connection, at most one per [`PAUSE`].

use std::path::Path;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use confab_core::ports::{StoreError, StoreResult};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use rusqlite::Connection;

use crate::schema::{self, Durability};

/// The shortest time between two checkpoints under load.
const PAUSE: Duration = Duration::from_millis(100);

pub(crate) struct Checkpointer {
    /// A one-slot channel: pokes coalesce while a checkpoint runs.
    poke: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    pub(crate) fn start(path: &Path, durability: Durability) -> StoreResult<Self> {
        let conn = schema::open_checkpointer(path, durability)?;
        let (poke, pokes) = crossbeam_channel::bounded(1);
        let thread = std::thread::Builder::new()
            .name("confab-sqlite-checkpoint".into())
            .spawn(move || run(&conn, &pokes))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the checkpointer: {e}")))?;
        Ok(Self {
            poke: Some(poke),
            thread: Some(thread),
        })
    }

    /// Says that there are new commits. Never blocks.
    pub(crate) fn poke(&self) {
        if let Some(poke) = &self.poke {
            match poke.try_send(()) {
                Ok(()) | Err(TrySendError::Full(())) => {}
                Err(TrySendError::Disconnected(())) => {
                    tracing::warn!("the checkpointer has stopped");
                }
            }
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.poke.take());
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the checkpointer thread panicked");
            }
        }
    }
}

fn run(conn: &Connection, pokes: &Receiver<()>) {
    let mut last: Option<Instant> = None;
    while pokes.recv().is_ok() {
        // Rest until PAUSE has passed since the last checkpoint; pokes meanwhile fold into the
        // coming one. Leave at once if the writer has gone.
        if let Some(deadline) = last.map(|at| at + PAUSE) {
            while Instant::now() < deadline {
                if let Err(RecvTimeoutError::Disconnected) = pokes.recv_deadline(deadline) {
                    return;
                }
            }
        }
        checkpoint(conn);
        last = Some(Instant::now());
    }
}

fn checkpoint(conn: &Connection) {
    let result = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        Ok((row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
    });
    match result {
        Ok((frames, copied)) => tracing::trace!(frames, copied, "wal checkpoint"),
        Err(err) => tracing::warn!(error = %err, "wal checkpoint failed"),
    }
}
