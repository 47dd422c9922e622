//! PostgreSQL backend.

use sqlx::encode::IsNull;
use sqlx::postgres::{PgArgumentBuffer, PgArguments, PgConnectOptions, PgPoolOptions, PgRow, PgTypeInfo, types::Oid};
use sqlx::{Arguments, AssertSqlSafe, Column, Postgres, Row, TypeInfo, ValueRef};

use super::{
    ConnectOptions, ConstraintKind, Rows, SqlError, SqlLimits, Value, collect_rows, constraint, map_common_error,
};

pub async fn connect(url: &str, options: &ConnectOptions) -> Result<sqlx::PgPool, sqlx::Error> {
    let mut connect: PgConnectOptions = url.parse()?;
    if options.sandboxed {
        // A component's session: no statement outlives its call, a
        // transaction left idle is ended, and sorts and hashes spill to
        // disk early (sent in the startup packet: no extra round trip).
        let timeout = format!("{}ms", options.statement_timeout.as_millis().max(1));
        connect = connect.options([
            ("statement_timeout", timeout.as_str()),
            ("idle_in_transaction_session_timeout", timeout.as_str()),
            ("lock_timeout", timeout.as_str()),
            ("work_mem", "16MB"),
        ]);
    }
    PgPoolOptions::new()
        .max_connections(options.max_connections)
        .acquire_timeout(options.acquire_timeout)
        // A restarted server leaves dead connections in the pool; test
        // each before use so a call gets a live one or a clear error.
        .test_before_acquire(true)
        .connect_with(connect)
        .await
}

/// A NULL parameter of unspecified type (OID 0), so PostgreSQL infers the
/// type from the statement as it does for a literal NULL. A typed NULL
/// (say int8) would be refused by a TEXT column.
struct UntypedNull;

impl sqlx::Type<Postgres> for UntypedNull {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(Oid(0))
    }
}

impl sqlx::Encode<'_, Postgres> for UntypedNull {
    fn encode_by_ref(&self, _: &mut PgArgumentBuffer) -> Result<IsNull, sqlx::error::BoxDynError> {
        Ok(IsNull::Yes)
    }
}

fn arguments(params: &[Value]) -> Result<PgArguments, SqlError> {
    let mut args = PgArguments::default();
    for p in params {
        let added = match p {
            Value::Null => args.add(UntypedNull),
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

fn decode(row: &PgRow) -> Result<Vec<Value>, SqlError> {
    row.columns()
        .iter()
        .enumerate()
        .map(|(i, column)| {
            let raw = row.try_get_raw(i).map_err(map_error)?;
            if raw.is_null() {
                return Ok(Value::Null);
            }
            let get_err = map_error;
            let value = match raw.type_info().name() {
                "INT2" => Value::Integer(row.try_get::<i16, _>(i).map_err(get_err)?.into()),
                "INT4" => Value::Integer(row.try_get::<i32, _>(i).map_err(get_err)?.into()),
                "INT8" => Value::Integer(row.try_get::<i64, _>(i).map_err(get_err)?),
                "FLOAT4" => Value::Real(row.try_get::<f32, _>(i).map_err(get_err)?.into()),
                "FLOAT8" => Value::Real(row.try_get::<f64, _>(i).map_err(get_err)?),
                "BOOL" => Value::Boolean(row.try_get::<bool, _>(i).map_err(get_err)?),
                "BYTEA" => Value::Blob(row.try_get::<Vec<u8>, _>(i).map_err(get_err)?),
                "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "CHAR" => {
                    Value::Text(row.try_get::<String, _>(i).map_err(get_err)?)
                }
                other => {
                    return Err(SqlError::InvalidStatement(format!(
                        "column `{}` has type {other}, which the sql capability does not return; \
                         CAST it to BIGINT, DOUBLE PRECISION or TEXT",
                        column.name()
                    )));
                }
            };
            Ok(value)
        })
        .collect()
}

pub async fn query<'c, E>(exec: E, statement: &str, params: &[Value], limits: &SqlLimits) -> Result<Rows, SqlError>
where
    E: sqlx::Executor<'c, Database = Postgres>,
{
    let args = arguments(params)?;
    let stream = sqlx::query_with(AssertSqlSafe(statement.to_string()), args).fetch(exec);
    collect_rows(stream, decode, map_error, limits).await
}

pub async fn execute<'c, E>(exec: E, statement: &str, params: &[Value]) -> Result<u64, SqlError>
where
    E: sqlx::Executor<'c, Database = Postgres>,
{
    let args = arguments(params)?;
    let done = sqlx::query_with(AssertSqlSafe(statement.to_string()), args).execute(exec).await.map_err(map_error)?;
    Ok(done.rows_affected())
}

pub fn map_error(e: sqlx::Error) -> SqlError {
    if let Some(mapped) = map_common_error(&e) {
        return mapped;
    }
    let sqlx::Error::Database(db) = &e else {
        return SqlError::Other(e.to_string());
    };
    let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
    let message = db.message();
    let name = db.constraint().map(str::to_string);
    match code.as_str() {
        "23505" => constraint(ConstraintKind::Unique, name, message),
        "23503" => constraint(ConstraintKind::ForeignKey, name, message),
        "23502" => constraint(ConstraintKind::NotNull, name, message),
        "23514" => constraint(ConstraintKind::Check, name, message),
        c if c.starts_with("23") => constraint(ConstraintKind::Other, name, message),
        "40001" | "40P01" => SqlError::SerializationFailure(message.to_string()),
        c if c.starts_with("08") || c.starts_with("57P") || c == "53300" => SqlError::Unavailable(message.to_string()),
        c if c.starts_with("42") || c.starts_with("22") => SqlError::InvalidStatement(message.to_string()),
        _ => SqlError::Other(message.to_string()),
    }
}
