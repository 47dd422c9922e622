//! The WIT `sql` interface, implemented per call over a [`Database`].

use tracing::Instrument;
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

use super::guard;
use crate::bindings::sql::{self, Host, HostTransaction};
use crate::database::{Database, Rows, RunAs, SqlError, SqlLimits, Transaction, Value};

/// The sql state of one call: the component's own database and the limits.
pub struct SqlCtx {
    pub db: Database,
    pub limits: SqlLimits,
    open_transactions: u32,
}

impl SqlCtx {
    pub fn new(db: Database, limits: SqlLimits) -> Self {
        Self { db, limits, open_transactions: 0 }
    }
}

/// What the `sql` host functions see: their state, the store's resource
/// table (transactions are resources) and the call's deadline, at which
/// statements stop.
pub struct SqlCtxView<'a> {
    pub ctx: &'a mut SqlCtx,
    pub table: &'a mut ResourceTable,
    pub deadline: Option<std::time::Instant>,
}

impl SqlCtxView<'_> {
    fn run_as(&self) -> RunAs {
        RunAs::Component { deadline: self.deadline }
    }
}

/// Store data that carries the `sql` capability.
pub trait SqlView: Send {
    fn sql(&mut self) -> SqlCtxView<'_>;
}

struct HasSql;

impl HasData for HasSql {
    type Data<'a> = SqlCtxView<'a>;
}

/// Links `polyscale:commerce/sql` for any store data with an [`SqlView`].
pub fn add_to_linker<T: SqlView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    sql::add_to_linker::<T, HasSql>(linker, |t| t.sql())
}

/// The span of one statement: its kind (`SELECT`, `INSERT`…), never its
/// parameters. A child of the component call's span.
fn span(statement: &str) -> tracing::Span {
    let kind = statement.split_whitespace().next().unwrap_or_default().to_ascii_uppercase();
    tracing::info_span!("sql", otel.name = %format!("sql {kind}"), db.operation.name = %kind)
}

/// The span of a transaction step.
fn step(name: &'static str) -> tracing::Span {
    tracing::info_span!("sql", otel.name = name, db.operation.name = name)
}

fn checked(ctx: &SqlCtx, statement: &str, params: &[Value]) -> Result<(), SqlError> {
    guard::check(ctx.db.dialect(), statement, params, &ctx.limits)
}

impl Host for SqlCtxView<'_> {
    async fn begin(&mut self) -> wasmtime::Result<Result<Resource<Transaction>, SqlError>> {
        if self.ctx.open_transactions > 0 {
            return Ok(Err(SqlError::Other(
                "a transaction is already open in this call; commit or roll it back first".into(),
            )));
        }
        match self.ctx.db.begin().instrument(step("BEGIN")).await {
            Ok(tx) => {
                self.ctx.open_transactions += 1;
                Ok(Ok(self.table.push(tx)?))
            }
            Err(e) => Ok(Err(e)),
        }
    }

    async fn query(&mut self, statement: String, params: Vec<Value>) -> wasmtime::Result<Result<Rows, SqlError>> {
        if let Err(e) = checked(self.ctx, &statement, &params) {
            return Ok(Err(e));
        }
        let span = span(&statement);
        Ok(self.ctx.db.query_as(self.run_as(), &statement, &params, &self.ctx.limits).instrument(span).await)
    }

    async fn execute(&mut self, statement: String, params: Vec<Value>) -> wasmtime::Result<Result<u64, SqlError>> {
        if let Err(e) = checked(self.ctx, &statement, &params) {
            return Ok(Err(e));
        }
        let span = span(&statement);
        Ok(self.ctx.db.execute_as(self.run_as(), &statement, &params).instrument(span).await)
    }
}

impl HostTransaction for SqlCtxView<'_> {
    async fn query(
        &mut self,
        tx: Resource<Transaction>,
        statement: String,
        params: Vec<Value>,
    ) -> wasmtime::Result<Result<Rows, SqlError>> {
        if let Err(e) = checked(self.ctx, &statement, &params) {
            return Ok(Err(e));
        }
        let (limits, run_as) = (self.ctx.limits, self.run_as());
        let span = span(&statement);
        Ok(self.table.get_mut(&tx)?.query_as(run_as, &statement, &params, &limits).instrument(span).await)
    }

    async fn execute(
        &mut self,
        tx: Resource<Transaction>,
        statement: String,
        params: Vec<Value>,
    ) -> wasmtime::Result<Result<u64, SqlError>> {
        if let Err(e) = checked(self.ctx, &statement, &params) {
            return Ok(Err(e));
        }
        let run_as = self.run_as();
        let span = span(&statement);
        Ok(self.table.get_mut(&tx)?.execute_as(run_as, &statement, &params).instrument(span).await)
    }

    async fn commit(&mut self, tx: Resource<Transaction>) -> wasmtime::Result<Result<(), SqlError>> {
        let tx = self.table.delete(tx)?;
        self.ctx.open_transactions = self.ctx.open_transactions.saturating_sub(1);
        Ok(tx.commit().instrument(step("COMMIT")).await)
    }

    async fn rollback(&mut self, tx: Resource<Transaction>) -> wasmtime::Result<Result<(), SqlError>> {
        let tx = self.table.delete(tx)?;
        self.ctx.open_transactions = self.ctx.open_transactions.saturating_sub(1);
        Ok(tx.rollback().instrument(step("ROLLBACK")).await)
    }

    async fn drop(&mut self, tx: Resource<Transaction>) -> wasmtime::Result<()> {
        // Dropping an uncommitted sqlx transaction rolls it back.
        drop(self.table.delete(tx)?);
        self.ctx.open_transactions = self.ctx.open_transactions.saturating_sub(1);
        Ok(())
    }
}
