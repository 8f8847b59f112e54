//! The Kaizala face: the Kaizala REST API v1 over confab's core — connector login (PIN →
//! refresh token → access token), groups, subgroups, members, public-group subscribers and
//! messages — plus the admin API of
//! connector applications. Wire formats, the `accessToken` header, relaxed JSON and the error
//! shape live here; the rules live in the core.
//!
//! [`router`] serves the routes relative to `/v1` (the server nests it there); [`admin_router`]
//! serves `/admin/applications`.

mod actions;
mod admin;
mod auth;
mod error;
mod extract;
mod groups;
pub mod json;
mod media;
mod subgroups;
mod subscribers;
mod webhooks;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use confab_core::{Core, Error};
use tower::layer::util::{Identity, Stack};
use tower::util::MapResponseLayer;
use tower::ServiceBuilder;

pub use error::KaizalaError;
use extract::KzState;

/// The largest request body a Kaizala route accepts.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// Settings of the Kaizala face.
#[derive(Clone, Debug)]
pub struct KaizalaConfig {
    /// The `endpointUrl` handed out with access tokens: the server's public base URL, without a
    /// trailing slash (clients append `/v1/...`).
    pub endpoint_url: String,
}

/// Settings of the admin API.
#[derive(Clone, Debug)]
pub struct AdminConfig {
    /// The access key of the connection string (decoded): admin calls are HMAC-signed with it.
    pub access_key: Vec<u8>,
    /// How far `x-ms-date` may be from the server's clock.
    pub max_clock_skew: Duration,
}

#[derive(Clone)]
pub(crate) struct AdminState {
    core: Arc<Core>,
    config: Arc<AdminConfig>,
}

/// Literal path segments of the Kaizala API, lower-cased. A request's segments that match one
/// of these case-insensitively are lower-cased before routing (`subGroups` and `subgroups`,
/// `generatePin` and `generatepin`); ids are left as they are.
const LITERALS: &[&str] = &[
    "accesstoken",
    "actions",
    "add",
    "generatepin",
    "groups",
    "loginwithpinandapplicationid",
    "media",
    "members",
    "messages",
    "reminders",
    "remove",
    "responses",
    "subgroups",
    "subscribers",
    "webhook",
];

/// The routes of the Kaizala face, under `/v1`. Every answer, errors included, is JSON. Paths
/// match case-insensitively once [`normalize_path`] has run before routing: the caller wraps the
/// whole app in it, since a layer of a router runs only after the router has chosen a route.
/// The routes are merged into the app's router rather than nested under `/v1`: a nested
/// service costs every request a second router and a rewritten URI.
pub fn router(core: Arc<Core>, config: KaizalaConfig) -> Router {
    let state = KzState {
        core,
        config: Arc::new(KaizalaConfig {
            endpoint_url: config.endpoint_url.trim_end_matches('/').to_owned(),
        }),
    };
    Router::new()
        .route("/v1/generatepin", post(auth::generate_pin))
        .route("/v1/loginwithpinandapplicationid", post(auth::login))
        .route("/v1/accesstoken", get(auth::access_token))
        .route("/v1/groups", post(groups::create).get(groups::list))
        .route("/v1/groups/{group}", get(groups::details))
        .route(
            "/v1/groups/{group}/members",
            get(groups::members)
                .put(groups::add_members)
                .post(groups::add_members),
        )
        .route(
            "/v1/groups/{group}/members/{member}",
            axum::routing::delete(groups::remove_member)
                .put(groups::set_role)
                .post(groups::set_role),
        )
        .route("/v1/groups/{group}/messages", post(groups::send_message))
        .route(
            "/v1/groups/{group}/actions",
            post(actions::post).get(actions::list),
        )
        .route("/v1/groups/{group}/actions/{action}", get(actions::details))
        .route(
            "/v1/groups/{group}/actions/{action}/responses",
            post(actions::respond),
        )
        .route(
            "/v1/groups/{group}/actions/{action}/reminders",
            post(actions::remind),
        )
        .route(
            "/v1/groups/{group}/subgroups",
            get(subgroups::list)
                .post(subgroups::create)
                .put(subgroups::attach),
        )
        .route(
            "/v1/groups/{group}/subgroups/{sub}",
            axum::routing::delete(subgroups::detach),
        )
        .route(
            "/v1/media",
            post(media::upload).layer(DefaultBodyLimit::max(media_body_limit(&state.core))),
        )
        .route("/v1/media/{id}", get(media::serve))
        .route("/v1/groups/{group}/subscribers", post(subscribers::fetch))
        .route(
            "/v1/groups/{group}/subscribers/add",
            axum::routing::put(subscribers::add).post(subscribers::add),
        )
        .route(
            "/v1/groups/{group}/subscribers/remove",
            axum::routing::put(subscribers::remove).post(subscribers::remove),
        )
        .route("/v1/webhook", post(webhooks::create).get(webhooks::list))
        .route(
            "/v1/webhook/{id}",
            axum::routing::put(webhooks::update).delete(webhooks::remove),
        )
        // Not a fallback: the app's router has the ACS face's, and a router has one.
        .route("/v1", any(not_found))
        .route("/v1/{*rest}", any(not_found))
        .layer(error_shape_and_body_limit())
        .with_state(state)
}

