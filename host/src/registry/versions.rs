//! Stored component versions and the active pointer, in the slot's own
//! database.

use sha2::{Digest, Sha256};

use crate::capabilities::sql::{Database, Dialect, Rows, SqlError, SqlLimits, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSource {
    /// Built into the binary.
    Embedded,
    /// Deployed through the admin API.
    Deployed,
}

impl VersionSource {
    pub fn as_str(self) -> &'static str {
        match self {
            VersionSource::Embedded => "embedded",
            VersionSource::Deployed => "deployed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionInfo {
    pub component: String,
    /// First 16 hex digits of the binary's SHA-256.
    pub version: String,
    pub sha256: String,
    pub size_bytes: u64,
    pub source: VersionSource,
    pub created_at_ms: i64,
}

pub fn version_id(wasm: &[u8]) -> String {
    hex::encode(&Sha256::digest(wasm)[..8])
}

const LIMITS: SqlLimits =
    SqlLimits { max_statement_bytes: 1 << 20, max_params: 100, max_rows: 100_000, max_result_bytes: 1 << 30 };

pub async fn ensure_tables(db: &Database) -> Result<(), SqlError> {
    let blob = match db.dialect() {
        Dialect::Sqlite => "BLOB",
        Dialect::Postgres => "BYTEA",
    };
    db.execute(
        &format!(
            "CREATE TABLE IF NOT EXISTS _polyscale_component_versions (
                component TEXT NOT NULL,
                version TEXT NOT NULL,
                sha256 TEXT NOT NULL,
                size_bytes BIGINT NOT NULL,
                source TEXT NOT NULL,
                created_at_ms BIGINT NOT NULL,
                wasm {blob} NOT NULL,
                PRIMARY KEY (component, version)
            )"
        ),
        &[],
    )
    .await?;
    db.execute(
        "CREATE TABLE IF NOT EXISTS _polyscale_active_components (
            component TEXT PRIMARY KEY,
            version TEXT NOT NULL,
            activated_at_ms BIGINT NOT NULL
        )",
        &[],
    )
    .await?;
    Ok(())
}

/// Stores a version unless it is already there; true if it was new.
pub async fn insert(db: &Database, info: &VersionInfo, wasm: &[u8]) -> Result<bool, SqlError> {
    let inserted = db
        .execute(
            "INSERT INTO _polyscale_component_versions
                (component, version, sha256, size_bytes, source, created_at_ms, wasm)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (component, version) DO NOTHING",
            &[
                Value::Text(info.component.clone()),
                Value::Text(info.version.clone()),
                Value::Text(info.sha256.clone()),
                Value::Integer(info.size_bytes as i64),
                Value::Text(info.source.as_str().into()),
                Value::Integer(info.created_at_ms),
                Value::Blob(wasm.to_vec()),
            ],
        )
        .await?;
    Ok(inserted > 0)
}

const INFO_COLUMNS: &str = "component, version, sha256, size_bytes, source, created_at_ms";

fn infos(rows: Rows) -> Vec<VersionInfo> {
    rows.rows
        .into_iter()
        .filter_map(|r| match r.as_slice() {
            [
                Value::Text(component),
                Value::Text(version),
                Value::Text(sha256),
                Value::Integer(size),
                Value::Text(source),
                Value::Integer(created),
            ] => Some(VersionInfo {
                component: component.clone(),
                version: version.clone(),
                sha256: sha256.clone(),
                size_bytes: *size as u64,
                source: if source == "embedded" { VersionSource::Embedded } else { VersionSource::Deployed },
                created_at_ms: *created,
            }),
            _ => None,
        })
        .collect()
}

pub async fn get(db: &Database, component: &str, version: &str) -> Result<Option<VersionInfo>, SqlError> {
    let rows = db
        .query(
            &format!("SELECT {INFO_COLUMNS} FROM _polyscale_component_versions WHERE component = $1 AND version = $2"),
            &[Value::Text(component.into()), Value::Text(version.into())],
            &LIMITS,
        )
        .await?;
    Ok(infos(rows).into_iter().next())
}

pub async fn list(db: &Database, component: &str) -> Result<Vec<VersionInfo>, SqlError> {
    let rows = db
        .query(
            &format!(
                "SELECT {INFO_COLUMNS} FROM _polyscale_component_versions WHERE component = $1 \
                 ORDER BY created_at_ms DESC, version"
            ),
            &[Value::Text(component.into())],
            &LIMITS,
        )
        .await?;
    Ok(infos(rows))
}

pub async fn wasm(db: &Database, component: &str, version: &str) -> Result<Option<Vec<u8>>, SqlError> {
    let rows = db
        .query(
            "SELECT wasm FROM _polyscale_component_versions WHERE component = $1 AND version = $2",
            &[Value::Text(component.into()), Value::Text(version.into())],
            &LIMITS,
        )
        .await?;
    Ok(rows.rows.into_iter().next().and_then(|mut r| match r.pop() {
        Some(Value::Blob(b)) => Some(b),
        _ => None,
    }))
}

pub async fn active(db: &Database, component: &str) -> Result<Option<String>, SqlError> {
    let rows = db
        .query(
            "SELECT version FROM _polyscale_active_components WHERE component = $1",
            &[Value::Text(component.into())],
            &LIMITS,
        )
        .await?;
    Ok(rows.rows.into_iter().next().and_then(|mut r| match r.pop() {
        Some(Value::Text(v)) => Some(v),
        _ => None,
    }))
}

pub async fn set_active(db: &Database, component: &str, version: &str) -> Result<(), SqlError> {
    let now = crate::runtime::CallInfo::new("", None).now_ms;
    db.execute(
        "INSERT INTO _polyscale_active_components (component, version, activated_at_ms) VALUES ($1, $2, $3)
         ON CONFLICT (component) DO UPDATE SET version = excluded.version, activated_at_ms = excluded.activated_at_ms",
        &[Value::Text(component.into()), Value::Text(version.into()), Value::Integer(now)],
    )
    .await?;
    Ok(())
}
