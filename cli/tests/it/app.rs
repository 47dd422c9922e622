//! `TestApp`: one running system per test.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use polyscale::embedded::{Embedded, EmbeddedConfig};
use polyscale_host::runtime::{CallLimits, RuntimeConfig};
use polyscale_proto::admin::v1 as admin;
use polyscale_proto::admin::v1::component_admin_client::ComponentAdminClient;
use polyscale_proto::product::v1::product_service_client::ProductServiceClient;
use polyscale_testkit::pg::{TestDatabase, fresh_database};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub http: SocketAddr,
    pub grpc: SocketAddr,
    /// The metrics listener (`/metrics`), apart from `http`.
    pub metrics: Option<SocketAddr>,
    /// The admin plane (the data directory's socket).
    pub admin_address: polyscale::admin::AdminAddress,
    pub client: reqwest::Client,
    pub data_dir: TempDir,
    shutdown: CancellationToken,
    task: Option<JoinHandle<()>>,
    _dbs: Vec<TestDatabase>,
    admin: tokio::sync::OnceCell<String>,
    merchant: tokio::sync::OnceCell<(String, String)>,
    /// Between the order service and its siblings, when asked for.
    pub link: Option<FaultyLink>,
}

/// A network link between services that a test can break: a gRPC proxy
/// that forwards every call to the services' port, counts calls per method
/// path, and answers UNAVAILABLE (as a dropped connection would look) for
/// the method paths it is told to fail.
pub struct FaultyLink {
    pub addr: SocketAddr,
    upstream: Arc<std::sync::OnceLock<Channel>>,
    failing: Arc<std::sync::Mutex<Vec<String>>>,
    calls: Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>,
}

impl FaultyLink {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let upstream: Arc<std::sync::OnceLock<Channel>> = Default::default();
        let failing: Arc<std::sync::Mutex<Vec<String>>> = Default::default();
        let calls: Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>> = Default::default();
        let (up, fail, count) = (upstream.clone(), failing.clone(), calls.clone());
        let forward = move |request: axum::extract::Request| {
            let (up, fail, count) = (up.clone(), fail.clone(), count.clone());
            async move {
                use axum::response::IntoResponse;
                use tower::ServiceExt;
                let path = request.uri().path().to_string();
                *count.lock().unwrap().entry(path.clone()).or_default() += 1;
                if fail.lock().unwrap().iter().any(|f| path.starts_with(f.as_str())) {
                    return tonic::Status::unavailable("link down (test)")
                        .into_http::<axum::body::Body>()
                        .into_response();
                }
                let channel = up.get().expect("link connected").clone();
                let request = request.map(tonic::body::Body::new);
                match channel.oneshot(request).await {
                    Ok(response) => response.map(axum::body::Body::new).into_response(),
                    Err(e) => tonic::Status::unavailable(e.to_string()).into_http::<axum::body::Body>().into_response(),
                }
            }
        };
        let router = axum::Router::new().fallback(forward);
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Self { addr, upstream, failing, calls }
    }

    fn connect(&self, grpc: SocketAddr) {
        let channel = Channel::from_shared(format!("http://{grpc}")).unwrap().connect_lazy();
        self.upstream.set(channel).expect("connected once");
    }

    /// Fails every call whose path starts with `prefix`
    /// (`/polyscale.product.v1.InventoryService/Commit`).
    pub fn fail(&self, prefix: &str) {
        self.failing.lock().unwrap().push(prefix.to_string());
    }

    pub fn heal(&self) {
        self.failing.lock().unwrap().clear();
    }

    /// Calls seen whose path starts with `prefix`.
    pub fn calls(&self, prefix: &str) -> usize {
        self.calls.lock().unwrap().iter().filter(|(p, _)| p.starts_with(prefix)).map(|(_, n)| n).sum()
    }
}

/// Call limits for tests: a short deadline so runaway calls end quickly.
pub fn test_limits() -> CallLimits {
    CallLimits { timeout: Duration::from_secs(2), ..CallLimits::default() }
}

/// The compile cache shared by every test process (compiling a component
/// takes longer than the test that uses it).
fn shared_cache() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("wasmtime-cache")
}

