//! The scenarios and the run: the plain-HTTP ceilings, then confab over plain HTTP (which also
//! seeds the data dir), then the HTTPS ceilings and confab restarted on the same data dir over
//! HTTPS. The stream fan-out
//! scenario is in `stream.rs`.

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use base64::Engine as _;
use hyper::Method;
use serde::Serialize;
use serde_json::json;

use crate::client::{self, Api, KzUser, Target, User};
use crate::load::{self, MakeRequest, Outcome, Plan};
use crate::procstat::{self, Meter, Usage};
use crate::scratch_schema::ScratchSchema;
use crate::servers::{self, ServerProcess};
use crate::stream::{self, FanOut, FanOutOutcome};
use crate::Options;

/// Users made for the run; every benchmark thread has all of them as participants, and
/// connection `c` acts as user `c % USERS`.
const USERS: usize = 16;
/// Participants of a thread made by the create-thread scenario (the creator included).
const CREATE_PARTICIPANTS: usize = 10;
/// Connections of the list and create-thread scenarios, and of seeding.
const WIDE: usize = 64;
/// Connections of the mixed scenario.
const MIXED_CONNS: usize = 256;
/// Share of reads in the mixed scenario, in percent.
const MIXED_READS: usize = 80;
/// Page size of the list scenarios.
const PAGE: usize = 50;
/// Request kinds of the workloads.
const ONE: &[&str] = &["request"];
const READ_SEND: &[&str] = &["reads", "sends"];
/// Concurrent connections of the setup and verification calls.
const SETUP_CONNS: usize = 16;
/// The most participants an ACS thread holds (the core's limit), and the most one create or
/// add call takes.
const THREAD_PARTICIPANTS: usize = 250;
const PARTICIPANT_BATCH: usize = 200;
/// Messages per second of the stream scenario, in all.
const STREAM_RATE: f64 = 100.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn name(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Ceiling,
    Send {
        many: bool,
    },
    /// Sends on the Kaizala face, to one group.
    KaizalaSend,
    ListNewest,
    ListOldest,
    CreateThread,
    Mixed,
    /// One thread, `conns` SSE subscribers, sends at a fixed rate.
    Stream,
}

#[derive(Clone, Debug)]
struct Scenario {
    name: String,
    scheme: Scheme,
    conns: usize,
    kind: Kind,
}

fn all_scenarios(threads: usize, subscribers: usize) -> Vec<Scenario> {
    let mut out = Vec::new();
    for scheme in [Scheme::Http, Scheme::Https] {
        let s = scheme.name();
        let mut add = |name: String, conns: usize, kind: Kind| {
            out.push(Scenario {
                name,
                scheme,
                conns,
                kind,
            })
        };
        for conns in [1, 16, WIDE, MIXED_CONNS] {
            add(format!("ceiling/{s}/{conns}conn"), conns, Kind::Ceiling);
        }
        for many in [false, true] {
            for conns in [1, 16, WIDE] {
                let spread = if many {
                    format!("{threads}threads")
                } else {
                    "1thread".into()
                };
                add(
                    format!("send/{s}/{conns}conn/{spread}"),
                    conns,
                    Kind::Send { many },
                );
            }
        }
        add(
            format!("send-kaizala/{s}/{WIDE}conn/1group"),
            WIDE,
            Kind::KaizalaSend,
        );
        add(
            format!("list/{s}/{WIDE}conn/newest"),
            WIDE,
            Kind::ListNewest,
        );
        add(
            format!("list/{s}/{WIDE}conn/oldest"),
            WIDE,
            Kind::ListOldest,
        );
        add(
            format!("create-thread/{s}/{WIDE}conn/{CREATE_PARTICIPANTS}participants"),
            WIDE,
            Kind::CreateThread,
        );
        add(
            format!("mixed/{s}/{MIXED_CONNS}conn/{threads}threads"),
            MIXED_CONNS,
            Kind::Mixed,
        );
        add(
            format!("stream/{s}/1thread/{subscribers}subscribers"),
            subscribers,
            Kind::Stream,
        );
    }
    out
}

/// One JSON line per scenario (with `--json`).
#[derive(Serialize)]
struct Record {
    scenario: String,
    scheme: &'static str,
    conns: usize,
    requests: u64,
    seconds: f64,
    per_sec: f64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    errors: u64,
    error_kinds: BTreeMap<String, u64>,
    server_cpu_cores: Option<f64>,
    client_cpu_cores: Option<f64>,
    server_peak_rss_bytes: Option<u64>,
    ceiling_ratio: Option<f64>,
    /// 2xx answers per kind of request (mixed: reads and sends).
    ok_by_kind: BTreeMap<&'static str, u64>,
    /// Send scenarios: the 2xx answers to sends, and the messages counted afterwards.
    acknowledged: Option<u64>,
    committed: Option<u64>,
    /// The stream scenario (there `requests` are deliveries, `per_sec` deliveries per second
    /// and the quantiles those of the delivery latency).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    stream: Option<StreamRecord>,
}

