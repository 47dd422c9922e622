//! The facts of one component call (who it is for, its request id, the
//! serving slot and version): the vocabulary the runtime, the capabilities
//! and the services share, owned by none of them.

pub use crate::bindings::context::Role;
use crate::clock::now_ms;

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
    pub log_lines: u32,
    /// When the call must be over (set by the invoker); host work done for
    /// the call (SQL statements) stops there too.
    pub deadline: Option<std::time::Instant>,
    /// The service that made the call, when it proved it with a service
    /// token ("gateway", "order").
    pub service: Option<String>,
    /// The caller's access token as received, forwarded on the calls the
    /// host makes for this call to sibling services. Never shown to
    /// components.
    pub bearer: Option<String>,
}

impl CallInfo {
    pub fn new(request_id: impl Into<String>, caller: Option<Caller>) -> Self {
        Self {
            request_id: request_id.into(),
            caller,
            now_ms: now_ms(),
            client_address: "unknown".into(),
            component: String::new(),
            version: String::new(),
            log_lines: 0,
            deadline: None,
            service: None,
            bearer: None,
        }
    }
}
