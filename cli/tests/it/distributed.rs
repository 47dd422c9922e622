//! Distributed mode, as real processes on loopback: two product replicas,
//! an account service, two order replicas and two gateways, each its own
//! `polyscale` process, on one throwaway PostgreSQL (a database per
//! service plus the shared component store).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::Connection;

use crate::app::{PASSWORD, variant};

/// One `polyscale` process and what it logged about itself.
struct Process {
    name: &'static str,
    child: Child,
    /// `http://host:port` of its gRPC listener (service hosts).
    grpc: Option<String>,
    /// Its admin plane (service hosts).
    admin: Option<String>,
    /// `http://host:port/graphql` (gateways).
    graphql: Option<String>,
    /// `http://host:port` of its metrics and probes listener.
    probes: String,
    /// What it logged until it listened.
    started_log: Vec<String>,
    _log: Receiver<String>,
}

impl Process {
    /// Starts `polyscale ARGS` with a data directory of its own and waits
    /// until it has logged where it listens.
    fn start(name: &'static str, root: &Path, args: &[String]) -> Self {
        let data = root.join(name);
        let mut child = Command::new(env!("CARGO_BIN_EXE_polyscale"))
            .args(args)
            .args(["--listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
            .args(["--no-sample-data", "--data-dir"])
            .arg(&data)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .env_remove("POLYSCALE_DATA_DIR")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("polyscale starts");
        let (lines, log) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let serves_gateway = args.first().is_some_and(|a| a == "gateway");
        let (mut grpc, mut admin, mut graphql, mut probes) = (None, None, None, None);
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut seen = Vec::new();
        while probes.is_none() || (serves_gateway && graphql.is_none()) || (!serves_gateway && grpc.is_none()) {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = log.recv_timeout(left) else {
                let _ = child.kill();
                panic!("{name} did not log its addresses; its log:\n{}", seen.join("\n"));
            };
            // Text or JSON logs: an address ends at a space or a quote.
            let word = |rest: &str| rest.split(|c: char| c.is_whitespace() || c == '"').next().unwrap().to_string();
            if let Some(rest) = line.split("GraphQL at ").nth(1) {
                graphql = Some(word(rest));
            }
            if let Some(rest) = line.split("(gRPC) at ").nth(1) {
                grpc = Some(format!("http://{}", rest.split(';').next().unwrap().trim()));
                admin = rest.split("admin plane at ").nth(1).map(word);
            }
            if let Some(rest) = line.split("metrics at ").nth(1) {
                probes = Some(word(rest).trim_end_matches(',').replace("/metrics", ""));
            }
            seen.push(line);
        }
        Self { name, child, grpc, admin, graphql, probes: probes.unwrap(), started_log: seen, _log: log }
    }

    async fn readyz(&self, http: &reqwest::Client) -> (u16, Value) {
        let response = http.get(format!("{}/readyz", self.probes)).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// The activation sequence of `component` this process runs.
    async fn running(&self, http: &reqwest::Client, component: &str) -> (Option<String>, i64) {
        let (_, body) = self.readyz(http).await;
        let entry = body["host"]["components"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["component"] == component).cloned())
            .unwrap_or_else(|| panic!("{} reports no {component} component: {body}", self.name));
        (entry["version"].as_str().map(String::from), entry["activation"].as_i64().unwrap_or(0))
    }

    /// What it logged since it started listening (or since the last call).
    fn logged(&self) -> Vec<String> {
        self._log.try_iter().collect()
    }

    /// SIGTERM, then the exit status.
    fn terminate(&mut self) -> std::process::ExitStatus {
        let sent = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(sent.success());
        for _ in 0..300 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        panic!("{} did not stop within 30 s of SIGTERM", self.name);
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn run(args: &[&str]) -> (bool, String) {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_polyscale"))
            .args(&args)
            .env("NO_COLOR", "1")
            .env_remove("POLYSCALE_ADMIN")
            .output()
            .expect("polyscale runs")
    })
    .await
    .unwrap();
    (
        output.status.success(),
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)),
    )
}

