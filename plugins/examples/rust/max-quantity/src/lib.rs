//! Example validation plugin: at most `max` units a line.
//!
//! The setting `max` (default 10) is the largest quantity a line may have;
//! every line above it gets a `MAX_QUANTITY` violation that targets
//! `lines[i].quantity`. An invalid `max` (not a whole number of at least 1)
//! is logged and the default is used.

mod bindings {
    wit_bindgen::generate!({
        path: "../../../../wit/plugin",
        world: "validation",
    });
}

use bindings::exports::polyscale::plugin::validator::{Cart, Guest, Violation};
use bindings::polyscale::plugin::log;

const DEFAULT_MAX: i64 = 10;

fn parse_max(value: &str) -> Result<i64, String> {
    match value.trim().parse::<i64>() {
        Ok(max) if max >= 1 => Ok(max),
        _ => Err(format!("{value:?} is not a whole number of at least 1")),
    }
}

/// The violations for these quantities, in line order.
fn violations(quantities: impl IntoIterator<Item = i64>, max: i64) -> Vec<Violation> {
    quantities
        .into_iter()
        .enumerate()
        .filter(|&(_, quantity)| quantity > max)
        .map(|(index, quantity)| Violation {
            code: "MAX_QUANTITY".to_string(),
            message: format!("At most {max} units a line ({quantity} asked)"),
            target: format!("lines[{index}].quantity"),
        })
        .collect()
}

struct Plugin;

impl Guest for Plugin {
    fn validate(cart: Cart) -> Vec<Violation> {
        let max = match cart.settings.iter().find(|s| s.name == "max") {
            None => DEFAULT_MAX,
            Some(s) => parse_max(&s.value).unwrap_or_else(|e| {
                log::write(&format!("setting max: {e}; using {DEFAULT_MAX}"));
                DEFAULT_MAX
            }),
        };
        violations(cart.lines.iter().map(|l| l.quantity), max)
    }
}

bindings::export!(Plugin with_types_in bindings);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_each_line_above_max() {
        let found = violations([1, 11, 10, 40], 10);
        let targets: Vec<_> = found.iter().map(|v| v.target.as_str()).collect();
        assert_eq!(targets, ["lines[1].quantity", "lines[3].quantity"]);
        assert!(found.iter().all(|v| v.code == "MAX_QUANTITY"));
        assert_eq!(found[0].message, "At most 10 units a line (11 asked)");
    }

    #[test]
    fn max_must_be_a_positive_whole_number() {
        assert_eq!(parse_max(" 3 "), Ok(3));
        for bad in ["", "0", "-2", "2.5", "ten"] {
            assert!(parse_max(bad).is_err(), "{bad:?}");
        }
    }
}
