//! The real-time event stream face: every event of the conversations an identity follows, over
//! Server-Sent Events (`GET /stream/events`) and WebSocket (`GET /stream/ws`), resumable from a
//! position without gap or duplicate.
//!
//! * `params.rs` — authentication (ACS bearer token, Kaizala `accessToken`, or `access_token`
//!   in the query for browsers) and the stream's parameters (`since`, `Last-Event-ID`,
//!   `conversations`).
//! * `session.rs` — one task per connection: replays the log from the position, then follows
//!   the bus; decides per event through the core's [`StreamScope`]; heartbeats; re-checks the
//!   token; cuts off a consumer that stops reading.
//! * `sse.rs`, `ws.rs` — the two transports, rendering the session's frames.
//!
//! Each event's JSON is made once (by the store, right after the commit) and the same bytes
//! go to every connection that sends it.
//!
//! [`StreamScope`]: confab_core::stream::StreamScope

mod params;
mod session;
mod sse;
mod ws;

use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use confab_core::{Core, Error};
use tokio::sync::watch;

/// Settings of the stream face.
#[derive(Clone, Debug)]
pub struct StreamConfig {
    /// How often an idle stream sends a heartbeat (and re-checks its token).
    pub heartbeat: Duration,
    /// Frames queued per connection for a client that reads slower than events arrive.
    pub buffer: usize,
    /// How long a full queue may stay full (the client not reading) before the client is cut
    /// off as a slow consumer.
    pub send_timeout: Duration,
    /// Events read from the log per query while a stream catches up.
    pub replay_page: usize,
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(15),
            buffer: 256,
            send_timeout: Duration::from_secs(10),
            replay_page: 256,
        }
    }
}

#[derive(Clone)]
pub(crate) struct StreamState {
    pub(crate) core: Arc<Core>,
    pub(crate) config: Arc<StreamConfig>,
    pub(crate) shutdown: watch::Receiver<bool>,
}

/// Ends every open stream (with reason `shutdown`), so that a graceful shutdown does not wait
/// for them.
#[derive(Clone, Debug)]
pub struct StreamShutdown(Arc<watch::Sender<bool>>);

impl StreamShutdown {
    pub fn shutdown(&self) {
        let _ = self.0.send(true);
    }
}

/// The routes of the stream face, and the handle that ends its streams.
pub fn router(core: Arc<Core>, config: StreamConfig) -> (Router, StreamShutdown) {
    let (tx, rx) = watch::channel(false);
    let state = StreamState {
        core,
        config: Arc::new(config),
        shutdown: rx,
    };
    let router = Router::new()
        .route("/stream/events", get(sse::handler))
        .route("/stream/ws", get(ws::handler))
        .layer(axum::middleware::map_response(json_error_shape))
        .with_state(state);
    (router, StreamShutdown(Arc::new(tx)))
}

/// Gives the error responses axum makes by itself (a 405 for a method a route does not
/// take, say), which have no body, the JSON shape of [`StreamError`]; keeps their status and
/// headers (`Allow`). For confab's own routes (the stream, the OpenAPI document).
pub async fn json_error_shape(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (code, message) = match status {
        StatusCode::METHOD_NOT_ALLOWED => (
            "MethodNotAllowed",
            "The method is not allowed on this resource.",
        ),
        StatusCode::NOT_FOUND => ("NotFound", "The requested resource does not exist."),
        StatusCode::PAYLOAD_TOO_LARGE => ("TooLarge", "The request is too large."),
        s if s.is_server_error() => ("InternalError", "The server failed."),
        s => ("BadRequest", s.canonical_reason().unwrap_or("Bad request")),
    };
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    let body = serde_json::json!({"error": {"code": code, "message": message}});
    Response::from_parts(parts, axum::body::Body::from(body.to_string()))
}

/// An error before the stream starts, as JSON: `{"error": {"code", "message"}}`.
pub(crate) struct StreamError(pub(crate) Error);

impl From<Error> for StreamError {
    fn from(err: Error) -> Self {
        Self(err)
    }
}

impl IntoResponse for StreamError {
    fn into_response(self) -> Response {
        let (status, code) = match &self.0 {
            Error::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "Unauthorized"),
            Error::Forbidden(_) => (StatusCode::FORBIDDEN, "Forbidden"),
            Error::NotFound(_) => (StatusCode::NOT_FOUND, "NotFound"),
            Error::Invalid { .. } => (StatusCode::BAD_REQUEST, "BadRequest"),
            Error::Conflict(_) => (StatusCode::CONFLICT, "Conflict"),
            Error::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "TooLarge"),
            Error::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "TooManyRequests"),
            Error::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable"),
            Error::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "InternalError"),
        };
        let message = match &self.0 {
            Error::Internal(detail) => {
                tracing::error!(error = %detail, "stream failed");
                "The server failed.".to_owned()
            }
            other => other.to_string(),
        };
        let body = serde_json::json!({"error": {"code": code, "message": message}});
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
