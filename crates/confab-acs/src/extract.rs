//! Request plumbing shared by every route: the face's state, query parameters, JSON bodies and
//! path ids, each failing with an ACS error instead of axum's plain-text rejections.

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use bytes::Bytes;
use confab_core::chat::PageRequest;
use confab_core::identity::Caller;
use confab_core::ids::{ConversationId, MessageId};
use confab_core::Core;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::de::DeserializeOwned;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::api_version::{self, ChatVersion};
use crate::auth;
use crate::error::{AcsError, AcsResult};
use crate::AcsConfig;

#[derive(Clone)]
pub struct AcsState {
    pub core: Arc<Core>,
    pub config: Arc<AcsConfig>,
}

/// An authenticated chat call: its bearer token verified, its api-version resolved. Extracted
/// before the body, so a caller without credentials gets 401 whatever it sent.
pub struct ChatCall {
    pub caller: Caller,
    pub version: ChatVersion,
    pub params: Params,
}

impl FromRequestParts<AcsState> for ChatCall {
    type Rejection = AcsError;

    async fn from_request_parts(parts: &mut Parts, state: &AcsState) -> AcsResult<Self> {
        let token = auth::bearer_token(&parts.headers)?;
        let caller = state.core.authenticate(token).await?;
        let params = Params::from_request_parts(parts, state).await?;
        let version =
            api_version::chat_version(params.get("api-version"), state.config.strict_api_version)?;
        Ok(ChatCall {
            caller,
            version,
            params,
        })
    }
}

/// The query parameters of a request.
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Parses a query as `application/x-www-form-urlencoded` (`+` is a space, bad escapes are
    /// kept as they are); a name given twice keeps its last value. A short list rather than a
    /// map: a request has one to four parameters, and this runs on every chat call.
    fn parse(query: &str) -> Self {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            match pairs.iter_mut().find(|(known, _)| *known == name) {
                Some(pair) => pair.1 = value.into_owned(),
                None => pairs.push((name.into_owned(), value.into_owned())),
            }
        }
        Params(pairs)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(known, _)| known == name)
            .map(|(_, value)| value.as_str())
    }

    /// An optional RFC 3339 time parameter. A literal `+` in a query decodes as a space, so a
    /// space is read back as `+` (clients do not always encode the offset).
    pub fn time(&self, name: &str) -> AcsResult<Option<OffsetDateTime>> {
        self.get(name)
            .map(|raw| {
                OffsetDateTime::parse(&raw.replace(' ', "+"), &Rfc3339).map_err(|_| {
                    AcsError::invalid(format!("{name} must be an RFC 3339 date-time."), name)
                })
            })
            .transpose()
    }

    fn number(&self, name: &str) -> AcsResult<Option<usize>> {
        self.get(name)
            .map(|raw| {
                raw.parse::<usize>().map_err(|_| {
                    AcsError::invalid(format!("{name} must be a non-negative integer."), name)
                })
            })
            .transpose()
    }

    /// `maxPageSize`, `skip` and our continuation token.
    pub fn page(&self) -> AcsResult<PageRequest> {
        Ok(PageRequest {
            max_page_size: self.number("maxPageSize")?,
            continuation: self.get(CONTINUATION).map(str::to_owned),
            skip: self.number("skip")?.unwrap_or(0),
        })
    }

    /// The link to the next page: the same path and parameters, with the store's cursor.
    pub fn next_link(&self, path: &str, next: Option<String>) -> Option<String> {
        let cursor = next?;
        let mut query: Vec<(&str, &str)> = self
            .0
            .iter()
            .filter(|(k, _)| k.as_str() != CONTINUATION && k.as_str() != "skip")
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        query.sort();
        query.push((CONTINUATION, &cursor));
        let encoded: Vec<String> = query
            .into_iter()
            .map(|(k, v)| {
                format!(
                    "{}={}",
                    utf8_percent_encode(k, QUERY_VALUE),
                    utf8_percent_encode(v, QUERY_VALUE)
                )
            })
            .collect();
        Some(format!("{path}?{}", encoded.join("&")))
    }
}

const CONTINUATION: &str = "continuationToken";

/// What a query value may hold unencoded: the characters no client re-encodes differently.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A thread's path, `/chat/threads/19%3A…%40thread.v2`, followed by `rest`, with room for
/// a message id after it (a send's Location header).
pub fn thread_path(id: ConversationId, rest: &str) -> String {
    let acs = id.to_acs();
    let mut path = String::with_capacity(THREADS.len() + acs.len() + 8 + rest.len() + 20);
    path.push_str(THREADS);
    path.extend(utf8_percent_encode(&acs, QUERY_VALUE));
    path.push_str(rest);
    path
}

const THREADS: &str = "/chat/threads/";

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = AcsError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> AcsResult<Self> {
        Ok(Params::parse(parts.uri.query().unwrap_or_default()))
    }
}

/// A JSON body, read within the body limit and parsed with an ACS error on failure.
pub struct AcsJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for AcsJson<T> {
    type Rejection = AcsError;

    async fn from_request(req: Request, state: &S) -> AcsResult<Self> {
        let bytes = body_bytes(req, state).await?;
        parse_json(&bytes).map(AcsJson)
    }
}

