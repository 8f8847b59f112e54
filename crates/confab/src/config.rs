//! Settings and where they come from.
//!
//! Precedence, highest first: command-line flags > `CONFAB_*` environment variables >
//! `confab.toml` (in the current directory, or the file named by `--config` / `CONFAB_CONFIG`) >
//! built-in defaults. Only flags actually given override; a flag left out lets the lower layers
//! speak.
//!
//! The environment is read through [`resolve`]'s `env` argument rather than straight from the
//! process, so the precedence rules can be tested without mutating the process environment.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use base64::Engine as _;
use clap::Args;
use confab_core::ratelimit::{Profile as RateLimitProfile, RateLimits};
use figment::providers::{Format, Toml};
use figment::value::{Dict, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::{Deserialize, Serialize};

use crate::pins::PinSenderKind;

/// The file read from the current directory when no `--config` / `CONFAB_CONFIG` names one.
pub const DEFAULT_CONFIG_FILE: &str = "confab.toml";
/// The environment variable naming the config file.
pub const CONFIG_ENV: &str = "CONFAB_CONFIG";
/// The prefix of every setting's environment variable: `CONFAB_PORT`, `CONFAB_DATA_DIR`, ...
pub const ENV_PREFIX: &str = "CONFAB_";

/// The resolved settings of a server.
///
/// `Settings::default()` is what `confab serve` uses with no configuration at all: HTTPS on
/// 127.0.0.1:8443 with data in `./confab-data`. Tests should start from [`Settings::for_tests`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Where the database, the server's secrets and the self-signed certificate live.
    pub data_dir: PathBuf,
    /// Keep nothing on disk: no data dir is created. A self-signed certificate then goes to a
    /// temporary directory removed on shutdown.
    pub in_memory: bool,
    /// A PostgreSQL database (`postgres://user@host:5432/db`) to keep the conversations in,
    /// instead of SQLite in the data dir; several confab nodes may share one. The data dir
    /// still holds the secrets, the certificate and (by default) media files.
    pub database_url: Option<String>,
    /// The address (or host name) to listen on; also the host of the printed endpoint.
    pub host: String,
    /// The port to listen on; 0 picks any free port.
    pub port: u16,
    /// Serve plain HTTP instead of HTTPS. The official SDKs refuse bearer tokens over plain
    /// HTTP, so this suits only tests and HMAC-only (Identity) use.
    pub http: bool,
    /// A PEM certificate (chain) to serve instead of the self-signed one. Needs `tls_key`.
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// The access key of the connection string, base64. Unset: a random key generated on the
    /// first run and kept in the data dir (or a fresh one per run when in memory).
    pub access_key: Option<String>,
    /// Reject api-versions newer than the newest known instead of serving them.
    pub strict_api_version: bool,
    /// How far an HMAC-signed request's `x-ms-date` may be from the server's clock.
    pub max_clock_skew_secs: u64,
    /// Seconds between sweeps that delete threads whose retention ran out; 0 disables them.
    pub retention_sweep_secs: u64,
    /// The tracing filter (`RUST_LOG` syntax), e.g. `info` or `confab=debug,tower_http=debug`.
    pub log: String,
    /// The rate-limit profile: `standard`, `acs-cloud` (the ACS cloud's limits),
    /// `kaizala-cloud` (standard plus Kaizala's 100/min per connector and 300/min per tenant) or
    /// `off`.
    pub rate_limits: RateLimitProfile,
    /// Rules that replace the profile's, e.g. in confab.toml:
    /// `[rate_limit_rules] per_identity = { requests = 100, seconds = 10 }`.
    pub rate_limit_rules: RateLimits,
    /// The public base URL handed to Kaizala clients as `endpointUrl` (behind a proxy); unset:
    /// the endpoint the server listens on.
    pub public_url: Option<String>,
    /// How Kaizala PINs go out: `file` (appended to `pin_file` and logged) or `http` (POSTed to
    /// `pin_sms_url`).
    pub pin_sender: PinSenderKind,
    /// The PIN file of the `file` sender; unset: `pins.log` in the data dir (in memory: only
    /// logged).
    pub pin_file: Option<PathBuf>,
    /// The SMS gateway URL of the `http` sender.
    pub pin_sms_url: Option<String>,
    /// How long a Kaizala PIN can be used.
    pub pin_lifetime_secs: u64,
    /// Wrong PINs tolerated before a PIN is thrown away.
    pub pin_max_attempts: u32,
    /// Seconds between heartbeats on an idle event stream (each also re-checks the token).
    pub stream_heartbeat_secs: u64,
    /// Frames queued per stream connection for a client that reads slower than events come.
    pub stream_buffer: usize,
    /// How long (ms) a stream's full queue may wait for its client before the client is cut
    /// off as a slow consumer.
    pub stream_send_timeout_ms: u64,
    /// How long (ms) a client may take to send a request's head, or pause within its body,
    /// before the connection is closed (a body cut off this way answers 400). Bounds what a
    /// client that stops halfway holds on to.
    pub request_read_timeout_ms: u64,
    /// With `database_url` (several nodes may share the database): how long (ms) a node uses
    /// an identity's token generation, or a connector application's existence, before it reads
    /// it again. Bounds how long a token revoked through another node still works here.
    pub credentials_staleness_ms: u64,
    /// Events the in-process bus keeps for its slowest stream (one that falls further behind
    /// catches up from the event log).
    pub stream_bus_capacity: usize,
    /// How long events are kept for streams to resume from; 0: no age limit.
    pub event_retention_secs: u64,
    /// At most this many of the newest events are kept; 0: no count limit.
    pub event_retention_count: u64,
    /// Where uploaded media files go; default `<data_dir>/media` (in memory: kept in memory
    /// unless this is set).
    pub media_dir: Option<PathBuf>,
    /// Largest image upload, in bytes.
    pub media_max_image_bytes: u64,
    /// Largest audio upload, in bytes.
    pub media_max_audio_bytes: u64,
    /// Largest video upload, in bytes.
    pub media_max_video_bytes: u64,
    /// Largest document upload, in bytes.
    pub media_max_document_bytes: u64,
    /// Images one album upload may hold.
    pub media_max_album_images: usize,
    /// How long a webhook receiver has to echo the validationToken at registration, ms.
    pub webhook_handshake_timeout_ms: u64,
    /// How long one webhook delivery attempt may take, ms.
    pub webhook_timeout_ms: u64,
    /// Tries per webhook delivery before the webhook is disabled.
    pub webhook_max_attempts: u32,
    /// The wait after a delivery's first failed try, ms; each later wait is
    /// `webhook_retry_factor` times longer (±20 % jitter). The defaults make 6 tries over about
    /// two days.
    pub webhook_retry_base_ms: u64,
    pub webhook_retry_factor: u32,
    /// Webhook delivery attempts in flight at once.
    pub webhook_concurrency: usize,
    /// How often the delivery worker looks for due deliveries when nothing wakes it, ms.
    pub webhook_poll_ms: u64,
    /// Refuse plain-http callback URLs.
    pub webhook_require_https: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./confab-data"),
            in_memory: false,
            database_url: None,
            host: "127.0.0.1".into(),
            port: 8443,
            http: false,
            tls_cert: None,
            tls_key: None,
            access_key: None,
            strict_api_version: false,
            max_clock_skew_secs: 900,
            retention_sweep_secs: 60,
            log: "info".into(),
            rate_limits: RateLimitProfile::Standard,
            rate_limit_rules: RateLimits::default(),
            public_url: None,
            pin_sender: PinSenderKind::File,
            pin_file: None,
            pin_sms_url: None,
            pin_lifetime_secs: 600,
            pin_max_attempts: 5,
            stream_heartbeat_secs: 15,
            stream_buffer: 256,
            stream_send_timeout_ms: 10_000,
            request_read_timeout_ms: 30_000,
            credentials_staleness_ms: 5_000,
            stream_bus_capacity: confab_core::ports::bus::DEFAULT_BUS_CAPACITY,
            event_retention_secs: 7 * 24 * 3600,
            event_retention_count: 0,
            media_dir: None,
            media_max_image_bytes: confab_core::media::MediaLimits::default().image,
            media_max_audio_bytes: confab_core::media::MediaLimits::default().audio,
            media_max_video_bytes: confab_core::media::MediaLimits::default().video,
            media_max_document_bytes: confab_core::media::MediaLimits::default().document,
            media_max_album_images: confab_core::media::MediaLimits::default().album_images,
            webhook_handshake_timeout_ms: 5_000,
            webhook_timeout_ms: 10_000,
            webhook_max_attempts: 6,
            webhook_retry_base_ms: 60_000,
            webhook_retry_factor: 7,
            webhook_concurrency: 16,
            webhook_poll_ms: 5_000,
            webhook_require_https: false,
        }
    }
}

