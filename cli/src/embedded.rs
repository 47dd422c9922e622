//! A PolyScale process. Embedded mode (the default): the whole system in
//! one process with no setup — SQLite files and the compile cache under
//! the data directory; the domain services listen for gRPC on a loopback
//! port and the gateway calls them there, so the request path is exactly
//! the distributed one.
//!
//! Distributed mode runs the same code in roles: a service host runs some
//! of the services (`polyscale serve --services product`), a gateway runs
//! only the gateway (`polyscale gateway`); [`EmbeddedConfig::services`],
//! [`EmbeddedConfig::gateway`] and [`EmbeddedConfig::service_urls`] say
//! which and where the others are. Every process serves `/metrics`,
//! `/healthz` and `/readyz` on its metrics listener.

use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::sync::Arc;

use axum::http::StatusCode;
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
    self, AccountServiceConfig, HostConfig, HostHealth, OrderServiceConfig, ProductServiceConfig, SearchEngineConfig,
    ServiceConfig, ServiceHost, StartError,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::admin::{Admin, AdminAddress};
use crate::config::{Config, SearchEngine, ServiceName};
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
    /// The services this process runs (all of them in embedded mode).
    pub services: Vec<ServiceName>,
    /// Serve the gateway here.
    pub gateway: bool,
    /// Where the gateway and the order service find the services; an
    /// empty list means this process's own gRPC listener (tests put a
    /// faulty network in between).
    pub service_urls: ServiceUrls,
    /// The token signing key (the account service's); default
    /// `DATA_DIR/keys/token-signing-key.pem`, generated on first start.
    pub token_signing_key_file: Option<PathBuf>,
    /// The token verification key, where the signing key is elsewhere.
    pub token_public_key_file: Option<PathBuf>,
    /// The secret the gateway and the services share; generated per run
    /// when both are in this process.
    pub service_key_file: Option<PathBuf>,
    /// How often the component versions this process runs are compared
    /// with the store.
    pub reconcile_interval: Duration,
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
            services: ServiceName::ALL.to_vec(),
            gateway: true,
            service_urls: ServiceUrls::default(),
            token_signing_key_file: None,
            token_public_key_file: None,
            service_key_file: None,
            reconcile_interval: polyscale_host::database::changes::DEFAULT_RECONCILE_INTERVAL,
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
        let services = &config.services;
        embedded.service_urls = ServiceUrls {
            product: services.product.clone(),
            account: services.account.clone(),
            order: services.order.clone(),
        };
        embedded.reconcile_interval = services.reconcile_interval;
        embedded.token_signing_key_file = config.keys.token_signing_key_file.clone();
        embedded.token_public_key_file = config.keys.token_public_key_file.clone();
        embedded.service_key_file = config.keys.service_key_file.clone();
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

/// Where the services are, for the gateway and the order service: each a
/// list of replicas' gRPC URLs; empty means this process's own listener.
#[derive(Debug, Clone, Default)]
pub struct ServiceUrls {
    pub product: Vec<String>,
    pub account: Vec<String>,
    pub order: Vec<String>,
}

