//! Builds the test-only guest components in `plugins/testing/`.

use polyscale_guest_build::{Guest, embed};

fn main() {
    embed(&[
        Guest { name: "FAULTY_PRODUCT", package: "faulty-product-component", dir: "testing/faulty-product" },
        Guest { name: "HOSTILE_ACCOUNT", package: "hostile-account-component", dir: "testing/hostile-account" },
        Guest { name: "HOSTILE_PLUGIN", package: "hostile-plugin-component", dir: "testing/hostile-plugin" },
    ]);
}
