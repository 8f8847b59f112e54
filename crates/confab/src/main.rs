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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(&args, cli.config),
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