impl Settings {
    /// Settings for integration tests: in memory, plain HTTP, 127.0.0.1 on a free port, a random
    /// access key (read it back from `Running::access_key` or `Running::connection_string`).
    /// Override fields with struct update syntax: `Settings { http: false, ..Settings::for_tests() }`.
    pub fn for_tests() -> Self {
        Self {
            in_memory: true,
            http: true,
            port: 0,
            ..Self::default()
        }
    }

    /// The configured access key, decoded; None when unset (a generated one is used).
    pub fn decoded_access_key(&self) -> anyhow::Result<Option<Vec<u8>>> {
        let Some(text) = &self.access_key else {
            return Ok(None);
        };
        let key = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .context("access_key is not valid base64 (expected standard base64, as in an ACS connection string)")?;
        if key.is_empty() {
            bail!("access_key is empty");
        }
        Ok(Some(key))
    }

    /// Checks what can be checked without touching the network or the data dir.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.decoded_access_key()?;
        if self.host.trim().is_empty() {
            bail!("host is empty");
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => bail!("tls_cert is set but tls_key is not: give both or neither"),
            (None, Some(_)) => bail!("tls_key is set but tls_cert is not: give both or neither"),
            _ => {}
        }
        if self.pin_sender == PinSenderKind::Http && self.pin_sms_url.is_none() {
            bail!("pin_sender = \"http\" needs pin_sms_url");
        }
        if self.pin_lifetime_secs == 0 || self.pin_max_attempts == 0 {
            bail!("pin_lifetime_secs and pin_max_attempts must be at least 1");
        }
        if self.stream_heartbeat_secs == 0
            || self.stream_buffer == 0
            || self.stream_send_timeout_ms == 0
            || self.stream_bus_capacity == 0
        {
            bail!(
                "stream_heartbeat_secs, stream_buffer, stream_send_timeout_ms and \
                 stream_bus_capacity must be at least 1"
            );
        }
        if self.request_read_timeout_ms == 0 || self.credentials_staleness_ms == 0 {
            bail!("request_read_timeout_ms and credentials_staleness_ms must be at least 1");
        }
        if self.media_max_image_bytes == 0
            || self.media_max_audio_bytes == 0
            || self.media_max_video_bytes == 0
            || self.media_max_document_bytes == 0
            || self.media_max_album_images == 0
        {
            bail!("the media_max_* settings must be at least 1");
        }
        if self.webhook_handshake_timeout_ms == 0
            || self.webhook_timeout_ms == 0
            || self.webhook_max_attempts == 0
            || self.webhook_retry_factor == 0
            || self.webhook_concurrency == 0
            || self.webhook_poll_ms == 0
        {
            bail!(
                "webhook_handshake_timeout_ms, webhook_timeout_ms, webhook_max_attempts, \
                 webhook_retry_factor, webhook_concurrency and webhook_poll_ms must be at least 1"
            );
        }
        // On PostgreSQL a delivery is claimed for a while; an attempt outliving the claim could
        // be sent again by another node.
        let lease = confab_store_postgres::DELIVERY_CLAIM_LEASE;
        if self.database_url.is_some()
            && std::time::Duration::from_millis(self.webhook_timeout_ms) >= lease / 2
        {
            bail!(
                "with database_url, webhook_timeout_ms must stay below {} ms (half the {} s \
                 for which a node claims a delivery)",
                lease.as_millis() / 2,
                lease.as_secs()
            );
        }
        Ok(())
    }

    /// The webhook delivery settings.
    pub fn webhook_config(&self) -> confab_core::webhooks::WebhookConfig {
        use std::time::Duration;
        confab_core::webhooks::WebhookConfig {
            handshake_timeout: Duration::from_millis(self.webhook_handshake_timeout_ms),
            attempt_timeout: Duration::from_millis(self.webhook_timeout_ms),
            max_attempts: self.webhook_max_attempts,
            retry_base: Duration::from_millis(self.webhook_retry_base_ms),
            retry_factor: self.webhook_retry_factor,
            concurrency: self.webhook_concurrency,
            poll_interval: Duration::from_millis(self.webhook_poll_ms),
            require_https: self.webhook_require_https,
            ..confab_core::webhooks::WebhookConfig::default()
        }
    }

    /// The media upload limits.
    pub fn media_limits(&self) -> confab_core::media::MediaLimits {
        confab_core::media::MediaLimits {
            image: self.media_max_image_bytes,
            audio: self.media_max_audio_bytes,
            video: self.media_max_video_bytes,
            document: self.media_max_document_bytes,
            album_images: self.media_max_album_images,
        }
    }

    /// The event stream's settings.
    pub fn stream_config(&self) -> confab_stream::StreamConfig {
        confab_stream::StreamConfig {
            heartbeat: std::time::Duration::from_secs(self.stream_heartbeat_secs),
            buffer: self.stream_buffer,
            send_timeout: std::time::Duration::from_millis(self.stream_send_timeout_ms),
            ..confab_stream::StreamConfig::default()
        }
    }

    /// How long events are kept.
    pub fn event_retention(&self) -> confab_core::stream::EventRetention {
        confab_core::stream::EventRetention {
            max_age: (self.event_retention_secs > 0).then(|| {
                time::Duration::seconds(
                    i64::try_from(self.event_retention_secs).unwrap_or(i64::MAX),
                )
            }),
            max_count: (self.event_retention_count > 0).then_some(self.event_retention_count),
        }
    }
}