/// The stream scenario's own figures.
#[derive(Serialize)]
struct StreamRecord {
    subscribers: usize,
    /// Identities subscribing, and streams per identity.
    identities: usize,
    streams_per_identity: usize,
    send_rate_target: f64,
    sends: u64,
    sends_per_sec: f64,
    send_errors: u64,
    send_p50_ms: f64,
    send_p99_ms: f64,
    /// The most a send started after its scheduled time.
    send_lag_max_ms: f64,
    /// Deliveries timed from the event's `at` stamp (the store's clock in the write
    /// transaction, before COMMIT) instead of from the send's start.
    stamp_p50_ms: f64,
    stamp_p90_ms: f64,
    stamp_p99_ms: f64,
    stamp_max_ms: f64,
    deliveries: u64,
    expected_deliveries: u64,
    missing: u64,
    duplicates: u64,
    out_of_order: u64,
    failed_streams: u64,
}

/// The thread of the list scenarios.
struct ListThread {
    id: String,
    oldest: String,
    messages: u64,
}

struct Bench {
    quick: bool,
    duration: Duration,
    threads: usize,
    list_messages: u64,
    json: Option<std::fs::File>,
    users: Vec<User>,
    list: Option<ListThread>,
    /// Messages committed so far in the data dir (for the restart line).
    messages: u64,
    ceilings: HashMap<(Scheme, usize), f64>,
    failures: Vec<String>,
    /// The stream scenario: subscribers, messages per second, and its identities (made once).
    subscribers: usize,
    stream_rate: f64,
    access_key: Vec<u8>,
    stream_users: Vec<User>,
    /// The Kaizala users (logged in once, with a PIN, on first use).
    kaizala_users: Vec<KzUser>,
    /// Where confab keeps its data when it is PostgreSQL (`--postgres`): the scratch schema's
    /// URL.
    database_url: Option<String>,
}

