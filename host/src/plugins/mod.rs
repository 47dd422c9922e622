//! Merchant plugins: the pricing and validation components merchants
//! upload for their own products (`polyscale:plugin@1.0.0`, see
//! docs/plugins.md), and the host that runs them.
//!
//! - [`worlds`]: the two worlds, linked with `log` and a deterministic
//!   WASI stub only; uploads importing anything else are refused;
//! - [`store`]: each plugin's record (kind, order, failure mode,
//!   settings, uploads, kept failed inputs) in the component store's
//!   database;
//! - [`runner`]: one call under the plugin limits, the checks on its
//!   output, and the `extensions` capability the order component calls;
//! - [`stats`]: calls, failures by kind, duration and fuel quantiles.
//!
//! Plugins run on an engine of their own, with fuel metering, its own
//! instance pool and compiled-code cache, so no plugin can take an
//! instance, a CPU budget or cache room from the domain services. Versions
//! live in the same registry as domain components (slots of kind
//! `pricing`/`validation`, owner `<merchant>/<name>`): uploads are
//! validated (size, a valid component, the expected world at this
//! version, nothing else imported) before they are stored, each version is
//! its SHA-256, and activation is an atomic swap, so calls in flight
//! finish on the version they started with.

pub mod runner;
pub mod stats;
pub mod store;
pub mod worlds;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;

use self::stats::{PluginStats, StatsSnapshot};
pub use self::store::{Changes, FailedCall, FailureMode, PluginKind, PluginRecord, PluginStore, Upload};
use self::worlds::{PluginShared, PricingWorld, ValidationWorld};
use crate::bindings::plugin::types::Cart;
use crate::clock::now_ms;
use crate::database::SqlError;
use crate::database::changes::{Change, ChangeFeed};
use crate::database::migrations::MigrationError;
use crate::registry::{ComponentStore, DeployError, KindLimits, Registry, Slots, VersionInfo};
use crate::runtime::{CallLimits, Runtime, RuntimeConfig};

/// Limits of one plugin call. The defaults follow Shopify Functions'
/// (11 M instructions, 512 kB stack, 128 kB input, 20 kB output, 1 kB
/// logs), but for memory: 32 MiB, not 10 MB, so that Python plugins (whose
/// interpreter image needs ~12.3 MB before any work) can run.
#[derive(Debug, Clone)]
pub struct PluginLimits {
    /// Instructions (wasmtime fuel) for a cart of up to
    /// `lines_in_base_fuel` lines; larger carts get proportionally more.
    pub fuel: u64,
    pub lines_in_base_fuel: usize,
    /// Largest linear memory.
    pub max_memory_bytes: usize,
    /// Largest native stack of guest code (deep recursion traps).
    pub max_stack_bytes: usize,
    /// Wall time per call.
    pub timeout: Duration,
    pub max_input_bytes: usize,
    pub max_output_bytes: usize,
    /// Log kept per call.
    pub max_log_bytes: usize,
}

impl Default for PluginLimits {
    fn default() -> Self {
        Self {
            fuel: 11_000_000,
            lines_in_base_fuel: 200,
            // Shopify's is 10 MB; a Python plugin's interpreter image alone
            // is ~12.3 MB of linear memory (componentize-py 0.25).
            max_memory_bytes: 32 << 20,
            max_stack_bytes: 512 << 10,
            timeout: Duration::from_millis(100),
            max_input_bytes: 128 << 10,
            max_output_bytes: 20 << 10,
            max_log_bytes: 1 << 10,
        }
    }
}

#[derive(Debug, Clone)]
pub struct PluginConfig {
    pub limits: PluginLimits,
    /// Largest upload (Python and JavaScript components carry their
    /// interpreter: ~18 and ~12 MB).
    pub max_upload_bytes: usize,
    /// Plugin instances alive at once (the plugins' own pool).
    pub max_concurrent_instances: u32,
    /// Calls one plugin may have in flight.
    pub max_concurrent_calls_per_plugin: u32,
    /// Memory for compiled plugins; the least recently used are evicted.
    pub compiled_cache_bytes: u64,
    /// Where compiled plugins are cached on disk (wasmtime's cache).
    pub cache_dir: Option<PathBuf>,
    /// How long a merchant's plugin list is cached by this process (a
    /// change made through another replica shows after at most this).
    pub directory_ttl: Duration,
    /// Failed calls' inputs kept per plugin, and for how long.
    pub keep_failed_inputs: usize,
    pub keep_failed_inputs_for: Duration,
}