impl ServiceUrls {
    /// Every service at one URL.
    pub fn all(url: &str) -> Self {
        Self { product: vec![url.into()], account: vec![url.into()], order: vec![url.into()] }
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
    #[error("configuration key `{key}`: {message}")]
    Config { key: &'static str, message: String },
}

/// A built, not yet serving, process: a service host, a gateway, or both.
pub struct Embedded {
    host: Option<Served>,
    gateway: Option<(Gateway, TcpListener, Readiness)>,
    metrics: Option<TcpListener>,
    config: EmbeddedConfig,
}

/// A service host with its listeners.
struct Served {
    host: ServiceHost,
    grpc: TcpListener,
    admin: AdminListener,
}

/// What the gateway checks for `/readyz`: each service answers its gRPC
/// health check.
#[derive(Clone)]
struct Readiness {
    services: Vec<(&'static str, tonic_health::pb::health_client::HealthClient<tonic::transport::Channel>)>,
}

impl Readiness {
    async fn check(&self) -> serde_json::Value {
        let checks = self.services.iter().map(|(name, client)| {
            let mut client = client.clone();
            async move {
                let mut request = tonic::Request::new(tonic_health::pb::HealthCheckRequest { service: String::new() });
                request.set_timeout(Duration::from_secs(1));
                let status = match tokio::time::timeout(Duration::from_secs(2), client.check(request)).await {
                    Ok(Ok(answer)) => match answer.into_inner().status() {
                        tonic_health::pb::health_check_response::ServingStatus::Serving => Ok(()),
                        other => Err(format!("{other:?}")),
                    },
                    Ok(Err(status)) => Err(format!("{:?}: {}", status.code(), status.message())),
                    Err(_) => Err("no answer within 2 s".to_string()),
                };
                serde_json::json!({ "service": name, "ok": status.is_ok(), "error": status.err() })
            }
        });
        let services = futures::future::join_all(checks).await;
        let ready = services.iter().all(|s| s["ok"] == true);
        serde_json::json!({ "ready": ready, "services": services })
    }
}

/// Where a service's replicas are (its configured URLs, else this
/// process's own listener).
type UrlOf<'a> = dyn Fn(ServiceName, &[String]) -> Result<Vec<String>, EmbeddedError> + 'a;

/// Whether `list` runs `service`.
fn runs(list: &[ServiceName], service: ServiceName) -> bool {
    list.contains(&service)
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
        let all_in_one = config.gateway && ServiceName::ALL.iter().all(|s| runs(&config.services, *s));
        let metrics = match config.metrics_listen {
            Some(addr) => Some(TcpListener::bind(addr).await.map_err(|source| EmbeddedError::Listen { addr, source })?),
            None => None,
        };
        let grpc = match config.services.is_empty() {
            true => None,
            false => Some(
                TcpListener::bind(config.grpc_listen)
                    .await
                    .map_err(|source| EmbeddedError::Listen { addr: config.grpc_listen, source })?,
            ),
        };
        let grpc_addr = grpc
            .as_ref()
            .map(|l| l.local_addr().map_err(|source| EmbeddedError::Listen { addr: config.grpc_listen, source }))
            .transpose()?;
        // Where each service is: the configured replicas, else here.
        let url_of = |service: ServiceName, urls: &[String]| -> Result<Vec<String>, EmbeddedError> {
            if !urls.is_empty() {
                return Ok(urls.to_vec());
            }
            match grpc_addr {
                Some(addr) if runs(&config.services, service) => Ok(vec![format!("http://{addr}")]),
                _ => Err(EmbeddedError::Config {
                    key: match service {
                        ServiceName::Product => "services.product",
                        ServiceName::Account => "services.account",
                        ServiceName::Order => "services.order",
                    },
                    message: format!("the {} service does not run in this process: give its URLs", service.as_str()),
                }),
            }
        };

        // Keys. The signing key is the account service's; everyone else
        // needs only its public half.
        let keys_dir = config.data_dir.join("keys");
        let signing_key = match (&config.token_signing_key_file, runs(&config.services, ServiceName::Account)) {
            (Some(file), _) => {
                Some(polyscale_auth::KeyPair::from_private_pem(&read_secret(file, "keys.token_signing_key_file")?)?)
            }
            // Generated on first start and kept with the data: tokens stay
            // valid across restarts.
            (None, true) => Some(polyscale_auth::load_or_create_key_pair(&keys_dir.join("token-signing-key.pem"))?),
            (None, false) => None,
        };
        let public_key = match (&config.token_public_key_file, &signing_key) {
            (Some(file), _) => polyscale_auth::load_public_key(file)?,
            (None, Some(keys)) => keys.public_pem().to_string(),
            (None, None) => {
                return Err(EmbeddedError::Config {
                    key: "keys.token_public_key_file",
                    message: "the account service does not run here: give the public key its tokens are signed with"
                        .into(),
                });
            }
        };
        // The gateway and the services share a secret: the services believe
        // the client addresses the gateway vouches for, and no one else's;
        // the order service proves itself to the product service's
        // inventory with it. One process: a fresh one each run.
        let service_key = match &config.service_key_file {
            Some(file) => polyscale_auth::ServiceKey::from_file(file)
                .map_err(|e| EmbeddedError::Config { key: "keys.service_key_file", message: e.to_string() })?,
            None if all_in_one => polyscale_auth::ServiceKey::generate(),
            None => {
                return Err(EmbeddedError::Config {
                    key: "keys.service_key_file",
                    message: "the gateway and the services run apart: they need the secret they share".into(),
                });
            }
        };

        let host = match grpc {
            None => None,
            Some(grpc) => {
                let admin = Self::admin_listener(&config).await?;
                let host = Self::build_host(&config, signing_key, &public_key, &service_key, &url_of).await?;
                Some(Served { host, grpc, admin })
            }
        };

        let gateway = match config.gateway {
            false => None,
            true => {
                let http = TcpListener::bind(config.listen)
                    .await
                    .map_err(|source| EmbeddedError::Listen { addr: config.listen, source })?;
                let mut gateway_config = GatewayConfig::new("");
                gateway_config.product_endpoints = url_of(ServiceName::Product, &config.service_urls.product)?;
                gateway_config.account_endpoints = url_of(ServiceName::Account, &config.service_urls.account)?;
                gateway_config.order_endpoints = url_of(ServiceName::Order, &config.service_urls.order)?;
                let mut readiness = Readiness { services: Vec::new() };
                for (name, urls) in [
                    ("product", &gateway_config.product_endpoints),
                    ("account", &gateway_config.account_endpoints),
                    ("order", &gateway_config.order_endpoints),
                ] {
                    let channel = polyscale_proto::channel::lazy(urls, None)
                        .map_err(|e| EmbeddedError::Gateway(e.to_string()))?;
                    readiness.services.push((name, tonic_health::pb::health_client::HealthClient::new(channel)));
                }
                gateway_config.token_public_key = Some(public_key.clone());
                gateway_config.trusted_proxy_hops = config.trusted_proxy_hops;
                gateway_config.graphiql = config.graphiql;
                gateway_config.limits = config.graphql;
                gateway_config.rate_limits = config.rate_limits;
                gateway_config.server = config.http;
                gateway_config.introspection = config.introspection;
                gateway_config.service_timeout = config.service_timeout;
                gateway_config.max_plugin_upload_bytes = config.max_plugin_upload_bytes;
                gateway_config.service_key = Some(service_key.clone());
                let gateway = Gateway::build(gateway_config).map_err(|e| EmbeddedError::Gateway(e.to_string()))?;
                Some((gateway, http, readiness))
            }
        };
        Ok(Self { host, gateway, metrics, config })
    }

    async fn admin_listener(config: &EmbeddedConfig) -> Result<AdminListener, EmbeddedError> {
        Ok(match &config.admin_listen {
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
        })
    }

    async fn build_host(
        config: &EmbeddedConfig,
        signing_key: Option<polyscale_auth::KeyPair>,
        public_key: &str,
        service_key: &polyscale_auth::ServiceKey,
        url_of: &UrlOf<'_>,
    ) -> Result<ServiceHost, EmbeddedError> {
        let sqlite = |name: &str| format!("sqlite://{}", config.data_dir.join(name).display());
        let mut host_config = HostConfig::new(
            config.runtime.clone(),
            config.components_database_url.clone().unwrap_or_else(|| sqlite("components.db")),
        );
        host_config.connect = config.connect.clone();
        host_config.sql_limits = config.sql_limits;
        host_config.max_component_bytes = config.max_component_bytes;
        host_config.compiled_cache_bytes = config.compiled_cache_bytes;
        host_config.reconcile_interval = config.reconcile_interval;
        host_config.token_public_key = Some(public_key.to_string());
        host_config.gateway_key = Some(service_key.clone());
        if runs(&config.services, ServiceName::Product) {
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
        }
        if runs(&config.services, ServiceName::Account) {
            let keys = signing_key.expect("the account service's process loads the signing key");
            let mut credentials = CredentialsConfig::new(keys);
            credentials.access_ttl = config.access_token_ttl;
            credentials.refresh_ttl = config.refresh_token_ttl;
            credentials.ended_session_retention = config.ended_session_retention;
            credentials.sweep_every = config.sweep_every;
            if let Some(tune) = &config.credentials {
                tune(&mut credentials);
            }
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
        }
        if runs(&config.services, ServiceName::Order) {
            // Payment provider secrets: read (or created) here and handed
            // to the order service's host only.
            let mut payments = PaymentsConfig::default();
            if config.test_payments {
                let secret = match &config.test_payments_webhook_secret_file {
                    Some(file) => WebhookSecret::from_file(file),
                    None => WebhookSecret::load_or_create(&config.data_dir.join("keys").join(TEST_WEBHOOK_SECRET_FILE)),
                }
                .map_err(|e| EmbeddedError::Payments(format!("payments.test.webhook_secret_file: {e}")))?;
                payments.test_webhook_secret = Some(secret);
            }
            host_config.order = Some(OrderServiceConfig {
                service: ServiceConfig {
                    database_url: config.order_database_url.clone().unwrap_or_else(|| sqlite("order.db")),
                    component: components::ORDER.into(),
                },
                // In one process: over the same loopback gRPC port the
                // gateway uses.
                siblings: SiblingEndpoints {
                    product: url_of(ServiceName::Product, &config.service_urls.product)?,
                    account: url_of(ServiceName::Account, &config.service_urls.account)?,
                },
                upkeep_interval: config.order_upkeep_interval,
                reservation_hold: config.reservation_hold,
                payments,
                plugins: config.plugins.clone(),
            });
        }
        Ok(ServiceHost::build(host_config).await?)
    }

    /// The gateway's address.
    ///
    /// # Panics
    /// If this process serves no gateway.
    pub fn http_addr(&self) -> SocketAddr {
        self.gateway.as_ref().expect("this process serves the gateway").1.local_addr().expect("bound listener")
    }

    /// The services' gRPC address.
    ///
    /// # Panics
    /// If this process runs no service.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.host.as_ref().expect("this process runs services").grpc.local_addr().expect("bound listener")
    }

    /// Where `/metrics`, `/healthz` and `/readyz` are served, if anywhere.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|l| l.local_addr().expect("bound listener has an address"))
    }

