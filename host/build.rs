//! Embeds the domain components (built from `plugins/`); see
//! `polyscale-guest-build`. Test-only components live in
//! `polyscale-test-components`.

use polyscale_guest_build::{Guest, embed};

fn main() {
    embed(&[
        Guest { name: "PRODUCT", package: "product-component", dir: "product" },
        Guest { name: "ACCOUNT", package: "account-component", dir: "account" },
        Guest { name: "ORDER", package: "order-component", dir: "order" },
    ]);
}
