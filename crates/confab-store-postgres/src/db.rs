//! A connection with its prepared statements, and PostgreSQL errors as the store's.

use std::collections::HashMap;

use confab_core::ids::IdentityId;
use confab_core::ports::{StoreError, StoreResult};
use confab_store_common::stored::from_micros;
use postgres::types::{FromSql, ToSql};
use postgres::{Client, Row, Statement};
use time::OffsetDateTime;

/// Maps a PostgreSQL failure to the store's error. Violations that mean something to the
/// caller are mapped where they can happen; everything else is the store being unavailable.
pub(crate) fn db_err(err: postgres::Error) -> StoreError {
    StoreError::Unavailable(format!("postgres: {err}"))
}

/// `.db()?` instead of `.map_err(db_err)?` everywhere.
pub(crate) trait DbResult<T> {
    fn db(self) -> StoreResult<T>;
}

impl<T> DbResult<T> for Result<T, postgres::Error> {
    fn db(self) -> StoreResult<T> {
        self.map_err(db_err)
    }
}

/// Bound parameters, as the client takes them.
pub(crate) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// A connection that prepares each statement once. Without it every query would be parsed and
/// planned again, in an extra round trip (the client prepares an unnamed statement per call).
pub(crate) struct Conn {
    client: Client,
    statements: HashMap<&'static str, Statement>,
}

impl Conn {
    pub(crate) fn new(client: Client) -> Self {
        Self {
            client,
            statements: HashMap::new(),
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// The prepared form of `sql` (prepared on first use).
    fn prepared(&mut self, sql: &'static str) -> StoreResult<Statement> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql).db()?;
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }

    pub(crate) fn query(&mut self, sql: &'static str, params: Params<'_>) -> StoreResult<Vec<Row>> {
        let statement = self.prepared(sql)?;
        self.client.query(&statement, params).db()
    }

    pub(crate) fn query_opt(
        &mut self,
        sql: &'static str,
        params: Params<'_>,
    ) -> StoreResult<Option<Row>> {
        let statement = self.prepared(sql)?;
        self.client.query_opt(&statement, params).db()
    }

    pub(crate) fn query_one(&mut self, sql: &'static str, params: Params<'_>) -> StoreResult<Row> {
        let statement = self.prepared(sql)?;
        self.client.query_one(&statement, params).db()
    }

    /// Runs a statement; answers the rows it changed.
    pub(crate) fn execute(&mut self, sql: &'static str, params: Params<'_>) -> StoreResult<u64> {
        let statement = self.prepared(sql)?;
        self.client.execute(&statement, params).db()
    }

    /// Runs statements without parameters (transaction control, schema changes).
    pub(crate) fn batch(&mut self, sql: &str) -> StoreResult<()> {
        self.client.batch_execute(sql).db()
    }
}

/// Column `idx` of `row`, as `T`.
pub(crate) fn get<'a, T: FromSql<'a>>(row: &'a Row, idx: usize) -> StoreResult<T> {
    row.try_get(idx).db()
}

/// Column `idx` of `row`: a stored time (integer microseconds).
pub(crate) fn time_at(row: &Row, idx: usize) -> StoreResult<OffsetDateTime> {
    let us: i64 = get(row, idx)?;
    from_micros(us).ok_or_else(|| StoreError::Unavailable(format!("stored time {us} out of range")))
}

/// Column `idx` of `row`: an identity's raw id.
pub(crate) fn identity_at(row: &Row, idx: usize) -> StoreResult<IdentityId> {
    let raw: &str = get(row, idx)?;
    IdentityId::parse(raw)
        .ok_or_else(|| StoreError::Unavailable(format!("stored identity {raw:?}")))
}

/// Column `idx` of `row`: a 32-byte hash.
pub(crate) fn hash_at(row: &Row, idx: usize) -> StoreResult<[u8; 32]> {
    let bytes: &[u8] = get(row, idx)?;
    bytes
        .try_into()
        .map_err(|_| StoreError::Unavailable(format!("stored hash of {} bytes", bytes.len())))
}
