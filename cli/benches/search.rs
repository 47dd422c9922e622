//! Search on a seeded catalog (100 000 products by default; set
//! `SEARCH_BENCH_PRODUCTS` to change it), embedded engine (Tantivy).
//!
//! Everything goes through the real product component and host:
//! 1. seed: `create-products` in batches of 500 (SQL + outbox rows);
//! 2. indexing, live: time for the outbox drainer to make every product
//!    searchable, from the end of the seed;
//! 3. indexing, rebuild: the whole index rebuilt from the component's
//!    documents (bulk load);
//! 4. queries, p50/p99 over 1 000 runs each, at the engine and through the
//!    component (`search-products`: instantiate, query, read the hits back
//!    from SQL, map facets):
//!    - baseline: two filters, no text, no facets;
//!    - text + two filters + facets (category terms, price ranges);
//!    - the same with both words misspelled (fuzzy expansion).

use std::sync::Arc;
use std::time::{Duration, Instant};

use polyscale::sample::{self, SampleOptions};
use polyscale_host::bindings::product::exports::polyscale::commerce::products as wit;
use polyscale_host::bindings::search::RangeFilter;
use polyscale_host::bindings::types::{Money, PageRequest};
use polyscale_host::call::{CallInfo, Caller};
use polyscale_host::capabilities::search::rebuild;
use polyscale_host::capabilities::search::{FacetRequest, Filter, Query, RangeBucket, Sort};
use polyscale_host::components;
use polyscale_host::runtime::RuntimeConfig;
use polyscale_host::server::{HostConfig, ProductServiceConfig, SearchEngineConfig, ServiceConfig, ServiceHost};
use polyscale_host::services::product::ProductDocuments;

