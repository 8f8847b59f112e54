//! The stream fan-out scenario: one thread, S subscribers on `GET /stream/events` (SSE), sends
//! at a fixed rate; measures the deliveries per second over all subscribers and the latency of
//! each delivery, and checks that every subscriber got every message that was answered 2xx.
//!
//! Each message's content is `cfbs:<seq>:<µs>`: its number and the moment its send started,
//! in microseconds since the scenario's epoch (an [`Instant`] of this process, so the sender and
//! the subscribers read the same clock). A subscriber takes the time when a chunk arrives and
//! subtracts: the latency runs from the send's start — before the commit — to the receipt, so
//! it over-states commit-to-receipt by at most the send's own latency (reported alongside).
//!
//! Each subscriber is one task that writes its HTTP/1.1 request and reads the socket itself
//! (chunked transfer coding, then SSE lines): with 1,000 streams on the same two cores as the
//! server, a client connection task plus a body channel per stream cost the load generator a
//! third more CPU and the measured latency with it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch, Semaphore};

use crate::client::{self, exchange, Io, Sender, Target, User};
use crate::http1;
use crate::procstat::{Meter, Usage};

/// The marker that starts a benchmark message's content.
const MARKER: &str = "cfbs:";
/// Identities that send (message `seq` is sent by `senders[seq % SENDERS]`), and the
/// connections opened for sending before the clock starts.
pub const SENDERS: usize = 4;
/// The most connections sending at once: a send starts on schedule on an idle connection, or
/// on a new one while fewer than this are open; only past this does the schedule slip.
const MAX_SENDING: usize = 64;
/// Subscribers connecting (TCP, TLS, the stream request) at the same time.
const CONNECTING: usize = 32;
/// How long all subscribers may take to be connected and live (`event: ready`).
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long after the last send the subscribers may take to receive everything.
const DRAIN: Duration = Duration::from_secs(10);
/// How often the drain checks whether everything arrived.
const DRAIN_POLL: Duration = Duration::from_millis(5);

/// How much fan-out.
#[derive(Clone, Copy, Debug)]
pub struct FanOut {
    pub subscribers: usize,
    /// Messages per second, in all.
    pub rate: f64,
    /// How long to send.
    pub window: Duration,
}

/// What a fan-out run measured.
#[derive(Debug, Default)]
pub struct FanOutOutcome {
    /// From the first send's scheduled start to the last delivery (or the end of the window,
    /// whichever is later).
    pub elapsed: Duration,
    /// Sends made, and answered 2xx.
    pub sent: u64,
    pub acknowledged: u64,
    /// Latency of every answered send, µs, sorted.
    pub send_latencies: Vec<u32>,
    /// Benchmark messages received, over all subscribers (duplicates included).
    pub deliveries: u64,
    /// 2xx-answered messages × subscribers: what had to arrive.
    pub expected: u64,
    /// Of `expected`, what did not arrive within the drain.
    pub missing: u64,
    /// Messages a subscriber got more than once.
    pub duplicates: u64,
    /// Events whose position (`id:`) was not above the one before on the same stream.
    pub out_of_order: u64,
    /// Subscribers that could not connect, or whose stream ended early.
    pub failed_streams: u64,
    /// Latency of every delivery (send start to receipt), µs, sorted.
    pub latencies: Vec<u32>,
    /// The same from the event's `at` stamp (the store's clock reading in the write
    /// transaction, before COMMIT) to receipt (this process's wall clock), µs, sorted.
    pub from_stamp: Vec<u32>,
    /// Failed sends.
    pub send_errors: u64,
    /// From the clock's start to the start of the last send.
    pub send_span: Duration,
    /// The most a send started after its scheduled time.
    pub send_lag_max: Duration,
    /// What went wrong, and how often.
    pub error_kinds: BTreeMap<String, u64>,
    /// The server process over the window and the drain.
    pub usage: Usage,
}

impl FanOutOutcome {
    /// Failed sends, missing, duplicate and out-of-order deliveries, failed streams.
    pub fn errors(&self) -> u64 {
        self.send_errors + self.missing + self.duplicates + self.out_of_order + self.failed_streams
    }

