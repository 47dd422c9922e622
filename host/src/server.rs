//! A service host process: `ServiceHost::build(config)` opens the
//! component store and builds the configured service modules;
//! `run(listener, admin, shutdown)` serves the data plane (the modules'
//! services, health, reflection) and, on its own listener, the admin plane
//! (`ComponentAdmin`, `Operator`, `SearchAdmin`; see [`crate::admin_plane`])
//! until shutdown.

use std::sync::Arc;
use std::time::Duration;

use polyscale_auth::{ServiceKey, ServiceTokenVerifier, Verifier};
use polyscale_proto::admin::v1::component_admin_server::ComponentAdminServer;
use polyscale_proto::admin::v1::search_admin_server::SearchAdminServer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tokio_util::sync::CancellationToken;

use crate::admin_plane::{AdminAuth, AdminListener};
use crate::capabilities::credentials::{CredentialsConfig, CredentialsSetupError};
use crate::capabilities::search::SearchBackend;
use crate::capabilities::search::elasticsearch::ElasticsearchBackend;
use crate::capabilities::search::tantivy::TantivyBackend;
use crate::database::changes::DEFAULT_RECONCILE_INTERVAL;
use crate::database::migrations::MigrationError;
use crate::database::{ConnectError, ConnectOptions, Database, SqlLimits, redact_url};
use crate::registry::{ComponentStore, DeployError, Deployable, KindLimits, Registry, ServiceSlot};
use crate::runtime::{Runtime, RuntimeConfig};
use crate::services::Authenticator;
use crate::services::account::AccountModule;
use crate::services::admin::AdminApi;
use crate::services::module::{Planes, ServiceModule};
use crate::services::order::OrderModule;
use crate::services::product::ProductModule;

/// Default upload cap for a component binary. Interpreted languages ship
/// their interpreter inside (Python ~18 MB, JavaScript ~12 MB).
pub const DEFAULT_MAX_COMPONENT_BYTES: usize = 64 << 20;

/// Default memory budget for compiled components.
pub const DEFAULT_COMPILED_CACHE_BYTES: u64 = 512 << 20;

#[derive(Debug, Clone)]
pub struct HostConfig {
    pub runtime: RuntimeConfig,
    pub connect: ConnectOptions,
    pub sql_limits: SqlLimits,
    pub max_component_bytes: usize,
    /// The component store: every slot's versions and active pointer.
    pub components_database_url: String,
    /// Memory for compiled components, shared by every slot; least
    /// recently used versions are evicted past it.
    pub compiled_cache_bytes: u64,
    /// Run the product service here.
    pub product: Option<ProductServiceConfig>,
    /// Run the account service here.
    pub account: Option<AccountServiceConfig>,
    /// Run the order service here.
    pub order: Option<OrderServiceConfig>,
    /// The public key (PEM) access tokens are verified with. Defaults to
    /// the account service's own key when it runs here; without either,
    /// no token is accepted.
    pub token_public_key: Option<String>,
    /// The secret shared by the gateway and the services: calls carrying
    /// the gateway's service token have their client address believed
    /// (without it, no caller's address header is); the order service
    /// signs its calls to the product service's `InventoryService` with it.
    pub gateway_key: Option<ServiceKey>,
    /// How often this process compares the slots it runs with the
    /// component store (other replicas' activations are also announced at
    /// once on PostgreSQL; this heals a missed announcement).
    pub reconcile_interval: Duration,
}

