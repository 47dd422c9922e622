//! `polyscale`: run the system and operate its components.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use polyscale::embedded::{Embedded, EmbeddedConfig};
use polyscale::telemetry;
use polyscale_proto::admin::v1 as admin;
use polyscale_proto::admin::v1::component_admin_client::ComponentAdminClient;
use polyscale_proto::admin::v1::operator_client::OperatorClient;
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
    /// Run everything in one process (SQLite + built-in components).
    Serve(ServeArgs),
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
        /// gRPC address of the service host.
        #[arg(long, env = "POLYSCALE_ADMIN", default_value = "http://127.0.0.1:50051")]
        admin: String,
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
        #[arg(long, env = "POLYSCALE_ADMIN", default_value = "http://127.0.0.1:50051")]
        admin: String,
        #[arg(long, default_value = "products")]
        index: String,
    },
}

#[derive(Subcommand)]
enum AccountsCommand {
    /// Grant a role (admin or merchant) to the account with this email.
    Grant {
        /// gRPC address of the service host running accounts.
        #[arg(long, env = "POLYSCALE_ADMIN", default_value = "http://127.0.0.1:50051")]
        admin: String,
        #[arg(long)]
        email: String,
        #[arg(long, value_parser = ["admin", "merchant"])]
        role: String,
        /// The store's name (merchants).
        #[arg(long, default_value = "")]
        store_name: String,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Where the databases and caches live.
    #[arg(long, env = "POLYSCALE_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// Public GraphQL address.
    #[arg(long, env = "POLYSCALE_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Internal gRPC address of the services and the component admin API.
    #[arg(long, env = "POLYSCALE_GRPC_LISTEN", default_value = "127.0.0.1:50051")]
    grpc_listen: SocketAddr,
    /// Product database (default: SQLite in the data directory).
    #[arg(long, env = "POLYSCALE_PRODUCT_DATABASE_URL")]
    product_database_url: Option<String>,
    /// Account database (default: SQLite in the data directory).
    #[arg(long, env = "POLYSCALE_ACCOUNT_DATABASE_URL")]
    account_database_url: Option<String>,
    /// Credentials store: password and session hashes (default: SQLite in
    /// the data directory). Keep it apart from the account database.
    #[arg(long, env = "POLYSCALE_CREDENTIALS_DATABASE_URL")]
    credentials_database_url: Option<String>,
    /// Take client addresses from X-Forwarded-For (only behind a proxy you
    /// trust to set it).
    #[arg(long)]
    trust_forwarded_for: bool,
    /// Search on Elasticsearch at this URL instead of the embedded Tantivy.
    #[arg(long, env = "POLYSCALE_ELASTICSEARCH_URL")]
    elasticsearch_url: Option<String>,
    /// Prefix of the Elasticsearch index (alias) names.
    #[arg(long, env = "POLYSCALE_ELASTICSEARCH_INDEX_PREFIX", default_value = "polyscale-")]
    elasticsearch_index_prefix: String,
    /// Do not load the sample catalog on first start.
    #[arg(long)]
    no_sample_data: bool,
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

#[derive(clap::Args)]
struct AdminTarget {
    /// gRPC address of the service host.
    #[arg(long, env = "POLYSCALE_ADMIN", default_value = "http://127.0.0.1:50051")]
    admin: String,
    /// The component slot, e.g. `product`.
    #[arg(long, default_value = "product")]
    component: String,
}

#[tokio::main]
async fn main() -> Result<()> {
    telemetry::init_logs();
    match Cli::parse().command {
        Command::Serve(args) => serve(args).await,
        Command::Component { command } => component(command).await,
        Command::Accounts { command: AccountsCommand::Grant { admin, email, role, store_name } } => {
            let mut client =
                OperatorClient::connect(admin.clone()).await.with_context(|| format!("connecting to {admin}"))?;
            let response = client
                .grant_role(admin::GrantRoleRequest { email: email.clone(), role: role.clone(), store_name })
                .await
                .map_err(|s| anyhow::anyhow!("refused: {}", s.message()))?
                .into_inner();
            println!("{email} ({}) is now {role}", response.account_id);
            Ok(())
        }
        Command::Seed { admin, products, merchants, seed } => {
            let bar = progress_bar(products as u64, "products");
            let options = polyscale::sample::SampleOptions { products, merchants, seed };
            let summary = polyscale::sample::seed(&admin, &options, &|done, _| bar.set_position(done)).await?;
            bar.finish();
            println!("{summary}; the search index follows within moments");
            Ok(())
        }
        Command::Reindex { admin, index } => reindex(&admin, &index).await,
    }
}

async fn serve(args: ServeArgs) -> Result<()> {
    let mut config = EmbeddedConfig::new(&args.data_dir);
    config.listen = args.listen;
    config.grpc_listen = args.grpc_listen;
    config.product_database_url = args.product_database_url;
    config.account_database_url = args.account_database_url;
    config.credentials_database_url = args.credentials_database_url;
    config.trust_forwarded_for = args.trust_forwarded_for;
    config.search = args.elasticsearch_url.map(|url| polyscale_host::server::SearchEngineConfig::Elasticsearch {
        url,
        index_prefix: args.elasticsearch_index_prefix,
    });
    config.sample_data = !args.no_sample_data;
    let system = Embedded::build(config).await?;
    tracing::info!("GraphQL at http://{}/graphql (GraphiQL in a browser)", system.http_addr());
    tracing::info!("services and component admin (gRPC) at {}", system.grpc_addr());
    let shutdown = CancellationToken::new();
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
        on_signal.cancel();
    });
    system.run(shutdown).await?;
    Ok(())
}

async fn admin_client(target: &AdminTarget) -> Result<ComponentAdminClient<tonic::transport::Channel>> {
    Ok(ComponentAdminClient::connect(target.admin.clone())
        .await
        .with_context(|| format!("connecting to {}", target.admin))?
        .max_encoding_message_size(usize::MAX))
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
                .map_err(|s| anyhow::anyhow!("deploy refused: {}", s.message()))?
                .into_inner();
            print_version(&version);
        }
        ComponentCommand::Activate { target, version } => {
            let version = admin_client(&target)
                .await?
                .activate_version(admin::ActivateVersionRequest { component: target.component.clone(), version })
                .await
                .map_err(|s| anyhow::anyhow!("activation refused: {}", s.message()))?
                .into_inner();
            print_version(&version);
        }
        ComponentCommand::List { target } => {
            let versions = admin_client(&target)
                .await?
                .list_versions(admin::ListVersionsRequest { component: target.component.clone() })
                .await
                .map_err(|s| anyhow::anyhow!("listing refused: {}", s.message()))?
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

async fn reindex(admin: &str, index: &str) -> Result<()> {
    use polyscale_proto::admin::v1::search_admin_client::SearchAdminClient;
    let mut client =
        SearchAdminClient::connect(admin.to_string()).await.with_context(|| format!("connecting to {admin}"))?;
    let mut stream = client
        .reindex(admin::ReindexRequest { index: index.to_string() })
        .await
        .map_err(|s| anyhow::anyhow!("refused: {}", s.message()))?
        .into_inner();
    let bar = progress_bar(0, "documents");
    while let Some(progress) = stream.message().await.map_err(|s| anyhow::anyhow!("reindex failed: {}", s.message()))? {
        bar.set_length(progress.total);
        bar.set_position(progress.indexed);
        if progress.done {
            bar.finish();
            println!("{index}: {} documents indexed", progress.indexed);
        }
    }
    Ok(())
}