    pub fn deliveries_per_sec(&self) -> f64 {
        self.deliveries as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Sends made per second: over the window, or longer if the sends started late.
    pub fn sends_per_sec(&self, plan: &FanOut) -> f64 {
        let span = self.send_span.as_secs_f64() + 1.0 / plan.rate.max(1e-3);
        self.sent as f64 / span.max(plan.window.as_secs_f64()).max(1e-9)
    }
}

/// The `q` quantile (0..=1) of sorted µs latencies, nearest rank, in milliseconds.
pub fn quantile_ms(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let n = sorted.len();
    let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
    f64::from(sorted[rank - 1]) / 1000.0
}

/// Runs the scenario: `subscribers[s]` is the identity of subscriber `s`, `senders[k]` that of
/// sender connection `k`; all are participants of `thread`. Measures the server `pid`.
pub async fn run(
    target: Arc<Target>,
    pid: u32,
    thread: &str,
    subscribers: Vec<User>,
    senders: Vec<User>,
    plan: FanOut,
) -> anyhow::Result<FanOutOutcome> {
    let epoch = Instant::now();
    let (stop_tx, stop) = watch::channel(false);
    let (ready_tx, mut ready_rx) = mpsc::channel::<Result<(), String>>(subscribers.len().max(1));
    let connecting = Arc::new(Semaphore::new(CONNECTING));
    let hard_deadline = epoch + READY_TIMEOUT + plan.window + DRAIN + Duration::from_secs(30);
    let mut progress = Vec::with_capacity(subscribers.len());
    let mut tasks = Vec::with_capacity(subscribers.len());
    for user in &subscribers {
        let watch = Arc::new(Progress::default());
        progress.push(watch.clone());
        let sub = Subscriber {
            target: target.clone(),
            bearer: user.bearer.clone(),
            epoch,
            hard_deadline,
            progress: watch,
        };
        let connecting = connecting.clone();
        let ready = ready_tx.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            sub.follow(connecting, ready, stop).await
        }));
    }
    drop(ready_tx);

    // Every subscriber live (or failed) before the clock starts.
    let mut out = FanOutOutcome::default();
    let ready_by = tokio::time::Instant::now() + READY_TIMEOUT;
    let mut answered = 0;
    while answered < subscribers.len() {
        match tokio::time::timeout_at(ready_by, ready_rx.recv()).await {
            Ok(Some(Ok(()))) => answered += 1,
            // Counted with the subscriber's outcome, at the end.
            Ok(Some(Err(_))) => answered += 1,
            Ok(None) => break,
            Err(_) => {
                *out.error_kinds
                    .entry(format!("not live within {READY_TIMEOUT:?}"))
                    .or_default() += (subscribers.len() - answered) as u64;
                break;
            }
        }
    }

    let bearers: Arc<Vec<String>> = Arc::new(senders.iter().map(|u| u.bearer.clone()).collect());
    let path = Arc::new(client::send_path(thread));
    let mut pool = Pool::open(target.clone(), SENDERS).await;
    let meter = Meter::start(pid);
    let t0 = Instant::now();
    let part = send_all(&mut pool, bearers, path, plan, epoch, t0).await;
    out.sent = part.sent;
    out.acknowledged = part.acked.len() as u64;
    out.send_latencies = part.latencies;
    out.send_errors = part.errors;
    out.send_span = part.last_start.saturating_duration_since(t0);
    out.send_lag_max = part.lag_max;
    for (kind, n) in part.error_kinds {
        *out.error_kinds.entry(format!("send: {kind}")).or_default() += n;
    }
    let acked_seqs = part.acked;

    // The drain: until every live subscriber has as many messages as were acknowledged.
    let drain_by = Instant::now() + DRAIN;
    while Instant::now() < drain_by {
        let behind = progress.iter().any(|p| {
            !p.done.load(Ordering::Relaxed) && p.received.load(Ordering::Relaxed) < out.acknowledged
        });
        if !behind {
            break;
        }
        tokio::time::sleep(DRAIN_POLL).await;
    }
    let _ = stop_tx.send(true);
    out.usage = meter.stop();

    let sent_total = acked_seqs
        .iter()
        .map(|&s| s as usize + 1)
        .max()
        .unwrap_or(0);
    let mut acked = vec![false; sent_total];
    for &seq in &acked_seqs {
        acked[seq as usize] = true;
    }
    let t0_us = micros(t0.duration_since(epoch));
    let mut last_us = micros(t0.duration_since(epoch) + plan.window);
    for task in tasks {
        let got = match task.await {
            Ok(got) => got,
            Err(err) => Got {
                failure: Some(format!("subscriber task failed: {err}")),
                ..Got::default()
            },
        };
        if let Some(failure) = got.failure {
            out.failed_streams += 1;
            *out.error_kinds.entry(failure).or_default() += 1;
        }
        out.out_of_order += got.out_of_order;
        last_us = last_us.max(got.last_us);
        let mut seen = vec![false; sent_total];
        for &seq in &got.seqs {
            match seen.get_mut(seq as usize) {
                Some(mark) if *mark => out.duplicates += 1,
                Some(mark) => *mark = true,
                None => {} // a send that was not answered 2xx, past every acknowledged one
            }
        }
        out.deliveries += got.seqs.len() as u64;
        out.missing += acked
            .iter()
            .zip(&seen)
            .filter(|(&was_acked, &was_seen)| was_acked && !was_seen)
            .count() as u64;
        out.latencies.extend(got.latencies);
        out.from_stamp.extend(got.from_stamp);
    }
    out.expected = out.acknowledged * subscribers.len() as u64;
    if out.missing > 0 {
        *out.error_kinds
            .entry("missing delivery".into())
            .or_default() += out.missing;
    }
    if out.duplicates > 0 {
        *out.error_kinds
            .entry("duplicate delivery".into())
            .or_default() += out.duplicates;
    }
    if out.out_of_order > 0 {
        *out.error_kinds
            .entry("position out of order".into())
            .or_default() += out.out_of_order;
    }
    out.elapsed = Duration::from_micros(last_us.saturating_sub(t0_us));
    out.latencies.sort_unstable();
    out.from_stamp.sort_unstable();
    out.send_latencies.sort_unstable();
    Ok(out)
}

