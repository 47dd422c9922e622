//! Component versions and hot swap, for every kind of component, in four
//! parts:
//!
//! - [`store`]: the durable component store (binaries by SHA-256, each
//!   slot's versions, the active pointer with an activation sequence);
//! - [`cache`]: compiled code, shared by all slots, within a memory budget;
//! - [`Slots`]: the slots of one kind (one world), keyed by owner in a
//!   concurrent map; an idle slot holds no compiled code;
//! - the invoker ([`Runtime::invoke`]), which builds each call's store
//!   under the limits of the slot's kind.
//!
//! A deploy compiles and type-checks the new binary off the request path,
//! stores it, runs the world's activation step (migrations, for worlds
//! that export them) and only then swaps it in with one atomic pointer
//! store. A call loads the pointer once at its start and keeps what it
//! loaded to its end, so calls in flight finish on the version they
//! started with. Every version stays stored: rollback is activating an
//! older one. The registry names no capability.
//!
//! Replicas follow each other: each slot remembers the activation
//! sequence it runs, and every kind listens to the store's
//! [`ChangeFeed`](crate::database::changes::ChangeFeed). An activation made
//! by another process (announced, or found by the periodic resync) is
//! compiled here first and then swapped in the same way; its activation
//! step (migrations) already ran where it was made.

pub mod cache;
pub mod store;

use std::any::TypeId;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use dashmap::DashMap;
use tracing::Instrument;
use wasmtime::component::{Component, Linker};

pub use cache::{Compiled, CompiledCache};
pub use store::{Activation, ComponentStore, SlotKey, VersionInfo, VersionSource, sha256_hex};

use crate::call::CallInfo;
use crate::database::SqlError;
use crate::database::changes::Change;
use crate::database::migrations::MigrationError;
use crate::runtime::{BoxFuture, CallError, CallLimits, CallState, Runtime, RuntimeConfig, World, WorldStore};

/// Why a version could not be stored or activated.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("the component is {size} bytes; the limit is {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("not a valid WebAssembly component: {0}")]
    InvalidComponent(String),
    #[error("the component does not fit this service: {0}")]
    Incompatible(String),
    #[error("no version {version} of component {component}")]
    UnknownVersion { component: String, version: String },
    #[error(transparent)]
    Migration(#[from] MigrationError),
    #[error("the component failed while preparing its activation: {0}")]
    Failed(#[from] CallError),
    #[error("storage: {0:?}")]
    Storage(SqlError),
}

impl From<SqlError> for DeployError {
    fn from(e: SqlError) -> Self {
        DeployError::Storage(e)
    }
}

/// What the registry needs of a world beyond the runtime's [`World`]: the
/// work a version does before it goes live. Domain worlds apply their
/// migrations here; the default does nothing.
pub trait Deployable: World {
    /// Checks a compiled component before it is linked, to refuse what the
    /// world never accepts with a clearer message than linking gives (an
    /// import it may not have, a contract version it does not run).
    fn check(_component: &Component) -> Result<(), DeployError> {
        Ok(())
    }

    fn before_activation<'a>(
        _slots: &'a Slots<Self>,
        _slot: &'a SlotKey,
        _version: &'a str,
        _pre: &'a Self::Pre,
    ) -> BoxFuture<'a, Result<(), DeployError>> {
        Box::pin(async { Ok(()) })
    }
}

/// The answer of a call, with the version that gave it.
#[derive(Debug)]
pub struct Served<T> {
    pub value: T,
    pub version: String,
}

/// What every kind of slot shares: the runtime, the component store and
/// the compiled-code cache.
pub struct Registry {
    runtime: Runtime,
    store: ComponentStore,
    cache: CompiledCache,
}

impl Registry {
    pub fn new(runtime: Runtime, store: ComponentStore, cache_budget_bytes: u64) -> Arc<Self> {
        Arc::new(Self { runtime, store, cache: CompiledCache::new(cache_budget_bytes) })
    }

    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    pub fn store(&self) -> &ComponentStore {
        &self.store
    }

