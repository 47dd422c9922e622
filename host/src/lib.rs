//! PolyScale's service host: runs domain components under wasmtime, lends
//! them capabilities (SQL, logging, call context) and serves them over gRPC.
//!
//! - [`runtime`]: the engine, per-call stores and limits;
//! - [`capabilities`]: one module per WIT interface the host implements;
//! - [`registry`]: component versions, migrations and hot swap;
//! - [`services`]: the gRPC services in front of the components;
//! - [`server`]: `build` + `run` for a host process.

pub mod bindings;
pub mod capabilities;
pub mod components;
pub mod registry;
pub mod runtime;
pub mod server;
pub mod services;
