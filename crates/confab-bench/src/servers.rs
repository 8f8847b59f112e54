//! The servers under test, each in its own process so that its CPU time and memory can be read
//! from /proc: the benchmark re-executes itself with a hidden subcommand (`serve-confab`,
//! `serve-ceiling`). The child prints one `READY {json}` line on stdout once it accepts
//! connections and runs until its stdin closes — so it also stops when the benchmark dies.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use axum::body::Bytes;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use confab_core::ratelimit::Profile as RateLimitProfile;
use serde::{Deserialize, Serialize};

/// What a child reports once it serves.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReadyInfo {
    pub addr: SocketAddr,
    /// The ACS access key (base64); empty for the ceiling server.
    pub access_key: String,
    /// The certificate to trust over HTTPS.
    pub cert: Option<PathBuf>,
}

const READY: &str = "READY ";

/// How long a child may take to start, and to stop gracefully before it is killed.
const START_TIMEOUT: Duration = Duration::from_secs(120);
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// Child side.

/// `serve-confab`: confab itself on an on-disk data dir (and its data in PostgreSQL when given
/// a database URL), rate limits off.
pub fn serve_confab(
    data_dir: &Path,
    http: bool,
    database_url: Option<String>,
) -> anyhow::Result<()> {
    let settings = confab::Settings {
        in_memory: false,
        http,
        data_dir: data_dir.to_path_buf(),
        database_url,
        port: 0,
        rate_limits: RateLimitProfile::Off,
        ..confab::Settings::for_tests()
    };
    // The server's warnings and errors on the benchmark's stderr (its own lines are on
    // stdout): a failed request in a scenario shows its cause. RUST_LOG for more.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .init();
    runtime()?.block_on(async move {
        let running = confab::start(settings).await?;
        announce(&ReadyInfo {
            addr: running.local_addr,
            access_key: running.access_key.clone(),
            cert: running.cert_path.clone(),
        })?;
        wait_for_stdin_eof().await;
        running.shutdown().await;
        Ok(())
    })
}

/// `serve-ceiling`: the same serving stack as confab (axum on axum-server, the same TLS setup)
/// with no work behind it: any POST has its JSON body parsed and gets 201 `{"id":"1"}`; any
/// other request gets 200 `{"value":[]}`.
pub fn serve_ceiling(dir: &Path, tls: bool) -> anyhow::Result<()> {
    confab::tls::install_default_provider();
    runtime()?.block_on(async move {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let app = Router::new().fallback(ceiling_handler);
        let handle = axum_server::Handle::new();
        let mut cert = None;
        let server = if tls {
            let names = confab::tls::subject_alt_names("127.0.0.1");
            let pair = confab::tls::generate_self_signed(&names)?;
            std::fs::create_dir_all(dir)?;
            let path = dir.join("ceiling-cert.pem");
            std::fs::write(&path, &pair.cert_pem)?;
            cert = Some(path);
            let config = confab::tls::server_config(&pair)?;
            let config = axum_server::tls_rustls::RustlsConfig::from_config(config);
            tokio::spawn(
                axum_server::from_tcp_rustls(listener, config)
                    .handle(handle.clone())
                    .serve(app.into_make_service()),
            )
        } else {
            tokio::spawn(
                axum_server::from_tcp(listener)
                    .handle(handle.clone())
                    .serve(app.into_make_service()),
            )
        };
        if handle.listening().await.is_none() {
            bail!("the ceiling server did not start: {:?}", server.await);
        }
        announce(&ReadyInfo {
            addr,
            access_key: String::new(),
            cert,
        })?;
        wait_for_stdin_eof().await;
        handle.graceful_shutdown(Some(Duration::from_secs(5)));
        let _ = server.await;
        Ok(())
    })
}

