//! Request plumbing shared by every route: the face's state, the `accessToken` header, relaxed
//! JSON bodies, query flags and path ids, each failing with a Kaizala error.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use bytes::Bytes;
use confab_acs::declares_more_than;
use confab_core::identity::Caller;
use confab_core::ids::{ConversationId, IdentityId};
use confab_core::Core;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::error::{KaizalaError, KzResult};
use crate::json::parse_relaxed;
use crate::wire::member_from_guid;
use crate::KaizalaConfig;

#[derive(Clone)]
pub struct KzState {
    pub core: Arc<Core>,
    pub config: Arc<KaizalaConfig>,
}

/// An authenticated call: the `accessToken` header (or an ACS-style `Authorization: Bearer`)
/// verified. Extracted before the body, so a caller without credentials gets 401 whatever it
/// sent.
pub struct KzCall {
    pub caller: Caller,
}

impl FromRequestParts<KzState> for KzCall {
    type Rejection = KaizalaError;

    async fn from_request_parts(parts: &mut Parts, state: &KzState) -> KzResult<Self> {
        let token = access_token(&parts.headers)?;
        let caller = state.core.authenticate(token).await?;
        Ok(KzCall { caller })
    }
}

fn access_token(headers: &HeaderMap) -> KzResult<&str> {
    if let Some(value) = header_text(headers, "accesstoken") {
        return Ok(value);
    }
    if let Some(value) = header_text(headers, header::AUTHORIZATION.as_str()) {
        let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
        if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() {
            return Ok(token.trim());
        }
    }
    Err(KaizalaError::unauthenticated(
        "The accessToken header is missing.",
    ))
}

/// A header's value, trimmed; `None` when absent, empty or not text.
pub fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// A relaxed-JSON body (see `json.rs`) deserialized into a struct with lower-case field names.
pub struct KzJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for KzJson<T> {
    type Rejection = KaizalaError;

    async fn from_request(req: Request, state: &S) -> KzResult<Self> {
        let bytes = json_body(req, state).await?;
        parse_body(&bytes).map(KzJson)
    }
}

/// A relaxed-JSON body that may be absent (an empty body is `None`).
pub struct OptionalKzJson<T>(pub Option<T>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for OptionalKzJson<T> {
    type Rejection = KaizalaError;

    async fn from_request(req: Request, state: &S) -> KzResult<Self> {
        let bytes = json_body(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalKzJson(None));
        }
        parse_body(&bytes).map(|value| OptionalKzJson(Some(value)))
    }
}

/// Reads a JSON body: 415 if its Content-Type says it is something else (no Content-Type is
/// accepted), 413 past the body limit.
pub async fn json_body<S: Send + Sync>(req: Request, state: &S) -> KzResult<Bytes> {
    check_json_type(req.headers())?;
    if declares_more_than(req.headers(), crate::BODY_LIMIT) {
        return Err(body_too_large());
    }
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            body_too_large()
        } else {
            KaizalaError::bad_request(rejection.body_text())
        }
    })
}

pub(crate) fn body_too_large() -> KaizalaError {
    KaizalaError::Core(confab_core::Error::TooLarge(
        "The request body is too large.".into(),
    ))
}

/// 415 unless the Content-Type (if any) names JSON.
pub fn check_json_type(headers: &HeaderMap) -> KzResult<()> {
    match headers.get(header::CONTENT_TYPE) {
        None => Ok(()),
        Some(value) => {
            let text = value.to_str().unwrap_or_default().to_ascii_lowercase();
            if text.contains("json") {
                Ok(())
            } else {
                Err(KaizalaError::UnsupportedMediaType)
            }
        }
    }
}

/// Parses a body: relaxed JSON, an object, property names matched case-insensitively.
pub fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> KzResult<T> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| KaizalaError::bad_request("The request body is not UTF-8 text."))?;
    if text.trim().is_empty() {
        return Err(KaizalaError::bad_request("The request body is empty."));
    }
    let value = parse_relaxed(text).map_err(|err| {
        KaizalaError::bad_request(format!("The request body is not valid JSON: {err}."))
    })?;
    if !value.is_object() {
        return Err(KaizalaError::bad_request(
            "The request body must be a JSON object.",
        ));
    }
    serde_json::from_value(value)
        .map_err(|err| KaizalaError::bad_request(format!("The request body is not valid: {err}.")))
}

