//! Money input: integer minor units of a known ISO 4217 currency.

use crate::bindings::types::{FieldError, Money};
use crate::errors::Invalid;

/// Largest amount accepted, in minor units (10^15: a quadrillion cents),
/// far below i64::MAX so sums of many lines cannot overflow.
pub const MAX_AMOUNT: i64 = 1_000_000_000_000_000;

/// Parses a price: non-negative, bounded, in a known currency.
pub fn parse_price(field: &str, money: Money) -> Result<Money, Vec<FieldError>> {
    let mut errors = Vec::new();
    if money.amount < 0 {
        errors.push(FieldError::invalid(
            &format!("{field}.amount"),
            "NEGATIVE_AMOUNT",
            "the amount must not be negative",
        ));
    } else if money.amount > MAX_AMOUNT {
        errors.push(FieldError::invalid(&format!("{field}.amount"), "AMOUNT_TOO_LARGE", "the amount is too large"));
    }
    if let Err(e) = parse_currency(&format!("{field}.currency"), &money.currency) {
        errors.push(e);
    }
    if errors.is_empty() { Ok(money) } else { Err(errors) }
}

/// An upper-case ISO 4217 code of a currency in circulation.
pub fn parse_currency(field: &str, code: &str) -> Result<String, FieldError> {
    match iso_currency::Currency::from_code(code) {
        Some(c) if c.code() == code && c.exponent().is_some() => Ok(code.to_string()),
        _ => Err(FieldError::invalid(
            field,
            "UNKNOWN_CURRENCY",
            format!("`{}` is not an ISO 4217 currency code", truncate(code, 16)),
        )),
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
