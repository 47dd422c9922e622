//! The one configuration of a PolyScale process: a TOML file, `POLYSCALE_…`
//! environment variables and command-line flags, merged in that order
//! (later wins) by figment over the defaults, which are the embedded preset.
//!
//! Every key is typed and unknown keys are errors (`deny_unknown_fields`),
//! in the file and in the environment alike; [`Config::validate`] checks
//! what types cannot, and every error names its key. `polyscale config`
//! prints the effective configuration with secrets redacted; the keys and
//! their defaults are listed in docs/configuration.md.
//!
//! Environment variables: `POLYSCALE_` + the key in capitals, with `__`
//! between sections (`POLYSCALE_RUNTIME__CALL_TIMEOUT=5s`). The flat names
//! of earlier releases (`POLYSCALE_PRODUCT_DATABASE_URL`,
//! `POLYSCALE_ELASTICSEARCH_URL`, ...) still work.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where databases, the search index, keys and caches live.
    pub data_dir: PathBuf,
    /// Public GraphQL address.
    pub listen: SocketAddr,
    /// gRPC address of the services (the data plane).
    pub grpc_listen: SocketAddr,
    /// Prometheus `/metrics` address, apart from the public one; `"off"`
    /// serves no metrics.
    #[serde(with = "off_or_address")]
    pub metrics_listen: Option<SocketAddr>,
    /// Load the sample catalog into an empty system on first start.
    pub sample_data: bool,
    pub runtime: RuntimeSection,
    pub components: ComponentsSection,
    pub sql: SqlSection,
    pub product: ProductSection,
    pub account: AccountSection,
    pub order: OrderSection,
    pub payments: PaymentsSection,
    pub plugins: PluginsSection,
    pub gateway: GatewaySection,
    pub admin: AdminSection,
    pub services: ServicesSection,
    pub keys: KeysSection,
    pub telemetry: TelemetrySection,
}

/// Logs and traces (docs/operations.md, Observability).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetrySection {
    /// Logs on stderr: `text` for people, `json` (one object per line,
    /// with the current span's fields) for log pipelines.
    pub log_format: LogFormat,
    /// Where spans go, over OTLP/gRPC (`http://otel-collector:4317`, say);
    /// none: no spans are exported.
    pub otlp_endpoint: Option<String>,
    /// The spans' `service.name`; default `polyscale`, or
    /// `polyscale-<role>` for `serve --services` and `gateway`.
    pub service_name: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The services of a distributed deployment (docs/operations.md,
/// Distributed mode): which run in this process, where the others are,
/// how replicas keep in step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServicesSection {
    /// The services `polyscale serve --services` runs (default: all).
    #[serde(deserialize_with = "list::deserialize")]
    pub run: Vec<ServiceName>,
    /// gRPC URLs of the product service's replicas (the gateway balances
    /// over them; the order service reaches its sibling there). Empty:
    /// this process's own gRPC listener.
    #[serde(deserialize_with = "list::deserialize")]
    pub product: Vec<String>,
    #[serde(deserialize_with = "list::deserialize")]
    pub account: Vec<String>,
    #[serde(deserialize_with = "list::deserialize")]
    pub order: Vec<String>,
    /// Replicas of this process's services. Above 1, SQLite and Tantivy
    /// (one process's files) are refused.
    pub replicas: u32,
    /// How often a process compares the component versions it runs with
    /// the store (activations are also announced at once on PostgreSQL).
    #[serde(with = "humantime_serde")]
    pub reconcile_interval: Duration,
}

impl Default for ServicesSection {
    fn default() -> Self {
        Self {
            run: ServiceName::ALL.to_vec(),
            product: Vec::new(),
            account: Vec::new(),
            order: Vec::new(),
            replicas: 1,
            reconcile_interval: polyscale_host::database::changes::DEFAULT_RECONCILE_INTERVAL,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceName {
    Product,
    Account,
    Order,
}

impl ServiceName {
    pub const ALL: [ServiceName; 3] = [ServiceName::Product, ServiceName::Account, ServiceName::Order];

    pub fn as_str(self) -> &'static str {
        match self {
            ServiceName::Product => "product",
            ServiceName::Account => "account",
            ServiceName::Order => "order",
        }
    }
}

impl std::str::FromStr for ServiceName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|n| n.as_str() == s.trim())
            .ok_or_else(|| format!("unknown service `{s}` (expected product, account or order)"))
    }
}