/// The flags of `confab serve`. Every one is optional so that only flags actually given
/// override the lower layers; boolean flags take an optional value (`--http`, `--http=false`) so
/// the command line can also turn off what a config file turned on.
#[derive(Args, Clone, Debug, Default, Serialize)]
pub struct ServeArgs {
    /// Where the database, secrets and self-signed certificate live [default: ./confab-data]
    #[arg(long, value_name = "DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,

    /// Keep nothing on disk
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_memory: Option<bool>,

    /// Address or host name to listen on [default: 127.0.0.1]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,

    /// Port to listen on, 0 for any free port [default: 8443]
    #[arg(long, short)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,

    /// Serve plain HTTP instead of HTTPS
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<bool>,

    /// PEM certificate (chain) to serve instead of a self-signed one
    #[arg(long, value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert
    #[arg(long, value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,

    /// PostgreSQL URL to keep the data in instead of SQLite; prefer CONFAB_DATABASE_URL (a
    /// password in a flag shows in `ps`)
    #[arg(long, value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,

    /// Access key (base64) of the connection string; prefer CONFAB_ACCESS_KEY, flags show in `ps`
    #[arg(long, value_name = "BASE64")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key: Option<String>,

    /// Reject api-versions newer than the newest known
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strict_api_version: Option<bool>,

