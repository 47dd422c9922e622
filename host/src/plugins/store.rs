//! What the host knows of each merchant plugin beyond its binaries: its
//! kind, place among the merchant's plugins, failure mode, settings,
//! whether it runs, the version to roll back to, and who uploaded each
//! version. Kept in the component store's database (beside the binaries
//! and the active pointers), so every replica sees the same plugins.
//!
//! A plugin's versions and active version are its registry slot's: kind
//! `pricing` or `validation`, owner `<merchant id>/<plugin name>`.

use std::collections::BTreeMap;

use crate::clock::now_ms;
use crate::database::migrations::{self, Migration, MigrationError};
use crate::database::{Database, RunAs, SqlError, SqlLimits, Value};

const LIMITS: SqlLimits =
    SqlLimits { max_statement_bytes: 1 << 20, max_params: 100, max_rows: 100_000, max_result_bytes: 1 << 28 };

fn schema() -> Vec<Migration> {
    vec![Migration {
        version: 1,
        name: "merchant plugins".into(),
        statements: vec![
            "CREATE TABLE _polyscale_plugins (
                merchant_id TEXT NOT NULL,
                name TEXT NOT NULL,
                kind TEXT NOT NULL,
                enabled INTEGER NOT NULL,
                position INTEGER NOT NULL,
                on_failure TEXT NOT NULL,
                settings TEXT NOT NULL,
                previous_version TEXT,
                created_at_ms BIGINT NOT NULL,
                updated_at_ms BIGINT NOT NULL,
                PRIMARY KEY (merchant_id, name)
            )"
            .into(),
            "CREATE TABLE _polyscale_plugin_uploads (
                merchant_id TEXT NOT NULL,
                name TEXT NOT NULL,
                sha256 TEXT NOT NULL,
                uploaded_by TEXT NOT NULL,
                uploaded_at_ms BIGINT NOT NULL,
                PRIMARY KEY (merchant_id, name, sha256)
            )"
            .into(),
            "CREATE TABLE _polyscale_plugin_failures (
                id TEXT PRIMARY KEY,
                merchant_id TEXT NOT NULL,
                name TEXT NOT NULL,
                version TEXT NOT NULL,
                kind TEXT NOT NULL,
                message TEXT NOT NULL,
                input TEXT NOT NULL,
                at_ms BIGINT NOT NULL
            )"
            .into(),
            "CREATE INDEX _polyscale_plugin_failures_by_plugin ON _polyscale_plugin_failures (merchant_id, name, at_ms)"
                .into(),
        ],
    }]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PluginKind {
    Pricing,
    Validation,
}

impl PluginKind {
    /// Also the registry kind of its slots.
    pub fn as_str(self) -> &'static str {
        match self {
            PluginKind::Pricing => "pricing",
            PluginKind::Validation => "validation",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "pricing" => Some(PluginKind::Pricing),
            "validation" => Some(PluginKind::Validation),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureMode {
    /// The cart cannot be checked out (the default).
    Block,
    /// The plugin is left out of the call.
    Skip,
}

impl FailureMode {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureMode::Block => "block",
            FailureMode::Skip => "skip",
        }
    }
}

/// One plugin's record.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginRecord {
    pub merchant_id: String,
    pub name: String,
    pub kind: PluginKind,
    pub enabled: bool,
    pub position: i32,
    pub on_failure: FailureMode,
    pub settings: BTreeMap<String, String>,
    pub previous_version: Option<String>,
    pub updated_at_ms: i64,
}

impl PluginRecord {
    /// The owner of its registry slot.
    pub fn owner(&self) -> String {
        slot_owner(&self.merchant_id, &self.name)
    }
}

pub fn slot_owner(merchant_id: &str, name: &str) -> String {
    format!("{merchant_id}/{name}")
}

/// Who uploaded a version, and when.
#[derive(Debug, Clone, PartialEq)]
pub struct Upload {
    pub sha256: String,
    pub uploaded_by: String,
    pub uploaded_at_ms: i64,
}

/// What may change in [`PluginStore::configure`].
#[derive(Debug, Default, Clone)]
pub struct Changes {
    pub settings: Option<BTreeMap<String, String>>,
    pub on_failure: Option<FailureMode>,
    pub position: Option<i32>,
    pub enabled: Option<bool>,
    /// `Some(None)` clears it.
    pub previous_version: Option<Option<String>>,
}

#[derive(Clone)]
pub struct PluginStore {
    db: Database,
}

const COLUMNS: &str =
    "merchant_id, name, kind, enabled, position, on_failure, settings, previous_version, updated_at_ms";

