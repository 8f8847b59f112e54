//! Connecting, and the versioned migrations.

use confab_core::ports::{StoreError, StoreResult};
use postgres::{Client, Config, NoTls};

use crate::db::{DbResult, ReadConn};

/// The migrations, in order. Migration `i` (0-based) takes the schema from version `i` to
/// `i + 1`. Append only: never edit one that has shipped.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_init.sql"),
    include_str!("../migrations/0002_identities_in_byte_order.sql"),
];

/// The schema version this build writes.
pub(crate) const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Opens one connection, with the two planner settings confab's statements want:
///
/// * `plan_cache_mode = force_generic_plan`: a statement is planned once, when first prepared.
///   confab's statements are the same few run again and again, each a key lookup or a keyed
///   range for which the generic plan is the plan, and a custom plan at every bind cost more
///   than running them (~0.2 ms for the group append, ~25 µs for a membership check).
/// * `enable_bitmapscan = off`: every read walks an index in its order and stops after a page.
///   Where the planner guesses a handful of rows (a table not yet analyzed, or a thread far
///   bigger than the average one), it preferred a bitmap scan: every row of the thread fetched
///   and sorted for a page of 50 (180 ms on a thread of 100,000 messages, against 0.1 ms for
///   the walk).
pub(crate) fn connect(config: &Config) -> StoreResult<Client> {
    let mut client = config.connect(NoTls).db()?;
    client.batch_execute(PLANNER_SETTINGS).db()?;
    Ok(client)
}

/// What [`connect`] sets (see there).
const PLANNER_SETTINGS: &str =
    "SET plan_cache_mode = force_generic_plan; SET enable_bitmapscan = off";

/// [`connect`] for the read pool: an async client, on confab's own runtime. Its connection runs
/// as a task of that runtime until the client is dropped.
pub(crate) async fn connect_reader(config: &tokio_postgres::Config) -> StoreResult<ReadConn> {
    let (client, connection) = config.connect(NoTls).await.db()?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::warn!(error = %err, "a PostgreSQL read connection failed");
        }
    });
    client.batch_execute(PLANNER_SETTINGS).await.db()?;
    Ok(ReadConn::new(client))
}

/// Applies the migrations the database lacks, each in its own transaction together with the
/// version bump. Several nodes may start at once against a new database: the transaction
/// takes an advisory lock (keyed by the schema, so that stores in other schemas of the same
/// database are not held up) before it reads the version, so only one applies a migration
/// and the others then find it applied.
pub(crate) fn migrate(client: &mut Client) -> StoreResult<()> {
    loop {
        let mut tx = client.transaction().db()?;
        tx.batch_execute(
            "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.confab_schema'));
             CREATE TABLE IF NOT EXISTS confab_schema (version BIGINT NOT NULL);",
        )
        .db()?;
        let current: i64 = tx
            .query_opt("SELECT version FROM confab_schema", &[])
            .db()?
            .map_or(Ok(0), |row| row.try_get(0))
            .db()?;
        if current > SCHEMA_VERSION {
            return Err(StoreError::Unavailable(format!(
                "database schema version {current} is newer than this build's ({SCHEMA_VERSION})"
            )));
        }
        let Some(sql) = usize::try_from(current)
            .ok()
            .and_then(|i| MIGRATIONS.get(i))
        else {
            return Ok(()); // up to date; dropping `tx` rolls the empty transaction back
        };
        tx.batch_execute(sql).db()?;
        tx.execute("DELETE FROM confab_schema", &[]).db()?;
        tx.execute(
            "INSERT INTO confab_schema (version) VALUES ($1)",
            &[&(current + 1)],
        )
        .db()?;
        tx.commit().db()?;
        tracing::info!(version = current + 1, "postgres schema migrated");
    }
}
