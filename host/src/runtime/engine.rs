//! The process-wide engine and its epoch clock.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::{Cache, CacheConfig, Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::CallLimits;

/// How often the epoch advances; deadlines are rounded up to this.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Instances alive at once across the process (the pool's size).
    pub max_concurrent_instances: u32,
    /// Calls one slot may have in flight (so one slot, looping or flooded,
    /// never holds the whole pool). The default pool holds every domain
    /// slot's quota at once (3 × 128), so a call that nests into a sibling
    /// (an order placement reserving stock) never finds the pool empty.
    pub max_concurrent_calls_per_slot: u32,
    /// Largest linear memory the pool can hold; per-call limits are lower.
    pub pool_max_memory_bytes: usize,
    /// Bytes of each memory slot kept resident between calls.
    pub keep_resident_bytes: usize,
    /// Where compiled components are cached between runs; None disables.
    pub cache_dir: Option<PathBuf>,
    /// Meter instructions (wasmtime fuel): every call then needs
    /// [`CallLimits::fuel`]. For merchant plugins, whose budget must not
    /// depend on the machine's speed.
    pub fuel: bool,
    /// Largest native stack guest code may use (wasmtime's default if None).
    pub max_wasm_stack_bytes: Option<usize>,
    /// Core instances one component may have in the pool (a Rust wasip2
    /// component has a few; Python and JavaScript ones a dozen or more).
    pub core_instances_per_component: u32,
    /// Default limits for domain component calls.
    pub call_limits: CallLimits,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            max_concurrent_instances: 384,
            max_concurrent_calls_per_slot: 128,
            pool_max_memory_bytes: 256 << 20,
            keep_resident_bytes: 2 << 20,
            cache_dir: None,
            fuel: false,
            max_wasm_stack_bytes: None,
            core_instances_per_component: 8,
            call_limits: CallLimits::default(),
        }
    }
}

/// The engine plus the thread that drives its epoch. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    engine: Engine,
    config: Arc<RuntimeConfig>,
    _ticker: Arc<EpochTicker>,
}

impl Runtime {
    pub fn new(config: RuntimeConfig) -> wasmtime::Result<Self> {
        let mut wasm = Config::new();
        wasm.epoch_interruption(true);
        wasm.wasm_component_model(true);
        wasm.consume_fuel(config.fuel);
        if let Some(stack) = config.max_wasm_stack_bytes {
            wasm.max_wasm_stack(stack);
        }

        let instances = config.max_concurrent_instances;
        let per_component = config.core_instances_per_component.max(1);
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(instances)
            // A Rust wasip2 component is a few core instances (main module,
            // shims) with one memory and a couple of tables.
            .total_core_instances(instances * per_component)
            .max_core_instances_per_component(per_component)
            .max_memories_per_component(per_component.min(32))
            .max_tables_per_component(per_component * 2)
            .total_memories(instances * 2)
            .total_tables(instances * 4)
            .total_stacks(instances)
            .max_memory_size(config.pool_max_memory_bytes)
            // Reset a slot by rewriting only the pages the last call dirtied
            // (found with Linux's PAGEMAP_SCAN), keeping them resident,
            // instead of madvise + page faults on every call: the largest
            // cost of a short call otherwise.
            .pagemap_scan(Enabled::Auto)
            .linear_memory_keep_resident(config.keep_resident_bytes)
            .table_keep_resident(16 << 10);
        wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));

        if let Some(dir) = &config.cache_dir {
            // wasmtime's cache takes absolute paths only; `./data` is the
            // embedded default.
            // Owner-only: compiled code is trusted by whoever loads it.
            let dir = std::path::absolute(dir)
                .and_then(|dir| {
                    use std::os::unix::fs::DirBuilderExt;
                    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir).map(|()| dir)
                })
                .map_err(|e| wasmtime::format_err!("cannot create cache dir {}: {e}", dir.display()))?;
            let mut cache = CacheConfig::new();
            cache.with_directory(dir);
            wasm.cache(Some(Cache::new(cache)?));
        }

        let engine = Engine::new(&wasm)?;
        let ticker = EpochTicker::start(engine.clone());
        Ok(Self { engine, config: Arc::new(config), _ticker: Arc::new(ticker) })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until dropped.
struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    fn start(engine: Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .expect("spawning the epoch thread");
        Self { stop }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