pub struct Options {
    pub backend: Backend,
    pub data_dir: Option<TempDir>,
    pub product_component: Option<Arc<[u8]>>,
    pub search: Option<polyscale_host::server::SearchEngineConfig>,
    /// Call limits other than [`test_limits`].
    pub limits: Option<CallLimits>,
    /// Calls one component slot may have in flight, if not the default.
    pub calls_per_slot: Option<u32>,
    /// Adjusts the credentials configuration (a test clock, say).
    pub credentials: Option<polyscale::embedded::TuneCredentials>,
    /// Trusted proxies appending to `X-Forwarded-For`. Tests play one
    /// proxy (1) to act as clients at several addresses, sending the
    /// address in the header; the system's default is 0 (ignored).
    pub trusted_proxy_hops: usize,
    /// Per-address rate limits. Off in tests, which act as many clients
    /// from one address; the system's defaults are
    /// `RateLimits::default()`.
    pub rate_limits: polyscale_gateway::RateLimits,
    /// Connection limits of the public listener, if not the default.
    pub http: Option<polyscale_gateway::ServerLimits>,
    /// Whether the gateway answers introspection (the default: yes).
    pub introspection: bool,
    /// How often expired stock reservations are released (tests: 100 ms).
    pub reservation_sweep_interval: Duration,
    /// The longest a placement's reservation holds, if not the default.
    pub reservation_hold: Option<Duration>,
    /// Route the gateway's calls to the services and the order service's
    /// calls to its siblings through a [`FaultyLink`] (`TestApp::link`).
    pub faulty_link: bool,
    /// Deadline of each gateway call to the services, if not the default.
    pub service_timeout: Option<Duration>,
    /// Run the `test` payment provider (its webhook secret is generated
    /// in the data directory: [`TestApp::test_webhook_secret`]).
    pub test_payments: bool,
    /// Merchant plugin configuration, if not the default.
    pub plugins: Option<polyscale_host::plugins::PluginConfig>,
}

