//! What a store holds for one call, and how it is linked.

use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::guest_output::GuestOutput;
use super::{CallInfo, CallLimits, MemoryLimiter};
use std::sync::Arc;

use crate::bindings::{context, credentials, logging, search, sql, types};
use crate::capabilities::credentials::{Credentials, CredentialsCap, CredentialsView};
use crate::capabilities::search::{SearchCap, SearchService, SearchView};
use crate::capabilities::sql::{Sql, SqlState, SqlView};

/// Capabilities beyond SQL that some worlds import, shared by every call of
/// a slot.
#[derive(Clone, Default)]
pub struct Capabilities {
    pub credentials: Option<Arc<Credentials>>,
    pub search: Option<Arc<SearchService>>,
}

/// The data of one call's store. Each capability sees only its own slice
/// (see the getters in [`StoreState::link_domain_imports`]).
pub struct StoreState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) call: CallInfo,
    pub(crate) sql: Option<SqlState>,
    pub(crate) credentials: Option<Arc<Credentials>>,
    pub(crate) search: Option<Arc<SearchService>>,
}

impl StoreState {
    /// A store for a call to a domain component: WASI with nothing granted
    /// (no files, sockets, environment or arguments; stdout/stderr to the
    /// logs) plus the component's own database.
    pub fn for_domain_call(call: CallInfo, limits: &CallLimits, sql: SqlState, capabilities: &Capabilities) -> Self {
        let wasi = WasiCtx::builder()
            .stdout(GuestOutput::new("stdout", &call.component, &call.request_id))
            .stderr(GuestOutput::new("stderr", &call.component, &call.request_id))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Self {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(limits),
            call,
            sql: Some(sql),
            credentials: capabilities.credentials.clone(),
            search: capabilities.search.clone(),
        }
    }

    /// Links WASI and the capabilities every domain component may import.
    pub fn link_domain_imports(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
        wasmtime_wasi::p2::add_to_linker_async(linker)?;
        types::add_to_linker::<_, HasSelf<CallInfo>>(linker, |s| &mut s.call)?;
        context::add_to_linker::<_, HasSelf<CallInfo>>(linker, |s| &mut s.call)?;
        logging::add_to_linker::<_, HasSelf<CallInfo>>(linker, |s| &mut s.call)?;
        sql::add_to_linker::<_, Sql>(linker, |s| SqlView { state: s.sql.as_mut(), table: &mut s.table })?;
        Ok(())
    }

    /// Links the account world's extra import, `credentials`.
    pub fn link_credentials(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
        credentials::add_to_linker::<_, CredentialsCap>(linker, |s| CredentialsView {
            shared: s.credentials.as_ref(),
            client: &s.call.client_address,
        })
    }

    /// Links the product world's extra import, `search`.
    pub fn link_search(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
        search::add_to_linker::<_, SearchCap>(linker, |s| SearchView {
            service: s.search.as_ref(),
            table: &mut s.table,
        })
    }

    pub fn call(&self) -> &CallInfo {
        &self.call
    }
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}
