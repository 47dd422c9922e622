//! Component versions per slot ("product", "account"...), and the atomic
//! swap between them.
//!
//! A deploy compiles and type-checks the new binary off the request path,
//! stores it, applies its migrations, and only then swaps it in with one
//! atomic pointer store ([`ArcSwapOption`]). A call loads the pointer once at
//! its start and keeps that `Arc` to the end, so calls in flight finish on
//! the version they started with while new calls see the new one. Every
//! version stays stored: rollback is activating an older one.
//!
//! Versions and the active pointer live in the slot's own database
//! (`_polyscale_*` tables), so replicas sharing a database agree on them and
//! a restart comes back on the version that was active.

mod migrations;
mod versions;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use sha2::{Digest, Sha256};
use wasmtime::Store;
use wasmtime::component::{Component, InstancePre, Linker};

pub use migrations::{Migration, MigrationError, apply as apply_migrations, ensure_table as ensure_migrations_table};
pub use versions::{VersionInfo, VersionSource};

use crate::capabilities::sql::{Database, SqlError, SqlLimits, SqlState};
use crate::runtime::{CallError, CallInfo, Capabilities, EPOCH_TICK, Runtime, StoreState};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A world whose components the registry can run: how to link it, type-check
/// a component against it, instantiate it, and read its migrations.
pub trait DomainWorld: Send + Sync + 'static {
    type Pre: Clone + Send + Sync + 'static;
    type Exports: Send + Sync + 'static;

    fn link(linker: &mut Linker<StoreState>) -> wasmtime::Result<()>;
    /// Checks the component's exports against the world.
    fn pre(instance_pre: InstancePre<StoreState>) -> wasmtime::Result<Self::Pre>;
    fn instantiate<'a>(
        pre: &'a Self::Pre,
        store: &'a mut Store<StoreState>,
    ) -> BoxFuture<'a, wasmtime::Result<Self::Exports>>;
    fn migrations<'a>(
        exports: &'a Self::Exports,
        store: &'a mut Store<StoreState>,
    ) -> BoxFuture<'a, wasmtime::Result<Vec<Migration>>>;
}

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
    #[error("the component failed while listing its migrations: {0}")]
    Failed(#[from] CallError),
    #[error("storage: {0:?}")]
    Storage(SqlError),
}

impl From<SqlError> for DeployError {
    fn from(e: SqlError) -> Self {
        DeployError::Storage(e)
    }
}

/// One compiled, type-checked version.
pub struct LoadedVersion<W: DomainWorld> {
    pub info: VersionInfo,
    pre: W::Pre,
}

/// The answer of a call, with the version that gave it.
#[derive(Debug)]
pub struct Served<T> {
    pub value: T,
    pub version: String,
}

pub struct ComponentRegistry<W: DomainWorld> {
    slot: String,
    runtime: Runtime,
    linker: Linker<StoreState>,
    db: Database,
    sql_limits: SqlLimits,
    capabilities: Capabilities,
    max_component_bytes: usize,
    active: ArcSwapOption<LoadedVersion<W>>,
    /// Compiled versions, kept so a rollback needs no recompile.
    loaded: Mutex<HashMap<String, Arc<LoadedVersion<W>>>>,
    /// Deploys and activations of this slot happen one at a time.
    changing: tokio::sync::Mutex<()>,
}

impl<W: DomainWorld> ComponentRegistry<W> {
    pub async fn new(
        slot: &str,
        runtime: Runtime,
        db: Database,
        sql_limits: SqlLimits,
        capabilities: Capabilities,
        max_component_bytes: usize,
    ) -> Result<Self, DeployError> {
        let mut linker = Linker::new(runtime.engine());
        W::link(&mut linker).map_err(|e| DeployError::Incompatible(format!("linking the host: {e:#}")))?;
        versions::ensure_tables(&db).await?;
        migrations::ensure_table(&db).await?;
        Ok(Self {
            slot: slot.to_string(),
            runtime,
            linker,
            db,
            sql_limits,
            capabilities,
            max_component_bytes,
            active: ArcSwapOption::empty(),
            loaded: Mutex::new(HashMap::new()),
            changing: tokio::sync::Mutex::new(()),
        })
    }