impl PluginStore {
    pub async fn open(db: Database) -> Result<Self, MigrationError> {
        migrations::apply(&db, "plugin-store", &schema(), &LIMITS, migrations::trusted, RunAs::Host).await?;
        Ok(Self { db })
    }

    pub async fn get(&self, merchant_id: &str, name: &str) -> Result<Option<PluginRecord>, SqlError> {
        let rows = self
            .db
            .query(
                &format!("SELECT {COLUMNS} FROM _polyscale_plugins WHERE merchant_id = $1 AND name = $2"),
                &[Value::Text(merchant_id.into()), Value::Text(name.into())],
                &LIMITS,
            )
            .await?;
        Ok(rows.rows.into_iter().find_map(record))
    }

    /// The merchant's plugins, by kind, position and name.
    pub async fn list(&self, merchant_id: &str) -> Result<Vec<PluginRecord>, SqlError> {
        let rows = self
            .db
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM _polyscale_plugins WHERE merchant_id = $1 ORDER BY kind, position, name"
                ),
                &[Value::Text(merchant_id.into())],
                &LIMITS,
            )
            .await?;
        Ok(rows.rows.into_iter().filter_map(record).collect())
    }

    /// Records an upload, creating the plugin (disabled, last in its
    /// kind's order, blocking on failure) on its first. The kind of an
    /// existing plugin does not change: returns the record as it is.
    pub async fn record_upload(
        &self,
        merchant_id: &str,
        name: &str,
        kind: PluginKind,
        sha256: &str,
        uploaded_by: &str,
    ) -> Result<PluginRecord, SqlError> {
        let now = now_ms();
        self.db
            .execute(
                "INSERT INTO _polyscale_plugins (merchant_id, name, kind, enabled, position, on_failure, settings, \
                 previous_version, created_at_ms, updated_at_ms) \
                 SELECT $1, $2, $3, 0, COALESCE(MAX(position), 0) + 1, 'block', '{}', NULL, $4, $4 \
                 FROM _polyscale_plugins WHERE merchant_id = $1 \
                 ON CONFLICT (merchant_id, name) DO NOTHING",
                &[
                    Value::Text(merchant_id.into()),
                    Value::Text(name.into()),
                    Value::Text(kind.as_str().into()),
                    Value::Integer(now),
                ],
            )
            .await?;
        self.db
            .execute(
                "INSERT INTO _polyscale_plugin_uploads (merchant_id, name, sha256, uploaded_by, uploaded_at_ms) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (merchant_id, name, sha256) DO NOTHING",
                &[
                    Value::Text(merchant_id.into()),
                    Value::Text(name.into()),
                    Value::Text(sha256.into()),
                    Value::Text(uploaded_by.into()),
                    Value::Integer(now),
                ],
            )
            .await?;
        self.get(merchant_id, name).await?.ok_or_else(|| SqlError::Other("plugin vanished".into()))
    }

    pub async fn uploads(&self, merchant_id: &str, name: &str) -> Result<Vec<Upload>, SqlError> {
        let rows = self
            .db
            .query(
                "SELECT sha256, uploaded_by, uploaded_at_ms FROM _polyscale_plugin_uploads \
                 WHERE merchant_id = $1 AND name = $2",
                &[Value::Text(merchant_id.into()), Value::Text(name.into())],
                &LIMITS,
            )
            .await?;
        Ok(rows
            .rows
            .into_iter()
            .filter_map(|r| match r.as_slice() {
                [Value::Text(sha256), Value::Text(by), Value::Integer(at)] => {
                    Some(Upload { sha256: sha256.clone(), uploaded_by: by.clone(), uploaded_at_ms: *at })
                }
                _ => None,
            })
            .collect())
    }

    pub async fn configure(&self, merchant_id: &str, name: &str, changes: Changes) -> Result<bool, SqlError> {
        let mut sets = vec!["updated_at_ms = $3".to_string()];
        let mut params = vec![Value::Text(merchant_id.into()), Value::Text(name.into()), Value::Integer(now_ms())];
        let mut push = |column: &str, value: Value| {
            params.push(value);
            sets.push(format!("{column} = ${}", params.len()));
        };
        if let Some(settings) = changes.settings {
            let json = serde_json::to_string(&settings).map_err(|e| SqlError::Other(e.to_string()))?;
            push("settings", Value::Text(json));
        }
        if let Some(mode) = changes.on_failure {
            push("on_failure", Value::Text(mode.as_str().into()));
        }
        if let Some(position) = changes.position {
            push("position", Value::Integer(position.into()));
        }
        if let Some(enabled) = changes.enabled {
            push("enabled", Value::Integer(enabled.into()));
        }
        if let Some(previous) = changes.previous_version {
            push("previous_version", previous.map_or(Value::Null, Value::Text));
        }
        let changed = self
            .db
            .execute(
                &format!("UPDATE _polyscale_plugins SET {} WHERE merchant_id = $1 AND name = $2", sets.join(", ")),
                &params,
            )
            .await?;
        Ok(changed > 0)
    }
}

