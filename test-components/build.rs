//! Builds the test-only guest components in `plugins/testing/` and the
//! Rust example plugins in `plugins/examples/rust/`.

use polyscale_guest_build::{Guest, embed};

fn main() {
    embed(&[
        Guest { name: "FAULTY_PRODUCT", package: "faulty-product-component", dir: "testing/faulty-product" },
        Guest { name: "HOSTILE_ACCOUNT", package: "hostile-account-component", dir: "testing/hostile-account" },
        Guest { name: "HOSTILE_PLUGIN", package: "hostile-plugin-component", dir: "testing/hostile-plugin" },
        Guest {
            name: "TIERED_DISCOUNT_PLUGIN",
            package: "tiered-discount-plugin",
            dir: "examples/rust/tiered-discount",
        },
        Guest { name: "MAX_QUANTITY_PLUGIN", package: "max-quantity-plugin", dir: "examples/rust/max-quantity" },
    ]);
}