/// Removes the run's directory at the end, however the run ends.
struct WorkDir(PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the selected scenarios; answers false when a check failed.
pub async fn run(options: Options) -> anyhow::Result<bool> {
    let quick = options.quick;
    let threads = options.threads.unwrap_or(if quick { 100 } else { 1000 });
    let subscribers = options
        .subscribers
        .unwrap_or(if quick { 50 } else { 1000 })
        .max(1);
    let stream_rate = options.stream_rate.unwrap_or(STREAM_RATE);
    if !(stream_rate.is_finite() && stream_rate > 0.0) {
        bail!("--stream-rate must be a positive number of messages per second");
    }
    let scenarios = all_scenarios(threads, subscribers);
    if options.list {
        for scenario in &scenarios {
            println!("{}", scenario.name);
        }
        return Ok(true);
    }
    let selected: Vec<Scenario> = scenarios
        .iter()
        .filter(|s| {
            options.scenario.is_empty() || options.scenario.iter().any(|f| s.name.contains(f))
        })
        .cloned()
        .collect();
    if selected.is_empty() {
        bail!("no scenario matches {:?} (see --list)", options.scenario);
    }
    // The ceilings the selected scenarios are compared with.
    let mut ceilings: Vec<(Scheme, usize)> = selected
        .iter()
        .filter(|s| s.kind != Kind::Stream)
        .map(|s| (s.scheme, s.conns))
        .collect();
    ceilings.sort();
    ceilings.dedup();

    let duration =
        Duration::from_secs_f64(options.duration.unwrap_or(if quick { 1.0 } else { 10.0 }));
    let base = options.work_dir.clone().unwrap_or_else(std::env::temp_dir);
    let work = WorkDir(base.join(format!(
        "confab-bench-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0)
    )));
    std::fs::create_dir_all(&work.0).with_context(|| format!("creating {}", work.0.display()))?;
    // Declared after `work`: dropped before it, after every server process has stopped.
    let schema = match &options.postgres {
        Some(url) => Some(ScratchSchema::create(url)?),
        None => None,
    };

    let json = match &options.json {
        Some(path) => Some(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        ),
        None => None,
    };
    let mut bench = Bench {
        quick,
        duration,
        threads,
        list_messages: options
            .list_messages
            .unwrap_or(if quick { 2_000 } else { 1_000_000 }),
        json,
        users: Vec::new(),
        list: None,
        messages: 0,
        ceilings: HashMap::new(),
        failures: Vec::new(),
        subscribers,
        stream_rate,
        access_key: Vec::new(),
        stream_users: Vec::new(),
        kaizala_users: Vec::new(),
        database_url: schema.as_ref().map(ScratchSchema::url),
    };
    if selected.iter().any(|s| s.kind == Kind::Stream) {
        // One socket per subscriber here and one in the server (which inherits the limit).
        let want = subscribers as u64 + 1024;
        match stream::raise_open_files(want) {
            Some(limit) if limit < want => println!(
                "confab-bench: warning: the open-files limit is {limit} (hard limit), below the \
                 {want} the stream scenario wants; its subscribers may fail to connect"
            ),
            _ => {}
        }
    }
    println!(
        "confab-bench: {} s per scenario{}, {} cores ({}), load average {}, data in {}{}",
        duration.as_secs_f64(),
        if quick { " (quick: no targets)" } else { "" },
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model(),
        load_average(),
        work.0.display(),
        match &schema {
            Some(schema) => format!(" and PostgreSQL schema {}", schema.name()),
            None => String::new(),
        }
    );

    // Each scheme's ceilings run right before confab's pass over that scheme, so that a ratio
    // compares two measures minutes apart at most: the machine's speed drifts over a run (the
    // HTTPS pass, second, used to be compared with ceilings from the run's first minute).
    let data_dir = work.0.join("data");
    for scheme in [Scheme::Http, Scheme::Https] {
        let conns: Vec<usize> = ceilings
            .iter()
            .filter(|(s, _)| *s == scheme)
            .map(|(_, c)| *c)
            .collect();
        if !conns.is_empty() {
            bench
                .ceiling_pass(scheme, &work.0.join("ceiling"), &conns, &selected)
                .await?;
        }
        let mine: Vec<&Scenario> = selected
            .iter()
            .filter(|s| s.scheme == scheme && s.kind != Kind::Ceiling)
            .collect();
        if !mine.is_empty() {
            bench.confab_pass(scheme, &data_dir, &mine).await?;
        }
    }

    if bench.failures.is_empty() {
        println!(
            "confab-bench: done, every check passed (load average {})",
            load_average()
        );
        Ok(true)
    } else {
        for failure in &bench.failures {
            eprintln!("confab-bench: FAILED: {failure}");
        }
        Ok(false)
    }
}

impl Bench {
    async fn ceiling_pass(
        &mut self,
        scheme: Scheme,
        dir: &Path,
        conns: &[usize],
        selected: &[Scenario],
    ) -> anyhow::Result<()> {
        let server = ServerProcess::spawn(
            "ceiling",
            servers::ceiling_args(dir, scheme == Scheme::Https),
        )
        .await?;
        let target = Target::new(server.info.addr, server.info.cert.as_deref())?;
        // The same request as a send: the same path shape, headers and body.
        let path = client::send_path(&format!("19:{}@thread.v2", "0".repeat(32)));
        let bearer = format!("Bearer {}", "x".repeat(400));
        for &conns in conns {
            let name = format!("ceiling/{}/{conns}conn", scheme.name());
            let path = path.clone();
            let bearer = bearer.clone();
            let make: MakeRequest = Arc::new(move |target, conn, n, _rng| {
                let body = client::send_body(&format!("bench {conn}-{n}"));
                (
                    0,
                    target.raw_request(Method::POST, &path, Some(&bearer), &[], Some(body)),
                )
            });
            let (outcome, usage) = self.measure(&server, &target, conns, ONE, make).await;
            self.ceilings.insert((scheme, conns), outcome.throughput());
            // Print a ceiling only when asked for (it always runs when needed for a ratio).
            if selected.iter().any(|s| s.name == name) {
                self.report(&name, scheme, conns, &outcome, usage, None);
            }
        }
        server.stop().await
    }

    /// Runs `make` for the scenario's duration, measuring the server process.
    async fn measure(
        &self,
        server: &ServerProcess,
        target: &Arc<Target>,
        conns: usize,
        kinds: &'static [&'static str],
        make: MakeRequest,
    ) -> (Outcome, Usage) {
        let plan = Plan {
            conns,
            duration: self.duration,
            budget: None,
            kinds,
        };
        let meter = Meter::start(server.pid);
        let outcome = load::run(target.clone(), plan, make).await;
        (outcome, meter.stop())
    }

    async fn confab_pass(
        &mut self,
        scheme: Scheme,
        data_dir: &Path,
        scenarios: &[&Scenario],
    ) -> anyhow::Result<()> {
        let spawned = Instant::now();
        let server = ServerProcess::spawn(
            "confab",
            servers::confab_args(
                data_dir,
                scheme == Scheme::Http,
                self.database_url.as_deref(),
            ),
        )
        .await?;
        let target = Target::new(server.info.addr, server.info.cert.as_deref())?;
        // Ready: the first HTTP answer (any status) after the process was started.
        let mut api = Api::new(target.clone());
        api.call(
            Method::GET,
            "/chat/threads?api-version=2024-03-07",
            None,
            &[],
            None,
        )
        .await
        .context("the first request to confab")?;
        let ready = spawned.elapsed();
        let idle_rss = procstat::rss(server.pid);
        let restart = self.messages > 0;
        let line = format!(
            "{:<40} {:>7.1} ms from process start to first answer  idle rss {}  data dir {} messages, {}",
            format!("ready/{}/{}", scheme.name(), if restart { "restart" } else { "fresh" }),
            ready.as_secs_f64() * 1000.0,
            mb(idle_rss),
            thousands(self.messages),
            mb(Some(procstat::dir_size(data_dir)))
        );
        println!("{line}");
        self.json_line(json!({
            "scenario": format!("ready/{}", scheme.name()),
            "restart": restart,
            "ready_ms": ready.as_secs_f64() * 1000.0,
            "idle_rss_bytes": idle_rss,
            "messages": self.messages,
        }));

        if self.users.is_empty() {
            let key = base64::engine::general_purpose::STANDARD
                .decode(&server.info.access_key)
                .context("the access key is not base64")?;
            self.users = make_users(&target, &key, USERS).await?;
            self.access_key = key;
        }

        for scenario in scenarios {
            self.scenario(&server, &target, scenario, data_dir).await?;
        }
        server.stop().await
    }

    async fn scenario(
        &mut self,
        server: &ServerProcess,
        target: &Arc<Target>,
        scenario: &Scenario,
        data_dir: &Path,
    ) -> anyhow::Result<()> {
        let users = Arc::new(self.users.clone());
        match scenario.kind {
            Kind::Ceiling => Ok(()),
            Kind::Stream => self.stream_scenario(server, target, scenario).await,
            Kind::Send { many } => {
                let count = if many { self.threads } else { 1 };
                let threads = Arc::new(create_threads(target, &users, count).await?);
                let make = send_workload(users.clone(), threads.clone(), 0);
                let (outcome, usage) = self
                    .measure(server, target, scenario.conns, ONE, make)
                    .await;
                let committed = count_messages(target, &users[0], &threads).await?;
                self.report_sends(scenario, &outcome, usage, committed);
                Ok(())
            }
            Kind::KaizalaSend => {
                if self.kaizala_users.is_empty() {
                    self.kaizala_users = kaizala_users(
                        target,
                        &self.access_key,
                        &data_dir.join(confab::pins::PIN_FILE),
                    )
                    .await?;
                }
                let users = Arc::new(self.kaizala_users.clone());
                let mut api = Api::new(target.clone());
                let numbers: Vec<&str> = users[1..].iter().map(|u| u.number.as_str()).collect();
                let group = api.create_group(&users[0], &numbers).await?;
                let reader = users[0].as_acs();
                let thread = Arc::new(vec![client::thread_of_group(&group)?]);
                let before = count_messages(target, &reader, &thread).await?;
                let path = client::group_messages_path(&group);
                let make: MakeRequest = Arc::new(move |target, conn, n, _rng| {
                    let user = &users[conn % users.len()];
                    let body = client::kaizala_message_body(&format!("bench message {conn}-{n}"));
                    let headers = [("accessToken", user.token.as_str())];
                    (
                        0,
                        target.raw_request(Method::POST, &path, None, &headers, Some(body)),
                    )
                });
                let (outcome, usage) = self
                    .measure(server, target, scenario.conns, ONE, make)
                    .await;
                let committed = count_messages(target, &reader, &thread)
                    .await?
                    .saturating_sub(before);
                self.report_sends(scenario, &outcome, usage, committed);
                Ok(())
            }
            Kind::ListNewest | Kind::ListOldest => {
                self.ensure_list_thread(target).await?;
                let list = self.list.as_ref().expect("ensured");
                let path = if scenario.kind == Kind::ListNewest {
                    client::messages_path(&list.id, PAGE)
                } else {
                    list.oldest.clone()
                };
                let make: MakeRequest = Arc::new(move |target, conn, _n, _rng| {
                    let user = &users[conn % users.len()];
                    (
                        0,
                        target.raw_request(Method::GET, &path, Some(&user.bearer), &[], None),
                    )
                });
                let (outcome, usage) = self
                    .measure(server, target, scenario.conns, ONE, make)
                    .await;
                self.report(
                    &scenario.name,
                    scenario.scheme,
                    scenario.conns,
                    &outcome,
                    usage,
                    None,
                );
                Ok(())
            }
            Kind::CreateThread => {
                let path = format!("/chat/threads?api-version={}", client::CHAT_VERSION);
                let make: MakeRequest = Arc::new(move |target, conn, _n, _rng| {
                    let creator = &users[conn % users.len()];
                    let others: Vec<&User> = (1..CREATE_PARTICIPANTS)
                        .map(|k| &users[(conn + k) % users.len()])
                        .collect();
                    let body = client::create_thread_body("bench", creator, &others);
                    let key = uuid::Uuid::new_v4().to_string();
                    let request = target.raw_request(
                        Method::POST,
                        &path,
                        Some(&creator.bearer),
                        &[("repeatability-request-id", &key)],
                        Some(body),
                    );
                    (0, request)
                });
                let (outcome, usage) = self
                    .measure(server, target, scenario.conns, ONE, make)
                    .await;
                self.report(
                    &scenario.name,
                    scenario.scheme,
                    scenario.conns,
                    &outcome,
                    usage,
                    None,
                );
                Ok(())
            }
            Kind::Mixed => {
                let threads = Arc::new(create_threads(target, &users, self.threads).await?);
                // A few messages in every thread first, so that reads have pages to read.
                let per_thread = if self.quick { 2 } else { 20 };
                let seed = load::run(
                    target.clone(),
                    Plan {
                        conns: WIDE,
                        duration: Duration::from_secs(600),
                        budget: Some((per_thread * threads.len()) as u64),
                        kinds: ONE,
                    },
                    send_workload(users.clone(), threads.clone(), 0),
                )
                .await;
                if seed.total_errors() > 0 {
                    bail!("seeding the mixed threads failed: {:?}", seed.error_kinds);
                }
                let reads: Arc<Vec<String>> = Arc::new(
                    threads
                        .iter()
                        .map(|t| client::messages_path(t, PAGE))
                        .collect(),
                );
                let send = send_workload(users.clone(), threads.clone(), 1);
                let make: MakeRequest = Arc::new(move |target, conn, n, rng| {
                    if rng.below(100) < MIXED_READS {
                        let user = &users[conn % users.len()];
                        let path = &reads[rng.below(reads.len())];
                        (
                            0,
                            target.raw_request(Method::GET, path, Some(&user.bearer), &[], None),
                        )
                    } else {
                        send(target, conn, n, rng)
                    }
                });
                let (outcome, usage) = self
                    .measure(server, target, scenario.conns, READ_SEND, make)
                    .await;
                let committed = count_messages(target, &self.users[0], &threads).await?;
                self.messages += committed;
                let acknowledged = seed.ok[0] + outcome.ok[1];
                self.check(&scenario.name, acknowledged, committed);
                self.report(
                    &scenario.name,
                    scenario.scheme,
                    scenario.conns,
                    &outcome,
                    usage,
                    Some((acknowledged, committed)),
                );
                Ok(())
            }
        }
    }

    /// Makes (or, after a restart, re-checks) the thread of the list scenarios: seeded at full
    /// speed through the API, then walked once to count it and find its oldest full page.
    async fn ensure_list_thread(&mut self, target: &Arc<Target>) -> anyhow::Result<()> {
        let user = self.users[0].clone();
        let mut api = Api::new(target.clone());
        if let Some(list) = &self.list {
            let (status, body) = api
                .call(Method::GET, &list.oldest, Some(&user.bearer), &[], None)
                .await?;
            let items = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["value"].as_array().map(Vec::len));
            if status.is_success() && items == Some(PAGE) {
                return Ok(());
            }
            // The continuation token did not survive the restart: find the page again.
            let id = list.id.clone();
            let messages = list.messages;
            let oldest = oldest_page(&mut api, &user, &id).await?.1;
            println!(
                "{:<40} the oldest page was found again after the restart",
                "seed/list"
            );
            self.list = Some(ListThread {
                id,
                oldest,
                messages,
            });
            return Ok(());
        }

        let users = Arc::new(self.users.clone());
        let thread = Arc::new(create_threads(target, &users, 1).await?);
        let started = Instant::now();
        let seed = load::run(
            target.clone(),
            Plan {
                conns: WIDE,
                duration: Duration::from_secs(3600),
                budget: Some(self.list_messages),
                kinds: ONE,
            },
            send_workload(users.clone(), thread.clone(), 0),
        )
        .await;
        let seeding = started.elapsed();
        let started = Instant::now();
        let (walk, oldest, span) = oldest_page(&mut api, &user, &thread[0]).await?;
        let walking = started.elapsed();
        let acknowledged = seed.total_ok();
        self.check("seed/list", acknowledged, walk.user_messages);
        self.messages += walk.user_messages;
        let rate = acknowledged as f64 / seeding.as_secs_f64().max(1e-9);
        println!(
            "{:<40} {} messages into one thread in {:.1} s ({} msg/s, {} errors); counted by walking {} pages of 200 in {:.1} s: {}; oldest page of {PAGE}: {span}",
            "seed/list",
            thousands(acknowledged),
            seeding.as_secs_f64(),
            thousands(rate as u64),
            seed.total_errors(),
            thousands(walk.links.len() as u64),
            walking.as_secs_f64(),
            if acknowledged == walk.user_messages { "ok".to_string() } else { format!("MISMATCH ({})", walk.user_messages) }
        );
        self.json_line(json!({
            "scenario": "seed/list",
            "acknowledged": acknowledged,
            "committed": walk.user_messages,
            "seconds": seeding.as_secs_f64(),
            "errors": seed.total_errors(),
        }));
        self.list = Some(ListThread {
            id: thread[0].clone(),
            oldest,
            messages: walk.user_messages,
        });
        Ok(())
    }

    /// The line of a send scenario: its sends answered 2xx must all be among the `committed`
    /// messages counted afterwards.
    fn report_sends(
        &mut self,
        scenario: &Scenario,
        outcome: &Outcome,
        usage: Usage,
        committed: u64,
    ) {
        let acknowledged = outcome.ok[0];
        self.messages += committed;
        self.check(&scenario.name, acknowledged, committed);
        self.report(
            &scenario.name,
            scenario.scheme,
            scenario.conns,
            outcome,
            usage,
            Some((acknowledged, committed)),
        );
    }

    fn check(&mut self, name: &str, acknowledged: u64, committed: u64) {
        if acknowledged != committed {
            self.failures.push(format!(
                "{name}: {acknowledged} sends answered 2xx but {committed} messages committed"
            ));
        }
    }

    fn report(
        &mut self,
        name: &str,
        scheme: Scheme,
        conns: usize,
        outcome: &Outcome,
        usage: Usage,
        counts: Option<(u64, u64)>,
    ) {
        let ceiling = self
            .ceilings
            .get(&(scheme, conns))
            .filter(|_| !name.starts_with("ceiling/"))
            .map(|c| outcome.throughput() / c.max(1e-9));
        let mut line = format!(
            "{name:<40} {:>8} req/s  p50 {} p90 {} p99 {} max {} ms  errors {}",
            thousands(outcome.throughput().round() as u64),
            ms(outcome.quantile_ms(0.5)),
            ms(outcome.quantile_ms(0.9)),
            ms(outcome.quantile_ms(0.99)),
            ms(outcome.max_ms()),
            outcome.total_errors(),
        );
        if outcome.kinds.len() > 1 {
            let parts: Vec<String> = (0..outcome.kinds.len())
                .map(|k| {
                    format!(
                        "{} {}/s",
                        outcome.kinds[k],
                        thousands(outcome.kind_throughput(k).round() as u64)
                    )
                })
                .collect();
            line.push_str(&format!(" ({})", parts.join(", ")));
        }
        line.push_str(&format!(
            "  cpu {}  rss {}",
            percent(usage.cores),
            mb(usage.peak_rss)
        ));
        line.push_str(&format!("  (bench cpu {})", percent(usage.client_cores)));
        if let Some(ratio) = ceiling {
            line.push_str(&format!("  ceiling {ratio:.2}"));
        }
        if let Some((acknowledged, committed)) = counts {
            if acknowledged == committed {
                line.push_str(&format!("  committed {} = 2xx ok", thousands(committed)));
            } else {
                line.push_str(&format!(
                    "  committed {} != 2xx {} MISMATCH",
                    thousands(committed),
                    thousands(acknowledged)
                ));
            }
        }
        if outcome.total_errors() > 0 {
            let kinds: Vec<String> = outcome
                .error_kinds
                .iter()
                .map(|(k, n)| format!("{k} ×{n}"))
                .collect();
            line.push_str(&format!("  [{}]", kinds.join("; ")));
        }
        println!("{line}");
        let record = Record {
            scenario: name.to_string(),
            scheme: scheme.name(),
            conns,
            requests: outcome.total_ok() + outcome.total_errors(),
            seconds: outcome.elapsed.as_secs_f64(),
            per_sec: outcome.throughput(),
            p50_ms: outcome.quantile_ms(0.5),
            p90_ms: outcome.quantile_ms(0.9),
            p99_ms: outcome.quantile_ms(0.99),
            max_ms: outcome.max_ms(),
            errors: outcome.total_errors(),
            error_kinds: outcome.error_kinds.clone(),
            server_cpu_cores: usage.cores,
            client_cpu_cores: usage.client_cores,
            server_peak_rss_bytes: usage.peak_rss,
            ceiling_ratio: ceiling,
            ok_by_kind: outcome
                .kinds
                .iter()
                .copied()
                .zip(outcome.ok.iter().copied())
                .collect(),
            acknowledged: counts.map(|c| c.0),
            committed: counts.map(|c| c.1),
            stream: None,
        };
        if let Ok(value) = serde_json::to_value(&record) {
            self.json_line(value);
        }
    }

    /// The stream fan-out: one thread with up to 250 participants, `subscribers` SSE streams
    /// spread evenly over them, messages at `stream_rate` per second from [`stream::SENDERS`]
    /// of them.
    async fn stream_scenario(
        &mut self,
        server: &ServerProcess,
        target: &Arc<Target>,
        scenario: &Scenario,
    ) -> anyhow::Result<()> {
        let identities = self.subscribers.min(THREAD_PARTICIPANTS);
        if self.stream_users.len() < identities {
            let more = identities - self.stream_users.len();
            let made = make_users(target, &self.access_key, more).await?;
            self.stream_users.extend(made);
        }
        let users = self.stream_users[..identities].to_vec();
        let thread = stream_thread(target, &users).await?;
        let subscribers: Vec<User> = (0..self.subscribers)
            .map(|s| users[s % identities].clone())
            .collect();
        let senders: Vec<User> = (0..stream::SENDERS)
            .map(|k| users[k % identities].clone())
            .collect();
        let plan = FanOut {
            subscribers: self.subscribers,
            rate: self.stream_rate,
            window: self.duration,
        };
        let outcome = stream::run(
            target.clone(),
            server.pid,
            &thread,
            subscribers,
            senders,
            plan,
        )
        .await?;
        self.messages += outcome.acknowledged;
        if outcome.errors() > 0 {
            self.failures.push(format!(
                "{}: {} errors: {:?}",
                scenario.name,
                outcome.errors(),
                outcome.error_kinds
            ));
        }
        self.report_stream(scenario, &plan, identities, &outcome);
        Ok(())
    }

    fn report_stream(
        &mut self,
        scenario: &Scenario,
        plan: &FanOut,
        identities: usize,
        outcome: &FanOutOutcome,
    ) {
        let q = |p| stream::quantile_ms(&outcome.latencies, p);
        let send_q = |p| stream::quantile_ms(&outcome.send_latencies, p);
        let stamp_q = |p| stream::quantile_ms(&outcome.from_stamp, p);
        let max = q(1.0);
        let mut line = format!(
            "{:<40} {:>8} deliveries/s  p50 {} p90 {} p99 {} max {} ms  errors {}",
            scenario.name,
            thousands(outcome.deliveries_per_sec().round() as u64),
            ms(q(0.5)),
            ms(q(0.9)),
            ms(q(0.99)),
            ms(max),
            outcome.errors(),
        );
        line.push_str(&format!(
            " (sends {}/s of {}/s, send p50 {} p99 {} ms; from the commit stamp p50 {} p99 {} ms; delivered {} of {}, missing {})",
            thousands(outcome.sends_per_sec(plan).round() as u64),
            thousands(plan.rate.round() as u64),
            ms(send_q(0.5)),
            ms(send_q(0.99)),
            ms(stamp_q(0.5)),
            ms(stamp_q(0.99)),
            thousands(outcome.deliveries),
            thousands(outcome.expected),
            thousands(outcome.missing),
        ));
        line.push_str(&format!(
            "  cpu {}  rss {}  (bench cpu {})",
            percent(outcome.usage.cores),
            mb(outcome.usage.peak_rss),
            percent(outcome.usage.client_cores)
        ));
        if outcome.errors() > 0 {
            let kinds: Vec<String> = outcome
                .error_kinds
                .iter()
                .map(|(k, n)| format!("{k} ×{n}"))
                .collect();
            line.push_str(&format!("  [{}]", kinds.join("; ")));
        }
        println!("{line}");
        let record = Record {
            scenario: scenario.name.clone(),
            scheme: scenario.scheme.name(),
            conns: plan.subscribers,
            requests: outcome.deliveries,
            seconds: outcome.elapsed.as_secs_f64(),
            per_sec: outcome.deliveries_per_sec(),
            p50_ms: q(0.5),
            p90_ms: q(0.9),
            p99_ms: q(0.99),
            max_ms: max,
            errors: outcome.errors(),
            error_kinds: outcome.error_kinds.clone(),
            server_cpu_cores: outcome.usage.cores,
            client_cpu_cores: outcome.usage.client_cores,
            server_peak_rss_bytes: outcome.usage.peak_rss,
            ceiling_ratio: None,
            ok_by_kind: [("sends", outcome.acknowledged)].into_iter().collect(),
            acknowledged: None,
            committed: None,
            stream: Some(StreamRecord {
                subscribers: plan.subscribers,
                identities,
                streams_per_identity: plan.subscribers.div_ceil(identities.max(1)),
                send_rate_target: plan.rate,
                sends: outcome.sent,
                sends_per_sec: outcome.sends_per_sec(plan),
                send_errors: outcome.send_errors,
                send_p50_ms: send_q(0.5),
                send_p99_ms: send_q(0.99),
                send_lag_max_ms: outcome.send_lag_max.as_secs_f64() * 1000.0,
                stamp_p50_ms: stamp_q(0.5),
                stamp_p90_ms: stamp_q(0.9),
                stamp_p99_ms: stamp_q(0.99),
                stamp_max_ms: stamp_q(1.0),
                deliveries: outcome.deliveries,
                expected_deliveries: outcome.expected,
                missing: outcome.missing,
                duplicates: outcome.duplicates,
                out_of_order: outcome.out_of_order,
                failed_streams: outcome.failed_streams,
            }),
        };
        if let Ok(value) = serde_json::to_value(&record) {
            self.json_line(value);
        }
    }

    fn json_line(&mut self, value: serde_json::Value) {
        if let Some(file) = &mut self.json {
            let _ = writeln!(file, "{value}");
        }
    }
}

