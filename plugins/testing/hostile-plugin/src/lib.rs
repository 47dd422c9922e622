//! A merchant pricing plugin (`polyscale:plugin/pricing@1.0.0`) for tests:
//! what it does is its `mode` setting.
//!
//! - unset or `discount`: takes `percent` (default 10) % off every line's
//!   total, with the message "N% off", and logs one line;
//! - `set-price`: sets every unit price to `price` (default 100);
//! - `loop`: spins forever (wall time and fuel must stop it);
//! - `memory`: allocates until the memory limit stops it;
//! - `recursion`: recurses without end (the stack limit stops it);
//! - `flood`: answers 1 000 adjustments of 100-byte messages (~116 kB) (the output
//!   cap refuses it);
//! - `log-flood`: logs 400 lines (~9 kB), then answers nothing;
//! - `trap`: panics;
//! - `negative`: sets a negative unit price;
//! - `over-discount`: takes 10 × the line total off;
//! - `bad-line`: adjusts a line that does not exist;
//! - `clock`: reads the clock and randomness (both fixed for plugins) and
//!   logs them.

mod bindings {
    wit_bindgen::generate!({
        world: "pricing",
        path: "../../../wit/plugin",
    });
}

use bindings::exports::polyscale::plugin::pricer::Guest;
use bindings::polyscale::plugin::log;
use bindings::polyscale::plugin::types::{Adjustment, Cart, Change};

struct Plugin;

fn setting<'a>(cart: &'a Cart, name: &str) -> Option<&'a str> {
    cart.settings.iter().find(|s| s.name == name).map(|s| s.value.as_str())
}

/// Recursion without end that uses the native stack (not Rust's shadow
/// stack in linear memory): no arrays in the frame, not a tail call.
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    if std::hint::black_box(depth) == u64::MAX {
        return 0;
    }
    recurse(depth + 1).wrapping_add(std::hint::black_box(depth))
}

impl Guest for Plugin {
    fn price(cart: Cart) -> Vec<Adjustment> {
        let every = |change: fn(&bindings::polyscale::plugin::types::Line) -> Change, message: &str| {
            (0..cart.lines.len() as u32)
                .map(|i| Adjustment { line: i, change: change(&cart.lines[i as usize]), message: message.into() })
                .collect::<Vec<_>>()
        };
        match setting(&cart, "mode").unwrap_or("discount") {
            "discount" => {
                let percent: i64 = setting(&cart, "percent").and_then(|p| p.parse().ok()).unwrap_or(10);
                log::write(&format!("{} lines, {percent}% off", cart.lines.len()));
                cart.lines
                    .iter()
                    .enumerate()
                    .map(|(i, l)| Adjustment {
                        line: i as u32,
                        change: Change::Discount((l.unit_price.amount * l.quantity - l.discount) * percent / 100),
                        message: format!("{percent}% off"),
                    })
                    .collect()
            }
            "set-price" => {
                let price: i64 = setting(&cart, "price").and_then(|p| p.parse().ok()).unwrap_or(100);
                (0..cart.lines.len() as u32)
                    .map(|i| Adjustment { line: i, change: Change::UnitPrice(price), message: "fixed price".into() })
                    .collect()
            }
            "loop" => {
                let mut x: u64 = 1;
                loop {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            }
            "memory" => {
                // Memory taken, never written: the limit, not the fuel, stops it.
                loop {
                    let block: Vec<u8> = Vec::with_capacity(4 << 20);
                    std::mem::forget(std::hint::black_box(block));
                }
            }
            "recursion" => {
                let n = recurse(0);
                vec![Adjustment { line: 0, change: Change::Discount(n as i64), message: String::new() }]
            }
            "flood" => (0..1_000)
                .map(|_| Adjustment { line: 0, change: Change::Discount(0), message: "x".repeat(100) })
                .collect(),
            "log-flood" => {
                for i in 0..200 {
                    log::write(&format!("line {i} of a flood of log lines"));
                    println!("stdout {i}");
                }
                Vec::new()
            }
            "trap" => panic!("this plugin traps on purpose"),
            "negative" => every(|_| Change::UnitPrice(-1), "below zero"),
            "over-discount" => every(|l| Change::Discount(l.unit_price.amount * l.quantity * 10), "too much"),
            "bad-line" => vec![Adjustment { line: 999, change: Change::Discount(1), message: "nowhere".into() }],
            "clock" => {
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                let mut random = std::collections::hash_map::RandomState::new();
                let _ = &mut random;
                let hashed = {
                    use std::hash::BuildHasher;
                    random.hash_one(42u64)
                };
                log::write(&format!("clock {} hash {hashed}", now.as_secs()));
                println!("stdout works");
                Vec::new()
            }
            other => panic!("unknown mode {other}"),
        }
    }
}

bindings::export!(Plugin with_types_in bindings);