    /// Accepted distance of x-ms-date from the server clock, seconds [default: 900]
    #[arg(long, value_name = "SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_clock_skew_secs: Option<u64>,

    /// Seconds between retention sweeps, 0 to disable [default: 60]
    #[arg(long, value_name = "SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_sweep_secs: Option<u64>,

    /// Tracing filter, e.g. "info" or "confab=debug" [default: info]
    #[arg(long, value_name = "FILTER")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,

    /// Rate-limit profile: standard, acs-cloud, kaizala-cloud or off [default: standard]
    #[arg(long, value_name = "PROFILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limits: Option<String>,

    /// Public base URL given to Kaizala clients as endpointUrl [default: the listening endpoint]
    #[arg(long, value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,

    /// How Kaizala PINs go out: file or http [default: file]
    #[arg(long, value_name = "SENDER")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pin_sender: Option<String>,

    /// File the `file` PIN sender appends to [default: DATA_DIR/pins.log]
    #[arg(long, value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pin_file: Option<PathBuf>,

    /// SMS gateway URL the `http` PIN sender POSTs to
    #[arg(long, value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pin_sms_url: Option<String>,
}

/// How an environment variable's text becomes a value.
#[derive(Clone, Copy)]
enum Kind {
    /// Taken verbatim: a data dir named `123` or a key of digits stays a string.
    Text,
    /// Parsed (`true`, `8443`), so figment can type-check it against the field.
    Parsed,
}

