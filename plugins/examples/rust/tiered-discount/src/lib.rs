//! Example pricing plugin: quantity tiers.
//!
//! The setting `tiers` lists `MIN_UNITS:PERCENT` pairs separated by commas
//! (default `5:10,10:20`: 10 % off from 5 units, 20 % from 10). A line gets
//! the tier with the largest `MIN_UNITS` not above its quantity, as a
//! `discount` on the line's total (unit price × quantity), rounded down to
//! the minor unit and never more than what earlier discounts left of the
//! total. An invalid `tiers` is logged and the default is used.

mod bindings {
    wit_bindgen::generate!({
        path: "../../../../wit/plugin",
        world: "pricing",
    });
}

use bindings::exports::polyscale::plugin::pricer::{Adjustment, Cart, Guest};
use bindings::polyscale::plugin::log;
use bindings::polyscale::plugin::types::Change;

const DEFAULT_TIERS: &str = "5:10,10:20";

/// From `min_units` units on, `percent` % off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tier {
    min_units: i64,
    percent: i64,
}

/// Parses `"5:10,10:20"`: at least one pair, units at least 1, percents
/// from 0 to 100.
fn parse_tiers(value: &str) -> Result<Vec<Tier>, String> {
    let mut tiers = Vec::new();
    for pair in value.split(',') {
        let (units, percent) = pair.split_once(':').ok_or_else(|| format!("{pair:?} is not MIN_UNITS:PERCENT"))?;
        let min_units: i64 = units.trim().parse().map_err(|_| format!("{units:?} is not a number of units"))?;
        let percent: i64 = percent.trim().parse().map_err(|_| format!("{percent:?} is not a percentage"))?;
        if min_units < 1 {
            return Err(format!("{min_units} units: tiers start at 1 unit or more"));
        }
        if !(0..=100).contains(&percent) {
            return Err(format!("{percent}%: percentages go from 0 to 100"));
        }
        tiers.push(Tier { min_units, percent });
    }
    Ok(tiers)
}

/// The tier a quantity reaches, if any.
fn tier_for(tiers: &[Tier], quantity: i64) -> Option<Tier> {
    tiers.iter().filter(|t| t.min_units <= quantity).max_by_key(|t| t.min_units).copied()
}

/// `percent` % of `unit_price × quantity`, rounded down, at most what the
/// earlier discounts left of the total.
fn discount(unit_price: i64, quantity: i64, earlier: i64, percent: i64) -> i64 {
    let total = i128::from(unit_price) * i128::from(quantity);
    if total <= 0 {
        return 0;
    }
    // total × percent / 100 without overflowing (total may be near 2^126).
    let percent = i128::from(percent);
    let off = total / 100 * percent + total % 100 * percent / 100;
    let room = (total - i128::from(earlier)).max(0);
    i64::try_from(off.min(room)).unwrap_or(i64::MAX)
}

fn setting<'a>(cart: &'a Cart, name: &str) -> Option<&'a str> {
    cart.settings.iter().find(|s| s.name == name).map(|s| s.value.as_str())
}

struct Plugin;

impl Guest for Plugin {
    fn price(cart: Cart) -> Vec<Adjustment> {
        let tiers = match parse_tiers(setting(&cart, "tiers").unwrap_or(DEFAULT_TIERS)) {
            Ok(tiers) => tiers,
            Err(e) => {
                log::write(&format!("setting tiers: {e}; using {DEFAULT_TIERS}"));
                parse_tiers(DEFAULT_TIERS).expect("the default parses")
            }
        };
        let mut adjustments = Vec::new();
        for (index, line) in cart.lines.iter().enumerate() {
            let Some(tier) = tier_for(&tiers, line.quantity) else { continue };
            let off = discount(line.unit_price.amount, line.quantity, line.discount, tier.percent);
            if off > 0 {
                adjustments.push(Adjustment {
                    line: index as u32,
                    change: Change::Discount(off),
                    message: format!("{}% off from {} units", tier.percent, tier.min_units),
                });
            }
        }
        adjustments
    }
}

bindings::export!(Plugin with_types_in bindings);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tiers_and_refuses_nonsense() {
        assert_eq!(
            parse_tiers(" 5:10, 10:20").unwrap(),
            vec![Tier { min_units: 5, percent: 10 }, Tier { min_units: 10, percent: 20 }]
        );
        for bad in ["", "5", "5:x", "0:10", "5:101", "5:-1", "5:10,"] {
            assert!(parse_tiers(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn picks_the_highest_tier_reached() {
        let tiers = parse_tiers("10:20,5:10").unwrap();
        assert_eq!(tier_for(&tiers, 4), None);
        assert_eq!(tier_for(&tiers, 5).unwrap().percent, 10);
        assert_eq!(tier_for(&tiers, 9).unwrap().percent, 10);
        assert_eq!(tier_for(&tiers, 10).unwrap().percent, 20);
    }

    #[test]
    fn rounds_down_and_stays_within_the_total() {
        // 10 % of 5 × 999 = 499.5 → 499.
        assert_eq!(discount(999, 5, 0, 10), 499);
        // 20 % of 10 × 1000 = 2000, but only 500 left.
        assert_eq!(discount(1000, 10, 9500, 20), 500);
        assert_eq!(discount(1000, 10, 20_000, 20), 0);
        assert_eq!(discount(i64::MAX, i64::MAX, 0, 100), i64::MAX);
    }
}