impl Default for PluginConfig {
    fn default() -> Self {
        Self {
            limits: PluginLimits::default(),
            max_upload_bytes: 32 << 20,
            max_concurrent_instances: 128,
            max_concurrent_calls_per_plugin: 16,
            compiled_cache_bytes: 256 << 20,
            cache_dir: None,
            directory_ttl: Duration::from_secs(2),
            keep_failed_inputs: 20,
            keep_failed_inputs_for: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// Why a plugin request was refused.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("no plugin `{0}`")]
    NotFound(String),
    #[error("{message}")]
    Invalid { field: &'static str, code: &'static str, message: String },
    #[error("plugin `{name}` is a {actual} plugin")]
    WrongKind { name: String, actual: &'static str },
    #[error("plugin `{0}` has no version to roll back to")]
    NoPreviousVersion(String),
    #[error(transparent)]
    Deploy(#[from] DeployError),
    #[error("storage: {0:?}")]
    Storage(SqlError),
}

impl From<SqlError> for PluginError {
    fn from(e: SqlError) -> Self {
        PluginError::Storage(e)
    }
}

/// A plugin as its merchant sees it.
#[derive(Debug, Clone)]
pub struct PluginView {
    pub record: PluginRecord,
    pub active_version: Option<String>,
    /// Newest first: the version, who uploaded it, whether it is active.
    pub versions: Vec<(VersionInfo, Option<Upload>, bool)>,
    pub stats: StatsSnapshot,
}

/// A cached list of a merchant's enabled plugins.
struct Directory {
    read_at: Instant,
    plugins: Arc<Vec<PluginRecord>>,
}

pub struct PluginHost {
    pricing: Arc<Slots<PricingWorld>>,
    validation: Arc<Slots<ValidationWorld>>,
    store: PluginStore,
    stats: PluginStats,
    config: PluginConfig,
    directory: DashMap<String, Directory>,
    changes: ChangeFeed,
}

/// Plugin names: lower-case letters, digits and dashes, 1 to 63.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Most settings per plugin, and their sizes.
const MAX_SETTINGS: usize = 32;
const MAX_SETTING_NAME: usize = 64;
const MAX_SETTING_VALUE: usize = 1024;

impl PluginHost {
    /// Starts the plugin engine and its two kinds of slots over the
    /// component store.
    pub async fn start(config: PluginConfig, components: ComponentStore) -> Result<Arc<Self>, PluginStartError> {
        let limits = &config.limits;
        let call = CallLimits {
            timeout: limits.timeout,
            max_memory_bytes: limits.max_memory_bytes,
            max_table_elements: 100_000,
            fuel: Some(limits.fuel),
        };
        let runtime = Runtime::new(RuntimeConfig {
            max_concurrent_instances: config.max_concurrent_instances,
            max_concurrent_calls_per_slot: config.max_concurrent_calls_per_plugin,
            // Room for the largest memory a call may have (64 KiB pages).
            pool_max_memory_bytes: limits.max_memory_bytes.next_multiple_of(64 << 10),
            keep_resident_bytes: 1 << 20,
            cache_dir: config.cache_dir.clone(),
            fuel: true,
            max_wasm_stack_bytes: Some(limits.max_stack_bytes),
            // A Python plugin (componentize-py) is 38 core instances.
            core_instances_per_component: 64,
            call_limits: call,
        })
        .map_err(|e| PluginStartError::Engine(format!("{e:#}")))?;
        let db = components.database().clone();
        let changes = components.changes().clone();
        let registry = Registry::new(runtime, components, config.compiled_cache_bytes);
        let kind_limits = KindLimits {
            call,
            max_component_bytes: config.max_upload_bytes,
            max_concurrent_calls: config.max_concurrent_calls_per_plugin.max(1) as usize,
        };
        let shared = || PluginShared { max_log_bytes: limits.max_log_bytes };
        let pricing = registry.kind::<PricingWorld>(PluginKind::Pricing.as_str(), shared(), kind_limits)?;
        let validation = registry.kind::<ValidationWorld>(PluginKind::Validation.as_str(), shared(), kind_limits)?;
        let store = PluginStore::open(db).await?;
        let host = Arc::new(Self {
            pricing,
            validation,
            store,
            stats: PluginStats::default(),
            config,
            directory: DashMap::new(),
            changes,
        });
        Self::follow_changes(&host);
        Ok(host)
    }

    pub fn config(&self) -> &PluginConfig {
        &self.config
    }

    /// The merchant's enabled plugins, by kind and position (cached for
    /// [`PluginConfig::directory_ttl`]).
    async fn directory(&self, merchant_id: &str) -> Result<Arc<Vec<PluginRecord>>, SqlError> {
        if let Some(entry) = self.directory.get(merchant_id)
            && entry.read_at.elapsed() < self.config.directory_ttl
        {
            return Ok(entry.plugins.clone());
        }
        let read_at = Instant::now();
        let plugins: Vec<PluginRecord> =
            self.store.list(merchant_id).await?.into_iter().filter(|p| p.enabled).collect();
        let plugins = Arc::new(plugins);
        self.directory.insert(merchant_id.to_string(), Directory { read_at, plugins: plugins.clone() });
        Ok(plugins)
    }

    /// After a change to a merchant's plugins: this process reads the
    /// directory again, and so do the others sharing the store (told
    /// through its change feed, or at their next resync).
    async fn directory_changed(&self, merchant_id: &str) {
        self.directory.remove(merchant_id);
        let change = Change::Plugins { merchant_id: merchant_id.to_string() };
        if let Err(e) = self.changes.publish(change).await {
            tracing::warn!(merchant = merchant_id, error = ?e, "plugin change not announced; replicas see it at their next resync");
        }
    }

    /// Drops cached directories when another process changes them.
    fn follow_changes(this: &Arc<Self>) {
        let mut changes = this.changes.subscribe();
        let weak = Arc::downgrade(this);
        tokio::spawn(async move {
            loop {
                let change = changes.recv().await;
                let Some(this) = weak.upgrade() else { return };
                match change {
                    Ok(Change::Plugins { merchant_id }) => {
                        this.directory.remove(&merchant_id);
                    }
                    Ok(Change::Resync) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        this.directory.clear();
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }

    async fn require(&self, merchant_id: &str, name: &str) -> Result<PluginRecord, PluginError> {
        self.store.get(merchant_id, name).await?.ok_or_else(|| PluginError::NotFound(name.to_string()))
    }

    async fn active_version(&self, record: &PluginRecord) -> Result<Option<String>, SqlError> {
        let owner = record.owner();
        let active = match record.kind {
            PluginKind::Pricing => self.pricing.active_version(&owner).await?,
            PluginKind::Validation => self.validation.active_version(&owner).await?,
        };
        Ok(active.map(|v| v.version))
    }

    /// The plugin with its versions and statistics.
    pub async fn view(&self, record: PluginRecord) -> Result<PluginView, PluginError> {
        let owner = record.owner();
        let versions = match record.kind {
            PluginKind::Pricing => self.pricing.versions(&owner).await?,
            PluginKind::Validation => self.validation.versions(&owner).await?,
        };
        let uploads: BTreeMap<String, Upload> = self
            .store
            .uploads(&record.merchant_id, &record.name)
            .await?
            .into_iter()
            .map(|u| (u.sha256.clone(), u))
            .collect();
        let active_version = versions.iter().find(|(_, active)| *active).map(|(v, _)| v.version.clone());
        let versions =
            versions.into_iter().map(|(v, active)| (v.clone(), uploads.get(&v.version).cloned(), active)).collect();
        let stats = self.stats.snapshot(&record.merchant_id, &record.name);
        Ok(PluginView { record, active_version, versions, stats })
    }

    pub async fn get(&self, merchant_id: &str, name: &str) -> Result<PluginView, PluginError> {
        let record = self.require(merchant_id, name).await?;
        self.view(record).await
    }

    pub async fn list(&self, merchant_id: &str) -> Result<Vec<PluginView>, PluginError> {
        let mut views = Vec::new();
        for record in self.store.list(merchant_id).await? {
            views.push(self.view(record).await?);
        }
        Ok(views)
    }

    /// Validates and stores a version of the merchant's plugin `name`
    /// (creating the plugin), and activates it if asked.
    pub async fn upload(
        &self,
        merchant_id: &str,
        name: &str,
        kind: PluginKind,
        wasm: &[u8],
        uploaded_by: &str,
        activate: bool,
    ) -> Result<PluginView, PluginError> {
        if !valid_name(name) {
            return Err(PluginError::Invalid {
                field: "name",
                code: "INVALID_NAME",
                message: "a plugin name is 1 to 63 lower-case letters, digits and dashes".into(),
            });
        }
        if let Some(existing) = self.store.get(merchant_id, name).await?
            && existing.kind != kind
        {
            return Err(PluginError::WrongKind { name: name.to_string(), actual: existing.kind.as_str() });
        }
        let owner = store::slot_owner(merchant_id, name);
        let version = match kind {
            PluginKind::Pricing => self.pricing.deploy(&owner, wasm, false).await?,
            PluginKind::Validation => self.validation.deploy(&owner, wasm, false).await?,
        };
        self.store.record_upload(merchant_id, name, kind, &version.version, uploaded_by).await?;
        tracing::info!(merchant = merchant_id, plugin = name, kind = kind.as_str(), version = %version.version,
            bytes = wasm.len(), uploaded_by, "plugin version uploaded");
        if activate {
            return self.activate(merchant_id, name, &version.version).await;
        }
        self.get(merchant_id, name).await
    }

    /// Makes `version` live (and the plugin enabled); the version it
    /// replaces becomes the one to roll back to.
    pub async fn activate(&self, merchant_id: &str, name: &str, version: &str) -> Result<PluginView, PluginError> {
        let record = self.require(merchant_id, name).await?;
        let previous = self.active_version(&record).await?;
        let owner = record.owner();
        let active = match record.kind {
            PluginKind::Pricing => self.pricing.activate(&owner, version).await?,
            PluginKind::Validation => self.validation.activate(&owner, version).await?,
        };
        let previous = previous.filter(|p| *p != active.version);
        let changes =
            Changes { enabled: Some(true), previous_version: previous.clone().map(Some), ..Changes::default() };
        self.store.configure(merchant_id, name, changes).await?;
        self.directory_changed(merchant_id).await;
        tracing::info!(merchant = merchant_id, plugin = name, version = %active.version,
            previous = previous.as_deref().unwrap_or("none"), "plugin version live");
        self.get(merchant_id, name).await
    }

    /// Goes back to the version that was live before the current one (one
    /// step: a second rollback has nothing to go back to).
    pub async fn rollback(&self, merchant_id: &str, name: &str) -> Result<PluginView, PluginError> {
        let record = self.require(merchant_id, name).await?;
        let previous = record.previous_version.clone().ok_or_else(|| PluginError::NoPreviousVersion(name.into()))?;
        self.activate(merchant_id, name, &previous).await?;
        // One step back; going forward again is an activation.
        self.store.configure(merchant_id, name, Changes { previous_version: Some(None), ..Changes::default() }).await?;
        self.get(merchant_id, name).await
    }

    /// Stops running the plugin; its versions stay.
    pub async fn disable(&self, merchant_id: &str, name: &str) -> Result<PluginView, PluginError> {
        self.require(merchant_id, name).await?;
        self.store.configure(merchant_id, name, Changes { enabled: Some(false), ..Changes::default() }).await?;
        self.directory_changed(merchant_id).await;
        self.get(merchant_id, name).await
    }

    pub async fn configure(
        &self,
        merchant_id: &str,
        name: &str,
        settings: Option<BTreeMap<String, String>>,
        on_failure: Option<FailureMode>,
        position: Option<i32>,
    ) -> Result<PluginView, PluginError> {
        self.require(merchant_id, name).await?;
        if let Some(settings) = &settings {
            check_settings(settings)?;
        }
        let changes = Changes { settings, on_failure, position, ..Changes::default() };
        self.store.configure(merchant_id, name, changes).await?;
        self.directory_changed(merchant_id).await;
        self.get(merchant_id, name).await
    }

    /// Runs a version (the live one by default) on a sample cart, with the
    /// plugin's settings unless others are given. Activates nothing and
    /// records no statistics.
    pub async fn preview(
        &self,
        merchant_id: &str,
        name: &str,
        expected: Option<PluginKind>,
        version: Option<&str>,
        mut cart: Cart,
        call: &crate::call::CallInfo,
    ) -> Result<Preview, PluginError> {
        let record = self.require(merchant_id, name).await?;
        if let Some(expected) = expected
            && expected != record.kind
        {
            return Err(PluginError::WrongKind { name: name.to_string(), actual: record.kind.as_str() });
        }
        let version = match version {
            Some(v) => Some(v.to_string()),
            None => self.active_version(&record).await?,
        }
        .ok_or_else(|| PluginError::Invalid {
            field: "version",
            code: "NO_ACTIVE_VERSION",
            message: format!("plugin `{name}` has no live version; name one to preview"),
        })?;
        cart.merchant_id = merchant_id.to_string();
        Ok(match record.kind {
            PluginKind::Pricing => Preview::Pricing(self.price(&record, Some(&version), &cart, call).await),
            PluginKind::Validation => Preview::Validation(self.validate(&record, Some(&version), &cart, call).await),
        })
    }

    /// Keeps a failed call's input for its merchant (in the background).
    fn keep_failed_input(&self, plugin: &PluginRecord, cart: &Cart, version: &str, failure: &runner::Failure) {
        let Ok(input) = serde_json::to_string(cart) else { return };
        let failed = FailedCall {
            id: uuid::Uuid::now_v7().to_string(),
            merchant_id: plugin.merchant_id.clone(),
            name: plugin.name.clone(),
            version: version.to_string(),
            kind: failure.kind.as_str().to_string(),
            message: failure.message.clone(),
            input,
            at_ms: now_ms(),
        };
        let (store, keep, age) =
            (self.store.clone(), self.config.keep_failed_inputs, self.config.keep_failed_inputs_for.as_millis() as i64);
        tokio::spawn(async move {
            if let Err(e) = store.record_failure(&failed, keep, age).await {
                tracing::warn!(error = ?e, "keeping a failed plugin call's input failed");
            }
        });
    }

    /// A failed call of the merchant's plugins, kept for replay.
    pub async fn failed_call(&self, merchant_id: &str, id: &str) -> Result<FailedCall, PluginError> {
        let age = self.config.keep_failed_inputs_for.as_millis() as i64;
        self.store.failure(merchant_id, id, age).await?.ok_or_else(|| PluginError::NotFound(id.to_string()))
    }
}

/// What a dry run answered.
#[derive(Debug)]
pub enum Preview {
    Pricing(runner::RunReport<runner::Priced>),
    Validation(runner::RunReport<Vec<crate::bindings::plugin::types::Violation>>),
}

fn check_settings(settings: &BTreeMap<String, String>) -> Result<(), PluginError> {
    let invalid = |message: String| PluginError::Invalid { field: "settings", code: "INVALID_SETTINGS", message };
    if settings.len() > MAX_SETTINGS {
        return Err(invalid(format!("at most {MAX_SETTINGS} settings")));
    }
    for (name, value) in settings {
        if name.is_empty() || name.len() > MAX_SETTING_NAME || name.chars().any(char::is_control) {
            return Err(invalid(format!("setting names are 1 to {MAX_SETTING_NAME} printable characters")));
        }
        if value.len() > MAX_SETTING_VALUE {
            return Err(invalid(format!("setting `{name}` is over {MAX_SETTING_VALUE} bytes")));
        }
    }
    Ok(())
}

/// Why the plugin host could not start.
#[derive(Debug, thiserror::Error)]
pub enum PluginStartError {
    #[error("the plugin engine: {0}")]
    Engine(String),
    #[error(transparent)]
    Deploy(#[from] DeployError),
    #[error(transparent)]
    Migration(#[from] MigrationError),
}
