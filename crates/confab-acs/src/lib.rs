//! The ACS face: the Azure Communication Services Identity (2023-10-01) and Chat
//! (2021-09-07 … 2025-03-15) wire APIs over confab's core. Wire formats, authentication,
//! api-versions and error shapes live here; the rules live in the core.

mod admin;
mod api_version;
pub mod auth;
mod chat;
mod error;
mod extract;
mod identity;
mod json_text;
mod wire;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use confab_core::{Core, Error};
use tower::ServiceBuilder;

pub use api_version::{CHAT_VERSIONS, IDENTITY_VERSIONS};
pub use error::AcsError;
pub use extract::declares_more_than;
use extract::AcsState;

/// The largest request body any ACS route accepts (a create with 200 participants and their
/// metadata fits; a message is limited to 28 KB by the core).
pub const BODY_LIMIT: usize = 1024 * 1024;

/// Settings of the ACS face.
#[derive(Clone, Debug)]
pub struct AcsConfig {
    /// The access key of the connection string (decoded bytes): Identity calls are HMAC-signed
    /// with it.
    pub access_key: Vec<u8>,
    /// Reject api-versions newer than the newest known with 400 instead of serving them.
    pub strict_api_version: bool,
    /// How far `x-ms-date` may be from the server's clock.
    pub max_clock_skew: Duration,
}

/// The routes of the ACS face.
pub fn router(core: Arc<Core>, config: AcsConfig) -> Router {
    let state = AcsState {
        core,
        config: Arc::new(config),
    };
    Router::new()
        .merge(identity::routes())
        .merge(admin::routes())
        .merge(chat::routes())
        .fallback(|| async { AcsError::not_found("The requested resource does not exist.") })
        // One layer of both: axum boxes each route once per layer, and a request's future
        // once per box. `map_response` from tower, not axum's: its future is not boxed.
        .layer(
            ServiceBuilder::new()
                .layer(DefaultBodyLimit::max(BODY_LIMIT))
                .map_response(acs_error_shape),
        )
        .with_state(state)
}

/// Gives the responses axum makes by itself (405, path rejections) the ACS error shape.
fn acs_error_shape(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !status.is_client_error() && !status.is_server_error() || is_json {
        return response;
    }
    let message = status.canonical_reason().unwrap_or("Error").to_owned();
    let error = match status {
        StatusCode::UNAUTHORIZED => Error::Unauthenticated(message),
        StatusCode::FORBIDDEN => Error::Forbidden(message),
        StatusCode::NOT_FOUND => Error::NotFound(message),
        StatusCode::PAYLOAD_TOO_LARGE => Error::TooLarge(message),
        StatusCode::METHOD_NOT_ALLOWED => {
            let mut response = AcsError::bad_request("The method is not allowed on this resource.")
                .into_response();
            *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            return response;
        }
        s if s.is_server_error() => Error::Internal(message),
        _ => Error::bad_request(message),
    };
    AcsError(error).into_response()
}
