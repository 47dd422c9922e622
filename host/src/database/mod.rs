//! The host's access to SQL databases, on SQLite (embedded) or PostgreSQL
//! (distributed): used by the `sql` capability for component databases, by
//! the registry's component store and by the credentials store.
//!
//! [`Database`] is the backend, chosen by URL. It is a closed enum rather
//! than a trait object: there are exactly two engines, their async methods
//! need no boxing, and each variant's code lives in its own module
//! ([`sqlite`], [`postgres`]) with the binding, decoding and error mapping
//! peculiar to it.
//!
//! Values are the WIT `value` variant (the `sql` capability passes them
//! through unchanged). Results are capped ([`SqlLimits`]) while they stream,
//! so a runaway query costs its own call. [`migrations`] applies ordered,
//! forward-only schema changes, once.

pub mod changes;
pub mod lease;
pub mod migrations;
pub mod postgres;
pub mod sqlite;
pub mod sqlite_sandbox;

use std::time::{Duration, Instant};

use futures::future::BoxFuture;

pub use crate::bindings::sql::{ConstraintKind, ConstraintViolation, Error as SqlError, Rows, Value};

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Integer(v)
    }
}

/// Bounds on one statement and its result.
#[derive(Debug, Clone, Copy)]
pub struct SqlLimits {
    pub max_statement_bytes: usize,
    pub max_params: usize,
    pub max_rows: usize,
    pub max_result_bytes: usize,
}

impl Default for SqlLimits {
    fn default() -> Self {
        Self { max_statement_bytes: 64 * 1024, max_params: 1000, max_rows: 10_000, max_result_bytes: 16 << 20 }
    }
}

/// How a pool is opened.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub max_connections: u32,
    /// How long a call waits for a free connection before `unavailable`.
    pub acquire_timeout: Duration,
    /// A SQLite file readable by its owner only (for secrets).
    pub private: bool,
    /// A component's database: component statements ([`RunAs::Component`])
    /// run under SQLite's authorizer and a deadline
    /// ([`sqlite_sandbox`]); on PostgreSQL every statement is bounded by
    /// `statement_timeout` and idle transactions are ended. Off for the
    /// host's own stores (component store, credentials).
    pub sandboxed: bool,
    /// PostgreSQL `statement_timeout` of a sandboxed database's sessions
    /// (the longest a component call may last).
    pub statement_timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
            private: false,
            sandboxed: true,
            statement_timeout: Duration::from_secs(30),
        }
    }
}

impl ConnectOptions {
    /// For a store only the host uses: no sandbox.
    pub fn host_store(&self) -> Self {
        Self { sandboxed: false, ..self.clone() }
    }
}

/// Whom a statement runs for.
#[derive(Debug, Clone, Copy)]
pub enum RunAs {
    /// The host: its bookkeeping, transaction control, the outbox.
    Host,
    /// A component, in a sandboxed database: only what the sandbox allows,
    /// until `deadline`.
    Component { deadline: Option<Instant> },
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("unsupported database URL `{0}`: expected sqlite:// or postgres://")]
    UnsupportedUrl(String),
    #[error("cannot open database: {0}")]
    Open(#[from] sqlx::Error),
}

/// A service's database.
#[derive(Clone, Debug)]
pub enum Database {
    /// The pool, and whether it is sandboxed.
    Sqlite(sqlx::SqlitePool, bool),
    Postgres(sqlx::PgPool),
}

