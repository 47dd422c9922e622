//! Small pieces the other modules share: hashing, random tokens, the
//! signed-in caller, money arithmetic.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use polyscale_guest::bindings::types::{DomainError, Money};
use polyscale_guest::{CallContext, Principal};
use sha2::{Digest, Sha256};

/// Lower-case hex of the SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

/// A fresh secret of 256 random bits (WASI `random`), URL-safe base64.
pub fn random_token() -> Result<String, DomainError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| DomainError::Internal(format!("no randomness: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The verified caller, or `unauthenticated`.
pub fn signed_in<'a>(ctx: &'a CallContext, what: &str) -> Result<&'a Principal, DomainError> {
    ctx.caller.as_ref().ok_or_else(|| DomainError::Unauthenticated(format!("sign in to {what}")))
}

/// `unit × quantity`, or None if it does not fit.
pub fn line_total(unit_amount: i64, quantity: i64) -> Option<i64> {
    unit_amount.checked_mul(quantity)
}

pub fn money(amount: i64, currency: &str) -> Money {
    Money { amount, currency: currency.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_is_lower_hex() {
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn line_totals_do_not_overflow_silently() {
        assert_eq!(line_total(250, 4), Some(1_000));
        assert_eq!(line_total(i64::MAX / 2, 3), None);
    }
}
