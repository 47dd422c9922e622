//! Statements a component may not run.
//!
//! Two rules, checked before any statement reaches the database:
//! - nothing may name the host's own tables (`_polyscale…`: component
//!   versions, applied migrations), not even inside a string;
//! - on SQLite, nothing that opens or writes other files or changes the
//!   connection (`ATTACH`, `DETACH`, `VACUUM`, `PRAGMA`, `load_extension`).
//!
//! This is a guard rail against mistakes, not the security boundary for
//! secrets: password hashes and refresh tokens live in the credentials
//! store, a database no component connection ever opens. On PostgreSQL the
//! boundary is the service's database role (see docs/operations.md).

use crate::database::{Dialect, SqlError, SqlLimits, Value};

/// Prefix of every table the host owns inside a component's database.
pub const HOST_TABLE_PREFIX: &str = "_polyscale";

const SQLITE_FORBIDDEN_WORDS: &[&str] = &["attach", "detach", "vacuum", "pragma", "load_extension"];

pub fn check(dialect: Dialect, statement: &str, params: &[Value], limits: &SqlLimits) -> Result<(), SqlError> {
    if statement.len() > limits.max_statement_bytes {
        return Err(SqlError::InvalidStatement(format!(
            "statement is {} bytes; the limit is {}",
            statement.len(),
            limits.max_statement_bytes
        )));
    }
    if params.len() > limits.max_params {
        return Err(SqlError::InvalidStatement(format!(
            "{} parameters; the limit is {}",
            params.len(),
            limits.max_params
        )));
    }
    if statement.to_ascii_lowercase().contains(HOST_TABLE_PREFIX) {
        return Err(SqlError::AccessDenied(format!("`{HOST_TABLE_PREFIX}…` tables belong to the host")));
    }
    if dialect == Dialect::Sqlite
        && let Some(word) = words(statement).find(|w| SQLITE_FORBIDDEN_WORDS.iter().any(|f| w.eq_ignore_ascii_case(f)))
    {
        return Err(SqlError::AccessDenied(format!("`{}` is not allowed", word.to_ascii_uppercase())));
    }
    Ok(())
}

/// The bare words of a statement, skipping string literals, quoted
/// identifiers and comments (a quoted `"attach"` is a name, not a command).
fn words(sql: &str) -> impl Iterator<Item = &str> {
    let bytes = sql.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < bytes.len() {
            let c = bytes[i];
            match c {
                b'\'' | b'"' | b'`' => {
                    i += 1;
                    while i < bytes.len() {
                        if bytes[i] == c {
                            // A doubled quote is an escaped quote.
                            if bytes.get(i + 1) == Some(&c) {
                                i += 2;
                                continue;
                            }
                            break;
                        }
                        i += 1;
                    }
                    i += 1;
                }
                b'[' => {
                    while i < bytes.len() && bytes[i] != b']' {
                        i += 1;
                    }
                    i += 1;
                }
                b'-' if bytes.get(i + 1) == Some(&b'-') => {
                    while i < bytes.len() && bytes[i] != b'\n' {
                        i += 1;
                    }
                }
                b'/' if bytes.get(i + 1) == Some(&b'*') => {
                    i += 2;
                    while i < bytes.len() && !(bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/')) {
                        i += 1;
                    }
                    i += 2;
                }
                c if c.is_ascii_alphabetic() || c == b'_' => {
                    let start = i;
                    while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b'$')
                    {
                        i += 1;
                    }
                    return Some(&sql[start..i]);
                }
                _ => i += 1,
            }
        }
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_sqlite(sql: &str) -> Result<(), SqlError> {
        check(Dialect::Sqlite, sql, &[], &SqlLimits::default())
    }

    #[test]
    fn refuses_host_tables_anywhere() {
        for sql in [
            "SELECT * FROM _polyscale_migrations",
            "select * from \"_POLYSCALE_components\"",
            "SELECT query_to_xml('select * from _polyscale_x', true, true, '')",
        ] {
            assert!(matches!(check_sqlite(sql), Err(SqlError::AccessDenied(_))), "{sql}");
            assert!(matches!(
                check(Dialect::Postgres, sql, &[], &SqlLimits::default()),
                Err(SqlError::AccessDenied(_))
            ));
        }
    }

    #[test]
    fn refuses_file_statements_on_sqlite_only() {
        for sql in [
            "ATTACH DATABASE '/tmp/x' AS x",
            "/* hi */ vacuum into '/tmp/y'",
            "PRAGMA writable_schema = 1",
            "SELECT load_extension('x')",
        ] {
            assert!(matches!(check_sqlite(sql), Err(SqlError::AccessDenied(_))), "{sql}");
        }
        assert!(check(Dialect::Postgres, "VACUUM", &[], &SqlLimits::default()).is_ok());
    }

    #[test]
    fn allows_forbidden_words_as_data_or_quoted_names() {
        for sql in [
            "SELECT 'attach' AS word",
            "SELECT \"pragma\" FROM t -- vacuum\n",
            "INSERT INTO notes (body) VALUES ('it''s fine to attach files')",
        ] {
            assert!(check_sqlite(sql).is_ok(), "{sql}");
        }
    }

    #[test]
    fn enforces_size_limits() {
        let limits = SqlLimits { max_statement_bytes: 10, max_params: 1, ..SqlLimits::default() };
        assert!(check(Dialect::Sqlite, "SELECT 1 + 1 + 1", &[], &limits).is_err());
        assert!(check(Dialect::Sqlite, "SELECT $1", &[Value::Null, Value::Null], &limits).is_err());
    }
}
