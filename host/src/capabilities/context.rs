//! `context` (and the type-only `types`): the facts of the call in
//! progress, read from the call's [`CallInfo`].

use wasmtime::component::{HasSelf, Linker};

use crate::bindings::context::{self, CallContext, Host, Principal};
use crate::bindings::types;
use crate::call::CallInfo;

/// Store data that knows the call it serves. `logging` needs it too.
pub trait ContextView: Send {
    fn call_info(&mut self) -> &mut CallInfo;
}

/// Links `polyscale:commerce/types` and `polyscale:commerce/context`.
pub fn add_to_linker<T: ContextView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    types::add_to_linker::<T, HasSelf<CallInfo>>(linker, |t| t.call_info())?;
    context::add_to_linker::<T, HasSelf<CallInfo>>(linker, |t| t.call_info())
}

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
