//! Request-level errors: api-version, malformed bodies, body limit, unknown routes. Every error
//! is checked for the CommunicationErrorResponse shape by `Resp::error`.

use reqwest::Method;
use serde_json::json;

use crate::local::raw_exchange;
use crate::support::*;

#[tokio::test]
async fn chat_api_version_missing_is_400() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let resp = owner.raw().send(Method::GET, "/chat/threads", None).await;
    let error = resp.error(400);
    if let Some(target) = error["target"].as_str() {
        assert_eq!(target, "api-version");
    }
}

#[tokio::test]
async fn chat_api_version_missing_on_create_is_400() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let resp = owner
        .raw()
        .send(Method::POST, "/chat/threads", Some(&json!({"topic": "t"})))
        .await;
    resp.error(400);
    assert!(
        owner.list_all("/chat/threads").await.is_empty(),
        "nothing created"
    );
}

#[tokio::test]
async fn unknown_newer_api_version_is_served() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let create = with_api("/chat/threads", "2099-01-01");
    let resp = owner
        .raw()
        .send(Method::POST, &create, Some(&json!({"topic": "future"})))
        .await;
    let thread = resp.expect(201).body["chatThread"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let get = with_api(&thread_path(&thread), "2099-01-01");
    owner.raw().send(Method::GET, &get, None).await.expect(200);
}

#[tokio::test]
async fn every_known_chat_api_version_is_served() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("versions", &[]).await;
    for version in ["2021-09-07", "2023-11-07", "2024-03-07", "2025-03-15"] {
        let path = with_api(&messages_path(&thread), version);
        let resp = owner
            .raw()
            .send(Method::POST, &path, Some(&json!({"content": version})))
            .await;
        assert_eq!(resp.status.as_u16(), 201, "{version}: {}", resp.text);
        let resp = owner
            .raw()
            .send(Method::GET, &with_api("/chat/threads", version), None)
            .await;
        assert_eq!(resp.status.as_u16(), 200, "{version}: {}", resp.text);
    }
}

#[tokio::test]
async fn api_version_that_is_not_a_date_is_400() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let resp = owner
        .raw()
        .send(Method::GET, &with_api("/chat/threads", "latest"), None)
        .await;
    resp.error(400);
}

#[tokio::test]
async fn strict_api_version_refuses_unknown_versions() {
    let server = TestServer::start_with(set_strict_api_version).await;
    let owner = server.user().await;
    let resp = owner
        .raw()
        .send(Method::GET, &with_api("/chat/threads", "2099-01-01"), None)
        .await;
    resp.error(400);
    owner.get("/chat/threads").await.expect(200);
}

#[tokio::test]
async fn malformed_json_is_400() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("json", &[]).await;
    let cases = [
        (Method::POST, "/chat/threads".to_owned()),
        (Method::POST, messages_path(&thread)),
        (Method::PATCH, thread_path(&thread)),
        (Method::POST, format!("{}/:add", participants_path(&thread))),
        (
            Method::POST,
            format!("{}/:remove", participants_path(&thread)),
        ),
        (
            Method::POST,
            format!("{}/readReceipts", thread_path(&thread)),
        ),
    ];
    for (method, path) in cases {
        let resp = owner
            .raw()
            .send_bytes(
                method.clone(),
                &with_api(&path, CHAT_API),
                "application/json",
                b"{\"topic\": ".to_vec(),
            )
            .await;
        assert_eq!(resp.status.as_u16(), 400, "{method} {path}: {}", resp.text);
        resp.error(400);
    }
}

#[tokio::test]
async fn wrongly_typed_json_field_is_400() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    owner
        .create_thread_with(json!({"topic": 42}))
        .await
        .error(400);
    owner
        .create_thread_with(json!({"topic": "t", "participants": "everyone"}))
        .await
        .error(400);
    owner.create_thread_with(json!(["topic"])).await.error(400);
}