/// The secrets processes share, as files (mounted secrets). All-in-one
/// needs none: it generates the signing key under `DATA_DIR/keys` and a
/// service key per run. `polyscale keys generate` writes a set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeysSection {
    /// The Ed25519 private key (PEM) access tokens are signed with: the
    /// account service's. Default `DATA_DIR/keys/token-signing-key.pem`,
    /// generated on first start.
    pub token_signing_key_file: Option<PathBuf>,
    /// The public key (PEM) every other process verifies tokens with
    /// (derived from the signing key where that is given).
    pub token_public_key_file: Option<PathBuf>,
    /// The secret the gateway and the services share (service tokens);
    /// required when they run apart.
    pub service_key_file: Option<PathBuf>,
}

/// A list: a TOML array, or one string with commas (environment
/// variables).
mod list {
    use serde::{Deserialize, Deserializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        One(String),
        Many(Vec<String>),
    }

    pub fn deserialize<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: std::str::FromStr,
        T::Err: std::fmt::Display,
    {
        let items = match Raw::deserialize(d)? {
            Raw::One(s) => s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect(),
            Raw::Many(v) => v,
        };
        items.iter().map(|s| s.trim().parse::<T>().map_err(serde::de::Error::custom)).collect()
    }
}

/// Payment providers. `manual` is always on; the others are configured
/// here, and their secrets stay in the order service's host.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PaymentsSection {
    pub test: TestPaymentsSection,
}

