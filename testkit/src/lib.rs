//! Test support shared by the crates' integration tests.
//!
//! [`pg::fresh_database`] gives each test its own PostgreSQL database: on
//! the server named by `DATABASE_URL` when set (CI starts one cluster for
//! the whole run), otherwise on a throwaway cluster this process starts
//! with `initdb` + `postgres` and that dies with it. [`http::send_refused`]
//! reads a refusal that the server sends before it has read the body.

pub mod http;
pub mod pg;
pub mod wasm;
