//! Webhook signatures, in Stripe's scheme: the header is
//! `t=<unix seconds>,v1=<hex HMAC-SHA256>` (several `v1` entries are
//! allowed, for secret rotation), the HMAC is over `"<t>." + raw body` with
//! the provider's webhook secret, compared in constant time, and a
//! timestamp more than [`TOLERANCE_S`] from now (either way) is refused, so
//! a captured request cannot be replayed later.
//!
//! The event body (JSON):
//! `{"id": "evt_…", "type": "payment.captured", "data": {"reference": "…",
//! "amount": 1234, "currency": "USD"}}`, with types `payment.authorized`,
//! `payment.captured`, `payment.failed`, `payment.refunded`; `amount` is
//! the payment's running total captured (refunded) at the provider.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::{Amount, EventKind, PaymentEvent};

/// How far a signature's timestamp may be from now, in seconds.
pub const TOLERANCE_S: i64 = 300;
/// Largest webhook body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Longest event id and reference.
const MAX_ID_LEN: usize = 255;

/// A webhook signing secret. Its `Debug` hides it.
#[derive(Clone)]
pub struct WebhookSecret(std::sync::Arc<[u8]>);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(redacted)")
    }
}

impl WebhookSecret {
    pub fn new(bytes: &[u8]) -> Self {
        Self(bytes.into())
    }

