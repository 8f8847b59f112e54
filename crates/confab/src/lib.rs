//! The confab server: wires settings, store, core and faces together and runs them.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! // What integration tests do: an in-memory, plain-HTTP server on a free port.
//! let running = confab::start(confab::Settings::for_tests()).await?;
//! println!("{}", running.connection_string);
//! running.shutdown().await;
//! # Ok(()) }
//! ```

pub mod admin_client;
pub mod blobs;
pub mod config;
pub mod pins;
mod secrets;
mod tempdir;
pub mod tls;
mod webhook_client;

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context};
use axum::Router;
use base64::Engine as _;
use confab_acs::AcsConfig;
use confab_core::connector::ConnectorConfig;
use confab_core::ports::{Clock, EventSink, LocalBus, Store, SystemClock};
use confab_core::ratelimit::RateLimits;
use confab_core::{Core, CoreConfig, Limits};
use confab_kaizala::{AdminConfig, KaizalaConfig};
use confab_store_postgres::PostgresStore;
use confab_store_sqlite::SqliteStore;
use confab_stream::StreamShutdown;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower_http::trace::Trace;

pub use config::{ServeArgs, Settings};

/// The database file inside the data dir.
pub const DB_FILE: &str = "confab.db";
/// How long a shutdown waits for webhook deliveries in flight.
const WEBHOOK_GRACE: Duration = Duration::from_secs(2);
/// How long a graceful shutdown waits for in-flight requests before cutting connections.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// After the server stops, how long to wait for the last request tasks to let go of the core,
/// so that the store is dropped (and its queued writes finished) before `shutdown` returns.
const RELEASE_WAIT: Duration = Duration::from_secs(5);

/// A started server. Stop it with [`Running::shutdown`], or run it until a signal with
/// [`Running::wait`]. Dropping it without either stops the server abruptly.
pub struct Running {
    /// The address the server listens on (the real port when `port` was 0).
    pub local_addr: SocketAddr,
    /// The base URL clients use, e.g. `https://127.0.0.1:8443/`.
    pub endpoint: String,
    /// `endpoint=<endpoint>;accesskey=<base64>`, as the ACS SDKs take it.
    pub connection_string: String,
    /// The access key, base64 (the same as in the connection string).
    pub access_key: String,
    /// The certificate clients should trust; None over plain HTTP.
    pub cert_path: Option<PathBuf>,
    /// True when `cert_path` is a certificate confab made itself.
    pub self_signed: bool,
    /// The absolute data dir; None in memory.
    pub data_dir: Option<PathBuf>,
    inner: Option<Inner>,
}

/// What `shutdown` takes apart.
struct Inner {
    handle: axum_server::Handle,
    server: JoinHandle<std::io::Result<()>>,
    sweeper: Option<(watch::Sender<bool>, JoinHandle<()>)>,
    /// The webhook delivery worker.
    webhooks: (watch::Sender<bool>, JoinHandle<()>),
    core: Arc<Core>,
    /// Ends the open event streams, which would otherwise hold a graceful shutdown up.
    streams: StreamShutdown,
    /// Holds an in-memory server's certificate file; removed when dropped.
    _cert_dir: Option<tempdir::TempDir>,
}

/// Starts a server: opens the store, builds the core and the faces, binds, and serves in the
/// background. Returns once the server accepts connections.
pub async fn start(settings: Settings) -> anyhow::Result<Running> {
    start_with_clock(settings, Arc::new(SystemClock)).await
}

