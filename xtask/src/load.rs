//! `cargo xtask load`: the load harness. It starts the system itself (the
//! `polyscale` binary, embedded mode, the sample catalog), warms up, drives
//! a fixed number of connections for a fixed time per scenario, checks
//! every response body (an HTTP 200 carrying GraphQL `errors` is a
//! failure), and prints requests per second and p50/p99/p999 per scenario
//! with the machine's core count, each as a ratio of a ceiling measured in
//! the same run: the same gateway, HTTP stack and GraphQL engine answering
//! `{ __typename }`, with no gRPC, Wasm or database behind it. It also
//! times start-up to ready and reads the resident memory when idle, on the
//! first start (which loads the sample data) and on a restart.
//!
//! ```sh
//! cargo xtask load                     # release build, 10 s per scenario, 32 connections
//! cargo xtask load --duration 5 --connections 16
//! cargo xtask load --smoke             # CI: debug build, 2 s each (hot swaps 10 s), fails on any error
//! cargo xtask load --binary target/release/polyscale --no-postgres
//! ```
//!
//! Scenarios: the ceiling; `product(id)` on embedded SQLite; a text search
//! with facets; `product(id)` while ten product component versions are
//! deployed (hot swaps: not one request may fail); `product(id)` on
//! PostgreSQL (a throwaway cluster, skipped with `--no-postgres`). Figures
//! go in BENCHMARKS.md.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{Value, json};

struct Options {
    smoke: bool,
    duration: Duration,
    warmup: Duration,
    connections: usize,
    postgres: bool,
    binary: Option<PathBuf>,
}

impl Options {
    fn parse(args: &[String]) -> Result<Self, String> {
        let mut options = Self {
            smoke: false,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            connections: 32,
            postgres: true,
            binary: None,
        };
        let mut args = args.iter();
        let number = |value: Option<&String>, flag: &str| -> Result<u64, String> {
            value.and_then(|v| v.parse().ok()).ok_or_else(|| format!("{flag} takes a whole number"))
        };
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--smoke" => {
                    options.smoke = true;
                    options.duration = Duration::from_secs(2);
                    options.warmup = Duration::from_millis(500);
                    options.connections = 8;
                }
                "--duration" => options.duration = Duration::from_secs(number(args.next(), "--duration")?),
                "--warmup" => options.warmup = Duration::from_secs(number(args.next(), "--warmup")?),
                "--connections" => options.connections = number(args.next(), "--connections")?.max(1) as usize,
                "--no-postgres" => options.postgres = false,
                "--binary" => options.binary = Some(args.next().ok_or("--binary takes a path")?.into()),
                other => return Err(format!("cargo xtask load: unknown argument {other}")),
            }
        }
        Ok(options)
    }
}

pub fn run(args: &[String]) -> Result<(), String> {
    let options = Options::parse(args)?;
    let binary = match &options.binary {
        Some(binary) => binary.clone(),
        None => build(!options.smoke)?,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())?;
    runtime.block_on(measure(&options, &binary))
}

/// Builds the binary: release for figures, debug for the smoke run.
fn build(release: bool) -> Result<PathBuf, String> {
    let mut cmd = crate::cargo();
    cmd.args(["build", "-p", "polyscale", "--bin", "polyscale"]);
    if release {
        cmd.arg("--release");
    }
    crate::run(cmd)?;
    Ok(target_dir().join(if release { "release" } else { "debug" }).join("polyscale"))
}

/// `CARGO_TARGET_DIR`, or the workspace's `target`.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// One running `polyscale serve`.
struct System {
    child: Child,
    graphql: String,
    ready_after: Duration,
}

