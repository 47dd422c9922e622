//! The durable component store: every binary once, addressed by its
//! SHA-256, the versions each slot has had, and each slot's active version
//! with an activation sequence number (replicas follow it). One set of
//! tables for every kind of component, in the host's own database.

use sha2::{Digest, Sha256};

use crate::clock::now_ms;
use crate::database::changes::{Change, ChangeFeed};
use crate::database::migrations::{self, Migration, MigrationError};
use crate::database::{Database, Dialect, Rows, RunAs, SqlError, SqlLimits, Value, in_transaction};

/// Where a slot is: its kind ("product", later "pricing") and owner (the
/// platform for domain services, a merchant for plugins).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SlotKey {
    pub kind: String,
    pub owner: String,
}

impl SlotKey {
    pub fn new(kind: impl Into<String>, owner: impl Into<String>) -> Self {
        Self { kind: kind.into(), owner: owner.into() }
    }
}

impl std::fmt::Display for SlotKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.kind, self.owner)
    }
}

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

/// One version of a slot. A version is its binary: `version` is the full
/// hex SHA-256 of the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionInfo {
    pub slot: SlotKey,
    pub version: String,
    pub size_bytes: u64,
    pub source: VersionSource,
    pub created_at_ms: i64,
}

/// A slot's active version and how many activations it has seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activation {
    pub version: String,
    pub sequence: i64,
}

pub fn sha256_hex(wasm: &[u8]) -> String {
    hex::encode(Sha256::digest(wasm))
}

/// Bookkeeping reads are the host's own, so they get roomy limits.
const LIMITS: SqlLimits =
    SqlLimits { max_statement_bytes: 1 << 20, max_params: 100, max_rows: 1_000_000, max_result_bytes: 1 << 30 };

fn schema(dialect: Dialect) -> Vec<Migration> {
    let blob = match dialect {
        Dialect::Sqlite => "BLOB",
        Dialect::Postgres => "BYTEA",
    };
    vec![Migration {
        version: 1,
        name: "component store".into(),
        statements: vec![
            format!(
                "CREATE TABLE _polyscale_binaries (
                    sha256 TEXT PRIMARY KEY,
                    size_bytes BIGINT NOT NULL,
                    wasm {blob} NOT NULL,
                    created_at_ms BIGINT NOT NULL
                )"
            ),
            "CREATE TABLE _polyscale_slot_versions (
                kind TEXT NOT NULL,
                owner TEXT NOT NULL,
                sha256 TEXT NOT NULL REFERENCES _polyscale_binaries (sha256),
                source TEXT NOT NULL,
                created_at_ms BIGINT NOT NULL,
                PRIMARY KEY (kind, owner, sha256)
            )"
            .into(),
            "CREATE TABLE _polyscale_slots (
                kind TEXT NOT NULL,
                owner TEXT NOT NULL,
                active_sha256 TEXT NOT NULL,
                activation_seq BIGINT NOT NULL,
                activated_at_ms BIGINT NOT NULL,
                PRIMARY KEY (kind, owner)
            )"
            .into(),
        ],
    }]
}

#[derive(Clone)]
pub struct ComponentStore {
    db: Database,
    /// Tells the processes sharing the store about activations.
    changes: ChangeFeed,
}

