//! PolyScale's GraphQL gateway: the one public entry point.
//!
//! `POST /graphql` and `GET /graphql` follow the GraphQL-over-HTTP spec;
//! a browser asking `GET /graphql` for HTML gets GraphiQL, served from the
//! binary (`src/graphiql.rs`) unless switched off. Resolvers call
//! the domain services over gRPC ([`clients`]). Every request runs under
//! limits ([`limits`]) on body size, batch size, depth, complexity and
//! aliases, and every error carries a stable `extensions.code` ([`errors`]).

pub mod clients;
pub mod errors;
mod graphiql;
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
    /// gRPC endpoint of the account service.
    pub account_endpoint: String,
    /// Public key (PEM) of the account service's token signer. Without it
    /// every bearer token is refused.
    pub token_public_key: Option<String>,
    /// Take the client address from `X-Forwarded-For` (behind a trusted
    /// proxy only: clients can set it themselves).
    pub trust_forwarded_for: bool,
    pub limits: GraphqlLimits,
    /// Deadline passed to the services for each call.
    pub service_timeout: Duration,
    /// The secret shared with the services: the gateway signs a service
    /// token with it, so that the services believe the client address it
    /// sends. Without it they use the gateway's own address.
    pub service_key: Option<polyscale_auth::ServiceKey>,
    /// Serve GraphiQL to a browser asking `GET /graphql` for HTML (and its
    /// files under `/graphiql/`).
    pub graphiql: bool,
}

impl GatewayConfig {
    /// All services at one endpoint (embedded mode).
    pub fn new(endpoint: impl Into<String>) -> Self {
        let endpoint = endpoint.into();
        Self {
            product_endpoint: endpoint.clone(),
            account_endpoint: endpoint,
            token_public_key: None,
            trust_forwarded_for: false,
            limits: GraphqlLimits::default(),
            service_timeout: Duration::from_secs(10),
            service_key: None,
            graphiql: true,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("token public key: {0}")]
    PublicKey(String),
}

pub struct Gateway {
    router: axum::Router,
}

impl Gateway {
    pub fn build(config: GatewayConfig) -> Result<Self, GatewayError> {
        let clients = Clients::connect_lazy(&config)?;
        let verifier = config
            .token_public_key
            .as_deref()
            .map(polyscale_auth::Verifier::new)
            .transpose()
            .map_err(|e| GatewayError::PublicKey(e.to_string()))?;
        let schema = schema::build(clients, &config.limits);
        let http = http::HttpConfig {
            limits: config.limits,
            verifier,
            trust_forwarded_for: config.trust_forwarded_for,
            graphiql: config.graphiql,
        };
        Ok(Self { router: http::router(schema, http) })
    }

    /// Adds routes (e.g. `/metrics`) beside the GraphQL ones.
    pub fn merge(mut self, routes: axum::Router) -> Self {
        self.router = self.router.merge(routes);
        self
    }

    /// Serves HTTP until `shutdown` resolves.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let service = self.router.into_make_service_with_connect_info::<std::net::SocketAddr>();
        axum::serve(listener, service).with_graceful_shutdown(shutdown).await
    }
}
