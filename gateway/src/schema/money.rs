//! Money in GraphQL: integer minor units plus currency, and a formatted
//! string for display.

use async_graphql::{InputObject, InputValueError, InputValueResult, Scalar, ScalarType, SimpleObject, Value};
use polyscale_proto::types::v1 as pb;

/// An amount in minor units of a currency (cents for USD, yen for JPY), as
/// a JSON integer. Wider than `Int` (32 bits) but within the ±2^53 range
/// JSON numbers carry exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinorUnits(pub i64);

/// Largest magnitude a JSON number holds exactly (2^53 − 1).
const MAX_SAFE: i64 = 9_007_199_254_740_991;

#[Scalar]
impl ScalarType for MinorUnits {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::Number(n) => match n.as_i64() {
                Some(v) if v.abs() <= MAX_SAFE => Ok(MinorUnits(v)),
                _ => Err(InputValueError::custom("expected an integer number of minor units within ±2^53")),
            },
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::Number(self.0.into())
    }
}

#[derive(SimpleObject, Debug, Clone)]
pub struct Money {
    /// Minor units of `currency`.
    pub amount: MinorUnits,
    /// ISO 4217 code, e.g. `USD`.
    pub currency: String,
    /// For display: the amount in major units and the code, e.g.
    /// `12.34 USD` or `1234 JPY`.
    pub formatted: String,
}

#[derive(InputObject, Debug, Clone)]
pub struct MoneyInput {
    /// Minor units of `currency` (1234 = 12.34 USD).
    pub amount: MinorUnits,
    /// ISO 4217 code, e.g. `USD`.
    pub currency: String,
}

impl From<MoneyInput> for pb::Money {
    fn from(m: MoneyInput) -> Self {
        pb::Money { amount: m.amount.0, currency: m.currency }
    }
}

impl From<pb::Money> for Money {
    fn from(m: pb::Money) -> Self {
        Money { formatted: format_money(m.amount, &m.currency), amount: MinorUnits(m.amount), currency: m.currency }
    }
}

/// `1234, "USD"` → `12.34 USD`; currencies without minor units print whole.
pub fn format_money(amount: i64, currency: &str) -> String {
    let exponent = iso_currency::Currency::from_code(currency).and_then(|c| c.exponent()).unwrap_or(2) as u32;
    let sign = if amount < 0 { "-" } else { "" };
    let abs = amount.unsigned_abs();
    if exponent == 0 {
        return format!("{sign}{abs} {currency}");
    }
    let scale = 10u64.pow(exponent);
    format!("{sign}{}.{:0width$} {currency}", abs / scale, abs % scale, width = exponent as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_by_currency_exponent() {
        assert_eq!(format_money(1234, "USD"), "12.34 USD");
        assert_eq!(format_money(5, "EUR"), "0.05 EUR");
        assert_eq!(format_money(1234, "JPY"), "1234 JPY");
        assert_eq!(format_money(1234, "BHD"), "1.234 BHD");
        assert_eq!(format_money(-250, "USD"), "-2.50 USD");
    }
}
