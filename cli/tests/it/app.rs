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
    pub client: reqwest::Client,
    pub data_dir: TempDir,
    shutdown: CancellationToken,
    task: Option<JoinHandle<()>>,
    _db: Option<TestDatabase>,
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
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(Options { backend, data_dir: None, product_component: None }).await
    }

    pub async fn spawn_with(options: Options) -> Self {
        let data_dir = options.data_dir.unwrap_or_else(|| tempfile::tempdir().expect("temp dir"));
        let db = match options.backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(fresh_database().await),
        };
        let mut config = EmbeddedConfig::new(data_dir.path());
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.grpc_listen = "127.0.0.1:0".parse().unwrap();
        config.sample_data = false;
        config.product_database_url = db.as_ref().map(|d| d.url.clone());
        config.product_component = options.product_component;
        config.runtime =
            RuntimeConfig { cache_dir: Some(shared_cache()), call_limits: test_limits(), ..RuntimeConfig::default() };
        let system = Embedded::build(config).await.expect("system starts");
        let (http, grpc) = (system.http_addr(), system.grpc_addr());
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let task = tokio::spawn(async move { system.run(token).await.expect("system runs") });
        Self { http, grpc, client: reqwest::Client::new(), data_dir, shutdown, task: Some(task), _db: db }
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

    pub fn url(&self) -> String {
        format!("http://{}/graphql", self.http)
    }

    /// POSTs a GraphQL request; returns the HTTP status and the JSON body.
    pub async fn post(&self, body: Value) -> (u16, Value) {
        let response = self.client.post(self.url()).json(&body).send().await.expect("HTTP request");
        let status = response.status().as_u16();
        (status, response.json().await.expect("JSON body"))
    }

    /// Runs a query or mutation that must succeed without errors.
    pub async fn graphql(&self, query: &str, variables: Value) -> Value {
        let (status, body) = self.post(json!({ "query": query, "variables": variables })).await;
        assert_eq!(status, 200, "status of {query}: {body}");
        assert!(body.get("errors").is_none(), "errors from {query}: {body}");
        body["data"].clone()
    }

    /// Runs a request expected to fail; returns the body.
    pub async fn graphql_err(&self, query: &str, variables: Value) -> Value {
        let (_, body) = self.post(json!({ "query": query, "variables": variables })).await;
        assert!(body.get("errors").is_some(), "expected errors from {query}: {body}");
        body
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.grpc)).unwrap().connect().await.expect("gRPC connects")
    }

    pub async fn admin(&self) -> ComponentAdminClient<Channel> {
        ComponentAdminClient::new(self.channel().await).max_encoding_message_size(usize::MAX)
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

/// The same component with a custom section appended: identical behaviour,
/// a different binary, so a different version.
pub fn variant(wasm: &[u8], tag: &str) -> Vec<u8> {
    fn leb128(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let name = b"polyscale-test-variant";
    let mut payload = Vec::new();
    leb128(name.len(), &mut payload);
    payload.extend_from_slice(name);
    payload.extend_from_slice(tag.as_bytes());
    let mut out = wasm.to_vec();
    out.push(0); // custom section id
    leb128(payload.len(), &mut out);
    out.extend_from_slice(&payload);
    out
}

pub const PRODUCT_FIELDS: &str = "id merchantId name description price { amount currency formatted } stock inStock category { id name } createdAt updatedAt";

/// Creates a product that must succeed; returns it.
pub async fn create_product(app: &TestApp, input: Value) -> Value {
    let data = app
        .graphql(
            &format!("mutation($input: CreateProductInput!) {{ createProduct(input: $input) {{ product {{ {PRODUCT_FIELDS} }} userErrors {{ field code message }} }} }}"),
            json!({ "input": input }),
        )
        .await;
    let payload = &data["createProduct"];
    assert_eq!(payload["userErrors"], json!([]), "{payload}");
    payload["product"].clone()
}

pub fn product_input(name: &str, amount: i64, stock: i64) -> Value {
    json!({ "merchantId": "merchant-1", "name": name, "description": format!("{name} description"), "price": { "amount": amount, "currency": "USD" }, "stock": stock })
}