fn micros(d: Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX)) as u64
}

/// What the drain watches of a subscriber.
#[derive(Default)]
struct Progress {
    received: AtomicU64,
    /// The subscriber stopped (failed or its stream ended): nothing more will come.
    done: AtomicBool,
}

/// What one subscriber received.
#[derive(Debug, Default)]
struct Got {
    /// The message numbers, in the order received.
    seqs: Vec<u32>,
    /// Send start to receipt, µs, per delivery.
    latencies: Vec<u32>,
    /// The event's `at` stamp to receipt, µs, per delivery.
    from_stamp: Vec<u32>,
    out_of_order: u64,
    /// µs since the epoch of the last delivery.
    last_us: u64,
    failure: Option<String>,
}

struct Subscriber {
    target: Arc<Target>,
    bearer: String,
    epoch: Instant,
    hard_deadline: Instant,
    progress: Arc<Progress>,
}

impl Subscriber {
    /// Opens the stream, says when it is live, and reads it until told to stop.
    async fn follow(
        self,
        connecting: Arc<Semaphore>,
        ready: mpsc::Sender<Result<(), String>>,
        mut stop: watch::Receiver<bool>,
    ) -> Got {
        let mut got = Got::default();
        let mut ready = Some(ready);
        let opened = {
            let _permit = connecting.acquire().await;
            self.open().await
        };
        let (mut io, body, leftover) = match opened {
            Ok(opened) => opened,
            Err(err) => {
                let failure = format!("stream: {err:#}");
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Err(failure.clone())).await;
                }
                self.progress.done.store(true, Ordering::Relaxed);
                got.failure = Some(failure);
                return got;
            }
        };
        let mut reader = Reader {
            body,
            parser: SseParser::default(),
            data: Vec::with_capacity(READ_BUFFER),
        };
        let mut buf = vec![0u8; READ_BUFFER];
        // Made once, not per read: a timer or waiter registered anew per event costs more
        // than reading the event.
        let hard = tokio::time::sleep_until(tokio::time::Instant::from_std(self.hard_deadline));
        tokio::pin!(hard);
        let stopped = async move {
            let _ = stop.wait_for(|stop| *stop).await;
        };
        tokio::pin!(stopped);
        // The bytes read with the response head come first.
        let mut step = reader.take(&leftover, micros(self.epoch.elapsed()), &mut got);
        let failure = loop {
            match step {
                Ok(seen) => {
                    if seen.received > 0 {
                        self.progress
                            .received
                            .fetch_add(seen.received, Ordering::Relaxed);
                    }
                    if seen.ready {
                        if let Some(ready) = ready.take() {
                            let _ = ready.send(Ok(())).await;
                        }
                    }
                    if let Some(closed) = seen.closed {
                        break Some(format!("stream closed: {closed}"));
                    }
                    if seen.ended {
                        break Some("stream: ended by the server".to_string());
                    }
                }
                Err(err) => break Some(format!("stream: {err}")),
            }
            let read = tokio::select! {
                biased;
                _ = &mut stopped => break None,
                _ = &mut hard => break Some("stream: still open at the hard deadline".to_string()),
                read = io.read(&mut buf) => read,
            };
            step = match read {
                Ok(0) => break Some("stream: closed by the server".to_string()),
                Ok(n) => reader.take(&buf[..n], micros(self.epoch.elapsed()), &mut got),
                Err(err) => break Some(format!("stream: {err}")),
            };
        };
        if let Some(ready) = ready.take() {
            let message = failure
                .clone()
                .unwrap_or_else(|| "stream: stopped before it was live".into());
            let _ = ready.send(Err(message)).await;
        }
        self.progress.done.store(true, Ordering::Relaxed);
        // Told to stop is the normal end; anything else is a failed stream.
        got.failure = failure;
        got
    }

    /// Connects and asks for the stream (HTTP/1.1 written and read here, so that one task
    /// does all the reading of a stream); answers the connection, the body's decoder, and the
    /// body bytes read with the head.
    async fn open(&self) -> anyhow::Result<(Box<dyn Io>, Body, Vec<u8>)> {
        let work = async {
            let mut io = self.target.connect_io().await?;
            let request = format!(
                "GET /stream/events HTTP/1.1\r\nhost: {}\r\nauthorization: {}\r\n\
                 accept: text/event-stream\r\n\r\n",
                self.target.host, self.bearer
            );
            io.write_all(request.as_bytes()).await?;
            io.flush().await?;
            let mut buf = Vec::with_capacity(READ_BUFFER);
            let head = http1::read_head(&mut *io, &mut buf, MAX_HEAD).await?;
            let rest = buf.split_off(head.len);
            anyhow::Ok((io, head, rest))
        };
        let (io, head, rest) = tokio::time::timeout(client::REQUEST_TIMEOUT, work)
            .await
            .map_err(|_| anyhow::anyhow!("no answer within {:?}", client::REQUEST_TIMEOUT))??;
        if !head.status.is_success() {
            anyhow::bail!(
                "HTTP {}: {}",
                head.status.as_u16(),
                String::from_utf8_lossy(&rest[..rest.len().min(200)])
            );
        }
        Ok((io, Body::new(head.chunked), rest))
    }
}

