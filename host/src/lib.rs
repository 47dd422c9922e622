//! PolyScale's service host: runs components under wasmtime, lends them
//! capabilities and serves them over gRPC. Layers, lowest first (a module
//! may use those below it, never those beside or above):
//!
//! - [`bindings`], [`contracts`], [`call`], [`clock`], [`database`]: the
//!   generated WIT types and their conversions, the facts of a call, time,
//!   SQL access;
//! - [`runtime`] (engine, stores, limits, the invoker; knows no capability)
//!   beside [`capabilities`] (one module per WIT interface; knows no
//!   runtime or registry);
//! - [`registry`]: the component store, compiled-code cache and slots;
//! - [`worlds`]: which capabilities each world links;
//! - [`services`]: one module per domain service (gRPC, health, tasks) and
//!   the admin services; [`server`]: `build` + `run` for a host process.
//!
//! See docs/architecture.md for the picture.

pub mod admin_plane;
pub mod bindings;
pub mod call;
pub mod capabilities;
pub mod clock;
pub mod components;
pub mod contracts;
pub mod database;
pub mod grpc_metrics;
pub mod plugins;
pub mod registry;
pub mod runtime;
pub mod server;
pub mod services;
pub mod worlds;
