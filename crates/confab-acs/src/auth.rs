//! Authentication of ACS calls: HMAC-SHA256 request signing for the Identity API (the access key
//! of the connection string), and bearer tokens for chat.

use std::time::{Duration, SystemTime};

use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::error::{AcsError, AcsResult};

type HmacSha256 = Hmac<Sha256>;

/// Checks an HMAC-signed request, exactly as the SDKs sign it (NOTES.md):
/// `VERB\npath_and_query\nx-ms-date;host;x-ms-content-sha256`, keyed with the access key.
pub fn verify_hmac(
    parts: &Parts,
    body: &[u8],
    access_key: &[u8],
    max_skew: Duration,
    now: SystemTime,
) -> AcsResult<()> {
    let headers = &parts.headers;
    let authorization = header_str(headers, header::AUTHORIZATION.as_str())
        .ok_or_else(|| AcsError::unauthenticated("The Authorization header is missing."))?;
    let signature = parse_authorization(authorization)?;
    let date = header_str(headers, "x-ms-date")
        .ok_or_else(|| AcsError::unauthenticated("The x-ms-date header is missing."))?;
    let signed_at = httpdate::parse_http_date(date)
        .map_err(|_| AcsError::unauthenticated("The x-ms-date header is not an RFC 1123 date."))?;
    let skew = now
        .duration_since(signed_at)
        .unwrap_or_else(|e| e.duration());
    if skew > max_skew {
        return Err(AcsError::unauthenticated(
            "The x-ms-date header is too far from the server's time.",
        ));
    }
    let content_hash = header_str(headers, "x-ms-content-sha256")
        .ok_or_else(|| AcsError::unauthenticated("The x-ms-content-sha256 header is missing."))?;
    if STANDARD.encode(Sha256::digest(body)) != content_hash {
        return Err(AcsError::unauthenticated(
            "The x-ms-content-sha256 header does not match the body.",
        ));
    }
    // HTTP/1.1 carries the host in a header, HTTP/2 in the request target's authority.
    let host = header_str(headers, header::HOST.as_str())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))
        .ok_or_else(|| AcsError::unauthenticated("The Host header is missing."))?;
    let path_and_query = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let string_to_sign = format!(
        "{}\n{}\n{};{};{}",
        parts.method, path_and_query, date, host, content_hash
    );
    let mut mac = HmacSha256::new_from_slice(access_key)
        .map_err(|_| AcsError::unauthenticated("The access key is not valid."))?;
    mac.update(string_to_sign.as_bytes());
    mac.verify_slice(&signature)
        .map_err(|_| AcsError::unauthenticated("The request signature is not valid."))
}

/// `HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=<base64>`.
fn parse_authorization(value: &str) -> AcsResult<Vec<u8>> {
    let malformed = || {
        AcsError::unauthenticated("The Authorization header is not a valid HMAC-SHA256 signature.")
    };
    let rest = value
        .strip_prefix("HMAC-SHA256")
        .ok_or_else(malformed)?
        .trim_start();
    let mut signed_headers = None;
    let mut signature = None;
    for pair in rest.split('&') {
        match pair.split_once('=') {
            Some(("SignedHeaders", v)) => signed_headers = Some(v),
            // The signature is base64 and may itself end in '='.
            Some(("Signature", _)) => signature = pair.strip_prefix("Signature="),
            _ => return Err(malformed()),
        }
    }
    if !signed_headers.is_some_and(|h| h.eq_ignore_ascii_case("x-ms-date;host;x-ms-content-sha256"))
    {
        return Err(malformed());
    }
    STANDARD
        .decode(signature.ok_or_else(malformed)?)
        .map_err(|_| malformed())
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer_token(headers: &HeaderMap) -> AcsResult<&str> {
    let value = header_str(headers, header::AUTHORIZATION.as_str())
        .ok_or_else(|| AcsError::unauthenticated("The Authorization header is missing."))?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(AcsError::unauthenticated("A bearer token is required."));
    }
    Ok(token.trim())
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    const VECTORS: &str = include_str!("../tests/fixtures/hmac-vectors.json");

    fn parts_of(vector: &serde_json::Value) -> Parts {
        let text = |key: &str| vector[key].as_str().unwrap_or_default().to_owned();
        let (parts, ()) = Request::builder()
            .method(text("method").as_str())
            .uri(text("request_target"))
            .header("host", text("host"))
            .header("x-ms-date", text("x-ms-date"))
            .header("x-ms-content-sha256", text("x-ms-content-sha256"))
            .header("authorization", text("authorization"))
            .body(())
            .expect("request")
            .into_parts();
        parts
    }

    #[test]
    fn every_sdk_vector_verifies_and_a_changed_one_does_not() {
        let vectors: serde_json::Value = serde_json::from_str(VECTORS).expect("fixture");
        let key = STANDARD
            .decode(vectors["access_key_base64"].as_str().expect("key"))
            .expect("b64");
        let list = vectors["vectors"].as_array().expect("vectors");
        assert!(list.len() >= 12);
        for vector in list {
            let parts = parts_of(vector);
            let body = vector["body"].as_str().expect("body").as_bytes();
            let signed_at = httpdate::parse_http_date(vector["x-ms-date"].as_str().expect("date"))
                .expect("date");
            let window = Duration::from_secs(900);
            verify_hmac(&parts, body, &key, window, signed_at).expect("SDK vector verifies");
            // Another body, key, or a time outside the window must fail.
            assert!(verify_hmac(&parts, b"{}x", &key, window, signed_at).is_err());
            assert!(verify_hmac(&parts, body, b"other key", window, signed_at).is_err());
            let late = signed_at + Duration::from_secs(901);
            assert!(verify_hmac(&parts, body, &key, window, late).is_err());
        }
    }

    #[test]
    fn bearer_tokens_are_read_from_the_header() {
        let mut headers = HeaderMap::new();
        assert!(bearer_token(&headers).is_err());
        headers.insert(
            header::AUTHORIZATION,
            "Bearer abc.def.ghi".parse().expect("value"),
        );
        assert_eq!(bearer_token(&headers).ok(), Some("abc.def.ghi"));
        headers.insert(header::AUTHORIZATION, "Basic abc".parse().expect("value"));
        assert!(bearer_token(&headers).is_err());
    }
}