/// Bytes read per read call.
const READ_BUFFER: usize = 64 * 1024;
/// The longest response head accepted.
const MAX_HEAD: usize = 64 * 1024;

/// A stream's reading state: the body's decoder and the SSE parser.
struct Reader {
    body: Body,
    parser: SseParser,
    /// The body bytes of one read (reused).
    data: Vec<u8>,
}

impl Reader {
    /// Takes the bytes of one read, received at `now_us`.
    fn take(&mut self, input: &[u8], now_us: u64, got: &mut Got) -> Result<Seen, String> {
        self.data.clear();
        let ended = self.body.decode(input, &mut self.data)?;
        self.parser.wall_us = wall_micros();
        let before = got.seqs.len();
        let mut seen = self.parser.feed(&self.data, now_us, got);
        let received = got.seqs.len() - before;
        if received > 0 {
            got.last_us = now_us;
        }
        seen.received = received as u64;
        seen.ended = ended;
        Ok(seen)
    }
}

/// The response body's framing: HTTP/1.1 chunked transfer coding, or plain bytes to the end of
/// the connection.
#[derive(Debug)]
struct Body {
    chunked: bool,
    state: Chunk,
    /// The chunk-size line read so far.
    size_line: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Chunk {
    /// Reading a chunk-size line.
    Size,
    /// This many data bytes to come.
    Data(usize),
    /// After the data: up to and including its line end.
    DataEnd,
    /// The last chunk came.
    Done,
}

impl Body {
    fn new(chunked: bool) -> Self {
        Self {
            chunked,
            state: Chunk::Size,
            size_line: Vec::new(),
        }
    }