/// The `test` provider: deterministic outcomes by test card number. It
/// takes no money, so it is off unless enabled.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TestPaymentsSection {
    pub enabled: bool,
    /// Its webhook signing secret (at least 16 characters). Default
    /// `DATA_DIR/keys/payments-test-webhook-secret`, generated on first
    /// start (mode 0600).
    pub webhook_secret_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSection {
    /// Where the admin plane (component deploys, role grants, reindex)
    /// listens: `unix:PATH`, or `HOST:PORT` with `token_file`. Default
    /// `unix:DATA_DIR/admin.sock` (mode 0600).
    pub listen: Option<String>,
    /// The operator token TCP admin calls must present (a file or a
    /// mounted secret; at least 32 characters).
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeSection {
    /// Component instances alive at once across the process.
    pub max_concurrent_instances: u32,
    /// Calls one component slot may have in flight; more wait within
    /// their deadline (one slot never holds the whole pool).
    pub max_concurrent_calls_per_slot: u32,
    /// Largest linear memory the instance pool can hold.
    pub pool_max_memory_bytes: usize,
    /// Bytes of each memory slot kept resident between calls.
    pub keep_resident_bytes: usize,
    /// Wall time of one component call, host I/O included.
    #[serde(with = "humantime_serde")]
    pub call_timeout: Duration,
    /// Largest linear memory one call may grow to.
    pub call_max_memory_bytes: usize,
    /// Most elements of one table of one call.
    pub call_max_table_elements: usize,
    /// Keep compiled components on disk (`DATA_DIR/cache`) between runs.
    pub disk_cache: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ComponentsSection {
    /// The component store (versions, active pointers); default
    /// `sqlite://DATA_DIR/components.db`.
    pub database_url: Option<String>,
    /// Largest component binary a deploy accepts.
    pub max_upload_bytes: usize,
    /// Memory for compiled components, shared by every slot.
    pub compiled_cache_bytes: u64,
}

/// Merchant plugins (docs/plugins.md): the limits of each call (defaults
/// after Shopify Functions'), uploads, their own instance pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginsSection {
    /// Instructions (wasmtime fuel) per call for carts of up to
    /// `lines_in_base_fuel` lines; larger carts get proportionally more.
    pub fuel: u64,
    pub lines_in_base_fuel: usize,
    pub max_memory_bytes: usize,
    pub max_stack_bytes: usize,
    #[serde(with = "humantime_serde")]
    pub call_timeout: Duration,
    pub max_input_bytes: usize,
    pub max_output_bytes: usize,
    pub max_log_bytes: usize,
    /// Largest plugin upload.
    pub max_upload_bytes: usize,
    /// Plugin instances alive at once (their own pool).
    pub max_concurrent_instances: u32,
    pub max_concurrent_calls_per_plugin: u32,
    /// Memory for compiled plugins.
    pub compiled_cache_bytes: u64,
    /// Failed calls' inputs kept per plugin, and for how long.
    pub keep_failed_inputs: usize,
    #[serde(with = "humantime_serde")]
    pub keep_failed_inputs_for: Duration,
}

impl Default for PluginsSection {
    fn default() -> Self {
        let d = polyscale_host::plugins::PluginConfig::default();
        Self {
            fuel: d.limits.fuel,
            lines_in_base_fuel: d.limits.lines_in_base_fuel,
            max_memory_bytes: d.limits.max_memory_bytes,
            max_stack_bytes: d.limits.max_stack_bytes,
            call_timeout: d.limits.timeout,
            max_input_bytes: d.limits.max_input_bytes,
            max_output_bytes: d.limits.max_output_bytes,
            max_log_bytes: d.limits.max_log_bytes,
            max_upload_bytes: d.max_upload_bytes,
            max_concurrent_instances: d.max_concurrent_instances,
            max_concurrent_calls_per_plugin: d.max_concurrent_calls_per_plugin,
            compiled_cache_bytes: d.compiled_cache_bytes,
            keep_failed_inputs: d.keep_failed_inputs,
            keep_failed_inputs_for: d.keep_failed_inputs_for,
        }
    }
}

impl PluginsSection {
    /// The host's plugin configuration; compiled plugins are cached on disk
    /// in `cache_dir`.
    pub fn host_config(&self, cache_dir: Option<PathBuf>) -> polyscale_host::plugins::PluginConfig {
        use polyscale_host::plugins::{PluginConfig, PluginLimits};
        PluginConfig {
            limits: PluginLimits {
                fuel: self.fuel,
                lines_in_base_fuel: self.lines_in_base_fuel,
                max_memory_bytes: self.max_memory_bytes,
                max_stack_bytes: self.max_stack_bytes,
                timeout: self.call_timeout,
                max_input_bytes: self.max_input_bytes,
                max_output_bytes: self.max_output_bytes,
                max_log_bytes: self.max_log_bytes,
            },
            max_upload_bytes: self.max_upload_bytes,
            max_concurrent_instances: self.max_concurrent_instances,
            max_concurrent_calls_per_plugin: self.max_concurrent_calls_per_plugin,
            compiled_cache_bytes: self.compiled_cache_bytes,
            cache_dir,
            keep_failed_inputs: self.keep_failed_inputs,
            keep_failed_inputs_for: self.keep_failed_inputs_for,
            ..PluginConfig::default()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SqlSection {
    pub max_statement_bytes: usize,
    pub max_params: usize,
    /// Most rows one statement may return.
    pub max_rows: usize,
    /// Most bytes one statement's result may hold.
    pub max_result_bytes: usize,
    /// Connections per database pool.
    pub max_connections: u32,
    /// How long a call waits for a free connection.
    #[serde(with = "humantime_serde")]
    pub acquire_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProductSection {
    /// Default `sqlite://DATA_DIR/product.db`.
    pub database_url: Option<String>,
    pub search: SearchSection,
    /// How often stock reservations past their expiry (placements that
    /// crashed) are released.
    #[serde(with = "humantime_serde")]
    pub reservation_sweep_interval: Duration,
}

impl Default for ProductSection {
    fn default() -> Self {
        Self {
            database_url: None,
            search: SearchSection::default(),
            reservation_sweep_interval: polyscale_host::server::DEFAULT_RESERVATION_SWEEP_INTERVAL,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OrderSection {
    /// Default `sqlite://DATA_DIR/order.db`.
    pub database_url: Option<String>,
    /// How often half-done placements are finished and idempotency keys
    /// older than 24 hours forgotten.
    #[serde(with = "humantime_serde")]
    pub upkeep_interval: Duration,
    /// The longest a placement's stock reservation holds if the placement
    /// never finishes (a crash); then the stock returns.
    #[serde(with = "humantime_serde")]
    pub reservation_hold: Duration,
}

impl Default for OrderSection {
    fn default() -> Self {
        Self {
            database_url: None,
            upkeep_interval: polyscale_host::server::DEFAULT_ORDER_UPKEEP_INTERVAL,
            reservation_hold: polyscale_host::server::DEFAULT_RESERVATION_HOLD,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchEngine {
    Tantivy,
    Elasticsearch,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchSection {
    /// `tantivy` (embedded) or `elasticsearch`; default: Elasticsearch when
    /// `url` is set, else Tantivy.
    pub engine: Option<SearchEngine>,
    /// Elasticsearch's URL (required for `engine = "elasticsearch"`).
    pub url: Option<String>,
    /// Prefix of the Elasticsearch index (alias) names.
    pub index_prefix: String,
    /// Tantivy's directory; default `DATA_DIR/search`.
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccountSection {
    /// Default `sqlite://DATA_DIR/account.db`.
    pub database_url: Option<String>,
    /// Password and session hashes; keep it apart from the account
    /// database. Default `sqlite://DATA_DIR/credentials.db`.
    pub credentials_database_url: Option<String>,
    #[serde(with = "humantime_serde")]
    pub access_token_ttl: Duration,
    #[serde(with = "humantime_serde")]
    pub refresh_token_ttl: Duration,
    /// How long an ended session stays in the credentials store.
    #[serde(with = "humantime_serde")]
    pub ended_session_retention: Duration,
    /// How often ended sessions and stale throttle counts are swept.
    #[serde(with = "humantime_serde")]
    pub sweep_every: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewaySection {
    /// Reverse proxies in front of the gateway that each append to
    /// `X-Forwarded-For`; the client address is the entry this many from
    /// the right. 0: the header is ignored (the TCP peer is the client).
    pub trusted_proxy_hops: usize,
    /// Deprecated: `true` is `trusted_proxy_hops = 1`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trust_forwarded_for: Option<bool>,
    /// Answer introspection (`__schema`, `__type`).
    pub introspection: bool,
    /// Serve GraphiQL to browsers at `/graphql` (from the binary, under a
    /// strict Content-Security-Policy). Without `introspection` it is
    /// still served but cannot load the schema.
    pub graphiql: bool,
    /// Deadline of each call to the services.
    #[serde(with = "humantime_serde")]
    pub service_timeout: Duration,
    /// Time for a request's headers to arrive.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Time to read a request's body and answer it (then 408).
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// HTTP connections served at once; more wait to be accepted.
    pub max_connections: usize,
    pub max_body_bytes: usize,
    pub max_batch: usize,
    pub max_depth: usize,
    pub max_complexity: usize,
    pub max_aliases: usize,
    pub max_page_size: i32,
    /// Largest plugin component an upload may carry (a multipart
    /// `POST /graphql` or `PUT /plugins/{name}`); at least 32 MiB.
    pub max_plugin_upload_bytes: usize,
    pub rate_limit: RateLimitSection,
}

/// Per client address; `*_per_minute = 0` turns a limit off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitSection {
    /// `register`, `login`, `refreshToken`, `changePassword`.
    pub auth_per_minute: u32,
    pub auth_burst: u32,
    /// `products` searches (`query`, `filter`, `sort` or `facets`).
    pub search_per_minute: u32,
    pub search_burst: u32,
    /// Plugin uploads and dry runs (`previewPricing`, `previewValidation`).
    pub plugin_per_minute: u32,
    pub plugin_burst: u32,
}

impl GatewaySection {
    /// `trusted_proxy_hops`, or 1 for the deprecated
    /// `trust_forwarded_for = true`.
    pub fn trusted_proxy_hops(&self) -> usize {
        if self.trust_forwarded_for == Some(true) { self.trusted_proxy_hops.max(1) } else { self.trusted_proxy_hops }
    }
}

impl RateLimitSection {
    pub fn limits(&self) -> polyscale_gateway::RateLimits {
        use polyscale_gateway::Rate;
        polyscale_gateway::RateLimits {
            auth: Rate { per_minute: self.auth_per_minute, burst: self.auth_burst },
            search: Rate { per_minute: self.search_per_minute, burst: self.search_burst },
            plugin: Rate { per_minute: self.plugin_per_minute, burst: self.plugin_burst },
        }
    }
}

/// `"HOST:PORT"`, or `"off"` for none.
mod off_or_address {
    use std::net::SocketAddr;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<SocketAddr>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(addr) => s.collect_str(addr),
            None => s.serialize_str("off"),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
        let value = String::deserialize(d)?;
        match value.trim() {
            "off" | "" => Ok(None),
            addr => addr
                .parse()
                .map(Some)
                .map_err(|_| serde::de::Error::custom(format!("`{addr}` is neither HOST:PORT nor \"off\""))),
        }
    }
}

impl Default for Config {
    /// The embedded preset: everything in one process under `./data`.
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            listen: ([127, 0, 0, 1], 8080).into(),
            grpc_listen: ([127, 0, 0, 1], 50051).into(),
            metrics_listen: Some(([127, 0, 0, 1], 9464).into()),
            sample_data: true,
            runtime: RuntimeSection::default(),
            components: ComponentsSection::default(),
            sql: SqlSection::default(),
            product: ProductSection::default(),
            account: AccountSection::default(),
            order: OrderSection::default(),
            payments: PaymentsSection::default(),
            plugins: PluginsSection::default(),
            gateway: GatewaySection::default(),
            admin: AdminSection::default(),
            services: ServicesSection::default(),
            keys: KeysSection::default(),
            telemetry: TelemetrySection::default(),
        }
    }
}

impl Default for RuntimeSection {
    fn default() -> Self {
        let runtime = polyscale_host::runtime::RuntimeConfig::default();
        Self {
            max_concurrent_instances: runtime.max_concurrent_instances,
            max_concurrent_calls_per_slot: runtime.max_concurrent_calls_per_slot,
            pool_max_memory_bytes: runtime.pool_max_memory_bytes,
            keep_resident_bytes: runtime.keep_resident_bytes,
            call_timeout: runtime.call_limits.timeout,
            call_max_memory_bytes: runtime.call_limits.max_memory_bytes,
            call_max_table_elements: runtime.call_limits.max_table_elements,
            disk_cache: true,
        }
    }
}

impl Default for ComponentsSection {
    fn default() -> Self {
        Self {
            database_url: None,
            max_upload_bytes: polyscale_host::server::DEFAULT_MAX_COMPONENT_BYTES,
            compiled_cache_bytes: polyscale_host::server::DEFAULT_COMPILED_CACHE_BYTES,
        }
    }
}

impl Default for SqlSection {
    fn default() -> Self {
        let limits = polyscale_host::database::SqlLimits::default();
        let connect = polyscale_host::database::ConnectOptions::default();
        Self {
            max_statement_bytes: limits.max_statement_bytes,
            max_params: limits.max_params,
            max_rows: limits.max_rows,
            max_result_bytes: limits.max_result_bytes,
            max_connections: connect.max_connections,
            acquire_timeout: connect.acquire_timeout,
        }
    }
}

impl Default for SearchSection {
    fn default() -> Self {
        Self { engine: None, url: None, index_prefix: "polyscale-".into(), dir: None }
    }
}

impl Default for AccountSection {
    fn default() -> Self {
        use polyscale_host::capabilities::credentials as c;
        Self {
            database_url: None,
            credentials_database_url: None,
            access_token_ttl: polyscale_auth::DEFAULT_ACCESS_TTL,
            refresh_token_ttl: c::DEFAULT_REFRESH_TTL,
            ended_session_retention: c::DEFAULT_ENDED_SESSION_RETENTION,
            sweep_every: c::DEFAULT_SWEEP_EVERY,
        }
    }
}

impl Default for GatewaySection {
    fn default() -> Self {
        let gateway = polyscale_gateway::GatewayConfig::new("");
        Self {
            trusted_proxy_hops: gateway.trusted_proxy_hops,
            trust_forwarded_for: None,
            introspection: gateway.introspection,
            graphiql: gateway.graphiql,
            service_timeout: gateway.service_timeout,
            header_read_timeout: gateway.server.header_read_timeout,
            request_timeout: gateway.server.request_timeout,
            max_connections: gateway.server.max_connections,
            max_body_bytes: gateway.limits.max_body_bytes,
            max_batch: gateway.limits.max_batch,
            max_depth: gateway.limits.max_depth,
            max_complexity: gateway.limits.max_complexity,
            max_aliases: gateway.limits.max_aliases,
            max_page_size: gateway.limits.max_page_size,
            max_plugin_upload_bytes: gateway.max_plugin_upload_bytes,
            rate_limit: RateLimitSection::default(),
        }
    }
}

impl Default for RateLimitSection {
    fn default() -> Self {
        let limits = polyscale_gateway::RateLimits::default();
        Self {
            auth_per_minute: limits.auth.per_minute,
            auth_burst: limits.auth.burst,
            search_per_minute: limits.search.per_minute,
            search_burst: limits.search.burst,
            plugin_per_minute: limits.plugin.per_minute,
            plugin_burst: limits.plugin.burst,
        }
    }
}

/// `POLYSCALE_…` variables that are not configuration keys (the admin
/// commands' target, the config file's path).
const NOT_KEYS: &[&str] = &["admin", "admin_token_file", "grpc", "config"];

/// The flat variable names of earlier releases, and their keys now.
const LEGACY_NAMES: &[(&str, &str)] = &[
    ("product_database_url", "product.database_url"),
    ("account_database_url", "account.database_url"),
    ("credentials_database_url", "account.credentials_database_url"),
    ("elasticsearch_url", "product.search.url"),
    ("elasticsearch_index_prefix", "product.search.index_prefix"),
];

/// Why the configuration cannot be used; each names its key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    #[error("configuration key `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

impl Config {
    /// Defaults, then `file` (if given), then the environment, then
    /// `flags` (dotted keys and values, from the command line).
    pub fn load(file: Option<&Path>, flags: Figment) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.exists() {
                return Err(ConfigError::Invalid {
                    key: "config",
                    message: format!("the file {} does not exist", file.display()),
                });
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        let env = Env::prefixed("POLYSCALE_").ignore(NOT_KEYS).map(|name| {
            let name = name.as_str().to_ascii_lowercase();
            match LEGACY_NAMES.iter().find(|(old, _)| *old == name) {
                Some((_, new)) => new.to_string().into(),
                None => name.replace("__", ".").into(),
            }
        });
        let mut config: Config =
            figment.merge(env).merge(flags).extract().map_err(|e| ConfigError::Load(Box::new(e)))?;
        config.validate()?;
        // The key of earlier releases, as the one that replaced it.
        if let Some(trust) = config.gateway.trust_forwarded_for.take() {
            config.gateway.trusted_proxy_hops =
                GatewaySection { trust_forwarded_for: Some(trust), ..config.gateway.clone() }.trusted_proxy_hops();
            tracing::warn!(
                "gateway.trust_forwarded_for is deprecated: it now means gateway.trusted_proxy_hops = {}",
                config.gateway.trusted_proxy_hops
            );
        }
        Ok(config)
    }

    /// What types cannot say.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn positive(key: &'static str, ok: bool) -> Result<(), ConfigError> {
            if ok { Ok(()) } else { Err(ConfigError::Invalid { key, message: "must be greater than zero".into() }) }
        }
        positive("runtime.max_concurrent_instances", self.runtime.max_concurrent_instances > 0)?;
        positive("runtime.max_concurrent_calls_per_slot", self.runtime.max_concurrent_calls_per_slot > 0)?;
        positive("runtime.call_timeout", !self.runtime.call_timeout.is_zero())?;
        positive("runtime.call_max_memory_bytes", self.runtime.call_max_memory_bytes > 0)?;
        if self.runtime.call_max_memory_bytes > self.runtime.pool_max_memory_bytes {
            return Err(ConfigError::Invalid {
                key: "runtime.call_max_memory_bytes",
                message: format!(
                    "{} is more than runtime.pool_max_memory_bytes ({})",
                    self.runtime.call_max_memory_bytes, self.runtime.pool_max_memory_bytes
                ),
            });
        }
        if let Some(listen) = &self.admin.listen {
            match crate::admin::AdminAddress::parse(listen) {
                Err(message) => return Err(ConfigError::Invalid { key: "admin.listen", message }),
                Ok(crate::admin::AdminAddress::Tcp(_)) if self.admin.token_file.is_none() => {
                    return Err(ConfigError::Invalid {
                        key: "admin.token_file",
                        message: "a TCP admin listener needs an operator token file".into(),
                    });
                }
                Ok(_) => {}
            }
        }
        positive("components.max_upload_bytes", self.components.max_upload_bytes > 0)?;
        positive("components.compiled_cache_bytes", self.components.compiled_cache_bytes > 0)?;
        positive("sql.max_rows", self.sql.max_rows > 0)?;
        positive("sql.max_connections", self.sql.max_connections > 0)?;
        positive("account.access_token_ttl", !self.account.access_token_ttl.is_zero())?;
        positive("account.refresh_token_ttl", !self.account.refresh_token_ttl.is_zero())?;
        positive("gateway.service_timeout", !self.gateway.service_timeout.is_zero())?;
        positive("gateway.header_read_timeout", !self.gateway.header_read_timeout.is_zero())?;
        positive("gateway.request_timeout", !self.gateway.request_timeout.is_zero())?;
        positive("gateway.max_connections", self.gateway.max_connections > 0)?;
        let rate = &self.gateway.rate_limit;
        positive("gateway.rate_limit.auth_burst", rate.auth_per_minute == 0 || rate.auth_burst > 0)?;
        positive("gateway.rate_limit.search_burst", rate.search_per_minute == 0 || rate.search_burst > 0)?;
        positive("gateway.rate_limit.plugin_burst", rate.plugin_per_minute == 0 || rate.plugin_burst > 0)?;
        if self.gateway.max_plugin_upload_bytes < polyscale_gateway::MIN_PLUGIN_UPLOAD_BYTES {
            return Err(ConfigError::Invalid {
                key: "gateway.max_plugin_upload_bytes",
                message: format!(
                    "must be at least {} (32 MiB): components built from Python or JavaScript weigh about 18 MB",
                    polyscale_gateway::MIN_PLUGIN_UPLOAD_BYTES
                ),
            });
        }
        if let Some(metrics) = self.metrics_listen
            && metrics == self.listen
            && metrics.port() != 0
        {
            return Err(ConfigError::Invalid {
                key: "metrics_listen",
                message: "must differ from `listen`: metrics are not served on the public listener".into(),
            });
        }
        if !(1..=1000).contains(&self.gateway.max_page_size) {
            return Err(ConfigError::Invalid {
                key: "gateway.max_page_size",
                message: "must be between 1 and 1000".into(),
            });
        }
        for (key, url) in [
            ("components.database_url", &self.components.database_url),
            ("product.database_url", &self.product.database_url),
            ("account.database_url", &self.account.database_url),
            ("account.credentials_database_url", &self.account.credentials_database_url),
            ("order.database_url", &self.order.database_url),
        ] {
            if let Some(url) = url
                && !(url.starts_with("sqlite:") || url.starts_with("postgres:") || url.starts_with("postgresql:"))
            {
                return Err(ConfigError::Invalid { key, message: "expected a sqlite:// or postgres:// URL".into() });
            }
        }
        if self.search_engine() == SearchEngine::Elasticsearch && self.product.search.url.is_none() {
            return Err(ConfigError::Invalid {
                key: "product.search.url",
                message: "required when product.search.engine is \"elasticsearch\"".into(),
            });
        }
        if self.services.run.is_empty() {
            return Err(ConfigError::Invalid { key: "services.run", message: "name at least one service".into() });
        }
        positive("services.replicas", self.services.replicas > 0)?;
        if let Some(endpoint) = &self.telemetry.otlp_endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            return Err(ConfigError::Invalid {
                key: "telemetry.otlp_endpoint",
                message: format!("`{endpoint}` is not an http:// or https:// URL (OTLP over gRPC, port 4317)"),
            });
        }
        positive("services.reconcile_interval", !self.services.reconcile_interval.is_zero())?;
        for (key, urls) in [
            ("services.product", &self.services.product),
            ("services.account", &self.services.account),
            ("services.order", &self.services.order),
        ] {
            if let Some(Err(error)) = urls.iter().map(|u| polyscale_proto::channel::check(u)).find(Result::is_err) {
                return Err(ConfigError::Invalid { key, message: error.to_string() });
            }
        }
        if self.services.replicas > 1 {
            // Each replica would have its own files: two truths.
            let runs = |service| self.services.run.contains(&service);
            for (key, url, used) in [
                ("components.database_url", &self.components.database_url, true),
                ("product.database_url", &self.product.database_url, runs(ServiceName::Product)),
                ("account.database_url", &self.account.database_url, runs(ServiceName::Account)),
                (
                    "account.credentials_database_url",
                    &self.account.credentials_database_url,
                    runs(ServiceName::Account),
                ),
                ("order.database_url", &self.order.database_url, runs(ServiceName::Order)),
            ] {
                if used && url.as_deref().is_none_or(|u| u.starts_with("sqlite:")) {
                    return Err(ConfigError::Invalid {
                        key,
                        message: format!(
                            "services.replicas is {}: replicas must share a PostgreSQL database, not SQLite files",
                            self.services.replicas
                        ),
                    });
                }
            }
            if self.services.run.contains(&ServiceName::Product) && self.search_engine() == SearchEngine::Tantivy {
                return Err(ConfigError::Invalid {
                    key: "product.search.engine",
                    message: format!(
                        "services.replicas is {}: replicas must share Elasticsearch, not a Tantivy directory each",
                        self.services.replicas
                    ),
                });
            }
        }
        if self.payments.test.enabled
            && let Some(file) = &self.payments.test.webhook_secret_file
            && let Err(message) = polyscale_host::capabilities::payments::WebhookSecret::from_file(file)
        {
            return Err(ConfigError::Invalid { key: "payments.test.webhook_secret_file", message });
        }
        Ok(())
    }

    pub fn search_engine(&self) -> SearchEngine {
        self.product.search.engine.unwrap_or(if self.product.search.url.is_some() {
            SearchEngine::Elasticsearch
        } else {
            SearchEngine::Tantivy
        })
    }

    /// The configuration as TOML, with passwords in URLs replaced by `***`.
    pub fn redacted_toml(&self) -> String {
        let mut shown = self.clone();
        let redact = |url: &mut Option<String>| {
            if let Some(u) = url {
                *u = polyscale_host::database::redact_url(u);
            }
        };
        redact(&mut shown.components.database_url);
        redact(&mut shown.product.database_url);
        redact(&mut shown.account.database_url);
        redact(&mut shown.account.credentials_database_url);
        redact(&mut shown.order.database_url);
        redact(&mut shown.product.search.url);
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot print the configuration: {e}\n"))
    }
}
