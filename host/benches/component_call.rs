//! One component call: instantiate from the `InstancePre` (pooling
//! allocator) + call an export + drop the store.
//!
//! Cases, all measured in the same run:
//! - `store_only`: baseline — create and drop a call's store, no Wasm;
//! - `instantiate_only`: instantiate the component from its `InstancePre`
//!   and drop it, loading no export;
//! - `instantiate_exports`: the same through the generated bindings, which
//!   also look up and type-check every export of the world;
//! - `call_no_io`: `get-product` with an id the component rejects before
//!   touching SQL: instantiation + the guest call + teardown;
//! - `sql_direct`: baseline — the product lookup as plain host SQL;
//! - `call_with_sql`: `get-product` of a real product through the
//!   component (the same lookup, plus the component around it).
//!
//! Criterion reports each case; a closing table gives p50/p99 from a fixed
//! number of timed calls and each call's ratio to its baseline.

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use std::sync::Arc;

use polyscale_host::call::{CallInfo, Caller};
use polyscale_host::components;
use polyscale_host::database::{Database, SqlLimits, Value};
use polyscale_host::runtime::{CallLimits, CallState, Runtime, RuntimeConfig, World, WorldStore};
use polyscale_host::server::{HostConfig, ProductServiceConfig, SearchEngineConfig, ServiceConfig, ServiceHost};
use polyscale_host::services::product::{ProductSlot, ProductWorld};
use tokio::runtime::Runtime as Tokio;
use wasmtime::component::{Component, Linker};

struct Fixture {
    registry: Arc<ProductSlot>,
    db: Database,
    runtime: Runtime,
    /// The product component prepared the way the registry prepares it.
    pre: <ProductWorld as World>::Pre,
    product_id: String,
    _host: ServiceHost,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut config =
        HostConfig::new(RuntimeConfig::default(), format!("sqlite://{}", dir.path().join("components.db").display()));
    config.product = Some(ProductServiceConfig {
        service: ServiceConfig {
            database_url: format!("sqlite://{}", dir.path().join("bench.db").display()),
            component: components::PRODUCT.into(),
        },
        search: SearchEngineConfig::Tantivy { dir: dir.path().join("search") },
        reservation_sweep_interval: polyscale_host::server::DEFAULT_RESERVATION_SWEEP_INTERVAL,
    });
    let host = ServiceHost::build(config).await.unwrap();
    let registry = host.product().unwrap().slot().clone();
    let db = registry.shared().db.clone();
    let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
    let mut linker = Linker::new(runtime.engine());
    ProductWorld::link(&mut linker).unwrap();
    let component = Component::new(runtime.engine(), components::PRODUCT).unwrap();
    let pre = ProductWorld::pre(linker.instantiate_pre(&component).unwrap()).unwrap();
    let input = polyscale_host::bindings::product::exports::polyscale::commerce::products::NewProduct {
        merchant_id: Some("bench-merchant".into()),
        name: "Bench Laptop".into(),
        description: "fast".into(),
        price: polyscale_host::bindings::types::Money { amount: 99_900, currency: "USD".into() },
        category_id: None,
        stock: 10,
    };
    let product = registry
        .call(CallInfo::new("bench", Some(Caller::operator())), None, move |e, s| {
            Box::pin(async move { e.polyscale_commerce_products().call_create_product(s, &input).await })
        })
        .await
        .unwrap()
        .value
        .unwrap();
    Fixture { registry, db, runtime, pre, product_id: product.id, _host: host, _dir: dir }
}

fn new_store(f: &Fixture) -> WorldStore<ProductWorld> {
    let info = CallInfo::new("bench", None);
    let caps = ProductWorld::caps(f.registry.shared());
    let wasi = ProductWorld::wasi(&info, &caps);
    let state = CallState::new(info, &CallLimits::default(), wasi, caps);
    let mut store = wasmtime::Store::new(f.runtime.engine(), state);
    store.set_epoch_deadline(u64::MAX / 2);
    store
}

async fn store_only(f: &Fixture) {
    drop(std::hint::black_box(new_store(f)));
}

async fn instantiate_only(f: &Fixture) {
    let mut store = new_store(f);
    let instance = f.pre.instance_pre().instantiate_async(&mut store).await.unwrap();
    std::hint::black_box(instance);
}

async fn instantiate_exports(f: &Fixture) {
    let mut store = new_store(f);
    let exports = ProductWorld::instantiate(&f.pre, &mut store).await.unwrap();
    std::hint::black_box(&exports);
}

