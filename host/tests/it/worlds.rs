//! Worlds and slots from outside the host library: a toy capability and a
//! toy world defined here, with no change to `runtime/` or `registry/`,
//! run a component; thousands of slots share a bounded compiled-code
//! cache.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use polyscale_host::call::CallInfo;
use polyscale_host::database::{ConnectOptions, Database};
use polyscale_host::registry::{
    ComponentStore, DeployError, Deployable, KindLimits, Registry, SlotKey, Slots, VersionSource,
};
use polyscale_host::runtime::{BoxFuture, CallLimits, CallState, Runtime, RuntimeConfig, World, WorldStore};
use wasmtime::component::{HasSelf, InstancePre, Linker};

mod bindings {
    wasmtime::component::bindgen!({
        inline: r#"
            package toy:counter;

            interface count {
                next: func() -> u32;
            }

            world toy {
                import count;
                export run: func() -> u32;
            }
        "#,
        imports: { default: trappable },
        exports: { default: async },
    });
}

use bindings::toy::counter::count;

// --- a toy capability: its state, its view, its host implementation -----

/// Shared by every call of a kind.
#[derive(Default)]
struct Counter(AtomicU32);

/// Per call.
struct CounterCtx {
    counter: Arc<Counter>,
}

trait CounterView: Send {
    fn counter(&mut self) -> &mut CounterCtx;
}

impl count::Host for CounterCtx {
    fn next(&mut self) -> wasmtime::Result<u32> {
        Ok(self.counter.0.fetch_add(1, Ordering::SeqCst))
    }
}

fn add_counter_to_linker<T: CounterView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    count::add_to_linker::<T, HasSelf<CounterCtx>>(linker, |t| t.counter())
}

// --- a toy world that links it -----------------------------------------

struct ToyWorld;

impl CounterView for CallState<CounterCtx> {
    fn counter(&mut self) -> &mut CounterCtx {
        &mut self.caps
    }
}

impl World for ToyWorld {
    type Caps = CounterCtx;
    type Shared = Arc<Counter>;
    type Pre = bindings::ToyPre<CallState<CounterCtx>>;
    type Exports = bindings::Toy;

    fn link(linker: &mut Linker<CallState<CounterCtx>>) -> wasmtime::Result<()> {
        add_counter_to_linker(linker)
    }

    fn pre(instance_pre: InstancePre<CallState<CounterCtx>>) -> wasmtime::Result<Self::Pre> {
        bindings::ToyPre::new(instance_pre)
    }

    fn instantiate<'a>(
        pre: &'a Self::Pre,
        store: &'a mut WorldStore<Self>,
    ) -> BoxFuture<'a, wasmtime::Result<bindings::Toy>> {
        Box::pin(pre.instantiate_async(store))
    }

    fn caps(shared: &Arc<Counter>) -> CounterCtx {
        CounterCtx { counter: shared.clone() }
    }
}

impl Deployable for ToyWorld {}

/// A component of the toy world whose `run` answers `next() + add`; each
/// `add` is a different binary (another SHA-256, another version).
fn toy_component(add: u32) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(component
            (import "toy:counter/count" (instance $count (export "next" (func (result u32)))))
            (core func $next (canon lower (func $count "next")))
            (core module $m
                (import "host" "next" (func $next (result i32)))
                (func (export "run") (result i32) (i32.add (call $next) (i32.const {add}))))
            (core instance $host (export "next" (func $next)))
            (core instance $i (instantiate $m (with "host" (instance $host))))
            (func (export "run") (result u32) (canon lift (core func $i "run"))))"#
    ))
    .expect("valid component text")
}

async fn registry(dir: &tempfile::TempDir, cache_budget: u64) -> Arc<Registry> {
    let url = format!("sqlite://{}", dir.path().join("components.db").display());
    let db = Database::connect(&url, &ConnectOptions::default()).await.unwrap();
    registry_on(db, cache_budget).await
}

async fn registry_on(db: Database, cache_budget: u64) -> Arc<Registry> {
    let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
    Registry::new(runtime, ComponentStore::open(db).await.unwrap(), cache_budget)
}

fn toy_kind(registry: &Arc<Registry>) -> (Arc<Slots<ToyWorld>>, Arc<Counter>) {
    let counter = Arc::new(Counter::default());
    let limits = KindLimits {
        max_component_bytes: 1 << 20,
        ..KindLimits::new(CallLimits::default(), &RuntimeConfig::default())
    };
    (registry.kind::<ToyWorld>("toy", counter.clone(), limits).unwrap(), counter)
}

