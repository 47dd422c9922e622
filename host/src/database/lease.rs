//! Leases: one process of several sharing a database does a job (drains
//! the search outbox, say) while the others stand by, and one of them
//! takes over within the lease's term when the holder stops renewing.
//!
//! A lease is a row (`_polyscale_leases`: name, holder, expiry in ms since
//! the epoch) taken or renewed with one conditional upsert, so two
//! processes cannot both hold it. Expiry is read from the holder's clock:
//! replicas' clocks must agree to well within the term (NTP does).

use std::time::{Duration, Instant};

use super::{Database, SqlError, SqlLimits, Value};

/// Default term of a lease.
pub const DEFAULT_TERM: Duration = Duration::from_secs(10);

pub struct Lease {
    name: String,
    holder: String,
    term: Duration,
    /// Until when this process holds it, as far as it knows.
    held_until: Option<Instant>,
}

impl Lease {
    /// A lease on `name`, for this process (a random holder id).
    pub fn new(name: impl Into<String>, term: Duration) -> Self {
        let mut id = [0u8; 8];
        getrandom::fill(&mut id).expect("the OS random source");
        let holder = format!("{}-{}", std::process::id(), id.iter().map(|b| format!("{b:02x}")).collect::<String>());
        Self { name: name.into(), holder, term, held_until: None }
    }

    pub async fn ensure_table(db: &Database) -> Result<(), SqlError> {
        db.execute(
            "CREATE TABLE IF NOT EXISTS _polyscale_leases (
                name TEXT PRIMARY KEY,
                holder TEXT NOT NULL,
                expires_at_ms BIGINT NOT NULL
            )",
            &[],
        )
        .await?;
        Ok(())
    }

    /// Whether this process holds the lease now: takes it if it is free or
    /// expired, renews it when less than half its term is left.
    pub async fn hold(&mut self, db: &Database) -> Result<bool, SqlError> {
        if let Some(until) = self.held_until
            && until.saturating_duration_since(Instant::now()) > self.term / 2
        {
            return Ok(true);
        }
        let now = crate::clock::now_ms();
        let asked = Instant::now();
        let rows = db
            .query(
                "INSERT INTO _polyscale_leases (name, holder, expires_at_ms) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at_ms = excluded.expires_at_ms
                 WHERE _polyscale_leases.holder = excluded.holder OR _polyscale_leases.expires_at_ms < $4
                 RETURNING holder",
                &[
                    Value::Text(self.name.clone()),
                    Value::Text(self.holder.clone()),
                    Value::Integer(now + self.term.as_millis() as i64),
                    Value::Integer(now),
                ],
                &SqlLimits::default(),
            )
            .await;
        let held = match rows {
            Ok(rows) => !rows.rows.is_empty(),
            Err(e) => {
                self.held_until = None;
                return Err(e);
            }
        };
        let was_held = self.held_until.is_some();
        self.held_until = held.then(|| asked + self.term);
        if held != was_held {
            tracing::info!(lease = %self.name, holder = %self.holder, held, "lease");
        }
        Ok(held)
    }

    /// Gives the lease up (on shutdown), so another process takes over at
    /// once.
    pub async fn release(&mut self, db: &Database) {
        if self.held_until.take().is_some() {
            // Bounded: a database that does not answer must not hold up a
            // shutdown; the lease then lapses at the end of its term.
            let _ = tokio::time::timeout(
                std::time::Duration::from_secs(2),
                db.execute(
                    "DELETE FROM _polyscale_leases WHERE name = $1 AND holder = $2",
                    &[Value::Text(self.name.clone()), Value::Text(self.holder.clone())],
                ),
            )
            .await;
        }
    }
}