async fn graphql(http: &reqwest::Client, url: &str, token: Option<&str>, query: &str, variables: Value) -> Value {
    let mut request = http.post(url).json(&json!({ "query": query, "variables": variables }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let body: Value = request.send().await.unwrap().json().await.unwrap();
    assert!(body.get("errors").is_none(), "{query}: {body}");
    body["data"].clone()
}

async fn register_and_login(http: &reqwest::Client, url: &str, email: &str) -> (String, String) {
    let data = graphql(
        http,
        url,
        None,
        "mutation($input: RegisterInput!) { register(input: $input) { account { id } userErrors { code message } } }",
        json!({ "input": { "email": email, "password": PASSWORD, "displayName": "x" } }),
    )
    .await;
    assert_eq!(data["register"]["userErrors"], json!([]), "{data}");
    let id = data["register"]["account"]["id"].as_str().unwrap().to_string();
    (id, login(http, url, email).await)
}

async fn login(http: &reqwest::Client, url: &str, email: &str) -> String {
    let data = graphql(
        http,
        url,
        None,
        "mutation($input: LoginInput!) { login(input: $input) { accessToken userErrors { code } } }",
        json!({ "input": { "email": email, "password": PASSWORD } }),
    )
    .await;
    data["login"]["accessToken"].as_str().unwrap_or_else(|| panic!("login: {data}")).to_string()
}

/// The total of the customer's cart as one order replica prices it, asked
/// over its own gRPC port.
async fn cart_total_at(replica: &Process, token: &str) -> i64 {
    use polyscale_proto::order::v1 as pb;
    let channel =
        tonic::transport::Channel::from_shared(replica.grpc.clone().unwrap()).unwrap().connect().await.unwrap();
    let mut request = tonic::Request::new(pb::GetCartRequest { guest_token: None });
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    let cart = pb::order_service_client::OrderServiceClient::new(channel)
        .get_cart(request)
        .await
        .unwrap_or_else(|e| panic!("{}: GetCart: {e}", replica.name))
        .into_inner()
        .cart
        .unwrap();
    cart.totals.first().map_or(0, |m| m.amount)
}

/// Waits until `replica` runs `activation` of `component`; returns how long
/// that took, failing past `within`.
async fn followed(
    http: &reqwest::Client,
    replica: &Process,
    component: &str,
    activation: i64,
    within: Duration,
) -> Duration {
    let asked = Instant::now();
    loop {
        let (_, seq) = replica.running(http, component).await;
        if seq >= activation {
            return asked.elapsed();
        }
        assert!(
            asked.elapsed() < within,
            "{} still runs activation {seq} of {component}, not {activation}, after {within:?}",
            replica.name
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The deployment of the test: the keys, the databases, the processes.
struct Deployment {
    _dir: tempfile::TempDir,
    databases: Vec<polyscale_testkit::pg::TestDatabase>,
    products: Vec<Process>,
    account: Process,
    orders: Vec<Process>,
    gateways: Vec<Process>,
}

impl Deployment {
    /// On the tests' shared PostgreSQL server.
    async fn start() -> Self {
        Self::start_on(&polyscale_testkit::pg::server_url()).await
    }

    /// On the PostgreSQL server at `server` (admin URL).
    async fn start_on(server: &str) -> Self {
        Self::start_with(server, &[]).await
    }

    /// With `extra` configuration (`KEY=VALUE`) for every process.
    async fn start_with(server: &str, extra: &[String]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        let (ok, out) = run(&["keys", "generate", "--dir", keys.to_str().unwrap()]).await;
        assert!(ok, "keys generate: {out}");
        let (ok, out) = run(&["keys", "generate", "--dir", keys.to_str().unwrap()]).await;
        assert!(!ok && out.contains("not overwriting"), "a second keys generate must refuse: {out}");

        let mut databases = Vec::new();
        let mut urls = Vec::new();
        for _ in 0..5 {
            let db = polyscale_testkit::pg::fresh_database_on(server).await;
            urls.push(db.url.clone());
            databases.push(db);
        }
        let key = |name: &str| keys.join(name).display().to_string();
        let common: Vec<String> = [
            format!("components.database_url={}", urls[0]),
            format!("product.database_url={}", urls[1]),
            format!("account.database_url={}", urls[2]),
            format!("account.credentials_database_url={}", urls[3]),
            format!("order.database_url={}", urls[4]),
            format!("keys.token_signing_key_file={}", key("token-signing-key.pem")),
            format!("keys.token_public_key_file={}", key("token-public-key.pem")),
            format!("keys.service_key_file={}", key("service-key")),
            // Announcements carry activations; the periodic reconcile is
            // the safety net.
            "services.reconcile_interval=2s".to_string(),
        ]
        .into_iter()
        .chain(extra.iter().cloned())
        .flat_map(|kv| ["--set".to_string(), kv])
        .collect();
        let with = |head: &[&str], tail: &[String]| -> Vec<String> {
            head.iter().map(|s| s.to_string()).chain(common.iter().cloned()).chain(tail.iter().cloned()).collect()
        };

        let root = dir.path();
        let products = vec![
            Process::start("product-1", root, &with(&["serve", "--services", "product"], &[])),
            Process::start("product-2", root, &with(&["serve", "--services", "product"], &[])),
        ];
        let product_urls: Vec<String> = products.iter().map(|p| p.grpc.clone().unwrap()).collect();
        let account = Process::start("account", root, &with(&["serve", "--services", "account"], &[]));
        let account_url = account.grpc.clone().unwrap();
        let siblings = vec![
            "--set".to_string(),
            format!("services.product={}", product_urls.join(",")),
            "--set".to_string(),
            format!("services.account={account_url}"),
        ];
        let orders = vec![
            Process::start("order-1", root, &with(&["serve", "--services", "order"], &siblings)),
            Process::start("order-2", root, &with(&["serve", "--services", "order"], &siblings)),
        ];
        let order_urls: Vec<String> = orders.iter().map(|p| p.grpc.clone().unwrap()).collect();
        let mut everything = siblings.clone();
        everything.extend(["--set".to_string(), format!("services.order={}", order_urls.join(","))]);
        let gateways = vec![
            Process::start("gateway-1", root, &with(&["gateway"], &everything)),
            Process::start("gateway-2", root, &with(&["gateway"], &everything)),
        ];
        Self { _dir: dir, databases, products, account, orders, gateways }
    }

    /// A merchant of store `store`: registered through gateway 1, granted
    /// the role on the account service's admin plane, signed in again;
    /// the access token.
    async fn merchant(&self, http: &reqwest::Client, email: &str, store: &str) -> String {
        let g1 = self.gateway(0);
        register_and_login(http, &g1, email).await;
        let admin = self.account.admin.clone().unwrap();
        let (ok, out) = run(&[
            "accounts",
            "grant",
            "--admin",
            &admin,
            "--email",
            email,
            "--role",
            "merchant",
            "--store-name",
            store,
        ])
        .await;
        assert!(ok, "accounts grant: {out}");
        login(http, &g1, email).await
    }

    fn gateway(&self, i: usize) -> String {
        self.gateways[i].graphql.clone().unwrap()
    }

    fn all(&self) -> impl Iterator<Item = &Process> {
        self.products.iter().chain([&self.account]).chain(self.orders.iter()).chain(self.gateways.iter())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_serve_one_system_and_follow_each_others_activations() {
    let system = Deployment::start().await;
    let http = reqwest::Client::new();

    // Every process is up and ready; the gateways see every service.
    for process in system.all() {
        let health = http.get(format!("{}/healthz", process.probes)).send().await.unwrap();
        assert_eq!(health.status(), 200, "{} /healthz", process.name);
        let mut ready = (0, Value::Null);
        for _ in 0..100 {
            ready = process.readyz(&http).await;
            if ready.0 == 200 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(ready.0, 200, "{} /readyz: {}", process.name, ready.1);
    }

    // A merchant (granted on the account service's admin plane) lists a
    // product through gateway 1.
    let (g1, g2) = (system.gateway(0), system.gateway(1));
    let merchant = system.merchant(&http, "merchant@dist.example", "Dist").await;
    let data = graphql(
        &http,
        &g1,
        Some(&merchant),
        "mutation($input: CreateProductInput!) { createProduct(input: $input) { product { id } userErrors { code message } } }",
        json!({ "input": { "name": "Distributed kettle", "description": "boils", "price": { "amount": 2500, "currency": "EUR" }, "stock": 3 } }),
    )
    .await;
    assert_eq!(data["createProduct"]["userErrors"], json!([]), "{data}");
    let product = data["createProduct"]["product"]["id"].as_str().unwrap().to_string();

    // A customer registered through gateway 2 browses it through both
    // gateways (served by either product replica), fills a cart, places
    // and pays an order.
    let (_, customer) = register_and_login(&http, &g2, "customer@dist.example").await;
    for url in [&g1, &g2] {
        for _ in 0..4 {
            let data = graphql(
                &http,
                url,
                None,
                "query($id: ID!) { product(id: $id) { name stock } }",
                json!({ "id": product }),
            )
            .await;
            assert_eq!(data["product"]["name"], "Distributed kettle", "{data}");
        }
    }
    let data = graphql(
        &http,
        &g2,
        Some(&customer),
        "mutation($p: ID!) { addToCart(productId: $p, quantity: 2) { cart { itemCount totals { amount currency } } userErrors { code message } } }",
        json!({ "p": product }),
    )
    .await;
    assert_eq!(data["addToCart"]["userErrors"], json!([]), "{data}");
    assert_eq!(data["addToCart"]["cart"]["totals"], json!([{ "amount": 5000, "currency": "EUR" }]));
    // The cart is the customer's, whichever gateway answers.
    let data = graphql(&http, &g1, Some(&customer), "{ cart { itemCount } }", json!({})).await;
    assert_eq!(data["cart"]["itemCount"], 2, "{data}");
    let data = graphql(
        &http,
        &g1,
        Some(&customer),
        "mutation { placeOrder(input: { idempotencyKey: \"dist-order-1\" }) { order { id status total { amount currency } } userErrors { code message } } }",
        json!({}),
    )
    .await;
    assert_eq!(data["placeOrder"]["userErrors"], json!([]), "{data}");
    let order = data["placeOrder"]["order"]["id"].as_str().unwrap().to_string();
    assert_eq!(data["placeOrder"]["order"]["total"], json!({ "amount": 5000, "currency": "EUR" }));
    let data = graphql(
        &http,
        &g2,
        Some(&customer),
        "mutation($o: ID!) { authorizePayment(orderId: $o, provider: \"manual\", source: \"bank transfer\") { payment { provider } userErrors { code message } } }",
        json!({ "o": order }),
    )
    .await;
    assert_eq!(data["authorizePayment"]["userErrors"], json!([]), "{data}");
    // Stock was taken once, seen by both product replicas.
    for url in [&g1, &g2] {
        for _ in 0..4 {
            let data =
                graphql(&http, url, None, "query($id: ID!) { product(id: $id) { stock } }", json!({ "id": product }))
                    .await;
            assert_eq!(data["product"]["stock"], 1, "{data}");
        }
    }

    // Every process serves Prometheus metrics: the gateway by root field,
    // the services by gRPC method and by component version, the product
    // host its search outbox's lag.
    let metrics = |process: &Process| {
        let (http, url) = (http.clone(), format!("{}/metrics", process.probes));
        async move { http.get(url).send().await.unwrap().text().await.unwrap() }
    };
    let gateway_metrics = metrics(&system.gateways[0]).await;
    assert!(
        gateway_metrics
            .contains(r#"polyscale_graphql_field_seconds_count{type="Mutation",field="placeOrder",outcome="ok"}"#),
        "{gateway_metrics}"
    );
    // A client probing made-up methods does not grow the label set.
    let channel = tonic::transport::Channel::from_shared(system.orders[0].grpc.clone().unwrap())
        .unwrap()
        .connect()
        .await
        .unwrap();
    for i in 0..3 {
        let mut grpc = tonic::client::Grpc::new(channel.clone());
        grpc.ready().await.unwrap();
        let path = format!("/made.Up/Probe{i}").parse().unwrap();
        let refused =
            grpc.unary(tonic::Request::new(()), path, tonic_prost::ProstCodec::<(), ()>::default()).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unimplemented);
    }
    let mut order_metrics = String::new();
    for replica in &system.orders {
        order_metrics.push_str(&metrics(replica).await);
    }
    assert!(
        order_metrics.contains(
            r#"polyscale_grpc_server_seconds_count{method="polyscale.order.v1.OrderService/PlaceOrder",code="0"}"#
        ),
        "{order_metrics}"
    );
    assert!(!order_metrics.contains("made.Up"), "an unknown method became a label: {order_metrics}");
    assert!(
        order_metrics.contains(r#"polyscale_component_call_seconds_count{component="order",version=""#),
        "{order_metrics}"
    );
    assert!(order_metrics.contains("polyscale_component_instances"), "{order_metrics}");
    let mut product_metrics = String::new();
    for replica in &system.products {
        product_metrics.push_str(&metrics(replica).await);
    }
    assert!(product_metrics.contains("polyscale_search_outbox_lag_seconds"), "{product_metrics}");

    // A product component version deployed on replica 1's admin plane is
    // live on replica 2 within a second: PostgreSQL carried the news.
    let (_, before) = system.products[1].running(&http, "product").await;
    let wasm = system._dir.path().join("product-v2.wasm");
    std::fs::write(&wasm, variant(polyscale_host::components::PRODUCT, "distributed")).unwrap();
    let admin = system.products[0].admin.clone().unwrap();
    let (ok, out) = run(&["component", "deploy", "--admin", &admin, wasm.to_str().unwrap()]).await;
    assert!(ok, "component deploy: {out}");
    let (version, activation) = system.products[0].running(&http, "product").await;
    assert!(activation > before, "replica 1 runs the new activation: {activation} after {before}");
    let asked = Instant::now();
    loop {
        let (seen, seq) = system.products[1].running(&http, "product").await;
        if seq == activation {
            assert_eq!(seen, version);
            break;
        }
        assert!(asked.elapsed() < Duration::from_secs(1), "replica 2 still runs activation {seq}, not {activation}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("replica 2 followed the activation in {:?}", asked.elapsed());

    // Requests still succeed through either gateway on the new version.
    for url in [&g1, &g2] {
        let data =
            graphql(&http, url, None, "query($id: ID!) { product(id: $id) { stock } }", json!({ "id": product })).await;
        assert_eq!(data["product"]["stock"], 1, "{data}");
    }

    // A merchant's pricing plugin (10 % off), uploaded and activated
    // through gateway 1, prices carts on both order replicas, and so
    // behind gateway 2, within a second.
    let data = graphql(
        &http,
        &g2,
        Some(&customer),
        "mutation($p: ID!) { addToCart(productId: $p, quantity: 1) { cart { totals { amount } } userErrors { code } } }",
        json!({ "p": product }),
    )
    .await;
    assert_eq!(data["addToCart"]["cart"]["totals"], json!([{ "amount": 2500 }]), "{data}");
    for replica in &system.orders {
        assert_eq!(cart_total_at(replica, &customer).await, 2500, "{} before the plugin", replica.name);
    }
    let upload = http
        .put(format!("{}/plugins/ten-off?kind=pricing&activate=true", g1.trim_end_matches("/graphql")))
        .bearer_auth(&merchant)
        .body(polyscale_test_components::HOSTILE_PLUGIN.to_vec())
        .send()
        .await
        .unwrap();
    let status = upload.status();
    assert!(status.is_success(), "plugin upload: {status}: {}", upload.text().await.unwrap());
    let asked = Instant::now();
    for replica in &system.orders {
        while cart_total_at(replica, &customer).await != 2250 {
            assert!(
                asked.elapsed() < Duration::from_secs(1),
                "{} does not price with the plugin after 1 s",
                replica.name
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    println!("both order replicas priced with the plugin {:?} after its activation", asked.elapsed());
    for _ in 0..4 {
        let data = graphql(&http, &g2, Some(&customer), "{ cart { totals { amount } } }", json!({})).await;
        assert_eq!(data["cart"]["totals"], json!([{ "amount": 2250 }]), "behind gateway 2: {data}");
    }

    // Every connection to the component store is cut (listeners and
    // pools, of every process) just as a new version is deployed: replica
    // 2 may miss the announcement, and converges within the reconcile
    // period (2 s here) all the same.
    let mut store = sqlx::PgConnection::connect(&system.databases[0].url).await.unwrap();
    let cut: Vec<(bool,)> = sqlx::query_as(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_all(&mut store)
    .await
    .unwrap();
    assert!(cut.len() >= system.products.len(), "the listeners' connections were cut: {cut:?}");
    std::fs::write(&wasm, variant(polyscale_host::components::PRODUCT, "after-the-cut")).unwrap();
    let (ok, out) = run(&["component", "deploy", "--admin", &admin, wasm.to_str().unwrap()]).await;
    assert!(ok, "component deploy after the cut: {out}");
    let (_, activation) = system.products[0].running(&http, "product").await;
    let took = followed(&http, &system.products[1], "product", activation, Duration::from_secs(3)).await;
    println!("after {} connections were cut, replica 2 followed in {took:?}", cut.len());
}

/// SIGTERM to a service host lets the requests it is serving finish:
/// registrations (each hashing a password) sent straight to the account
/// service's gRPC port all succeed although the signal came while most
/// were in flight; then every process exits 0 on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_lets_in_flight_requests_finish() {
    use polyscale_proto::account::v1 as pb;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let mut system = Deployment::start().await;
    let channel =
        tonic::transport::Channel::from_shared(system.account.grpc.clone().unwrap()).unwrap().connect().await.unwrap();
    let done = Arc::new(AtomicUsize::new(0));
    let first = Arc::new(tokio::sync::Notify::new());
    let mut calls = tokio::task::JoinSet::new();
    const CALLS: usize = 24;
    for i in 0..CALLS {
        let mut accounts = pb::account_service_client::AccountServiceClient::new(channel.clone());
        let (done, first) = (done.clone(), first.clone());
        calls.spawn(async move {
            let request = pb::RegisterRequest {
                email: format!("inflight-{i}@dist.example"),
                password: PASSWORD.into(),
                display_name: "x".into(),
            };
            let result = accounts.register(request).await;
            done.fetch_add(1, Ordering::SeqCst);
            first.notify_one();
            (Instant::now(), result.map(|_| ()))
        });
    }
    // The first answer: the service is busy with the rest.
    tokio::time::timeout(Duration::from_secs(30), first.notified()).await.expect("a registration finishes");
    let signalled = Instant::now();
    let before = done.load(Ordering::SeqCst);
    let account = &mut system.account;
    let status = tokio::task::block_in_place(|| account.terminate());
    assert!(status.success(), "account exits 0 on SIGTERM: {status:?}");
    let mut after = 0;
    while let Some(joined) = calls.join_next().await {
        let (finished, result) = joined.unwrap();
        assert!(result.is_ok(), "a registration in flight at SIGTERM failed: {result:?}");
        after += usize::from(finished > signalled);
    }
    println!("{before} of {CALLS} registrations had finished at SIGTERM; {after} finished after it");
    assert!(
        after > 0,
        "no registration was still in flight at SIGTERM ({before} done before): the test proved nothing"
    );

    // The rest stop cleanly too.
    for gateway in &mut system.gateways {
        assert!(gateway.terminate().success(), "{} exits 0 on SIGTERM", gateway.name);
    }
    for process in system.products.iter_mut().chain(system.orders.iter_mut()) {
        assert!(process.terminate().success(), "{} exits 0 on SIGTERM", process.name);
    }
}

/// One write of the load in [`a_postgres_restart_under_load_loses_no_acknowledged_write`].
struct Write {
    started: Instant,
    finished: Instant,
    /// The product id, if the write was acknowledged.
    acknowledged: Option<String>,
    error: Option<String>,
}

/// PostgreSQL (every database of the deployment) restarted under a load
/// of product creations through both gateways: writes fail only while it
/// is down or reconnecting, the processes recover without a restart of
/// their own, and every acknowledged write is there afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgres_restart_under_load_loses_no_acknowledged_write() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// How long after PostgreSQL is back a write may still fail: pools
    /// and listeners reconnect with backoff.
    const RECOVERY: Duration = Duration::from_secs(5);

    // A cluster of this test's own: the shared one serves other tests.
    let mut cluster = polyscale_testkit::pg::PgCluster::start().expect("a private PostgreSQL cluster");
    let system = Deployment::start_on(&cluster.url).await;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let (g1, g2) = (system.gateway(0), system.gateway(1));
    let merchant = system.merchant(&http, "restart@dist.example", "Restart").await;

    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = tokio::task::JoinSet::new();
    for writer in 0..4 {
        let (http, url, token, stop) = (http.clone(), [&g1, &g2][writer % 2].clone(), merchant.clone(), stop.clone());
        writers.spawn(async move {
            let mut writes = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let started = Instant::now();
                let body = json!({
                    "query": "mutation($input: CreateProductInput!) { createProduct(input: $input) { product { id } userErrors { code } } }",
                    "variables": { "input": { "name": format!("Restart {writer}-{n}"), "description": "d", "price": { "amount": 100, "currency": "EUR" }, "stock": 1 } },
                });
                let answer = match http.post(&url).bearer_auth(&token).json(&body).send().await {
                    Ok(response) => response.json::<Value>().await.map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                let id = answer.as_ref().ok().and_then(|a| a["data"]["createProduct"]["product"]["id"].as_str());
                writes.push(Write {
                    started,
                    finished: Instant::now(),
                    acknowledged: id.map(String::from),
                    error: if id.is_some() { None } else { Some(format!("{answer:?}")) },
                });
                if id.is_none() {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            writes
        });
    }

    tokio::time::sleep(Duration::from_secs(2)).await;
    let down = Instant::now();
    cluster.stop();
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.start_server().expect("PostgreSQL starts again");
    let up = Instant::now();
    tokio::time::sleep(RECOVERY + Duration::from_secs(3)).await;
    stop.store(true, Ordering::SeqCst);
    let mut writes = Vec::new();
    while let Some(joined) = writers.join_next().await {
        writes.extend(joined.unwrap());
    }

    let acknowledged: Vec<&String> = writes.iter().filter_map(|w| w.acknowledged.as_ref()).collect();
    let failed: Vec<&Write> = writes.iter().filter(|w| w.acknowledged.is_none()).collect();
    let before = writes.iter().filter(|w| w.finished < down && w.acknowledged.is_some()).count();
    let recovered = writes.iter().filter(|w| w.started > up + RECOVERY && w.acknowledged.is_some()).count();
    println!(
        "{} writes: {} acknowledged ({before} before the stop, {recovered} after recovery), {} failed",
        writes.len(),
        acknowledged.len(),
        failed.len()
    );
    let slowest = writes.iter().map(|w| w.finished - w.started).max().unwrap_or_default();
    println!("slowest write {slowest:?} (writes made while PostgreSQL was down wait for it within their deadline)");
    assert!(before > 0 && recovered > 0, "the load ran before the stop and after the recovery");
    for write in &failed {
        assert!(
            write.finished >= down && write.started < up + RECOVERY,
            "a write failed outside the outage (started {:?} after the stop, {:?} before it came back): {}",
            write.started.checked_duration_since(down),
            up.checked_duration_since(write.started),
            write.error.as_deref().unwrap_or_default()
        );
        // A clear, retryable error; never a hang or a dropped connection.
        let error = write.error.as_deref().unwrap_or_default();
        if !error.contains("SERVICE_UNAVAILABLE") {
            let warnings: Vec<String> = system
                .all()
                .flat_map(|p| p.logged().into_iter().map(move |line| format!("{}: {line}", p.name)))
                .filter(|line| line.contains("WARN") || line.contains("ERROR"))
                .collect();
            panic!(
                "a write failed without a clear error: {error}\nwarnings and errors logged:\n{}",
                warnings.join("\n")
            );
        }
    }
    // Every acknowledged write is there, read through either gateway.
    for (i, id) in acknowledged.iter().enumerate() {
        let url = [&g1, &g2][i % 2];
        let data = graphql(&http, url, None, "query($id: ID!) { product(id: $id) { id } }", json!({ "id": id })).await;
        assert_eq!(data["product"]["id"], json!(id), "acknowledged write {id} is lost: {data}");
    }
    println!("all {} acknowledged writes read back", acknowledged.len());
    drop(system);
}

/// The spans an in-test OTLP collector received, with the `service.name`
/// of the process that sent each.
#[derive(Clone, Default)]
struct Collector {
    spans: std::sync::Arc<std::sync::Mutex<Vec<(String, opentelemetry_proto::tonic::trace::v1::Span)>>>,
}

#[tonic::async_trait]
impl opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest>,
    ) -> Result<
        tonic::Response<opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse>,
        tonic::Status,
    > {
        let mut spans = self.spans.lock().unwrap();
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|r| r.attributes.iter())
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| attribute_text(kv.value.as_ref()))
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                spans.extend(scope.spans.into_iter().map(|span| (service.clone(), span)));
            }
        }
        Ok(tonic::Response::new(Default::default()))
    }
}

fn attribute_text(value: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> Option<String> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    match value?.value.as_ref()? {
        Value::StringValue(s) => Some(s.clone()),
        Value::IntValue(i) => Some(i.to_string()),
        Value::BoolValue(b) => Some(b.to_string()),
        _ => None,
    }
}

fn attribute(span: &opentelemetry_proto::tonic::trace::v1::Span, key: &str) -> Option<String> {
    span.attributes.iter().find(|kv| kv.key == key).and_then(|kv| attribute_text(kv.value.as_ref()))
}

/// One `placeOrder` through the distributed deployment is one trace: the
/// gateway's GraphQL span, the order service's gRPC and component spans
/// and its SQL, and the product service's spans for the stock
/// reservation the order component asked for, all exported over OTLP by
/// their own processes, share one trace id, each gRPC server span the
/// child of its caller's span.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_place_order_is_one_trace_from_gateway_to_sql() {
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceServiceServer;

    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let serving = collector.clone();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(serving))
            .serve_with_incoming(tokio_stream_listener(listener))
            .await
            .unwrap();
    });
    let system = Deployment::start_with(
        &polyscale_testkit::pg::server_url(),
        &[format!("telemetry.otlp_endpoint={endpoint}"), "telemetry.log_format=json".to_string()],
    )
    .await;
    // telemetry.log_format = "json": one object per line.
    for process in system.all() {
        for line in &process.started_log {
            let entry: Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{}: not JSON ({e}): {line}", process.name));
            assert!(entry["fields"]["message"].is_string() && entry["level"].is_string(), "{}: {line}", process.name);
        }
    }
    let http = reqwest::Client::new();
    let g1 = system.gateway(0);
    let merchant = system.merchant(&http, "traced-merchant@dist.example", "Traced").await;
    let data = graphql(
        &http,
        &g1,
        Some(&merchant),
        "mutation($input: CreateProductInput!) { createProduct(input: $input) { product { id } userErrors { code } } }",
        json!({ "input": { "name": "Traced lamp", "description": "glows", "price": { "amount": 900, "currency": "EUR" }, "stock": 5 } }),
    )
    .await;
    let product = data["createProduct"]["product"]["id"].as_str().unwrap().to_string();
    let (_, customer) = register_and_login(&http, &g1, "traced-customer@dist.example").await;
    graphql(
        &http,
        &g1,
        Some(&customer),
        "mutation($p: ID!) { addToCart(productId: $p, quantity: 1) { cart { itemCount } } }",
        json!({ "p": product }),
    )
    .await;
    // With the operation's name, as GraphQL clients send it, and the
    // client's own trace context: the whole request joins that trace.
    const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const CLIENT_SPAN: &str = "00f067aa0ba902b7";
    let answer: Value = http
        .post(&g1)
        .bearer_auth(&customer)
        .header("traceparent", format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"))
        .json(&json!({
            "query": "mutation PlaceIt { placeOrder(input: { idempotencyKey: \"traced-1\" }) { order { id } userErrors { code } } }",
            "operationName": "PlaceIt",
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let data = answer["data"].clone();
    assert_eq!(data["placeOrder"]["userErrors"], json!([]), "{data}");

    // The batch exporters send every few seconds.
    let place = "polyscale.order.v1.OrderService/PlaceOrder";
    let deadline = Instant::now() + Duration::from_secs(30);
    let (trace, spans) = loop {
        let spans = collector.spans.lock().unwrap().clone();
        let found = spans.iter().find(|(_, s)| s.name == place).map(|(_, s)| s.trace_id.clone());
        if let Some(trace) = found {
            let mine: Vec<_> = spans.into_iter().filter(|(_, s)| s.trace_id == trace).collect();
            let has =
                |service: &str, name: &str| mine.iter().any(|(svc, s)| svc == service && s.name.starts_with(name));
            if has("polyscale-gateway", "graphql")
                && has("polyscale-order", "component order")
                && has("polyscale-order", "sql")
                && has("polyscale-product", "component product")
                && has("polyscale-product", "sql")
            {
                break (trace, mine);
            }
        }
        if Instant::now() > deadline {
            let names: Vec<String> = collector
                .spans
                .lock()
                .unwrap()
                .iter()
                .map(|(svc, s)| format!("{svc}: {} ({})", s.name, hex(&s.trace_id)))
                .collect();
            panic!(
                "the spans of one placeOrder did not all arrive in one trace within 30 s; received:\n{}",
                names.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let by_name = |service: &str, name: &str| {
        spans
            .iter()
            .find(|(svc, s)| svc == service && s.name.starts_with(name))
            .map(|(_, s)| s.clone())
            .unwrap_or_else(|| panic!("no {name} span from {service}"))
    };
    let operation = by_name("polyscale-gateway", "graphql");
    assert_eq!(operation.name, "graphql PlaceIt");
    assert_eq!(hex(&trace), CLIENT_TRACE, "the request continues the client's trace");
    assert_eq!(hex(&operation.parent_span_id), CLIENT_SPAN, "the operation is the client span's child");
    let served = by_name("polyscale-order", place);
    assert_eq!(served.parent_span_id, operation.span_id, "the order service's span is the gateway operation's child");
    let call = by_name("polyscale-order", "component order");
    assert_eq!(attribute(&call, "component").as_deref(), Some("order"));
    assert_eq!(attribute(&call, "owner").as_deref(), Some("platform"));
    assert!(attribute(&call, "version").is_some_and(|v| !v.is_empty()));
    assert_eq!(attribute(&call, "outcome").as_deref(), Some("ok"));
    let statements: Vec<String> = spans
        .iter()
        .filter(|(svc, s)| svc == "polyscale-order" && s.name.starts_with("sql"))
        .filter_map(|(_, s)| attribute(s, "db.operation.name"))
        .collect();
    assert!(statements.iter().any(|k| k == "INSERT"), "the order's SQL is in the trace: {statements:?}");
    // The stock reservation: the order component's call to the product
    // service carries the trace on.
    let reserved = spans
        .iter()
        .find(|(svc, s)| svc == "polyscale-product" && s.name.starts_with("polyscale.product.v1.InventoryService/"))
        .map(|(_, s)| s.clone())
        .unwrap_or_else(|| panic!("no InventoryService span in the trace"));
    let parent =
        spans.iter().find(|(_, s)| s.span_id == reserved.parent_span_id).map(|(svc, s)| (svc.clone(), s.name.clone()));
    assert!(
        parent
            .as_ref()
            .is_some_and(|(svc, name)| svc == "polyscale-order"
                && (name.starts_with("component order") || name.starts_with("sql"))),
        "the reservation's parent is the order component's call: {parent:?}"
    );
    println!(
        "trace {}: {} spans from {:?}",
        hex(&trace),
        spans.len(),
        spans.iter().map(|(svc, _)| svc.as_str()).collect::<std::collections::BTreeSet<_>>()
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The accepted connections of `listener`, for `serve_with_incoming`.
fn tokio_stream_listener(
    listener: tokio::net::TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, _)| stream);
        Some((accepted, listener))
    })
}
