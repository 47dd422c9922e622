//! argon2id password hashing, off the async runtime and bounded in
//! concurrency (each hash takes 19 MiB).

use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

/// Cost parameters of argon2id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Params {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Argon2Params {
    /// OWASP's recommended minimum for argon2id: m = 19 MiB, t = 2, p = 1.
    pub const OWASP: Self = Self { memory_kib: 19 * 1024, iterations: 2, parallelism: 1 };
}

#[derive(Clone)]
pub struct PasswordHasher {
    params: Argon2Params,
    permits: Arc<Semaphore>,
    /// A hash of nothing in particular, verified against when no account
    /// matched so a miss costs what a hit costs.
    decoy: Arc<str>,
}

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("password hashing failed: {0}")]
    Failed(String),
}

fn argon2(params: Argon2Params) -> Result<Argon2<'static>, HashError> {
    let p = Params::new(params.memory_kib, params.iterations, params.parallelism, None)
        .map_err(|e| HashError::Failed(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, p))
}

fn hash_blocking(params: Argon2Params, password: &[u8]) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(argon2(params)?.hash_password(password, &salt).map_err(|e| HashError::Failed(e.to_string()))?.to_string())
}

impl PasswordHasher {
    pub fn new(params: Argon2Params) -> Self {
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let decoy = hash_blocking(params, b"polyscale decoy password").unwrap_or_default();
        Self { params, permits: Arc::new(Semaphore::new(cpus)), decoy: decoy.into() }
    }

    pub fn params(&self) -> Argon2Params {
        self.params
    }

    /// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`).
    pub async fn hash(&self, password: &str) -> Result<String, HashError> {
        let _permit = self.permits.acquire().await.map_err(|e| HashError::Failed(e.to_string()))?;
        let (params, password) = (self.params, password.as_bytes().to_vec());
        tokio::task::spawn_blocking(move || hash_blocking(params, &password))
            .await
            .map_err(|e| HashError::Failed(e.to_string()))?
    }

    /// Checks `password` against a stored PHC string, or against the decoy
    /// when `stored` is none (always false then).
    pub async fn verify(&self, password: &str, stored: Option<&str>) -> Result<bool, HashError> {
        let _permit = self.permits.acquire().await.map_err(|e| HashError::Failed(e.to_string()))?;
        let real = stored.is_some();
        let stored = stored.unwrap_or(&self.decoy).to_string();
        let password = password.as_bytes().to_vec();
        let matched = tokio::task::spawn_blocking(move || {
            let parsed = PasswordHash::new(&stored).map_err(|e| HashError::Failed(e.to_string()))?;
            // The parameters come from the stored hash, so hashes made
            // under older parameters still verify.
            Ok::<_, HashError>(Argon2::default().verify_password(&password, &parsed).is_ok())
        })
        .await
        .map_err(|e| HashError::Failed(e.to_string()))??;
        Ok(real && matched)
    }
}
