//! A connection with its prepared statements, and PostgreSQL errors as the store's.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use confab_core::ids::{ConversationId, IdentityId};
use confab_core::ports::{StoreError, StoreResult};
use confab_store_common::stored::{conversation_from_key, from_micros};
use postgres::error::SqlState;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::{FromSql, ToSql};
use postgres::{Client, Row, Statement};
use time::OffsetDateTime;

/// Maps a PostgreSQL failure to the store's error. Violations that mean something to the
/// caller are mapped where they can happen; everything else is the store being unavailable.
pub(crate) fn db_err(err: postgres::Error) -> StoreError {
    // The client's own text of a server error is only "db error"; the server's says what.
    match err.as_db_error() {
        // A NUL character in a text parameter: the caller's input, not the store's failure.
        Some(db)
            if *db.code() == SqlState::CHARACTER_NOT_IN_REPERTOIRE
                || *db.code() == SqlState::UNTRANSLATABLE_CHARACTER =>
        {
            StoreError::InvalidText
        }
        Some(db) => {
            StoreError::Unavailable(format!("postgres: {} ({})", db.message(), db.code().code()))
        }
        None => StoreError::Unavailable(format!("postgres: {err}")),
    }
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
///
/// Its methods take `&self`, like a rusqlite connection's, so that the writer's helpers (and
/// the shared outbox, which reads through `&self`) can query while holding other parts of the
/// writer. A connection is only ever used by one thread at a time, and every call ends its
/// borrow before it returns (rows are owned), so the cells never see a second borrow.
pub(crate) struct Conn {
    client: RefCell<Client>,
    statements: RefCell<HashMap<String, Statement>>,
}

impl Conn {
    pub(crate) fn new(client: Client) -> Self {
        Self {
            client: RefCell::new(client),
            statements: RefCell::new(HashMap::new()),
        }
    }

    /// The prepared form of `sql` (prepared on first use).
    fn prepared(&self, sql: &str) -> StoreResult<Statement> {
        if let Some(statement) = self.statements.borrow().get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.borrow_mut().prepare(sql).db()?;
        self.statements
            .borrow_mut()
            .insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    pub(crate) fn query(&self, sql: &str, params: Params<'_>) -> StoreResult<Vec<Row>> {
        let statement = self.prepared(sql)?;
        self.client.borrow_mut().query(&statement, params).db()
    }

    pub(crate) fn query_opt(&self, sql: &str, params: Params<'_>) -> StoreResult<Option<Row>> {
        let statement = self.prepared(sql)?;
        self.client.borrow_mut().query_opt(&statement, params).db()
    }

    pub(crate) fn query_one(&self, sql: &str, params: Params<'_>) -> StoreResult<Row> {
        let statement = self.prepared(sql)?;
        self.client.borrow_mut().query_one(&statement, params).db()
    }

    /// Runs a statement; answers the rows it changed.
    pub(crate) fn execute(&self, sql: &str, params: Params<'_>) -> StoreResult<u64> {
        let statement = self.prepared(sql)?;
        self.client.borrow_mut().execute(&statement, params).db()
    }

    /// Runs statements without parameters (transaction control, schema changes).
    pub(crate) fn batch(&self, sql: &str) -> StoreResult<()> {
        self.client.borrow_mut().batch_execute(sql).db()
    }

    /// [`Conn::batch`], answering the columns of the last row the statements returned, as text.
    /// Each statement reads what was committed when it began, so a read after a lock taken by
    /// an earlier statement sees what the lock's last holder committed.
    pub(crate) fn batch_row(&self, sql: &str) -> StoreResult<Vec<Option<String>>> {
        let messages = self.client.borrow_mut().simple_query(sql).db()?;
        let last = messages.iter().rev().find_map(|message| match message {
            postgres::SimpleQueryMessage::Row(row) => Some(row),
            _ => None,
        });
        Ok(last.map_or_else(Vec::new, |row| {
            (0..row.len())
                .map(|i| row.get(i).map(str::to_owned))
                .collect()
        }))
    }

    /// The payloads of the notifications this connection (which must `LISTEN`) received:
    /// waits up to `timeout` for the first, then takes those already there.
    pub(crate) fn notifications(&self, timeout: Duration) -> StoreResult<Vec<String>> {
        let mut client = self.client.borrow_mut();
        let mut notifications = client.notifications();
        let mut payloads = Vec::new();
        let first = notifications.timeout_iter(timeout).next().db()?;
        if let Some(first) = first {
            payloads.push(first.payload().to_owned());
            let mut pending = notifications.iter();
            while let Some(next) = pending.next().db()? {
                payloads.push(next.payload().to_owned());
            }
        }
        Ok(payloads)
    }
}

/// The queries a read makes, on either kind of connection. A read is written once, as an
/// `async fn` over `Queries`: on a read pool's connection ([`ReadConn`]) it waits for the
/// server without holding a thread; on the writer's or the tail's ([`Conn`], synchronous) each
/// query has answered before its future is polled, and [`at_once`] runs the read.
pub(crate) trait Queries {
    fn query(
        &self,
        sql: &str,
        params: Params<'_>,
    ) -> impl Future<Output = StoreResult<Vec<Row>>> + Send;

    fn query_opt(
        &self,
        sql: &str,
        params: Params<'_>,
    ) -> impl Future<Output = StoreResult<Option<Row>>> + Send;

    fn query_one(
        &self,
        sql: &str,
        params: Params<'_>,
    ) -> impl Future<Output = StoreResult<Row>> + Send;
}

impl Queries for Conn {
    fn query(
        &self,
        sql: &str,
        params: Params<'_>,
    ) -> impl Future<Output = StoreResult<Vec<Row>>> + Send {
        std::future::ready(Conn::query(self, sql, params))
    }

    fn query_opt(
        &self,
        sql: &str,
        params: Params<'_>,
    ) -> impl Future<Output = StoreResult<Option<Row>>> + Send {
        std::future::ready(Conn::query_opt(self, sql, params))
    }

    fn query_one(
        &self,
        sql: &str,
        params: Params<'_>,
    ) -> impl Future<Output = StoreResult<Row>> + Send {
        std::future::ready(Conn::query_one(self, sql, params))
    }
}

/// Runs a read written over [`Queries`] on a synchronous connection, whose queries answer
/// before they are awaited: the read is done at its first poll.
pub(crate) fn at_once<T>(read: impl Future<Output = StoreResult<T>>) -> StoreResult<T> {
    let mut read = std::pin::pin!(read);
    match read
        .as_mut()
        .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
    {
        std::task::Poll::Ready(result) => result,
        std::task::Poll::Pending => Err(StoreError::Unavailable(
            "a read on a synchronous connection did not finish at once".into(),
        )),
    }
}

/// A read pool's connection: the async client, with its prepared statements (as [`Conn`]).
/// Reads run on confab's runtime, with no thread of their own to wake.
pub(crate) struct ReadConn {
    client: tokio_postgres::Client,
    statements: parking_lot::Mutex<HashMap<String, Statement>>,
}

impl ReadConn {
    pub(crate) fn new(client: tokio_postgres::Client) -> Self {
        Self {
            client,
            statements: parking_lot::Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// The prepared form of `sql` (prepared on first use).
    async fn prepared(&self, sql: &str) -> StoreResult<Statement> {
        if let Some(statement) = self.statements.lock().get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql).await.db()?;
        self.statements
            .lock()
            .insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }
}

impl Queries for ReadConn {
    async fn query(&self, sql: &str, params: Params<'_>) -> StoreResult<Vec<Row>> {
        let statement = self.prepared(sql).await?;
        self.client.query(&statement, params).await.db()
    }

    async fn query_opt(&self, sql: &str, params: Params<'_>) -> StoreResult<Option<Row>> {
        let statement = self.prepared(sql).await?;
        self.client.query_opt(&statement, params).await.db()
    }

    async fn query_one(&self, sql: &str, params: Params<'_>) -> StoreResult<Row> {
        let statement = self.prepared(sql).await?;
        self.client.query_one(&statement, params).await.db()
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

/// Column `idx` of `row`: an identity's raw id, as it was stored (see
/// [`IdentityId::from_stored`]; checking it again cost 3 % of a page of messages).
pub(crate) fn identity_at(row: &Row, idx: usize) -> StoreResult<IdentityId> {
    get(row, idx).map(IdentityId::from_stored)
}

/// Column `idx` of `row`: a 32-byte hash.
pub(crate) fn hash_at(row: &Row, idx: usize) -> StoreResult<[u8; 32]> {
    let bytes: &[u8] = get(row, idx)?;
    bytes
        .try_into()
        .map_err(|_| StoreError::Unavailable(format!("stored hash of {} bytes", bytes.len())))
}

/// Column `idx` of `row`: a conversation id (its 16 bytes).
pub(crate) fn conversation_at(row: &Row, idx: usize) -> StoreResult<ConversationId> {
    let bytes: &[u8] = get(row, idx)?;
    let key: [u8; 16] = bytes.try_into().map_err(|_| {
        StoreError::Unavailable(format!("stored conversation id of {} bytes", bytes.len()))
    })?;
    Ok(conversation_from_key(key))
}

/// Column `idx` of `row`: a conversation id, or NULL.
pub(crate) fn opt_conversation_at(row: &Row, idx: usize) -> StoreResult<Option<ConversationId>> {
    match get::<Option<&[u8]>>(row, idx)? {
        Some(_) => conversation_at(row, idx).map(Some),
        None => Ok(None),
    }
}
