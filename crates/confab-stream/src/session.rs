//! One stream: a task that replays the event log from the client's position, then follows the
//! bus, and hands the transport frames through a bounded queue.
//!
//! No gap, no duplicate: the session subscribes to the bus *before* it reads the log, so an
//! event is either in what it reads (committed before the read) or in the subscription
//! (published after the subscribe) — the bus publishes only after COMMIT. It remembers the last
//! position it handled and drops whatever comes again. A subscription that falls behind the bus
//! is not an error: the session reads what it missed from the log and goes on.
//!
//! Back-pressure: the queue to the transport is bounded. A client that does not read for
//! `send_timeout` while the queue is full is cut off (`slow-consumer`); it resumes from the last
//! position it received. Nothing else waits for it and nothing grows for it: the bus is a
//! fixed ring shared by everyone, and catching up reads the log a page at a time.

use std::sync::Arc;

use confab_core::identity::Caller;
use confab_core::ports::{BusError, BusSubscription, CommittedEvent};
use confab_core::stream::{StreamScope, Verdict};
use confab_core::{Core, Error};
use serde_json::json;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{interval_at, timeout, Instant, MissedTickBehavior};

use crate::params::StreamRequest;
use crate::{StreamConfig, StreamState};

/// What the transport sends.
#[derive(Debug)]
pub(crate) enum Frame {
    /// An event, in its shared wire form.
    Event(Arc<CommittedEvent>),
    /// Caught up: live events follow. Sent once, after the replay.
    Ready(i64),
    Heartbeat,
}

/// Why a stream ends, as the client is told.
#[derive(Debug)]
pub(crate) struct Closing {
    /// `reset` (the position cannot be resumed from) or `closed`.
    pub(crate) kind: &'static str,
    pub(crate) reason: &'static str,
    /// The WebSocket close code.
    pub(crate) code: u16,
    /// The JSON the client gets: `{"type", "reason", "message", …}`.
    pub(crate) json: String,
}

impl Closing {
    fn closed(reason: &'static str, code: u16, message: &str) -> Self {
        Self {
            kind: "closed",
            reason,
            code,
            json: json!({"type": "closed", "reason": reason, "message": message}).to_string(),
        }
    }

    fn reset(reason: &'static str, oldest: i64, head: i64, message: &str) -> Self {
        Self {
            kind: "reset",
            reason,
            code: 4000,
            json: json!({
                "type": "reset",
                "reason": reason,
                "oldest": oldest,
                "head": head,
                "message": message,
            })
            .to_string(),
        }
    }

    fn shutdown() -> Self {
        Self::closed(
            "shutdown",
            1001,
            "The server is shutting down; reconnect later.",
        )
    }

    fn unauthorized(message: &str) -> Self {
        Self::closed("unauthorized", 4001, message)
    }

    fn internal() -> Self {
        Self::closed(
            "error",
            1011,
            "The server failed; reconnect from the last position received.",
        )
    }
}

/// The transport's ends of a session: frames in order, and why it ended (sent before the
/// frame queue closes, and taking precedence over frames still queued).
pub(crate) struct Channels {
    pub(crate) frames: mpsc::Receiver<Frame>,
    pub(crate) close: oneshot::Receiver<Closing>,
}

/// An authenticated, authorized stream, subscribed to the bus, not yet started.
pub(crate) struct Prepared {
    core: Arc<Core>,
    config: Arc<StreamConfig>,
    shutdown: watch::Receiver<bool>,
    token: String,
    caller: Caller,
    since: Option<i64>,
    scope: StreamScope,
    subscription: Box<dyn BusSubscription>,
}

/// Checks the request and subscribes. Errors here are answered as HTTP errors.
pub(crate) async fn prepare(
    state: &StreamState,
    request: StreamRequest,
) -> Result<Prepared, Error> {
    let caller = state.core.authenticate(&request.token).await?;
    // Subscribe before anything is read, so that nothing committed from here on is missed.
    let subscription = state.core.bus().subscribe();
    let scope = state.core.open_stream(&caller, request.only).await?;
    Ok(Prepared {
        core: state.core.clone(),
        config: state.config.clone(),
        shutdown: state.shutdown.clone(),
        token: request.token,
        caller,
        since: request.since,
        scope,
        subscription,
    })
}

impl Prepared {
    /// Starts the session's task.
    pub(crate) fn start(self) -> Channels {
        let (out, frames) = mpsc::channel(self.config.buffer.max(1));
        let (close_tx, close) = oneshot::channel();
        let mut session = Session {
            core: self.core,
            config: self.config,
            shutdown: self.shutdown,
            token: self.token,
            caller: self.caller,
            since: self.since,
            scope: self.scope,
            subscription: self.subscription,
            out,
        };
        tokio::spawn(async move {
            if let Some(closing) = session.drive().await {
                tracing::debug!(
                    identity = %session.caller.identity,
                    reason = closing.reason,
                    "stream closed"
                );
                let _ = close_tx.send(closing);
            }
        });
        Channels { frames, close }
    }
}

