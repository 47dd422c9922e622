//! Repeats one component call for a profiler: `perf record` this binary.
use polyscale_host::call::CallInfo;
use polyscale_host::components;
use polyscale_host::runtime::RuntimeConfig;
use polyscale_host::server::{HostConfig, ProductServiceConfig, SearchEngineConfig, ServiceConfig, ServiceHost};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let mut config =
        HostConfig::new(profile_runtime(), format!("sqlite://{}", dir.path().join("components.db").display()));
    config.product = Some(ProductServiceConfig {
        service: ServiceConfig {
            database_url: format!("sqlite://{}", dir.path().join("p.db").display()),
            component: components::PRODUCT.into(),
        },
        search: SearchEngineConfig::Tantivy { dir: dir.path().join("search") },
        reservation_sweep_interval: polyscale_host::server::DEFAULT_RESERVATION_SWEEP_INTERVAL,
    });
    let host = ServiceHost::build(config).await.unwrap();
    let registry = host.product().unwrap().slot();
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let start = std::time::Instant::now();
    for _ in 0..n {
        let r = registry
            .call(CallInfo::new("p", None), None, |e, s| {
                Box::pin(async move { e.polyscale_commerce_products().call_get_product(s, "not an id!").await })
            })
            .await
            .unwrap();
        assert!(r.value.is_err());
    }
    println!("{:.2} µs/call", start.elapsed().as_secs_f64() * 1e6 / n as f64);
}

/// A small instance pool when `PROFILE_INSTANCES` is set (valgrind cannot
/// reserve the default pool's address space).
fn profile_runtime() -> RuntimeConfig {
    let mut config = RuntimeConfig::default();
    if let Some(n) = std::env::var("PROFILE_INSTANCES").ok().and_then(|v| v.parse().ok()) {
        config.max_concurrent_instances = n;
    }
    config
}
