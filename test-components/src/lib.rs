//! Guest components for tests only, built from `plugins/testing/` by this
//! crate's build script. Only test targets depend on this crate, so the
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

include!(concat!(env!("OUT_DIR"), "/components.rs"));
