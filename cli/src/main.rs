//! `polyscale`: run the system and operate its components.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use polyscale::admin::{Admin, AdminAddress, AdminChannel};
use polyscale::config::Config;
use polyscale::embedded::{Embedded, EmbeddedConfig};
use polyscale::telemetry;
use polyscale_proto::admin::v1 as admin;
use polyscale_proto::admin::v1::component_admin_client::ComponentAdminClient;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "polyscale",
    version,
    about = "An extensible commerce backend whose logic runs as WebAssembly components"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run everything in one process (SQLite + built-in components), or,
    /// with --services, a service host of a distributed deployment.
    Serve {
        /// Run only these services here (product, account, order;
        /// comma-separated), and no gateway.
        #[arg(long, value_delimiter = ',')]
        services: Option<Vec<String>>,
        #[command(flatten)]
        args: ServeArgs,
    },
    /// Run only the GraphQL gateway, in front of services elsewhere
    /// (`services.product`, `services.account`, `services.order`).
    Gateway(ServeArgs),
    /// The secrets a distributed deployment shares.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Print the effective configuration (secrets redacted) and exit.
    Config(ServeArgs),
    /// Manage the component versions of a running service host.
    Component {
        #[command(subcommand)]
        command: ComponentCommand,
    },
    /// Operator actions on accounts of a running service host.
    Accounts {
        #[command(subcommand)]
        command: AccountsCommand,
    },
    /// Add a generated, realistic catalog to a running system (fresh
    /// merchant accounts, the sample categories, N products).
    Seed {
        #[command(flatten)]
        admin: AdminArgs,
        /// gRPC address of the services (the data plane).
        #[arg(long, env = "POLYSCALE_GRPC", default_value = "http://127.0.0.1:50051")]
        grpc: String,
        #[arg(long, default_value_t = 10_000)]
        products: usize,
        #[arg(long, default_value_t = 10)]
        merchants: usize,
        /// Same seed, same catalog.
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Rebuild a search index from the database, with progress. The old
    /// index keeps serving until the new one is complete.
    Reindex {
        #[command(flatten)]
        admin: AdminArgs,
        #[arg(long, default_value = "products")]
        index: String,
    },
    /// Merchant plugins: write, build (see docs/plugins.md).
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Write a new plugin project (the directory NAME) from a template.
    New {
        /// rust, python, js or c.
        #[arg(long, value_parser = ["rust", "python", "js", "c"])]
        lang: String,
        /// pricing or validation.
        #[arg(long, value_parser = ["pricing", "validation"])]
        kind: String,
        /// The project's directory; its last part is the plugin's name
        /// (lower case letters, digits, dashes).
        name: PathBuf,
    },
    /// Build a plugin into a component and check it against
    /// polyscale:plugin@1.0.0 (toolchains are installed on first use).
    Build {
        /// The plugin's directory.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// The component to write (default: DIR/NAME.wasm).
        #[arg(short, long)]
        out: Option<PathBuf>,
        /// pricing or validation, when the source does not tell.
        #[arg(long, value_parser = ["pricing", "validation"])]
        kind: Option<String>,
    },
    /// Run a plugin on a sample cart here, exactly as the host would:
    /// prints the output, fuel, memory, time and logs.
    Run {
        /// The cart, as JSON (docs/plugins.md).
        #[arg(long)]
        input: PathBuf,
        /// The component.
        plugin: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Upload a plugin version to a running system (`PUT /plugins/NAME`).
    Upload {
        /// The component.
        plugin: PathBuf,
        /// The plugin's name (default: the file's stem).
        #[arg(long)]
        name: Option<String>,
        #[arg(long, value_parser = ["pricing", "validation"])]
        kind: String,
        /// Make it live at once.
        #[arg(long)]
        activate: bool,
        /// The gateway.
        #[arg(long, env = "POLYSCALE_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        /// A merchant's (or an admin's) access token.
        #[arg(long, env = "POLYSCALE_TOKEN", hide_env_values = true)]
        token: String,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Write a token signing key, its public key, a service key and an
    /// operator token into DIR (secrets mode 0600; existing files are
    /// never overwritten).
    Generate {
        #[arg(long)]
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum AccountsCommand {
    /// Grant a role (admin or merchant) to the account with this email.
    Grant {
        #[command(flatten)]
        admin: AdminArgs,
        #[arg(long)]
        email: String,
        #[arg(long, value_parser = ["admin", "merchant"])]
        role: String,
        /// The store's name (merchants).
        #[arg(long, default_value = "")]
        store_name: String,
    },
}

/// Where the configuration comes from: defaults (the embedded preset), a
/// TOML file, `POLYSCALE_…` variables, then these flags (see
/// docs/configuration.md).
#[derive(clap::Args)]
struct ServeArgs {
    /// A TOML configuration file.
    #[arg(long, env = "POLYSCALE_CONFIG")]
    config: Option<PathBuf>,
    /// Where the databases and caches live (`data_dir`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Public GraphQL address (`listen`).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Internal gRPC address of the services (`grpc_listen`).
    #[arg(long)]
    grpc_listen: Option<SocketAddr>,
    /// Prometheus `/metrics` address, or `off` (`metrics_listen`).
    #[arg(long)]
    metrics_listen: Option<String>,
    /// Product database (`product.database_url`).
    #[arg(long)]
    product_database_url: Option<String>,
    /// Account database (`account.database_url`).
    #[arg(long)]
    account_database_url: Option<String>,
    /// Credentials store: password and session hashes
    /// (`account.credentials_database_url`). Keep it apart from the account
    /// database.
    #[arg(long)]
    credentials_database_url: Option<String>,
    /// How many reverse proxies in front of the gateway append to
    /// X-Forwarded-For; the client address is the entry this many from the
    /// right (`gateway.trusted_proxy_hops`; 0 ignores the header).
    #[arg(long)]
    trusted_proxy_hops: Option<usize>,
    /// Deprecated: `--trusted-proxy-hops 1`.
    #[arg(long, hide = true)]
    trust_forwarded_for: bool,
    /// Search on Elasticsearch at this URL (`product.search.url`).
    #[arg(long)]
    elasticsearch_url: Option<String>,
    /// Prefix of the Elasticsearch index names
    /// (`product.search.index_prefix`).
    #[arg(long)]
    elasticsearch_index_prefix: Option<String>,
    /// Do not load the sample catalog on first start (`sample_data`).
    #[arg(long)]
    no_sample_data: bool,
    /// Any key, as KEY=VALUE (e.g. `--set runtime.call_timeout=5s`).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

impl ServeArgs {
    /// The effective configuration.
    fn load(&self) -> Result<Config> {
        self.load_with(None)
    }

    /// The effective configuration, running `services` if given.
    fn load_with(&self, services: Option<&[String]>) -> Result<Config> {
        use figment::Figment;
        use figment::providers::Serialized;
        use figment::value::Value;
        let mut flags = Figment::new();
        let mut put =
            |key: &str, value: Value| flags = std::mem::take(&mut flags).merge(Serialized::default(key, value));
        if let Some(v) = &self.data_dir {
            put("data_dir", v.display().to_string().into());
        }
        if let Some(v) = self.listen {
            put("listen", v.to_string().into());
        }
        if let Some(v) = self.grpc_listen {
            put("grpc_listen", v.to_string().into());
        }
        if let Some(v) = &self.metrics_listen {
            put("metrics_listen", v.clone().into());
        }
        for (key, value) in [
            ("product.database_url", &self.product_database_url),
            ("account.database_url", &self.account_database_url),
            ("account.credentials_database_url", &self.credentials_database_url),
            ("product.search.url", &self.elasticsearch_url),
            ("product.search.index_prefix", &self.elasticsearch_index_prefix),
        ] {
            if let Some(v) = value {
                put(key, v.clone().into());
            }
        }
        if self.trust_forwarded_for {
            put("gateway.trusted_proxy_hops", 1.into());
        }
        if let Some(hops) = self.trusted_proxy_hops {
            put("gateway.trusted_proxy_hops", hops.into());
        }
        if self.no_sample_data {
            put("sample_data", false.into());
        }
        if let Some(services) = services {
            put("services.run", services.join(",").into());
        }
        for pair in &self.set {
            let (key, value) = pair.split_once('=').with_context(|| format!("--set {pair}: expected KEY=VALUE"))?;
            put(key.trim(), value.parse().unwrap_or_else(|_| Value::from(value.to_string())));
        }
        Ok(Config::load(self.config.as_deref(), flags)?)
    }
}

#[derive(Subcommand)]
enum ComponentCommand {
    /// Upload a new version; it becomes active unless --no-activate.
    Deploy {
        #[command(flatten)]
        target: AdminTarget,
        /// The component binary (.wasm).
        file: PathBuf,
        #[arg(long)]
        no_activate: bool,
    },
    /// Make a stored version active (roll back or forward).
    Activate {
        #[command(flatten)]
        target: AdminTarget,
        version: String,
    },
    /// List stored versions, newest first.
    List {
        #[command(flatten)]
        target: AdminTarget,
    },
}

/// Where a host's admin plane is (see docs/security.md).
#[derive(clap::Args)]
struct AdminArgs {
    /// `unix:PATH` (the embedded default: the data directory's socket) or
    /// `HOST:PORT` with --admin-token-file.
    #[arg(long, env = "POLYSCALE_ADMIN", default_value = "unix:./data/admin.sock")]
    admin: String,
    /// The operator token, for a TCP admin listener.
    #[arg(long, env = "POLYSCALE_ADMIN_TOKEN_FILE")]
    admin_token_file: Option<PathBuf>,
}

impl AdminArgs {
    async fn connect(&self) -> Result<Admin> {
        let address = AdminAddress::parse(&self.admin).map_err(|e| anyhow::anyhow!("--admin {e}"))?;
        Ok(Admin::connect(&address, self.admin_token_file.as_deref()).await?)
    }
}

#[derive(clap::Args)]
struct AdminTarget {
    #[command(flatten)]
    admin: AdminArgs,
    /// The component slot, e.g. `product`.
    #[arg(long, default_value = "product")]
    component: String,
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve { .. } | Command::Gateway(_)) {
        telemetry::init_logs();
    }
    match cli.command {
        Command::Serve { services, args } => {
            let config = args.load_with(services.as_deref())?;
            let role = match &services {
                Some(_) => {
                    let names: Vec<&str> = config.services.run.iter().map(|s| s.as_str()).collect();
                    format!("polyscale-{}", names.join("-"))
                }
                None => "polyscale".to_string(),
            };
            let telemetry = telemetry::init(&config.telemetry, &role)?;
            let mut embedded = EmbeddedConfig::from_config(&config);
            if services.is_some() {
                embedded.services = config.services.run.clone();
                embedded.gateway = false;
            }
            let served = serve(embedded).await;
            telemetry.shutdown().await;
            served
        }
        Command::Gateway(args) => {
            let config = args.load()?;
            let telemetry = telemetry::init(&config.telemetry, "polyscale-gateway")?;
            let mut embedded = EmbeddedConfig::from_config(&config);
            embedded.services.clear();
            let served = serve(embedded).await;
            telemetry.shutdown().await;
            served
        }
        Command::Keys { command: KeysCommand::Generate { dir } } => {
            for written in polyscale::keys::generate(&dir)? {
                println!("wrote {}", written.display());
            }
            Ok(())
        }
        Command::Config(args) => {
            print!("{}", args.load()?.redacted_toml());
            Ok(())
        }
        Command::Component { command } => component(command).await,
        Command::Accounts { command: AccountsCommand::Grant { admin, email, role, store_name } } => {
            let response = admin
                .connect()
                .await?
                .operator()
                .grant_role(admin::GrantRoleRequest { email: email.clone(), role: role.clone(), store_name })
                .await
                .map_err(|s| refused("refused", s))?
                .into_inner();
            println!("{email} ({}) is now {role}", response.account_id);
            Ok(())
        }
        Command::Seed { admin, grpc, products, merchants, seed } => {
            let admin = admin.connect().await?;
            let bar = progress_bar(products as u64, "products");
            let options = polyscale::sample::SampleOptions { products, merchants, seed };
            let summary = polyscale::sample::seed(&grpc, &admin, &options, &|done, _| bar.set_position(done)).await?;
            bar.finish();
            println!("{summary}; the search index follows within moments");
            Ok(())
        }
        Command::Reindex { admin, index } => reindex(&admin, &index).await,
        Command::Plugin { command: PluginCommand::Run { input, plugin, json } } => {
            let wasm = polyscale::plugin_run::read(&plugin)?;
            let input = std::fs::read_to_string(&input).with_context(|| format!("reading {}", input.display()))?;
            let config = polyscale::config::PluginsSection::default().host_config(None);
            let report = polyscale::plugin_run::run(&wasm, &input, config).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", polyscale::plugin_run::human(&report));
            }
            if report["failure"].is_object() {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Plugin { command: PluginCommand::Upload { plugin, name, kind, activate, url, token } } => {
            let wasm = polyscale::plugin_run::read(&plugin)?;
            let name = match name {
                Some(name) => name,
                None => plugin.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string(),
            };
            let answer = polyscale::plugin_run::upload(&url, &token, &name, &kind, activate, wasm).await?;
            println!("{}", serde_json::to_string_pretty(&answer)?);
            Ok(())
        }
        Command::Plugin { command } => plugin(command),
    }
}

fn plugin(command: PluginCommand) -> Result<()> {
    use polyscale_plugin_kit::{Kind, Language};
    let kind_of = |k: &str| Kind::parse(k).expect("clap checked the kind");
    match command {
        PluginCommand::New { lang, kind, name } => {
            let language = Language::parse(&lang).expect("clap checked the language");
            let written = polyscale::plugin::new_project(&name, language, kind_of(&kind))?;
            for path in &written {
                println!("wrote {}", path.display());
            }
            println!("build it with: polyscale plugin build {}", name.display());
        }
        PluginCommand::Build { dir, out, kind } => {
            let built = polyscale::plugin::build(&dir, out.as_deref(), kind.as_deref().map(kind_of))?;
            println!(
                "{}: {} {} plugin, {} bytes, exports {}",
                built.path.display(),
                built.language,
                built.checked.kind,
                built.size,
                built.checked.kind.export()
            );
        }
        PluginCommand::Run { .. } | PluginCommand::Upload { .. } => unreachable!("handled in main"),
    }
    Ok(())
}

async fn serve(config: EmbeddedConfig) -> Result<()> {
    let (gateway, services) = (config.gateway, config.services.clone());
    let system = Embedded::build(config).await?;
    if gateway {
        tracing::info!("GraphQL at http://{}/graphql (GraphiQL in a browser)", system.http_addr());
    }
    if !services.is_empty() {
        let names: Vec<&str> = services.iter().map(|s| s.as_str()).collect();
        tracing::info!(
            "services {} (gRPC) at {}; admin plane at {}",
            names.join(", "),
            system.grpc_addr(),
            system.admin_address()
        );
    }
    if let Some(metrics) = system.metrics_addr() {
        tracing::info!("metrics at http://{metrics}/metrics, probes at /healthz and /readyz");
    }
    let shutdown = CancellationToken::new();
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("shutting down: finishing the requests in flight");
        on_signal.cancel();
    });
    system.run(shutdown).await?;
    Ok(())
}

async fn admin_client(target: &AdminTarget) -> Result<ComponentAdminClient<AdminChannel>> {
    Ok(target.admin.connect().await?.components())
}

/// A refused admin call: what, the gRPC code and the server's reason.
fn refused(what: &str, status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{what} ({:?}): {}", status.code(), status.message())
}

fn print_version(v: &admin::ComponentVersion) {
    println!(
        "{}  {:<8}  {:>9} bytes  {}{}",
        v.version,
        v.source,
        v.size_bytes,
        v.component,
        if v.active { "  (active)" } else { "" }
    );
}

async fn component(command: ComponentCommand) -> Result<()> {
    match command {
        ComponentCommand::Deploy { target, file, no_activate } => {
            let wasm = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let version = admin_client(&target)
                .await?
                .deploy_component(admin::DeployComponentRequest {
                    component: target.component.clone(),
                    wasm,
                    activate: !no_activate,
                })
                .await
                .map_err(|s| refused("deploy refused", s))?
                .into_inner();
            print_version(&version);
        }
        ComponentCommand::Activate { target, version } => {
            let version = admin_client(&target)
                .await?
                .activate_version(admin::ActivateVersionRequest { component: target.component.clone(), version })
                .await
                .map_err(|s| refused("activation refused", s))?
                .into_inner();
            print_version(&version);
        }
        ComponentCommand::List { target } => {
            let versions = admin_client(&target)
                .await?
                .list_versions(admin::ListVersionsRequest { component: target.component.clone() })
                .await
                .map_err(|s| refused("listing refused", s))?
                .into_inner()
                .versions;
            for v in &versions {
                print_version(v);
            }
        }
    }
    Ok(())
}

fn progress_bar(total: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total);
    let style = indicatif::ProgressStyle::with_template(&format!(
        "{{bar:40}} {{pos}}/{{len}} {what} ({{per_sec}}, eta {{eta}})"
    ))
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

async fn reindex(admin: &AdminArgs, index: &str) -> Result<()> {
    let mut stream = admin
        .connect()
        .await?
        .search()
        .reindex(admin::ReindexRequest { index: index.to_string() })
        .await
        .map_err(|s| refused("refused", s))?
        .into_inner();
    let bar = progress_bar(0, "documents");
    while let Some(progress) = stream.message().await.map_err(|s| refused("reindex failed", s))? {
        bar.set_length(progress.total);
        bar.set_position(progress.indexed);
        if progress.done {
            bar.finish();
            println!("{index}: {} documents indexed", progress.indexed);
        }
    }
    Ok(())
}