impl HostConfig {
    pub fn new(runtime: RuntimeConfig, components_database_url: impl Into<String>) -> Self {
        Self {
            runtime,
            components_database_url: components_database_url.into(),
            compiled_cache_bytes: DEFAULT_COMPILED_CACHE_BYTES,
            connect: ConnectOptions::default(),
            sql_limits: SqlLimits::default(),
            max_component_bytes: DEFAULT_MAX_COMPONENT_BYTES,
            product: None,
            account: None,
            order: None,
            token_public_key: None,
            gateway_key: None,
            reconcile_interval: DEFAULT_RECONCILE_INTERVAL,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// `sqlite://PATH` or `postgres://...`: the service's own database.
    pub database_url: String,
    /// The component version to run on first start (usually the one built
    /// into the binary).
    pub component: Arc<[u8]>,
}

#[derive(Debug, Clone)]
pub struct ProductServiceConfig {
    pub service: ServiceConfig,
    pub search: SearchEngineConfig,
    /// How often stock reservations past their expiry are released.
    pub reservation_sweep_interval: std::time::Duration,
}

/// Default interval of the reservation sweeper.
pub const DEFAULT_RESERVATION_SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct OrderServiceConfig {
    pub service: ServiceConfig,
    /// Where the product and account services are (gRPC URLs).
    pub siblings: crate::capabilities::siblings::SiblingEndpoints,
    /// How often half-done placements are finished and old idempotency
    /// keys forgotten.
    pub upkeep_interval: std::time::Duration,
    /// The longest a placement's stock reservation holds before it expires
    /// (if the placement never finishes).
    pub reservation_hold: std::time::Duration,
    /// The payment providers and their secrets (`manual` always).
    pub payments: crate::capabilities::payments::PaymentsConfig,
    /// The merchant plugins this service runs: limits, pool, upload cap.
    pub plugins: crate::plugins::PluginConfig,
}

/// Default [`OrderServiceConfig::reservation_hold`].
pub const DEFAULT_RESERVATION_HOLD: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Default interval of the order upkeep.
pub const DEFAULT_ORDER_UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);

/// Where the product service keeps its search index.
#[derive(Clone)]
pub enum SearchEngineConfig {
    /// Embedded: Tantivy indexes under this directory.
    Tantivy { dir: std::path::PathBuf },
    /// Elasticsearch at `url`; indexes are named `index_prefix + name`.
    Elasticsearch { url: String, index_prefix: String },
    /// A backend built by the caller (tests wrap a real one this way).
    Backend(Arc<dyn SearchBackend>),
}

impl std::fmt::Debug for SearchEngineConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tantivy { dir } => write!(f, "Tantivy({})", dir.display()),
            Self::Elasticsearch { url, index_prefix } => {
                write!(f, "Elasticsearch({}, {index_prefix})", redact_url(url))
            }
            Self::Backend(b) => write!(f, "Backend({})", b.engine()),
        }
    }
}

impl SearchEngineConfig {
    pub(crate) fn backend(&self) -> Result<Arc<dyn SearchBackend>, StartError> {
        Ok(match self {
            Self::Tantivy { dir } => Arc::new(TantivyBackend::new(dir)),
            Self::Elasticsearch { url, index_prefix } => Arc::new(
                ElasticsearchBackend::new(url, index_prefix).map_err(|e| StartError::Search(format!("{e:?}")))?,
            ),
            Self::Backend(b) => b.clone(),
        })
    }
}

