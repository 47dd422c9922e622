//! A world, as the runtime sees it: which capability state its calls carry,
//! how it is linked, and how its generated bindings instantiate.

use std::future::Future;
use std::pin::Pin;

use wasmtime::Store;
use wasmtime::component::{InstancePre, Linker};

use wasmtime_wasi::WasiCtx;

use super::CallState;
use crate::call::CallInfo;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The store of a call to a component of world `W`.
pub type WorldStore<W> = Store<CallState<<W as World>::Caps>>;

/// A world whose components the host runs. It names its capability set in
/// one place, [`World::link`]: a capability whose `…View` the world's
/// [`World::Caps`] cannot provide does not compile, and a component that
/// imports something the world does not link is refused when its version
/// is type-checked ([`World::pre`]), never at call time.
pub trait World: Send + Sync + Sized + 'static {
    /// The capability state of one call (the `C` of [`CallState`]).
    type Caps: Send + 'static;
    /// What the world's capabilities share across the calls of one kind of
    /// slot: a database pool, a search engine, the credentials store.
    type Shared: Send + Sync + 'static;
    /// The generated `…Pre` (a type-checked, pre-linked component).
    type Pre: Clone + Send + Sync + 'static;
    /// The generated bindings of an instance.
    type Exports: Send + Sync + 'static;

    /// Links every import the world allows.
    fn link(linker: &mut Linker<CallState<Self::Caps>>) -> wasmtime::Result<()>;
    /// Checks a component's exports against the world.
    fn pre(instance_pre: InstancePre<CallState<Self::Caps>>) -> wasmtime::Result<Self::Pre>;
    fn instantiate<'a>(
        pre: &'a Self::Pre,
        store: &'a mut WorldStore<Self>,
    ) -> BoxFuture<'a, wasmtime::Result<Self::Exports>>;
    /// The capability state for one call.
    fn caps(shared: &Self::Shared) -> Self::Caps;
    /// The call's WASI context (for the WASI interfaces the world links):
    /// by default nothing granted, stdout/stderr to the logs.
    fn wasi(call: &CallInfo, _caps: &Self::Caps) -> WasiCtx {
        CallState::<Self::Caps>::closed_wasi(call)
    }
}