/// [`start`] with another clock: tests move time by hand (PIN and token expiry).
pub async fn start_with_clock(
    settings: Settings,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Running> {
    settings.validate()?;
    tls::install_default_provider();

    // The data dir, unless in memory: then nothing at all goes to disk but a temporary
    // certificate file.
    let data_dir = if settings.in_memory {
        None
    } else {
        let dir = &settings.data_dir;
        tempdir::create_private_dir_all(dir)
            .with_context(|| format!("creating the data dir {}", dir.display()))?;
        Some(tls::absolute(dir))
    };

    let secrets = match &data_dir {
        Some(dir) => secrets::ServerSecrets::load_or_create(dir)?,
        None => secrets::ServerSecrets::generate(),
    };
    let access_key = match settings.decoded_access_key()? {
        Some(key) => key,
        None => secrets.access_key.clone(),
    };

    // Certificate and port first: a mistake there fails before the database is touched.
    let tls = if settings.http {
        if settings.tls_cert.is_some() {
            tracing::warn!("serving plain HTTP: tls_cert and tls_key are ignored");
        }
        None
    } else {
        let configured = settings
            .tls_cert
            .as_deref()
            .zip(settings.tls_key.as_deref());
        Some(tls::setup(configured, data_dir.as_deref(), &settings.host)?)
    };

    let listener = bind(&settings.host, settings.port).await?;
    let local_addr = listener
        .local_addr()
        .context("reading the listening address")?;

    let scheme = if settings.http { "http" } else { "https" };
    let endpoint = format!(
        "{scheme}://{}:{}/",
        url_host(&settings.host),
        local_addr.port()
    );

    let pin_sender = pins::sender(
        settings.pin_sender,
        settings.pin_file.as_deref(),
        settings.pin_sms_url.as_deref(),
        data_dir.as_deref(),
    )?;
    // Committed events go from the store's writer to the bus, and from there to the streams.
    let bus = Arc::new(LocalBus::new(settings.stream_bus_capacity));
    let store = open_store(
        settings.database_url.as_deref(),
        data_dir.as_deref(),
        clock.clone(),
        bus.clone(),
    )
    .await?;
    let media_blobs = open_blobs(settings.media_dir.as_deref(), data_dir.as_deref())?;
    let mut core = Core::new(
        store,
        clock,
        CoreConfig {
            resource_id: secrets.resource_id.clone(),
            token_secret: secrets.token_secret.clone(),
            limits: Limits::default(),
        },
    )
    .with_rate_limits(
        &RateLimits::profile(settings.rate_limits).overridden_by(&settings.rate_limit_rules),
    )
    .with_connectors(ConnectorConfig {
        pin_lifetime: time::Duration::seconds(
            i64::try_from(settings.pin_lifetime_secs).unwrap_or(i64::MAX),
        ),
        pin_attempts: settings.pin_max_attempts,
        ..ConnectorConfig::default()
    })
    .with_pin_sender(pin_sender)
    .with_bus(bus)
    .with_event_retention(settings.event_retention())
    .with_blobs(media_blobs)
    .with_media_limits(settings.media_limits())
    .with_webhooks(
        Arc::new(webhook_client::HttpWebhookClient::new()?),
        settings.webhook_config(),
    );
    if settings.database_url.is_some() {
        core = core.with_shared_store(Duration::from_millis(settings.credentials_staleness_ms));
    }
    let core = Arc::new(core);
    let (streams, stream_shutdown) = confab_stream::router(core.clone(), settings.stream_config());
    let app = app(
        core.clone(),
        AcsConfig {
            access_key: access_key.clone(),
            strict_api_version: settings.strict_api_version,
            max_clock_skew: Duration::from_secs(settings.max_clock_skew_secs),
        },
        KaizalaConfig {
            endpoint_url: settings
                .public_url
                .clone()
                .unwrap_or_else(|| endpoint.clone()),
        },
        AdminConfig {
            access_key: access_key.clone(),
            max_clock_skew: Duration::from_secs(settings.max_clock_skew_secs),
        },
        streams,
    );

    let (tls_config, cert_path, self_signed, cert_dir) = match tls {
        Some(tls) => (
            Some(tls.config),
            Some(tls.cert_path),
            tls.self_signed,
            tls.temp_dir,
        ),
        None => (None, None, false, None),
    };
    let read_timeout = Duration::from_millis(settings.request_read_timeout_ms);
    let (handle, server) = launch(app, listener, tls_config, read_timeout)
        .await
        .with_context(|| format!("starting to serve on {local_addr}"))?;

    let sweeper = (settings.retention_sweep_secs > 0).then(|| {
        spawn_retention_sweeper(
            core.clone(),
            Duration::from_secs(settings.retention_sweep_secs),
        )
    });

    // Delivers what is pending (also what an earlier run recorded but did not deliver).
    let webhooks = {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(confab_core::webhooks::run_delivery_worker(
            core.clone(),
            stopped,
            WEBHOOK_GRACE,
        ));
        (stop, task)
    };

    let access_key = base64::engine::general_purpose::STANDARD.encode(&access_key);
    let connection_string = format!("endpoint={endpoint};accesskey={access_key}");
    tracing::info!(%local_addr, %endpoint, "confab listening");

    Ok(Running {
        local_addr,
        endpoint,
        connection_string,
        access_key,
        cert_path,
        self_signed,
        data_dir,
        inner: Some(Inner {
            handle,
            server,
            sweeper,
            webhooks,
            core,
            streams: stream_shutdown,
            _cert_dir: cert_dir,
        }),
    })
}

/// Serves `app` on `listener` (over TLS if `tls` is given) in a background task. Returns once
/// the accept loop runs. A client gets `read_timeout` to send a request's head and at most that
/// long between two pieces of its body.
async fn launch(
    app: Router,
    listener: std::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    read_timeout: Duration,
) -> anyhow::Result<(axum_server::Handle, JoinHandle<std::io::Result<()>>)> {
    let handle = axum_server::Handle::new();
    // Connect info lets handlers (rate limits, logs) see the peer address.
    // Traced around the whole router rather than as a router layer, which axum would apply to
    // every route apart, boxing each request's future once more.
    // Kaizala paths are normalised before the router chooses a route (they match in any case).
    let app = tower::ServiceBuilder::new()
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            read_timeout,
        ))
        .map_request(confab_kaizala::normalize_path)
        .service(app);
    let make_service = axum::ServiceExt::<_>::into_make_service_with_connect_info::<SocketAddr>(
        Trace::new_for_http(app),
    );
    // One server type for both schemes, so both share the graceful shutdown of the handle.
    // hyper closes a connection whose request head takes longer than `read_timeout`, once it
    // has a timer to tell.
    let mut server = axum_server::from_tcp(listener).handle(handle.clone());
    server
        .http_builder()
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(read_timeout);
    // TCP_NODELAY: a small write (an answer, a stream event) goes out at once instead of
    // waiting, by Nagle's algorithm, for the peer to acknowledge the previous one — which a
    // client delaying its ACKs holds back by up to 40 ms.
    let server = match tls {
        Some(config) => {
            let config = axum_server::tls_rustls::RustlsConfig::from_config(config);
            let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(config)
                .acceptor(axum_server::accept::NoDelayAcceptor::new());
            tokio::spawn(server.acceptor(acceptor).serve(make_service))
        }
        None => tokio::spawn(
            server
                .acceptor(axum_server::accept::NoDelayAcceptor::new())
                .serve(make_service),
        ),
    };
    // The listener is bound already (connections queue in the kernel); waiting for the accept
    // loop as well means that what the caller prints next is true.
    if handle.listening().await.is_none() {
        return Err(match server.await {
            Ok(Err(err)) => anyhow!(err),
            Ok(Ok(())) => anyhow!("the server stopped at once"),
            Err(err) => anyhow!(err),
        });
    }
    Ok((handle, server))
}

