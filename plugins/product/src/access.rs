//! Who may change which products.
//!
//! The gateway checks roles before calling, and this component checks them
//! again against the verified caller in the call context (defence in depth:
//! a gateway bug or a direct gRPC call must not bypass ownership).

use polyscale_guest::bindings::types::DomainError;
use polyscale_guest::{CallContext, CallerExt, FieldErrors, Role, ids};

/// Which products a caller may change.
pub enum Scope {
    /// Every product (admins).
    All,
    /// Only this merchant's products.
    Merchant(String),
}

impl Scope {
    /// The merchant filter to add to a write, if any.
    pub fn merchant(&self) -> Option<&str> {
        match self {
            Scope::All => None,
            Scope::Merchant(m) => Some(m),
        }
    }

    /// Whether every product is in scope. Writes filter with
    /// `(all OR merchant_id = merchant)`: an explicit flag, so no merchant
    /// id (not even an empty one) can stand for "every merchant".
    pub fn all(&self) -> bool {
        matches!(self, Scope::All)
    }
}

/// The products the caller may change.
pub fn manage_scope(ctx: &CallContext) -> Result<Scope, DomainError> {
    let caller = &ctx.caller;
    match caller {
        None => Err(DomainError::Unauthenticated("sign in to manage products".into())),
        Some(_) if caller.is_admin() => Ok(Scope::All),
        Some(p) if caller.has_role(Role::Merchant) => Ok(Scope::Merchant(p.account_id.clone())),
        Some(_) => Err(DomainError::Forbidden("only merchants and admins may manage products".into())),
    }
}

/// The merchant a new product belongs to: merchants create for themselves;
/// admins must name one.
pub fn owner_for_new(
    ctx: &CallContext,
    requested: Option<&str>,
    field: &str,
    errors: &mut FieldErrors,
) -> Result<Option<String>, DomainError> {
    match (manage_scope(ctx)?, requested) {
        (Scope::Merchant(me), None) => Ok(Some(me)),
        (Scope::Merchant(me), Some(other)) if other == me => Ok(Some(me)),
        (Scope::Merchant(_), Some(_)) => {
            Err(DomainError::Forbidden("merchants may only create their own products".into()))
        }
        (Scope::All, Some(id)) => Ok(errors.take(ids::parse_id(field, id))),
        (Scope::All, None) => {
            errors.add(field, "REQUIRED", "name the merchant that sells this product");
            Ok(None)
        }
    }
}

/// Admin-only catalog structure (categories).
pub fn require_catalog_admin(ctx: &CallContext) -> Result<(), DomainError> {
    match manage_scope(ctx)? {
        Scope::All => Ok(()),
        Scope::Merchant(_) => Err(DomainError::Forbidden("only admins may manage categories".into())),
    }
}
