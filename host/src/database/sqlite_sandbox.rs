//! What SQLite lets component SQL do: an authorizer, a deadline and size
//! limits on every connection of a component's database, enforced by the
//! engine as it compiles and runs each statement, not by reading the text.
//!
//! A connection of a sandboxed database is in one of two modes:
//! - **component**: the authorizer ([`authorize`]) refuses transaction
//!   control other than ROLLBACK, savepoints, PRAGMA (statements and
//!   `pragma_*` functions), ATTACH/DETACH, virtual tables,
//!   `load_extension`, and any access to the host's tables (`_polyscale…`).
//!   A progress
//!   handler interrupts the statement at the call's deadline.
//! - **host**: no authorizer, no deadline (migrations bookkeeping, the
//!   search outbox, transaction control).
//!
//! Every statement sets the mode it needs first, so a connection left in
//! either mode by a statement that was cancelled halfway can never lend
//! its mode to the next one. Setting an authorizer expires the
//! connection's prepared statements (SQLite does this), so a statement the
//! host prepared is recompiled, and checked, before a component can reuse
//! its text; the mode only changes when it has to, so the statement cache
//! still works for runs of component statements.
//!
//! Size limits (`sqlite3_limit`) are set once per connection and apply in
//! both modes; a process-wide hard heap limit bounds SQLite's memory.

use std::collections::HashMap;
use std::ffi::{CStr, c_char, c_int, c_void};
use std::sync::{LazyLock, Mutex, Once};
use std::time::Instant;

use libsqlite3_sys as ffi;
use sqlx::SqliteConnection;

/// Longest string or blob a statement may produce (`randomblob(5e8)` fails
/// at once instead of allocating half a gigabyte).
pub const MAX_VALUE_BYTES: i32 = 32 << 20;
/// Longest SQL text.
pub const MAX_SQL_BYTES: i32 = 1 << 20;
/// SQLite's memory across the process; past it allocations fail cleanly.
pub const HARD_HEAP_LIMIT_BYTES: i64 = 1 << 30;
/// VM instructions between deadline checks.
const PROGRESS_EVERY: i32 = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Host,
    Component,
}

/// The mode of each open connection, by its handle's address. Written
/// when a connection opens (component mode), so an address reused by a
/// new connection never inherits a stale entry.
static MODES: LazyLock<Mutex<HashMap<usize, Mode>>> = LazyLock::new(Default::default);

/// A non-null marker: the authorizer's user data in component mode.
static COMPONENT: u8 = 1;

/// Sets up a new connection: size limits, the heap limit (once per
/// process), and component mode.
pub async fn on_connect(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    static HEAP: Once = Once::new();
    HEAP.call_once(|| {
        // SAFETY: a plain setter of a process-wide limit.
        unsafe { ffi::sqlite3_hard_heap_limit64(HARD_HEAP_LIMIT_BYTES) };
    });
    let mut handle = conn.lock_handle().await?;
    let raw = handle.as_raw_handle().as_ptr();
    // SAFETY: `raw` is this open connection's handle, held locked.
    unsafe {
        ffi::sqlite3_limit(raw, ffi::SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES);
        ffi::sqlite3_limit(raw, ffi::SQLITE_LIMIT_SQL_LENGTH, MAX_SQL_BYTES);
        ffi::sqlite3_limit(raw, ffi::SQLITE_LIMIT_ATTACHED, 0);
        ffi::sqlite3_limit(raw, ffi::SQLITE_LIMIT_TRIGGER_DEPTH, 10);
        ffi::sqlite3_set_authorizer(raw, Some(authorize), &COMPONENT as *const u8 as *mut c_void);
    }
    MODES.lock().unwrap_or_else(|e| e.into_inner()).insert(raw as usize, Mode::Component);
    Ok(())
}

