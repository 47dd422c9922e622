//! PolyScale's GraphQL gateway: the one public entry point.
//!
//! `POST /graphql` and `GET /graphql` follow the GraphQL-over-HTTP spec;
//! a browser asking `GET /graphql` for HTML gets GraphiQL. Resolvers call
//! the domain services over gRPC ([`clients`]). Every request runs under
//! limits ([`limits`]) on body size, batch size, depth, complexity and
//! aliases, and every error carries a stable `extensions.code` ([`errors`]).

pub mod clients;
pub mod errors;
mod http;
pub mod limits;
pub mod schema;

use std::future::Future;
use std::time::Duration;

pub use clients::{ClientError, Clients};
pub use limits::GraphqlLimits;
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// gRPC endpoint of the product service, e.g. `http://127.0.0.1:50051`.
    pub product_endpoint: String,
    pub limits: GraphqlLimits,
    /// Deadline passed to the services for each call.
    pub service_timeout: Duration,
}

impl GatewayConfig {
    pub fn new(product_endpoint: impl Into<String>) -> Self {
        Self {
            product_endpoint: product_endpoint.into(),
            limits: GraphqlLimits::default(),
            service_timeout: Duration::from_secs(10),
        }
    }
}

pub struct Gateway {
    router: axum::Router,
}

impl Gateway {
    pub fn build(config: GatewayConfig) -> Result<Self, ClientError> {
        let clients = Clients::connect_lazy(&config)?;
        let schema = schema::build(clients, &config.limits);
        Ok(Self { router: http::router(schema, config.limits) })
    }

    pub fn router(&self) -> axum::Router {
        self.router.clone()
    }

    /// Serves HTTP until `shutdown` resolves.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(listener, self.router).with_graceful_shutdown(shutdown).await
    }
}