/// All faces in one router. The Kaizala face answers under `/v1` (in any case: `launch`
/// normalises its paths before routing), the event stream under `/stream`.
fn app(
    core: Arc<Core>,
    acs: AcsConfig,
    kaizala: KaizalaConfig,
    admin: AdminConfig,
    streams: Router,
) -> Router {
    Router::new()
        .merge(streams)
        .merge(openapi_router())
        .merge(confab_kaizala::admin_router(core.clone(), admin))
        .merge(confab_kaizala::router(core.clone(), kaizala))
        .merge(confab_acs::router(core, acs))
}

/// `GET /openapi.json`: the OpenAPI document of confab's own endpoints (the stream and the admin
/// API), without authentication.
fn openapi_router() -> Router {
    const OPENAPI: &str = include_str!("../openapi.json");
    Router::new()
        .route(
            "/openapi.json",
            axum::routing::get(|| async {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    OPENAPI,
                )
            }),
        )
        .layer(axum::middleware::map_response(
            confab_stream::json_error_shape,
        ))
}

/// The blob store of uploaded media: files under `media_dir`, else `<data_dir>/media`; in
/// memory (no data dir, no media dir) a map in memory.
fn open_blobs(
    media_dir: Option<&Path>,
    data_dir: Option<&Path>,
) -> anyhow::Result<Arc<dyn confab_core::ports::Blobs>> {
    let dir = match (media_dir, data_dir) {
        (Some(dir), _) => tls::absolute(dir),
        (None, Some(data)) => data.join("media"),
        (None, None) => return Ok(Arc::new(confab_core::ports::MemoryBlobs::default())),
    };
    let blobs = blobs::FsBlobs::open(&dir)
        .map_err(|err| anyhow!("opening the media dir {}: {err}", dir.display()))?;
    Ok(Arc::new(blobs))
}