impl System {
    /// Starts `binary serve` on free loopback ports with `data` as its data
    /// directory and waits until it is ready and its catalog searchable.
    async fn start(binary: &Path, data: &Path, extra: &[String]) -> Result<Self, String> {
        let port = || std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port());
        let (http, grpc, metrics) = (port().unwrap(), port().unwrap(), port().unwrap());
        std::fs::create_dir_all(data).map_err(|e| e.to_string())?;
        let log = std::fs::File::create(data.join("polyscale.log")).map_err(|e| e.to_string())?;
        let started = Instant::now();
        let child = Command::new(binary)
            .arg("serve")
            .args(["--listen", &format!("127.0.0.1:{http}"), "--grpc-listen", &format!("127.0.0.1:{grpc}")])
            .args(["--metrics-listen", &format!("127.0.0.1:{metrics}"), "--data-dir"])
            .arg(data)
            // One address carries the load of many clients here: the
            // per-address search limit would refuse nearly all of it.
            .args(["--set", "gateway.rate_limit.search_per_minute=0"])
            .args(extra.iter().flat_map(|kv| ["--set", kv.as_str()]))
            .env("RUST_LOG", "warn")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("{}: {e}", binary.display()))?;
        let mut system =
            Self { child, graphql: format!("http://127.0.0.1:{http}/graphql"), ready_after: Duration::ZERO };
        let client = reqwest::Client::new();
        let deadline = started + Duration::from_secs(120);
        loop {
            if let Ok(response) = client.get(format!("http://127.0.0.1:{metrics}/readyz")).send().await
                && response.status().is_success()
            {
                break;
            }
            if let Ok(Some(status)) = system.child.try_wait() {
                return Err(format!("polyscale exited with {status}; see {}", data.join("polyscale.log").display()));
            }
            if Instant::now() > deadline {
                return Err("polyscale was not ready within 120 s".into());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        system.ready_after = started.elapsed();
        // The sample catalog is loaded and indexed in the background.
        loop {
            let found = graphql(&client, &system.graphql, SEARCH, json!({})).await.ok();
            if found.is_some_and(|d| d["products"]["totalCount"].as_u64().unwrap_or(0) > 0) {
                break;
            }
            if Instant::now() > deadline {
                return Err("the sample catalog was not searchable within 120 s".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(system)
    }

    /// Resident memory, from /proc.
    fn rss_mib(&self) -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let kib: f64 = status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib / 1024.0)
    }

    /// SIGTERM, then waits for the exit.
    fn stop(mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

impl Drop for System {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const SEARCH: &str = "{ products(query: \"laptop\", first: 20) { totalCount edges { node { id name } } facets { categories { count } prices { count } } } }";
const PRODUCT: &str = "query($id: ID!) { product(id: $id) { id name price { amount currency } stock } }";

async fn graphql(client: &reqwest::Client, url: &str, query: &str, variables: Value) -> Result<Value, String> {
    let body: Value = client
        .post(url)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    match body.get("errors") {
        Some(errors) => Err(errors.to_string()),
        None => Ok(body["data"].clone()),
    }
}

/// Checks the `data` of the answer to the `i`th body.
type Check = Box<dyn Fn(usize, &Value) -> bool + Send + Sync>;

/// What one scenario sends, and how each answer is checked.
struct Scenario {
    name: String,
    /// Request bodies, sent in turn.
    bodies: Vec<String>,
    check: Check,
}

struct Outcome {
    name: String,
    requests: u64,
    errors: u64,
    first_error: Option<String>,
    elapsed: Duration,
    latency: Histogram<u64>,
}

impl Outcome {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
}

/// Drives `connections` connections (one HTTP/1.1 keep-alive connection
/// each, one request at a time) for the warm-up and then `duration`,
/// recording after the warm-up.
async fn drive(url: &str, scenario: Scenario, options: &Options) -> Outcome {
    let scenario = Arc::new(scenario);
    let next = Arc::new(AtomicUsize::new(0));
    let begin = Instant::now() + options.warmup;
    let end = begin + options.duration;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..options.connections {
        let (scenario, next, url) = (scenario.clone(), next.clone(), url.to_string());
        tasks.spawn(async move {
            let client = reqwest::Client::builder().pool_max_idle_per_host(1).build().unwrap();
            let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
            let (mut requests, mut errors, mut first_error) = (0u64, 0u64, None);
            loop {
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed) % scenario.bodies.len();
                let answer = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(scenario.bodies[i].clone())
                    .send()
                    .await;
                let verdict = match answer {
                    Ok(response) if response.status().is_success() => match response.json::<Value>().await {
                        Ok(body) if body.get("errors").is_none() && (scenario.check)(i, &body["data"]) => Ok(()),
                        Ok(body) => Err(format!("unexpected answer: {body}")),
                        Err(e) => Err(format!("unreadable answer: {e}")),
                    },
                    Ok(response) => Err(format!("HTTP {}", response.status())),
                    Err(e) => Err(e.to_string()),
                };
                if sent < begin {
                    continue;
                }
                requests += 1;
                let _ = latency.record(sent.elapsed().as_micros().max(1) as u64);
                if let Err(e) = verdict {
                    errors += 1;
                    first_error.get_or_insert(e);
                }
            }
            (requests, errors, first_error, latency)
        });
    }
    let mut outcome = Outcome {
        name: scenario.name.clone(),
        requests: 0,
        errors: 0,
        first_error: None,
        elapsed: options.duration,
        latency: Histogram::new_with_bounds(1, 60_000_000, 3).unwrap(),
    };
    while let Some(Ok((requests, errors, first_error, latency))) = tasks.join_next().await {
        outcome.requests += requests;
        outcome.errors += errors;
        if outcome.first_error.is_none() {
            outcome.first_error = first_error;
        }
        let _ = outcome.latency.add(&latency);
    }
    outcome
}

/// The ids of the first products of the catalog.
async fn product_ids(url: &str) -> Result<Vec<String>, String> {
    let data =
        graphql(&reqwest::Client::new(), url, "{ products(first: 50) { edges { node { id } } } }", json!({})).await?;
    let ids: Vec<String> = data["products"]["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["node"]["id"].as_str().map(String::from))
        .collect();
    if ids.is_empty() { Err("the catalog has no products".into()) } else { Ok(ids) }
}

fn ceiling() -> Scenario {
    Scenario {
        name: "ceiling: { __typename } (HTTP + GraphQL only)".into(),
        bodies: vec![json!({ "query": "{ __typename }" }).to_string()],
        check: Box::new(|_, data| data["__typename"] == "Query"),
    }
}

fn product_by_id(name: &str, ids: Vec<String>) -> Scenario {
    let bodies = ids.iter().map(|id| json!({ "query": PRODUCT, "variables": { "id": id } }).to_string()).collect();
    Scenario { name: name.into(), bodies, check: Box::new(move |i, data| data["product"]["id"] == ids[i].as_str()) }
}

fn search() -> Scenario {
    Scenario {
        name: "products(query: \"laptop\", first: 20) + facets, SQLite + Tantivy".into(),
        bodies: vec![json!({ "query": SEARCH }).to_string()],
        check: Box::new(|_, data| {
            data["products"]["totalCount"].as_u64().unwrap_or(0) > 0
                && data["products"]["facets"]["categories"].is_array()
        }),
    }
}

/// Versions deployed during the hot-swap scenario.
const SWAPS: usize = 10;

/// The product component as the host build made it.
fn product_component() -> Result<Vec<u8>, String> {
    let path = target_dir().join("wasm-components/wasm32-wasip2/release/product_component.wasm");
    std::fs::read(&path).map_err(|e| format!("{}: {e} (build the host first)", path.display()))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("polyscale-load-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Starts the embedded system on `data`, lets it settle for 2 s, and
/// notes how long it took to be ready and its idle resident memory.
async fn settled(binary: &Path, data: &Path, what: &str) -> Result<(System, String), String> {
    let system = System::start(binary, data, &[]).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss = system.rss_mib().map_or("unknown".to_string(), |m| format!("{m:.0} MiB"));
    let note = format!("{what}: ready in {:.2} s, idle RSS {rss}", system.ready_after.as_secs_f64());
    Ok((system, note))
}

async fn measure(options: &Options, binary: &Path) -> Result<(), String> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut outcomes = Vec::new();
    let mut notes = Vec::new();

    // Embedded SQLite + Tantivy: first start (loads the sample catalog),
    // then a restart on the same data directory.
    let data = scratch("embedded");
    let (first, note) = settled(binary, &data, "first start (loads the sample catalog)").await?;
    notes.push(note);
    first.stop();
    let (system, note) = settled(binary, &data, "restart").await?;
    notes.push(note);
    let ids = product_ids(&system.graphql).await?;
    outcomes.push(drive(&system.graphql, ceiling(), options).await);
    outcomes.push(drive(&system.graphql, product_by_id("product(id), embedded SQLite", ids.clone()), options).await);
    outcomes.push(drive(&system.graphql, search(), options).await);
    // Hot swap under load: ten product component versions deployed while
    // the product(id) load runs; not one request may fail.
    let wasm = product_component()?;
    let swaps = SWAPS;
    // Long enough for every deploy (a debug build compiles slowly) to land
    // inside the measured window.
    let swap_options = Options { duration: options.duration.max(Duration::from_secs(10)), binary: None, ..*options };
    let spacing = swap_options.duration / (swaps as u32 + 1);
    let (binary_path, admin, warmup) =
        (binary.to_path_buf(), format!("unix:{}", data.join("admin.sock").display()), options.warmup);
    let scratch_dir = data.clone();
    let swapper = tokio::task::spawn_blocking(move || -> Result<Vec<Instant>, String> {
        let mut live = Vec::new();
        std::thread::sleep(warmup);
        let mut took = Duration::ZERO;
        for i in 0..swaps {
            // Evenly over the measured time, the deploys' own time included.
            std::thread::sleep(spacing.saturating_sub(took));
            let began = Instant::now();
            let file = scratch_dir.join(format!("product-swap-{i}.wasm"));
            std::fs::write(
                &file,
                polyscale_testkit::wasm::variant(&wasm, &format!("load-swap-{i}-{}", std::process::id())),
            )
            .map_err(|e| e.to_string())?;
            let deployed = Command::new(&binary_path)
                .args(["component", "deploy", "--admin", &admin])
                .arg(&file)
                .output()
                .map_err(|e| e.to_string())?;
            if !deployed.status.success() {
                return Err(format!("deploy {i}: {}", String::from_utf8_lossy(&deployed.stderr)));
            }
            live.push(Instant::now());
            took = began.elapsed();
        }
        Ok(live)
    });
    let mut swapped =
        drive(&system.graphql, product_by_id(&format!("product(id) across {swaps} hot swaps"), ids), &swap_options)
            .await;
    let load_ended = Instant::now();
    match swapper.await.map_err(|e| e.to_string())? {
        Ok(live) => {
            let during = live.iter().filter(|t| **t <= load_ended).count();
            notes.push(format!(
                "hot swaps: {during} of {swaps} product component versions went live while the load ran"
            ));
        }
        Err(e) => {
            swapped.errors += 1;
            swapped.first_error.get_or_insert(format!("a hot swap failed: {e}"));
        }
    }
    outcomes.push(swapped);
    if let Some(rss) = system.rss_mib() {
        notes.push(format!("RSS after the embedded scenarios: {rss:.0} MiB"));
    }
    system.stop();
    let _ = std::fs::remove_dir_all(&data);

    // PostgreSQL for the stores (search stays on Tantivy).
    if options.postgres {
        let cluster = polyscale_testkit::pg::PgCluster::start()?;
        let mut databases = Vec::new();
        let mut extra = Vec::new();
        for key in [
            "components.database_url",
            "product.database_url",
            "account.database_url",
            "account.credentials_database_url",
            "order.database_url",
        ] {
            let db = polyscale_testkit::pg::fresh_database_on(&cluster.url).await;
            extra.push(format!("{key}={}", db.url));
            databases.push(db);
        }
        let data = scratch("postgres");
        let system = System::start(binary, &data, &extra).await?;
        let ids = product_ids(&system.graphql).await?;
        outcomes.push(drive(&system.graphql, product_by_id("product(id), PostgreSQL", ids), options).await);
        system.stop();
        let _ = std::fs::remove_dir_all(&data);
    }

    let ceiling_rate = outcomes.first().map_or(1.0, Outcome::rate);
    let build = if options.smoke { "debug build, smoke run" } else { "release build" };
    println!(
        "\n{cores} cores; {} connections; {} s per scenario after {} s of warm-up; {build}; the load generator shares the machine\n",
        options.connections,
        options.duration.as_secs_f64(),
        options.warmup.as_secs_f64()
    );
    println!("| scenario | req/s | of ceiling | p50 ms | p99 ms | p999 ms | errors |");
    println!("|---|---|---|---|---|---|---|");
    for o in &outcomes {
        let ms = |q: f64| o.latency.value_at_quantile(q) as f64 / 1000.0;
        println!(
            "| {} | {:.0} | {:.1} % | {:.2} | {:.2} | {:.2} | {} |",
            o.name,
            o.rate(),
            100.0 * o.rate() / ceiling_rate,
            ms(0.5),
            ms(0.99),
            ms(0.999),
            o.errors
        );
    }
    println!();
    for note in &notes {
        println!("- {note}");
    }
    let failed: Vec<String> = outcomes
        .iter()
        .filter(|o| o.errors > 0 || o.requests == 0)
        .map(|o| {
            format!(
                "{}: {} errors of {} ({})",
                o.name,
                o.errors,
                o.requests,
                o.first_error.as_deref().unwrap_or("no requests")
            )
        })
        .collect();
    if failed.is_empty() { Ok(()) } else { Err(format!("failed requests:\n  {}", failed.join("\n  "))) }
}
