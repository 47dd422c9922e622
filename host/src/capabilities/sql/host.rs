//! The WIT `sql` interface, implemented per call over a [`Database`].

use wasmtime::component::{HasData, Resource, ResourceTable};

use super::{Database, Rows, SqlError, SqlLimits, Transaction, Value, guard};
use crate::bindings::sql::{Host, HostTransaction};

/// The sql slice of a call's store.
pub struct SqlState {
    pub db: Database,
    pub limits: SqlLimits,
    open_transactions: u32,
}

impl SqlState {
    pub fn new(db: Database, limits: SqlLimits) -> Self {
        Self { db, limits, open_transactions: 0 }
    }
}

/// What the `sql` host functions see: their state and the resource table.
pub struct SqlView<'a> {
    pub state: Option<&'a mut SqlState>,
    pub table: &'a mut ResourceTable,
}

/// Marker for `add_to_linker`.
pub struct Sql;

impl HasData for Sql {
    type Data<'a> = SqlView<'a>;
}

impl SqlView<'_> {
    fn state(&mut self) -> wasmtime::Result<&mut SqlState> {
        // Only worlds that import `sql` are linked with it, and their stores
        // always carry a database; reaching this is a host bug.
        self.state.as_deref_mut().ok_or_else(|| wasmtime::format_err!("sql capability used without a database"))
    }
}

fn checked(state: &SqlState, statement: &str, params: &[Value]) -> Result<(), SqlError> {
    guard::check(state.db.dialect(), statement, params, &state.limits)
}

impl Host for SqlView<'_> {
    async fn begin(&mut self) -> wasmtime::Result<Result<Resource<Transaction>, SqlError>> {
        let state = self.state()?;
        if state.open_transactions > 0 {
            return Ok(Err(SqlError::Other(
                "a transaction is already open in this call; commit or roll it back first".into(),
            )));
        }
        match state.db.begin().await {
            Ok(tx) => {
                state.open_transactions += 1;
                Ok(Ok(self.table.push(tx)?))
            }
            Err(e) => Ok(Err(e)),
        }
    }

    async fn query(&mut self, statement: String, params: Vec<Value>) -> wasmtime::Result<Result<Rows, SqlError>> {
        let state = self.state()?;
        if let Err(e) = checked(state, &statement, &params) {
            return Ok(Err(e));
        }
        Ok(state.db.query(&statement, &params, &state.limits).await)
    }

    async fn execute(&mut self, statement: String, params: Vec<Value>) -> wasmtime::Result<Result<u64, SqlError>> {
        let state = self.state()?;
        if let Err(e) = checked(state, &statement, &params) {
            return Ok(Err(e));
        }
        Ok(state.db.execute(&statement, &params).await)
    }
}

impl HostTransaction for SqlView<'_> {
    async fn query(
        &mut self,
        tx: Resource<Transaction>,
        statement: String,
        params: Vec<Value>,
    ) -> wasmtime::Result<Result<Rows, SqlError>> {
        let state =
            self.state.as_deref().ok_or_else(|| wasmtime::format_err!("sql capability used without a database"))?;
        if let Err(e) = checked(state, &statement, &params) {
            return Ok(Err(e));
        }
        let limits = state.limits;
        Ok(self.table.get_mut(&tx)?.query(&statement, &params, &limits).await)
    }

    async fn execute(
        &mut self,
        tx: Resource<Transaction>,
        statement: String,
        params: Vec<Value>,
    ) -> wasmtime::Result<Result<u64, SqlError>> {
        let state =
            self.state.as_deref().ok_or_else(|| wasmtime::format_err!("sql capability used without a database"))?;
        if let Err(e) = checked(state, &statement, &params) {
            return Ok(Err(e));
        }
        Ok(self.table.get_mut(&tx)?.execute(&statement, &params).await)
    }

    async fn commit(&mut self, tx: Resource<Transaction>) -> wasmtime::Result<Result<(), SqlError>> {
        let tx = self.table.delete(tx)?;
        self.state()?.open_transactions -= 1;
        Ok(tx.commit().await)
    }

    async fn rollback(&mut self, tx: Resource<Transaction>) -> wasmtime::Result<Result<(), SqlError>> {
        let tx = self.table.delete(tx)?;
        self.state()?.open_transactions -= 1;
        Ok(tx.rollback().await)
    }

    async fn drop(&mut self, tx: Resource<Transaction>) -> wasmtime::Result<()> {
        // Dropping an uncommitted sqlx transaction rolls it back.
        drop(self.table.delete(tx)?);
        let state = self.state()?;
        state.open_transactions = state.open_transactions.saturating_sub(1);
        Ok(())
    }
}
