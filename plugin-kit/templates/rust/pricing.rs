//! {{name}}: a pricing plugin for polyscale:plugin@1.0.0 (see wit/plugin.wit).
//!
//! As generated: the setting `percent` (default 10) off every line, as a
//! discount on the line's total, rounded down.

mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "pricing",
    });
}

use bindings::exports::polyscale::plugin::pricer::{Adjustment, Cart, Guest};
use bindings::polyscale::plugin::log;
use bindings::polyscale::plugin::types::Change;

struct Plugin;

impl Guest for Plugin {
    fn price(cart: Cart) -> Vec<Adjustment> {
        let percent = match cart.settings.iter().find(|s| s.name == "percent") {
            None => 10,
            Some(s) => match s.value.trim().parse::<i64>() {
                Ok(p) if (0..=100).contains(&p) => p,
                _ => {
                    log::write(&format!("setting percent: {:?} is not 0 to 100; using 10", s.value));
                    10
                }
            },
        };
        let mut adjustments = Vec::new();
        for (index, line) in cart.lines.iter().enumerate() {
            let total = i128::from(line.unit_price.amount) * i128::from(line.quantity);
            let room = (total - i128::from(line.discount)).max(0);
            let off = (total / 100 * i128::from(percent) + total % 100 * i128::from(percent) / 100).min(room);
            if off > 0 {
                adjustments.push(Adjustment {
                    line: index as u32,
                    change: Change::Discount(i64::try_from(off).unwrap_or(i64::MAX)),
                    message: format!("{percent}% off"),
                });
            }
        }
        adjustments
    }
}

bindings::export!(Plugin with_types_in bindings);