    /// Appends the body bytes in `input` to `out`; answers whether the body ended.
    fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<bool, String> {
        if !self.chunked {
            out.extend_from_slice(input);
            return Ok(false);
        }
        let mut at = 0;
        while at < input.len() {
            match self.state {
                Chunk::Size => match input[at..].iter().position(|&b| b == b'\n') {
                    None => {
                        self.size_line.extend_from_slice(&input[at..]);
                        at = input.len();
                        if self.size_line.len() > 64 {
                            return Err("a chunk-size line too long".into());
                        }
                    }
                    Some(end) => {
                        self.size_line.extend_from_slice(&input[at..at + end]);
                        at += end + 1;
                        let line = String::from_utf8_lossy(&self.size_line);
                        let hex = line.split(';').next().unwrap_or("").trim();
                        let size = usize::from_str_radix(hex, 16)
                            .map_err(|_| format!("a bad chunk size {hex:?}"))?;
                        self.size_line.clear();
                        self.state = if size == 0 {
                            Chunk::Done
                        } else {
                            Chunk::Data(size)
                        };
                    }
                },
                Chunk::Data(left) => {
                    let take = left.min(input.len() - at);
                    out.extend_from_slice(&input[at..at + take]);
                    at += take;
                    self.state = if take == left {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data(left - take)
                    };
                }
                Chunk::DataEnd => {
                    if input[at] == b'\n' {
                        self.state = Chunk::Size;
                    }
                    at += 1;
                }
                Chunk::Done => return Ok(true),
            }
        }
        Ok(self.state == Chunk::Done)
    }
}

/// What a chunk of the stream held besides messages.
#[derive(Debug, Default, PartialEq)]
struct Seen {
    /// `event: ready` came: the stream is live.
    ready: bool,
    /// Benchmark messages received.
    received: u64,
    /// The body ended.
    ended: bool,
    /// `event: closed` or `event: reset` came, with its data.
    closed: Option<String>,
}

/// Reads SSE lines across chunk boundaries.
#[derive(Debug, Default)]
struct SseParser {
    /// The start of a line whose end has not come yet.
    partial: Vec<u8>,
    /// The `event:` of the event being read.
    event: Option<String>,
    /// When the chunk being read arrived, µs since the Unix epoch.
    wall_us: u64,
    last_id: Option<i64>,
}

impl SseParser {
    /// Feeds one chunk received at `now_us`.
    fn feed(&mut self, chunk: &[u8], now_us: u64, got: &mut Got) -> Seen {
        let mut seen = Seen::default();
        let mut rest = chunk;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            let (line, tail) = rest.split_at(end);
            rest = &tail[1..];
            if self.partial.is_empty() {
                self.line(line, now_us, got, &mut seen);
            } else {
                let mut whole = std::mem::take(&mut self.partial);
                whole.extend_from_slice(line);
                self.line(&whole, now_us, got, &mut seen);
            }
        }
        self.partial.extend_from_slice(rest);
        seen
    }

