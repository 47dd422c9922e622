//! A service host process: `ServiceHost::build(config)` opens databases and
//! starts component slots; `run(listener, shutdown)` serves gRPC (the domain
//! services, `ComponentAdmin`, health and reflection) until shutdown.

use std::future::Future;
use std::sync::Arc;

use polyscale_auth::Verifier;
use polyscale_proto::account::v1::account_service_server::AccountServiceServer;
use polyscale_proto::admin::v1::component_admin_server::ComponentAdminServer;
use polyscale_proto::admin::v1::operator_server::OperatorServer;
use polyscale_proto::product::v1::product_service_server::ProductServiceServer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

use crate::capabilities::credentials::{Credentials, CredentialsConfig, CredentialsSetupError};
use crate::capabilities::search::elasticsearch::ElasticsearchBackend;
use crate::capabilities::search::tantivy::TantivyBackend;
use crate::capabilities::search::{SearchBackend, SearchService, outbox, rebuild};
use crate::capabilities::sql::{ConnectError, ConnectOptions, Database, SqlLimits, redact_url};
use crate::registry::{ComponentRegistry, DeployError, DomainWorld};
use crate::runtime::{Capabilities, Runtime, RuntimeConfig};
use crate::services::Authenticator;
use crate::services::account::{AccountApi, AccountRegistry};
use crate::services::admin::AdminApi;
use crate::services::operator::OperatorApi;
use crate::services::product::{ProductApi, ProductDocuments, ProductRegistry, ProductWorld};
use crate::services::search_admin::SearchAdminApi;
use polyscale_proto::admin::v1::search_admin_server::SearchAdminServer;
use tokio_util::sync::CancellationToken;

/// Default upload cap for a component binary. Interpreted languages ship
/// their interpreter inside (Python ~18 MB, JavaScript ~12 MB).
pub const DEFAULT_MAX_COMPONENT_BYTES: usize = 64 << 20;

#[derive(Debug, Clone)]
pub struct HostConfig {
    pub runtime: RuntimeConfig,
    pub connect: ConnectOptions,
    pub sql_limits: SqlLimits,
    pub max_component_bytes: usize,
    /// Run the product service here.
    pub product: Option<ProductServiceConfig>,
    /// Run the account service here.
    pub account: Option<AccountServiceConfig>,
    /// The public key (PEM) access tokens are verified with. Defaults to
    /// the account service's own key when it runs here; without either,
    /// no token is accepted.
    pub token_public_key: Option<String>,
}