async fn call_no_io(f: &Fixture) {
    let result = f
        .registry
        .call(CallInfo::new("bench", None), None, |e, s| {
            Box::pin(async move { e.polyscale_commerce_products().call_get_product(s, "not an id!").await })
        })
        .await
        .unwrap();
    assert!(result.value.is_err());
}

async fn sql_direct(f: &Fixture) {
    let rows = f
        .db
        .query(
            "SELECT id, merchant_id, name, description, price_amount, price_currency, category_id, stock, created_at_ms, updated_at_ms FROM products WHERE id = $1",
            &[Value::Text(f.product_id.clone())],
            &SqlLimits::default(),
        )
        .await
        .unwrap();
    assert_eq!(rows.rows.len(), 1);
}

async fn call_with_sql(f: &Fixture) {
    let id = f.product_id.clone();
    let result = f
        .registry
        .call(CallInfo::new("bench", None), None, move |e, s| {
            Box::pin(async move { e.polyscale_commerce_products().call_get_product(s, &id).await })
        })
        .await
        .unwrap();
    assert!(result.value.is_ok());
}

fn benches(c: &mut Criterion) {
    let tokio = Tokio::new().unwrap();
    let f = tokio.block_on(fixture());
    let mut group = c.benchmark_group("component_call");
    group.bench_function("store_only", |b| b.to_async(&tokio).iter(|| store_only(&f)));
    group.bench_function("instantiate_only", |b| b.to_async(&tokio).iter(|| instantiate_only(&f)));
    group.bench_function("instantiate_exports", |b| b.to_async(&tokio).iter(|| instantiate_exports(&f)));
    group.bench_function("call_no_io", |b| b.to_async(&tokio).iter(|| call_no_io(&f)));
    group.bench_function("sql_direct", |b| b.to_async(&tokio).iter(|| sql_direct(&f)));
    group.bench_function("call_with_sql", |b| b.to_async(&tokio).iter(|| call_with_sql(&f)));
    group.finish();
}

/// p50/p99 over `n` sequential calls.
fn percentiles<F: AsyncFn()>(tokio: &Tokio, n: usize, f: F) -> (Duration, Duration) {
    let mut samples = Vec::with_capacity(n);
    tokio.block_on(async {
        for _ in 0..n / 10 {
            f().await;
        }
        for _ in 0..n {
            let start = Instant::now();
            f().await;
            samples.push(start.elapsed());
        }
    });
    samples.sort();
    (samples[n / 2], samples[n * 99 / 100])
}

fn summary() {
    let tokio = Tokio::new().unwrap();
    let f = tokio.block_on(fixture());
    let n = 20_000;
    let store = percentiles(&tokio, n, || store_only(&f));
    let instantiate = percentiles(&tokio, n, || instantiate_only(&f));
    let exports = percentiles(&tokio, n, || instantiate_exports(&f));
    let no_io = percentiles(&tokio, n, || call_no_io(&f));
    let direct = percentiles(&tokio, n, || sql_direct(&f));
    let with_sql = percentiles(&tokio, n, || call_with_sql(&f));
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!("\ncomponent call, {n} timed calls each (p50 / p99, µs)");
    println!("  store_only           {:>8.2} / {:>8.2}   baseline", us(store.0), us(store.1));
    println!(
        "  instantiate_only     {:>8.2} / {:>8.2}   {:.1}× store_only (p50)",
        us(instantiate.0),
        us(instantiate.1),
        us(instantiate.0) / us(store.0)
    );
    println!(
        "  instantiate_exports  {:>8.2} / {:>8.2}   {:.2}× instantiate_only (p50)",
        us(exports.0),
        us(exports.1),
        us(exports.0) / us(instantiate.0)
    );
    println!(
        "  call_no_io           {:>8.2} / {:>8.2}   {:.1}× store_only (p50)",
        us(no_io.0),
        us(no_io.1),
        us(no_io.0) / us(store.0)
    );
    println!("  sql_direct           {:>8.2} / {:>8.2}   baseline", us(direct.0), us(direct.1));
    println!(
        "  call_with_sql        {:>8.2} / {:>8.2}   {:.2}× sql_direct (p50)",
        us(with_sql.0),
        us(with_sql.1),
        us(with_sql.0) / us(direct.0)
    );
}

criterion_group!(component_call, benches);

fn main() {
    component_call();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
