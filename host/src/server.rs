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
use crate::capabilities::sql::{ConnectError, ConnectOptions, Database, SqlLimits, redact_url};
use crate::registry::{ComponentRegistry, DeployError, DomainWorld};
use crate::runtime::{Capabilities, Runtime, RuntimeConfig};
use crate::services::Authenticator;
use crate::services::account::{AccountApi, AccountRegistry};
use crate::services::admin::AdminApi;
use crate::services::operator::OperatorApi;
use crate::services::product::{ProductApi, ProductRegistry};

/// Default upload cap for a component binary. Interpreted languages ship
/// their interpreter inside (Python ~18 MB, JavaScript ~12 MB).
pub const DEFAULT_MAX_COMPONENT_BYTES: usize = 64 << 20;

#[derive(Debug, Clone)]
pub struct HostConfig {
    pub runtime: RuntimeConfig,
    pub connect: ConnectOptions,
    pub sql_limits: SqlLimits,
    pub max_component_bytes: usize,
    /// Run the product service here, on this database.
    pub product: Option<ServiceConfig>,
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
}

pub struct ServiceHost {
    product: Option<Arc<ProductRegistry>>,
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
            let capabilities = Capabilities { credentials: Some(creds.clone()) };
            account =
                Some(open_slot("account", &runtime, &config, &accounts.service, capabilities, &mut databases).await?);
            credentials = Some(creds);
        }
        let product = match &config.product {
            Some(service) => {
                Some(open_slot("product", &runtime, &config, service, Capabilities::default(), &mut databases).await?)
            }
            None => None,
        };

        let public_key =
            config.token_public_key.clone().or_else(|| credentials.as_ref().map(|c| c.public_key_pem().to_string()));
        let verifier =
            public_key.map(|pem| Verifier::new(&pem)).transpose().map_err(|e| StartError::PublicKey(e.to_string()))?;
        Ok(Self { product, account, credentials, verifier, databases })
    }

    pub fn product_registry(&self) -> Option<&Arc<ProductRegistry>> {
        self.product.as_ref()
    }

    pub fn account_registry(&self) -> Option<&Arc<AccountRegistry>> {
        self.account.as_ref()
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

        let result = tonic::transport::Server::builder()
            .add_service(health_service)
            .add_service(reflection)
            .add_service(admin_service)
            .add_optional_service(product_service)
            .add_optional_service(account_service)
            .add_optional_service(operator_service)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
            .await;
        for db in &self.databases {
            db.close().await;
        }
        result.map_err(|e| StartError::Engine(format!("gRPC server: {e}")))
    }
}
