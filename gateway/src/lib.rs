//! PolyScale's GraphQL gateway: the one public entry point.
//!
//! Merchants upload plugins (Wasm components) as a GraphQL multipart
//! request on `POST /graphql` or as the raw body of `PUT /plugins/{name}`
//! (`http/multipart.rs`, `http/plugin_upload.rs`), within
//! `max_plugin_upload_bytes`.
//!
//! `POST /webhooks/payments/{provider}` takes payment providers' webhooks
//! and forwards them, unverified, to the order service, whose host holds
//! the providers' secrets and verifies them.
//!
//! `POST /graphql` and `GET /graphql` follow the GraphQL-over-HTTP spec;
//! a browser asking `GET /graphql` for HTML gets GraphiQL, served from the
//! binary (`src/graphiql.rs`) unless switched off. Resolvers call
//! the domain services over gRPC ([`clients`]). Every request runs under
//! limits ([`limits`]) on body size, batch size, depth, complexity and
//! aliases, and every error carries a stable `extensions.code` ([`errors`]).
//! The edge is guarded too: rate limits per client address on sign-in and
//! search ([`rate_limit`]), and bounded connections, header reads and
//! requests ([`server`]).

pub mod clients;
pub mod errors;
mod graphiql;
mod http;
pub mod limits;
mod metrics;
pub mod rate_limit;
pub mod schema;
pub mod server;

use std::future::Future;
use std::time::Duration;

pub use clients::{ClientError, Clients};
pub use limits::GraphqlLimits;
pub use rate_limit::{Rate, RateLimits};
pub use server::{ServerLimits, serve};
use tokio::net::TcpListener;

/// How often the rate limiters forget idle addresses.
const RATE_LIMIT_SWEEP: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// gRPC endpoints of the product service's replicas, e.g.
    /// `http://127.0.0.1:50051` (calls are balanced over them).
    pub product_endpoints: Vec<String>,
    /// The account service's.
    pub account_endpoints: Vec<String>,
    /// The order service's (carts, orders, merchant plugins).
    pub order_endpoints: Vec<String>,
    /// Public key (PEM) of the account service's token signer. Without it
    /// every bearer token is refused.
    pub token_public_key: Option<String>,
    /// How many reverse proxies, each appending to `X-Forwarded-For`,
    /// stand between clients and the gateway. 0: the header is ignored
    /// and the TCP peer is the client.
    pub trusted_proxy_hops: usize,
    pub limits: GraphqlLimits,
    /// Per client address.
    pub rate_limits: RateLimits,
    /// Connections, header reads and request time.
    pub server: ServerLimits,
    /// Answer `__schema` and `__type` (GraphiQL's documentation needs it).
    pub introspection: bool,
    /// Deadline passed to the services for each call.
    pub service_timeout: Duration,
    /// The secret shared with the services: the gateway signs a service
    /// token with it, so that the services believe the client address it
    /// sends. Without it they use the gateway's own address.
    pub service_key: Option<polyscale_auth::ServiceKey>,
    /// Serve GraphiQL to a browser asking `GET /graphql` for HTML (and its
    /// files under `/graphiql/`). Without `introspection` it is still
    /// served but cannot load the schema.
    pub graphiql: bool,
    /// Largest plugin component an upload may carry (multipart
    /// `POST /graphql` and `PUT /plugins/{name}`); at least
    /// [`MIN_PLUGIN_UPLOAD_BYTES`].
    pub max_plugin_upload_bytes: usize,
}

/// The default and smallest upload cap: components built from Python or
/// JavaScript (an interpreter inside) weigh about 18 MB.
pub const MIN_PLUGIN_UPLOAD_BYTES: usize = 32 << 20;

impl GatewayConfig {
    /// All services at one endpoint (embedded mode).
    pub fn new(endpoint: impl Into<String>) -> Self {
        let endpoint = endpoint.into();
        Self {
            product_endpoints: vec![endpoint.clone()],
            account_endpoints: vec![endpoint.clone()],
            order_endpoints: vec![endpoint],
            token_public_key: None,
            trusted_proxy_hops: 0,
            limits: GraphqlLimits::default(),
            rate_limits: RateLimits::default(),
            server: ServerLimits::default(),
            introspection: true,
            service_timeout: Duration::from_secs(10),
            service_key: None,
            graphiql: true,
            max_plugin_upload_bytes: MIN_PLUGIN_UPLOAD_BYTES,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("token public key: {0}")]
    PublicKey(String),
    #[error("max_plugin_upload_bytes is {0}; it must be at least {MIN_PLUGIN_UPLOAD_BYTES}")]
    UploadCap(usize),
}

pub struct Gateway {
    router: axum::Router,
    rate_limiters: std::sync::Arc<rate_limit::RateLimiters>,
    server: ServerLimits,
}

impl Gateway {
    pub fn build(config: GatewayConfig) -> Result<Self, GatewayError> {
        if config.max_plugin_upload_bytes < MIN_PLUGIN_UPLOAD_BYTES {
            return Err(GatewayError::UploadCap(config.max_plugin_upload_bytes));
        }
        let clients = Clients::connect_lazy(&config)?;
        let verifier = config
            .token_public_key
            .as_deref()
            .map(polyscale_auth::Verifier::new)
            .transpose()
            .map_err(|e| GatewayError::PublicKey(e.to_string()))?;
        let rate_limiters = rate_limit::RateLimiters::new(config.rate_limits);
        let schema = schema::build(clients.clone(), &config.limits, rate_limiters.clone(), config.introspection);
        let http = http::HttpConfig {
            limits: config.limits,
            verifier,
            trusted_proxy_hops: config.trusted_proxy_hops,
            clients,
            graphiql: config.graphiql,
            max_plugin_upload_bytes: config.max_plugin_upload_bytes,
            rate_limiters: rate_limiters.clone(),
        };
        Ok(Self { router: http::router(schema, http), rate_limiters, server: config.server })
    }

    /// Serves HTTP ([`serve`]) until `shutdown` resolves.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let limiters = self.rate_limiters.clone();
        let sweeper = tokio::spawn(async move {
            let mut every = tokio::time::interval(RATE_LIMIT_SWEEP);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                limiters.sweep();
            }
        });
        let result = serve(listener, self.router, self.server, shutdown).await;
        sweeper.abort();
        result
    }
}