/// Sends to a random thread of `threads` (as the user of the connection), as request kind
/// `kind`.
fn send_workload(users: Arc<Vec<User>>, threads: Arc<Vec<String>>, kind: usize) -> MakeRequest {
    let paths: Arc<Vec<String>> = Arc::new(threads.iter().map(|t| client::send_path(t)).collect());
    Arc::new(move |target, conn, n, rng| {
        let user = &users[conn % users.len()];
        let path = &paths[if paths.len() == 1 {
            0
        } else {
            rng.below(paths.len())
        }];
        let body = client::send_body(&format!("bench message {conn}-{n}"));
        (
            kind,
            target.raw_request(Method::POST, path, Some(&user.bearer), &[], Some(body)),
        )
    })
}

/// The thread of the stream scenario: made by `users[0]` with the first 200, the rest added
/// 200 at a time.
async fn stream_thread(target: &Arc<Target>, users: &[User]) -> anyhow::Result<String> {
    let mut api = Api::new(target.clone());
    let creator = &users[0];
    let rest: Vec<&User> = users[1..].iter().collect();
    let (first, later) = rest.split_at(rest.len().min(PARTICIPANT_BATCH - 1));
    let thread = api.create_thread(creator, first).await?;
    for batch in later.chunks(PARTICIPANT_BATCH) {
        api.add_participants(creator, &thread, batch).await?;
    }
    Ok(thread)
}

