//! The `sql` capability: parameterised SQL against a component's own
//! database, on SQLite (embedded) or PostgreSQL (distributed), through
//! [`crate::database`].
//!
//! Statements pass [`guard`] first: the host's own tables and file-touching
//! SQLite statements are refused. Results are capped ([`SqlLimits`]) while
//! they stream, so a runaway query costs its own call.
//!
//! The capability's state per call is [`SqlCtx`]; a store's data exposes it
//! through [`SqlView`], and [`add_to_linker`] links the interface for any
//! such data.

pub mod guard;
mod host;

pub use host::{SqlCtx, SqlCtxView, SqlView, add_to_linker};

pub use crate::database::{SqlLimits, Transaction};