impl ComponentStore {
    pub async fn open(db: Database) -> Result<Self, MigrationError> {
        migrations::apply(&db, "component-store", &schema(db.dialect()), &LIMITS, migrations::trusted, RunAs::Host)
            .await?;
        Ok(Self { changes: ChangeFeed::new(db.clone()), db })
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Activations (and plugin directory changes) made by any process on
    /// this store; [`ChangeFeed::listen`] relays the other processes'.
    pub fn changes(&self) -> &ChangeFeed {
        &self.changes
    }

    /// Records `wasm` as a version of `slot` (the binary once, whatever
    /// the number of slots that use it). Returns the version and whether
    /// the slot did not have it before.
    pub async fn insert(
        &self,
        slot: &SlotKey,
        wasm: &[u8],
        source: VersionSource,
    ) -> Result<(VersionInfo, bool), SqlError> {
        let sha = sha256_hex(wasm);
        let now = now_ms();
        let (slot_owned, sha_owned, wasm) = (slot.clone(), sha.clone(), wasm.to_vec());
        let inserted = in_transaction(&self.db, move |tx| {
            Box::pin(async move {
                tx.execute(
                    "INSERT INTO _polyscale_binaries (sha256, size_bytes, wasm, created_at_ms) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (sha256) DO NOTHING",
                    &[
                        Value::Text(sha_owned.clone()),
                        Value::Integer(wasm.len() as i64),
                        Value::Blob(wasm),
                        Value::Integer(now),
                    ],
                )
                .await?;
                tx.execute(
                    "INSERT INTO _polyscale_slot_versions (kind, owner, sha256, source, created_at_ms)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (kind, owner, sha256) DO NOTHING",
                    &[
                        Value::Text(slot_owned.kind.clone()),
                        Value::Text(slot_owned.owner.clone()),
                        Value::Text(sha_owned),
                        Value::Text(source.as_str().into()),
                        Value::Integer(now),
                    ],
                )
                .await
            })
        })
        .await?;
        let info = self.get(slot, &sha).await?.ok_or_else(|| SqlError::Other("version vanished".into()))?;
        Ok((info, inserted > 0))
    }

    pub async fn get(&self, slot: &SlotKey, version: &str) -> Result<Option<VersionInfo>, SqlError> {
        let rows = self
            .db
            .query(
                "SELECT v.sha256, b.size_bytes, v.source, v.created_at_ms
                 FROM _polyscale_slot_versions v JOIN _polyscale_binaries b ON b.sha256 = v.sha256
                 WHERE v.kind = $1 AND v.owner = $2 AND v.sha256 = $3",
                &[Value::Text(slot.kind.clone()), Value::Text(slot.owner.clone()), Value::Text(version.into())],
                &LIMITS,
            )
            .await?;
        Ok(infos(slot, rows).into_iter().next())
    }

    /// The slot's versions, newest first.
    pub async fn list(&self, slot: &SlotKey) -> Result<Vec<VersionInfo>, SqlError> {
        let rows = self
            .db
            .query(
                "SELECT v.sha256, b.size_bytes, v.source, v.created_at_ms
                 FROM _polyscale_slot_versions v JOIN _polyscale_binaries b ON b.sha256 = v.sha256
                 WHERE v.kind = $1 AND v.owner = $2 ORDER BY v.created_at_ms DESC, v.sha256",
                &[Value::Text(slot.kind.clone()), Value::Text(slot.owner.clone())],
                &LIMITS,
            )
            .await?;
        Ok(infos(slot, rows))
    }

    /// The version of `slot` whose id is `version` or starts with it (a
    /// prefix of at least 8 hex digits that only one version has).
    pub async fn resolve(&self, slot: &SlotKey, version: &str) -> Result<Option<VersionInfo>, SqlError> {
        let version = version.to_ascii_lowercase();
        if version.len() < 8 || !version.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let mut matching: Vec<VersionInfo> =
            self.list(slot).await?.into_iter().filter(|v| v.version.starts_with(&version)).collect();
        Ok(if matching.len() == 1 { matching.pop() } else { None })
    }

    /// The bytes of a binary.
    pub async fn wasm(&self, sha256: &str) -> Result<Option<Vec<u8>>, SqlError> {
        let rows = self
            .db
            .query("SELECT wasm FROM _polyscale_binaries WHERE sha256 = $1", &[Value::Text(sha256.into())], &LIMITS)
            .await?;
        Ok(rows.rows.into_iter().next().and_then(|mut r| match r.pop() {
            Some(Value::Blob(b)) => Some(b),
            _ => None,
        }))
    }

    pub async fn active(&self, slot: &SlotKey) -> Result<Option<Activation>, SqlError> {
        let rows = self
            .db
            .query(
                "SELECT active_sha256, activation_seq FROM _polyscale_slots WHERE kind = $1 AND owner = $2",
                &[Value::Text(slot.kind.clone()), Value::Text(slot.owner.clone())],
                &LIMITS,
            )
            .await?;
        Ok(rows.rows.into_iter().next().and_then(|r| match r.as_slice() {
            [Value::Text(version), Value::Integer(sequence)] => {
                Some(Activation { version: version.clone(), sequence: *sequence })
            }
            _ => None,
        }))
    }

    /// Makes `version` the slot's active one; returns the new sequence
    /// number.
    pub async fn set_active(&self, slot: &SlotKey, version: &str) -> Result<i64, SqlError> {
        let rows = self
            .db
            .query(
                "INSERT INTO _polyscale_slots (kind, owner, active_sha256, activation_seq, activated_at_ms)
                 VALUES ($1, $2, $3, 1, $4)
                 ON CONFLICT (kind, owner) DO UPDATE SET active_sha256 = excluded.active_sha256,
                    activation_seq = _polyscale_slots.activation_seq + 1, activated_at_ms = excluded.activated_at_ms
                 RETURNING activation_seq",
                &[
                    Value::Text(slot.kind.clone()),
                    Value::Text(slot.owner.clone()),
                    Value::Text(version.into()),
                    Value::Integer(now_ms()),
                ],
                &LIMITS,
            )
            .await?;
        let sequence = match rows.rows.first().map(Vec::as_slice) {
            Some([Value::Integer(seq)]) => *seq,
            _ => return Err(SqlError::Other("activation returned no sequence number".into())),
        };
        // Committed: the other processes follow on this notification or,
        // if it is lost, on their next resync.
        let change = Change::Activation { kind: slot.kind.clone(), owner: slot.owner.clone(), sequence };
        if let Err(e) = self.changes.publish(change).await {
            tracing::warn!(slot = %slot, sequence, error = ?e, "activation not announced; replicas follow at their next resync");
        }
        Ok(sequence)
    }

    /// The active version and sequence of every slot of `kind`, by owner.
    pub async fn activations(&self, kind: &str) -> Result<Vec<(String, Activation)>, SqlError> {
        let rows = self
            .db
            .query(
                "SELECT owner, active_sha256, activation_seq FROM _polyscale_slots WHERE kind = $1",
                &[Value::Text(kind.into())],
                &LIMITS,
            )
            .await?;
        Ok(rows
            .rows
            .into_iter()
            .filter_map(|r| match r.as_slice() {
                [Value::Text(owner), Value::Text(version), Value::Integer(sequence)] => {
                    Some((owner.clone(), Activation { version: version.clone(), sequence: *sequence }))
                }
                _ => None,
            })
            .collect())
    }
}

fn infos(slot: &SlotKey, rows: Rows) -> Vec<VersionInfo> {
    rows.rows
        .into_iter()
        .filter_map(|r| match r.as_slice() {
            [Value::Text(sha256), Value::Integer(size), Value::Text(source), Value::Integer(created)] => {
                Some(VersionInfo {
                    slot: slot.clone(),
                    version: sha256.clone(),
                    size_bytes: *size as u64,
                    source: if source == "embedded" { VersionSource::Embedded } else { VersionSource::Deployed },
                    created_at_ms: *created,
                })
            }
            _ => None,
        })
        .collect()
}