    pub fn slot(&self) -> &str {
        &self.slot
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Starts the slot: records the component built into the binary and
    /// activates it if it is new; otherwise comes back on the version that
    /// was active before (which may be a hot-swapped one).
    pub async fn bootstrap(&self, embedded: &[u8]) -> Result<VersionInfo, DeployError> {
        let _changing = self.changing.lock().await;
        let (embedded_info, is_new) = self.store_version(embedded, VersionSource::Embedded).await?;
        let target = match (is_new, versions::active(&self.db, &self.slot).await?) {
            (false, Some(active)) => active,
            _ => embedded_info.version.clone(),
        };
        match self.activate_locked(&target).await {
            Ok(info) => Ok(info),
            Err(e) if target != embedded_info.version => {
                tracing::error!(component = %self.slot, version = %target, error = %e,
                    "the previously active version cannot start; falling back to the built-in one");
                self.activate_locked(&embedded_info.version).await
            }
            Err(e) => Err(e),
        }
    }

    /// Validates, stores and (if `activate`) activates a new version.
    pub async fn deploy(&self, wasm: &[u8], activate: bool) -> Result<VersionInfo, DeployError> {
        if wasm.len() > self.max_component_bytes {
            return Err(DeployError::TooLarge { size: wasm.len(), limit: self.max_component_bytes });
        }
        // Compile and type-check before storing anything, so garbage never
        // reaches the version table.
        let loaded = self.load(wasm, &versions::version_id(wasm)).await?;
        let _changing = self.changing.lock().await;
        let (info, _) = self.store_version(wasm, VersionSource::Deployed).await?;
        self.loaded.lock().unwrap_or_else(|p| p.into_inner()).insert(info.version.clone(), loaded);
        if activate { self.activate_locked(&info.version).await } else { Ok(info) }
    }

    /// Makes a stored version the active one.
    pub async fn activate(&self, version: &str) -> Result<VersionInfo, DeployError> {
        let _changing = self.changing.lock().await;
        self.activate_locked(version).await
    }

    /// Stored versions, newest first, with the active one flagged.
    pub async fn versions(&self) -> Result<Vec<(VersionInfo, bool)>, DeployError> {
        let active = self.active_version();
        Ok(versions::list(&self.db, &self.slot)
            .await?
            .into_iter()
            .map(|v| {
                let is_active = active.as_ref().is_some_and(|a| a.version == v.version);
                (v, is_active)
            })
            .collect())
    }

    pub fn active_version(&self) -> Option<VersionInfo> {
        self.active.load().as_ref().map(|v| v.info.clone())
    }

    async fn store_version(&self, wasm: &[u8], source: VersionSource) -> Result<(VersionInfo, bool), DeployError> {
        let info = VersionInfo {
            component: self.slot.clone(),
            version: versions::version_id(wasm),
            sha256: hex::encode(Sha256::digest(wasm)),
            size_bytes: wasm.len() as u64,
            source,
            created_at_ms: CallInfo::new("", None).now_ms,
        };
        let inserted = versions::insert(&self.db, &info, wasm).await?;
        let stored =
            if inserted { info } else { versions::get(&self.db, &self.slot, &info.version).await?.unwrap_or(info) };
        Ok((stored, inserted))
    }

    async fn activate_locked(&self, version: &str) -> Result<VersionInfo, DeployError> {
        let cached = self.loaded.lock().unwrap_or_else(|p| p.into_inner()).get(version).cloned();
        let loaded = match cached {
            Some(l) => l,
            None => {
                let wasm = versions::wasm(&self.db, &self.slot, version).await?.ok_or_else(|| {
                    DeployError::UnknownVersion { component: self.slot.clone(), version: version.to_string() }
                })?;
                let loaded = self.load(&wasm, version).await?;
                self.loaded.lock().unwrap_or_else(|p| p.into_inner()).insert(version.to_string(), loaded.clone());
                loaded
            }
        };
        self.migrate(&loaded).await?;
        versions::set_active(&self.db, &self.slot, version).await?;
        let previous = self.active.swap(Some(loaded.clone()));
        tracing::info!(
            component = %self.slot,
            version = %version,
            previous = previous.as_ref().map(|p| p.info.version.as_str()).unwrap_or("none"),
            "component version active"
        );
        Ok(loaded.info.clone())
    }

    /// Compiles (or fetches from the compile cache) and type-checks.
    async fn load(&self, wasm: &[u8], version: &str) -> Result<Arc<LoadedVersion<W>>, DeployError> {
        let engine = self.runtime.engine().clone();
        let bytes = wasm.to_vec();
        let started = Instant::now();
        let component = tokio::task::spawn_blocking(move || Component::from_binary(&engine, &bytes))
            .await
            .map_err(|e| DeployError::InvalidComponent(format!("compilation panicked: {e}")))?
            .map_err(|e| DeployError::InvalidComponent(format!("{e:#}")))?;
        tracing::debug!(component = %self.slot, version, elapsed = ?started.elapsed(), "component compiled");
        let instance_pre =
            self.linker.instantiate_pre(&component).map_err(|e| DeployError::Incompatible(format!("{e:#}")))?;
        let pre = W::pre(instance_pre).map_err(|e| DeployError::Incompatible(format!("{e:#}")))?;
        let info = versions::get(&self.db, &self.slot, version).await?.unwrap_or_else(|| VersionInfo {
            component: self.slot.clone(),
            version: version.to_string(),
            sha256: hex::encode(Sha256::digest(wasm)),
            size_bytes: wasm.len() as u64,
            source: VersionSource::Deployed,
            created_at_ms: CallInfo::new("", None).now_ms,
        });
        Ok(Arc::new(LoadedVersion { info, pre }))
    }

    async fn migrate(&self, loaded: &LoadedVersion<W>) -> Result<(), DeployError> {
        let info = CallInfo::new("migrations", None);
        let wanted = self.run(loaded, info, None, |exports, store| W::migrations(exports, store)).await?;
        migrations::apply(&self.db, &self.slot, &wanted, &self.sql_limits).await?;
        Ok(())
    }

    /// Calls the active version: a fresh instance in a fresh store, under
    /// the call limits (and `timeout`, if shorter).
    pub async fn call<T, F>(&self, info: CallInfo, timeout: Option<Duration>, f: F) -> Result<Served<T>, CallError>
    where
        F: for<'a> FnOnce(&'a W::Exports, &'a mut Store<StoreState>) -> BoxFuture<'a, wasmtime::Result<T>>,
    {
        let version =
            self.active.load_full().ok_or_else(|| CallError::NoActiveVersion { component: self.slot.clone() })?;
        let value = self.run(&version, info, timeout, f).await?;
        Ok(Served { value, version: version.info.version.clone() })
    }

    async fn run<T, F>(
        &self,
        version: &LoadedVersion<W>,
        mut info: CallInfo,
        timeout: Option<Duration>,
        f: F,
    ) -> Result<T, CallError>
    where
        F: for<'a> FnOnce(&'a W::Exports, &'a mut Store<StoreState>) -> BoxFuture<'a, wasmtime::Result<T>>,
    {
        let limits = self.runtime.config().call_limits;
        let timeout = timeout.map_or(limits.timeout, |t| t.min(limits.timeout));
        info.component = self.slot.clone();
        info.version = version.info.version.clone();
        let sql = SqlState::new(self.db.clone(), self.sql_limits);
        let state = StoreState::for_domain_call(info, &limits, sql, &self.capabilities);
        let mut store = Store::new(self.runtime.engine(), state);
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(timeout.as_nanos().div_ceil(EPOCH_TICK.as_nanos()) as u64);
        store.epoch_deadline_trap();

        let started = Instant::now();
        let work = async {
            let exports = W::instantiate(&version.pre, &mut store).await?;
            f(&exports, &mut store).await
        };
        // The epoch deadline stops guest code; this outer bound also stops a
        // call stuck in host I/O (a slow query, say).
        let outcome = match tokio::time::timeout(timeout + EPOCH_TICK * 2, work).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(CallError::from_wasm(e, timeout)),
            Err(_) => Err(CallError::Timeout { timeout }),
        };
        let elapsed = started.elapsed();
        let label = match &outcome {
            Ok(_) => "ok",
            Err(CallError::Timeout { .. }) => "timeout",
            Err(CallError::MemoryExhausted(_)) => "memory_exhausted",
            Err(_) => "trap",
        };
        metrics::histogram!("polyscale_component_call_seconds", "component" => self.slot.clone(), "outcome" => label)
            .record(elapsed.as_secs_f64());
        if let Err(e) = &outcome {
            tracing::warn!(component = %self.slot, version = %version.info.version, elapsed = ?elapsed, error = %e, "component call failed");
        }
        outcome
    }
}