impl Options {
    pub fn new(backend: Backend) -> Self {
        Self {
            backend,
            data_dir: None,
            product_component: None,
            search: None,
            limits: None,
            calls_per_slot: None,
            credentials: None,
            trusted_proxy_hops: 1,
            rate_limits: polyscale_gateway::RateLimits::OFF,
            http: None,
            introspection: true,
            reservation_sweep_interval: Duration::from_millis(100),
            reservation_hold: None,
            faulty_link: false,
            service_timeout: None,
            test_payments: false,
            plugins: None,
        }
    }
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(Options::new(backend)).await
    }

    pub async fn spawn_with(options: Options) -> Self {
        let data_dir = options.data_dir.unwrap_or_else(|| tempfile::tempdir().expect("temp dir"));
        let dbs = match options.backend {
            Backend::Sqlite => Vec::new(),
            Backend::Postgres => {
                vec![fresh_database().await, fresh_database().await, fresh_database().await, fresh_database().await]
            }
        };
        let mut config = EmbeddedConfig::new(data_dir.path());
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.grpc_listen = "127.0.0.1:0".parse().unwrap();
        config.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
        config.sample_data = false;
        config.trusted_proxy_hops = options.trusted_proxy_hops;
        config.rate_limits = options.rate_limits;
        if let Some(http) = options.http {
            config.http = http;
        }
        config.introspection = options.introspection;
        config.credentials = options.credentials;
        config.product_database_url = dbs.first().map(|d| d.url.clone());
        config.account_database_url = dbs.get(1).map(|d| d.url.clone());
        config.credentials_database_url = dbs.get(2).map(|d| d.url.clone());
        config.order_database_url = dbs.get(3).map(|d| d.url.clone());
        config.reservation_sweep_interval = options.reservation_sweep_interval;
        if let Some(hold) = options.reservation_hold {
            config.reservation_hold = hold;
        }
        if let Some(timeout) = options.service_timeout {
            config.service_timeout = timeout;
        }
        let link = match options.faulty_link {
            true => Some(FaultyLink::start().await),
            false => None,
        };
        if let Some(link) = &link {
            let url = format!("http://{}", link.addr);
            config.service_urls = polyscale::embedded::ServiceUrls::all(&url);
        }
        config.test_payments = options.test_payments;
        config.plugins = options.plugins.unwrap_or_default();
        config.plugins.cache_dir = Some(shared_cache());
        config.product_component = options.product_component;
        config.search = options.search;
        let call_limits = options.limits.unwrap_or_else(test_limits);
        // As `serve` does: no statement outlives the call it runs for.
        config.connect.statement_timeout = call_limits.timeout;
        config.runtime = RuntimeConfig {
            cache_dir: Some(shared_cache()),
            call_limits,
            max_concurrent_calls_per_slot: options
                .calls_per_slot
                .unwrap_or(RuntimeConfig::default().max_concurrent_calls_per_slot),
            ..RuntimeConfig::default()
        };
        let system = Embedded::build(config).await.expect("system starts");
        let (http, grpc, admin_address) = (system.http_addr(), system.grpc_addr(), system.admin_address());
        if let Some(link) = &link {
            link.connect(grpc);
        }
        let metrics = system.metrics_addr();
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let task = tokio::spawn(async move { system.run(token).await.expect("system runs") });
        Self {
            http,
            grpc,
            metrics,
            admin_address,
            client: reqwest::Client::new(),
            data_dir,
            shutdown,
            task: Some(task),
            _dbs: dbs,
            admin: Default::default(),
            merchant: Default::default(),
            link,
        }
    }

    /// Stops the system and waits for it, keeping the data directory.
    pub async fn stop(mut self) -> TempDir {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.expect("system task");
        }
        let dir = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.data_dir, dir)
    }

    /// The `test` payment provider's webhook secret, as the embedded
    /// system generated it (tests play the provider and sign with it).
    pub fn test_webhook_secret(&self) -> polyscale_host::capabilities::payments::WebhookSecret {
        let file = self.data_dir.path().join("keys").join(polyscale::embedded::TEST_WEBHOOK_SECRET_FILE);
        polyscale_host::capabilities::payments::WebhookSecret::from_file(&file).expect("the test webhook secret")
    }

    pub fn url(&self) -> String {
        format!("http://{}/graphql", self.http)
    }

    /// POSTs a GraphQL request; returns the HTTP status and the JSON body.
    pub async fn post(&self, body: Value) -> (u16, Value) {
        self.post_as(None, body).await
    }

    /// POSTs with an optional bearer token, asking for
    /// `application/graphql-response+json` (request errors are 400s).
    pub async fn post_as(&self, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut request =
            self.client.post(self.url()).header("accept", "application/graphql-response+json").json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("HTTP request");
        let status = response.status().as_u16();
        (status, response.json().await.expect("JSON body"))
    }

    /// Runs a query or mutation that must succeed without errors.
    pub async fn graphql(&self, query: &str, variables: Value) -> Value {
        self.graphql_as(None, query, variables).await
    }

    pub async fn graphql_as(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let (status, body) = self.post_as(token, json!({ "query": query, "variables": variables })).await;
        assert_eq!(status, 200, "status of {query}: {body}");
        assert!(body.get("errors").is_none(), "errors from {query}: {body}");
        body["data"].clone()
    }

    /// Runs a request expected to fail; returns the body.
    pub async fn graphql_err(&self, query: &str, variables: Value) -> Value {
        self.graphql_err_as(None, query, variables).await
    }

    pub async fn graphql_err_as(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let (_, body) = self.post_as(token, json!({ "query": query, "variables": variables })).await;
        assert!(body.get("errors").is_some(), "expected errors from {query}: {body}");
        body
    }

    /// Registers an account; returns the `register` payload.
    pub async fn register(&self, email: &str, password: &str) -> Value {
        let data = self
            .graphql(
                "mutation($input: RegisterInput!) { register(input: $input) { account { id email roles } accessToken refreshToken userErrors { field code message } } }",
                json!({ "input": { "email": email, "password": password, "displayName": email.split('@').next().unwrap() } }),
            )
            .await;
        data["register"].clone()
    }

    /// Signs in; returns the `login` payload.
    pub async fn login(&self, email: &str, password: &str) -> Value {
        self.login_from(None, email, password).await
    }

    /// Signs in from a given client address (X-Forwarded-For).
    pub async fn login_from(&self, address: Option<&str>, email: &str, password: &str) -> Value {
        let mut request = self.client.post(self.url()).json(&json!({
            "query": "mutation($input: LoginInput!) { login(input: $input) { account { id roles } accessToken refreshToken userErrors { field code message } } }",
            "variables": { "input": { "email": email, "password": password } },
        }));
        if let Some(address) = address {
            request = request.header("x-forwarded-for", address);
        }
        let body: Value = request.send().await.unwrap().json().await.unwrap();
        assert!(body.get("errors").is_none(), "{body}");
        body["data"]["login"].clone()
    }

    /// Makes `email` an admin through the operator API.
    pub async fn grant(&self, email: &str, role: &str, store_name: &str) {
        self.admin_plane()
            .await
            .operator()
            .grant_role(polyscale_proto::admin::v1::GrantRoleRequest {
                email: email.into(),
                role: role.into(),
                store_name: store_name.into(),
            })
            .await
            .expect("operator grant");
    }

    /// A token of an admin account, created on first use.
    pub async fn admin_token(&self) -> String {
        self.admin
            .get_or_init(|| async {
                self.register("admin@test.example", PASSWORD).await;
                self.grant("admin@test.example", "admin", "").await;
                self.login("admin@test.example", PASSWORD).await["accessToken"].as_str().unwrap().to_string()
            })
            .await
            .clone()
    }

    /// A new merchant: (account id, token).
    pub async fn new_merchant(&self, email: &str) -> (String, String) {
        let id = self.register(email, PASSWORD).await["account"]["id"].as_str().unwrap().to_string();
        let admin = self.admin_token().await;
        let data = self
            .graphql_as(
                Some(&admin),
                "mutation($id: ID!) { grantMerchant(accountId: $id, storeName: \"Test Store\") { account { roles } userErrors { code } } }",
                json!({ "id": id }),
            )
            .await;
        assert_eq!(data["grantMerchant"]["account"]["roles"], json!(["CUSTOMER", "MERCHANT"]));
        let token = self.login(email, PASSWORD).await["accessToken"].as_str().unwrap().to_string();
        (id, token)
    }

    /// The default merchant of the test: (account id, token).
    pub async fn merchant(&self) -> (String, String) {
        self.merchant.get_or_init(|| self.new_merchant("merchant@test.example")).await.clone()
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.grpc)).unwrap().connect().await.expect("gRPC connects")
    }

    /// The admin plane, as the operator reaches it.
    pub async fn admin_plane(&self) -> polyscale::admin::Admin {
        polyscale::admin::Admin::connect(&self.admin_address, None).await.expect("the admin socket connects")
    }

    pub async fn admin(&self) -> ComponentAdminClient<polyscale::admin::AdminChannel> {
        self.admin_plane().await.components()
    }

    pub async fn products(&self) -> ProductServiceClient<Channel> {
        ProductServiceClient::new(self.channel().await)
    }

    pub async fn deploy(&self, wasm: Vec<u8>) -> admin::ComponentVersion {
        self.admin()
            .await
            .deploy_component(admin::DeployComponentRequest { component: "product".into(), wasm, activate: true })
            .await
            .expect("deploy succeeds")
            .into_inner()
    }

    pub async fn activate(&self, version: &str) -> admin::ComponentVersion {
        self.admin()
            .await
            .activate_version(admin::ActivateVersionRequest { component: "product".into(), version: version.into() })
            .await
            .expect("activation succeeds")
            .into_inner()
    }

    pub async fn active_version(&self) -> String {
        let versions = self
            .admin()
            .await
            .list_versions(admin::ListVersionsRequest { component: "product".into() })
            .await
            .unwrap()
            .into_inner()
            .versions;
        versions.into_iter().find(|v| v.active).expect("an active version").version
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub use polyscale_testkit::wasm::variant;

pub const PRODUCT_FIELDS: &str = "id merchantId name description price { amount currency formatted } stock inStock category { id name } createdAt updatedAt";

/// A password that passes the policy.
pub const PASSWORD: &str = "correct horse battery staple";

/// Creates a product as the default merchant; returns it.
pub async fn create_product(app: &TestApp, input: Value) -> Value {
    let (_, token) = app.merchant().await;
    let data = app
        .graphql_as(
            Some(&token),
            &format!("mutation($input: CreateProductInput!) {{ createProduct(input: $input) {{ product {{ {PRODUCT_FIELDS} }} userErrors {{ field code message }} }} }}"),
            json!({ "input": input }),
        )
        .await;
    let payload = &data["createProduct"];
    assert_eq!(payload["userErrors"], json!([]), "{payload}");
    payload["product"].clone()
}

pub fn product_input(name: &str, amount: i64, stock: i64) -> Value {
    json!({ "name": name, "description": format!("{name} description"), "price": { "amount": amount, "currency": "USD" }, "stock": stock })
}
