//! SQLite backend: one file per service, WAL, foreign keys on.

use std::str::FromStr;

use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Arguments, AssertSqlSafe, Row, Sqlite, TypeInfo, ValueRef};

use super::sqlite_sandbox::{self, Mode};
use super::{
    ConnectOptions, ConstraintKind, Rows, RunAs, SqlError, SqlLimits, Value, collect_rows, constraint, map_common_error,
};

/// Puts a sandboxed database's connection in the mode `run_as` needs.
pub async fn enter(conn: &mut sqlx::SqliteConnection, run_as: RunAs) -> Result<(), SqlError> {
    let (mode, deadline) = match run_as {
        RunAs::Host => (Mode::Host, None),
        RunAs::Component { deadline } => (Mode::Component, deadline),
    };
    sqlite_sandbox::enter(conn, mode, deadline).await.map_err(map_error)
}

/// Opens (creating if missing) the database file at `url`. With
/// `options.private`
/// the file is readable by its owner only (SQLite gives its `-wal` and
/// `-shm` files the same mode).
pub async fn connect(url: &str, options: &ConnectOptions) -> Result<sqlx::SqlitePool, sqlx::Error> {
    let connect = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(options.acquire_timeout);
    let filename = connect.get_filename().to_path_buf();
    if options.private && !filename.exists() {
        // Created owner-only before SQLite opens it, so the file is never
        // readable by others, and its -wal and -shm files (which SQLite
        // creates with the database file's mode) are not either.
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&filename)?;
    }
    let mut pool =
        SqlitePoolOptions::new().max_connections(options.max_connections).acquire_timeout(options.acquire_timeout);
    if options.sandboxed {
        pool = pool.after_connect(|conn, _| Box::pin(sqlite_sandbox::on_connect(conn)));
    }
    let pool = pool.connect_with(connect).await?;
    if options.private {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&filename, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(pool)
}

fn arguments(params: &[Value]) -> Result<SqliteArguments, SqlError> {
    let mut args = SqliteArguments::default();
    for p in params {
        let added = match p {
            Value::Null => args.add(None::<i64>),
            Value::Integer(i) => args.add(*i),
            Value::Real(f) => args.add(*f),
            Value::Text(s) => args.add(s.clone()),
            Value::Blob(b) => args.add(b.clone()),
            Value::Boolean(b) => args.add(*b),
        };
        added.map_err(|e| SqlError::InvalidStatement(format!("cannot bind parameter: {e}")))?;
    }
    Ok(args)
}

fn decode(row: &SqliteRow) -> Result<Vec<Value>, SqlError> {
    (0..row.columns().len())
        .map(|i| {
            let raw = row.try_get_raw(i).map_err(map_error)?;
            if raw.is_null() {
                return Ok(Value::Null);
            }
            let value = match raw.type_info().name() {
                "INTEGER" | "INT4" | "INT8" | "BIGINT" => Value::Integer(row.try_get::<i64, _>(i).map_err(map_error)?),
                "BOOLEAN" => Value::Boolean(row.try_get::<bool, _>(i).map_err(map_error)?),
                "REAL" | "NUMERIC" => Value::Real(row.try_get::<f64, _>(i).map_err(map_error)?),
                "BLOB" => Value::Blob(row.try_get::<Vec<u8>, _>(i).map_err(map_error)?),
                _ => Value::Text(row.try_get::<String, _>(i).map_err(map_error)?),
            };
            Ok(value)
        })
        .collect()
}

pub async fn query<'c, E>(exec: E, statement: &str, params: &[Value], limits: &SqlLimits) -> Result<Rows, SqlError>
where
    E: sqlx::Executor<'c, Database = Sqlite>,
{
    let args = arguments(params)?;
    let stream = sqlx::query_with(AssertSqlSafe(statement.to_string()), args).fetch(exec);
    collect_rows(stream, decode, map_error, limits).await
}

pub async fn execute<'c, E>(exec: E, statement: &str, params: &[Value]) -> Result<u64, SqlError>
where
    E: sqlx::Executor<'c, Database = Sqlite>,
{
    let args = arguments(params)?;
    let done = sqlx::query_with(AssertSqlSafe(statement.to_string()), args).execute(exec).await.map_err(map_error)?;
    Ok(done.rows_affected())
}

// Primary result codes (the low byte of extended codes).
const SQLITE_ERROR: i32 = 1;
const SQLITE_BUSY: i32 = 5;
const SQLITE_LOCKED: i32 = 6;
const SQLITE_CANTOPEN: i32 = 14;
const SQLITE_AUTH: i32 = 23;
const SQLITE_INTERRUPT: i32 = 9;
const SQLITE_TOOBIG: i32 = 18;
const SQLITE_NOMEM: i32 = 7;
const SQLITE_CONSTRAINT: i32 = 19;
const SQLITE_RANGE: i32 = 25;

pub fn map_error(e: sqlx::Error) -> SqlError {
    if let Some(mapped) = map_common_error(&e) {
        return mapped;
    }
    let sqlx::Error::Database(db) = &e else {
        return SqlError::Other(e.to_string());
    };
    let code: i32 = db.code().and_then(|c| c.parse().ok()).unwrap_or(0);
    let message = db.message();
    match (db.kind(), code & 0xff) {
        (sqlx::error::ErrorKind::UniqueViolation, _) => constraint(ConstraintKind::Unique, None, message),
        (sqlx::error::ErrorKind::ForeignKeyViolation, _) => constraint(ConstraintKind::ForeignKey, None, message),
        (sqlx::error::ErrorKind::NotNullViolation, _) => constraint(ConstraintKind::NotNull, None, message),
        (sqlx::error::ErrorKind::CheckViolation, _) => constraint(ConstraintKind::Check, None, message),
        (_, SQLITE_CONSTRAINT) => constraint(ConstraintKind::Other, None, message),
        (_, SQLITE_BUSY | SQLITE_LOCKED) => SqlError::SerializationFailure(message.to_string()),
        (_, SQLITE_CANTOPEN) => SqlError::Unavailable(message.to_string()),
        (_, SQLITE_AUTH) => SqlError::AccessDenied(message.to_string()),
        (_, SQLITE_INTERRUPT) => SqlError::Other("the statement ran past the call's deadline".into()),
        (_, SQLITE_TOOBIG | SQLITE_NOMEM) => SqlError::TooLarge(message.to_string()),
        (_, SQLITE_ERROR | SQLITE_RANGE) => SqlError::InvalidStatement(message.to_string()),
        _ => SqlError::Other(message.to_string()),
    }
}