/// A database URL fit for a log line: its password, if any, replaced by `***` (URL form
/// `postgres://user:password@host/db`, or `password=...` in the key=value form).
fn redact_password(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        // The credentials end at the last `@` before the host (a password may hold an `@`).
        let authority_end = rest.find('/').unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            if let Some((user, _password)) = rest[..at].split_once(':') {
                return format!("{scheme}://{user}:***{}", &rest[at..]);
            }
        }
        return url.to_owned();
    }
    url.split_whitespace()
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The store: PostgreSQL when a database URL is given, else SQLite in the data dir (or a
/// throw-away file when in memory).
async fn open_store(
    database_url: Option<&str>,
    data_dir: Option<&Path>,
    clock: Arc<dyn Clock>,
    sink: Arc<dyn EventSink>,
) -> anyhow::Result<Arc<dyn Store>> {
    if let Some(url) = database_url {
        let store = PostgresStore::open(url, clock)
            .await
            .with_context(|| format!("opening the PostgreSQL database {}", redact_password(url)))?;
        store.set_event_sink(sink);
        return Ok(Arc::new(store));
    }
    let db = data_dir.map(|dir| dir.join(DB_FILE));
    // Opening may run migrations: blocking work, off the async threads.
    tokio::task::spawn_blocking(move || -> anyhow::Result<Arc<dyn Store>> {
        let store = match &db {
            Some(path) => SqliteStore::open(path, clock)
                .with_context(|| format!("opening the database {}", path.display()))?,
            None => SqliteStore::in_memory(clock).context("opening the in-memory database")?,
        };
        store.set_event_sink(sink);
        Ok(Arc::new(store))
    })
    .await
    .context("opening the store")?
}

/// Binds the listening socket. `host` may be an IP address (IPv6 with or without brackets) or a
/// name; a name is resolved and the first address that binds wins.
async fn bind(host: &str, port: u16) -> anyhow::Result<std::net::TcpListener> {
    let bare = host.trim().trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((bare, port))
            .await
            .with_context(|| format!("resolving host {host:?}"))?
            .collect(),
    };
    let mut last_err = None;
    for addr in &addrs {
        match std::net::TcpListener::bind(addr) {
            Ok(listener) => return Ok(listener),
            Err(err) => last_err = Some((addr, err)),
        }
    }
    match last_err {
        Some((addr, err)) => Err(err).with_context(|| format!("listening on {addr}")),
        None => Err(anyhow!("host {host:?} resolves to no address")),
    }
}

/// The host as it goes in a URL. A wildcard address is no place to connect to, so the endpoint
/// names the loopback address of the same family instead.
fn url_host(host: &str) -> String {
    let bare = host.trim().trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) if ip.is_unspecified() => Ipv4Addr::LOCALHOST.to_string(),
        Ok(IpAddr::V6(ip)) if ip.is_unspecified() => format!("[{}]", Ipv6Addr::LOCALHOST),
        Ok(IpAddr::V6(ip)) => format!("[{ip}]"),
        Ok(IpAddr::V4(ip)) => ip.to_string(),
        Err(_) => bare.to_string(),
    }
}

