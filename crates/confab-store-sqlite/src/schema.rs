//! Opening connections (pragmas) and the versioned migrations.

use std::path::Path;
use std::time::Duration;

use confab_core::ports::{StoreError, StoreResult};
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::codec::DbResult;

/// The migrations, in order. Migration `i` (0-based) takes `PRAGMA user_version` from `i` to
/// `i + 1`. Append only: never edit one that has shipped.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_init.sql"),
    include_str!("../migrations/0002_kaizala.sql"),
    include_str!("../migrations/0003_subgroups_subscribers.sql"),
    include_str!("../migrations/0004_stream.sql"),
    include_str!("../migrations/0005_media.sql"),
    include_str!("../migrations/0006_actions.sql"),
    include_str!("../migrations/0007_webhooks.sql"),
    include_str!("../migrations/0008_event_subscriptions.sql"),
    include_str!("../migrations/0009_changed_messages_index.sql"),
    include_str!("../migrations/0010_messages_without_sequence_index.sql"),
    include_str!("../migrations/0011_conversation_activity_from_messages.sql"),
    include_str!("../migrations/0012_messages_clustered_by_conversation.sql"),
    include_str!("../migrations/0013_message_bodies.sql"),
];

/// The schema version this build writes.
pub(crate) const SCHEMA_VERSION: usize = MIGRATIONS.len();

/// Prepared statements kept per connection. The writer uses about 30 distinct statements; the
/// default (16) would evict on the hot path.
const STATEMENT_CACHE: usize = 64;

/// How long a connection waits on a lock held by another connection (checkpoints, WAL
/// recovery, a second process) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How hard a commit tries to reach the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Durability {
    /// `synchronous=FULL`: a commit survives power loss. With WAL and group commit this is one
    /// fsync per batch, not per write. The product promises "a 201 means committed".
    Full,
    /// `synchronous=OFF`: for the throw-away store of `SqliteStore::in_memory`.
    Off,
}

impl Durability {
    fn synchronous(self) -> &'static str {
        match self {
            Durability::Full => "FULL",
            Durability::Off => "OFF",
        }
    }
}

/// WAL size (pages) at which the writer checkpoints by itself: 40 MiB at 4 KiB pages.
const WAL_BACKSTOP_PAGES: u32 = 10_000;

/// Opens a connection: every connection of the store opens here, so that the page cache
/// wrapper (`pcache.rs`) is in place before SQLite initializes (registering the WAL buffer VFS
/// initializes it). With `buffer_wal`, through the VFS that gathers a commit's WAL appends into
/// one write (`wal_buffer.rs`): for the writer under `synchronous = FULL` only, where every
/// commit syncs.
fn open(path: &Path, flags: OpenFlags, buffer_wal: bool) -> StoreResult<Connection> {
    crate::pcache::install();
    if buffer_wal && crate::wal_buffer::register() {
        Connection::open_with_flags_and_vfs(path, flags, crate::wal_buffer::NAME).db()
    } else {
        Connection::open_with_flags(path, flags).db()
    }
}

/// Opens the one read-write connection, sets it up and brings the schema up to date.
pub(crate) fn open_writer(path: &Path, durability: Durability) -> StoreResult<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = open(path, flags, durability == Durability::Full)?;
    keep_plans(&conn)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.busy_timeout(BUSY_TIMEOUT).db()?;
    // WAL: readers never block the writer nor the writer the readers, and a commit appends to
    // one file instead of rewriting pages in place.
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .db()?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Unavailable(format!(
            "sqlite: could not switch {} to WAL (journal mode {mode})",
            path.display()
        )));
    }
    // The checkpointer thread keeps the WAL short; this automatic checkpoint (which would run
    // inside a commit) is only the backstop should it fall behind.
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {};
         PRAGMA wal_autocheckpoint = {WAL_BACKSTOP_PAGES};
         PRAGMA foreign_keys = OFF;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -32768;",
        durability.synchronous()
    ))
    .db()?;
    migrate(&mut conn)?;
    Ok(conn)
}

/// Opens the checkpointer's connection. A checkpoint syncs the database file according to the
/// connection's own `synchronous`, hence the durability.
pub(crate) fn open_checkpointer(path: &Path, durability: Durability) -> StoreResult<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = open(path, flags, false)?;
    conn.busy_timeout(BUSY_TIMEOUT).db()?;
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {}; PRAGMA wal_autocheckpoint = 0;",
        durability.synchronous()
    ))
    .db()?;
    Ok(conn)
}

