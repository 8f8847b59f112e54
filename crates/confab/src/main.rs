//! The `confab` command. Thin: parses the command line, resolves the settings and hands over to
//! the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use confab::{ServeArgs, Settings};

#[derive(Parser)]
#[command(name = "confab", version, about, arg_required_else_help = true)]
struct Cli {
    /// Config file [default: ./confab.toml if present; env: CONFAB_CONFIG]
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server. Settings: flags > CONFAB_* environment variables > confab.toml > defaults
    Serve(ServeArgs),
    /// Manage Kaizala connector applications through a running server's admin API
    App(AppArgs),
    /// Inspect webhook deliveries through a running server's admin API
    Webhook(WebhookArgs),
}

#[derive(clap::Args)]
struct WebhookArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(subcommand)]
    command: WebhookCommand,
}

#[derive(Subcommand)]
enum WebhookCommand {
    /// A webhook's delivery log, newest first: attempts, status, last error
    Deliveries {
        /// The webhookId
        id: String,
        /// How many deliveries to show [default: 100]
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Send a delivery again (due now, a new round of retries)
    Redeliver {
        /// The webhookId
        id: String,
        /// The delivery's id (from `confab webhook deliveries`)
        delivery: String,
    },
}

#[derive(clap::Args)]
struct AppArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(subcommand)]
    command: AppCommand,
}

/// Where the server is and how to sign for it.
#[derive(clap::Args)]
struct ServerArgs {
    /// The server's connection string, `endpoint=…;accesskey=…`
    #[arg(
        long,
        env = "CONFAB_CONNECTION_STRING",
        hide_env_values = true,
        global = true
    )]
    connection_string: Option<String>,
    /// The server's endpoint (with --access-key, instead of --connection-string)
    #[arg(long, value_name = "URL", global = true)]
    endpoint: Option<String>,
    /// The access key, base64 (with --endpoint)
    #[arg(long, value_name = "BASE64", global = true)]
    access_key: Option<String>,
    /// A PEM certificate to trust, e.g. confab-data/tls/cert.pem of a self-signed server
    #[arg(long, value_name = "FILE", global = true)]
    ca_cert: Option<PathBuf>,
    /// Trust any server certificate
    #[arg(long, global = true)]
    insecure: bool,
}

#[derive(Subcommand)]
enum AppCommand {
    /// Register an application; prints its applicationId and applicationSecret
    Create {
        /// The application's name
        #[arg(long)]
        name: String,
        /// Permissions, e.g. groupinfo,groupmember.read,textmessage [default: all]
        #[arg(long, value_delimiter = ',')]
        scopes: Option<Vec<String>>,
    },
    /// List the registered applications
    List,
    /// Delete an application (its refresh and access tokens stop working)
    Delete {
        /// The applicationId
        id: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(&args, cli.config),
        Command::App(args) => app(args),
        Command::Webhook(args) => webhook(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // `{:#}` prints the whole chain on one line: "opening ...: permission denied".
            eprintln!("confab: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: &ServeArgs, config: Option<PathBuf>) -> anyhow::Result<()> {
    // Variables that are not valid Unicode cannot be settings; skip them rather than fail.
    let env: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let settings = confab::config::resolve(args, config.as_deref(), &env, &cwd)?;
    init_tracing(&settings)?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let running = confab::start(settings).await?;
        running
            .print_banner()
            .context("printing the start-up banner")?;
        running.wait().await;
        Ok(())
    })
}

fn webhook(args: WebhookArgs) -> anyhow::Result<()> {
    let client = admin_client(&args.server)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let answer = runtime.block_on(async {
        match &args.command {
            WebhookCommand::Deliveries { id, limit } => client.webhook_deliveries(id, *limit).await,
            WebhookCommand::Redeliver { id, delivery } => client.redeliver(id, delivery).await,
        }
    })?;
    println!("{}", serde_json::to_string_pretty(&answer)?);
    Ok(())
}

fn admin_client(server: &ServerArgs) -> anyhow::Result<confab::admin_client::AdminClient> {
    let (endpoint, key) = match (&server.connection_string, &server.endpoint, &server.access_key) {
        (_, Some(endpoint), Some(key)) => (endpoint.clone(), key.clone()),
        (Some(text), None, None) => confab::admin_client::parse_connection_string(text)?,
        _ => anyhow::bail!(
            "give --connection-string (or CONFAB_CONNECTION_STRING), or both --endpoint and --access-key"
        ),
    };
    confab::tls::install_default_provider();
    confab::admin_client::AdminClient::new(
        &endpoint,
        &key,
        server.ca_cert.as_deref(),
        server.insecure,
    )
}

fn app(args: AppArgs) -> anyhow::Result<()> {
    let server = &args.server;
    let (endpoint, key) = match (&server.connection_string, &server.endpoint, &server.access_key) {
        (_, Some(endpoint), Some(key)) => (endpoint.clone(), key.clone()),
        (Some(text), None, None) => confab::admin_client::parse_connection_string(text)?,
        _ => anyhow::bail!(
            "give --connection-string (or CONFAB_CONNECTION_STRING), or both --endpoint and --access-key"
        ),
    };
    // The TLS stack needs its crypto provider before the client is built.
    confab::tls::install_default_provider();
    let client = confab::admin_client::AdminClient::new(
        &endpoint,
        &key,
        server.ca_cert.as_deref(),
        server.insecure,
    )?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let answer = runtime.block_on(async {
        match &args.command {
            AppCommand::Create { name, scopes } => {
                client.create_application(name, scopes.as_deref()).await
            }
            AppCommand::List => client.list_applications().await,
            AppCommand::Delete { id } => client
                .delete_application(id)
                .await
                .map(|()| serde_json::json!({ "deleted": id })),
        }
    })?;
    println!("{}", serde_json::to_string_pretty(&answer)?);
    Ok(())
}

/// Logs go to stderr so that stdout carries only the banner.
fn init_tracing(settings: &Settings) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&settings.log)
        .with_context(|| format!("invalid log filter {:?}", settings.log))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init()
        .map_err(|err| anyhow::anyhow!("setting up logging: {err}"))
}
