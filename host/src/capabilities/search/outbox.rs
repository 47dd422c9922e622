//! The search outbox: index changes recorded in the same transaction as
//! the data they describe, and the task that applies them to the engine.
//!
//! Delivery is at least once and in order of commit sequence. Rows are
//! deleted by exact sequence number after the engine accepted them (never
//! "everything up to N": on PostgreSQL a lower number can commit after a
//! higher one was read). While the engine is down, writes go on, rows
//! accumulate, and the drainer retries with backoff up to 30 s.
//!
//! Replicas of the product service share the outbox; one drainer works at
//! a time: the holder of the `search-outbox` [`Lease`]. The others check
//! every second and take over within the lease's term if the holder stops.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{IndexOp, SearchService};
use crate::database::lease::{self, Lease};
use crate::database::{Database, Dialect, SqlError, SqlLimits, Transaction, Value};

const BATCH: i64 = 500;
const POLL: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often a replica that does not hold the lease checks it.
const STANDBY_POLL: Duration = Duration::from_secs(1);

pub async fn ensure_table(db: &Database) -> Result<(), SqlError> {
    let seq = match db.dialect() {
        Dialect::Sqlite => "INTEGER PRIMARY KEY AUTOINCREMENT",
        Dialect::Postgres => "BIGSERIAL PRIMARY KEY",
    };
    db.execute(
        &format!(
            "CREATE TABLE IF NOT EXISTS _polyscale_search_outbox (
                seq {seq},
                index_name TEXT NOT NULL,
                op TEXT NOT NULL,
                enqueued_at_ms BIGINT NOT NULL
            )"
        ),
        &[],
    )
    .await?;
    Lease::ensure_table(db).await
}

/// Records a change within the component's transaction.
pub async fn enqueue(tx: &mut Transaction, index: &str, op: &IndexOp) -> Result<(), SqlError> {
    let json = serde_json::to_string(op).map_err(|e| SqlError::Other(e.to_string()))?;
    tx.execute(
        "INSERT INTO _polyscale_search_outbox (index_name, op, enqueued_at_ms) VALUES ($1, $2, $3)",
        &[Value::Text(index.into()), Value::Text(json), Value::Integer(crate::clock::now_ms())],
    )
    .await?;
    Ok(())
}

/// Rows waiting to be applied.
pub async fn pending(db: &Database) -> Result<u64, SqlError> {
    let rows =
        db.query("SELECT CAST(COUNT(*) AS BIGINT) FROM _polyscale_search_outbox", &[], &SqlLimits::default()).await?;
    Ok(match rows.rows.first().and_then(|r| r.first()) {
        Some(Value::Integer(n)) => *n as u64,
        _ => 0,
    })
}

/// `polyscale_search_outbox_pending` (rows not yet in the engine) and
/// `polyscale_search_outbox_lag_seconds` (the age of the oldest), after
/// each drain by the lease holder.
async fn record_lag(db: &Database) {
    let sql = "SELECT CAST(COUNT(*) AS BIGINT), CAST(MIN(enqueued_at_ms) AS BIGINT) FROM _polyscale_search_outbox";
    let Ok(rows) = db.query(sql, &[], &SqlLimits::default()).await else { return };
    let (pending, oldest) = match rows.rows.first().map(Vec::as_slice) {
        Some([Value::Integer(n), Value::Integer(oldest)]) => (*n, Some(*oldest)),
        Some([Value::Integer(n), _]) => (*n, None),
        _ => return,
    };
    metrics::gauge!("polyscale_search_outbox_pending").set(pending as f64);
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    let lag = oldest.map_or(0.0, |t| (now_ms - t).max(0) as f64 / 1000.0);
    metrics::gauge!("polyscale_search_outbox_lag_seconds").set(lag);
}

#[derive(Debug, thiserror::Error)]
pub enum DrainError {
    #[error("reading the outbox: {0:?}")]
    Outbox(SqlError),
    #[error("the search engine refused the batch: {0:?}")]
    Engine(super::SearchError),
}

/// Applies one batch; returns how many rows it applied.
pub async fn drain_once(db: &Database, service: &SearchService) -> Result<usize, DrainError> {
    let rows = db
        .query(
            "SELECT seq, index_name, op FROM _polyscale_search_outbox ORDER BY seq LIMIT $1",
            &[Value::Integer(BATCH)],
            &SqlLimits { max_result_bytes: 256 << 20, ..SqlLimits::default() },
        )
        .await
        .map_err(DrainError::Outbox)?;
    if rows.rows.is_empty() {
        return Ok(0);
    }
    // Runs of the same index go to the engine together, in order.
    let mut done: Vec<i64> = Vec::with_capacity(rows.rows.len());
    let mut run: Vec<IndexOp> = Vec::new();
    let mut run_index: Option<String> = None;
    let mut malformed = Vec::new();
    for row in &rows.rows {
        let [Value::Integer(seq), Value::Text(index), Value::Text(op)] = row.as_slice() else { continue };
        let Ok(op) = serde_json::from_str::<IndexOp>(op) else {
            // Written by this host, so this is a bug; keep the rest moving.
            tracing::error!(seq, "unreadable outbox row dropped");
            malformed.push(*seq);
            continue;
        };
        if run_index.as_deref() != Some(index.as_str()) {
            if let Some(i) = run_index.take() {
                service.backend.apply(&i, &std::mem::take(&mut run)).await.map_err(DrainError::Engine)?;
            }
            run_index = Some(index.clone());
        }
        run.push(op);
        done.push(*seq);
    }
    if let Some(i) = run_index {
        service.backend.apply(&i, &run).await.map_err(DrainError::Engine)?;
    }
    done.extend(malformed);
    let placeholders: Vec<String> = (1..=done.len()).map(|i| format!("${i}")).collect();
    let params: Vec<Value> = done.iter().map(|s| Value::Integer(*s)).collect();
    db.execute(&format!("DELETE FROM _polyscale_search_outbox WHERE seq IN ({})", placeholders.join(", ")), &params)
        .await
        .map_err(DrainError::Outbox)?;
    Ok(done.len())
}

/// Drains until `shutdown`, retrying with backoff while the engine (or the
/// database) is unavailable.
pub fn spawn_drainer(
    db: Database,
    service: Arc<SearchService>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut backoff = POLL;
        let mut failing = false;
        let mut lease = Lease::new("search-outbox", lease::DEFAULT_TERM);
        loop {
            let held = lease.hold(&db).await;
            let wait = match held {
                Ok(false) => Some(STANDBY_POLL),
                Ok(true) => None,
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = ?e, "search indexing paused: the database does not answer");
                        failing = true;
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    Some(backoff)
                }
            };
            if let Some(wait) = wait {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
                continue;
            }
            let wait = match drain_once(&db, &service).await {
                Ok(n) => {
                    if failing {
                        tracing::info!(engine = service.backend.engine(), "search engine reachable again; catching up");
                        failing = false;
                    }
                    backoff = POLL;
                    metrics::counter!("polyscale_search_indexed_total").increment(n as u64);
                    record_lag(&db).await;
                    if n as i64 >= BATCH { Duration::ZERO } else { POLL }
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "search indexing paused; writes continue and are kept in the outbox");
                        failing = true;
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    backoff
                }
            };
            if wait.is_zero() {
                continue;
            }
            tokio::select! {
                _ = shutdown.cancelled() => {
                    lease.release(&db).await;
                    return;
                }
                _ = tokio::time::sleep(wait) => {}
                _ = service.queued.notified(), if !failing => {
                    // Let the writer's transaction commit first.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    })
}
