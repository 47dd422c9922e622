//! The Wasm runtime: one [`wasmtime::Engine`] per process, per-call stores
//! and the limits every call runs under.
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
mod limits;
mod store;

pub use call::{CallError, CallInfo, Caller, Role};
pub use engine::{EPOCH_TICK, Runtime, RuntimeConfig};
pub use limits::{CallLimits, MemoryLimitExceeded, MemoryLimiter};
pub use store::{Capabilities, StoreState};