async fn ceiling_handler(method: Method, body: Bytes) -> Response {
    if method == Method::POST {
        match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(_) => (
                StatusCode::CREATED,
                [("content-type", "application/json")],
                r#"{"id":"1"}"#,
            )
                .into_response(),
            Err(_) => StatusCode::BAD_REQUEST.into_response(),
        }
    } else {
        (
            StatusCode::OK,
            [("content-type", "application/json")],
            r#"{"value":[]}"#,
        )
            .into_response()
    }
}

/// The runtime `confab serve` uses: multi-threaded, one worker per core.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn announce(info: &ReadyInfo) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{READY}{}", serde_json::to_string(info)?)?;
    out.flush()?;
    Ok(())
}

async fn wait_for_stdin_eof() {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut sink = [0u8; 256];
        let mut stdin = std::io::stdin().lock();
        while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
        let _ = tx.send(());
    });
    let _ = rx.await;
}

// ---------------------------------------------------------------------------------------------
// Parent side.

/// A server child process. Dropping it kills the process.
pub struct ServerProcess {
    pub name: String,
    pub info: ReadyInfo,
    pub pid: u32,
    /// From spawning the process to its READY line.
    pub started_in: Duration,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
}

impl ServerProcess {
    /// Starts `current_exe args...` and waits for its READY line.
    pub async fn spawn(name: &str, args: Vec<String>) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("finding the benchmark executable")?;
        let spawned = Instant::now();
        let mut child = Command::new(exe)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting the {name} server"))?;
        let pid = child.id();
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = tokio::sync::oneshot::channel();
        // Read until READY, then keep draining so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let mut tx = Some(tx);
            for line in lines.by_ref() {
                let Ok(line) = line else { break };
                if let Some(json) = line.strip_prefix(READY) {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(serde_json::from_str::<ReadyInfo>(json));
                    }
                }
            }
        });
        let mut process = Self {
            name: name.to_string(),
            info: ReadyInfo {
                addr: SocketAddr::from(([127, 0, 0, 1], 0)),
                access_key: String::new(),
                cert: None,
            },
            pid,
            started_in: Duration::ZERO,
            child: Some(child),
            stdin,
        };
        let info = match tokio::time::timeout(START_TIMEOUT, rx).await {
            Ok(Ok(Ok(info))) => info,
            Ok(Ok(Err(err))) => bail!("the {name} server's READY line is not valid: {err}"),
            Ok(Err(_)) => {
                let status = process.child.as_mut().and_then(|c| c.wait().ok());
                bail!("the {name} server exited before it was ready ({status:?})")
            }
            Err(_) => bail!("the {name} server was not ready within {START_TIMEOUT:?}"),
        };
        process.started_in = spawned.elapsed();
        process.info = info;
        Ok(process)
    }

    /// Closes the child's stdin (its signal to shut down gracefully) and waits for it to exit;
    /// kills it if it takes too long.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        drop(self.stdin.take());
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let name = self.name.clone();
        tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + STOP_TIMEOUT;
            loop {
                match child.try_wait() {
                    Ok(Some(status)) if status.success() => return Ok(()),
                    Ok(Some(status)) => return Err(anyhow!("the {name} server exited: {status}")),
                    Ok(None) if Instant::now() > deadline => {
                        let _ = child.kill();
                        let _ = child.wait();
                        return Err(anyhow!("the {name} server did not stop; killed"));
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                    Err(err) => return Err(anyhow!(err)),
                }
            }
        })
        .await?
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Arguments of the hidden subcommands.
pub fn confab_args(data_dir: &Path, http: bool, database_url: Option<&str>) -> Vec<String> {
    let mut args = vec![
        "serve-confab".to_string(),
        "--data-dir".to_string(),
        data_dir.display().to_string(),
    ];
    if http {
        args.push("--http".into());
    }
    if let Some(url) = database_url {
        args.push("--database-url".into());
        args.push(url.into());
    }
    args
}

pub fn ceiling_args(dir: &Path, tls: bool) -> Vec<String> {
    let mut args = vec![
        "serve-ceiling".to_string(),
        "--dir".to_string(),
        dir.display().to_string(),
    ];
    if tls {
        args.push("--tls".into());
    }
    args
}
