//! The check a webhook receiver makes of a delivery's `X-Confab-Signature`.

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Whether `x-confab-signature` is `sha256=<hex HMAC-SHA256 of body keyed with secret>`.
pub fn signed_with(headers: &HeaderMap, body: &str, secret: &str) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(body.as_bytes());
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    headers
        .get("x-confab-signature")
        .and_then(|v| v.to_str().ok())
        == Some(format!("sha256={expected}").as_str())
}