    fn line(&mut self, line: &[u8], now_us: u64, got: &mut Got, seen: &mut Seen) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Ok(line) = std::str::from_utf8(line) else {
            return;
        };
        if line.is_empty() {
            self.event = None;
        } else if let Some(kind) = line.strip_prefix("event:") {
            let kind = kind.trim();
            if kind == "ready" {
                seen.ready = true;
            }
            self.event = Some(kind.to_string());
        } else if let Some(id) = line.strip_prefix("id:") {
            if let Ok(id) = id.trim().parse::<i64>() {
                if self.last_id.is_some_and(|last| id <= last) {
                    got.out_of_order += 1;
                }
                self.last_id = Some(id);
            }
        } else if let Some(data) = line.strip_prefix("data:") {
            if matches!(self.event.as_deref(), Some("closed" | "reset")) {
                seen.closed = Some(data.trim().to_string());
            } else if let Some((seq, sent_us)) = marker(data) {
                got.seqs.push(seq);
                got.latencies
                    .push(now_us.saturating_sub(sent_us).min(u64::from(u32::MAX)) as u32);
                if let Some(at_us) = stamp(data) {
                    got.from_stamp
                        .push(self.wall_us.saturating_sub(at_us).min(u64::from(u32::MAX)) as u32);
                }
            }
        }
    }
}

/// The event's `at` (the store's timestamp of the message, taken in the write transaction,
/// before its COMMIT), in µs since the Unix epoch.
fn stamp(data: &str) -> Option<u64> {
    const KEY: &str = "\"at\":\"";
    let start = data.find(KEY)? + KEY.len();
    let text = &data[start..];
    let text = &text[..text.find('"')?];
    unix_micros(text)
}

/// `YYYY-MM-DDTHH:MM:SS[.ffffff]Z` as µs since the Unix epoch.
fn unix_micros(text: &str) -> Option<u64> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut date = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (date.next()??, date.next()??, date.next()??);
    let (clock, fraction) = time.split_once('.').unwrap_or((time, ""));
    let mut clock = clock.split(':').map(|p| p.parse::<i64>().ok());
    let (hh, mm, ss) = (clock.next()??, clock.next()??, clock.next()??);
    let mut micros = 0i64;
    for (i, digit) in fraction.bytes().take(6).enumerate() {
        if !digit.is_ascii_digit() {
            return None;
        }
        micros += i64::from(digit - b'0') * 10i64.pow(5 - i as u32);
    }
    // Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let secs = days * 86_400 + hh * 3_600 + mm * 60 + ss;
    u64::try_from(secs * 1_000_000 + micros).ok()
}

/// Now, in µs since the Unix epoch (the clock the server stamps events with).
fn wall_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, micros)
}

/// The message number and send time in a data line holding a benchmark message.
fn marker(data: &str) -> Option<(u32, u64)> {
    let at = data.find(MARKER)? + MARKER.len();
    let rest = &data[at..];
    let (seq, rest) = rest.split_once(':')?;
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    Some((seq.parse().ok()?, rest[..end].parse().ok()?))
}

/// The content of message `seq`, sent at `sent_us` µs after the epoch.
fn content(seq: u64, sent_us: u64) -> String {
    format!("{MARKER}{seq}:{sent_us}")
}

/// What the sends did.
struct SendPart {
    sent: u64,
    acked: Vec<u32>,
    latencies: Vec<u32>,
    errors: u64,
    error_kinds: BTreeMap<String, u64>,
    last_start: Instant,
    lag_max: Duration,
}

/// The sending connections: idle ones come back through a channel (`None`: it broke, open
/// another in its place).
struct Pool {
    target: Arc<Target>,
    idle_tx: mpsc::UnboundedSender<Option<Sender>>,
    idle_rx: mpsc::UnboundedReceiver<Option<Sender>>,
    open: usize,
}

impl Pool {
    /// A pool with `n` connections opened (those that fail are opened again when used).
    async fn open(target: Arc<Target>, n: usize) -> Self {
        let (idle_tx, idle_rx) = mpsc::unbounded_channel();
        for _ in 0..n {
            let _ = idle_tx.send(connect(&target).await.ok());
        }
        Self {
            target,
            idle_tx,
            idle_rx,
            open: n,
        }
    }

    /// An idle connection, or a new slot while fewer than [`MAX_SENDING`] are open, or the
    /// next that comes back.
    async fn take(&mut self) -> Option<Sender> {
        if let Ok(idle) = self.idle_rx.try_recv() {
            return idle;
        }
        if self.open < MAX_SENDING {
            self.open += 1;
            return None;
        }
        // Every send is bounded in time, so one comes back.
        self.idle_rx.recv().await.flatten()
    }
}

