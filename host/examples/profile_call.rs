//! Repeats one component call for a profiler: `perf record` this binary.
use polyscale_host::capabilities::sql::{ConnectOptions, Database, SqlLimits};
use polyscale_host::components;
use polyscale_host::runtime::{CallInfo, Runtime, RuntimeConfig};
use polyscale_host::services::product::ProductRegistry;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
    let url = format!("sqlite://{}", dir.path().join("p.db").display());
    let db = Database::connect(&url, &ConnectOptions::default()).await.unwrap();
    let registry =
        ProductRegistry::new("product", runtime, db, SqlLimits::default(), Default::default(), 64 << 20).await.unwrap();
    registry.bootstrap(components::PRODUCT).await.unwrap();
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
