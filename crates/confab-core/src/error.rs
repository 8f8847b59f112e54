//! The core's one error type. Each face maps it to its own wire shape in one place.

use std::time::Duration;

use crate::ports::StoreError;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Error {
    /// No or bad credentials (401).
    #[error("{0}")]
    Unauthenticated(String),
    /// Authenticated, but not allowed (403).
    #[error("{0}")]
    Forbidden(String),
    /// The target does not exist, or the caller may not know that it does (404).
    #[error("{0}")]
    NotFound(String),
    /// The request is malformed or breaks a rule (400). `target` names the offending field.
    #[error("{message}")]
    Invalid {
        message: String,
        target: Option<String>,
    },
    /// The request conflicts with the current state (409).
    #[error("{0}")]
    Conflict(String),
    /// A size limit was exceeded (413).
    #[error("{0}")]
    TooLarge(String),
    /// Too many requests (429).
    #[error("too many requests, retry after {retry_after:?}")]
    RateLimited { retry_after: Duration },
    /// A service the server depends on (an SMS gateway, say) failed; retrying later may work
    /// (503).
    #[error("{0}")]
    Unavailable(String),
    /// The server failed (500). The message is logged, not shown in detail.
    #[error("{0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(message: impl Into<String>, target: impl Into<String>) -> Self {
        Error::Invalid {
            message: message.into(),
            target: Some(target.into()),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Error::Invalid {
            message: message.into(),
            target: None,
        }
    }
}

impl From<StoreError> for Error {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => Error::NotFound("Not found.".into()),
            StoreError::Conflict(message) => Error::Conflict(message),
            StoreError::InvalidCursor => Error::bad_request("The continuation token is not valid."),
            StoreError::ParticipantLimit(max) => {
                Error::bad_request(format!("A thread can have at most {max} participants."))
            }
            StoreError::InvalidText => {
                Error::bad_request("Text must not contain NUL characters (\\u0000).")
            }
            StoreError::Unavailable(message) => Error::Internal(message),
        }
    }
}