/// Which SQL dialect a database speaks, for the few places (host DDL) that
/// differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Database {
    /// Opens `url`: `sqlite://PATH` (created if missing) or
    /// `postgres://...`.
    pub async fn connect(url: &str, options: &ConnectOptions) -> Result<Self, ConnectError> {
        if url.starts_with("sqlite:") {
            Ok(Database::Sqlite(sqlite::connect(url, options).await?, options.sandboxed))
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Database::Postgres(postgres::connect(url, options).await?))
        } else {
            Err(ConnectError::UnsupportedUrl(redact_url(url)))
        }
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Database::Sqlite(..) => Dialect::Sqlite,
            Database::Postgres(_) => Dialect::Postgres,
        }
    }

    /// A host statement.
    pub async fn query(&self, statement: &str, params: &[Value], limits: &SqlLimits) -> Result<Rows, SqlError> {
        self.query_as(RunAs::Host, statement, params, limits).await
    }

    /// A host statement.
    pub async fn execute(&self, statement: &str, params: &[Value]) -> Result<u64, SqlError> {
        self.execute_as(RunAs::Host, statement, params).await
    }

    pub async fn query_as(
        &self,
        run_as: RunAs,
        statement: &str,
        params: &[Value],
        limits: &SqlLimits,
    ) -> Result<Rows, SqlError> {
        match self {
            Database::Sqlite(pool, true) => {
                let mut conn = pool.acquire().await.map_err(sqlite::map_error)?;
                sqlite::enter(&mut conn, run_as).await?;
                sqlite::query(&mut *conn, statement, params, limits).await
            }
            Database::Sqlite(pool, false) => sqlite::query(pool, statement, params, limits).await,
            Database::Postgres(pool) => postgres::query(pool, statement, params, limits).await,
        }
    }

    pub async fn execute_as(&self, run_as: RunAs, statement: &str, params: &[Value]) -> Result<u64, SqlError> {
        match self {
            Database::Sqlite(pool, true) => {
                let mut conn = pool.acquire().await.map_err(sqlite::map_error)?;
                sqlite::enter(&mut conn, run_as).await?;
                sqlite::execute(&mut *conn, statement, params).await
            }
            Database::Sqlite(pool, false) => sqlite::execute(pool, statement, params).await,
            Database::Postgres(pool) => postgres::execute(pool, statement, params).await,
        }
    }

    /// Starts a transaction. SQLite transactions take the write lock up
    /// front (`BEGIN IMMEDIATE`) so two writers wait for each other instead
    /// of failing halfway.
    pub async fn begin(&self) -> Result<Transaction, SqlError> {
        let inner = match self {
            Database::Sqlite(pool, sandboxed) => {
                let mut conn = pool.acquire().await.map_err(sqlite::map_error)?;
                if *sandboxed {
                    sqlite::enter(&mut conn, RunAs::Host).await?;
                }
                // `Transaction::begin` is sqlx's own (what `Pool::begin_with`
                // calls), used here to set the mode on the connection first.
                let tx = sqlx::Transaction::begin(conn, Some(sqlx::SqlStr::from_static("BEGIN IMMEDIATE")))
                    .await
                    .map_err(sqlite::map_error)?;
                TxInner::Sqlite(tx, *sandboxed)
            }
            Database::Postgres(pool) => TxInner::Postgres(pool.begin().await.map_err(postgres::map_error)?),
        };
        Ok(Transaction { inner: Some(inner) })
    }

    /// Whether the database answers a trivial query within `timeout`.
    pub async fn ping(&self, timeout: Duration) -> Result<(), String> {
        match tokio::time::timeout(timeout, self.execute_as(RunAs::Host, "SELECT 1", &[])).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("{e:?}")),
            Err(_) => Err(format!("no answer within {timeout:?}")),
        }
    }

    /// Where it is, without a password.
    pub fn describe(&self) -> String {
        match self {
            Database::Sqlite(pool, _) => {
                format!("sqlite://{}", pool.connect_options().get_filename().display())
            }
            Database::Postgres(pool) => {
                let o = pool.connect_options();
                format!("postgres://{}:{}/{}", o.get_host(), o.get_port(), o.get_database().unwrap_or(""))
            }
        }
    }

    pub async fn close(&self) {
        match self {
            Database::Sqlite(pool, _) => pool.close().await,
            Database::Postgres(pool) => pool.close().await,
        }
    }
}

/// An open transaction. Dropped without commit, it rolls back.
pub struct Transaction {
    inner: Option<TxInner>,
}

enum TxInner {
    /// The transaction, and whether its database is sandboxed.
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>, bool),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

impl Transaction {
    fn open(&mut self) -> Result<&mut TxInner, SqlError> {
        self.inner.as_mut().ok_or(SqlError::TransactionClosed)
    }

    /// A host statement.
    pub async fn query(&mut self, statement: &str, params: &[Value], limits: &SqlLimits) -> Result<Rows, SqlError> {
        self.query_as(RunAs::Host, statement, params, limits).await
    }

    /// A host statement.
    pub async fn execute(&mut self, statement: &str, params: &[Value]) -> Result<u64, SqlError> {
        self.execute_as(RunAs::Host, statement, params).await
    }

    pub async fn query_as(
        &mut self,
        run_as: RunAs,
        statement: &str,
        params: &[Value],
        limits: &SqlLimits,
    ) -> Result<Rows, SqlError> {
        match self.open()? {
            TxInner::Sqlite(tx, sandboxed) => {
                if *sandboxed {
                    sqlite::enter(tx, run_as).await?;
                }
                sqlite::query(&mut **tx, statement, params, limits).await
            }
            TxInner::Postgres(tx) => postgres::query(&mut **tx, statement, params, limits).await,
        }
    }

    pub async fn execute_as(&mut self, run_as: RunAs, statement: &str, params: &[Value]) -> Result<u64, SqlError> {
        match self.open()? {
            TxInner::Sqlite(tx, sandboxed) => {
                if *sandboxed {
                    sqlite::enter(tx, run_as).await?;
                }
                sqlite::execute(&mut **tx, statement, params).await
            }
            TxInner::Postgres(tx) => postgres::execute(&mut **tx, statement, params).await,
        }
    }

    pub async fn commit(mut self) -> Result<(), SqlError> {
        match self.inner.take().ok_or(SqlError::TransactionClosed)? {
            TxInner::Sqlite(mut tx, sandboxed) => {
                if sandboxed {
                    sqlite::enter(&mut tx, RunAs::Host).await?;
                }
                tx.commit().await.map_err(sqlite::map_error)
            }
            TxInner::Postgres(tx) => tx.commit().await.map_err(postgres::map_error),
        }
    }

