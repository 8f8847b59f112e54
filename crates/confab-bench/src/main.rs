//! `confab-bench`: load benchmarks of confab's ACS face and of sends on its Kaizala face.
//!
//! Starts confab (embedded SQLite on a fresh on-disk data dir, rate limits off) in a child
//! process, sets up users, tokens and threads through the public API, drives load from this
//! process over many keep-alive connections, and prints one line per scenario: throughput,
//! latency quantiles, errors, the server's CPU and peak RSS, and the ratio to a do-nothing
//! ceiling server on the same serving stack. After each send scenario it counts the committed
//! messages through the API and compares them with the 2xx answers. The stream scenario fans one
//! thread's messages out to many SSE subscribers and checks that each got every message. See
//! BENCHMARKS.md.

/// The server runs in a child process of this binary (`serve-confab`), so it has confab's
/// allocator (see crates/confab/src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod bench;
mod client;
mod http1;
mod load;
mod procstat;
mod scratch_schema;
mod servers;
mod stream;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "confab-bench",
    about = "Load benchmarks of confab's ACS face and Kaizala sends, with a do-nothing ceiling server for scale"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Hidden>,
    #[command(flatten)]
    options: Options,
}

/// The knobs of a run.
#[derive(Args, Clone, Debug)]
pub struct Options {
    /// About a second per scenario and small seeds (what the test suite runs); no targets
    #[arg(long)]
    pub quick: bool,
    /// Seconds of load per scenario [default: 10; 1 with --quick]
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Run only the scenarios whose name contains FILTER (repeatable); the ceilings they are
    /// compared with run too
    #[arg(long, value_name = "FILTER")]
    pub scenario: Vec<String>,
    /// Also write one JSON object per line and scenario to FILE
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Messages in the thread of the list scenarios [default: 1000000; 2000 with --quick]
    #[arg(long, value_name = "N")]
    pub list_messages: Option<u64>,
    /// Threads of the many-thread scenarios [default: 1000; 100 with --quick]
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Subscribers (SSE streams) of the stream fan-out scenario [default: 1000; 50 with --quick]
    #[arg(long, value_name = "N")]
    pub subscribers: Option<usize>,
    /// Messages per second sent to the thread of the stream fan-out scenario [default: 100]
    #[arg(long, value_name = "N")]
    pub stream_rate: Option<f64>,
    /// Where the data dirs go (a fresh directory inside it, removed afterwards)
    /// [default: the system temp dir]
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    /// Give up on the whole run after this many seconds [default: 3600; 600 with --quick]
    #[arg(long, value_name = "SECS")]
    pub max_total: Option<u64>,
    /// Print the scenario names and exit
    #[arg(long)]
    pub list: bool,
    /// Keep confab's data in this PostgreSQL database (in a schema made for the run and dropped
    /// after it) instead of SQLite in the data dir, e.g. postgres://postgres@127.0.0.1/test
    #[arg(long, value_name = "URL")]
    pub postgres: Option<String>,
}

#[derive(Subcommand)]
enum Hidden {
    /// (internal) Run confab for the benchmark
    #[command(hide = true)]
    ServeConfab {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        http: bool,
        #[arg(long)]
        database_url: Option<String>,
    },
    /// (internal) Run the do-nothing ceiling server
    #[command(hide = true)]
    ServeCeiling {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        tls: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let served = match cli.command {
        Some(Hidden::ServeConfab {
            data_dir,
            http,
            database_url,
        }) => servers::serve_confab(&data_dir, http, database_url),
        Some(Hidden::ServeCeiling { dir, tls }) => servers::serve_ceiling(&dir, tls),
        None => return run(cli.options),
    };
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("confab-bench server: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(options: Options) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("confab-bench: error: starting the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let cap =
        Duration::from_secs(
            options
                .max_total
                .unwrap_or(if options.quick { 600 } else { 3600 }),
        );
    let code = runtime.block_on(async move {
        // Dropping the run (on the cap or Ctrl-C) kills the server processes it started.
        tokio::select! {
            result = tokio::time::timeout(cap, bench::run(options)) => match result {
                Ok(Ok(true)) => ExitCode::SUCCESS,
                Ok(Ok(false)) => ExitCode::FAILURE,
                Ok(Err(err)) => {
                    eprintln!("confab-bench: error: {err:#}");
                    ExitCode::FAILURE
                }
                Err(_) => {
                    eprintln!("confab-bench: error: the run took longer than --max-total {cap:?}");
                    ExitCode::FAILURE
                }
            },
            _ = tokio::signal::ctrl_c() => {
                eprintln!("confab-bench: interrupted");
                ExitCode::from(130)
            }
            _ = terminated() => {
                eprintln!("confab-bench: terminated");
                ExitCode::from(143)
            }
        }
    });
    // Connection tasks still running after an abort must not hold the exit up.
    runtime.shutdown_timeout(Duration::from_secs(1));
    code
}

/// Resolves on SIGTERM (never elsewhere), so that a terminated run still stops its servers and
/// removes its data dirs.
async fn terminated() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut stream) = signal(SignalKind::terminate()) {
            stream.recv().await;
            return;
        }
    }
    std::future::pending::<()>().await
}
