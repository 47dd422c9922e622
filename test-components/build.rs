//! Builds the test-only guest components in `plugins/testing/` and the
//! Rust example plugins in `plugins/examples/rust/`.

use polyscale_guest_build::{Guest, embed};

fn main() {
    embed(&[
        Guest { name: "FAULTY_PRODUCT", package: "faulty-product-component", dir: "testing/faulty-product" },
        Guest { name: "HOSTILE_ACCOUNT", package: "hostile-account-component", dir: "testing/hostile-account" },
        Guest {
            name: "TIERED_DISCOUNT_PLUGIN",
            package: "tiered-discount-plugin",
            dir: "examples/rust/tiered-discount",
        },
        Guest { name: "MAX_QUANTITY_PLUGIN", package: "max-quantity-plugin", dir: "examples/rust/max-quantity" },
    ]);
}
