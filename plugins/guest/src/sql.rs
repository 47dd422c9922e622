//! Typed access to the `sql` capability's dynamically typed rows.

pub use crate::bindings::sql::{Error, Rows, Transaction, Value, begin, execute, query};
use crate::bindings::types::DomainError;

/// Builds a parameter list: `params![id, name, 42_i64, Option::<String>::None]`.
#[macro_export]
macro_rules! params {
    ($($v:expr),* $(,)?) => {
        [$($crate::sql::Value::from($v)),*]
    };
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Integer(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Boolean(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Real(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_string())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Text(v.clone())
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// One row, read by column name. A missing column or a value of the wrong
/// type is a bug in the component's SQL, reported as `internal`.
pub struct Row<'a> {
    columns: &'a [String],
    values: &'a [Value],
}

impl<'a> Row<'a> {
    fn value(&self, column: &str) -> Result<&'a Value, DomainError> {
        self.columns
            .iter()
            .position(|c| c == column)
            .and_then(|i| self.values.get(i))
            .ok_or_else(|| DomainError::Internal(format!("query returned no column `{column}`")))
    }

    pub fn text(&self, column: &str) -> Result<String, DomainError> {
        match self.value(column)? {
            Value::Text(s) => Ok(s.clone()),
            other => Err(wrong_type(column, "text", other)),
        }
    }

    pub fn opt_text(&self, column: &str) -> Result<Option<String>, DomainError> {
        match self.value(column)? {
            Value::Null => Ok(None),
            Value::Text(s) => Ok(Some(s.clone())),
            other => Err(wrong_type(column, "text or null", other)),
        }
    }

    pub fn int(&self, column: &str) -> Result<i64, DomainError> {
        match self.value(column)? {
            Value::Integer(i) => Ok(*i),
            other => Err(wrong_type(column, "integer", other)),
        }
    }

    /// Booleans come back as integers from SQLite and as booleans from
    /// PostgreSQL.
    pub fn bool(&self, column: &str) -> Result<bool, DomainError> {
        match self.value(column)? {
            Value::Boolean(b) => Ok(*b),
            Value::Integer(i) => Ok(*i != 0),
            other => Err(wrong_type(column, "boolean", other)),
        }
    }
}

fn wrong_type(column: &str, expected: &str, got: &Value) -> DomainError {
    DomainError::Internal(format!("column `{column}`: expected {expected}, got {got:?}"))
}

/// Iterating rows by name.
pub trait RowsExt {
    fn iter_rows(&self) -> impl Iterator<Item = Row<'_>>;
    fn first_row(&self) -> Option<Row<'_>> {
        self.iter_rows().next()
    }
    /// Maps every row, stopping at the first error.
    fn map_rows<T>(&self, f: impl FnMut(Row<'_>) -> Result<T, DomainError>) -> Result<Vec<T>, DomainError> {
        self.iter_rows().map(f).collect()
    }
}

impl RowsExt for Rows {
    fn iter_rows(&self) -> impl Iterator<Item = Row<'_>> {
        self.rows.iter().map(|values| Row { columns: &self.columns, values })
    }
}

/// `$first, $first+1, …` for `n` parameters, e.g. for `IN (…)` lists
/// appended after `first - 1` other parameters.
pub fn placeholders(first: usize, n: usize) -> String {
    (first..first + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_are_numbered_from_first() {
        assert_eq!(super::placeholders(1, 3), "$1, $2, $3");
        assert_eq!(super::placeholders(3, 2), "$3, $4");
        assert_eq!(super::placeholders(1, 0), "");
    }
}