/// [`USERS`] Kaizala users (mobile numbers +1425555xxxx) of one connector application, logged in
/// with the PINs the server writes to `pin_file`.
async fn kaizala_users(
    target: &Arc<Target>,
    access_key: &[u8],
    pin_file: &Path,
) -> anyhow::Result<Vec<KzUser>> {
    let mut api = Api::new(target.clone());
    let app = Arc::new(api.create_application(access_key).await?);
    let pin_file: Arc<Path> = pin_file.into();
    in_parallel(target, (0..USERS).collect(), move |mut api, i| {
        let app = app.clone();
        let pin_file = pin_file.clone();
        async move {
            let user = api
                .kaizala_login(&app, &format!("+1425555{i:04}"), &pin_file)
                .await;
            (api, user)
        }
    })
    .await
}

async fn make_users(target: &Arc<Target>, key: &[u8], count: usize) -> anyhow::Result<Vec<User>> {
    let key: Arc<[u8]> = key.into();
    let made = in_parallel(target, (0..count).collect(), move |mut api, _| {
        let key = key.clone();
        async move {
            let user = api.create_user(&key).await;
            (api, user)
        }
    })
    .await?;
    Ok(made)
}

/// `count` threads, each made by user `i % users` with every user as participant.
async fn create_threads(
    target: &Arc<Target>,
    users: &Arc<Vec<User>>,
    count: usize,
) -> anyhow::Result<Vec<String>> {
    let users = users.clone();
    in_parallel(target, (0..count).collect(), move |mut api, i| {
        let users = users.clone();
        async move {
            let creator = &users[i % users.len()];
            let others: Vec<&User> = users
                .iter()
                .filter(|u| u.raw_id != creator.raw_id)
                .collect();
            let thread = api.create_thread(creator, &others).await;
            (api, thread)
        }
    })
    .await
}