    pub fn cache(&self) -> &CompiledCache {
        &self.cache
    }

    /// The slots of one kind, all of world `W`.
    pub fn kind<W: Deployable>(
        self: &Arc<Self>,
        kind: &str,
        shared: W::Shared,
        limits: KindLimits,
    ) -> Result<Arc<Slots<W>>, DeployError> {
        let mut linker = Linker::new(self.runtime.engine());
        W::link(&mut linker).map_err(|e| DeployError::Incompatible(format!("linking the host: {e:#}")))?;
        let slots = Arc::new(Slots {
            kind: kind.to_string(),
            registry: self.clone(),
            linker,
            shared,
            limits,
            slots: DashMap::new(),
        });
        Slots::follow_changes(&slots);
        Ok(slots)
    }
}

/// The limits of a kind of slot.
#[derive(Debug, Clone, Copy)]
pub struct KindLimits {
    pub call: CallLimits,
    /// Largest binary a deploy accepts.
    pub max_component_bytes: usize,
    /// Calls one slot may have in flight; more wait (within their own
    /// deadline) for one to finish. Keeps one slot, looping or flooded,
    /// from taking every instance of the pool from the others.
    pub max_concurrent_calls: usize,
}

impl KindLimits {
    /// `call` limits, the default upload cap and the runtime's per-slot
    /// quota.
    pub fn new(call: CallLimits, runtime: &RuntimeConfig) -> Self {
        Self {
            call,
            max_component_bytes: crate::server::DEFAULT_MAX_COMPONENT_BYTES,
            max_concurrent_calls: runtime.max_concurrent_calls_per_slot.max(1) as usize,
        }
    }
}

/// One slot: the id of its active version, nothing compiled.
struct Slot {
    active: ArcSwapOption<VersionInfo>,
    /// The activation sequence of `active` (0 before the first).
    sequence: AtomicI64,
    /// Read the active pointer from the store once, on first use.
    loaded: tokio::sync::OnceCell<()>,
    /// Deploys and activations of a slot happen one at a time.
    changing: tokio::sync::Mutex<()>,
    /// Permits for calls in flight ([`KindLimits::max_concurrent_calls`]).
    calls: tokio::sync::Semaphore,
}

/// The slots of one kind (say `product`, or a merchant plugin kind), keyed
/// by owner.
pub struct Slots<W: World> {
    kind: String,
    registry: Arc<Registry>,
    linker: Linker<CallState<W::Caps>>,
    shared: W::Shared,
    limits: KindLimits,
    slots: DashMap<String, Arc<Slot>>,
}

impl<W: Deployable> Slots<W> {
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// What the world's capabilities share across calls.
    pub fn shared(&self) -> &W::Shared {
        &self.shared
    }

    /// The longest a call of this kind may run.
    pub fn call_timeout(&self) -> Duration {
        self.limits.call.timeout
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    fn key(&self, owner: &str) -> SlotKey {
        SlotKey::new(&self.kind, owner)
    }

    /// Slots known in memory (touched since start).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    async fn slot(&self, owner: &str) -> Result<Arc<Slot>, SqlError> {
        let slot = match self.slots.get(owner) {
            Some(slot) => slot.clone(),
            None => self
                .slots
                .entry(owner.to_string())
                .or_insert_with(|| {
                    Arc::new(Slot {
                        active: ArcSwapOption::empty(),
                        sequence: AtomicI64::new(0),
                        loaded: tokio::sync::OnceCell::new(),
                        changing: tokio::sync::Mutex::new(()),
                        calls: tokio::sync::Semaphore::new(self.limits.max_concurrent_calls),
                    })
                })
                .clone(),
        };
        slot.loaded
            .get_or_try_init(|| async {
                let key = self.key(owner);
                if let Some(active) = self.registry.store.active(&key).await?
                    && let Some(info) = self.registry.store.get(&key, &active.version).await?
                {
                    slot.active.store(Some(Arc::new(info)));
                    slot.sequence.store(active.sequence, Ordering::Release);
                }
                Ok::<_, SqlError>(())
            })
            .await?;
        Ok(slot)
    }

