//! The product catalog component: products, categories and stock.
//!
//! All state lives in the component's own SQL database (see
//! [`migrations`]); the component itself is stateless and instantiated per
//! call. Authorization is checked here too, not only at the gateway:
//! merchants may only manage their own products (admins may manage any).
//! Stock reservations for orders are in [`inventory`].

mod access;
mod catalog;
mod indexing;
mod inventory;
mod migrations;
mod search;
mod validate;

mod bindings {
    wit_bindgen::generate!({
        world: "product-service",
        path: "../../wit",
        with: {
            "polyscale:commerce/types@0.1.0": polyscale_guest::bindings::types,
            "polyscale:commerce/context@0.1.0": polyscale_guest::bindings::context,
            "polyscale:commerce/logging@0.1.0": polyscale_guest::bindings::logging,
            "polyscale:commerce/sql@0.1.0": polyscale_guest::bindings::sql,
            "polyscale:commerce/search@0.1.0": generate,
        },
    });
}

struct Component;

bindings::export!(Component with_types_in bindings);
