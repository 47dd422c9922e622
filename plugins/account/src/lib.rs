//! The account component: registration, sign-in, profiles and roles.
//!
//! Passwords pass through here on their way to the host's `credentials`
//! capability, which hashes and checks them and keeps the hashes; nothing
//! secret is ever returned into this component's memory. Sessions
//! (refresh-token families) and access tokens are the host's too: the
//! component decides *whether* to open, rotate or end a session, the host
//! does it.

mod accounts;
mod migrations;
mod policy;
mod store;

mod bindings {
    wit_bindgen::generate!({
        world: "account-service",
        path: "../../wit",
        with: {
            "polyscale:commerce/types@0.1.0": polyscale_guest::bindings::types,
            "polyscale:commerce/context@0.1.0": polyscale_guest::bindings::context,
            "polyscale:commerce/logging@0.1.0": polyscale_guest::bindings::logging,
            "polyscale:commerce/sql@0.1.0": polyscale_guest::bindings::sql,
            "polyscale:commerce/credentials@0.1.0": generate,
        },
    });
}

struct Component;

bindings::export!(Component with_types_in bindings);
