//! `context`: the facts of the call in progress.

use crate::bindings::context::{CallContext, Host, Principal};
use crate::bindings::types;
use crate::runtime::CallInfo;

impl Host for CallInfo {
    fn current(&mut self) -> wasmtime::Result<CallContext> {
        Ok(CallContext {
            request_id: self.request_id.clone(),
            caller: self.caller.as_ref().map(|c| Principal {
                account_id: c.account_id.clone(),
                roles: c.roles.clone(),
                session_id: c.session_id.clone(),
            }),
            now_ms: self.now_ms,
        })
    }
}

/// `types` declares no functions; linking it is a formality.
impl types::Host for CallInfo {}