/// The settings an environment variable may set, with `CONFAB_` + the upper-cased name.
/// Anything else under the prefix (`CONFAB_CONFIG`, variables of tests or other tools) is not a
/// setting and is ignored rather than rejected.
const ENV_KEYS: &[(&str, Kind)] = &[
    ("data_dir", Kind::Text),
    ("in_memory", Kind::Parsed),
    ("database_url", Kind::Text),
    ("host", Kind::Text),
    ("port", Kind::Parsed),
    ("http", Kind::Parsed),
    ("tls_cert", Kind::Text),
    ("tls_key", Kind::Text),
    ("access_key", Kind::Text),
    ("strict_api_version", Kind::Parsed),
    ("max_clock_skew_secs", Kind::Parsed),
    ("retention_sweep_secs", Kind::Parsed),
    ("log", Kind::Text),
    ("rate_limits", Kind::Text),
    ("public_url", Kind::Text),
    ("pin_sender", Kind::Text),
    ("pin_file", Kind::Text),
    ("pin_sms_url", Kind::Text),
    ("pin_lifetime_secs", Kind::Parsed),
    ("pin_max_attempts", Kind::Parsed),
    ("stream_heartbeat_secs", Kind::Parsed),
    ("stream_buffer", Kind::Parsed),
    ("stream_send_timeout_ms", Kind::Parsed),
    ("request_read_timeout_ms", Kind::Parsed),
    ("credentials_staleness_ms", Kind::Parsed),
    ("stream_bus_capacity", Kind::Parsed),
    ("event_retention_secs", Kind::Parsed),
    ("event_retention_count", Kind::Parsed),
    ("media_dir", Kind::Text),
    ("media_max_image_bytes", Kind::Parsed),
    ("media_max_audio_bytes", Kind::Parsed),
    ("media_max_video_bytes", Kind::Parsed),
    ("media_max_document_bytes", Kind::Parsed),
    ("media_max_album_images", Kind::Parsed),
    ("webhook_handshake_timeout_ms", Kind::Parsed),
    ("webhook_timeout_ms", Kind::Parsed),
    ("webhook_max_attempts", Kind::Parsed),
    ("webhook_retry_base_ms", Kind::Parsed),
    ("webhook_retry_factor", Kind::Parsed),
    ("webhook_concurrency", Kind::Parsed),
    ("webhook_poll_ms", Kind::Parsed),
    ("webhook_require_https", Kind::Parsed),
];

/// The settings found in `env` (name, value pairs, e.g. `std::env::vars()`).
fn env_layer<'a>(env: impl IntoIterator<Item = (&'a str, &'a str)>) -> Dict {
    let mut dict = Dict::new();
    for (name, value) in env {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let key = rest.to_ascii_lowercase();
        let Some((key, kind)) = ENV_KEYS.iter().find(|(k, _)| *k == key) else {
            continue;
        };
        // `CONFAB_ACCESS_KEY=` (as compose files and CI templates often leave it) means unset,
        // not "the empty string".
        if value.trim().is_empty() {
            continue;
        }
        let value = match kind {
            Kind::Text => Value::from(value.to_string()),
            // Value's parser is infallible: what is not a number, bool, array or map is a string.
            Kind::Parsed => value
                .parse::<Value>()
                .unwrap_or_else(|never| match never {}),
        };
        dict.insert((*key).to_string(), value);
    }
    dict
}

/// One layer of settings, named so that an error says where a bad value came from
/// ("for key `CONFAB_PORT` in the environment").
struct Layer {
    name: String,
    dict: Dict,
    /// How a setting is spelled in this layer: `port`, `CONFAB_PORT`, `--port`.
    spelling: fn(&str) -> String,
}

impl Layer {
    fn new(name: String, dict: Dict, spelling: fn(&str) -> String) -> Self {
        Self {
            name,
            dict,
            spelling,
        }
    }
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        let spelling = self.spelling;
        Metadata::named(self.name.clone())
            .interpolater(move |_profile: &Profile, keys: &[&str]| spelling(&keys.join(".")))
    }

    fn data(&self) -> Result<figment::value::Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}

/// A serializable struct as a figment dictionary.
fn to_dict(value: &impl Serialize) -> anyhow::Result<Dict> {
    match Value::serialize(value) {
        Ok(Value::Dict(_, dict)) => Ok(dict),
        Ok(_) => bail!("settings did not serialize to a map"),
        Err(err) => Err(anyhow::anyhow!("{err}")),
    }
}

