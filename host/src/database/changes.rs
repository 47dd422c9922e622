//! How the processes that share a database tell each other that something
//! in it changed: a component version was activated, a merchant's plugins
//! were reconfigured.
//!
//! On PostgreSQL a change is published with `pg_notify` on one channel,
//! [`CHANNEL`], and every process holds one `LISTEN` connection that relays
//! what arrives to its subscribers. Notifications can be lost (a listener's
//! connection cut at the wrong moment, a process paused), so subscribers
//! also get [`Change::Resync`]: after the listener reconnects and every
//! `reconcile_interval`. On a resync a subscriber compares what it holds
//! with the database (the registry compares activation sequence numbers),
//! so a missed notification heals within the interval.
//!
//! On SQLite (one process) a change is relayed inside the process only; the
//! periodic resync still runs, so two processes on one SQLite file (an
//! admin command beside a server) converge too.

use std::time::Duration;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::{Database, SqlError, Value};

/// The PostgreSQL notification channel of every change.
pub const CHANNEL: &str = "polyscale_changes";

/// Default period of the resync.
pub const DEFAULT_RECONCILE_INTERVAL: Duration = Duration::from_secs(5);

/// What changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Slot `kind`/`owner` now runs the version of activation `sequence`.
    Activation { kind: String, owner: String, sequence: i64 },
    /// A merchant's plugin directory (enabled, position, settings).
    Plugins { merchant_id: String },
    /// Notifications may have been missed: compare with the database.
    Resync,
}

impl Change {
    /// The notification payload: fields separated by tabs, which no kind,
    /// owner or merchant id contains.
    fn payload(&self) -> Option<String> {
        match self {
            Change::Activation { kind, owner, sequence } => Some(format!("activation\t{kind}\t{owner}\t{sequence}")),
            Change::Plugins { merchant_id } => Some(format!("plugins\t{merchant_id}")),
            Change::Resync => None,
        }
    }

    fn parse(payload: &str) -> Option<Self> {
        let mut fields = payload.split('\t');
        match (fields.next()?, fields.next(), fields.next(), fields.next(), fields.next()) {
            ("activation", Some(kind), Some(owner), Some(sequence), None) => Some(Change::Activation {
                kind: kind.to_string(),
                owner: owner.to_string(),
                sequence: sequence.parse().ok()?,
            }),
            ("plugins", Some(merchant_id), None, None, None) => {
                Some(Change::Plugins { merchant_id: merchant_id.to_string() })
            }
            _ => None,
        }
    }
}

/// Publishes changes and hands them to subscribers, in this process and,
/// on PostgreSQL, in every process listening on the database.
#[derive(Clone)]
pub struct ChangeFeed {
    db: Database,
    local: broadcast::Sender<Change>,
}

impl ChangeFeed {
    pub fn new(db: Database) -> Self {
        Self { db, local: broadcast::channel(1024).0 }
    }

    /// Tells everyone, this process included. On PostgreSQL the other
    /// processes hear it through [`ChangeFeed::listen`]; this process hears
    /// it at once (and again through its own listener: subscribers must
    /// take a change twice without harm).
    pub async fn publish(&self, change: Change) -> Result<(), SqlError> {
        if let (Database::Postgres(_), Some(payload)) = (&self.db, change.payload()) {
            self.db.execute("SELECT pg_notify($1, $2)", &[Value::Text(CHANNEL.into()), Value::Text(payload)]).await?;
        }
        let _ = self.local.send(change);
        Ok(())
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.local.subscribe()
    }

    /// Relays the database's notifications to the subscribers, and a
    /// [`Change::Resync`] every `reconcile_interval` and after each
    /// reconnection, until `stop`.
    pub fn listen(&self, reconcile_interval: Duration, stop: CancellationToken) {
        let this = self.clone();
        tokio::spawn(async move {
            let resync = async {
                let mut tick = tokio::time::interval(reconcile_interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let _ = this.local.send(Change::Resync);
                }
            };
            let relay = async {
                if let Database::Postgres(pool) = &this.db {
                    this.relay(pool).await;
                } else {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = resync => {}
                _ = relay => {}
            }
        });
    }

    async fn relay(&self, pool: &sqlx::PgPool) {
        let mut backoff = Duration::from_millis(100);
        let mut first = true;
        loop {
            let mut listener = match sqlx::postgres::PgListener::connect_with(pool).await {
                Ok(listener) => listener,
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "change listener cannot connect");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            if let Err(e) = listener.listen(CHANNEL).await {
                tracing::warn!(error = %e, retry_in = ?backoff, "change listener cannot LISTEN");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
            backoff = Duration::from_millis(100);
            if !first {
                // What was published while the connection was down is lost.
                tracing::info!("change listener reconnected; resyncing");
                let _ = self.local.send(Change::Resync);
            }
            first = false;
            loop {
                match listener.try_recv().await {
                    Ok(Some(notification)) => match Change::parse(notification.payload()) {
                        Some(change) => {
                            let _ = self.local.send(change);
                        }
                        None => tracing::warn!(payload = notification.payload(), "unknown change notification"),
                    },
                    Ok(None) => {
                        tracing::warn!("change listener lost its connection");
                        break;
                    }
                    Err(sqlx::Error::PoolClosed) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "change listener failed");
                        break;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip() {
        for change in [
            Change::Activation { kind: "pricing".into(), owner: "m-1/tiered".into(), sequence: 42 },
            Change::Plugins { merchant_id: "m-1".into() },
        ] {
            assert_eq!(Change::parse(&change.payload().unwrap()), Some(change));
        }
        assert_eq!(Change::parse("activation\tproduct\tplatform\tx"), None);
        assert_eq!(Change::parse("plugins\ta\tb"), None);
        assert_eq!(Change::parse("nonsense"), None);
        assert_eq!(Change::Resync.payload(), None);
    }
}
