//! Guest components for tests only, built from `plugins/testing/` and
//! `plugins/examples/rust/` by this crate's build script. Only test targets depend on this crate, so the
//! host library exposes (and every host build compiles) real components
//! only.
//!
//! - [`FAULTY_PRODUCT`]: a `product-service` component that traps, spins,
//!   allocates without bound or works slowly on request (see its crate
//!   docs).
//! - [`HOSTILE_ACCOUNT`]: an `account-service` component that tries to
//!   mint tokens and sessions for accounts it never proved.
//! - [`HOSTILE_PLUGIN`]: a merchant pricing plugin that discounts, or
//!   loops, hoards memory, recurses, floods, traps or lies, by its `mode`
//!   setting (see its crate docs).
//! - [`TIERED_DISCOUNT_PLUGIN`]: the example `pricing` plugin
//!   (`polyscale:plugin@1.0.0`) `plugins/examples/rust/tiered-discount`:
//!   setting `tiers` (default `5:10,10:20`), from 5 units 10 % off the
//!   line's total as a `discount`, from 10 units 20 %, rounded down
//!   (5 × 999 → 499, "10% off from 5 units").
//! - [`MAX_QUANTITY_PLUGIN`]: the example `validation` plugin
//!   `plugins/examples/rust/max-quantity`: setting `max` (default 10); each
//!   line above it gets `MAX_QUANTITY` on `lines[i].quantity`.
//!
//! The other example plugins (Python, JavaScript, C) need toolchains a
//! build script should not bootstrap: `cargo xtask plugin-examples` builds
//! all five and `cargo xtask test` passes their directory to the tests as
//! `PLUGIN_EXAMPLES_DIR` (see docs/plugins.md).

include!(concat!(env!("OUT_DIR"), "/components.rs"));