/// Reads the whole body of a request HMAC-signed with the access key (Identity and admin
/// calls) and checks the signature over it.
pub async fn hmac_signed_body(state: &AcsState, request: Request) -> AcsResult<Bytes> {
    let (parts, body) = request.into_parts();
    let body = body_bytes(Request::from_parts(parts.clone(), body), state).await?;
    crate::auth::verify_hmac(
        &parts,
        &body,
        &state.config.access_key,
        state.config.max_clock_skew,
        std::time::SystemTime::now(),
    )?;
    Ok(body)
}

/// Whether the request's Content-Length declares a body longer than `limit`. Such a request is
/// answered 413 at once: reading the body would stop at the limit anyway, and a client that
/// declared more than it sends would otherwise be waited for until the body timeout (and then
/// told 400).
pub fn declares_more_than(headers: &HeaderMap, limit: usize) -> bool {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok())
        .is_some_and(|length| u64::try_from(limit).is_ok_and(|limit| length > limit))
}

/// Reads the whole body, answering 413 past the body limit.
pub async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> AcsResult<Bytes> {
    if declares_more_than(req.headers(), crate::BODY_LIMIT) {
        return Err(too_large());
    }
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            AcsError::bad_request(rejection.body_text())
        }
    })
}

fn too_large() -> AcsError {
    AcsError(confab_core::Error::TooLarge(
        "The request body is too large.".into(),
    ))
}

/// Parses a request body. Every ACS request body is a JSON object; serde would otherwise also
/// build a struct from an array.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> AcsResult<T> {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(AcsError::bad_request(
            "The request body must be a JSON object.",
        ));
    }
    let value = serde_json::from_slice(bytes)
        .map_err(|err| AcsError::bad_request(format!("The request body is not valid: {err}.")))?;
    if holds_nul(bytes) {
        return Err(AcsError::bad_request(
            "The request body must not contain NUL characters (\\u0000).",
        ));
    }
    Ok(value)
}

/// Whether a valid JSON text holds a NUL character. JSON writes one only as the escape
/// `\u0000` (a raw control character is not valid JSON), and the `u0000` after an escaped
/// backslash (`\\u0000`) is text, not an escape.
fn holds_nul(json: &[u8]) -> bool {
    let mut rest = json;
    while let Some(at) = rest.iter().position(|&b| b == b'\\') {
        let escaped = &rest[at + 1..];
        if escaped.starts_with(b"u0000") {
            return true;
        }
        // Past the escaped character, whatever it is.
        rest = escaped.get(1..).unwrap_or_default();
    }
    false
}

/// A JSON body that may also be empty (the SDKs send none when there is nothing to say).
pub fn optional_json<T: DeserializeOwned + Default>(body: &[u8]) -> AcsResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        Ok(T::default())
    } else {
        parse_json(body)
    }
}

pub fn thread_id(text: &str) -> AcsResult<ConversationId> {
    ConversationId::parse(text)
        .ok_or_else(|| AcsError::invalid("The chat thread id is not valid.", "chatThreadId"))
}

pub fn message_id(text: &str) -> AcsResult<MessageId> {
    // A malformed message id names no message.
    MessageId::parse(text).ok_or_else(|| AcsError::not_found("The message does not exist."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nul_is_found_only_as_an_escape_of_its_own() {
        for (json, holds) in [
            (r#"{"a":"x"}"#, false),
            (r#"{"a":"\u0000"}"#, true),
            (r#"{"a":"x\n\u0000"}"#, true),
            (r#"{"a":"\\u0000"}"#, false),
            (r#"{"a":"\\\u0000"}"#, true),
            (r#"{"a":"\u00001"}"#, true),
            (r#"{"a":"\u0001"}"#, false),
            (r#"{"a":"\\"}"#, false),
        ] {
            assert_eq!(holds_nul(json.as_bytes()), holds, "{json}");
        }
    }

    #[test]
    fn query_parameters_decode_as_a_form_and_the_last_of_a_name_wins() {
        let params = Params::parse(
            "api-version=2024-03-07&startTime=2026-12-02T08:00:00%2B01:00&maxPageSize=5\
             &maxPageSize=7&empty=&text=a+b%20c&bad=%zz",
        );
        assert_eq!(params.get("api-version"), Some("2024-03-07"));
        assert_eq!(params.get("maxPageSize"), Some("7"));
        assert_eq!(params.get("empty"), Some(""));
        assert_eq!(params.get("text"), Some("a b c"));
        assert_eq!(params.get("bad"), Some("%zz"));
        assert_eq!(params.get("missing"), None);
        assert_eq!(params.0.len(), 6, "one entry per name");
        let start = params.time("startTime").expect("a time").expect("present");
        assert_eq!(start.offset().whole_hours(), 1);
        assert_eq!(Params::parse("").0.len(), 0);
    }

    #[test]
    fn a_next_link_keeps_the_other_parameters_in_order_and_encoded() {
        let params =
            Params::parse("maxPageSize=2&api-version=2024-03-07&skip=4&continuationToken=old");
        assert_eq!(
            params
                .next_link("/chat/threads", Some("c/1".into()))
                .as_deref(),
            Some("/chat/threads?api-version=2024-03-07&maxPageSize=2&continuationToken=c%2F1")
        );
        assert_eq!(params.next_link("/chat/threads", None), None);
    }
}
