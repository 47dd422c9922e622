//! The `credentials` capability: passwords, sessions and access tokens,
//! kept on the host side of the sandbox.
//!
//! The account component hands passwords and refresh tokens in; hashes,
//! token hashes and the signing key never go out. Everything lives in the
//! *credentials store*, a database of its own (`credentials.db` in
//! embedded mode) that no component connection ever opens — which is what
//! keeps it out of reach of component SQL, not a filter on statements.

mod host;
mod passwords;
mod sessions;
mod throttle;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub use host::{CallBinding, CredentialsCtxView, CredentialsView, add_to_linker};
pub use passwords::{Argon2Params, PasswordHasher};
use polyscale_auth::{KeyPair, Signer};
pub use sessions::NewRefreshToken;
pub use throttle::{ThrottlePolicy, ThrottleRule};

pub use crate::bindings::credentials::CredentialsError;
use crate::database::migrations::{self, Migration, MigrationError};
use crate::database::{Database, RunAs, SqlError, SqlLimits};

/// Where the credentials capability reads the time: session expiry and
/// brute-force waits. The system clock unless a test injects its own.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

/// The real time.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default()
    }
}

/// Default lifetime of a refresh token.
pub const DEFAULT_REFRESH_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// Default time an ended session stays in the store.
pub const DEFAULT_ENDED_SESSION_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// Default interval of the sweeper.
pub const DEFAULT_SWEEP_EVERY: Duration = Duration::from_secs(3600);

#[derive(Clone)]
pub struct CredentialsConfig {
    pub keys: KeyPair,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub argon2: Argon2Params,
    pub throttle: ThrottlePolicy,
    /// How long an ended session (and why it ended) stays in the store
    /// before the sweeper deletes it.
    pub ended_session_retention: Duration,
    /// How often the sweeper deletes ended sessions and stale throttle
    /// counts.
    pub sweep_every: Duration,
    /// The time for sessions and throttling ([`SystemClock`] by default).
    pub clock: Arc<dyn Clock>,
}

impl CredentialsConfig {
    pub fn new(keys: KeyPair) -> Self {
        Self {
            keys,
            access_ttl: polyscale_auth::DEFAULT_ACCESS_TTL,
            refresh_ttl: DEFAULT_REFRESH_TTL,
            argon2: Argon2Params::OWASP,
            throttle: ThrottlePolicy::default(),
            ended_session_retention: DEFAULT_ENDED_SESSION_RETENTION,
            sweep_every: DEFAULT_SWEEP_EVERY,
            clock: Arc::new(SystemClock),
        }
    }
}

impl std::fmt::Debug for CredentialsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialsConfig").field("access_ttl", &self.access_ttl).finish_non_exhaustive()
    }
}

