//! What a store holds for one call: what every call needs (WASI with
//! nothing granted, the resource table, the memory limiter, the call's
//! facts) plus the capability state of the call's world, `C`, which the
//! runtime does not look into.

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::guest_output::GuestOutput;
use super::{CallLimits, MemoryLimiter};
use crate::call::CallInfo;

pub struct CallState<C> {
    wasi: WasiCtx,
    pub(crate) limiter: MemoryLimiter,
    /// Resources of the call (open transactions, say), shared by every
    /// capability that hands them out.
    pub table: ResourceTable,
    pub call: CallInfo,
    /// The capabilities of the world, per call.
    pub caps: C,
}

impl<C> CallState<C> {
    pub fn new(call: CallInfo, limits: &CallLimits, wasi: WasiCtx, caps: C) -> Self {
        Self { wasi, limiter: MemoryLimiter::new(limits), table: ResourceTable::new(), call, caps }
    }

    /// WASI with nothing granted: no files, sockets, environment or
    /// arguments; stdout/stderr go to the logs.
    pub fn closed_wasi(call: &CallInfo) -> WasiCtx {
        WasiCtx::builder()
            .stdout(GuestOutput::new("stdout", &call.component, &call.request_id))
            .stderr(GuestOutput::new("stderr", &call.component, &call.request_id))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build()
    }

    /// The largest linear memory the call's instances reached.
    pub fn peak_memory_bytes(&self) -> usize {
        self.limiter.peak_memory_bytes()
    }

    pub fn call(&self) -> &CallInfo {
        &self.call
    }
}

impl<C: Send + 'static> WasiView for CallState<C> {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}