impl HostConfig {
    pub fn new(runtime: RuntimeConfig) -> Self {
        Self {
            runtime,
            connect: ConnectOptions::default(),
            sql_limits: SqlLimits::default(),
            max_component_bytes: DEFAULT_MAX_COMPONENT_BYTES,
            product: None,
            account: None,
            token_public_key: None,
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
}

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
    fn backend(&self) -> Result<Arc<dyn SearchBackend>, StartError> {
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
    #[error("credentials store: {0}")]
    Credentials(#[from] CredentialsSetupError),
    #[error("token public key: {0}")]
    PublicKey(String),
    #[error("search engine: {0}")]
    Search(String),
}

pub struct ServiceHost {
    product: Option<Arc<ProductRegistry>>,
    search: Option<(Arc<SearchService>, Arc<ProductDocuments>)>,
    /// Stops background work (the search drainer, the credentials
    /// sweeper) when the host goes.
    background: CancellationToken,
    account: Option<Arc<AccountRegistry>>,
    credentials: Option<Arc<Credentials>>,
    verifier: Option<Verifier>,
    databases: Vec<Database>,
}

async fn connect(service: &'static str, url: &str, options: &ConnectOptions) -> Result<Database, StartError> {
    Database::connect(url, options).await.map_err(|source| StartError::Database {
        service,
        url: redact_url(url),
        source,
    })
}

/// Opens a slot's database and registry and starts its component.
async fn open_slot<W: DomainWorld>(
    slot: &'static str,
    runtime: &Runtime,
    config: &HostConfig,
    service: &ServiceConfig,
    capabilities: Capabilities,
    databases: &mut Vec<Database>,
) -> Result<Arc<ComponentRegistry<W>>, StartError> {
    let db = connect(slot, &service.database_url, &config.connect).await?;
    databases.push(db.clone());
    let component = |source| StartError::Component { service: slot, source };
    let registry = ComponentRegistry::<W>::new(
        slot,
        runtime.clone(),
        db,
        config.sql_limits,
        capabilities,
        config.max_component_bytes,
    )
    .await
    .map_err(component)?;
    let active = registry.bootstrap(&service.component).await.map_err(component)?;
    tracing::info!(service = slot, version = %active.version, source = active.source.as_str(), "service ready");
    Ok(Arc::new(registry))
}

impl ServiceHost {
    pub async fn build(config: HostConfig) -> Result<Self, StartError> {
        let runtime = Runtime::new(config.runtime.clone()).map_err(|e| StartError::Engine(format!("{e:#}")))?;
        let mut databases = Vec::new();

        let mut credentials = None;
        let mut account = None;
        if let Some(accounts) = &config.account {
            let private = ConnectOptions { private: true, ..config.connect.clone() };
            let store = connect("credentials", &accounts.credentials_database_url, &private).await?;
            databases.push(store.clone());
            let creds = Credentials::open(store, accounts.credentials.clone()).await?;
            let capabilities = Capabilities { credentials: Some(creds.clone()), search: None };
            account =
                Some(open_slot("account", &runtime, &config, &accounts.service, capabilities, &mut databases).await?);
            credentials = Some(creds);
        }
        let background = CancellationToken::new();
        if let Some(credentials) = &credentials {
            credentials.spawn_sweeper(background.clone());
        }
        let mut product = None;
        let mut search = None;
        if let Some(products) = &config.product {
            let service = SearchService::new(products.search.backend()?);
            let capabilities = Capabilities { credentials: None, search: Some(service.clone()) };
            let registry = open_slot::<ProductWorld>(
                "product",
                &runtime,
                &config,
                &products.service,
                capabilities,
                &mut databases,
            )
            .await?;
            let db = registry.database().clone();
            outbox::ensure_table(&db).await.map_err(|e| StartError::Search(format!("outbox: {e:?}")))?;
            let documents = Arc::new(ProductDocuments(registry.clone()));
            // An unreachable engine must not keep the service from taking
            // writes: they wait in the outbox. Index setup retries until it
            // succeeds.
            if let Err(e) = rebuild::ensure_indexes(service.clone(), documents.clone()).await {
                tracing::warn!(error = %e, "search engine not ready; product writes are kept in the outbox until it is");
                tokio::spawn(rebuild::ensure_indexes_until_ready(
                    service.clone(),
                    documents.clone(),
                    background.clone(),
                ));
            }
            outbox::spawn_drainer(db, service.clone(), background.clone());
            search = Some((service, documents));
            product = Some(registry);
        }

        let public_key =
            config.token_public_key.clone().or_else(|| credentials.as_ref().map(|c| c.public_key_pem().to_string()));
        let verifier =
            public_key.map(|pem| Verifier::new(&pem)).transpose().map_err(|e| StartError::PublicKey(e.to_string()))?;
        Ok(Self { product, search, background, account, credentials, verifier, databases })
    }

    pub fn product_registry(&self) -> Option<&Arc<ProductRegistry>> {
        self.product.as_ref()
    }

    pub fn account_registry(&self) -> Option<&Arc<AccountRegistry>> {
        self.account.as_ref()
    }

    /// The product service's search engine.
    pub fn product_search(&self) -> Option<&Arc<SearchService>> {
        self.search.as_ref().map(|(s, _)| s)
    }

    /// Serves until `shutdown` resolves, then closes the databases.
    pub async fn run(self, listener: TcpListener, shutdown: impl Future<Output = ()> + Send) -> Result<(), StartError> {
        let (health, health_service) = tonic_health::server::health_reporter();
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(polyscale_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(|e| StartError::Reflection(e.to_string()))?;

        let auth = Authenticator::new(self.verifier.clone());
        let mut admin = AdminApi::default();
        let product_service = self.product.clone().map(|registry| {
            admin = std::mem::take(&mut admin).with_slot("product", registry.clone());
            ProductServiceServer::new(ProductApi::new(registry, auth.clone()))
        });
        if product_service.is_some() {
            health.set_serving::<ProductServiceServer<ProductApi>>().await;
        }
        let (account_service, operator_service) = match (self.account.clone(), self.credentials.clone()) {
            (Some(registry), Some(credentials)) => {
                admin = std::mem::take(&mut admin).with_slot("account", registry.clone());
                let account_auth = auth.clone().checking_sessions(credentials);
                (
                    Some(AccountServiceServer::new(AccountApi::new(registry.clone(), account_auth))),
                    Some(OperatorServer::new(OperatorApi::new(registry))),
                )
            }
            _ => (None, None),
        };
        if account_service.is_some() {
            health.set_serving::<AccountServiceServer<AccountApi>>().await;
        }
        let admin_service =
            ComponentAdminServer::new(admin).max_decoding_message_size(DEFAULT_MAX_COMPONENT_BYTES + (1 << 20));
        let search_admin = self.search.clone().map(|(service, documents)| {
            SearchAdminServer::new(SearchAdminApi::default().with_index("products", service, documents))
        });

        let result = tonic::transport::Server::builder()
            .add_service(health_service)
            .add_service(reflection)
            .add_service(admin_service)
            .add_optional_service(product_service)
            .add_optional_service(account_service)
            .add_optional_service(operator_service)
            .add_optional_service(search_admin)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
            .await;
        self.background.cancel();
        for db in &self.databases {
            db.close().await;
        }
        result.map_err(|e| StartError::Engine(format!("gRPC server: {e}")))
    }
}

impl Drop for ServiceHost {
    fn drop(&mut self) {
        self.background.cancel();
    }
}