/// Puts `conn` in `mode` for its next statements; in component mode they
/// are interrupted at `deadline`.
pub async fn enter(conn: &mut SqliteConnection, mode: Mode, deadline: Option<Instant>) -> Result<(), sqlx::Error> {
    let mut handle = conn.lock_handle().await?;
    let raw = handle.as_raw_handle().as_ptr();
    let mut modes = MODES.lock().unwrap_or_else(|e| e.into_inner());
    if modes.get(&(raw as usize)) != Some(&mode) {
        // SAFETY: `raw` is this open connection's handle, held locked.
        unsafe {
            match mode {
                Mode::Component => {
                    ffi::sqlite3_set_authorizer(raw, Some(authorize), &COMPONENT as *const u8 as *mut c_void)
                }
                Mode::Host => ffi::sqlite3_set_authorizer(raw, None, std::ptr::null_mut()),
            };
        }
        modes.insert(raw as usize, mode);
    }
    drop(modes);
    match (mode, deadline) {
        (Mode::Component, Some(deadline)) => {
            handle.set_progress_handler(PROGRESS_EVERY, move || Instant::now() < deadline);
        }
        _ => handle.remove_progress_handler(),
    }
    Ok(())
}

fn text<'a>(p: *const c_char) -> &'a str {
    if p.is_null() {
        return "";
    }
    // SAFETY: SQLite passes NUL-terminated strings valid for the call.
    unsafe { CStr::from_ptr(p) }.to_str().unwrap_or("")
}

/// The host's tables, and the `pragma_…` table-valued functions. SQLite's
/// own tables (`sqlite_master`…) stay readable, and writable the way DDL
/// writes them: direct writes need `writable_schema`, a PRAGMA.
fn reserved(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.starts_with("_polyscale") || lower.starts_with("pragma_")
}

/// The component-mode authorizer (see the module docs).
unsafe extern "C" fn authorize(
    user: *mut c_void,
    action: c_int,
    arg1: *const c_char,
    arg2: *const c_char,
    _db: *const c_char,
    _trigger: *const c_char,
) -> c_int {
    if user.is_null() {
        return ffi::SQLITE_OK;
    }
    let (a1, a2) = (text(arg1), text(arg2));
    let allowed = match action {
        ffi::SQLITE_READ => {
            !reserved(a1) || a1.eq_ignore_ascii_case("sqlite_master") || a1.eq_ignore_ascii_case("sqlite_schema")
        }
        ffi::SQLITE_INSERT | ffi::SQLITE_UPDATE | ffi::SQLITE_DELETE => !reserved(a1),
        ffi::SQLITE_CREATE_TABLE
        | ffi::SQLITE_DROP_TABLE
        | ffi::SQLITE_CREATE_TEMP_TABLE
        | ffi::SQLITE_DROP_TEMP_TABLE
        | ffi::SQLITE_CREATE_VIEW
        | ffi::SQLITE_DROP_VIEW
        | ffi::SQLITE_CREATE_TEMP_VIEW
        | ffi::SQLITE_DROP_TEMP_VIEW
        | ffi::SQLITE_ANALYZE => !reserved(a1),
        ffi::SQLITE_ALTER_TABLE => !reserved(a2),
        // Index and trigger: arg1 its name, arg2 its table.
        ffi::SQLITE_CREATE_INDEX
        | ffi::SQLITE_DROP_INDEX
        | ffi::SQLITE_CREATE_TEMP_INDEX
        | ffi::SQLITE_DROP_TEMP_INDEX
        | ffi::SQLITE_CREATE_TRIGGER
        | ffi::SQLITE_DROP_TRIGGER
        | ffi::SQLITE_CREATE_TEMP_TRIGGER
        | ffi::SQLITE_DROP_TEMP_TRIGGER => !reserved(a1) && !reserved(a2),
        ffi::SQLITE_SELECT | ffi::SQLITE_RECURSIVE | ffi::SQLITE_REINDEX => true,
        ffi::SQLITE_FUNCTION => !(a2.eq_ignore_ascii_case("load_extension") || reserved(a2)),
        // The host opens and commits transactions; a component may only
        // give up the one it has.
        ffi::SQLITE_TRANSACTION => a1.eq_ignore_ascii_case("ROLLBACK"),
        // SAVEPOINT, PRAGMA, ATTACH, DETACH, virtual tables, anything new.
        _ => false,
    };
    if allowed {
        ffi::SQLITE_OK
    } else {
        tracing::debug!(action, a1, a2, "component SQL refused by the authorizer");
        ffi::SQLITE_DENY
    }
}