async fn not_found() -> KaizalaError {
    KaizalaError::not_found("The requested resource does not exist.")
}

/// The body limit of `POST /media`: the largest upload the media limits allow (a full album
/// or the largest single file), plus room for the multipart framing.
pub(crate) fn media_body_limit(core: &Core) -> usize {
    let largest = core
        .media_limits()
        .largest_upload()
        .saturating_add(1024 * 1024);
    usize::try_from(largest).unwrap_or(usize::MAX)
}

/// The admin API of connector applications.
pub fn admin_router(core: Arc<Core>, config: AdminConfig) -> Router {
    let state = AdminState {
        core,
        config: Arc::new(config),
    };
    Router::new()
        .route("/admin/applications", post(admin::create).get(admin::list))
        .route(
            "/admin/applications/{id}",
            axum::routing::delete(admin::remove),
        )
        .route("/admin/webhooks/{id}/deliveries", get(webhooks::deliveries))
        .route(
            "/admin/webhooks/{id}/deliveries/{delivery}/redeliver",
            post(webhooks::redeliver),
        )
        .layer(error_shape_and_body_limit())
        .with_state(state)
}

type ErrorShapeAndBodyLimit =
    Stack<MapResponseLayer<fn(Response) -> Response>, Stack<DefaultBodyLimit, Identity>>;

/// The body limit and the Kaizala error shape, as one layer: axum boxes each route once per
/// layer, and a request's future once per box. `map_response` from tower, not axum's: its
/// future is not boxed.
fn error_shape_and_body_limit() -> ServiceBuilder<ErrorShapeAndBodyLimit> {
    ServiceBuilder::new()
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .map_response(kaizala_error_shape as fn(Response) -> Response)
}

/// Makes a Kaizala path routable, for the whole app before its router: in a path under `/v1`
/// (in any case) the prefix and the literal segments are lower-cased and empty segments
/// dropped (`/V1/Groups/x/SubGroups/` becomes `/v1/groups/x/subgroups`); ids are left as they
/// are. Every other path is left alone.
pub fn normalize_path<B>(mut request: axum::http::Request<B>) -> axum::http::Request<B> {
    let uri = request.uri();
    let path = uri.path();
    let Some(rest) = under_v1(path) else {
        return request;
    };
    if is_normalized(path, rest) {
        return request;
    }
    let normalized = rebuilt(rest);
    let target = match uri.query() {
        Some(query) => format!("{normalized}?{query}"),
        None => normalized,
    };
    let mut parts = uri.clone().into_parts();
    if let Ok(path_and_query) = target.parse() {
        parts.path_and_query = Some(path_and_query);
        if let Ok(uri) = Uri::from_parts(parts) {
            *request.uri_mut() = uri;
        }
    }
    request
}

/// What follows the `/v1` of a path under it (`/v1`, `/V1/groups`), or `None`.
fn under_v1(path: &str) -> Option<&str> {
    let prefix = path.get(..3)?;
    let rest = &path[3..];
    (prefix.eq_ignore_ascii_case("/v1") && (rest.is_empty() || rest.starts_with('/')))
        .then_some(rest)
}

/// The path `/v1` followed by `rest`, normalised.
fn rebuilt(rest: &str) -> String {
    let mut normalized = String::with_capacity(rest.len() + 3);
    normalized.push_str("/v1");
    for segment in rest.split('/').filter(|s| !s.is_empty()) {
        normalized.push('/');
        match literal(segment) {
            Some(literal) => normalized.push_str(literal),
            None => normalized.push_str(segment),
        }
    }
    normalized
}