    pub async fn rollback(mut self) -> Result<(), SqlError> {
        match self.inner.take().ok_or(SqlError::TransactionClosed)? {
            // ROLLBACK is allowed in either mode.
            TxInner::Sqlite(tx, _) => tx.rollback().await.map_err(sqlite::map_error),
            TxInner::Postgres(tx) => tx.rollback().await.map_err(postgres::map_error),
        }
    }
}

/// Runs `f` in a transaction, committing on success and rolling back on
/// error. For host code (migrations, version records).
pub async fn in_transaction<T, E, F>(db: &Database, f: F) -> Result<T, E>
where
    E: From<SqlError>,
    F: for<'t> FnOnce(&'t mut Transaction) -> BoxFuture<'t, Result<T, E>>,
{
    let mut tx = db.begin().await?;
    match f(&mut tx).await {
        Ok(v) => {
            tx.commit().await?;
            Ok(v)
        }
        Err(e) => {
            // The original error matters more than a failed rollback, and
            // dropping the transaction rolls it back anyway.
            let _ = tx.rollback().await;
            Err(e)
        }
    }
}

/// Reads a result stream into [`Rows`], decoding each row with the
/// backend's `decode` and stopping at the limits, so an oversized result
/// fails early instead of first being read whole.
pub(crate) async fn collect_rows<R: sqlx::Row>(
    mut stream: impl futures::Stream<Item = Result<R, sqlx::Error>> + Unpin,
    decode: impl Fn(&R) -> Result<Vec<Value>, SqlError>,
    map_error: fn(sqlx::Error) -> SqlError,
    limits: &SqlLimits,
) -> Result<Rows, SqlError> {
    use futures::TryStreamExt;
    use sqlx::Column;

    let mut budget = ResultBudget::new(limits);
    let mut columns = Vec::new();
    let mut rows = Vec::new();
    while let Some(row) = stream.try_next().await.map_err(map_error)? {
        if columns.is_empty() {
            columns = row.columns().iter().map(|c| c.name().to_string()).collect();
        }
        let values = decode(&row)?;
        budget.take(&values)?;
        rows.push(values);
    }
    Ok(Rows { columns, rows })
}

/// Counts what a result holds, stopping it at the limits.
struct ResultBudget<'a> {
    limits: &'a SqlLimits,
    rows: usize,
    bytes: usize,
}

impl<'a> ResultBudget<'a> {
    fn new(limits: &'a SqlLimits) -> Self {
        Self { limits, rows: 0, bytes: 0 }
    }

    fn take(&mut self, row: &[Value]) -> Result<(), SqlError> {
        self.rows += 1;
        self.bytes += row
            .iter()
            .map(|v| match v {
                Value::Text(s) => s.len() + 8,
                Value::Blob(b) => b.len() + 8,
                _ => 16,
            })
            .sum::<usize>();
        if self.rows > self.limits.max_rows {
            return Err(SqlError::TooLarge(format!("more than {} rows; page the query", self.limits.max_rows)));
        }
        if self.bytes > self.limits.max_result_bytes {
            return Err(SqlError::TooLarge(format!(
                "more than {} bytes; page the query",
                self.limits.max_result_bytes
            )));
        }
        Ok(())
    }
}

pub(crate) fn constraint(kind: ConstraintKind, constraint: Option<String>, message: &str) -> SqlError {
    SqlError::Constraint(ConstraintViolation { kind, constraint, message: message.to_string() })
}

/// Maps the engine-independent parts of a sqlx error.
pub(crate) fn map_common_error(e: &sqlx::Error) -> Option<SqlError> {
    match e {
        sqlx::Error::PoolTimedOut => Some(SqlError::Unavailable("no database connection became free in time".into())),
        sqlx::Error::PoolClosed => Some(SqlError::Unavailable("the database pool is closed".into())),
        sqlx::Error::Io(io) => Some(SqlError::Unavailable(format!("database connection failed: {io}"))),
        sqlx::Error::Tls(_) => Some(SqlError::Unavailable("database TLS failure".into())),
        sqlx::Error::Protocol(m) => Some(SqlError::Unavailable(format!("database protocol error: {m}"))),
        sqlx::Error::WorkerCrashed => Some(SqlError::Unavailable("database worker crashed".into())),
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
            Some(SqlError::InvalidStatement(format!("cannot read a result column: {e}")))
        }
        _ => None,
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`, so
/// URLs can go into errors and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme + 3 => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!("{}{}:***{}", &url[..scheme + 3], &userinfo[..colon], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact_url("postgres://u:pw@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact_url("postgres://h/db"), "postgres://h/db");
        assert_eq!(redact_url("sqlite://data/x.db"), "sqlite://data/x.db");
    }
}
