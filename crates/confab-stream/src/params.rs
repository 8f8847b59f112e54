//! What a stream request says: who (the token) and from where (the position), which
//! conversations.

use std::collections::{HashMap, HashSet};

use axum::http::{header, HeaderMap};
use confab_core::ids::ConversationId;
use confab_core::Error;

/// A stream request, parsed.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct StreamRequest {
    pub(crate) token: String,
    /// Resume after this position (`Last-Event-ID` wins over `since`); `None`: from now on.
    pub(crate) since: Option<i64>,
    pub(crate) only: Option<HashSet<ConversationId>>,
}

/// Reads the token (`Authorization: Bearer`, Kaizala's `accessToken` header, or the
/// `access_token` query parameter for browsers, whose EventSource and WebSocket cannot set
/// headers), the position and the conversations.
pub(crate) fn parse(
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Result<StreamRequest, Error> {
    let token = token(headers, query)?;
    let last_event_id = header_text(headers, "last-event-id");
    let since = match last_event_id.or(query.get("since").map(String::as_str)) {
        None => None,
        Some(text) => Some(
            text.trim()
                .parse::<i64>()
                .ok()
                .filter(|p| *p >= 0)
                .ok_or_else(|| {
                    Error::invalid(
                        "The position (since, Last-Event-ID) must be a non-negative integer.",
                        "since",
                    )
                })?,
        ),
    };
    let only = match query.get("conversations") {
        None => None,
        Some(list) => Some(
            list.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|text| {
                    ConversationId::parse(text).ok_or_else(|| {
                        Error::invalid(
                            format!("{text:?} is not a conversation id."),
                            "conversations",
                        )
                    })
                })
                .collect::<Result<HashSet<_>, _>>()?,
        ),
    };
    // An empty list would follow nothing, silently: say so instead.
    if only.as_ref().is_some_and(HashSet::is_empty) {
        return Err(Error::invalid(
            "conversations must name at least one conversation (or be left out for all).",
            "conversations",
        ));
    }
    Ok(StreamRequest { token, since, only })
}

fn token(headers: &HeaderMap, query: &HashMap<String, String>) -> Result<String, Error> {
    if let Some(value) = header_text(headers, header::AUTHORIZATION.as_str()) {
        let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
        if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() {
            return Ok(token.trim().to_owned());
        }
        return Err(Error::Unauthenticated("A bearer token is required.".into()));
    }
    if let Some(value) = header_text(headers, "accesstoken") {
        return Ok(value.to_owned());
    }
    match query.get("access_token").map(|t| t.trim()) {
        Some(token) if !token.is_empty() => Ok(token.to_owned()),
        _ => Err(Error::Unauthenticated(
            "An access token is required: Authorization: Bearer, accessToken, or access_token."
                .into(),
        )),
    }
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn tokens_positions_and_conversations() {
        let mut headers = HeaderMap::new();
        assert!(parse(&headers, &query(&[])).is_err());
        let request =
            parse(&headers, &query(&[("access_token", "t"), ("since", "7")])).expect("request");
        assert_eq!((request.token.as_str(), request.since), ("t", Some(7)));
        headers.insert("accessToken", "k".parse().expect("value"));
        headers.insert("Last-Event-ID", "9".parse().expect("value"));
        let request = parse(&headers, &query(&[("since", "7")])).expect("request");
        assert_eq!((request.token.as_str(), request.since), ("k", Some(9)));
        headers.insert(header::AUTHORIZATION, "Bearer b".parse().expect("value"));
        assert_eq!(parse(&headers, &query(&[])).expect("request").token, "b");
        headers.insert(header::AUTHORIZATION, "Basic b".parse().expect("value"));
        assert!(parse(&headers, &query(&[])).is_err());

        let headers = HeaderMap::new();
        let id = ConversationId(5);
        let list = format!("{}, {}", id.to_acs(), id.to_guid());
        let request = parse(
            &headers,
            &query(&[("access_token", "t"), ("conversations", &list)]),
        )
        .expect("request");
        assert_eq!(request.only, Some([id].into()));
        assert!(parse(&headers, &query(&[("access_token", "t"), ("since", "-1")])).is_err());
        assert!(parse(
            &headers,
            &query(&[("access_token", "t"), ("conversations", "x")])
        )
        .is_err());
    }
}
