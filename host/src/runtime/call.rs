//! Who a call is for, and how a failed call is reported.

use std::time::Duration;

use wasmtime::Trap;

use super::MemoryLimitExceeded;

pub use crate::bindings::context::Role;

/// A verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub account_id: String,
    pub roles: Vec<Role>,
    /// The session of the caller's access token; none for operators.
    pub session_id: Option<String>,
}

impl Caller {
    /// The host's operator (admin port), acting as an admin.
    pub fn operator() -> Self {
        Self { account_id: "operator".into(), roles: vec![Role::Admin], session_id: None }
    }
}

/// Facts about one component call, visible to the component through the
/// `context` interface and to the host's logs.
#[derive(Debug, Clone)]
pub struct CallInfo {
    pub request_id: String,
    pub caller: Option<Caller>,
    /// Milliseconds since the Unix epoch when the host accepted the call.
    pub now_ms: i64,
    /// The end client's address as the gateway saw it ("unknown" if not
    /// given); used for throttling, not shown to components.
    pub client_address: String,
    /// The component slot ("product") and version serving the call.
    pub component: String,
    pub version: String,
    /// Guest log lines emitted so far (bounded per call).
    pub(crate) log_lines: u32,
}

impl CallInfo {
    pub fn new(request_id: impl Into<String>, caller: Option<Caller>) -> Self {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default();
        Self {
            request_id: request_id.into(),
            caller,
            now_ms,
            client_address: "unknown".into(),
            component: String::new(),
            version: String::new(),
            log_lines: 0,
        }
    }
}

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
    #[error("component trapped: {0}")]
    Trapped(String),
    #[error("the host is at capacity: {0}")]
    Overloaded(String),
}

impl CallError {
    /// Classifies the error of an instantiation or call.
    pub fn from_wasm(error: wasmtime::Error, timeout: Duration) -> Self {
        if let Some(limit) = error.downcast_ref::<MemoryLimitExceeded>() {
            return CallError::MemoryExhausted(limit.to_string());
        }
        match error.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => CallError::Timeout { timeout },
            Some(Trap::AllocationTooLarge) => CallError::MemoryExhausted(error.to_string()),
            _ => {
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
