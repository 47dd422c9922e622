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
use std::time::Duration;

use polyscale_gateway::{Gateway, GatewayConfig, GraphqlLimits, RateLimits, ServerLimits};
use polyscale_host::admin_plane::{AdminListenError, AdminListener, OperatorToken};
use polyscale_host::capabilities::credentials::{self, CredentialsConfig};
use polyscale_host::capabilities::payments::{PaymentsConfig, WebhookSecret};
use polyscale_host::capabilities::siblings::SiblingEndpoints;
use polyscale_host::components;
use polyscale_host::database::{ConnectOptions, SqlLimits};
use polyscale_host::runtime::{CallLimits, RuntimeConfig};
use polyscale_host::server::{
    self, AccountServiceConfig, HostConfig, OrderServiceConfig, ProductServiceConfig, SearchEngineConfig,
    ServiceConfig, ServiceHost, StartError,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::admin::{Admin, AdminAddress};
use crate::config::{Config, SearchEngine};
use crate::{sample, telemetry};

/// The test provider's webhook secret, under `DATA_DIR/keys`, when no file
/// is configured.
pub const TEST_WEBHOOK_SECRET_FILE: &str = "payments-test-webhook-secret";

/// Adjusts the credentials configuration before the system starts.
pub type TuneCredentials = Box<dyn Fn(&mut CredentialsConfig) + Send + Sync>;

pub struct EmbeddedConfig {
    pub data_dir: PathBuf,
    /// Public HTTP (GraphQL) address; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Internal gRPC address of the services (the data plane).
    pub grpc_listen: SocketAddr,
    /// Prometheus `/metrics`, apart from the public listener; `None`
    /// serves no metrics.
    pub metrics_listen: Option<SocketAddr>,
    /// The admin plane; default the socket `DATA_DIR/admin.sock`.
    pub admin_listen: Option<AdminAddress>,
    /// The operator token TCP admin calls must present.
    pub admin_token_file: Option<PathBuf>,
    /// The product database; defaults to `sqlite://DATA_DIR/product.db`.
    pub product_database_url: Option<String>,
    /// The account database; defaults to `sqlite://DATA_DIR/account.db`.
    pub account_database_url: Option<String>,
    /// The credentials store; defaults to `sqlite://DATA_DIR/credentials.db`.
    pub credentials_database_url: Option<String>,
    /// The order database; defaults to `sqlite://DATA_DIR/order.db`.
    pub order_database_url: Option<String>,
    /// How often expired stock reservations are released.
    pub reservation_sweep_interval: Duration,
    /// How often the order upkeep runs.
    pub order_upkeep_interval: Duration,
    /// The longest a placement's stock reservation holds.
    pub reservation_hold: Duration,
    /// Run the `test` payment provider.
    pub test_payments: bool,
    /// Merchant plugins: limits, pool, upload cap.
    pub plugins: polyscale_host::plugins::PluginConfig,
    /// Its webhook signing secret; default
    /// `DATA_DIR/keys/payments-test-webhook-secret`, created on first start.
    pub test_payments_webhook_secret_file: Option<PathBuf>,
    /// Where the order service finds its siblings; default this process's
    /// gRPC port (tests put a faulty network in between).
    pub order_siblings: Option<SiblingEndpoints>,
    /// Where the gateway finds the services; default this process's gRPC
    /// port (tests count the calls in between).
    pub gateway_services: Option<String>,
    /// Tune the credentials capability (tests shorten throttling, say).
    pub credentials: Option<TuneCredentials>,
    /// Reverse proxies in front of the gateway that append to
    /// `X-Forwarded-For` (0: the header is ignored).
    pub trusted_proxy_hops: usize,
    /// Per client address, on sign-in and search.
    pub rate_limits: RateLimits,
    /// Connections, header reads and request time of the public listener.
    pub http: ServerLimits,
    /// Whether the gateway answers introspection.
    pub introspection: bool,
    /// Serve GraphiQL to browsers at `/graphql`.
    pub graphiql: bool,
    /// The product search engine; defaults to Tantivy in `DATA_DIR/search`.
    pub search: Option<SearchEngineConfig>,
    /// Load the sample catalog into an empty system on first start.
    pub sample_data: bool,
    pub runtime: RuntimeConfig,
    /// The product component to run on first start (default: built in).
    pub product_component: Option<Arc<[u8]>>,
    /// The component store; defaults to `sqlite://DATA_DIR/components.db`.
    pub components_database_url: Option<String>,
    pub max_component_bytes: usize,
    pub compiled_cache_bytes: u64,
    pub sql_limits: SqlLimits,
    pub connect: ConnectOptions,
    pub graphql: GraphqlLimits,
    /// Largest plugin component the gateway takes in an upload.
    pub max_plugin_upload_bytes: usize,
    /// Deadline of each gateway call to the services.
    pub service_timeout: Duration,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub ended_session_retention: Duration,
    pub sweep_every: Duration,
}

impl EmbeddedConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        let mut config = Self {
            runtime: RuntimeConfig { cache_dir: Some(data_dir.join("cache")), ..RuntimeConfig::default() },
            data_dir,
            listen: ([127, 0, 0, 1], 8080).into(),
            grpc_listen: ([127, 0, 0, 1], 50051).into(),
            metrics_listen: Some(([127, 0, 0, 1], 9464).into()),
            admin_listen: None,
            admin_token_file: None,
            product_database_url: None,
            account_database_url: None,
            credentials_database_url: None,
            order_database_url: None,
            reservation_sweep_interval: server::DEFAULT_RESERVATION_SWEEP_INTERVAL,
            order_upkeep_interval: server::DEFAULT_ORDER_UPKEEP_INTERVAL,
            reservation_hold: server::DEFAULT_RESERVATION_HOLD,
            test_payments: false,
            plugins: polyscale_host::plugins::PluginConfig {
                cache_dir: None,
                ..polyscale_host::plugins::PluginConfig::default()
            },
            test_payments_webhook_secret_file: None,
            order_siblings: None,
            gateway_services: None,
            credentials: None,
            trusted_proxy_hops: 0,
            rate_limits: RateLimits::default(),
            http: ServerLimits::default(),
            introspection: true,
            graphiql: true,
            search: None,
            sample_data: true,
            product_component: None,
            components_database_url: None,
            max_component_bytes: server::DEFAULT_MAX_COMPONENT_BYTES,
            compiled_cache_bytes: server::DEFAULT_COMPILED_CACHE_BYTES,
            sql_limits: SqlLimits::default(),
            connect: ConnectOptions::default(),
            graphql: GraphqlLimits::default(),
            max_plugin_upload_bytes: polyscale_gateway::MIN_PLUGIN_UPLOAD_BYTES,
            service_timeout: GatewayConfig::new("").service_timeout,
            access_token_ttl: polyscale_auth::DEFAULT_ACCESS_TTL,
            refresh_token_ttl: credentials::DEFAULT_REFRESH_TTL,
            ended_session_retention: credentials::DEFAULT_ENDED_SESSION_RETENTION,
            sweep_every: credentials::DEFAULT_SWEEP_EVERY,
        };
        config.plugins.cache_dir = config.runtime.cache_dir.clone();
        config
    }

    /// The embedded system the configuration describes.
    pub fn from_config(config: &Config) -> Self {
        let mut embedded = Self::new(&config.data_dir);
        let r = &config.runtime;
        embedded.runtime = RuntimeConfig {
            max_concurrent_instances: r.max_concurrent_instances,
            max_concurrent_calls_per_slot: r.max_concurrent_calls_per_slot,
            pool_max_memory_bytes: r.pool_max_memory_bytes,
            keep_resident_bytes: r.keep_resident_bytes,
            cache_dir: r.disk_cache.then(|| config.data_dir.join("cache")),
            call_limits: CallLimits {
                timeout: r.call_timeout,
                max_memory_bytes: r.call_max_memory_bytes,
                max_table_elements: r.call_max_table_elements,
                fuel: None,
            },
            ..RuntimeConfig::default()
        };
        embedded.plugins = config.plugins.host_config(r.disk_cache.then(|| config.data_dir.join("cache")));
        embedded.listen = config.listen;
        embedded.grpc_listen = config.grpc_listen;
        embedded.metrics_listen = config.metrics_listen;
        // Checked by `Config::validate`.
        embedded.admin_listen = config.admin.listen.as_deref().and_then(|a| AdminAddress::parse(a).ok());
        embedded.admin_token_file = config.admin.token_file.clone();
        embedded.sample_data = config.sample_data;
        embedded.components_database_url = config.components.database_url.clone();
        embedded.max_component_bytes = config.components.max_upload_bytes;
        embedded.compiled_cache_bytes = config.components.compiled_cache_bytes;
        let sql = &config.sql;
        embedded.sql_limits = SqlLimits {
            max_statement_bytes: sql.max_statement_bytes,
            max_params: sql.max_params,
            max_rows: sql.max_rows,
            max_result_bytes: sql.max_result_bytes,
        };
        embedded.connect = ConnectOptions {
            max_connections: sql.max_connections,
            acquire_timeout: sql.acquire_timeout,
            // No statement outlives the call it runs for.
            statement_timeout: r.call_timeout,
            ..ConnectOptions::default()
        };
        embedded.product_database_url = config.product.database_url.clone();
        embedded.reservation_sweep_interval = config.product.reservation_sweep_interval;
        embedded.order_database_url = config.order.database_url.clone();
        embedded.order_upkeep_interval = config.order.upkeep_interval;
        embedded.reservation_hold = config.order.reservation_hold;
        embedded.test_payments = config.payments.test.enabled;
        embedded.test_payments_webhook_secret_file = config.payments.test.webhook_secret_file.clone();
        let search = &config.product.search;
        embedded.search = Some(match config.search_engine() {
            SearchEngine::Elasticsearch => SearchEngineConfig::Elasticsearch {
                url: search.url.clone().unwrap_or_default(),
                index_prefix: search.index_prefix.clone(),
            },
            SearchEngine::Tantivy => SearchEngineConfig::Tantivy {
                dir: search.dir.clone().unwrap_or_else(|| config.data_dir.join("search")),
            },
        });
        let account = &config.account;
        embedded.account_database_url = account.database_url.clone();
        embedded.credentials_database_url = account.credentials_database_url.clone();
        embedded.access_token_ttl = account.access_token_ttl;
        embedded.refresh_token_ttl = account.refresh_token_ttl;
        embedded.ended_session_retention = account.ended_session_retention;
        embedded.sweep_every = account.sweep_every;
        let gateway = &config.gateway;
        embedded.trusted_proxy_hops = gateway.trusted_proxy_hops();
        embedded.rate_limits = gateway.rate_limit.limits();
        embedded.http = ServerLimits {
            header_read_timeout: gateway.header_read_timeout,
            request_timeout: gateway.request_timeout,
            max_connections: gateway.max_connections,
            ..ServerLimits::default()
        };
        embedded.introspection = gateway.introspection;
        embedded.graphiql = gateway.graphiql;
        embedded.service_timeout = gateway.service_timeout;
        embedded.max_plugin_upload_bytes = gateway.max_plugin_upload_bytes;
        embedded.graphql = GraphqlLimits {
            max_body_bytes: gateway.max_body_bytes,
            max_batch: gateway.max_batch,
            max_depth: gateway.max_depth,
            max_complexity: gateway.max_complexity,
            max_aliases: gateway.max_aliases,
            max_page_size: gateway.max_page_size,
        };
        embedded
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
    #[error(transparent)]
    Admin(#[from] AdminListenError),
    #[error("admin plane: {0}")]
    AdminAddress(String),
    #[error("payments: {0}")]
    Payments(String),
}

/// A built, not yet serving, embedded system.
pub struct Embedded {
    host: ServiceHost,
    gateway: Gateway,
    http: TcpListener,
    grpc: TcpListener,
    metrics: Option<TcpListener>,
    admin: AdminListener,
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
        let admin = match &config.admin_listen {
            None => AdminListener::unix(&config.data_dir.join(crate::admin::SOCKET_NAME))?,
            Some(AdminAddress::Unix(path)) => AdminListener::unix(path)?,
            Some(AdminAddress::Tcp(url)) => {
                let file = config
                    .admin_token_file
                    .as_deref()
                    .ok_or_else(|| EmbeddedError::AdminAddress("a TCP admin listener needs admin.token_file".into()))?;
                let addr = url.trim_start_matches("http://").trim_start_matches("https://").trim_end_matches('/');
                AdminListener::tcp(addr, OperatorToken::from_file(file)?).await?
            }
        };
        let grpc = TcpListener::bind(config.grpc_listen)
            .await
            .map_err(|source| EmbeddedError::Listen { addr: config.grpc_listen, source })?;
        let http = TcpListener::bind(config.listen)
            .await
            .map_err(|source| EmbeddedError::Listen { addr: config.listen, source })?;
        let metrics = match config.metrics_listen {
            Some(addr) => Some(TcpListener::bind(addr).await.map_err(|source| EmbeddedError::Listen { addr, source })?),
            None => None,
        };
        let grpc_addr =
            grpc.local_addr().map_err(|source| EmbeddedError::Listen { addr: config.grpc_listen, source })?;

        let sqlite = |name: &str| format!("sqlite://{}", config.data_dir.join(name).display());
        // Generated on first start and kept with the data: tokens stay
        // valid across restarts.
        let keys =
            polyscale_auth::load_or_create_key_pair(&config.data_dir.join("keys").join("token-signing-key.pem"))?;
        let mut credentials = CredentialsConfig::new(keys.clone());
        credentials.access_ttl = config.access_token_ttl;
        credentials.refresh_ttl = config.refresh_token_ttl;
        credentials.ended_session_retention = config.ended_session_retention;
        credentials.sweep_every = config.sweep_every;
        if let Some(tune) = &config.credentials {
            tune(&mut credentials);
        }
        let mut host_config = HostConfig::new(
            config.runtime.clone(),
            config.components_database_url.clone().unwrap_or_else(|| sqlite("components.db")),
        );
        host_config.connect = config.connect.clone();
        host_config.sql_limits = config.sql_limits;
        host_config.max_component_bytes = config.max_component_bytes;
        host_config.compiled_cache_bytes = config.compiled_cache_bytes;
        host_config.product = Some(ProductServiceConfig {
            service: ServiceConfig {
                database_url: config.product_database_url.clone().unwrap_or_else(|| sqlite("product.db")),
                component: config.product_component.clone().unwrap_or_else(|| components::PRODUCT.into()),
            },
            search: config
                .search
                .clone()
                .unwrap_or_else(|| SearchEngineConfig::Tantivy { dir: config.data_dir.join("search") }),
            reservation_sweep_interval: config.reservation_sweep_interval,
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
        // Payment provider secrets: read (or created) here and handed to
        // the order service's host only.
        let mut payments = PaymentsConfig::default();
        if config.test_payments {
            let secret = match &config.test_payments_webhook_secret_file {
                Some(file) => WebhookSecret::from_file(file),
                None => WebhookSecret::load_or_create(&config.data_dir.join("keys").join(TEST_WEBHOOK_SECRET_FILE)),
            }
            .map_err(|e| EmbeddedError::Payments(format!("payments.test.webhook_secret_file: {e}")))?;
            payments.test_webhook_secret = Some(secret);
        }
        // The order service calls its siblings in this process, over the
        // same loopback gRPC port the gateway uses.
        host_config.order = Some(OrderServiceConfig {
            service: ServiceConfig {
                database_url: config.order_database_url.clone().unwrap_or_else(|| sqlite("order.db")),
                component: components::ORDER.into(),
            },
            siblings: config.order_siblings.clone().unwrap_or_else(|| SiblingEndpoints {
                product: format!("http://{grpc_addr}"),
                account: format!("http://{grpc_addr}"),
            }),
            upkeep_interval: config.order_upkeep_interval,
            reservation_hold: config.reservation_hold,
            payments,
            plugins: config.plugins.clone(),
        });
        // The gateway and the services share a secret for this process's
        // life: the services believe the client addresses the gateway
        // vouches for, and no one else's; the order service proves itself
        // to the product service's inventory with it.
        let service_key = polyscale_auth::ServiceKey::generate();
        host_config.gateway_key = Some(service_key.clone());
        let host = ServiceHost::build(host_config).await?;

        let mut gateway_config =
            GatewayConfig::new(config.gateway_services.clone().unwrap_or_else(|| format!("http://{grpc_addr}")));
        gateway_config.token_public_key = Some(keys.public_pem().to_string());
        gateway_config.trusted_proxy_hops = config.trusted_proxy_hops;
        gateway_config.graphiql = config.graphiql;
        gateway_config.limits = config.graphql;
        gateway_config.rate_limits = config.rate_limits;
        gateway_config.server = config.http;
        gateway_config.introspection = config.introspection;
        gateway_config.service_timeout = config.service_timeout;
        gateway_config.max_plugin_upload_bytes = config.max_plugin_upload_bytes;
        gateway_config.service_key = Some(service_key);
        let gateway = Gateway::build(gateway_config).map_err(|e| EmbeddedError::Gateway(e.to_string()))?;
        Ok(Self { host, gateway, http, grpc, metrics, admin, config })
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http.local_addr().expect("bound listener has an address")
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc.local_addr().expect("bound listener has an address")
    }

    /// Where `/metrics` is served, if anywhere.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|l| l.local_addr().expect("bound listener has an address"))
    }

    /// Where the admin plane listens.
    pub fn admin_address(&self) -> AdminAddress {
        match &self.admin {
            AdminListener::Unix { path, .. } => AdminAddress::Unix(path.clone()),
            admin => AdminAddress::Tcp(admin.address()),
        }
    }

    pub fn host(&self) -> &ServiceHost {
        &self.host
    }

    /// Serves until `shutdown` is cancelled. Loads the sample catalog first
    /// if asked and not done before.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), EmbeddedError> {
        let grpc_addr = self.grpc_addr();
        let admin_address = self.admin_address();
        let gateway = self.gateway;
        // Metrics on a listener of their own: not for the public.
        let metrics = self.metrics.map(|listener| {
            let handle = telemetry::metrics();
            let routes = axum::Router::new().route("/metrics", get(move || std::future::ready(handle.render())));
            let stop = shutdown.clone();
            tokio::spawn(polyscale_gateway::serve(listener, routes, ServerLimits::default(), async move {
                stop.cancelled().await
            }))
        });

        let host = tokio::spawn(self.host.run(self.grpc, self.admin, shutdown.child_token()));

        if self.config.sample_data {
            let marker = self.config.data_dir.join(".sample-data-loaded");
            if !marker.exists() {
                let admin = match &admin_address {
                    AdminAddress::Unix(_) => Admin::connect(&admin_address, None).await,
                    AdminAddress::Tcp(_) => {
                        Admin::connect(&admin_address, self.config.admin_token_file.as_deref()).await
                    }
                }
                .map_err(|e| EmbeddedError::Sample(e.to_string()))?;
                let summary = sample::load(
                    &format!("http://{grpc_addr}"),
                    &admin,
                    &sample::SampleOptions::default(),
                    &self.config.data_dir,
                )
                .await
                .map_err(|e| EmbeddedError::Sample(e.to_string()))?;
                std::fs::write(&marker, format!("{summary}\n"))
                    .map_err(|source| EmbeddedError::DataDir { path: marker.clone(), source })?;
                tracing::info!("{summary}");
            }
            let accounts = self.config.data_dir.join(sample::ACCOUNTS_FILE);
            if accounts.exists() {
                // The passwords stay in that file (0600); logs are read by
                // more people than the operator.
                tracing::info!("sample accounts (emails and passwords) are in {}", accounts.display());
            }
        }

        let http_shutdown = shutdown.clone();
        let http_result = gateway.run(self.http, async move { http_shutdown.cancelled().await }).await;
        shutdown.cancel();
        if let Some(metrics) = metrics
            && let Ok(Err(e)) = metrics.await
        {
            tracing::warn!(error = %e, "metrics listener");
        }
        let host_result = host.await.map_err(|e| EmbeddedError::Gateway(format!("service task: {e}")))?;
        http_result.map_err(|source| EmbeddedError::Listen { addr: self.config.listen, source })?;
        host_result?;
        Ok(())
    }
}