#[tokio::test]
async fn body_over_the_limit_is_413() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("huge", &[]).await;
    let huge = "a".repeat(5 * 1024 * 1024);
    let body = serde_json::to_vec(&json!({"content": huge})).expect("json");
    let resp = owner
        .raw()
        .send_bytes(
            Method::POST,
            &with_api(&messages_path(&thread), CHAT_API),
            "application/json",
            body,
        )
        .await;
    resp.error(413);
}

#[tokio::test]
async fn identity_body_over_the_limit_is_413() {
    // Correctly signed, but larger than the body limit.
    let server = TestServer::start().await;
    let path = with_api("/identities", IDENTITY_API);
    let body = format!("{{\"pad\":\"{}\"}}", "a".repeat(5 * 1024 * 1024)).into_bytes();
    let resp = server.admin().call_bytes(Method::POST, &path, body).await;
    resp.error(413);
}

#[tokio::test]
async fn unknown_route_is_404_with_error_body() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    owner.get("/chat/nothing-here").await.error(404);
}

#[tokio::test]
async fn wrong_method_is_an_error_with_error_body() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let resp = owner
        .raw()
        .send(Method::PUT, &with_api("/chat/threads", CHAT_API), None)
        .await;
    assert!(matches!(resp.status.as_u16(), 404 | 405), "{}", resp.text);
    let status = resp.status.as_u16();
    resp.error(status);
}

#[tokio::test]
async fn error_bodies_are_json() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let resp = owner
        .get_thread("19:0123456789abcdef0123456789abcdef@thread.v2")
        .await;
    let content_type = resp.header("content-type").unwrap_or_default().to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    resp.error(404);
}

// --- throttling (NOTES.md: the cloud's per-10-second limits, 429 with Retry-After) ------------

async fn cloud_limited_server() -> TestServer {
    TestServer::start_with(|s| s.rate_limits = confab_core::ratelimit::Profile::AcsCloud).await
}

#[track_caller]
fn assert_throttled(resp: Resp) {
    let retry_after = resp.header("retry-after").map(str::to_owned);
    resp.error(429);
    let seconds: u64 = retry_after
        .expect("Retry-After header")
        .parse()
        .expect("whole seconds");
    assert!((1..=10).contains(&seconds), "Retry-After {seconds}");
}

#[tokio::test]
async fn eleventh_message_write_in_a_thread_within_10_seconds_is_429() {
    let server = cloud_limited_server().await;
    let owner = server.user().await;
    let thread = owner.create_thread("busy", &[]).await;
    for i in 0..10 {
        owner.send(&thread, &format!("m{i}")).await;
    }
    assert_throttled(
        owner
            .send_message_with(&thread, json!({"content": "one too many"}))
            .await,
    );
    // Another thread is not affected.
    let other = owner.create_thread("calm", &[]).await;
    owner.send(&other, "fine").await;
}

#[tokio::test]
async fn eleventh_thread_creation_within_10_seconds_is_429() {
    let server = cloud_limited_server().await;
    let owner = server.user().await;
    for i in 0..10 {
        owner.create_thread(&format!("t{i}"), &[]).await;
    }
    assert_throttled(owner.create_thread_with(json!({"topic": "too many"})).await);
    // Another user is not affected.
    server.user().await.create_thread("mine", &[]).await;
}

#[tokio::test]
async fn list_messages_over_50_within_10_seconds_is_429() {
    let server = cloud_limited_server().await;
    let owner = server.user().await;
    let thread = owner.create_thread("reads", &[]).await;
    for _ in 0..50 {
        owner.get(&messages_path(&thread)).await.expect(200);
    }
    // The allowance refills one read per 200 ms: on a slow machine the 50 may have taken long
    // enough to earn a few more. Reads faster than that refill must meet a 429 soon.
    for _ in 0..50 {
        let resp = owner.get(&messages_path(&thread)).await;
        if resp.status.as_u16() == 429 {
            return assert_throttled(resp);
        }
        resp.expect(200);
    }
    panic!("100 quick reads within 10 seconds were never throttled");
}