/// Resolves the settings from the layers.
///
/// - `flags`: the parsed `serve` flags (top layer; only those given count).
/// - `config_flag`: `--config FILE`, if given.
/// - `env`: the environment, e.g. `std::env::vars()`; read for `CONFAB_*` settings and for
///   `CONFAB_CONFIG`.
/// - `cwd`: where the default `confab.toml` is looked for.
///
/// A config file named by `--config` or `CONFAB_CONFIG` must exist; the default `confab.toml`
/// may be absent.
pub fn resolve(
    flags: &ServeArgs,
    config_flag: Option<&Path>,
    env: &[(String, String)],
    cwd: &Path,
) -> anyhow::Result<Settings> {
    let env_config = env
        .iter()
        .find(|(name, _)| name == CONFIG_ENV)
        .map(|(_, value)| PathBuf::from(value));
    let explicit = config_flag.map(Path::to_path_buf).or(env_config);

    let config_file = match explicit {
        Some(path) => {
            let path = cwd.join(path);
            if !path.is_file() {
                bail!(
                    "config file {} does not exist or is not a file",
                    path.display()
                );
            }
            Some(path)
        }
        None => {
            let path = cwd.join(DEFAULT_CONFIG_FILE);
            path.is_file().then_some(path)
        }
    };

    let mut figment = Figment::from(Layer::new(
        "the built-in defaults".into(),
        to_dict(&Settings::default())?,
        |key| key.to_string(),
    ));
    if let Some(path) = &config_file {
        // file_exact: figment's plain `file` would also search the parent directories.
        let data = Toml::file_exact(path)
            .data()
            .map_err(|err| anyhow::anyhow!("{err}"))
            .with_context(|| format!("reading config file {}", path.display()))?;
        let dict = data.into_values().next().unwrap_or_default();
        figment = figment.merge(Layer::new(
            format!("config file {}", path.display()),
            dict,
            |key| key.to_string(),
        ));
    }
    figment = figment
        .merge(Layer::new(
            "the environment".into(),
            env_layer(env.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
            |key| format!("{ENV_PREFIX}{}", key.to_ascii_uppercase()),
        ))
        .merge(Layer::new(
            "the command line".into(),
            to_dict(flags)?,
            |key| format!("--{}", key.replace('_', "-")),
        ));

    let settings: Settings = figment
        .extract()
        .map_err(|err| anyhow::anyhow!("invalid configuration: {err}"))?;
    settings.validate()?;
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tempdir::TempDir;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_without_any_layer() {
        let dir = TempDir::new("cfg-defaults").unwrap();
        let settings = resolve(&ServeArgs::default(), None, &[], dir.path()).unwrap();
        assert_eq!(settings, Settings::default());
    }

    #[test]
    fn toml_then_env_then_flags() {
        let dir = TempDir::new("cfg-precedence").unwrap();
        std::fs::write(
            dir.path().join("confab.toml"),
            "port = 1000\nhost = \"0.0.0.0\"\nlog = \"debug\"\nhttp = true\nretention_sweep_secs = 5\n",
        )
        .unwrap();

        // toml alone
        let s = resolve(&ServeArgs::default(), None, &[], dir.path()).unwrap();
        assert_eq!(
            (s.port, s.host.as_str(), s.log.as_str(), s.http),
            (1000, "0.0.0.0", "debug", true)
        );
        assert_eq!(s.retention_sweep_secs, 5);

        // env beats toml
        let e = env(&[
            ("CONFAB_PORT", "2000"),
            ("CONFAB_LOG", "warn"),
            ("CONFAB_HTTP", "false"),
        ]);
        let s = resolve(&ServeArgs::default(), None, &e, dir.path()).unwrap();
        assert_eq!(
            (s.port, s.host.as_str(), s.log.as_str(), s.http),
            (2000, "0.0.0.0", "warn", false)
        );

        // flags beat env; flags not given leave env and toml in place
        let flags = ServeArgs {
            port: Some(3000),
            http: Some(true),
            ..ServeArgs::default()
        };
        let s = resolve(&flags, None, &e, dir.path()).unwrap();
        assert_eq!(
            (s.port, s.host.as_str(), s.log.as_str(), s.http),
            (3000, "0.0.0.0", "warn", true)
        );
        assert_eq!(s.retention_sweep_secs, 5);
        assert_eq!(s.max_clock_skew_secs, 900);
    }

    #[test]
    fn rate_limit_profile_and_rules_from_every_layer() {
        use confab_core::ratelimit::Rule;
        let dir = TempDir::new("cfg-rate").unwrap();
        std::fs::write(
            dir.path().join("confab.toml"),
            "rate_limits = \"acs-cloud\"\n[rate_limit_rules]\nper_identity = { requests = 7, seconds = 1 }\n",
        )
        .unwrap();
        let s = resolve(&ServeArgs::default(), None, &[], dir.path()).unwrap();
        assert_eq!(s.rate_limits, RateLimitProfile::AcsCloud);
        assert_eq!(s.rate_limit_rules.per_identity, Some(Rule::new(7, 1)));
        assert_eq!(s.rate_limit_rules.message_writes_per_thread, None);

        let e = env(&[("CONFAB_RATE_LIMITS", "off")]);
        let s = resolve(&ServeArgs::default(), None, &e, dir.path()).unwrap();
        assert_eq!(s.rate_limits, RateLimitProfile::Off);

        let flags = ServeArgs {
            rate_limits: Some("standard".into()),
            ..ServeArgs::default()
        };
        let s = resolve(&flags, None, &e, dir.path()).unwrap();
        assert_eq!(s.rate_limits, RateLimitProfile::Standard);

        let kaizala = ServeArgs {
            rate_limits: Some("kaizala-cloud".into()),
            ..ServeArgs::default()
        };
        let s = resolve(&kaizala, None, &[], dir.path()).unwrap();
        assert_eq!(s.rate_limits, RateLimitProfile::KaizalaCloud);

        let bad = ServeArgs {
            rate_limits: Some("fast".into()),
            ..ServeArgs::default()
        };
        let err = resolve(&bad, None, &[], dir.path()).unwrap_err();
        assert!(format!("{err:#}").contains("rate"), "{err:#}");
    }

    #[test]
    fn config_file_from_flag_and_env() {
        let dir = TempDir::new("cfg-file").unwrap();
        std::fs::write(dir.path().join("confab.toml"), "port = 1\n").unwrap();
        std::fs::write(dir.path().join("a.toml"), "port = 2\n").unwrap();
        std::fs::write(dir.path().join("b.toml"), "port = 3\n").unwrap();

        let e = env(&[("CONFAB_CONFIG", "b.toml")]);
        let s = resolve(&ServeArgs::default(), None, &e, dir.path()).unwrap();
        assert_eq!(s.port, 3, "CONFAB_CONFIG replaces confab.toml");
        let s = resolve(
            &ServeArgs::default(),
            Some(Path::new("a.toml")),
            &e,
            dir.path(),
        )
        .unwrap();
        assert_eq!(s.port, 2, "--config beats CONFAB_CONFIG");

        let err = resolve(
            &ServeArgs::default(),
            Some(Path::new("missing.toml")),
            &[],
            dir.path(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("missing.toml"), "{err}");
    }

    #[test]
    fn env_strings_stay_strings_and_unknown_vars_are_ignored() {
        let dir = TempDir::new("cfg-env").unwrap();
        let e = env(&[
            ("CONFAB_DATA_DIR", "123"),
            ("CONFAB_ACCESS_KEY", "1234"),
            ("CONFAB_TEST_POSTGRES_URL", "postgres://x"),
            ("CONFAB_STRICT_API_VERSION", "true"),
            ("CONFAB_LOG", ""),
            ("OTHER", "x"),
        ]);
        let s = resolve(&ServeArgs::default(), None, &e, dir.path()).unwrap();
        assert_eq!(s.data_dir, PathBuf::from("123"));
        assert_eq!(s.access_key.as_deref(), Some("1234"));
        assert!(s.strict_api_version);
        assert_eq!(s.log, "info", "an empty variable counts as unset");
    }

    #[test]
    fn bad_values_are_clear_errors() {
        let dir = TempDir::new("cfg-bad").unwrap();
        let e = env(&[("CONFAB_PORT", "http")]);
        let err = resolve(&ServeArgs::default(), None, &e, dir.path()).unwrap_err();
        assert!(err.to_string().contains("CONFAB_PORT"), "{err}");

        std::fs::write(dir.path().join("confab.toml"), "prot = 1\n").unwrap();
        let err = resolve(&ServeArgs::default(), None, &[], dir.path()).unwrap_err();
        assert!(err.to_string().contains("prot"), "{err}");
        assert!(err.to_string().contains("confab.toml"), "{err}");

        std::fs::write(dir.path().join("confab.toml"), "port = [\n").unwrap();
        let err = resolve(&ServeArgs::default(), None, &[], dir.path()).unwrap_err();
        assert!(format!("{err:#}").contains("confab.toml"), "{err:#}");
        std::fs::remove_file(dir.path().join("confab.toml")).unwrap();

        let flags = ServeArgs {
            access_key: Some("not base64!".into()),
            ..ServeArgs::default()
        };
        let err = resolve(&flags, None, &[], dir.path()).unwrap_err();
        assert!(err.to_string().contains("base64"), "{err}");

        let flags = ServeArgs {
            tls_cert: Some("cert.pem".into()),
            ..ServeArgs::default()
        };
        let err = resolve(&flags, None, &[], dir.path()).unwrap_err();
        assert!(err.to_string().contains("tls_key"), "{err}");
    }

    #[test]
    fn a_database_url_from_a_flag_or_the_environment() {
        let dir = TempDir::new("cfg-db").unwrap();
        let s = resolve(&ServeArgs::default(), None, &[], dir.path()).unwrap();
        assert_eq!(s.database_url, None);
        let e = env(&[("CONFAB_DATABASE_URL", "postgres://confab@db/chat")]);
        let s = resolve(&ServeArgs::default(), None, &e, dir.path()).unwrap();
        assert_eq!(s.database_url.as_deref(), Some("postgres://confab@db/chat"));
        let flags = ServeArgs {
            database_url: Some("postgres://other@db/chat".into()),
            ..ServeArgs::default()
        };
        let s = resolve(&flags, None, &e, dir.path()).unwrap();
        assert_eq!(s.database_url.as_deref(), Some("postgres://other@db/chat"));
        // An attempt may not outlive half the claim another node waits out.
        let e = env(&[
            ("CONFAB_DATABASE_URL", "postgres://confab@db/chat"),
            ("CONFAB_WEBHOOK_TIMEOUT_MS", "30000"),
        ]);
        let err = resolve(&ServeArgs::default(), None, &e, dir.path()).unwrap_err();
        assert!(err.to_string().contains("webhook_timeout_ms"), "{err}");
        let e = env(&[("CONFAB_WEBHOOK_TIMEOUT_MS", "30000")]);
        assert!(resolve(&ServeArgs::default(), None, &e, dir.path()).is_ok());
    }

    #[test]
    fn pin_sender_settings() {
        let dir = TempDir::new("cfg-pins").unwrap();
        let s = resolve(&ServeArgs::default(), None, &[], dir.path()).unwrap();
        assert_eq!(s.pin_sender, PinSenderKind::File);
        assert_eq!((s.pin_lifetime_secs, s.pin_max_attempts), (600, 5));
        let e = env(&[
            ("CONFAB_PIN_SENDER", "http"),
            ("CONFAB_PIN_SMS_URL", "https://sms.example/send"),
            ("CONFAB_PIN_LIFETIME_SECS", "60"),
        ]);
        let s = resolve(&ServeArgs::default(), None, &e, dir.path()).unwrap();
        assert_eq!(s.pin_sender, PinSenderKind::Http);
        assert_eq!(s.pin_sms_url.as_deref(), Some("https://sms.example/send"));
        assert_eq!(s.pin_lifetime_secs, 60);
        let e = env(&[("CONFAB_PIN_SENDER", "http")]);
        let err = resolve(&ServeArgs::default(), None, &e, dir.path()).unwrap_err();
        assert!(err.to_string().contains("pin_sms_url"), "{err}");
        let flags = ServeArgs {
            pin_sender: Some("pigeon".into()),
            ..ServeArgs::default()
        };
        assert!(resolve(&flags, None, &[], dir.path()).is_err());
    }

    #[test]
    fn boolean_flags_parse_with_and_without_value() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            serve: ServeArgs,
        }
        let cli = Cli::try_parse_from(["x", "--http", "--in-memory=false", "-p", "0"]).unwrap();
        assert_eq!(cli.serve.http, Some(true));
        assert_eq!(cli.serve.in_memory, Some(false));
        assert_eq!(cli.serve.port, Some(0));
        assert_eq!(cli.serve.strict_api_version, None);
    }
}
