//! The Kaizala face's one error type and its wire shape `{message, errorCode,
//! errorCategoryKey}`. Every status the face answers is decided here.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use confab_core::Error;
use serde::Serialize;

/// Every failure of a Kaizala route.
#[derive(Debug)]
pub enum KaizalaError {
    /// A failure of the core (or one the face phrases as such).
    Core(Error),
    /// A body that is not JSON by its Content-Type (415).
    UnsupportedMediaType,
    /// A path that exists, with another method (405).
    MethodNotAllowed,
    /// An uploaded file of a type that is not accepted (415), with the reason.
    UnsupportedMedia(String),
}

pub type KzResult<T> = Result<T, KaizalaError>;

impl From<Error> for KaizalaError {
    fn from(err: Error) -> Self {
        KaizalaError::Core(err)
    }
}

impl KaizalaError {
    pub fn invalid(message: impl Into<String>, target: impl Into<String>) -> Self {
        KaizalaError::Core(Error::invalid(message, target))
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        KaizalaError::Core(Error::bad_request(message))
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        KaizalaError::Core(Error::Unauthenticated(message.into()))
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        KaizalaError::Core(Error::NotFound(message.into()))
    }

    /// The status, `errorCode` and `errorCategoryKey` (README, "Kaizala API: errors").
    pub fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            KaizalaError::Core(err) => match err {
                Error::Unauthenticated(_) => {
                    (StatusCode::UNAUTHORIZED, "InvalidToken", "Unauthenticated")
                }
                Error::Forbidden(_) => (StatusCode::FORBIDDEN, "AccessDenied", "Forbidden"),
                Error::NotFound(_) => (StatusCode::NOT_FOUND, "NotFound", "NotFound"),
                Error::Invalid { .. } => (
                    StatusCode::BAD_REQUEST,
                    "InvalidParameters",
                    "InvalidParameters",
                ),
                Error::Conflict(_) => (StatusCode::CONFLICT, "Conflict", "Conflict"),
                Error::TooLarge(_) => (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "RequestTooLarge",
                    "InvalidParameters",
                ),
                Error::RateLimited { .. } => (
                    StatusCode::TOO_MANY_REQUESTS,
                    "TooManyRequests",
                    "Throttled",
                ),
                Error::Unavailable(_) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    "InternalError",
                ),
                Error::Internal(_) => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalServerError",
                    "InternalError",
                ),
            },
            KaizalaError::UnsupportedMediaType | KaizalaError::UnsupportedMedia(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                "InvalidParameters",
            ),
            KaizalaError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "InvalidParameters",
            ),
        }
    }

    fn message(&self) -> String {
        match self {
            KaizalaError::Core(Error::Internal(detail)) => {
                tracing::error!(%detail, "internal error");
                "The server failed to process the request.".to_owned()
            }
            KaizalaError::Core(Error::Invalid {
                message,
                target: Some(target),
            }) => format!("{message} ({target})"),
            KaizalaError::Core(err) => err.to_string(),
            KaizalaError::UnsupportedMediaType => {
                "The request body must be JSON (Content-Type: application/json).".to_owned()
            }
            KaizalaError::MethodNotAllowed => {
                "The method is not allowed on this resource.".to_owned()
            }
            KaizalaError::UnsupportedMedia(message) => message.clone(),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody {
    message: String,
    error_code: &'static str,
    error_category_key: &'static str,
}

impl IntoResponse for KaizalaError {
    fn into_response(self) -> Response {
        let (status, error_code, error_category_key) = self.parts();
        let body = ErrorBody {
            message: self.message(),
            error_code,
            error_category_key,
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let KaizalaError::Core(Error::RateLimited { retry_after }) = &self {
            let seconds = retry_after.as_secs_f64().ceil().max(1.0) as u64;
            if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}
