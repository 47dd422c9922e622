//! The worlds this host runs, and which capabilities each links: the one
//! place where capabilities meet the runtime and the registry.
//!
//! A world's per-call capability state is a plain struct (`ProductCaps`);
//! the store data is the runtime's `CallState<ThatStruct>`, and the world
//! implements each capability's `…View` for it. A world that links a
//! capability it cannot view does not compile.

pub mod account;
pub mod product;

use wasmtime::component::Linker;

use crate::call::CallInfo;
use crate::capabilities::context::ContextView;
use crate::capabilities::sql::{self, SqlView, guard};
use crate::capabilities::{context, logging};
use crate::database::migrations::{self, Migration};
use crate::database::{Database, SqlLimits};
use crate::registry::{DeployError, Deployable, SlotKey, Slots};
use crate::runtime::{BoxFuture, CallState, WorldStore};

/// Every call knows its facts; `context` and `logging` read them.
impl<C: Send + 'static> ContextView for CallState<C> {
    fn call_info(&mut self) -> &mut CallInfo {
        &mut self.call
    }
}

/// Links what every domain world imports: WASI with nothing granted (the
/// standard library of `wasm32-wasip2` imports it), `types`, `context`,
/// `logging` and `sql`.
pub fn link_domain_base<C: Send + 'static>(linker: &mut Linker<CallState<C>>) -> wasmtime::Result<()>
where
    CallState<C>: SqlView,
{
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    context::add_to_linker(linker)?;
    logging::add_to_linker(linker)?;
    sql::add_to_linker(linker)
}

/// A domain world's activation step: asks the candidate version for its
/// migrations and applies the missing ones to the slot's database, each
/// statement through the `sql` guard. A failure leaves the old version
/// active.
pub(crate) async fn migrate<W, F>(
    slots: &Slots<W>,
    slot: &SlotKey,
    version: &str,
    pre: &W::Pre,
    db: &Database,
    limits: &SqlLimits,
    list: F,
) -> Result<(), DeployError>
where
    W: Deployable,
    F: for<'a> FnOnce(&'a W::Exports, &'a mut WorldStore<W>) -> BoxFuture<'a, wasmtime::Result<Vec<Migration>>>,
{
    let info = CallInfo::new(format!("migrations-{}", uuid::Uuid::now_v7()), None);
    let wanted = slots.call_pre(pre, version, info, None, list).await?;
    migrations::apply(db, &slot.kind, &wanted, limits, |dialect, statement, limits| {
        guard::check(dialect, statement, &[], limits)
    })
    .await?;
    Ok(())
}
