//! `placeOrder` throughput and latency on PostgreSQL, 3-line orders,
//! through the whole path: HTTP + GraphQL at the gateway, gRPC to the order
//! service, the order component, its nested gRPC calls to the product
//! service (catalog, reserve, commit), the product component, PostgreSQL.
//!
//! Setup (not timed): one embedded system on a throwaway PostgreSQL cluster
//! (or `DATABASE_URL`), `ORDERS_BENCH_BUYERS` customers per scenario
//! (default 2 000), each with a 3-line cart. Then `ORDERS_BENCH_CONCURRENCY`
//! workers (default 32) place every cart, one placement at a time each,
//! and every answer is checked (an order, no errors).
//!
//! - `uncontended`: each worker's buyers order the worker's own 3 products,
//!   so no two placements in flight touch the same stock rows;
//! - `contended`: every buyer orders the same 3 products (stock for all).
//!
//! Baseline, measured in the same run at the same concurrency: `{
//! __typename }` through the same gateway (HTTP + GraphQL, no gRPC, Wasm
//! or database): the ceiling of the path.
//!
//! `cargo bench -p polyscale --bench orders` (release).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use polyscale::admin::Admin;
use polyscale::embedded::{Embedded, EmbeddedConfig};
use polyscale_host::capabilities::credentials::Argon2Params;
use polyscale_host::runtime::{CallLimits, RuntimeConfig};
use polyscale_proto::admin::v1::GrantRoleRequest;
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery staple";

struct Client {
    http: reqwest::Client,
    url: String,
}

impl Client {
    async fn graphql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let mut request = self.http.post(&self.url).json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let body: Value = request.send().await.expect("HTTP").json().await.expect("JSON");
        assert!(body.get("errors").is_none(), "{query}: {body}");
        body["data"].clone()
    }

    async fn register(&self, email: &str) -> String {
        let data = self
            .graphql(
                None,
                "mutation($input: RegisterInput!) { register(input: $input) { accessToken userErrors { code } } }",
                json!({ "input": { "email": email, "password": PASSWORD, "displayName": "Bench" } }),
            )
            .await;
        data["register"]["accessToken"].as_str().expect("registered").to_string()
    }

    async fn add(&self, token: &str, product: &str) {
        let data = self
            .graphql(
                Some(token),
                "mutation($p: ID!) { addToCart(productId: $p, quantity: 1) { userErrors { code } } }",
                json!({ "p": product }),
            )
            .await;
        assert_eq!(data["addToCart"]["userErrors"], json!([]));
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1e3
}

struct Run {
    count: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Run {
    fn rate(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64()
    }
}

/// Places every buyer's cart, `concurrency` at a time; `buyers[w]` are
/// worker `w`'s.
async fn place_all(client: &Arc<Client>, buyers: Vec<Vec<String>>) -> Run {
    let started = Instant::now();
    let workers = buyers.into_iter().map(|tokens| {
        let client = client.clone();
        tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(tokens.len());
            for (i, token) in tokens.iter().enumerate() {
                let t = Instant::now();
                let data = client
                    .graphql(
                        Some(token),
                        "mutation($key: String!) { placeOrder(input: { idempotencyKey: $key }) { order { id lines { quantity } } userErrors { code message } } }",
                        json!({ "key": format!("bench-{i}") }),
                    )
                    .await;
                latencies.push(t.elapsed());
                let order = &data["placeOrder"];
                assert_eq!(order["userErrors"], json!([]), "{order}");
                assert_eq!(order["order"]["lines"].as_array().map(Vec::len), Some(3), "{order}");
            }
            latencies
        })
    });
    let mut latencies: Vec<Duration> =
        futures::future::join_all(workers).await.into_iter().flat_map(Result::unwrap).collect();
    let elapsed = started.elapsed();
    latencies.sort();
    Run { count: latencies.len(), elapsed, latencies }
}

/// `{ __typename }` for `duration`, `concurrency` at a time.
async fn ceiling(client: &Arc<Client>, concurrency: usize, duration: Duration) -> Run {
    let started = Instant::now();
    let workers = (0..concurrency).map(|_| {
        let client = client.clone();
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            while started.elapsed() < duration {
                let t = Instant::now();
                let data = client.graphql(None, "{ __typename }", json!({})).await;
                latencies.push(t.elapsed());
                assert_eq!(data["__typename"], "Query");
            }
            latencies
        })
    });
    let mut latencies: Vec<Duration> =
        futures::future::join_all(workers).await.into_iter().flat_map(Result::unwrap).collect();
    let elapsed = started.elapsed();
    latencies.sort();
    Run { count: latencies.len(), elapsed, latencies }
}

async fn products(client: &Client, merchant: &str, n: usize, stock: i64) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let data = client
            .graphql(
                Some(merchant),
                "mutation($input: CreateProductInput!) { createProduct(input: $input) { product { id } userErrors { code } } }",
                json!({ "input": { "name": format!("Bench item {i}"), "description": "bench", "price": { "amount": 1_000 + i as i64, "currency": "USD" }, "stock": stock } }),
            )
            .await;
        ids.push(data["createProduct"]["product"]["id"].as_str().unwrap().to_string());
    }
    ids
}

