//! Embedded mode: the whole system in one process with no setup.
//!
//! SQLite files and the compile cache live under the data directory; the
//! domain services listen for gRPC on a loopback port and the gateway calls
//! them there, so the request path is exactly the distributed one.

use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::sync::Arc;

use axum::routing::get;
use polyscale_gateway::{Gateway, GatewayConfig};
use polyscale_host::capabilities::credentials::CredentialsConfig;
use polyscale_host::components;
use polyscale_host::runtime::RuntimeConfig;
use polyscale_host::server::{
    AccountServiceConfig, HostConfig, ProductServiceConfig, SearchEngineConfig, ServiceConfig, ServiceHost, StartError,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{sample, telemetry};

/// Adjusts the credentials configuration before the system starts.
pub type TuneCredentials = Box<dyn Fn(&mut CredentialsConfig) + Send + Sync>;

pub struct EmbeddedConfig {
    pub data_dir: PathBuf,
    /// Public HTTP (GraphQL) address; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Internal gRPC address of the services (and `ComponentAdmin`).
    pub grpc_listen: SocketAddr,
    /// The product database; defaults to `sqlite://DATA_DIR/product.db`.
    pub product_database_url: Option<String>,
    /// The account database; defaults to `sqlite://DATA_DIR/account.db`.
    pub account_database_url: Option<String>,
    /// The credentials store; defaults to `sqlite://DATA_DIR/credentials.db`.
    pub credentials_database_url: Option<String>,
    /// Tune the credentials capability (tests shorten throttling, say).
    pub credentials: Option<TuneCredentials>,
    /// Take client addresses from `X-Forwarded-For`.
    pub trust_forwarded_for: bool,
    /// The product search engine; defaults to Tantivy in `DATA_DIR/search`.
    pub search: Option<SearchEngineConfig>,
    /// Load the sample catalog into an empty system on first start.
    pub sample_data: bool,
    pub runtime: RuntimeConfig,
    /// The product component to run on first start (default: built in).
    pub product_component: Option<Arc<[u8]>>,
}

impl EmbeddedConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        Self {
            runtime: RuntimeConfig { cache_dir: Some(data_dir.join("cache")), ..RuntimeConfig::default() },
            data_dir,
            listen: ([127, 0, 0, 1], 8080).into(),
            grpc_listen: ([127, 0, 0, 1], 50051).into(),
            product_database_url: None,
            account_database_url: None,
            credentials_database_url: None,
            credentials: None,
            trust_forwarded_for: false,
            search: None,
            sample_data: true,
            product_component: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error("data directory {path}: {source}")]
    DataDir { path: PathBuf, source: std::io::Error },
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Host(#[from] StartError),
    #[error("gateway: {0}")]
    Gateway(String),
    #[error("loading sample data: {0}")]
    Sample(String),
    #[error("token signing key: {0}")]
    Key(#[from] polyscale_auth::KeyError),
}

/// A built, not yet serving, embedded system.
pub struct Embedded {
    host: ServiceHost,
    gateway: Gateway,
    http: TcpListener,
    grpc: TcpListener,
    config: EmbeddedConfig,
}

impl Embedded {
    pub async fn build(config: EmbeddedConfig) -> Result<Self, EmbeddedError> {
        if !config.data_dir.exists() {
            // It will hold the signing key and the password hashes.
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&config.data_dir)
                .map_err(|source| EmbeddedError::DataDir { path: config.data_dir.clone(), source })?;
        }
        let grpc = TcpListener::bind(config.grpc_listen)
            .await
            .map_err(|source| EmbeddedError::Listen { addr: config.grpc_listen, source })?;
        let http = TcpListener::bind(config.listen)
            .await
            .map_err(|source| EmbeddedError::Listen { addr: config.listen, source })?;
        let grpc_addr =
            grpc.local_addr().map_err(|source| EmbeddedError::Listen { addr: config.grpc_listen, source })?;

        let sqlite = |name: &str| format!("sqlite://{}", config.data_dir.join(name).display());
        // Generated on first start and kept with the data: tokens stay
        // valid across restarts.
        let keys =
            polyscale_auth::load_or_create_key_pair(&config.data_dir.join("keys").join("token-signing-key.pem"))?;
        let mut credentials = CredentialsConfig::new(keys.clone());
        if let Some(tune) = &config.credentials {
            tune(&mut credentials);
        }
        let mut host_config = HostConfig::new(config.runtime.clone(), sqlite("components.db"));
        host_config.product = Some(ProductServiceConfig {
            service: ServiceConfig {
                database_url: config.product_database_url.clone().unwrap_or_else(|| sqlite("product.db")),
                component: config.product_component.clone().unwrap_or_else(|| components::PRODUCT.into()),
            },
            search: config
                .search
                .clone()
                .unwrap_or_else(|| SearchEngineConfig::Tantivy { dir: config.data_dir.join("search") }),
        });
        host_config.account = Some(AccountServiceConfig {
            service: ServiceConfig {
                database_url: config.account_database_url.clone().unwrap_or_else(|| sqlite("account.db")),
                component: components::ACCOUNT.into(),
            },
            credentials_database_url: config
                .credentials_database_url
                .clone()
                .unwrap_or_else(|| sqlite("credentials.db")),
            credentials,
        });
        let host = ServiceHost::build(host_config).await?;

        let mut gateway_config = GatewayConfig::new(format!("http://{grpc_addr}"));
        gateway_config.token_public_key = Some(keys.public_pem().to_string());
        gateway_config.trust_forwarded_for = config.trust_forwarded_for;
        let gateway = Gateway::build(gateway_config).map_err(|e| EmbeddedError::Gateway(e.to_string()))?;
        Ok(Self { host, gateway, http, grpc, config })
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http.local_addr().expect("bound listener has an address")
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc.local_addr().expect("bound listener has an address")
    }

    pub fn host(&self) -> &ServiceHost {
        &self.host
    }

    /// Serves until `shutdown` is cancelled. Loads the sample catalog first
    /// if asked and not done before.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), EmbeddedError> {
        let grpc_addr = self.grpc_addr();
        let metrics = telemetry::metrics();
        let gateway = self
            .gateway
            .merge(axum::Router::new().route("/metrics", get(move || std::future::ready(metrics.render()))));

        let host_shutdown = shutdown.clone();
        let host = tokio::spawn(self.host.run(self.grpc, async move { host_shutdown.cancelled().await }));

        if self.config.sample_data {
            let marker = self.config.data_dir.join(".sample-data-loaded");
            if !marker.exists() {
                let summary = sample::load(
                    &format!("http://{grpc_addr}"),
                    &sample::SampleOptions::default(),
                    &self.config.data_dir,
                )
                .await
                .map_err(|e| EmbeddedError::Sample(e.to_string()))?;
                std::fs::write(&marker, format!("{summary}\n"))
                    .map_err(|source| EmbeddedError::DataDir { path: marker.clone(), source })?;
                tracing::info!("{summary}");
            }
            if let Ok(accounts) = std::fs::read_to_string(self.config.data_dir.join(sample::ACCOUNTS_FILE)) {
                tracing::info!("sample accounts (email / password):\n{accounts}");
            }
        }

        let http_shutdown = shutdown.clone();
        let http_result = gateway.run(self.http, async move { http_shutdown.cancelled().await }).await;
        shutdown.cancel();
        let host_result = host.await.map_err(|e| EmbeddedError::Gateway(format!("service task: {e}")))?;
        http_result.map_err(|source| EmbeddedError::Listen { addr: self.config.listen, source })?;
        host_result?;
        Ok(())
    }
}
