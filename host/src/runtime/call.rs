//! How a failed call is reported.

use std::time::Duration;

use wasmtime::Trap;

use super::MemoryLimitExceeded;

/// Why a component call produced no answer. The component's own expected
/// errors are not here: they are its WIT `result`.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("component {component} has no active version")]
    NoActiveVersion { component: String },
    #[error("component call exceeded its {timeout:?} deadline")]
    Timeout { timeout: Duration },
    #[error("component exceeded its memory limit: {0}")]
    MemoryExhausted(String),
    #[error("component ran out of fuel (its instruction budget)")]
    FuelExhausted,
    #[error("component trapped: {0}")]
    Trapped(String),
    #[error("the host is at capacity: {0}")]
    Overloaded(String),
    #[error("the component cannot be loaded now: {0}")]
    Unavailable(String),
}

impl CallError {
    /// Classifies the error of an instantiation or call.
    pub fn from_wasm(error: wasmtime::Error, timeout: Duration) -> Self {
        if let Some(limit) = error.downcast_ref::<MemoryLimitExceeded>() {
            return CallError::MemoryExhausted(limit.to_string());
        }
        match error.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => CallError::Timeout { timeout },
            Some(Trap::OutOfFuel) => CallError::FuelExhausted,
            Some(Trap::AllocationTooLarge) => CallError::MemoryExhausted(error.to_string()),
            Some(trap) => {
                // The trap's kind first, then the context and backtrace.
                CallError::Trapped(format!("{trap}\n{error:#}"))
            }
            None => {
                let message = format!("{error:#}");
                // The pooling allocator refuses instances past its size.
                if message.contains("maximum concurrent") || message.contains("pooling allocator") {
                    CallError::Overloaded(message)
                } else {
                    CallError::Trapped(message)
                }
            }
        }
    }
}