/// Query parameters with lower-cased names.
pub struct Params(HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = KaizalaError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> KzResult<Self> {
        Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            .map(|Query(pairs)| {
                Params(
                    pairs
                        .into_iter()
                        .map(|(k, v)| (k.to_ascii_lowercase(), v))
                        .collect(),
                )
            })
            .map_err(|_| KaizalaError::bad_request("The query string is malformed."))
    }
}

impl Params {
    /// A parameter's value (by lower-cased name), trimmed; `None` when absent or blank.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    /// A boolean flag under any of `names`: `true`/`false`/`1`/`0` in any case; absent = false.
    pub fn flag(&self, names: &[&str]) -> KzResult<bool> {
        for name in names {
            if let Some(raw) = self.0.get(*name) {
                return parse_flag(raw).ok_or_else(|| {
                    KaizalaError::invalid(format!("{name} must be true or false."), *name)
                });
            }
        }
        Ok(false)
    }
}

fn parse_flag(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// A group id from the path: a GUID, with or without an `@1` suffix (an ACS thread id works
/// too).
pub fn group_id(text: &str) -> KzResult<ConversationId> {
    ConversationId::parse(text)
        .ok_or_else(|| KaizalaError::invalid("The group id is not a valid GUID.", "groupId"))
}

/// A mobile number as clients write it (`+91 99999-99999`, `919999999999`), or a raw
/// identifier (`4:+…`, `8:acs:…`).
pub fn identity_from_text(text: &str) -> Option<IdentityId> {
    let text = text.trim();
    if text.contains(':') {
        return IdentityId::parse(text);
    }
    let compact: String = text
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.'))
        .collect();
    IdentityId::phone(&compact)
}

/// A member id from the path: the member GUID `members` answers, a mobile number, or a raw
/// identifier. Anything else names no member.
pub fn member_id(text: &str) -> KzResult<IdentityId> {
    member_from_guid(text)
        .or_else(|| identity_from_text(text))
        .ok_or_else(|| KaizalaError::not_found("The member is not in the group."))
}

/// A text field that clients send as a string or as a number (`pin: 8876`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::String(s) => Ok(Text(s)),
            Value::Number(n) => Ok(Text(n.to_string())),
            Value::Bool(b) => Ok(Text(b.to_string())),
            _ => Err(serde::de::Error::custom("expected a string or a number")),
        }
    }
}

/// A boolean that clients send as `true` or as `"true"`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Flag(pub bool);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::Bool(b) => Ok(Flag(b)),
            Value::String(s) => parse_flag(&s)
                .map(Flag)
                .ok_or_else(|| serde::de::Error::custom("expected true or false")),
            Value::Number(n) => Ok(Flag(n.as_f64().is_some_and(|v| v != 0.0))),
            Value::Null => Ok(Flag(false)),
            _ => Err(serde::de::Error::custom("expected true or false")),
        }
    }
}

/// A required field: 400 naming it (in its documented spelling) when absent or blank.
pub fn required(value: Option<Text>, name: &str) -> KzResult<String> {
    match value {
        Some(Text(text)) if !text.trim().is_empty() => Ok(text),
        _ => Err(KaizalaError::invalid(format!("{name} is required."), name)),
    }
}

/// A list of names sent as a JSON array of strings or as one comma-separated string (both occur
/// in real connectors); `None` when absent or null.
pub fn string_list(value: Option<Value>, field: &str, what: &str) -> KzResult<Option<Vec<String>>> {
    let bad = || KaizalaError::invalid(format!("{field} must be a list of {what}."), field);
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        )),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|item| match item {
                Value::String(s) => Ok(s),
                _ => Err(bad()),
            })
            .collect::<KzResult<Vec<_>>>()
            .map(Some),
        Some(_) => Err(bad()),
    }
}