async fn run(slots: &Slots<ToyWorld>, owner: &str) -> u32 {
    slots
        .call(owner, CallInfo::new("test", None), None, |e, s| Box::pin(e.call_run(s)))
        .await
        .unwrap_or_else(|e| panic!("calling {owner}: {e}"))
        .value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_world_defined_outside_the_host_runs_its_component() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry(&dir, 64 << 20).await;
    let (toys, counter) = toy_kind(&registry);

    let v1 = toys.deploy("merchant-1", &toy_component(100), true).await.unwrap();
    assert_eq!(run(&toys, "merchant-1").await, 100);
    assert_eq!(run(&toys, "merchant-1").await, 101, "the capability's shared state is the kind's");
    assert_eq!(counter.0.load(Ordering::SeqCst), 2);

    // Another owner is another slot; the first keeps its version.
    toys.deploy("merchant-2", &toy_component(1000), true).await.unwrap();
    assert_eq!(run(&toys, "merchant-2").await, 1002);
    assert_eq!(toys.active_version("merchant-1").await.unwrap().unwrap().version, v1.version);
    assert!(toys.call("nobody", CallInfo::new("test", None), None, |e, s| Box::pin(e.call_run(s))).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_importing_what_its_world_lacks_is_refused_at_deploy() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry(&dir, 64 << 20).await;
    let (toys, _) = toy_kind(&registry);
    // The product component imports sql, search, logging... which the toy
    // world does not link.
    let refused = toys.deploy("merchant-1", polyscale_host::components::PRODUCT, true).await.unwrap_err();
    assert!(matches!(refused, DeployError::Incompatible(_)), "{refused:?}");
    assert!(toys.versions("merchant-1").await.unwrap().is_empty(), "nothing was stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_slots_share_a_bounded_compiled_cache() {
    const SLOTS: u32 = 2000;
    // What one compiled toy version weighs.
    let probe_dir = tempfile::tempdir().unwrap();
    let probe = registry(&probe_dir, 64 << 20).await;
    let (probe_toys, _) = toy_kind(&probe);
    probe_toys.deploy("probe", &toy_component(0), true).await.unwrap();
    let one = probe.cache().weight();
    assert!(one > 0);

    // Room for about three of them.
    let budget = one * 3 + one / 2;
    let dir = tempfile::tempdir().unwrap();
    let registry = registry(&dir, budget).await;
    let (toys, counter) = toy_kind(&registry);
    for i in 0..SLOTS {
        let owner = format!("merchant-{i}");
        toys.deploy(&owner, &toy_component(i * 10_000), true).await.unwrap();
        let before = counter.0.load(Ordering::SeqCst);
        assert_eq!(run(&toys, &owner).await, before + i * 10_000);
        assert!(registry.cache().weight() <= budget, "cache at {} bytes, budget {budget}", registry.cache().weight());
    }
    assert_eq!(toys.len(), SLOTS as usize);
    assert!(registry.cache().len() <= 4, "{} versions held", registry.cache().len());

    // The first slots' versions were evicted long ago; they reload from the
    // store and answer as themselves.
    for i in [0, 1, 2, SLOTS / 2] {
        let owner = format!("merchant-{i}");
        let before = counter.0.load(Ordering::SeqCst);
        assert_eq!(run(&toys, &owner).await, before + i * 10_000, "{owner}");
    }
    assert!(registry.cache().weight() <= budget);
    println!("{SLOTS} slots, one compiled version = {one} bytes, budget {budget}, held {}", registry.cache().weight());
}

/// The component store and activation on each engine: versions by full
/// SHA-256, one binary stored once for many slots, a sequence number per
/// activation, rollback by a unique prefix, and a restart (a new registry
/// on the same database) coming back on the active version.
async fn store_and_activation(db: Database) {
    let registry = registry_on(db.clone(), 64 << 20).await;
    let (toys, _) = toy_kind(&registry);
    let (one, two) = (toy_component(1), toy_component(2));
    let v1 = toys.deploy("m", &one, true).await.unwrap();
    assert_eq!(v1.version.len(), 64, "a version is the full SHA-256");
    assert_eq!(v1.source, VersionSource::Deployed);
    let v2 = toys.deploy("m", &two, true).await.unwrap();
    toys.deploy("other", &two, true).await.unwrap();
    let store = registry.store();
    let key = SlotKey::new("toy", "m");
    assert_eq!(store.active(&key).await.unwrap().unwrap().sequence, 2);

    // Roll back by a prefix; too short or ambiguous prefixes are refused.
    toys.activate("m", &v1.version[..12]).await.unwrap();
    assert!(matches!(toys.activate("m", &v1.version[..4]).await, Err(DeployError::UnknownVersion { .. })));
    assert!(matches!(toys.activate("m", "ffffffffffff").await, Err(DeployError::UnknownVersion { .. })));
    let active = store.active(&key).await.unwrap().unwrap();
    assert_eq!((active.version.as_str(), active.sequence), (v1.version.as_str(), 3));
    assert_eq!(run(&toys, "m").await % 10, 1, "version 1 answers");
    let listed = toys.versions("m").await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().any(|(v, active)| v.version == v1.version && *active));
    assert!(listed.iter().any(|(v, active)| v.version == v2.version && !*active));
    assert_eq!(store.wasm(&v2.version).await.unwrap().unwrap(), two, "one binary, stored once, for two slots");

    // A new process on the same store comes back on the active version.
    let restarted = registry_on(db, 64 << 20).await;
    let (toys, _) = toy_kind(&restarted);
    assert_eq!(toys.active_version("m").await.unwrap().unwrap().version, v1.version);
    assert_eq!(toys.active_version("other").await.unwrap().unwrap().version, v2.version);
    assert!(toys.active_version("nobody").await.unwrap().is_none());
}

crate::on_both!(component_store, store_and_activation);
