//! Guest-side support shared by PolyScale's domain components.
//!
//! This crate owns the bindings of the host capabilities every domain
//! component imports (`types`, `context`, `logging`, `sql`); component crates
//! reuse them with wit-bindgen's `with:` so there is one Rust type per WIT
//! type. Beside the bindings it holds the small pieces each component would
//! otherwise rewrite: typed access to SQL rows, field-error collection,
//! opaque cursors, id and money parsing.

pub mod bindings {
    wit_bindgen::generate!({
        world: "domain-imports",
        path: "../../wit",
        generate_all,
    });
    pub use self::polyscale::commerce::*;
}

pub mod cursor;
pub mod errors;
pub mod ids;
pub mod log;
pub mod money;
pub mod sql;

pub use bindings::context::{self, CallContext, Principal, Role};
pub use bindings::types::{DomainError, FieldError, Money, PageRequest};
pub use errors::{FieldErrors, Invalid};

/// The context of the call in progress.
pub fn call_context() -> CallContext {
    context::current()
}

/// Role checks on the (optional) verified caller.
pub trait CallerExt {
    fn has_role(&self, role: Role) -> bool;
    fn account_id(&self) -> Option<&str>;
    fn is_admin(&self) -> bool {
        self.has_role(Role::Admin)
    }
}

impl CallerExt for Option<Principal> {
    fn has_role(&self, role: Role) -> bool {
        self.as_ref().is_some_and(|p| p.roles.contains(&role))
    }
    fn account_id(&self) -> Option<&str> {
        self.as_ref().map(|p| p.account_id.as_str())
    }
}
