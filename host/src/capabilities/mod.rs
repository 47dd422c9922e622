//! Host capabilities lent to components, one module per WIT interface.
//!
//! Each module implements its interface's generated `Host` trait on a view
//! of only its own slice of the store (see `runtime::StoreState`).

pub mod context;
pub mod credentials;
pub mod extensions;
pub mod logging;
pub mod payments;
pub mod search;
pub mod siblings;
pub mod sql;