    /// 32 random bytes.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).expect("the OS random source");
        Self::new(&bytes)
    }

    /// Reads a secret file: its contents, surrounding whitespace trimmed
    /// (at least 16 bytes).
    pub fn from_file(path: &std::path::Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let text = text.trim();
        if text.len() < 16 {
            return Err(format!("{}: a webhook secret has at least 16 characters", path.display()));
        }
        Ok(Self::new(text.as_bytes()))
    }

    /// Reads the secret file at `path`, creating it (64 hex digits, mode
    /// 0600, in a directory of mode 0700) if absent.
    pub fn load_or_create(path: &std::path::Path) -> Result<Self, String> {
        use std::io::Write;
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        if path.exists() {
            return Self::from_file(path);
        }
        if let Some(dir) = path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| e.to_string())?;
        let text = hex::encode(bytes);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        file.write_all(text.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Self::new(text.as_bytes()))
    }

    fn mac(&self, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// The signature header for `body` at `timestamp` (what a provider
    /// sends; tests sign with it).
    pub fn sign(&self, timestamp: i64, body: &[u8]) -> String {
        format!("t={timestamp},v1={}", hex::encode(self.mac(timestamp, body).finalize().into_bytes()))
    }

    /// Checks `header` against `body` at `now_s`.
    pub fn verify(&self, header: &str, body: &[u8], now_s: i64) -> Result<(), WebhookError> {
        let mut timestamp = None;
        let mut signatures = Vec::new();
        for part in header.split(',') {
            match part.trim().split_once('=') {
                Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
                Some(("v1", v)) => signatures.push(hex::decode(v).map_err(|_| WebhookError::BadSignature)?),
                _ => {}
            }
        }
        let timestamp = timestamp.ok_or(WebhookError::BadSignature)?;
        if signatures.is_empty() {
            return Err(WebhookError::BadSignature);
        }
        let expected: [u8; 32] = self.mac(timestamp, body).finalize().into_bytes().into();
        let matches = signatures.iter().fold(subtle::Choice::from(0), |any, s| any | expected[..].ct_eq(s));
        if !bool::from(matches) {
            return Err(WebhookError::BadSignature);
        }
        // Checked after the signature: an attacker learns nothing about
        // the clock from the answer to a forged request.
        if (now_s - timestamp).abs() > TOLERANCE_S {
            return Err(WebhookError::Stale);
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("no such payment provider")]
    UnknownProvider,
    #[error("this provider sends no webhooks")]
    Unsupported,
    #[error("the signature does not verify")]
    BadSignature,
    #[error("the signature's timestamp is more than {TOLERANCE_S} s from now")]
    Stale,
    #[error("not a payment event: {0}")]
    Malformed(String),
}

#[derive(serde::Deserialize)]
struct RawEvent {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    data: RawData,
}

#[derive(serde::Deserialize)]
struct RawData {
    reference: String,
    amount: Option<i64>,
    currency: Option<String>,
}

fn id_like(text: &str) -> bool {
    !text.is_empty() && text.len() <= MAX_ID_LEN && text.bytes().all(|b| b.is_ascii_graphic())
}

/// Parses a verified event body.
pub fn parse_event(body: &[u8]) -> Result<PaymentEvent, WebhookError> {
    let raw: RawEvent = serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(e.to_string()))?;
    let kind = match raw.kind.as_str() {
        "payment.authorized" => EventKind::Authorized,
        "payment.captured" => EventKind::Captured,
        "payment.failed" => EventKind::Failed,
        "payment.refunded" => EventKind::Refunded,
        other => return Err(WebhookError::Malformed(format!("unknown event type `{other}`"))),
    };
    if !id_like(&raw.id) || !id_like(&raw.data.reference) {
        return Err(WebhookError::Malformed("the event id and reference are 1 to 255 printable characters".into()));
    }
    let amount = match (raw.data.amount, raw.data.currency) {
        (Some(minor), Some(currency)) => {
            let amount = Amount { minor, currency };
            amount.check().map_err(|e| WebhookError::Malformed(e.to_string()))?;
            Some(amount)
        }
        (None, None) => None,
        _ => return Err(WebhookError::Malformed("`amount` and `currency` come together".into())),
    };
    if matches!(kind, EventKind::Captured | EventKind::Refunded) && amount.is_none() {
        return Err(WebhookError::Malformed(format!("a `{}` event needs an amount", raw.kind)));
    }
    Ok(PaymentEvent { event_id: raw.id, kind, reference: raw.data.reference, amount })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn a_signed_body_verifies_and_nothing_else_does() {
        let secret = WebhookSecret::new(b"whsec_test_secret_0123456789");
        let body = br#"{"id":"evt_1","type":"payment.failed","data":{"reference":"test_abc"}}"#;
        let header = secret.sign(NOW, body);
        assert_eq!(secret.verify(&header, body, NOW), Ok(()));
        assert_eq!(secret.verify(&header, body, NOW + TOLERANCE_S), Ok(()));
        // Another body, another secret, a forged timestamp, garbage.
        assert_eq!(secret.verify(&header, b"{}", NOW), Err(WebhookError::BadSignature));
        let other = WebhookSecret::new(b"another_secret_0123456789");
        assert_eq!(other.verify(&header, body, NOW), Err(WebhookError::BadSignature));
        let moved = header.replace(&format!("t={NOW}"), &format!("t={}", NOW + 1));
        assert_eq!(secret.verify(&moved, body, NOW), Err(WebhookError::BadSignature));
        for garbage in ["", "t=1", "v1=00", "t=x,v1=00", "t=1,v1=zz"] {
            assert_eq!(secret.verify(garbage, body, NOW), Err(WebhookError::BadSignature), "{garbage}");
        }
        // Stale or from the future.
        assert_eq!(secret.verify(&header, body, NOW + TOLERANCE_S + 1), Err(WebhookError::Stale));
        assert_eq!(secret.verify(&header, body, NOW - TOLERANCE_S - 1), Err(WebhookError::Stale));
        // Rotation: any v1 entry may match.
        let rotated = format!("{},v1={}", other.sign(NOW, body), header.split("v1=").nth(1).unwrap());
        assert_eq!(secret.verify(&rotated, body, NOW), Ok(()));
        assert!(!format!("{secret:?}").contains("whsec"));
    }

    #[test]
    fn events_parse_strictly() {
        let captured = parse_event(
            br#"{"id":"evt_1","type":"payment.captured","data":{"reference":"r","amount":500,"currency":"EUR"}}"#,
        )
        .unwrap();
        assert_eq!(captured.kind, EventKind::Captured);
        assert_eq!(captured.amount, Some(Amount { minor: 500, currency: "EUR".into() }));
        for bad in [
            &br#"{"id":"evt_1","type":"payment.captured","data":{"reference":"r"}}"#[..],
            br#"{"id":"evt_1","type":"payment.exploded","data":{"reference":"r"}}"#,
            br#"{"id":"","type":"payment.failed","data":{"reference":"r"}}"#,
            br#"{"id":"e","type":"payment.refunded","data":{"reference":"r","amount":-5,"currency":"EUR"}}"#,
            br#"{"id":"e","type":"payment.refunded","data":{"reference":"r","amount":5,"currency":"euro"}}"#,
            b"not json",
        ] {
            assert!(parse_event(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