/// What one sweep deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub sessions: u64,
    pub refresh_tokens: u64,
    pub throttle_counts: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialsSetupError {
    #[error("credentials store schema: {0}")]
    Schema(#[from] MigrationError),
    #[error("credentials store: {0:?}")]
    Store(SqlError),
    #[error("signing key: {0}")]
    Key(#[from] polyscale_auth::KeyError),
}

/// The shared state of the capability (one per account service host).
pub struct Credentials {
    pub(crate) store: Database,
    pub(crate) hasher: PasswordHasher,
    pub(crate) signer: Signer,
    pub(crate) config: CredentialsConfig,
}

fn schema() -> Vec<Migration> {
    vec![
        Migration {
            version: 1,
            name: "credentials".into(),
            statements: [
                "CREATE TABLE passwords (
                account_id TEXT PRIMARY KEY,
                hash TEXT NOT NULL,
                updated_at_ms BIGINT NOT NULL
            )",
                "CREATE TABLE sessions (
                id TEXT PRIMARY KEY,
                account_id TEXT NOT NULL,
                created_at_ms BIGINT NOT NULL,
                expires_at_ms BIGINT NOT NULL,
                revoked_at_ms BIGINT,
                revoked_reason TEXT
            )",
                "CREATE INDEX sessions_account_idx ON sessions (account_id)",
                "CREATE TABLE refresh_tokens (
                token_hash TEXT PRIMARY KEY,
                session_id TEXT NOT NULL REFERENCES sessions (id),
                created_at_ms BIGINT NOT NULL,
                expires_at_ms BIGINT NOT NULL,
                used_at_ms BIGINT
            )",
                "CREATE INDEX refresh_tokens_session_idx ON refresh_tokens (session_id)",
                "CREATE TABLE login_throttle (
                key TEXT PRIMARY KEY,
                failures BIGINT NOT NULL,
                first_failure_at_ms BIGINT NOT NULL,
                locked_until_ms BIGINT NOT NULL
            )",
            ]
            .map(String::from)
            .to_vec(),
        },
        // Roles an access token may carry beyond customer: recorded by the
        // host when an admin grants them, so a component cannot mint a
        // token with a role nobody granted.
        Migration {
            version: 2,
            name: "account roles".into(),
            statements: vec![
                "CREATE TABLE account_roles (
                    account_id TEXT NOT NULL,
                    role TEXT NOT NULL,
                    granted_at_ms BIGINT NOT NULL,
                    PRIMARY KEY (account_id, role)
                )"
                .into(),
            ],
        },
    ]
}

impl Credentials {
    pub async fn open(store: Database, config: CredentialsConfig) -> Result<Arc<Self>, CredentialsSetupError> {
        migrations::apply(&store, "credentials", &schema(), &SqlLimits::default(), migrations::trusted, RunAs::Host)
            .await?;
        let signer = Signer::new(&config.keys, config.access_ttl)?;
        let hasher = PasswordHasher::new(config.argon2);
        Ok(Arc::new(Self { store, hasher, signer, config }))
    }

    /// Whether a session is still live (not revoked, not expired). Services
    /// that manage accounts check it on every call, so logout and password
    /// changes take effect there at once, not at token expiry.
    pub async fn session_live(&self, session_id: &str) -> Result<bool, SqlError> {
        sessions::live(&self.store, session_id, self.now_ms()).await
    }

    /// Deletes what can no longer matter as of `now_ms`: sessions that
    /// ended longer than the retention ago (with their refresh tokens) and
    /// throttle counts past their window and lock. Without it the store
    /// grows by a session per login and a row per failing client forever.
    pub async fn sweep(&self, now_ms: i64) -> Result<Swept, SqlError> {
        let retention = self.config.ended_session_retention.as_millis() as i64;
        let (sessions, refresh_tokens) = sessions::sweep(&self.store, now_ms - retention).await?;
        let throttle_counts = throttle::sweep(&self.store, &self.config.throttle, now_ms).await?;
        Ok(Swept { sessions, refresh_tokens, throttle_counts })
    }

    /// Sweeps every `sweep_every` until `stop` is cancelled. A failed sweep
    /// (store down) is logged and tried again next time.
    pub fn spawn_sweeper(self: &Arc<Self>, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        let credentials = self.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(credentials.config.sweep_every);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = every.tick() => {}
                }
                match credentials.sweep(credentials.now_ms()).await {
                    Ok(swept) if swept == Swept::default() => {}
                    Ok(swept) => tracing::info!(?swept, "credentials store swept"),
                    Err(e) => tracing::warn!(error = ?e, "sweeping the credentials store failed; retrying later"),
                }
            }
        })
    }

    pub fn public_key_pem(&self) -> &str {
        self.config.keys.public_pem()
    }

    /// The time as the configured [`Clock`] tells it.
    pub(crate) fn now_ms(&self) -> i64 {
        self.config.clock.now_ms()
    }
}

fn unavailable(e: SqlError) -> CredentialsError {
    tracing::error!(error = ?e, "credentials store failed");
    CredentialsError::Unavailable("the credentials store is unavailable".into())
}