fn percentiles(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    (ms(samples[samples.len() / 2]), ms(samples[samples.len() * 99 / 100]))
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("SEARCH_BENCH_PRODUCTS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let mut config =
        HostConfig::new(RuntimeConfig::default(), format!("sqlite://{}", dir.path().join("components.db").display()));
    config.product = Some(ProductServiceConfig {
        service: ServiceConfig {
            database_url: format!("sqlite://{}", dir.path().join("product.db").display()),
            component: components::PRODUCT.into(),
        },
        search: SearchEngineConfig::Tantivy { dir: dir.path().join("search") },
        reservation_sweep_interval: polyscale_host::server::DEFAULT_RESERVATION_SWEEP_INTERVAL,
    });
    let host = ServiceHost::build(config).await.unwrap();
    let registry = host.product().unwrap().slot().clone();
    let search = host.product().unwrap().search().clone();
    let admin = || CallInfo::new("bench", Some(Caller::operator()));

    // Categories, then products in batches of 500 (as an admin naming
    // the merchant).
    let mut categories = Vec::new();
    for name in sample::category_names() {
        let input = wit::NewCategory { name: name.into(), parent_id: None };
        let c = registry
            .call(admin(), None, move |e, s| {
                Box::pin(async move { e.polyscale_commerce_products().call_create_category(s, &input).await })
            })
            .await
            .unwrap()
            .value
            .unwrap();
        categories.push((name, c.id));
    }
    let options = SampleOptions { products: n, merchants: 20, seed: 42 };
    let started = Instant::now();
    for batch in (0..n).collect::<Vec<_>>().chunks(500) {
        let inputs: Vec<wit::NewProduct> = batch
            .iter()
            .map(|&i| {
                let p = sample::product(&options, i);
                wit::NewProduct {
                    merchant_id: Some(format!("merchant-{}", p.merchant)),
                    name: p.name,
                    description: p.description,
                    price: Money { amount: p.price_cents, currency: "USD".into() },
                    category_id: categories.iter().find(|(c, _)| *c == p.category).map(|(_, id)| id.clone()),
                    stock: p.stock,
                }
            })
            .collect();
        registry
            .call(admin(), None, move |e, s| {
                Box::pin(async move { e.polyscale_commerce_products().call_create_products(s, &inputs).await })
            })
            .await
            .unwrap()
            .value
            .unwrap();
    }
    let seeded = started.elapsed();
    let all = Query {
        index: "products".into(),
        text: None,
        filters: vec![],
        sort: Sort::Relevance,
        facets: vec![],
        first: 1,
        after: None,
    };
    loop {
        if search.backend.search(&all).await.map(|r| r.total).unwrap_or(0) == n as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let live = started.elapsed();
    println!("\nsearch on {n} products (Tantivy, embedded)");
    println!(
        "  seed (create-products x{})      {:>8.1} s   {:>8.0} products/s",
        n / 500,
        seeded.as_secs_f64(),
        n as f64 / seeded.as_secs_f64()
    );
    println!(
        "  searchable after (live outbox)  {:>8.1} s   {:>8.0} products/s end to end",
        live.as_secs_f64(),
        n as f64 / live.as_secs_f64()
    );

    let source = ProductDocuments(registry.clone());
    let started = Instant::now();
    let rebuilt = rebuild::rebuild(&search, &source, "products", &|_, _| {}).await.unwrap();
    let rebuild_time = started.elapsed();
    println!(
        "  rebuild (bulk indexing)         {:>8.1} s   {:>8.0} documents/s",
        rebuild_time.as_secs_f64(),
        rebuilt as f64 / rebuild_time.as_secs_f64()
    );

    let (audio, laptops) = (categories[2].1.clone(), categories[0].1.clone());
    let filters = vec![
        Filter::AnyOf(("category_id".into(), vec![audio.clone(), laptops.clone()])),
        Filter::Range(RangeFilter { field: "price".into(), min: Some(5_000), max: Some(150_000) }),
    ];
    let buckets = [2_500, 5_000, 10_000, 25_000, 50_000, 100_000];
    let mut ranges = vec![RangeBucket { key: "lo".into(), min: None, max: Some(buckets[0]) }];
    for w in buckets.windows(2) {
        ranges.push(RangeBucket { key: format!("{}", w[0]), min: Some(w[0]), max: Some(w[1]) });
    }
    ranges.push(RangeBucket { key: "hi".into(), min: Some(100_000), max: None });
    let baseline = Query {
        index: "products".into(),
        text: None,
        filters: filters.clone(),
        sort: Sort::Relevance,
        facets: vec![],
        first: 20,
        after: None,
    };
    let full = Query {
        text: Some("wireless headphones".into()),
        facets: vec![FacetRequest::Terms(("category_id".into(), 50)), FacetRequest::Ranges(("price".into(), ranges))],
        ..baseline.clone()
    };
    let runs = 1_000;
    let time_engine = async |q: &Query| {
        let mut samples = Vec::with_capacity(runs);
        for _ in 0..runs {
            let t = Instant::now();
            let r = search.backend.search(q).await.unwrap();
            samples.push(t.elapsed());
            assert!(r.total > 0);
        }
        percentiles(samples)
    };
    let misspelled = Query { text: Some("wireles hedphones".into()), ..full.clone() };
    let engine_base = time_engine(&baseline).await;
    let engine_full = time_engine(&full).await;
    let engine_typo = time_engine(&misspelled).await;

    let product_search = |text: Option<&str>| wit::ProductSearch {
        query: text.map(str::to_string),
        filter: wit::ProductFilter {
            category_ids: vec![audio.clone(), laptops.clone()],
            merchant_id: None,
            price_min: Some(5_000),
            price_max: Some(150_000),
            currency: None,
            in_stock: None,
        },
        sort: Some(wit::ProductSort::Relevance),
        page: PageRequest { first: 20, after: None },
    };
    let registry = Arc::clone(&registry);
    let time_component = async |q: wit::ProductSearch| {
        let mut samples = Vec::with_capacity(runs);
        for _ in 0..runs {
            let q = q.clone();
            let t = Instant::now();
            let page = registry
                .call(CallInfo::new("bench", None), None, move |e, s| {
                    Box::pin(async move { e.polyscale_commerce_products().call_search_products(s, &q).await })
                })
                .await
                .unwrap()
                .value
                .unwrap();
            samples.push(t.elapsed());
            assert!(page.total_count > 0);
        }
        percentiles(samples)
    };
    let component_full = time_component(product_search(Some("wireless headphones"))).await;

    println!("  query, p50 / p99 over {runs} runs each (ms):");
    println!("    engine: 2 filters (baseline)                 {:>6.2} / {:>6.2}", engine_base.0, engine_base.1);
    println!(
        "    engine: text + 2 filters + 2 facets          {:>6.2} / {:>6.2}   {:.1}x baseline (p50)",
        engine_full.0,
        engine_full.1,
        engine_full.0 / engine_base.0
    );
    println!(
        "    engine: misspelled text + filters + facets   {:>6.2} / {:>6.2}   {:.1}x baseline (p50)",
        engine_typo.0,
        engine_typo.1,
        engine_typo.0 / engine_base.0
    );
    println!(
        "    component: text + 2 filters + facets + SQL   {:>6.2} / {:>6.2}   {:.1}x engine (p50)",
        component_full.0,
        component_full.1,
        component_full.0 / engine_full.0
    );
    drop(host);
}
