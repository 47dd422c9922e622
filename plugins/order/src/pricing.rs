//! The merchants' plugins on a cart (the host's `extensions` import): the
//! prices they set and what they say of the cart.
//!
//! Lines go to the host with their catalog price; each comes back with the
//! unit price and discount its merchant's pricing plugins gave it, and the
//! plugins' notes. Issues (violations, failed plugins) name lines by their
//! index in the lines sent; [`field`] turns such a target into the field
//! path of the cart (`lines.3.quantity`).

use polyscale_guest::bindings::types::FieldError;

use crate::bindings::polyscale::commerce::extensions::{self, ExtensionIssue, ExtensionLine, LinePricing, Step};

/// Codes the platform answers with and a plugin may not borrow (the
/// placement loop waits on IDEMPOTENCY_KEY_IN_USE, for one).
const RESERVED_CODES: &[&str] = &[
    "IDEMPOTENCY_KEY_IN_USE",
    "IDEMPOTENCY_KEY_REUSED",
    "OUT_OF_STOCK",
    "EMPTY_CART",
    "MIXED_CURRENCIES",
    "PRODUCT_UNAVAILABLE",
    "AMOUNT_TOO_LARGE",
];

/// The priced lines (one per input line) and the issues.
pub struct Priced {
    pub lines: Vec<LinePricing>,
    pub issues: Vec<ExtensionIssue>,
}

/// Runs the merchants' plugins on `lines` (their positions in the cart are
/// `positions`).
pub fn apply(step: Step, lines: Vec<ExtensionLine>, positions: &[usize]) -> Priced {
    if lines.is_empty() {
        return Priced { lines: Vec::new(), issues: Vec::new() };
    }
    let outcome = extensions::apply(step, &lines);
    let issues = outcome
        .issues
        .into_iter()
        .map(|mut issue| {
            issue.target = field(&issue.target, positions);
            if RESERVED_CODES.contains(&issue.code.as_str()) {
                issue.code = "CART_REFUSED".into();
            }
            issue
        })
        .collect();
    Priced { lines: outcome.lines, issues }
}

/// `lines[K].rest` (K an index into the lines sent) as the cart's field
/// path `lines.P.rest` (P the line's position in the cart); other targets
/// stay as they are ("" is the whole cart).
pub fn field(target: &str, positions: &[usize]) -> String {
    let Some(rest) = target.strip_prefix("lines[") else {
        return target.to_string();
    };
    match rest.split_once(']') {
        Some((index, tail)) => match index.parse::<usize>().ok().and_then(|i| positions.get(i)) {
            Some(position) => format!("lines.{position}{tail}"),
            None => target.to_string(),
        },
        None => target.to_string(),
    }
}

/// The first blocking issue, as the field error that refuses a placement.
pub fn refusal(issues: &[ExtensionIssue]) -> Option<FieldError> {
    issues.iter().find(|i| i.blocking).map(|i| FieldError {
        field: if i.target.is_empty() { "cart".to_string() } else { i.target.clone() },
        code: i.code.clone(),
        message: i.message.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_become_cart_fields() {
        assert_eq!(field("lines[1].quantity", &[0, 4]), "lines.4.quantity");
        assert_eq!(field("lines[0]", &[2]), "lines.2");
        assert_eq!(field("", &[2]), "");
        assert_eq!(field("lines[9].quantity", &[2]), "lines[9].quantity");
    }
}