/// A failed call's input, kept for its merchant to replay.
#[derive(Debug, Clone, PartialEq)]
pub struct FailedCall {
    pub id: String,
    pub merchant_id: String,
    pub name: String,
    pub version: String,
    pub kind: String,
    pub message: String,
    /// The plugin's input, as JSON.
    pub input: String,
    pub at_ms: i64,
}

impl PluginStore {
    /// Keeps a failed call's input: the newest `keep` per plugin, none
    /// older than `max_age_ms`.
    pub async fn record_failure(&self, failed: &FailedCall, keep: usize, max_age_ms: i64) -> Result<(), SqlError> {
        self.db
            .execute(
                "INSERT INTO _polyscale_plugin_failures (id, merchant_id, name, version, kind, message, input, at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    Value::Text(failed.id.clone()),
                    Value::Text(failed.merchant_id.clone()),
                    Value::Text(failed.name.clone()),
                    Value::Text(failed.version.clone()),
                    Value::Text(failed.kind.clone()),
                    Value::Text(failed.message.clone()),
                    Value::Text(failed.input.clone()),
                    Value::Integer(failed.at_ms),
                ],
            )
            .await?;
        self.db
            .execute(
                "DELETE FROM _polyscale_plugin_failures WHERE merchant_id = $1 AND name = $2 AND (at_ms < $3 OR id NOT IN \
                 (SELECT id FROM _polyscale_plugin_failures WHERE merchant_id = $1 AND name = $2 \
                  ORDER BY at_ms DESC, id DESC LIMIT $4))",
                &[
                    Value::Text(failed.merchant_id.clone()),
                    Value::Text(failed.name.clone()),
                    Value::Integer(failed.at_ms - max_age_ms),
                    Value::Integer(keep as i64),
                ],
            )
            .await?;
        Ok(())
    }

    /// A kept failed call of the merchant's, by id.
    pub async fn failure(&self, merchant_id: &str, id: &str, max_age_ms: i64) -> Result<Option<FailedCall>, SqlError> {
        let rows = self
            .db
            .query(
                "SELECT id, merchant_id, name, version, kind, message, input, at_ms FROM _polyscale_plugin_failures \
                 WHERE merchant_id = $1 AND id = $2 AND at_ms >= $3",
                &[Value::Text(merchant_id.into()), Value::Text(id.into()), Value::Integer(now_ms() - max_age_ms)],
                &LIMITS,
            )
            .await?;
        Ok(rows.rows.into_iter().find_map(|r| match r.as_slice() {
            [
                Value::Text(id),
                Value::Text(merchant_id),
                Value::Text(name),
                Value::Text(version),
                Value::Text(kind),
                Value::Text(message),
                Value::Text(input),
                Value::Integer(at_ms),
            ] => Some(FailedCall {
                id: id.clone(),
                merchant_id: merchant_id.clone(),
                name: name.clone(),
                version: version.clone(),
                kind: kind.clone(),
                message: message.clone(),
                input: input.clone(),
                at_ms: *at_ms,
            }),
            _ => None,
        }))
    }
}

fn record(row: Vec<Value>) -> Option<PluginRecord> {
    match row.as_slice() {
        [
            Value::Text(merchant_id),
            Value::Text(name),
            Value::Text(kind),
            Value::Integer(enabled),
            Value::Integer(position),
            Value::Text(on_failure),
            Value::Text(settings),
            previous,
            Value::Integer(updated_at_ms),
        ] => Some(PluginRecord {
            merchant_id: merchant_id.clone(),
            name: name.clone(),
            kind: PluginKind::parse(kind)?,
            enabled: *enabled != 0,
            position: i32::try_from(*position).unwrap_or(i32::MAX),
            on_failure: if on_failure == "skip" { FailureMode::Skip } else { FailureMode::Block },
            settings: serde_json::from_str(settings).unwrap_or_default(),
            previous_version: match previous {
                Value::Text(v) => Some(v.clone()),
                _ => None,
            },
            updated_at_ms: *updated_at_ms,
        }),
        _ => None,
    }
}