#[derive(Debug, Clone)]
pub struct AccountServiceConfig {
    pub service: ServiceConfig,
    /// The credentials store: a database of its own, never opened by a
    /// component.
    pub credentials_database_url: String,
    pub credentials: CredentialsConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("wasm engine: {0}")]
    Engine(String),
    #[error("{service} database ({url}): {source}")]
    Database { service: &'static str, url: String, source: ConnectError },
    #[error("{service} component: {source}")]
    Component { service: &'static str, source: DeployError },
    #[error("gRPC reflection: {0}")]
    Reflection(String),
    #[error("component store: {0}")]
    ComponentStore(#[from] MigrationError),
    #[error("credentials store: {0}")]
    Credentials(#[from] CredentialsSetupError),
    #[error("token public key: {0}")]
    PublicKey(String),
    #[error("search engine: {0}")]
    Search(String),
    #[error("configuration: {0}")]
    Config(String),
    #[error("merchant plugins: {0}")]
    Plugins(#[from] crate::plugins::PluginStartError),
}

/// What a service module gets while it is built: the configuration, the
/// registry, and a way to open databases that the host closes at the end.
pub struct HostContext {
    config: HostConfig,
    registry: Arc<Registry>,
    databases: Vec<(&'static str, Database)>,
}

impl HostContext {
    pub fn config(&self) -> &HostConfig {
        &self.config
    }

    /// The registry (its component store holds merchant plugins too).
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Opens a service's database.
    pub async fn connect(&mut self, service: &'static str, url: &str) -> Result<Database, StartError> {
        let db = connect(service, url, &self.config.connect).await?;
        self.databases.push((service, db.clone()));
        Ok(db)
    }

    /// Opens a database for secrets (a SQLite file only its owner reads).
    pub async fn connect_private(&mut self, service: &'static str, url: &str) -> Result<Database, StartError> {
        let options = ConnectOptions { private: true, ..self.config.connect.host_store() };
        let db = connect(service, url, &options).await?;
        self.databases.push((service, db.clone()));
        Ok(db)
    }

    /// Starts a domain service's slot on its component (the built-in one
    /// on first start, else the version that was active).
    pub async fn start_slot<W: Deployable>(
        &mut self,
        name: &'static str,
        shared: W::Shared,
        embedded: &[u8],
    ) -> Result<Arc<ServiceSlot<W>>, StartError> {
        let component = |source| StartError::Component { service: name, source };
        let limits = KindLimits {
            max_component_bytes: self.config.max_component_bytes,
            ..KindLimits::new(self.config.runtime.call_limits, &self.config.runtime)
        };
        let slots = self.registry.kind::<W>(name, shared, limits).map_err(component)?;
        let slot = ServiceSlot::new(slots);
        let active = slot.bootstrap(embedded).await.map_err(component)?;
        tracing::info!(service = name, version = %active.version, source = active.source.as_str(), "service ready");
        Ok(Arc::new(slot))
    }
}

async fn connect(service: &'static str, url: &str, options: &ConnectOptions) -> Result<Database, StartError> {
    Database::connect(url, options).await.map_err(|source| StartError::Database {
        service,
        url: redact_url(url),
        source,
    })
}

pub struct ServiceHost {
    product: Option<Arc<ProductModule>>,
    account: Option<Arc<AccountModule>>,
    order: Option<Arc<OrderModule>>,
    registry: Arc<Registry>,
    /// Stops background work (drainers, sweepers) when the host goes.
    background: CancellationToken,
    /// What the modules serve, on which plane.
    planes: Planes,
    health: HostHealth,
    /// Largest component a deploy may upload.
    max_component_bytes: usize,
}

/// The connections `listener` accepts, with Nagle's algorithm off: tonic
/// ignores `tcp_nodelay` for `serve_with_incoming*`, and a small gRPC
/// answer held back until the peer's delayed ACK costs ~40 ms.
pub fn no_delay(
    listener: TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> + Send + 'static {
    use futures::StreamExt;
    TcpListenerStream::new(listener).map(|accepted| {
        accepted.inspect(|stream| {
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!(error = %e, "TCP_NODELAY on an accepted connection");
            }
        })
    })
}

/// How often the host checks its databases for its gRPC health.
const HEALTH_CHECK_EVERY: Duration = Duration::from_secs(2);

/// A host process's health: its databases and the component versions it
/// runs. Cheap to clone; `/readyz` and the gRPC health service read it.
#[derive(Clone)]
pub struct HostHealth {
    databases: Arc<Vec<(&'static str, Database)>>,
    components: AdminApi,
    services: Vec<&'static str>,
}

/// The answer of [`HostHealth::check`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct HealthReport {
    /// Every database answers.
    pub ready: bool,
    pub databases: Vec<DatabaseHealth>,
    pub components: Vec<ComponentHealth>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct DatabaseHealth {
    pub name: &'static str,
    pub location: String,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ComponentHealth {
    pub component: String,
    pub version: Option<String>,
    pub activation: Option<i64>,
}

impl HostHealth {
    /// Pings every database (at most a second each, all at once) and reads
    /// the versions this process runs.
    pub async fn check(&self) -> HealthReport {
        let pings = self.databases.iter().map(|(name, db)| async move {
            let result = db.ping(Duration::from_secs(1)).await;
            DatabaseHealth { name, location: db.describe(), ok: result.is_ok(), error: result.err() }
        });
        let databases = futures::future::join_all(pings).await;
        let components = self
            .components
            .running()
            .await
            .into_iter()
            .map(|(component, running)| ComponentHealth {
                component,
                version: running.as_ref().map(|(v, _)| v.version.clone()),
                activation: running.map(|(_, seq)| seq),
            })
            .collect();
        HealthReport { ready: databases.iter().all(|d| d.ok), databases, components }
    }

    /// The gRPC health names this host serves.
    pub fn services(&self) -> &[&'static str] {
        &self.services
    }
}

impl ServiceHost {
    pub async fn build(config: HostConfig) -> Result<Self, StartError> {
        let runtime = Runtime::new(config.runtime.clone()).map_err(|e| StartError::Engine(format!("{e:#}")))?;
        let store_db = connect("components", &config.components_database_url, &config.connect.host_store()).await?;
        let store = ComponentStore::open(store_db.clone()).await?;
        let registry = Registry::new(runtime, store, config.compiled_cache_bytes);
        let mut host = HostContext { config, registry: registry.clone(), databases: vec![("components", store_db)] };

        // The configured modules, in start order.
        let account = match host.config.account.clone() {
            Some(c) => Some(Arc::new(AccountModule::build(&c, &mut host).await?)),
            None => None,
        };
        let product = match host.config.product.clone() {
            Some(c) => Some(Arc::new(ProductModule::build(&c, &mut host).await?)),
            None => None,
        };
        let order = match host.config.order.clone() {
            Some(c) => Some(Arc::new(OrderModule::build(&c, &mut host).await?)),
            None => None,
        };
        let mut modules: Vec<Arc<dyn ServiceModule>> = Vec::new();
        modules.extend(account.clone().map(|m| m as Arc<dyn ServiceModule>));
        modules.extend(product.clone().map(|m| m as Arc<dyn ServiceModule>));
        modules.extend(order.clone().map(|m| m as Arc<dyn ServiceModule>));

        let background = CancellationToken::new();
        for module in &modules {
            module.spawn_background(&background);
        }
        // Follow the activations other processes make on the same store.
        registry.store().changes().listen(host.config.reconcile_interval, background.child_token());
        let public_key =
            host.config.token_public_key.clone().or_else(|| modules.iter().find_map(|m| m.token_public_key()));
        let verifier =
            public_key.map(|pem| Verifier::new(&pem)).transpose().map_err(|e| StartError::PublicKey(e.to_string()))?;
        let max_component_bytes = host.config.max_component_bytes;
        let gateway = host.config.gateway_key.as_ref().map(ServiceTokenVerifier::new);
        let auth = Authenticator::new(verifier, gateway);
        let mut planes = Planes::default();
        for module in &modules {
            module.register(&auth, &mut planes);
        }
        let health = HostHealth {
            databases: Arc::new(host.databases),
            components: planes.components.clone(),
            services: planes.health.clone(),
        };
        Ok(Self { product, account, order, registry, background, planes, health, max_component_bytes })
    }

    /// The host's health, for `/readyz` (the gRPC health service follows
    /// the same checks).
    pub fn health(&self) -> HostHealth {
        self.health.clone()
    }

    pub fn product(&self) -> Option<&Arc<ProductModule>> {
        self.product.as_ref()
    }

    pub fn account(&self) -> Option<&Arc<AccountModule>> {
        self.account.as_ref()
    }

    pub fn order(&self) -> Option<&Arc<OrderModule>> {
        self.order.as_ref()
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Serves the data plane on `listener` and the admin plane on `admin`
    /// until `shutdown` is cancelled, then closes the databases.
    pub async fn run(
        mut self,
        listener: TcpListener,
        admin: AdminListener,
        shutdown: CancellationToken,
    ) -> Result<(), StartError> {
        let (health, health_service) = tonic_health::server::health_reporter();
        // Reflection in both protocol versions: grpcurl and most stock
        // tools speak v1, many others (older grpcurl, Postman, Evans, some
        // gateways) still only v1alpha.
        let builder = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(polyscale_proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        let reflection_error = |e: tonic_reflection::server::Error| StartError::Reflection(e.to_string());
        let reflection_v1 = || builder().build_v1().map_err(reflection_error);
        let reflection_v1alpha = || builder().build_v1alpha().map_err(reflection_error);

        // Serving while the databases answer; checked now and every
        // HEALTH_CHECK_EVERY.
        let checks = self.health.clone();
        let stop_checks = self.background.clone();
        let mut reported = None;
        let services = self.health.services.clone();
        let mut report = move |ready: bool| {
            let health = health.clone();
            let names = services.clone();
            let changed = reported != Some(ready);
            reported = Some(ready);
            async move {
                if !changed {
                    return;
                }
                let status =
                    if ready { tonic_health::ServingStatus::Serving } else { tonic_health::ServingStatus::NotServing };
                health.set_service_status("", status).await;
                for name in names {
                    health.set_service_status(name, status).await;
                }
            }
        };
        report(self.health.check().await.ready).await;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop_checks.cancelled() => return,
                    _ = tokio::time::sleep(HEALTH_CHECK_EVERY) => {}
                }
                let result = checks.check().await;
                if !result.ready {
                    let down: Vec<_> = result.databases.iter().filter(|d| !d.ok).map(|d| d.name).collect();
                    tracing::warn!(?down, "a database does not answer: reporting NOT_SERVING");
                }
                report(result.ready).await;
            }
        });
        let Planes { mut grpc, admin: mut admin_routes, components, indexes, .. } = std::mem::take(&mut self.planes);
        grpc.add_service(health_service.clone()).add_service(reflection_v1()?).add_service(reflection_v1alpha()?);
        admin_routes
            .add_service(
                ComponentAdminServer::new(components).max_decoding_message_size(self.max_component_bytes + (1 << 20)),
            )
            .add_service(SearchAdminServer::new(indexes))
            .add_service(health_service)
            .add_service(reflection_v1()?)
            .add_service(reflection_v1alpha()?);

        let data_plane = tonic::transport::Server::builder()
            // Each call's span continues the caller's trace (`traceparent`).
            .trace_fn(polyscale_proto::trace::server_span)
            .layer(crate::grpc_metrics::GrpcMetricsLayer)
            .add_routes(grpc.routes())
            .serve_with_incoming_shutdown(no_delay(listener), shutdown.clone().cancelled_owned());
        let admin_address = admin.address();
        let admin_plane = async {
            let stop = shutdown.clone().cancelled_owned();
            match admin {
                AdminListener::Unix { listener, .. } => {
                    tonic::transport::Server::builder()
                        .layer(tonic::service::InterceptorLayer::new(AdminAuth(None)))
                        .add_routes(admin_routes.routes())
                        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), stop)
                        .await
                }
                AdminListener::Tcp { listener, token } => {
                    tonic::transport::Server::builder()
                        .layer(tonic::service::InterceptorLayer::new(AdminAuth(Some(token))))
                        .add_routes(admin_routes.routes())
                        .serve_with_incoming_shutdown(no_delay(listener), stop)
                        .await
                }
            }
        };
        tracing::info!(admin = %admin_address, "admin plane listening");
        let (data, admin) = tokio::join!(
            async {
                let result = data_plane.await;
                shutdown.cancel();
                result
            },
            async {
                let result = admin_plane.await;
                shutdown.cancel();
                result
            }
        );
        self.background.cancel();
        for (_, db) in self.health.databases.iter() {
            db.close().await;
        }
        data.map_err(|e| StartError::Engine(format!("gRPC server: {e}")))?;
        admin.map_err(|e| StartError::Engine(format!("admin gRPC server ({admin_address}): {e}")))
    }
}

impl Drop for ServiceHost {
    fn drop(&mut self) {
        self.background.cancel();
    }
}

#[cfg(test)]
mod no_delay_tests {
    use futures::StreamExt;

    #[tokio::test]
    async fn accepted_connections_do_not_wait_on_nagle() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut incoming = Box::pin(super::no_delay(listener));
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let accepted = incoming.next().await.unwrap().unwrap();
        assert!(accepted.nodelay().unwrap(), "TCP_NODELAY set on the accepted socket");
    }
}