    /// Starts a slot with a component built into the binary: records it
    /// and activates it if it is new; otherwise comes back on the version
    /// that was active before (which may be a hot-swapped one), falling back
    /// to the built-in one if that cannot start.
    pub async fn bootstrap(&self, owner: &str, embedded: &[u8]) -> Result<VersionInfo, DeployError> {
        let slot = self.slot(owner).await?;
        let _changing = slot.changing.lock().await;
        let key = self.key(owner);
        let (embedded_info, is_new) = self.registry.store.insert(&key, embedded, VersionSource::Embedded).await?;
        let target = match (is_new, self.registry.store.active(&key).await?) {
            (false, Some(active)) => active.version,
            _ => embedded_info.version.clone(),
        };
        match self.activate_locked(&slot, &key, &target).await {
            Ok(info) => Ok(info),
            Err(e) if target != embedded_info.version => {
                tracing::error!(slot = %key, version = %target, error = %e,
                    "the previously active version cannot start; falling back to the built-in one");
                self.activate_locked(&slot, &key, &embedded_info.version).await
            }
            Err(e) => Err(e),
        }
    }

    /// Validates, stores and (if `activate`) activates a new version.
    pub async fn deploy(&self, owner: &str, wasm: &[u8], activate: bool) -> Result<VersionInfo, DeployError> {
        if wasm.len() > self.limits.max_component_bytes {
            return Err(DeployError::TooLarge { size: wasm.len(), limit: self.limits.max_component_bytes });
        }
        // Compile and type-check before storing anything, so garbage never
        // reaches the store.
        let sha = sha256_hex(wasm);
        let compiled = self.compile(wasm.to_vec(), &sha).await?;
        self.registry.cache.insert(TypeId::of::<W>(), &sha, compiled);
        let slot = self.slot(owner).await?;
        let _changing = slot.changing.lock().await;
        let key = self.key(owner);
        let (info, _) = self.registry.store.insert(&key, wasm, VersionSource::Deployed).await?;
        if activate { self.activate_locked(&slot, &key, &info.version).await } else { Ok(info) }
    }

    /// Makes a stored version the active one: by its id, or a unique
    /// prefix of it (at least 8 hex digits).
    pub async fn activate(&self, owner: &str, version: &str) -> Result<VersionInfo, DeployError> {
        let key = self.key(owner);
        let info =
            self.registry.store.resolve(&key, version).await?.ok_or_else(|| DeployError::UnknownVersion {
                component: key.to_string(),
                version: version.to_string(),
            })?;
        let slot = self.slot(owner).await?;
        let _changing = slot.changing.lock().await;
        self.activate_locked(&slot, &key, &info.version).await
    }

    /// Stored versions, newest first, with the active one flagged.
    pub async fn versions(&self, owner: &str) -> Result<Vec<(VersionInfo, bool)>, DeployError> {
        let active = self.active_version(owner).await?;
        Ok(self
            .registry
            .store
            .list(&self.key(owner))
            .await?
            .into_iter()
            .map(|v| {
                let is_active = active.as_ref().is_some_and(|a| a.version == v.version);
                (v, is_active)
            })
            .collect())
    }

    pub async fn active_version(&self, owner: &str) -> Result<Option<VersionInfo>, SqlError> {
        Ok(self.slot(owner).await?.active.load_full().map(|v| (*v).clone()))
    }

    async fn activate_locked(&self, slot: &Slot, key: &SlotKey, version: &str) -> Result<VersionInfo, DeployError> {
        let info =
            self.registry.store.get(key, version).await?.ok_or_else(|| DeployError::UnknownVersion {
                component: key.to_string(),
                version: version.to_string(),
            })?;
        let pre = self.compiled(version).await?;
        W::before_activation(self, key, version, &pre).await?;
        let sequence = self.registry.store.set_active(key, version).await?;
        let previous = slot.active.swap(Some(Arc::new(info.clone())));
        slot.sequence.fetch_max(sequence, Ordering::AcqRel);
        tracing::info!(
            slot = %key,
            version = %version,
            sequence,
            previous = previous.as_ref().map(|p| p.version.as_str()).unwrap_or("none"),
            "component version active"
        );
        Ok(info)
    }