/// The literal a path segment names, in any case.
fn literal(segment: &str) -> Option<&'static str> {
    LITERALS
        .iter()
        .find(|literal| literal.eq_ignore_ascii_case(segment))
        .copied()
}

/// Whether a path under `/v1` (`rest` being what follows the prefix) is already what
/// [`rebuilt`] would make of it (what clients send, checked without building a copy): the
/// prefix and the literals in lower case, no empty segment, no trailing slash.
fn is_normalized(path: &str, rest: &str) -> bool {
    if !path.starts_with("/v1") {
        return false;
    }
    if rest.is_empty() {
        return true;
    }
    let Some(rest) = rest.strip_prefix('/') else {
        return false;
    };
    rest.split('/')
        .all(|segment| !segment.is_empty() && literal(segment).is_none_or(|l| l == segment))
}

/// Gives the responses axum makes by itself (405, path and body rejections) the Kaizala error
/// shape.
fn kaizala_error_shape(response: Response) -> Response {
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
        StatusCode::METHOD_NOT_ALLOWED => KaizalaError::MethodNotAllowed,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => KaizalaError::UnsupportedMediaType,
        StatusCode::UNAUTHORIZED => KaizalaError::Core(Error::Unauthenticated(message)),
        StatusCode::FORBIDDEN => KaizalaError::Core(Error::Forbidden(message)),
        StatusCode::NOT_FOUND => KaizalaError::Core(Error::NotFound(message)),
        StatusCode::PAYLOAD_TOO_LARGE => KaizalaError::Core(Error::TooLarge(message)),
        s if s.is_server_error() => KaizalaError::Core(Error::Internal(message)),
        _ => KaizalaError::Core(Error::bad_request(message)),
    };
    error.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::Request;

    fn normalized(target: &str) -> String {
        let request = Request::builder()
            .uri(target)
            .body(axum::body::Body::empty())
            .expect("request");
        normalize_path(request).uri().to_string()
    }

    #[test]
    fn literal_segments_are_lower_cased_and_ids_kept() {
        assert_eq!(
            normalized("/v1/Groups/ABCdef-01@1/SubGroups/"),
            "/v1/groups/ABCdef-01@1/subgroups"
        );
        assert_eq!(normalized("/V1/generatePin"), "/v1/generatepin");
        assert_eq!(
            normalized("/v1/groups?showDetail=True"),
            "/v1/groups?showDetail=True"
        );
        assert_eq!(normalized("/v1//accessToken"), "/v1/accesstoken");
        assert_eq!(normalized("/v1/"), "/v1");
        assert_eq!(normalized("/V1"), "/v1");
        assert_eq!(
            normalized("/v1/groups/x/members/%2B14255550123"),
            "/v1/groups/x/members/%2B14255550123"
        );
    }

    #[test]
    fn paths_not_under_v1_are_left_alone() {
        for path in [
            "/",
            "/chat/threads/X/messages?api-version=2024-03-07",
            "/v12/Groups",
            "/v1x",
            "/Chat//Threads/",
            "/admin/applications",
        ] {
            assert_eq!(normalized(path), path);
        }
    }

    /// The check that lets a path through untouched agrees with the rebuild it skips: on
    /// every path, it holds exactly when the rebuild gives the path back.
    #[test]
    fn the_quick_check_agrees_with_the_rebuild() {
        for (path, normalized) in [
            ("/v1", true),
            ("/v1/groups", true),
            ("/v1/groups/ABCdef-01@1/messages", true),
            ("/v1/groups/x/members/%2B14255550123", true),
            ("/v1/groups/Groups", false),
            ("/v1/", false),
            ("/V1", false),
            ("/v1/Groups", false),
            ("/V1/groups", false),
            ("/v1/groups/", false),
            ("/v1//groups", false),
            ("/v1/groups/x/Messages", false),
            ("/v1/SubGroups", false),
        ] {
            let rest = under_v1(path).expect("under /v1");
            assert_eq!(is_normalized(path, rest), normalized, "{path}");
            assert_eq!(rebuilt(rest) == path, normalized, "{path}");
        }
    }
}
