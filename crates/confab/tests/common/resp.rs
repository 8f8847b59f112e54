//! A response read completely, shared by the integration test binaries. Each face's support
//! module adds its own `error` check for its error shape.

// Each test binary uses part of it.
#![allow(dead_code)]

use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::Value;

#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
    /// The body as JSON (`Null` when empty or not JSON).
    pub body: Value,
}

impl Resp {
    pub async fn read(response: reqwest::Response) -> Resp {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("read body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            text,
            body,
        }
    }

    /// Asserts the status; answers the response for chaining.
    #[track_caller]
    pub fn expect(self, status: u16) -> Resp {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.text
        );
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}