#[tokio::test]
async fn standard_profile_does_not_throttle_normal_use() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("normal", &[]).await;
    for i in 0..30 {
        owner.send(&thread, &format!("m{i}")).await;
    }
}

/// A NUL character anywhere in a body is refused: not every store can keep one (PostgreSQL
/// failed the write with a 500), and none should be asked to.
#[tokio::test]
async fn a_nul_character_in_a_body_is_400() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let err = owner
        .create_thread_with(json!({"topic": "a\u{0}b"}))
        .await
        .error(400);
    assert!(
        err["message"].as_str().is_some_and(|m| m.contains("NUL")),
        "{err}"
    );
    let thread = owner.create_thread("nul", &[]).await;
    let err = owner
        .raw()
        .send(
            Method::POST,
            &format!("{}/messages?api-version=2024-03-07", thread_path(&thread)),
            Some(&json!({"content": "x", "metadata": {"k": "\u{0}"}})),
        )
        .await
        .error(400);
    assert!(
        err["message"].as_str().is_some_and(|m| m.contains("NUL")),
        "{err}"
    );
    // The six characters `\u0000` are text like any other.
    owner
        .create_thread_with(json!({"topic": "a\\u0000b"}))
        .await
        .expect(201);
}

/// A client that stops halfway through a request is not waited for: an unfinished head closes
/// the connection, and a body that stops coming answers 400 in the API's error shape.
#[tokio::test]
async fn a_request_that_stops_halfway_is_not_waited_for() {
    let server = TestServer::start_with(|s| s.request_read_timeout_ms = 300).await;
    let owner = server.user().await;
    let head_only = raw_exchange(
        &server.host,
        "GET /chat/threads?api-version=2024-03-07 HTTP/1.1\r\nHost: x\r\n",
    )
    .await;
    assert!(
        head_only.is_empty() || head_only.starts_with("HTTP/1.1 408"),
        "{head_only}"
    );
    let short_body = raw_exchange(
        &server.host,
        &format!(
            "POST /chat/threads?api-version=2024-03-07 HTTP/1.1\r\nHost: x\r\n\
             Authorization: Bearer {}\r\nContent-Type: application/json\r\n\
             Content-Length: 20\r\n\r\n{{\"topic\"",
            owner.token
        ),
    )
    .await;
    assert!(short_body.starts_with("HTTP/1.1 400"), "{short_body}");
    assert!(short_body.contains("\"error\""), "{short_body}");
    // A request sent whole is served as before.
    owner.create_thread("whole", &[]).await;
}

/// A request whose Content-Length is past the body limit is answered 413 at once, in the API's
/// error shape, without its body: the client below never sends it (the server's body timeout
/// is left at its 30 s, past `raw_exchange`'s wait, so waiting for the body fails the test).
#[tokio::test]
async fn a_body_declared_past_the_limit_is_413_before_it_is_sent() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("declared", &[]).await;
    let send = raw_exchange(
        &server.host,
        &format!(
            "POST {} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: 50000000\r\n\r\n{{\"content\"",
            with_api(&messages_path(&thread), CHAT_API),
            owner.token
        ),
    )
    .await;
    assert!(send.starts_with("HTTP/1.1 413"), "{send}");
    assert!(send.contains("\"error\""), "{send}");
    // The Identity API's bodies are read before their signature is checked.
    let identity = raw_exchange(
        &server.host,
        &format!(
            "POST {} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: 50000000\r\n\r\n{{",
            with_api("/identities", IDENTITY_API)
        ),
    )
    .await;
    assert!(identity.starts_with("HTTP/1.1 413"), "{identity}");
    assert!(identity.contains("\"error\""), "{identity}");
    // A body within the limit, declared and sent, is served as before.
    owner.send(&thread, "within").await;
}