/// Deletes expired threads (and forgets quiet callers' rate-limit state) every `period` until
/// told to stop. Each sweep runs in its own task,
/// so that neither an error nor a panic in one sweep ends the sweeping.
fn spawn_retention_sweeper(
    core: Arc<Core>,
    period: Duration,
) -> (watch::Sender<bool>, JoinHandle<()>) {
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let task = tokio::spawn(async move {
        let mut ticks = tokio::time::interval(period);
        // After a slow sweep, wait a full period instead of sweeping back to back.
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stop_rx.changed() => return,
            }
            let sweep = tokio::spawn({
                let core = core.clone();
                async move {
                    core.prune_rate_limits();
                    if let Err(err) = core.purge_expired_credentials().await {
                        tracing::warn!(error = %err, "purging expired PINs and tokens failed");
                    }
                    match core.purge_webhook_deliveries().await {
                        Ok(0) => {}
                        Ok(count) => tracing::debug!(count, "purged old webhook deliveries"),
                        Err(err) => {
                            tracing::warn!(error = %err, "purging webhook deliveries failed")
                        }
                    }
                    match core.purge_events().await {
                        Ok(0) => {}
                        Ok(count) => tracing::debug!(count, "purged events past their retention"),
                        Err(err) => tracing::warn!(error = %err, "purging old events failed"),
                    }
                    core.enforce_retention().await
                }
            });
            match sweep.await {
                Ok(Ok(deleted)) if deleted.is_empty() => {}
                Ok(Ok(deleted)) => {
                    tracing::info!(
                        count = deleted.len(),
                        "deleted threads past their retention"
                    )
                }
                Ok(Err(err)) => tracing::warn!(error = %err, "retention sweep failed"),
                Err(err) => tracing::error!(error = %err, "retention sweep panicked"),
            }
        }
    });
    (stop_tx, task)
}

impl Running {
    /// Stops gracefully: stops accepting, lets in-flight requests finish (for up to
    /// [`SHUTDOWN_GRACE`]), stops the retention sweeper, then drops the core and the store so
    /// that queued writes are committed before this returns.
    pub async fn shutdown(mut self) {
        let Some(inner) = self.inner.take() else {
            return;
        };
        let Inner {
            handle,
            server,
            sweeper,
            webhooks,
            core,
            streams,
            _cert_dir,
        } = inner;

        // Streams never end by themselves: end them first, then wait for the other requests.
        streams.shutdown();
        handle.graceful_shutdown(Some(SHUTDOWN_GRACE));
        match server.await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::error!(error = %err, "the server failed"),
            Err(err) => tracing::error!(error = %err, "the server task failed"),
        }
        if let Some((stop, task)) = sweeper {
            let _ = stop.send(true);
            if let Err(err) = task.await {
                tracing::error!(error = %err, "the retention sweeper failed");
            }
        }
        // In-flight deliveries get a moment; unfinished ones stay pending for the next start.
        let _ = webhooks.0.send(true);
        if let Err(err) = webhooks.1.await {
            tracing::error!(error = %err, "the webhook worker failed");
        }
        release_core(core).await;
        tracing::info!("confab stopped");
    }

    /// Runs until SIGINT (Ctrl-C) or SIGTERM, then shuts down gracefully. A second signal
    /// during the grace period cuts the remaining connections at once.
    pub async fn wait(mut self) {
        let Some(inner) = self.inner.as_mut() else {
            return;
        };
        tokio::select! {
            _ = shutdown_signal() => {
                tracing::info!("shutting down (send the signal again to stop at once)");
            }
            result = &mut inner.server => {
                // The server ended on its own (it only does on an error): nothing to wait for.
                match result {
                    Ok(Ok(())) => tracing::error!("the server stopped unexpectedly"),
                    Ok(Err(err)) => tracing::error!(error = %err, "the server failed"),
                    Err(err) => tracing::error!(error = %err, "the server task failed"),
                }
                // Replace the finished task: a JoinHandle must not be polled again.
                inner.server = tokio::spawn(async { Ok(()) });
            }
        }
        let handle = inner.handle.clone();
        let impatience = tokio::spawn(async move {
            shutdown_signal().await;
            tracing::warn!("stopping at once");
            handle.shutdown();
        });
        self.shutdown().await;
        impatience.abort();
    }

    /// The start-up banner `confab serve` prints, Azurite-style.
    pub fn banner(&self) -> String {
        let mut out = format!(
            "confab {} listening\n  endpoint:          {}\n  connection string: {}\n",
            env!("CARGO_PKG_VERSION"),
            self.endpoint,
            self.connection_string
        );
        match &self.cert_path {
            Some(path) if self.self_signed => {
                let p = path.display();
                out.push_str(&format!(
                    "  certificate:       {p}  (self-signed; trust it: REQUESTS_CA_BUNDLE={p} / NODE_EXTRA_CA_CERTS={p})\n"
                ));
            }
            Some(path) => {
                out.push_str(&format!("  certificate:       {}\n", path.display()));
            }
            None => out.push_str("  certificate:       none (plain HTTP)\n"),
        }
        match &self.data_dir {
            Some(dir) => out.push_str(&format!("  data:              {}\n", dir.display())),
            None => out.push_str("  data:              in memory\n"),
        }
        out
    }

    /// Prints the banner to stdout and flushes it: scripts wait for the `connection string:`
    /// line, which must therefore not sit in a buffer.
    pub fn print_banner(&self) -> std::io::Result<()> {
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(self.banner().as_bytes())?;
        stdout.flush()
    }
}

