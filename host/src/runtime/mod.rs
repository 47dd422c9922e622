//! The Wasm runtime: one [`wasmtime::Engine`] per process, per-call stores,
//! the limits every call runs under, and the invoker. It knows no
//! capability: a store carries the capability state of its [`World`] as an
//! opaque `C` ([`CallState`]).
//!
//! Every component call gets a fresh instance in a fresh [`Store`]
//! (instantiated from a pre-linked `InstancePre` in the pooling allocator),
//! so no state leaks between requests. Each call is bounded in wall time
//! (epoch deadline, plus an outer timeout for host I/O) and in memory (a
//! [`ResourceLimiter`]); a call that breaks a bound traps and fails alone.
//!
//! [`Store`]: wasmtime::Store
//! [`ResourceLimiter`]: wasmtime::ResourceLimiter

mod call;
mod engine;
mod guest_output;
mod invoke;
mod limits;
mod store;
mod world;

pub use call::CallError;
pub use engine::{EPOCH_TICK, Runtime, RuntimeConfig};
pub use limits::{CallLimits, MemoryLimitExceeded, MemoryLimiter};
pub use store::CallState;
pub use world::{BoxFuture, World, WorldStore};
