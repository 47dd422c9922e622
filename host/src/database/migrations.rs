//! Applying a component's migrations: once, in order, each in its own
//! transaction together with its record.
//!
//! Forward-only. A migration already applied must not change (its checksum
//! is recorded); a version that lists fewer migrations than were applied is
//! an older version being rolled back to, which is allowed: it must work on
//! the newer schema (expand/contract), see docs/components.md.

use sha2::{Digest, Sha256};

use super::{Database, Dialect, RunAs, SqlError, SqlLimits, Transaction, Value, in_transaction};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    pub version: u32,
    pub name: String,
    pub statements: Vec<String>,
}

impl Migration {
    fn checksum(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.name.as_bytes());
        for s in &self.statements {
            h.update([0]);
            h.update(s.as_bytes());
        }
        hex::encode(h.finalize())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error("migration versions must run 1, 2, 3... without gaps; found {found} where {expected} was expected")]
    OutOfOrder { expected: u32, found: u32 },
    #[error("migration {version} ({name}) was changed after it was applied; add a new migration instead")]
    Changed { version: u32, name: String },
    #[error("migration {version} ({name}) failed: {error:?}")]
    Failed { version: u32, name: String, error: SqlError },
    #[error("reading applied migrations: {0:?}")]
    Storage(SqlError),
}

pub async fn ensure_table(db: &Database) -> Result<(), SqlError> {
    db.execute(
        "CREATE TABLE IF NOT EXISTS _polyscale_migrations (
            component TEXT NOT NULL,
            version BIGINT NOT NULL,
            name TEXT NOT NULL,
            checksum TEXT NOT NULL,
            applied_at_ms BIGINT NOT NULL,
            PRIMARY KEY (component, version)
        )",
        &[],
    )
    .await?;
    Ok(())
}

async fn applied_checksum(tx: &mut Transaction, component: &str, version: u32) -> Result<Option<String>, SqlError> {
    let rows = tx
        .query(
            "SELECT checksum FROM _polyscale_migrations WHERE component = $1 AND version = $2",
            &[Value::Text(component.into()), Value::Integer(version.into())],
            &SqlLimits::default(),
        )
        .await?;
    Ok(rows.rows.into_iter().next().and_then(|mut r| match r.pop() {
        Some(Value::Text(c)) => Some(c),
        _ => None,
    }))
}

/// Checks one migration statement before it runs (component migrations
/// pass the `sql` capability's guard; the host's own pass [`trusted`]).
pub type StatementCheck = fn(Dialect, &str, &SqlLimits) -> Result<(), SqlError>;

/// The check for the host's own migrations.
pub fn trusted(_: Dialect, _: &str, _: &SqlLimits) -> Result<(), SqlError> {
    Ok(())
}

/// Applies what is missing; returns the versions applied now. Each
/// migration statement passes `check` and runs as `run_as` (a component's
/// migrations run in its sandbox); the bookkeeping runs as the host.
pub async fn apply(
    db: &Database,
    component: &str,
    migrations: &[Migration],
    limits: &SqlLimits,
    check: StatementCheck,
    run_as: RunAs,
) -> Result<Vec<u32>, MigrationError> {
    ensure_table(db).await.map_err(MigrationError::Storage)?;
    for (i, m) in migrations.iter().enumerate() {
        let expected = i as u32 + 1;
        if m.version != expected {
            return Err(MigrationError::OutOfOrder { expected, found: m.version });
        }
    }
    let mut applied = Vec::new();
    for m in migrations {
        let checksum = m.checksum();
        let dialect = db.dialect();
        let component_owned = component.to_string();
        let limits = *limits;
        let m_owned = m.clone();
        let outcome = in_transaction(db, move |tx| {
            Box::pin(async move {
                if dialect == Dialect::Postgres {
                    // Replicas starting together apply each migration once.
                    tx.execute(
                        "SELECT pg_advisory_xact_lock(hashtext('polyscale-migrations-' || $1))",
                        &[Value::Text(component_owned.clone())],
                    )
                    .await?;
                }
                match applied_checksum(tx, &component_owned, m_owned.version).await? {
                    Some(existing) if existing == checksum => return Ok(Step::AlreadyApplied),
                    Some(_) => return Ok(Step::Changed),
                    None => {}
                }
                for statement in &m_owned.statements {
                    check(dialect, statement, &limits).map_err(|e| StepError(e, true))?;
                    tx.execute_as(run_as, statement, &[]).await.map_err(|e| StepError(e, true))?;
                }
                tx.execute(
                    "INSERT INTO _polyscale_migrations (component, version, name, checksum, applied_at_ms) \
                     VALUES ($1, $2, $3, $4, $5)",
                    &[
                        Value::Text(component_owned.clone()),
                        Value::Integer(m_owned.version.into()),
                        Value::Text(m_owned.name.clone()),
                        Value::Text(checksum),
                        Value::Integer(crate::clock::now_ms()),
                    ],
                )
                .await?;
                Ok(Step::Applied)
            })
        })
        .await;
        match outcome {
            Ok(Step::Applied) => {
                tracing::info!(component, version = m.version, name = %m.name, "migration applied");
                applied.push(m.version);
            }
            Ok(Step::AlreadyApplied) => {}
            Ok(Step::Changed) => return Err(MigrationError::Changed { version: m.version, name: m.name.clone() }),
            Err(StepError(error, true)) => {
                return Err(MigrationError::Failed { version: m.version, name: m.name.clone(), error });
            }
            Err(StepError(error, false)) => return Err(MigrationError::Storage(error)),
        }
    }
    Ok(applied)
}

enum Step {
    Applied,
    AlreadyApplied,
    Changed,
}

/// A failed step; the flag says whether the migration's own SQL failed
/// (true) or the host's bookkeeping (false).
struct StepError(SqlError, bool);

impl From<SqlError> for StepError {
    fn from(e: SqlError) -> Self {
        StepError(e, false)
    }
}
