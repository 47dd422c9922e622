//! A merchant pricing plugin call, against the same logic compiled
//! natively, in the same run.
//!
//! The plugin is `plugins/testing/hostile-plugin` in its `discount` mode
//! (10 % off every line, one message per line, one log line). Cases, for
//! carts of 10 and of 200 lines:
//! - `native`: baseline: the same pricing in Rust plus the host's output
//!   checks ([`apply_adjustments`]), no Wasm;
//! - `plugin`: [`PluginHost::price`]: a fresh instance from the pool, fuel
//!   and memory limits, the call, the output checks;
//!
//! and upload-to-live: `upload(activate)` of the plugin on a fresh engine
//! with an empty compiled-code cache (cold), then on another engine
//! sharing that disk cache (cached).
//!
//! A closing table gives p50/p99 from a fixed number of timed calls, and
//! each plugin case's ratio to its native baseline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use polyscale_host::bindings::plugin::types::{Adjustment, Cart, Change, Line, Money, Setting, Step};
use polyscale_host::call::CallInfo;
use polyscale_host::database::{ConnectOptions, Database};
use polyscale_host::plugins::runner::apply_adjustments;
use polyscale_host::plugins::{PluginConfig, PluginHost, PluginKind, PluginRecord};
use polyscale_host::registry::ComponentStore;
use tokio::runtime::Runtime as Tokio;

const PLUGIN: &[u8] = polyscale_test_components::HOSTILE_PLUGIN;

fn cart(lines: usize) -> Cart {
    Cart {
        step: Step::Cart,
        merchant_id: "bench-merchant".into(),
        lines: (0..lines)
            .map(|i| Line {
                product_id: format!("0192f5c8-7b1e-7c3a-9f00-{i:012}"),
                quantity: 1 + (i as i64 % 5),
                unit_price: Money { amount: 1_000 + i as i64 * 10, currency: "USD".into() },
                discount: 0,
            })
            .collect(),
        settings: vec![Setting { name: "percent".into(), value: "10".into() }],
    }
}

/// The plugin's logic, natively, with the host's checks.
fn native(cart: &Cart) -> Vec<Line> {
    let percent: i64 =
        cart.settings.iter().find(|s| s.name == "percent").and_then(|s| s.value.parse().ok()).unwrap_or(10);
    let adjustments: Vec<Adjustment> = cart
        .lines
        .iter()
        .enumerate()
        .map(|(i, l)| Adjustment {
            line: i as u32,
            change: Change::Discount((l.unit_price.amount * l.quantity - l.discount) * percent / 100),
            message: format!("{percent}% off"),
        })
        .collect();
    apply_adjustments(&cart.lines, &adjustments, 20 << 10).expect("valid").0
}

async fn host(dir: &std::path::Path, cache: &std::path::Path) -> Arc<PluginHost> {
    let url = format!("sqlite://{}", dir.join("components.db").display());
    let db = Database::connect(&url, &ConnectOptions::default().host_store()).await.unwrap();
    let store = ComponentStore::open(db).await.unwrap();
    PluginHost::start(PluginConfig { cache_dir: Some(cache.to_path_buf()), ..PluginConfig::default() }, store)
        .await
        .unwrap()
}

struct Fixture {
    host: Arc<PluginHost>,
    record: PluginRecord,
    cold: Duration,
    cached: Duration,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let first = host(dir.path(), &cache).await;
    let started = Instant::now();
    first.upload("bench-merchant", "ten-off", PluginKind::Pricing, PLUGIN, "bench", true).await.unwrap();
    let cold = started.elapsed();
    drop(first);
    // Another engine (another process, a replica), the disk cache warm.
    let dir2 = tempfile::tempdir().unwrap();
    let second = host(dir2.path(), &cache).await;
    let started = Instant::now();
    second.upload("bench-merchant", "ten-off", PluginKind::Pricing, PLUGIN, "bench", true).await.unwrap();
    let cached = started.elapsed();
    let record = second.get("bench-merchant", "ten-off").await.unwrap().record;
    Fixture { host: second, record, cold, cached, _dir: dir }
}

async fn price(f: &Fixture, cart: &Cart) {
    let report = f.host.price(&f.record, None, cart, &CallInfo::new("bench", None)).await;
    assert!(report.outcome.is_ok(), "{:?}", report.outcome);
}

fn bench(c: &mut Criterion) {
    let tokio = Tokio::new().unwrap();
    let f = tokio.block_on(fixture());
    for lines in [10, 200] {
        let cart = cart(lines);
        let mut group = c.benchmark_group(format!("plugin_{lines}_lines"));
        group.bench_function("native", |b| b.iter(|| native(&cart)));
        group.bench_function("plugin", |b| b.to_async(&tokio).iter(|| price(&f, &cart)));
        group.finish();
    }

    const CALLS: usize = 2_000;
    let quantiles = |mut samples: Vec<Duration>| {
        samples.sort();
        (samples[samples.len() / 2], samples[samples.len() * 99 / 100])
    };
    println!("\n{:<28} {:>12} {:>12} {:>10}", "case (2000 calls)", "p50", "p99", "p50 ratio");
    for lines in [10, 200] {
        let cart = cart(lines);
        let native_samples: Vec<Duration> = (0..CALLS)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(native(&cart));
                t.elapsed()
            })
            .collect();
        let plugin_samples: Vec<Duration> = tokio.block_on(async {
            let mut samples = Vec::with_capacity(CALLS);
            for _ in 0..CALLS {
                let t = Instant::now();
                price(&f, &cart).await;
                samples.push(t.elapsed());
            }
            samples
        });
        let (n50, n99) = quantiles(native_samples);
        let (p50, p99) = quantiles(plugin_samples);
        println!("{:<28} {:>12?} {:>12?} {:>10}", format!("native, {lines} lines"), n50, n99, "1.0×");
        println!(
            "{:<28} {:>12?} {:>12?} {:>9.1}×",
            format!("plugin, {lines} lines"),
            p50,
            p99,
            p50.as_secs_f64() / n50.as_secs_f64().max(1e-9)
        );
    }
    println!(
        "\nupload to live ({} KiB Rust plugin): cold {:?}, compiled code cached {:?}",
        PLUGIN.len() / 1024,
        f.cold,
        f.cached
    );
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