    /// The active version of `owner`'s slot and its activation sequence,
    /// as this process runs it (health reports it).
    pub async fn running(&self, owner: &str) -> Result<Option<(VersionInfo, i64)>, SqlError> {
        let slot = self.slot(owner).await?;
        Ok(slot.active.load_full().map(|v| ((*v).clone(), slot.sequence.load(Ordering::Acquire))))
    }

    /// Follows the store's changes for this kind until the slots are
    /// dropped: an announced activation of a slot in memory is followed at
    /// once; a resync (or a lagging subscription) compares every slot in
    /// memory with the store.
    fn follow_changes(this: &Arc<Self>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let mut changes = this.registry.store.changes().subscribe();
        let weak: Weak<Self> = Arc::downgrade(this);
        runtime.spawn(async move {
            loop {
                let change = changes.recv().await;
                let Some(this) = weak.upgrade() else { return };
                match change {
                    Ok(Change::Activation { kind, owner, sequence }) if kind == this.kind => {
                        this.follow(&owner, Some(sequence)).await;
                    }
                    Ok(Change::Resync) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        this.resync().await;
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }

    /// Compares every slot in memory with the store and follows those
    /// behind.
    pub async fn resync(&self) {
        let stored = match self.registry.store.activations(&self.kind).await {
            Ok(stored) => stored,
            Err(e) => {
                tracing::warn!(kind = %self.kind, error = ?e, "resync: cannot read the activations");
                return;
            }
        };
        for (owner, activation) in stored {
            let behind = self.slots.get(&owner).is_some_and(|slot| {
                slot.loaded.initialized() && slot.sequence.load(Ordering::Acquire) < activation.sequence
            });
            if behind {
                self.follow(&owner, Some(activation.sequence)).await;
            }
        }
    }

    /// Brings `owner`'s slot to the store's active version if it runs an
    /// older activation than `sequence` (or any, with `None`). Slots not
    /// in memory read the store on first use anyway. The new version is
    /// compiled before the swap, so no call waits for it; if it cannot be
    /// loaded here the slot keeps its version and the next resync retries.
    pub async fn follow(&self, owner: &str, sequence: Option<i64>) {
        let Some(slot) = self.slots.get(owner).map(|s| s.clone()) else { return };
        let current = || slot.sequence.load(Ordering::Acquire);
        if !slot.loaded.initialized() || sequence.is_some_and(|s| s <= current()) {
            return;
        }
        let _changing = slot.changing.lock().await;
        let key = self.key(owner);
        let found = async {
            let Some(active) = self.registry.store.active(&key).await? else { return Ok(None) };
            if active.sequence <= current() {
                return Ok(None);
            }
            let info = self.registry.store.get(&key, &active.version).await?.ok_or_else(|| {
                DeployError::UnknownVersion { component: key.to_string(), version: active.version.clone() }
            })?;
            self.compiled(&info.version).await?;
            Ok::<_, DeployError>(Some((info, active.sequence)))
        };
        match found.await {
            Ok(Some((info, sequence))) => {
                let previous = slot.active.swap(Some(Arc::new(info.clone())));
                slot.sequence.store(sequence, Ordering::Release);
                tracing::info!(
                    slot = %key,
                    version = %info.version,
                    sequence,
                    previous = previous.as_ref().map(|p| p.version.as_str()).unwrap_or("none"),
                    "component version active (activated by another process)"
                );
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(slot = %key, error = %e, "cannot follow an activation; retrying at the next resync")
            }
        }
    }

    /// The compiled version: from the cache, or loaded from the store (and
    /// compiled, or read from wasmtime's on-disk cache).
    async fn compiled(&self, version: &str) -> Result<W::Pre, DeployError> {
        let compiled = self
            .registry
            .cache
            .get_or_load(TypeId::of::<W>(), version, async {
                let wasm = self.registry.store.wasm(version).await?.ok_or_else(|| DeployError::UnknownVersion {
                    component: self.kind.clone(),
                    version: version.to_string(),
                })?;
                self.compile(wasm, version).await
            })
            .await?;
        compiled.pre::<W::Pre>().ok_or_else(|| DeployError::Incompatible("compiled for another world".into()))
    }

    /// Compiles and type-checks against the world.
    async fn compile(&self, wasm: Vec<u8>, version: &str) -> Result<Compiled, DeployError> {
        let engine = self.registry.runtime.engine().clone();
        let started = Instant::now();
        let component = tokio::task::spawn_blocking(move || Component::from_binary(&engine, &wasm))
            .await
            .map_err(|e| DeployError::InvalidComponent(format!("compilation panicked: {e}")))?
            .map_err(|e| DeployError::InvalidComponent(format!("{e:#}")))?;
        W::check(&component)?;
        let range = component.image_range();
        let bytes = (range.end as usize).saturating_sub(range.start as usize) as u64;
        tracing::debug!(kind = %self.kind, version, bytes, elapsed = ?started.elapsed(), "component loaded");
        let instance_pre =
            self.linker.instantiate_pre(&component).map_err(|e| DeployError::Incompatible(format!("{e:#}")))?;
        let pre = W::pre(instance_pre).map_err(|e| DeployError::Incompatible(format!("{e:#}")))?;
        Ok(Compiled::new(pre, bytes))
    }

    /// Calls the active version of `owner`'s slot: a fresh instance in a
    /// fresh store, under the kind's limits (and `timeout`, if shorter).
    pub async fn call<T, F>(
        &self,
        owner: &str,
        info: CallInfo,
        timeout: Option<Duration>,
        f: F,
    ) -> Result<Served<T>, CallError>
    where
        F: for<'a> FnOnce(&'a W::Exports, &'a mut WorldStore<W>) -> BoxFuture<'a, wasmtime::Result<T>>,
    {
        let slot = self.slot(owner).await.map_err(|e| CallError::Unavailable(format!("component store: {e:?}")))?;
        // Waiting for a permit counts against the call's deadline.
        let deadline = timeout.map_or(self.limits.call.timeout, |t| t.min(self.limits.call.timeout));
        let waited = Instant::now();
        let _permit = match tokio::time::timeout(deadline, slot.calls.acquire()).await {
            Ok(Ok(permit)) => permit,
            _ => {
                return Err(CallError::Overloaded(format!(
                    "slot {} has {} calls in flight",
                    self.key(owner),
                    self.limits.max_concurrent_calls
                )));
            }
        };
        let timeout = Some(deadline.saturating_sub(waited.elapsed()));
        let version =
            slot.active.load_full().ok_or_else(|| CallError::NoActiveVersion { component: self.kind.clone() })?;
        let pre = self.compiled(&version.version).await.map_err(|e| CallError::Unavailable(e.to_string()))?;
        let value = self.call_pre(&pre, owner, &version.version, info, timeout, f).await?;
        Ok(Served { value, version: version.version.clone() })
    }

    /// Calls a stored version of `owner`'s slot, active or not (a dry run),
    /// under the slot's quota and the kind's limits.
    pub async fn call_version<T, F>(
        &self,
        owner: &str,
        version: &str,
        info: CallInfo,
        timeout: Option<Duration>,
        f: F,
    ) -> Result<Served<T>, DeployError>
    where
        F: for<'a> FnOnce(&'a W::Exports, &'a mut WorldStore<W>) -> BoxFuture<'a, wasmtime::Result<T>>,
    {
        let key = self.key(owner);
        let info_version =
            self.registry.store.resolve(&key, version).await?.ok_or_else(|| DeployError::UnknownVersion {
                component: key.to_string(),
                version: version.to_string(),
            })?;
        let slot = self.slot(owner).await?;
        let deadline = timeout.map_or(self.limits.call.timeout, |t| t.min(self.limits.call.timeout));
        let _permit = match tokio::time::timeout(deadline, slot.calls.acquire()).await {
            Ok(Ok(permit)) => permit,
            _ => return Err(DeployError::Failed(CallError::Overloaded(format!("slot {key} is busy")))),
        };
        let pre = self.compiled(&info_version.version).await?;
        let value = self.call_pre(&pre, owner, &info_version.version, info, Some(deadline), f).await?;
        Ok(Served { value, version: info_version.version })
    }

    /// Calls a given compiled version (activation steps use it on the
    /// candidate before it goes live).
    /// The call runs in a span of its own (component, version, owner:
    /// `platform` or the merchant, request id, outcome); the host calls
    /// the guest makes (SQL, search, sibling services) are its children.
    pub async fn call_pre<T, F>(
        &self,
        pre: &W::Pre,
        owner: &str,
        version: &str,
        mut info: CallInfo,
        timeout: Option<Duration>,
        f: F,
    ) -> Result<T, CallError>
    where
        F: for<'a> FnOnce(&'a W::Exports, &'a mut WorldStore<W>) -> BoxFuture<'a, wasmtime::Result<T>>,
    {
        info.component = self.kind.clone();
        info.version = version.to_string();
        let span = tracing::info_span!(
            "component.call",
            otel.name = %format!("component {}", self.kind),
            component = %self.kind,
            version = %version,
            owner = %owner,
            request_id = %info.request_id,
            outcome = tracing::field::Empty,
        );
        self.registry
            .runtime
            .invoke::<W, T, F>(pre, &self.shared, info, &self.limits.call, timeout, f)
            .instrument(span)
            .await
    }
}

/// One slot of a kind, as a domain service sees it: the platform's own.
pub struct ServiceSlot<W: World> {
    slots: Arc<Slots<W>>,
    owner: String,
}

/// The owner of the domain services' slots.
pub const PLATFORM: &str = "platform";

impl<W: Deployable> ServiceSlot<W> {
    pub fn new(slots: Arc<Slots<W>>) -> Self {
        Self { slots, owner: PLATFORM.to_string() }
    }

    pub fn slots(&self) -> &Arc<Slots<W>> {
        &self.slots
    }

    pub fn shared(&self) -> &W::Shared {
        self.slots.shared()
    }

    pub fn name(&self) -> &str {
        self.slots.kind()
    }

    /// The longest a call may run.
    pub fn call_timeout(&self) -> Duration {
        self.slots.call_timeout()
    }

    pub async fn bootstrap(&self, embedded: &[u8]) -> Result<VersionInfo, DeployError> {
        self.slots.bootstrap(&self.owner, embedded).await
    }

    pub async fn deploy(&self, wasm: &[u8], activate: bool) -> Result<VersionInfo, DeployError> {
        self.slots.deploy(&self.owner, wasm, activate).await
    }

    pub async fn activate(&self, version: &str) -> Result<VersionInfo, DeployError> {
        self.slots.activate(&self.owner, version).await
    }

    pub async fn versions(&self) -> Result<Vec<(VersionInfo, bool)>, DeployError> {
        self.slots.versions(&self.owner).await
    }

    pub async fn active_version(&self) -> Option<VersionInfo> {
        self.slots.active_version(&self.owner).await.ok().flatten()
    }

    /// The version this process runs and its activation sequence.
    pub async fn running(&self) -> Option<(VersionInfo, i64)> {
        self.slots.running(&self.owner).await.ok().flatten()
    }

    pub async fn call<T, F>(&self, info: CallInfo, timeout: Option<Duration>, f: F) -> Result<Served<T>, CallError>
    where
        F: for<'a> FnOnce(&'a W::Exports, &'a mut WorldStore<W>) -> BoxFuture<'a, wasmtime::Result<T>>,
    {
        self.slots.call(&self.owner, info, timeout, f).await
    }
}