/// Keeps cached statements prepared. Without the query planner stability guarantee SQLite
/// marks a statement whose plan may depend on a bound value (a `LIMIT ?`, a parameter compared
/// with a partial index's condition) and re-parses and re-plans it on every new binding, which
/// is on every use: a third of the cost of a page of messages.
fn keep_plans(conn: &Connection) -> StoreResult<()> {
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .db()?;
    Ok(())
}

/// Opens a read-only connection for the read pool.
pub(crate) fn open_reader(path: &Path) -> StoreResult<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = open(path, flags, false)?;
    keep_plans(&conn)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.busy_timeout(BUSY_TIMEOUT).db()?;
    // 2 MiB each: a reader's hot pages (the interior pages and the leaves of the pages being
    // listed) fit, and a miss is a copy from the OS page cache, shared by all. With 8 MiB the
    // pool's caches filled to 64 MiB of private copies under mixed load, for no measurable
    // gain in pages/s.
    conn.execute_batch("PRAGMA cache_size = -2048;").db()?;
    Ok(conn)
}

/// Applies the migrations the database lacks, each in its own transaction together with the
/// version bump. The version is read inside the (immediate) transaction, so two processes
/// opening the same new file cannot both apply a migration.
pub(crate) fn migrate(conn: &mut Connection) -> StoreResult<()> {
    loop {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .db()?;
        let current: i64 = tx
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .db()?;
        let current = usize::try_from(current)
            .map_err(|_| StoreError::Unavailable(format!("bad schema version {current}")))?;
        if current > SCHEMA_VERSION {
            return Err(StoreError::Unavailable(format!(
                "database schema version {current} is newer than this build's ({SCHEMA_VERSION})"
            )));
        }
        let Some(sql) = MIGRATIONS.get(current) else {
            return Ok(()); // up to date; dropping `tx` ends the empty transaction
        };
        tx.execute_batch(sql).db()?;
        // PRAGMA does not take bound parameters; the value is our own integer.
        tx.execute_batch(&format!("PRAGMA user_version = {}", current + 1))
            .db()?;
        tx.commit().db()?;
        tracing::info!(version = current + 1, "sqlite schema migrated");
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::types::Value;

    use super::*;

    /// An in-memory database migrated up to, not including, the migration whose SQL contains
    /// `marker`; answers it and that migration's index.
    fn migrated_before(marker: &str) -> (Connection, usize) {
        let conn = Connection::open_in_memory().expect("db");
        let at = MIGRATIONS
            .iter()
            .position(|sql| sql.contains(marker))
            .expect("the migration");
        for sql in &MIGRATIONS[..at] {
            conn.execute_batch(sql).expect("earlier migration");
        }
        (conn, at)
    }

    fn rows(conn: &Connection, sql: &str) -> Vec<Vec<Value>> {
        let mut stmt = conn.prepare(sql).expect("prepare");
        let width = stmt.column_count();
        stmt.query_map([], |row| (0..width).map(|i| row.get(i)).collect())
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    }

    #[test]
    fn the_messages_rebuild_keeps_every_row_and_drops_only_the_sequence_index() {
        let (conn, rebuild) = migrated_before("CREATE TABLE messages_rebuilt");
        conn.execute_batch(
            "INSERT INTO messages (id, conversation, sequence_id, kind, content, sender,
                 sender_display_name, metadata, version, created_on, edited_on, deleted_on,
                 changed_on, audience)
             VALUES (10, x'01', 1, 'text', '{\"text\":\"a\"}', '8:acs:r_a', 'A', '{\"k\":\"v\"}',
                     10, 10, NULL, NULL, 10, NULL),
                    (11, x'01', 2, 'text', '{\"text\":\"b\"}', '8:acs:r_b', NULL, NULL,
                     15, 11, 15, NULL, 15, '*'),
                    (12, x'02', 1, 'html', '{}', NULL, NULL, NULL, 16, 12, NULL, 16, 16,
                     '[\"8:acs:r_c\"]');",
        )
        .expect("rows");
        let all = "SELECT * FROM messages ORDER BY id";
        let before = rows(&conn, all);
        conn.execute_batch(MIGRATIONS[rebuild]).expect("rebuild");
        assert_eq!(rows(&conn, all), before);
        let indexes = rows(
            &conn,
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'messages'
             ORDER BY name",
        );
        assert_eq!(
            indexes,
            vec![
                vec![Value::Text("messages_by_change".into())],
                vec![Value::Text("messages_by_conversation".into())],
            ]
        );
        // The partial index still holds only the changed messages.
        let changed: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM messages INDEXED BY messages_by_change
                 WHERE conversation = x'01' AND (edited_on IS NOT NULL OR deleted_on IS NOT NULL)",
                [],
                |row| row.get(0),
            )
            .expect("count");
        assert_eq!(changed, 1);
    }

    #[test]
    fn the_clustered_messages_table_keeps_every_row_in_conversation_order() {
        let (conn, cluster) = migrated_before("CREATE TABLE messages_clustered");
        conn.execute_batch(
            "INSERT INTO messages (id, conversation, sequence_id, kind, content, sender,
                 sender_display_name, metadata, version, created_on, edited_on, deleted_on,
                 changed_on, audience)
             VALUES (10, x'02', 1, 'text', '{\"text\":\"a\"}', '8:acs:r_a', 'A', '{\"k\":\"v\"}',
                     10, 10, NULL, NULL, 10, NULL),
                    (11, x'01', 1, 'text', '{\"text\":\"b\"}', '8:acs:r_b', NULL, NULL,
                     15, 11, 15, NULL, 15, '*'),
                    (12, x'02', 2, 'html', '{}', NULL, NULL, NULL, 16, 12, NULL, 16, 16,
                     '[\"8:acs:r_c\"]');",
        )
        .expect("rows");
        let all = "SELECT * FROM messages ORDER BY id";
        let before = rows(&conn, all);
        conn.execute_batch(MIGRATIONS[cluster]).expect("migration");
        assert_eq!(rows(&conn, all), before);
        // Stored by (conversation, id): a plain scan meets each conversation's rows together.
        let order = rows(&conn, "SELECT id FROM messages");
        assert_eq!(
            order,
            vec![
                vec![Value::Integer(11)],
                vec![Value::Integer(10)],
                vec![Value::Integer(12)]
            ]
        );
        let indexes = rows(
            &conn,
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'messages'
             AND sql IS NOT NULL ORDER BY name",
        );
        assert_eq!(
            indexes,
            vec![vec![Value::Text("messages_by_change".into())]]
        );
        // The same message cannot be stored twice.
        assert!(conn
            .execute_batch(
                "INSERT INTO messages (id, conversation, sequence_id, kind, content, version,
                     created_on, changed_on)
                 VALUES (10, x'02', 9, 'text', '{}', 10, 10, 10)"
            )
            .is_err());
    }

    #[test]
    fn the_activity_columns_go_and_the_newest_message_holds_their_values() {
        let (conn, drop) = migrated_before("DROP COLUMN last_message_on");
        // What the writer kept before: the newest message's time and sequence id.
        conn.execute_batch(
            "INSERT INTO conversations (id, topic, created_by, created_on, last_message_on,
                 last_sequence_id, kind)
             VALUES (x'01', 't', '8:acs:r_a', 5, 12, 2, 'chat'),
                    (x'02', 'u', '8:acs:r_a', 6, 13, 1, 'chat');
             INSERT INTO messages (id, conversation, sequence_id, kind, content, version,
                 created_on, changed_on)
             VALUES (10, x'01', 1, 'text', '{}', 10, 10, 10),
                    (11, x'02', 1, 'text', '{}', 11, 13, 13),
                    (12, x'01', 2, 'text', '{}', 12, 12, 12);",
        )
        .expect("rows");
        let kept = "SELECT id, topic, created_by, created_on, kind FROM conversations ORDER BY id";
        let before = rows(&conn, kept);
        conn.execute_batch(MIGRATIONS[drop]).expect("migration");
        assert_eq!(rows(&conn, kept), before);
        let columns = rows(&conn, "SELECT name FROM pragma_table_info('conversations')");
        assert!(!columns.contains(&vec![Value::Text("last_message_on".into())]));
        assert!(!columns.contains(&vec![Value::Text("last_sequence_id".into())]));
        let derived = rows(
            &conn,
            &format!(
                "SELECT {} FROM conversations AS c ORDER BY c.id",
                crate::codec::last_message_on!()
            ),
        );
        assert_eq!(
            derived,
            vec![vec![Value::Integer(12)], vec![Value::Integer(13)]]
        );
    }

    /// `.cargo/config.toml` passes SQLite's compile-time options to the bundled build; this
    /// fails if they stop reaching it.
    #[test]
    fn sqlite_is_built_without_memory_statistics() {
        let conn = Connection::open_in_memory().expect("db");
        let used: bool = conn
            .query_row(
                "SELECT sqlite_compileoption_used('DEFAULT_MEMSTATUS=0')",
                [],
                |row| row.get(0),
            )
            .expect("compile options");
        assert!(used);
    }
}