/// The user messages in all of `threads`, counted by listing them.
async fn count_messages(
    target: &Arc<Target>,
    user: &User,
    threads: &Arc<Vec<String>>,
) -> anyhow::Result<u64> {
    let user = user.clone();
    let threads = threads.clone();
    let counts = in_parallel(target, (0..threads.len()).collect(), move |mut api, i| {
        let user = user.clone();
        let threads = threads.clone();
        async move {
            let walk = api.count_messages(&user, &threads[i]).await;
            (api, walk.map(|w| w.user_messages))
        }
    })
    .await?;
    Ok(counts.iter().sum())
}

/// Walks a thread at 200 per page to its end, then the last stretch again at [`PAGE`] per page:
/// answers the walk, the link of the oldest full page of [`PAGE`] (pages are cut from the
/// newest end, so the very oldest page may hold fewer), and the sequenceIds that page holds.
async fn oldest_page(
    api: &mut Api,
    user: &User,
    thread: &str,
) -> anyhow::Result<(client::Walk, String, String)> {
    let walk = api
        .walk(user, &client::messages_path(thread, 200), true)
        .await?;
    // The last page at 200 may hold a single message: walk the last two pages again at PAGE.
    let (start, _) = walk
        .links
        .iter()
        .rev()
        .nth(1)
        .or(walk.links.first())
        .ok_or_else(|| anyhow!("the thread has no pages"))?;
    let start = start.replace("maxPageSize=200", &format!("maxPageSize={PAGE}"));
    let tail = api.walk(user, &start, true).await?;
    let oldest = tail
        .links
        .iter()
        .rev()
        .find(|(_, n)| *n == PAGE)
        .or(tail.links.first())
        .map(|(link, _)| link.clone())
        .ok_or_else(|| anyhow!("no oldest page"))?;
    let (_, body) = api
        .call(Method::GET, &oldest, Some(&user.bearer), &[], None)
        .await?;
    let page: serde_json::Value = serde_json::from_slice(&body)?;
    let ids: Vec<&str> = page["value"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|m| m["sequenceId"].as_str())
                .collect()
        })
        .unwrap_or_default();
    let span = format!(
        "sequenceIds {}..{}",
        ids.first().unwrap_or(&"?"),
        ids.last().unwrap_or(&"?")
    );
    Ok((walk, oldest, span))
}

