//! A service host process: `ServiceHost::build(config)` opens databases and
//! starts component slots; `run(listener, shutdown)` serves gRPC (the domain
//! services, `ComponentAdmin`, health and reflection) until shutdown.

use std::future::Future;
use std::sync::Arc;

use polyscale_proto::admin::v1::component_admin_server::ComponentAdminServer;
use polyscale_proto::product::v1::product_service_server::ProductServiceServer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

use crate::capabilities::sql::{ConnectError, ConnectOptions, Database, SqlLimits, redact_url};
use crate::registry::{DeployError, VersionInfo};
use crate::runtime::{Runtime, RuntimeConfig};
use crate::services::admin::AdminApi;
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
}

impl HostConfig {
    pub fn new(runtime: RuntimeConfig) -> Self {
        Self {
            runtime,
            connect: ConnectOptions::default(),
            sql_limits: SqlLimits::default(),
            max_component_bytes: DEFAULT_MAX_COMPONENT_BYTES,
            product: None,
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
}

pub struct ServiceHost {
    product: Option<Arc<ProductRegistry>>,
    databases: Vec<Database>,
}

impl ServiceHost {
    pub async fn build(config: HostConfig) -> Result<Self, StartError> {
        let runtime = Runtime::new(config.runtime.clone()).map_err(|e| StartError::Engine(format!("{e:#}")))?;
        let mut databases = Vec::new();
        let mut product = None;
        if let Some(service) = &config.product {
            let db = Database::connect(&service.database_url, &config.connect).await.map_err(|source| {
                StartError::Database { service: "product", url: redact_url(&service.database_url), source }
            })?;
            databases.push(db.clone());
            let registry =
                ProductRegistry::new("product", runtime.clone(), db, config.sql_limits, config.max_component_bytes)
                    .await
                    .map_err(|source| StartError::Component { service: "product", source })?;
            let active: VersionInfo = registry
                .bootstrap(&service.component)
                .await
                .map_err(|source| StartError::Component { service: "product", source })?;
            tracing::info!(version = %active.version, source = active.source.as_str(), "product service ready");
            product = Some(Arc::new(registry));
        }
        Ok(Self { product, databases })
    }

    pub fn product_registry(&self) -> Option<&Arc<ProductRegistry>> {
        self.product.as_ref()
    }

    /// Serves until `shutdown` resolves, then closes the databases.
    pub async fn run(self, listener: TcpListener, shutdown: impl Future<Output = ()> + Send) -> Result<(), StartError> {
        let (health, health_service) = tonic_health::server::health_reporter();
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(polyscale_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(|e| StartError::Reflection(e.to_string()))?;

        let mut admin = AdminApi::default();
        let product_service = self.product.clone().map(|registry| {
            admin = std::mem::take(&mut admin).with_slot("product", registry.clone());
            ProductServiceServer::new(ProductApi::new(registry))
        });
        if product_service.is_some() {
            health.set_serving::<ProductServiceServer<ProductApi>>().await;
        }
        let admin_service =
            ComponentAdminServer::new(admin).max_decoding_message_size(DEFAULT_MAX_COMPONENT_BYTES + (1 << 20));

        let result = tonic::transport::Server::builder()
            .add_service(health_service)
            .add_service(reflection)
            .add_service(admin_service)
            .add_optional_service(product_service)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
            .await;
        for db in &self.databases {
            db.close().await;
        }
        result.map_err(|e| StartError::Engine(format!("gRPC server: {e}")))
    }
}
