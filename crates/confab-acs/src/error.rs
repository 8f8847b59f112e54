//! The ACS face's one error type and its wire shape, `CommunicationErrorResponse`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use confab_core::Error;
use serde::Serialize;

/// Every failure of an ACS route, answered as `{"error": {"code", "message", "target"?}}`.
#[derive(Debug)]
pub struct AcsError(pub Error);

pub type AcsResult<T> = Result<T, AcsError>;

impl From<Error> for AcsError {
    fn from(err: Error) -> Self {
        AcsError(err)
    }
}

impl AcsError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        AcsError(Error::bad_request(message))
    }

    pub fn invalid(message: impl Into<String>, target: impl Into<String>) -> Self {
        AcsError(Error::invalid(message, target))
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        AcsError(Error::Unauthenticated(message.into()))
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        AcsError(Error::NotFound(message.into()))
    }
}

/// `CommunicationError` of the common swagger.
#[derive(Debug, Serialize)]
pub struct CommunicationError {
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

#[derive(Serialize)]
struct CommunicationErrorResponse {
    error: CommunicationError,
}

impl IntoResponse for AcsError {
    fn into_response(self) -> Response {
        let (status, code) = match &self.0 {
            Error::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "Unauthorized"),
            Error::Forbidden(_) => (StatusCode::FORBIDDEN, "Forbidden"),
            Error::NotFound(_) => (StatusCode::NOT_FOUND, "NotFound"),
            Error::Invalid { .. } => (StatusCode::BAD_REQUEST, "BadRequest"),
            Error::Conflict(_) => (StatusCode::CONFLICT, "Conflict"),
            Error::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "RequestEntityTooLarge"),
            Error::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "TooManyRequests"),
            Error::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable"),
            Error::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "InternalError"),
        };
        let message = match &self.0 {
            Error::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                "The server failed to process the request.".to_owned()
            }
            other => other.to_string(),
        };
        let target = match &self.0 {
            Error::Invalid { target, .. } => target.clone(),
            _ => None,
        };
        let body = CommunicationErrorResponse {
            error: CommunicationError {
                code: code.to_owned(),
                message,
                target,
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let Error::RateLimited { retry_after } = &self.0 {
            let seconds = retry_after.as_secs_f64().ceil().max(1.0) as u64;
            if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}
