//! Service tokens: how the gateway and the services prove to each other
//! which of them a call comes from. The gateway's token makes what it
//! vouches for (the client's address) believed; the order service's
//! token opens the product service's `InventoryService`, which no one else
//! may call.
//!
//! The gateway and the services share a 256-bit secret ([`ServiceKey`]):
//! generated per process in embedded mode, or read from a file (a mounted
//! secret) when they run apart. The secret never travels: a caller sends a
//! short-lived HS256 JWT naming itself in `sub` ([`ServiceTokenIssuer`]),
//! re-minted well before it expires, and the callee checks it
//! ([`ServiceTokenVerifier`]) for exactly that algorithm, issuer, audience
//! and expiry, and learns the subject.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::{TokenError, now};

/// Who issues service tokens (the name predates tokens from services).
pub const SERVICE_ISSUER: &str = "polyscale-gateway";
/// The subject of the gateway's tokens.
pub const GATEWAY_SUBJECT: &str = "gateway";
/// The subject of the order service's tokens.
pub const ORDER_SERVICE_SUBJECT: &str = "order";
/// Who accepts them.
pub const SERVICE_AUDIENCE: &str = "polyscale-services";
/// How long a service token lives.
pub const SERVICE_TOKEN_TTL: Duration = Duration::from_secs(300);
/// Bytes of a service key.
const KEY_BYTES: usize = 32;

/// The secret shared by the gateway and the services. Its `Debug` hides it.
#[derive(Clone)]
pub struct ServiceKey(Arc<[u8; KEY_BYTES]>);

impl std::fmt::Debug for ServiceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServiceKey(redacted)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceKeyError {
    #[error("service key file {path}: {message}")]
    File { path: String, message: String },
}

impl ServiceKey {
    pub fn generate() -> Self {
        let mut bytes = [0u8; KEY_BYTES];
        getrandom::fill(&mut bytes).expect("the OS random source");
        Self(Arc::new(bytes))
    }

    /// Reads a key file: 64 hex digits (surrounding whitespace ignored).
    pub fn from_file(path: &Path) -> Result<Self, ServiceKeyError> {
        let error = |message: String| ServiceKeyError::File { path: path.display().to_string(), message };
        let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
        Self::from_hex(text.trim()).ok_or_else(|| error(format!("expected {} hex digits", KEY_BYTES * 2)))
    }

    pub fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() != KEY_BYTES * 2 {
            return None;
        }
        let mut bytes = [0u8; KEY_BYTES];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Self(Arc::new(bytes)))
    }

    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct ServiceClaims {
    iss: String,
    aud: String,
    sub: String,
    iat: u64,
    nbf: u64,
    exp: u64,
}

/// Mints one caller's service token, reusing one until it is past half
/// its life.
pub struct ServiceTokenIssuer {
    key: EncodingKey,
    subject: &'static str,
    current: Mutex<Option<(Arc<str>, u64)>>,
}

impl ServiceTokenIssuer {
    /// The gateway's tokens.
    pub fn new(key: &ServiceKey) -> Self {
        Self::for_subject(key, GATEWAY_SUBJECT)
    }

    /// Tokens naming `subject` (a service: [`ORDER_SERVICE_SUBJECT`]).
    pub fn for_subject(key: &ServiceKey, subject: &'static str) -> Self {
        Self { key: EncodingKey::from_secret(&key.0[..]), subject, current: Mutex::new(None) }
    }

    pub fn token(&self) -> Arc<str> {
        let now = now();
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((token, renew_at)) = &*current
            && now < *renew_at
        {
            return token.clone();
        }
        let claims = ServiceClaims {
            iss: SERVICE_ISSUER.into(),
            aud: SERVICE_AUDIENCE.into(),
            sub: self.subject.into(),
            iat: now,
            nbf: now,
            exp: now + SERVICE_TOKEN_TTL.as_secs(),
        };
        let token: Arc<str> = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.key)
            .expect("HS256 signing cannot fail")
            .into();
        *current = Some((token.clone(), now + SERVICE_TOKEN_TTL.as_secs() / 2));
        token
    }
}

/// Checks service tokens.
#[derive(Clone)]
pub struct ServiceTokenVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl ServiceTokenVerifier {
    pub fn new(key: &ServiceKey) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.set_issuer(&[SERVICE_ISSUER]);
        validation.set_audience(&[SERVICE_AUDIENCE]);
        validation.required_spec_claims = HashSet::from(["exp", "nbf", "iss", "aud"].map(String::from));
        validation.validate_nbf = true;
        validation.leeway = 30;
        Self { key: DecodingKey::from_secret(&key.0[..]), validation }
    }

    /// The token's subject (who sent it), if it verifies.
    pub fn verify(&self, token: &str) -> Result<String, TokenError> {
        if token.len() > 1024 {
            return Err(TokenError::Invalid("too long".into()));
        }
        jsonwebtoken::decode::<ServiceClaims>(token, &self.key, &self.validation).map(|d| d.claims.sub).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                kind => TokenError::Invalid(format!("{kind:?}")),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_verifies_only_with_its_key() {
        let key = ServiceKey::generate();
        let issuer = ServiceTokenIssuer::new(&key);
        let token = issuer.token();
        assert_eq!(issuer.token(), token, "reused until half its life");
        assert_eq!(ServiceTokenVerifier::new(&key).verify(&token), Ok("gateway".into()));
        let order = ServiceTokenIssuer::for_subject(&key, ORDER_SERVICE_SUBJECT).token();
        assert_eq!(ServiceTokenVerifier::new(&key).verify(&order), Ok("order".into()));
        assert!(ServiceTokenVerifier::new(&ServiceKey::generate()).verify(&token).is_err());
        assert!(ServiceTokenVerifier::new(&key).verify("garbage").is_err());
    }

    #[test]
    fn other_algorithms_audiences_and_expired_tokens_are_refused() {
        let key = ServiceKey::generate();
        let verifier = ServiceTokenVerifier::new(&key);
        let sign = |header: Header, claims: &ServiceClaims| {
            jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(&key.0[..])).unwrap()
        };
        let now = now();
        let good = ServiceClaims {
            iss: SERVICE_ISSUER.into(),
            aud: SERVICE_AUDIENCE.into(),
            sub: "gateway".into(),
            iat: now,
            nbf: now,
            exp: now + 60,
        };
        assert_eq!(verifier.verify(&sign(Header::new(Algorithm::HS256), &good)), Ok("gateway".into()));
        assert!(verifier.verify(&sign(Header::new(Algorithm::HS512), &good)).is_err());
        let other_audience = ServiceClaims { aud: "polyscale-api".into(), ..good };
        assert!(verifier.verify(&sign(Header::new(Algorithm::HS256), &other_audience)).is_err());
        let expired = ServiceClaims { iat: now - 3600, nbf: now - 3600, exp: now - 600, ..other_audience };
        let expired = ServiceClaims { aud: SERVICE_AUDIENCE.into(), ..expired };
        assert_eq!(verifier.verify(&sign(Header::new(Algorithm::HS256), &expired)), Err(TokenError::Expired));
    }

    #[test]
    fn keys_round_trip_through_hex() {
        let key = ServiceKey::generate();
        assert_eq!(ServiceKey::from_hex(&key.to_hex()).unwrap().to_hex(), key.to_hex());
        assert!(ServiceKey::from_hex("zz").is_none());
        assert!(ServiceKey::from_hex(&"g".repeat(64)).is_none());
    }
}
