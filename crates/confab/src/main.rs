//! The `confab` command. Thin: parses the command line, resolves the settings and hands over to
//! the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use confab::{ServeArgs, Settings};

/// mimalloc rather than the system allocator: requests are parsed on one thread and their
/// memory freed on another (the store's writer, the read pool), and glibc's malloc takes a lock
/// on the owning arena for every such free. Measured in BENCHMARKS.md: sends +20 % at the same
/// CPU, the RSS about the same.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Manage ACS event subscriptions (Event Grid / CloudEvents webhooks) through a running
    /// server's admin API
    Events(EventsArgs),
}

#[derive(clap::Args)]
struct EventsArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(subcommand)]
    command: EventsCommand,
}

#[derive(Subcommand)]
enum EventsCommand {
    /// Subscribe an endpoint (validated first: it must answer the Event Grid
    /// SubscriptionValidationEvent, or the CloudEvents OPTIONS handshake)
    Create {
        /// The endpoint events are posted to
        #[arg(long, value_name = "URL")]
        url: String,
        /// A name (letters, digits, hyphens) [default: from the id]
        #[arg(long)]
        name: Option<String>,
        /// The envelope: EventGridSchema or CloudEventSchemaV1_0 [default: EventGridSchema]
        #[arg(long)]
        schema: Option<String>,
        /// Event types, e.g. ChatMessageReceived,ChatThreadCreated (with or without
        /// `Microsoft.Communication.`) [default: all 16 chat events]
        #[arg(long = "types", value_delimiter = ',')]
        types: Option<Vec<String>>,
        /// Only these threads (ids, comma-separated) [default: all threads]
        #[arg(long = "threads", value_delimiter = ',')]
        threads: Option<Vec<String>>,
    },
    /// List the event subscriptions
    List,
    /// Show one event subscription
    Show {
        /// The subscription's id
        id: String,
    },
    /// Re-enable a subscription (disabled after failing deliveries); its failed deliveries resume
    Enable {
        /// The subscription's id
        id: String,
    },
    /// Stop deliveries to a subscription until it is enabled again
    Disable {
        /// The subscription's id
        id: String,
    },
    /// Delete a subscription and its delivery log
    Delete {
        /// The subscription's id
        id: String,
    },
    /// A subscription's delivery log, newest first: attempts, status, last error
    Deliveries {
        /// The subscription's id
        id: String,
        /// How many deliveries to show [default: 100]
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Send a delivery again (due now, a new round of retries)
    Redeliver {
        /// The subscription's id
        id: String,
        /// The delivery's id (from `confab events deliveries`)
        delivery: String,
    },
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
        Command::Events(args) => events(args),
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
    let answer = block_on(async {
        match &args.command {
            WebhookCommand::Deliveries { id, limit } => client.webhook_deliveries(id, *limit).await,
            WebhookCommand::Redeliver { id, delivery } => client.redeliver(id, delivery).await,
        }
    })?;
    println!("{}", serde_json::to_string_pretty(&answer)?);
    Ok(())
}

fn events(args: EventsArgs) -> anyhow::Result<()> {
    use serde_json::json;
    let client = admin_client(&args.server)?;
    let answer = block_on(async {
        match args.command {
            EventsCommand::Create {
                url,
                name,
                schema,
                types,
                threads,
            } => {
                let mut request = json!({ "endpointUrl": url });
                if let Some(name) = name {
                    request["name"] = json!(name);
                }
                if let Some(schema) = schema {
                    request["eventDeliverySchema"] = json!(schema);
                }
                if let Some(types) = types {
                    request["includedEventTypes"] = json!(types);
                }
                if let Some(threads) = threads {
                    request["threadIds"] = json!(threads);
                }
                client.create_event_subscription(request).await
            }
            EventsCommand::List => client.list_event_subscriptions().await,
            EventsCommand::Show { id } => client.event_subscription(&id).await,
            EventsCommand::Enable { id } => {
                client
                    .update_event_subscription(&id, json!({ "enabled": true }))
                    .await
            }
            EventsCommand::Disable { id } => {
                client
                    .update_event_subscription(&id, json!({ "enabled": false }))
                    .await
            }
            EventsCommand::Delete { id } => client
                .delete_event_subscription(&id)
                .await
                .map(|()| json!({ "deleted": id })),
            EventsCommand::Deliveries { id, limit } => client.event_deliveries(&id, limit).await,
            EventsCommand::Redeliver { id, delivery } => {
                client.redeliver_event(&id, &delivery).await
            }
        }
    })?;
    println!("{}", serde_json::to_string_pretty(&answer)?);
    Ok(())
}

/// Runs one admin call to completion.
fn block_on<T>(call: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(call)
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
    let client = admin_client(&args.server)?;
    let answer = block_on(async {
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