struct Session {
    core: Arc<Core>,
    config: Arc<StreamConfig>,
    shutdown: watch::Receiver<bool>,
    token: String,
    caller: Caller,
    since: Option<i64>,
    scope: StreamScope,
    subscription: Box<dyn BusSubscription>,
    out: mpsc::Sender<Frame>,
}

/// Why the session stops: the client went away, or it is told why.
enum Stop {
    Gone,
    Close(Closing),
}

impl Stop {
    fn closing(self) -> Option<Closing> {
        match self {
            Stop::Gone => None,
            Stop::Close(closing) => Some(closing),
        }
    }
}

impl Session {
    /// Runs the stream; answers why it ended (`None`: the client went away).
    async fn drive(&mut self) -> Option<Closing> {
        let bounds = match self.core.event_bounds().await {
            Ok(bounds) => bounds,
            Err(err) => return Some(failed(err)),
        };
        // The last position handled (delivered or not for this stream).
        let mut cursor =
            match self.since {
                None => bounds.head,
                Some(since) if since < bounds.purged_through => return Some(Closing::reset(
                    "position-too-old",
                    bounds.purged_through + 1,
                    bounds.head,
                    "Events after this position are no longer kept; re-list the conversations, \
                     then stream from the current position (no `since`).",
                )),
                Some(since) if since > bounds.head => {
                    return Some(Closing::reset(
                        "position-unknown",
                        bounds.purged_through + 1,
                        bounds.head,
                        "This server has never handed out this position; re-list the \
                     conversations, then stream from the current position (no `since`).",
                    ))
                }
                Some(since) => since,
            };
        let mut catching_up = true;
        let mut announced = false;
        let period = self.config.heartbeat;
        let mut heartbeat = interval_at(Instant::now() + period, period);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            if *self.shutdown.borrow() {
                return Some(Closing::shutdown());
            }
            if catching_up {
                let page = match self
                    .core
                    .events_after(cursor, self.config.replay_page.max(1))
                    .await
                {
                    Ok(page) => page,
                    Err(err) => return Some(failed(err)),
                };
                if page.is_empty() {
                    catching_up = false;
                    if !announced {
                        announced = true;
                        if let Err(stop) = self.offer(Frame::Ready(cursor)).await {
                            return stop.closing();
                        }
                    }
                    continue;
                }
                for event in page {
                    if let Some(position) = event.position {
                        cursor = cursor.max(position);
                    }
                    if let Err(stop) = self.consider(event).await {
                        return stop.closing();
                    }
                }
                continue;
            }
            tokio::select! {
                biased;
                _ = self.shutdown.changed() => return Some(Closing::shutdown()),
                _ = self.out.closed() => return None,
                _ = heartbeat.tick() => {
                    if let Err(closing) = self.recheck().await {
                        return Some(closing);
                    }
                    // Best effort: a client with a full queue has frames to read already.
                    let _ = self.out.try_send(Frame::Heartbeat);
                }
                received = self.subscription.recv() => match received {
                    Ok(event) => {
                        if let Some(position) = event.position {
                            if position <= cursor {
                                continue; // replayed already
                            }
                            cursor = position;
                        }
                        if let Err(stop) = self.consider(event).await {
                            return stop.closing();
                        }
                    }
                    Err(BusError::Lagged(missed)) => {
                        tracing::debug!(missed, "stream fell behind the bus; reading the log");
                        catching_up = true;
                    }
                    Err(BusError::Closed) => return Some(Closing::shutdown()),
                },
            }
        }
    }

    /// Sends the event if this stream may see it (and follows membership changes).
    async fn consider(&mut self, event: Arc<CommittedEvent>) -> Result<(), Stop> {
        match self.scope.admit(&event) {
            Verdict::Deliver => self.offer(Frame::Event(event)).await,
            Verdict::Skip => Ok(()),
            Verdict::Recheck => self.recheck().await.map_err(Stop::Close),
        }
    }

    /// Queues a frame, waiting at most `send_timeout` for room.
    async fn offer(&self, frame: Frame) -> Result<(), Stop> {
        match timeout(self.config.send_timeout, self.out.send(frame)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Stop::Gone),
            Err(_) => Err(Stop::Close(Closing::closed(
                "slow-consumer",
                4008,
                "The client did not keep up with its events; reconnect from the last position \
                 received.",
            ))),
        }
    }

    /// Re-checks the token: revoked, expired, identity or application deleted all end the
    /// stream. A store hiccup does not.
    async fn recheck(&self) -> Result<(), Closing> {
        match self.core.authenticate(&self.token).await {
            Ok(caller) if caller.identity == self.caller.identity => Ok(()),
            Ok(_) => Err(Closing::unauthorized("The access token changed hands.")),
            Err(Error::Unauthenticated(message)) => Err(Closing::unauthorized(&message)),
            Err(err) => {
                tracing::warn!(error = %err, "re-checking a stream's token failed");
                Ok(())
            }
        }
    }
}

fn failed(err: Error) -> Closing {
    tracing::error!(error = %err, "stream failed");
    Closing::internal()
}
