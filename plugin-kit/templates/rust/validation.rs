//! {{name}}: a validation plugin for polyscale:plugin@1.0.0 (see
//! wit/plugin.wit).
//!
//! As generated: at most the setting `max` (default 10) units a line; each
//! line above it gets a `MAX_QUANTITY` violation.

mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "validation",
    });
}

use bindings::exports::polyscale::plugin::validator::{Cart, Guest, Violation};
use bindings::polyscale::plugin::log;

struct Plugin;

impl Guest for Plugin {
    fn validate(cart: Cart) -> Vec<Violation> {
        let max = match cart.settings.iter().find(|s| s.name == "max") {
            None => 10,
            Some(s) => match s.value.trim().parse::<i64>() {
                Ok(max) if max >= 1 => max,
                _ => {
                    log::write(&format!("setting max: {:?} is not a whole number of at least 1; using 10", s.value));
                    10
                }
            },
        };
        cart.lines
            .iter()
            .enumerate()
            .filter(|(_, line)| line.quantity > max)
            .map(|(index, line)| Violation {
                code: "MAX_QUANTITY".to_string(),
                message: format!("At most {max} units a line ({} asked)", line.quantity),
                target: format!("lines[{index}].quantity"),
            })
            .collect()
    }
}

bindings::export!(Plugin with_types_in bindings);