impl Drop for Running {
    /// Dropped without `shutdown`: stop serving at once rather than leave a server running
    /// in the background with nobody to stop it.
    fn drop(&mut self) {
        if let Some(inner) = &self.inner {
            inner.streams.shutdown();
            inner.handle.shutdown();
            if let Some((stop, _)) = &inner.sweeper {
                let _ = stop.send(true);
            }
            let _ = inner.webhooks.0.send(true);
        }
    }
}

/// Waits until the last other holder of the core (a finishing request task) lets go, then
/// drops it off the async threads: dropping the store waits for its writer to commit what is
/// queued.
async fn release_core(core: Arc<Core>) {
    let deadline = tokio::time::Instant::now() + RELEASE_WAIT;
    while Arc::strong_count(&core) > 1 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if Arc::strong_count(&core) > 1 {
        tracing::warn!(
            "the core is still in use after shutdown; the store closes when it is released"
        );
    }
    if let Err(err) = tokio::task::spawn_blocking(move || drop(core)).await {
        tracing::error!(error = %err, "closing the store failed");
    }
}

/// Resolves on SIGINT or (on unix) SIGTERM. If a signal cannot be watched, that one is just
/// never reported.
async fn shutdown_signal() {
    let interrupt = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %err, "cannot watch for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot watch for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use axum::routing::get;

    #[test]
    fn a_database_password_is_kept_out_of_messages() {
        assert_eq!(
            redact_password("postgres://confab:s3cr@t@db.example:5432/chat"),
            "postgres://confab:***@db.example:5432/chat"
        );
        assert_eq!(
            redact_password("postgres://confab@db.example/chat"),
            "postgres://confab@db.example/chat"
        );
        assert_eq!(
            redact_password("host=db user=confab password=hunter2 dbname=chat"),
            "host=db user=confab password=*** dbname=chat"
        );
    }

    const TEST_READ_TIMEOUT: Duration = Duration::from_secs(30);

    /// A router that answers at once on `/` and after a while on `/slow`.
    fn test_app() -> Router {
        Router::new().route("/", get(|| async { "hello" })).route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(400)).await;
                "slow"
            }),
        )
    }

    // Loopback only: the serving machinery (TLS, ALPN, graceful shutdown) without the faces.
    #[tokio::test]
    async fn https_with_h2_and_graceful_shutdown() {
        tls::install_default_provider();
        let pair = tls::generate_self_signed(&tls::subject_alt_names("127.0.0.1")).unwrap();
        let config = tls::server_config(&pair).unwrap();
        let listener = bind("127.0.0.1", 0).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (handle, server) = launch(test_app(), listener, Some(config), TEST_READ_TIMEOUT)
            .await
            .unwrap();

        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&pair.cert_pem).unwrap())
            .build()
            .unwrap();
        for host in ["127.0.0.1", "localhost"] {
            let url = format!("https://{host}:{}/", addr.port());
            let response = client.get(&url).send().await.unwrap();
            assert_eq!(
                response.version(),
                reqwest::Version::HTTP_2,
                "ALPN picks h2"
            );
            assert_eq!(response.text().await.unwrap(), "hello");
        }

        // A request in flight when the shutdown starts still gets its answer.
        let slow = tokio::spawn({
            let client = client.clone();
            let url = format!("https://127.0.0.1:{}/slow", addr.port());
            async move { client.get(url).send().await?.text().await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        handle.graceful_shutdown(Some(SHUTDOWN_GRACE));
        assert_eq!(slow.await.unwrap().unwrap(), "slow");
        server.await.unwrap().unwrap();
        // And then nobody listens any more.
        assert!(std::net::TcpStream::connect(addr).is_err());
    }

    #[tokio::test]
    async fn restart_on_a_data_dir_keeps_key_and_certificate() {
        let dir = tempdir::TempDir::new("start-disk").unwrap();
        let settings = Settings {
            in_memory: false,
            http: false,
            data_dir: dir.path().join("data"),
            ..Settings::for_tests()
        };
        let first = start(settings.clone()).await.unwrap();
        let data_dir = first.data_dir.clone().unwrap();
        let cert_path = first.cert_path.clone().unwrap();
        assert!(data_dir.join(DB_FILE).exists());
        assert_eq!(cert_path, data_dir.join("tls").join(tls::CERT_FILE));
        assert!(first.endpoint.starts_with("https://127.0.0.1:"));
        assert_eq!(
            first.connection_string,
            format!("endpoint={};accesskey={}", first.endpoint, first.access_key)
        );
        assert!(first
            .banner()
            .contains("connection string: endpoint=https://"));
        let cert = std::fs::read(&cert_path).unwrap();
        let key = first.access_key.clone();
        first.shutdown().await;

        let second = start(settings).await.unwrap();
        assert_eq!(second.access_key, key);
        assert_eq!(std::fs::read(&cert_path).unwrap(), cert);
        second.shutdown().await;
    }

    #[tokio::test]
    async fn in_memory_leaves_nothing_behind() {
        let dir = tempdir::TempDir::new("start-memory").unwrap();
        let settings = Settings {
            http: false,
            data_dir: dir.path().join("data"),
            access_key: Some("c2VjcmV0".into()),
            ..Settings::for_tests()
        };
        let running = start(settings).await.unwrap();
        assert_eq!(running.access_key, "c2VjcmV0");
        assert!(running.data_dir.is_none());
        assert!(running.banner().contains("in memory"));
        let cert_path = running.cert_path.clone().unwrap();
        assert!(cert_path.is_file());
        running.shutdown().await;
        assert!(!cert_path.exists());
        assert!(!dir.path().join("data").exists());
    }

    #[tokio::test]
    async fn plain_http_serves_too() {
        let listener = bind("localhost", 0).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (handle, server) = launch(test_app(), listener, None, TEST_READ_TIMEOUT)
            .await
            .unwrap();
        let url = format!("http://{}/", addr);
        let text = reqwest::get(url).await.unwrap().text().await.unwrap();
        assert_eq!(text, "hello");
        handle.graceful_shutdown(Some(SHUTDOWN_GRACE));
        server.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn busy_port_is_a_clear_error() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let err = bind("127.0.0.1", port).await.unwrap_err();
        assert!(
            format!("{err:#}").contains(&format!("127.0.0.1:{port}")),
            "{err:#}"
        );
    }

    #[test]
    fn url_hosts() {
        assert_eq!(url_host("127.0.0.1"), "127.0.0.1");
        assert_eq!(url_host("0.0.0.0"), "127.0.0.1");
        assert_eq!(url_host("::"), "[::1]");
        assert_eq!(url_host("[::]"), "[::1]");
        assert_eq!(url_host("::1"), "[::1]");
        assert_eq!(url_host("[::1]"), "[::1]");
        assert_eq!(url_host("localhost"), "localhost");
    }
}
