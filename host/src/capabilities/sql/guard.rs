//! Statements a component may not run, refused before they reach the
//! database:
//! - nothing may name the host's own tables (`_polyscale…`: applied
//!   migrations, the search outbox), not even inside a string;
//! - no transaction control (the host opens and commits a component's
//!   transactions), no session state (`SET`, `RESET`, `set_config`,
//!   `DISCARD`, `PREPARE`…), no `DO` blocks, functions or procedures (code
//!   that could run any of these), no advisory locks, no `LISTEN`/`NOTIFY`
//!   or `COPY`, no role or privilege changes;
//! - on PostgreSQL, no spelling that hides a name from this check: Unicode
//!   escapes (`U&"\005F…"`), escape strings (`E'\x5f…'`), dollar quotes
//!   (`$$…$$`), and the functions that run SQL given as text
//!   (`query_to_xml`…);
//! - on SQLite, nothing that opens or writes other files or changes the
//!   connection (`ATTACH`, `DETACH`, `VACUUM`, `PRAGMA`, `load_extension`).
//!
//! On SQLite the boundary is the engine's authorizer
//! ([`crate::database::sqlite_sandbox`]); this check is the first, clearer
//! refusal. On PostgreSQL this check plus the session's `statement_timeout`
//! and the credentials store being another database are what holds today;
//! a database role per component is the intended boundary (docs/security.md).
//! Password hashes and refresh tokens are never in a component's database.

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
    if dialect == Dialect::Postgres
        && let Some(why) = hidden_spelling(statement)
    {
        return Err(SqlError::AccessDenied(why.into()));
    }
    let lower: Vec<String> = words(statement).map(|w| w.to_ascii_lowercase()).collect();
    if let Some(first) = lower.first()
        && FORBIDDEN_STATEMENTS.contains(&first.as_str())
    {
        return Err(SqlError::AccessDenied(format!(
            "`{}` statements are not allowed in component SQL",
            first.to_ascii_uppercase()
        )));
    }
    if let Some(word) = lower.iter().find(|w| FORBIDDEN_FUNCTIONS.iter().any(|f| w.starts_with(f))) {
        return Err(SqlError::AccessDenied(format!("`{word}` is not allowed in component SQL")));
    }
    for pair in lower.windows(2) {
        if matches!(pair[0].as_str(), "create" | "alter" | "drop" | "replace" | "or")
            && FORBIDDEN_OBJECTS.contains(&pair[1].as_str())
        {
            return Err(SqlError::AccessDenied(format!(
                "`{} {}` is not allowed in component SQL",
                pair[0].to_ascii_uppercase(),
                pair[1].to_ascii_uppercase()
            )));
        }
    }
    Ok(())
}

/// Statements (by first word) the host keeps to itself.
const FORBIDDEN_STATEMENTS: &[&str] = &[
    "begin",
    "start",
    "commit",
    "end",
    "rollback",
    "abort",
    "savepoint",
    "release",
    "set",
    "reset",
    "do",
    "listen",
    "notify",
    "unlisten",
    "copy",
    "prepare",
    "execute",
    "deallocate",
    "discard",
    "lock",
    "grant",
    "revoke",
    "call",
    "load",
    "checkpoint",
    "cluster",
    "reassign",
    "security",
    "import",
];

/// Functions (by prefix) that take locks the host cannot see, change the
/// session, run SQL given as text, or reach outside the database.
const FORBIDDEN_FUNCTIONS: &[&str] = &[
    "pg_advisory",
    "pg_try_advisory",
    "set_config",
    "query_to_xml",
    "cursor_to_xml",
    "table_to_xml",
    "schema_to_xml",
    "database_to_xml",
    "dblink",
    "lo_",
    "pg_read_",
    "pg_ls_",
    "pg_stat_file",
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_reload_conf",
    "pg_notify",
];

/// Objects (the word after CREATE/ALTER/DROP or OR REPLACE) that carry
/// code or privileges.
const FORBIDDEN_OBJECTS: &[&str] = &[
    "function",
    "procedure",
    "extension",
    "role",
    "user",
    "rule",
    "language",
    "server",
    "event",
    "publication",
    "subscription",
    "database",
    "tablespace",
    "aggregate",
    "operator",
    "cast",
    "policy",
    "system",
];

/// A PostgreSQL spelling that could hide a name or a statement from the
/// word checks, if any.
fn hidden_spelling(sql: &str) -> Option<&'static str> {
    let bytes = sql.as_bytes();
    for (i, pair) in bytes.windows(2).enumerate() {
        let starts_word = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        match pair {
            [b'u' | b'U', b'&'] if starts_word => return Some("Unicode escapes (U&) are not allowed in component SQL"),
            [b'e' | b'E', b'\''] if starts_word => {
                return Some("escape strings (E'…') are not allowed in component SQL; pass values as parameters");
            }
            [b'$', c] if *c == b'$' || c.is_ascii_alphabetic() || *c == b'_' => {
                return Some("dollar-quoted strings are not allowed in component SQL");
            }
            _ => {}
        }
    }
    None
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
    fn refuses_escapes_session_state_locks_and_code() {
        let pg = |sql: &str| check(Dialect::Postgres, sql, &[], &SqlLimits::default());
        for sql in [
            "SELECT * FROM U&\"\\005Fpolyscale_migrations\"",
            "SELECT * FROM u&\"x\"",
            "SELECT query_to_xml(E'select * from \\x5fpolyscale_migrations', true, true, '')",
            "DO $$ BEGIN EXECUTE 'select 1'; END $$",
            "do $body$ begin perform 1; end $body$",
            "SELECT pg_advisory_lock(42)",
            "select PG_TRY_ADVISORY_XACT_LOCK(1)",
            "SET search_path TO other",
            "  set local statement_timeout = 0",
            "RESET ROLE",
            "SELECT set_config('search_path', 'x', false)",
            "BEGIN",
            "COMMIT",
            "/* sneaky */ begin isolation level serializable",
            "LISTEN x",
            "CREATE OR REPLACE FUNCTION f() RETURNS int AS 'select 1' LANGUAGE sql",
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql RETURN 1",
            "ALTER ROLE current_user SET search_path = x",
            "COPY t TO '/tmp/x'",
            "PREPARE p AS SELECT 1",
        ] {
            assert!(matches!(pg(sql), Err(SqlError::AccessDenied(_))), "{sql}");
        }
        for sql in ["BEGIN IMMEDIATE", "COMMIT", "SAVEPOINT a", "RELEASE a"] {
            assert!(matches!(check_sqlite(sql), Err(SqlError::AccessDenied(_))), "{sql}");
        }
        // Ordinary statements, parameters, and the words as data or names.
        for sql in [
            "SELECT id FROM products WHERE merchant_id = $1 AND price > $2",
            "INSERT INTO notes (body) VALUES ('set, begin, do and commit')",
            "CREATE TABLE accounts (id TEXT PRIMARY KEY, roles TEXT, \"role\" TEXT)",
            "SELECT e.id FROM events e WHERE e.kind = 'x'",
            "UPDATE t SET a = 1 WHERE id = $1",
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5) SELECT x FROM c",
        ] {
            assert!(pg(sql).is_ok(), "{sql}: {:?}", pg(sql));
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