async fn connect(target: &Target) -> anyhow::Result<Sender> {
    tokio::time::timeout(client::REQUEST_TIMEOUT, target.connect())
        .await
        .map_err(|_| anyhow::anyhow!("no connection within {:?}", client::REQUEST_TIMEOUT))?
}

/// How one send went.
struct SendOne {
    seq: u32,
    started: Instant,
    result: Result<u32, String>,
}

/// Sends message `seq` at `t0 + seq / rate`, each on a connection of the pool, until the window
/// is over (open loop: a slow answer does not hold the next send back), then waits for the
/// answers.
async fn send_all(
    pool: &mut Pool,
    bearers: Arc<Vec<String>>,
    path: Arc<String>,
    plan: FanOut,
    epoch: Instant,
    t0: Instant,
) -> SendPart {
    let rate = plan.rate.max(1e-3);
    let mut tasks = Vec::new();
    let mut lag_max = Duration::ZERO;
    for seq in 0u32.. {
        let offset = Duration::from_secs_f64(f64::from(seq) / rate);
        if offset >= plan.window {
            break;
        }
        let due = t0 + offset;
        tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
        let conn = pool.take().await;
        lag_max = lag_max.max(Instant::now().saturating_duration_since(due));
        let target = pool.target.clone();
        let back = pool.idle_tx.clone();
        let bearer = bearers[seq as usize % bearers.len().max(1)].clone();
        let path = path.clone();
        tasks.push(tokio::spawn(async move {
            let mut sender = match conn {
                Some(live) if !live.is_closed() => Some(live),
                _ => connect(&target).await.ok(),
            };
            let started = Instant::now();
            let result = match &mut sender {
                None => Err("connecting failed".to_string()),
                Some(live) => {
                    let body = client::send_body(&content(
                        u64::from(seq),
                        micros(started.duration_since(epoch)),
                    ));
                    let request = target.request(Method::POST, &path, Some(&bearer), Some(body));
                    match exchange(live, request).await {
                        Ok((status, _)) if status.is_success() => {
                            Ok(started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32)
                        }
                        Ok((status, _)) => Err(format!("HTTP {status}")),
                        Err(err) => {
                            sender = None;
                            Err(format!("{err:#}"))
                        }
                    }
                }
            };
            let _ = back.send(sender);
            SendOne {
                seq,
                started,
                result,
            }
        }));
    }
    let mut part = SendPart {
        sent: 0,
        acked: Vec::with_capacity(tasks.len()),
        latencies: Vec::with_capacity(tasks.len()),
        errors: 0,
        error_kinds: BTreeMap::new(),
        last_start: t0,
        lag_max,
    };
    for task in tasks {
        part.sent += 1;
        match task.await {
            Ok(one) => {
                part.last_start = part.last_start.max(one.started);
                match one.result {
                    Ok(us) => {
                        part.acked.push(one.seq);
                        part.latencies.push(us);
                    }
                    Err(kind) => {
                        part.errors += 1;
                        *part.error_kinds.entry(kind).or_default() += 1;
                    }
                }
            }
            Err(err) => {
                part.errors += 1;
                *part
                    .error_kinds
                    .entry(format!("send task failed: {err}"))
                    .or_default() += 1;
            }
        }
    }
    part
}

/// Raises the soft limit of open files towards `want` (never past the hard limit); answers the
/// soft limit in force afterwards (None where it cannot be read). The servers this process
/// starts afterwards inherit it.
#[cfg(unix)]
#[allow(clippy::unnecessary_cast)] // rlim_t is not u64 on every unix
pub fn raise_open_files(want: u64) -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the valid struct passed.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return None;
    }
    let want = want as libc::rlim_t;
    if limit.rlim_cur != libc::RLIM_INFINITY && limit.rlim_cur < want {
        let raised = libc::rlimit {
            rlim_cur: if limit.rlim_max == libc::RLIM_INFINITY {
                want
            } else {
                want.min(limit.rlim_max)
            },
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit reads one valid rlimit; a refusal leaves the limit as it was.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit = raised;
        }
    }
    Some(if limit.rlim_cur == libc::RLIM_INFINITY {
        u64::MAX
    } else {
        limit.rlim_cur as u64
    })
}

