//! Access tokens for PolyScale: short-lived JWTs signed with Ed25519
//! (EdDSA).
//!
//! The account service host holds the private key and signs ([`Signer`]);
//! the gateway and every service host verify with the public key only
//! ([`Verifier`]). Verification accepts exactly one algorithm (EdDSA), and
//! checks issuer, audience, expiry and not-before, so `alg: none`, an HMAC
//! token keyed with the public key, or a token for another audience are
//! all refused.

mod keys;
mod service;

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

pub use keys::{KeyError, KeyPair, load_or_create_key_pair, load_public_key};
pub use service::{
    GATEWAY_SUBJECT, ORDER_SERVICE_SUBJECT, SERVICE_AUDIENCE, SERVICE_ISSUER, SERVICE_TOKEN_TTL, ServiceKey,
    ServiceKeyError, ServiceTokenIssuer, ServiceTokenVerifier,
};

/// Who issues PolyScale tokens.
pub const ISSUER: &str = "polyscale";
/// Who they are for.
pub const AUDIENCE: &str = "polyscale-api";
/// How long an access token lives unless configured otherwise.
pub const DEFAULT_ACCESS_TTL: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Customer,
    Merchant,
    Admin,
}

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// The account id.
    pub sub: String,
    /// The session (refresh-token family) the token belongs to.
    pub sid: String,
    pub roles: Vec<Role>,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
    pub jti: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the access token has expired")]
    Expired,
    #[error("the access token is not valid: {0}")]
    Invalid(String),
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

/// Signs access tokens. Holds the private key: host-side only.
#[derive(Clone)]
pub struct Signer {
    key: EncodingKey,
    kid: String,
    ttl: Duration,
}

impl Signer {
    pub fn new(keys: &KeyPair, ttl: Duration) -> Result<Self, KeyError> {
        Ok(Self { key: EncodingKey::from_ed_pem(keys.private_pem().as_bytes())?, kid: keys.key_id().to_string(), ttl })
    }

    /// A token for `account_id` in session `session_id`; returns it with
    /// its expiry (seconds since the Unix epoch).
    pub fn issue(&self, account_id: &str, session_id: &str, roles: &[Role]) -> Result<(String, u64), TokenError> {
        let iat = now();
        let claims = Claims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: account_id.into(),
            sid: session_id.into(),
            roles: roles.to_vec(),
            iat,
            nbf: iat,
            exp: iat + self.ttl.as_secs(),
            jti: uuid::Uuid::now_v7().to_string(),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        let token =
            jsonwebtoken::encode(&header, &claims, &self.key).map_err(|e| TokenError::Invalid(e.to_string()))?;
        Ok((token, claims.exp))
    }
}

/// Verifies access tokens with the public key.
#[derive(Clone)]
pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
}

/// Longest token accepted before any parsing.
const MAX_TOKEN_BYTES: usize = 4096;

impl Verifier {
    pub fn new(public_pem: &str) -> Result<Self, KeyError> {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.algorithms = vec![Algorithm::EdDSA];
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.required_spec_claims = HashSet::from(["exp", "nbf", "iss", "aud", "sub"].map(String::from));
        validation.validate_nbf = true;
        validation.leeway = 30;
        Ok(Self { key: DecodingKey::from_ed_pem(public_pem.as_bytes())?, validation })
    }

    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Invalid("too long".into()));
        }
        jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map(|data| data.claims).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                kind => TokenError::Invalid(format!("{kind:?}")),
            }
        })
    }
}

/// The token of an `Authorization: Bearer <token>` header value.
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}