/// `n` buyers with a cart each of `lines(i)`.
async fn buyers(client: &Arc<Client>, scenario: &str, n: usize, lines: impl Fn(usize) -> [String; 3]) -> Vec<String> {
    let carts: Vec<(usize, [String; 3])> = (0..n).map(|i| (i, lines(i))).collect();
    futures::stream::iter(carts)
        .map(|(i, cart)| {
            let client = client.clone();
            let scenario = scenario.to_string();
            async move {
                let token = client.register(&format!("{scenario}-{i}@bench.example")).await;
                for product in &cart {
                    client.add(&token, product).await;
                }
                token
            }
        })
        .buffered(16)
        .collect()
        .await
}

fn deal(tokens: Vec<String>, workers: usize) -> Vec<Vec<String>> {
    let mut dealt = vec![Vec::new(); workers];
    for (i, token) in tokens.into_iter().enumerate() {
        dealt[i % workers].push(token);
    }
    dealt
}

fn row(name: &str, run: &Run, ceiling: &Run) {
    let l = &run.latencies;
    println!(
        "| {name} | {} | {:.0}/s | {:.2} ms | {:.2} ms | {:.2} ms | {:.3}× |",
        run.count,
        run.rate(),
        percentile(l, 0.50),
        percentile(l, 0.99),
        percentile(l, 0.999),
        run.rate() / ceiling.rate()
    );
}

#[tokio::main]
async fn main() {
    let buyers_per_scenario: usize =
        std::env::var("ORDERS_BENCH_BUYERS").ok().and_then(|v| v.parse().ok()).unwrap_or(2_000);
    let concurrency: usize = std::env::var("ORDERS_BENCH_CONCURRENCY").ok().and_then(|v| v.parse().ok()).unwrap_or(32);
    let _cluster = match std::env::var("DATABASE_URL") {
        Ok(_) => None,
        Err(_) => {
            let cluster = polyscale_testkit::pg::PgCluster::start().expect("PostgreSQL");
            // SAFETY: single-threaded so far.
            unsafe { std::env::set_var("DATABASE_URL", &cluster.url) };
            Some(cluster)
        }
    };
    let dbs = [
        polyscale_testkit::pg::fresh_database().await,
        polyscale_testkit::pg::fresh_database().await,
        polyscale_testkit::pg::fresh_database().await,
        polyscale_testkit::pg::fresh_database().await,
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut config = EmbeddedConfig::new(dir.path());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.grpc_listen = "127.0.0.1:0".parse().unwrap();
    config.metrics_listen = None;
    config.sample_data = false;
    config.rate_limits = polyscale_gateway::RateLimits::OFF;
    config.product_database_url = Some(dbs[0].url.clone());
    config.account_database_url = Some(dbs[1].url.clone());
    config.credentials_database_url = Some(dbs[2].url.clone());
    config.order_database_url = Some(dbs[3].url.clone());
    // Buyers sign up in the setup; their password hashing is not measured.
    config.credentials = Some(Box::new(|c| c.argon2 = Argon2Params { memory_kib: 64, iterations: 1, parallelism: 1 }));
    config.service_timeout = Duration::from_secs(60);
    config.runtime = RuntimeConfig {
        call_limits: CallLimits { timeout: Duration::from_secs(30), ..CallLimits::default() },
        cache_dir: Some(dir.path().join("cache")),
        ..RuntimeConfig::default()
    };
    let system = Embedded::build(config).await.expect("system starts");
    let http = system.http_addr();
    let admin_address = system.admin_address();
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(system.run(stop.clone()));
    let client = Arc::new(Client { http: reqwest::Client::new(), url: format!("http://{http}/graphql") });

    // A merchant and the products.
    let merchant_email = "merchant@bench.example";
    client.register(merchant_email).await;
    let admin = Admin::connect(&admin_address, None).await.expect("admin plane");
    admin
        .operator()
        .grant_role(GrantRoleRequest {
            email: merchant_email.into(),
            role: "merchant".into(),
            store_name: "Bench".into(),
        })
        .await
        .expect("grant merchant");
    let merchant = client
        .graphql(
            None,
            "mutation($input: LoginInput!) { login(input: $input) { accessToken } }",
            json!({ "input": { "email": merchant_email, "password": PASSWORD } }),
        )
        .await["login"]["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let plenty = 1_000_000;
    let own = products(&client, &merchant, 3 * concurrency, plenty).await;
    let shared = products(&client, &merchant, 3, plenty).await;

    println!(
        "placeOrder, 3-line orders, PostgreSQL, {} cores, {concurrency} concurrent, {buyers_per_scenario} orders per scenario",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let warm = buyers(&client, "warm", concurrency * 2, |_| shared.clone().try_into().unwrap()).await;
    place_all(&client, deal(warm, concurrency)).await;

    let uncontended = buyers(&client, "own", buyers_per_scenario, |i| {
        let w = i % concurrency;
        [own[3 * w].clone(), own[3 * w + 1].clone(), own[3 * w + 2].clone()]
    })
    .await;
    let contended =
        buyers(&client, "shared", buyers_per_scenario, |_| [shared[0].clone(), shared[1].clone(), shared[2].clone()])
            .await;

    let floor = ceiling(&client, concurrency, Duration::from_secs(5)).await;
    let uncontended = place_all(&client, deal(uncontended, concurrency)).await;
    let contended = place_all(&client, deal(contended, concurrency)).await;

    println!("| case | requests | rate | p50 | p99 | p99.9 | vs ceiling |");
    println!("|---|---|---|---|---|---|---|");
    row("`{ __typename }` (ceiling)", &floor, &floor);
    row("`placeOrder`, uncontended", &uncontended, &floor);
    row("`placeOrder`, contended (same 3 products)", &contended, &floor);

    stop.cancel();
    let _ = task.await;
}