#[cfg(not(unix))]
pub fn raise_open_files(_want: u64) -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_read_back() {
        let line = format!(
            r#" {{"position":7,"data":{{"content":{{"text":"{}"}},"x":1}}}}"#,
            content(42, 123_456)
        );
        assert_eq!(marker(&line), Some((42, 123_456)));
        assert_eq!(marker(r#"{"content":{"text":"hi"}}"#), None);
        assert_eq!(marker("cfbs:x:1"), None);
    }

    #[test]
    fn sse_lines_across_chunks() {
        let text = format!(
            "retry: 2000\n\nevent: ready\ndata: {{\"type\":\"ready\",\"position\":4}}\n\n\
             id: 5\ndata: {{\"text\":\"{}\"}}\n\n: heartbeat\n\nid: 5\ndata: {{\"text\":\"{}\"}}\n\n\
             event: closed\ndata: {{\"type\":\"closed\",\"reason\":\"slow-consumer\"}}\n\n",
            content(0, 100),
            content(1, 150)
        );
        // Every split point gives the same reading.
        for cut in 0..text.len() {
            let mut parser = SseParser::default();
            let mut got = Got::default();
            let a = parser.feed(&text.as_bytes()[..cut], 1_000, &mut got);
            let b = parser.feed(&text.as_bytes()[cut..], 1_000, &mut got);
            assert!(a.ready || b.ready, "cut {cut}");
            assert_eq!(got.seqs, vec![0, 1], "cut {cut}");
            assert_eq!(got.latencies, vec![900, 850]);
            assert_eq!(got.out_of_order, 1);
            let closed = a.closed.or(b.closed).expect("the closed event");
            assert!(closed.contains("slow-consumer"));
        }
    }

    #[test]
    fn chunked_bodies_across_reads() {
        let text = b"retry: 2000\n\nid: 5\ndata: {\"x\":1}\n\n";
        let mut wire = Vec::new();
        for part in [&text[..13], &text[13..20], &text[20..]] {
            wire.extend_from_slice(format!("{:X};ext=1\r\n", part.len()).as_bytes());
            wire.extend_from_slice(part);
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b"0\r\n\r\n");
        for cut in 0..wire.len() {
            let mut body = Body::new(true);
            let mut out = Vec::new();
            let first = body.decode(&wire[..cut], &mut out).expect("decodes");
            let second = body.decode(&wire[cut..], &mut out).expect("decodes");
            assert_eq!(out, text, "cut {cut}");
            assert!(!first || cut >= wire.len() - 2); // ended at the last-chunk line
            assert!(second || first);
        }
        let mut body = Body::new(true);
        assert!(body.decode(b"zz\r\n", &mut Vec::new()).is_err());
        let mut plain = Body::new(false);
        let mut out = Vec::new();
        assert_eq!(plain.decode(b"abc", &mut out), Ok(false));
        assert_eq!(out, b"abc");
    }

    #[test]
    fn stamps_are_read() {
        assert_eq!(
            unix_micros("2023-11-14T22:13:20.123456Z"),
            Some(1_700_000_000_123_456)
        );
        assert_eq!(unix_micros("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            unix_micros("2000-03-01T00:00:01.5Z"),
            Some(951_868_801_500_000)
        );
        assert_eq!(unix_micros("2000-03-01 00:00:01Z"), None);
        let line = r#"{"position":3,"conversation":"19:a@thread.v2","type":"messageReceived","at":"1970-01-01T00:00:01.000002Z","data":{}}"#;
        assert_eq!(stamp(line), Some(1_000_002));
        assert_eq!(stamp(r#"{"at":"x"}"#), None);
    }

    #[test]
    fn nearest_rank() {
        let sorted: Vec<u32> = (1..=100).map(|ms| ms * 1000).collect();
        assert_eq!(quantile_ms(&sorted, 0.5), 50.0);
        assert_eq!(quantile_ms(&sorted, 0.99), 99.0);
        assert_eq!(quantile_ms(&[], 0.99), 0.0);
    }

    #[test]
    fn open_files_limit_is_readable() {
        if cfg!(unix) {
            assert!(raise_open_files(64).is_some_and(|n| n >= 64));
        }
    }
}