/// Runs `job` for every item over [`SETUP_CONNS`] connections; answers the results in order.
async fn in_parallel<T, F, Fut>(
    target: &Arc<Target>,
    items: Vec<usize>,
    job: F,
) -> anyhow::Result<Vec<T>>
where
    T: Send + 'static,
    F: Fn(Api, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = (Api, anyhow::Result<T>)> + Send,
{
    let total = items.len();
    let queue = Arc::new(std::sync::Mutex::new(items.into_iter()));
    let job = Arc::new(job);
    let mut tasks = Vec::new();
    for _ in 0..SETUP_CONNS.min(total) {
        let queue = queue.clone();
        let job = job.clone();
        let mut api = Api::new(target.clone());
        tasks.push(tokio::spawn(async move {
            let mut done = Vec::new();
            loop {
                let next = queue.lock().expect("queue lock").next();
                let Some(i) = next else { break };
                let (back, result) = job(api, i).await;
                api = back;
                done.push((i, result?));
            }
            anyhow::Ok(done)
        }));
    }
    let mut all = Vec::with_capacity(total);
    for task in tasks {
        all.extend(task.await??);
    }
    all.sort_by_key(|(i, _)| *i);
    Ok(all.into_iter().map(|(_, t)| t).collect())
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let head = match digits.len() % 3 {
        0 => 3.min(digits.len()),
        r => r,
    };
    let mut out = digits[..head].to_string();
    for group in digits.as_bytes()[head..].chunks(3) {
        out.push(',');
        out.push_str(std::str::from_utf8(group).expect("ASCII digits"));
    }
    out
}

fn ms(x: f64) -> String {
    if x < 10.0 {
        format!("{x:.2}")
    } else if x < 100.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.0}")
    }
}

fn percent(cores: Option<f64>) -> String {
    cores.map_or("n/a".into(), |c| format!("{:.0}%", c * 100.0))
}

fn mb(bytes: Option<u64>) -> String {
    bytes.map_or("n/a".into(), |b| format!("{:.1}MB", b as f64 / 1e6))
}

/// The 1/5/15-minute load averages: other work on the machine skews every figure.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| "n/a".into())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(ms(0.4567), "0.46");
        assert_eq!(ms(12.34), "12.3");
    }

    #[test]
    fn scenario_names_are_unique() {
        let all = all_scenarios(1000, 1000);
        let mut names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), all.len());
        assert!(names.contains(&"send/http/64conn/1thread"));
        assert!(names.contains(&"send-kaizala/http/64conn/1group"));
        assert!(names.contains(&"mixed/https/256conn/1000threads"));
        assert!(names.contains(&"stream/http/1thread/1000subscribers"));
    }
}