    /// Where the admin plane listens.
    ///
    /// # Panics
    /// If this process runs no service.
    pub fn admin_address(&self) -> AdminAddress {
        match &self.host.as_ref().expect("this process runs services").admin {
            AdminListener::Unix { path, .. } => AdminAddress::Unix(path.clone()),
            admin => AdminAddress::Tcp(admin.address()),
        }
    }

    /// The service host.
    ///
    /// # Panics
    /// If this process runs no service.
    pub fn host(&self) -> &ServiceHost {
        &self.host.as_ref().expect("this process runs services").host
    }

    /// Serves until `shutdown` is cancelled, then lets requests in flight
    /// finish. Loads the sample catalog first if asked, not done before,
    /// and everything runs here.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), EmbeddedError> {
        let grpc_addr = self.host.as_ref().map(|h| h.grpc.local_addr().expect("bound listener"));
        let admin_address = self.host.as_ref().map(|_| self.admin_address());
        let all_in_one = self.gateway.is_some() && ServiceName::ALL.iter().all(|s| runs(&self.config.services, *s));
        // Metrics and probes on a listener of their own: not for the public.
        let host_health = self.host.as_ref().map(|h| h.host.health());
        let gateway_readiness = self.gateway.as_ref().map(|g| g.2.clone());
        let metrics = self.metrics.map(|listener| {
            let stop = shutdown.clone();
            let routes = probes(host_health, gateway_readiness);
            tokio::spawn(polyscale_gateway::serve(listener, routes, ServerLimits::default(), async move {
                stop.cancelled().await
            }))
        });

        let host =
            self.host.map(|Served { host, grpc, admin }| tokio::spawn(host.run(grpc, admin, shutdown.child_token())));

        if self.config.sample_data
            && all_in_one
            && let (Some(grpc_addr), Some(admin_address)) = (grpc_addr, &admin_address)
        {
            let marker = self.config.data_dir.join(".sample-data-loaded");
            if !marker.exists() {
                let admin = match admin_address {
                    AdminAddress::Unix(_) => Admin::connect(admin_address, None).await,
                    AdminAddress::Tcp(_) => {
                        Admin::connect(admin_address, self.config.admin_token_file.as_deref()).await
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

        let http_result = match self.gateway {
            Some((gateway, http, _)) => {
                let http_shutdown = shutdown.clone();
                let result = gateway.run(http, async move { http_shutdown.cancelled().await }).await;
                shutdown.cancel();
                result
            }
            None => {
                shutdown.cancelled().await;
                Ok(())
            }
        };
        if let Some(metrics) = metrics
            && let Ok(Err(e)) = metrics.await
        {
            tracing::warn!(error = %e, "metrics listener");
        }
        let host_result = match host {
            Some(host) => host.await.map_err(|e| EmbeddedError::Gateway(format!("service task: {e}")))?,
            None => Ok(()),
        };
        http_result.map_err(|source| EmbeddedError::Listen { addr: self.config.listen, source })?;
        host_result?;
        Ok(())
    }
}

/// `/metrics`; `/healthz` (the process is up); `/readyz` (it can serve:
/// its databases answer, the services it calls answer their health
/// checks), 200 or 503 with the details and the component versions it
/// runs as JSON.
fn probes(host: Option<HostHealth>, gateway: Option<Readiness>) -> axum::Router {
    let handle = telemetry::metrics();
    axum::Router::new()
        .route("/metrics", get(move || std::future::ready(handle.render())))
        .route("/healthz", get(|| std::future::ready("ok\n")))
        .route(
            "/readyz",
            get(move || {
                let (host, gateway) = (host.clone(), gateway.clone());
                async move {
                    let mut body = serde_json::Map::new();
                    let mut ready = true;
                    if let Some(host) = host {
                        let report = host.check().await;
                        ready &= report.ready;
                        body.insert("host".into(), serde_json::to_value(&report).unwrap_or_default());
                    }
                    if let Some(gateway) = gateway {
                        let report = gateway.check().await;
                        ready &= report["ready"] == true;
                        body.insert("gateway".into(), report);
                    }
                    body.insert("ready".into(), ready.into());
                    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
                    (status, axum::Json(serde_json::Value::Object(body)))
                }
            }),
        )
}

/// A secret file's content, with an error naming its key.
fn read_secret(path: &std::path::Path, key: &'static str) -> Result<String, EmbeddedError> {
    std::fs::read_to_string(path)
        .map_err(|e| EmbeddedError::Config { key, message: format!("cannot read {}: {e}", path.display()) })
}
