//! Authorization on a running stream: a removed participant stops receiving that thread at
//! once; a revoked token ends the stream; no or a bad token is refused.

use serde_json::Value;

use crate::clients::{Client, Sse, Ws};
use crate::support::*;

#[tokio::test]
async fn a_removed_participant_stops_receiving_that_thread() {
    let server = TestServer::start().await;
    let alice = server.user().await;
    let bob = server.user().await;
    let one = alice.create_thread("one", &[&bob]).await;
    let two = alice.create_thread("two", &[&bob]).await;
    let mut ws = Client::Ws(Ws::bearer(&server, &bob.token, "").await);
    let mut sse = Client::Sse(Sse::bearer(&server, &bob.token, "").await);
    ws.until_ready().await;
    sse.until_ready().await;

    alice.send(&one, "before").await;
    alice.remove_participant(&one, &bob.id).await.expect(204);
    alice.send(&one, "after").await;
    alice.send(&two, "elsewhere").await;
    for client in [&mut ws, &mut sse] {
        let mut seen: Vec<Value> = Vec::new();
        loop {
            let event = client.next_event().await;
            let done = event["conversation"] == two.as_str();
            seen.push(event);
            if done {
                break;
            }
        }
        let texts: Vec<&str> = seen
            .iter()
            .filter(|e| e["type"] == "messageReceived")
            .filter_map(|e| e["data"]["content"]["text"].as_str())
            .collect();
        assert_eq!(texts, ["before", "elsewhere"], "{seen:?}");
        let removed = seen
            .iter()
            .find(|e| e["type"] == "participantRemoved")
            .expect("told of the removal");
        assert_eq!(removed["data"]["removed"], bob.id.as_str());
    }

    // Added back, it follows the thread again.
    alice.add(&one, &[&bob]).await;
    alice.send(&one, "welcome back").await;
    let event = ws.next_of("participantsAdded").await;
    assert_eq!(event["conversation"], one.as_str());
    let event = ws.next_of("messageReceived").await;
    assert_eq!(event["data"]["type"], "participantAdded");
    let event = ws.next_of("messageReceived").await;
    assert_eq!(event["data"]["content"]["text"], "welcome back");
}

#[tokio::test]
async fn a_revoked_token_ends_its_streams() {
    let server = TestServer::start().await;
    let alice = server.user().await;
    let bob = server.user().await;
    let thread = alice.create_thread("revoke", &[&bob]).await;
    let mut sse = Client::Sse(Sse::bearer(&server, &bob.token, "").await);
    let mut ws = Client::Ws(Ws::bearer(&server, &bob.token, "").await);
    sse.until_ready().await;
    ws.until_ready().await;
    server.admin().revoke(&bob.id).await.expect(204);
    alice.send(&thread, "not for revoked tokens").await;
    for client in [&mut sse, &mut ws] {
        let (events, end) = client.until_end().await;
        assert!(events.is_empty(), "{events:?}");
        let (kind, json) = end.expect("told why");
        assert_eq!(kind, "closed");
        assert_eq!(json["reason"], "unauthorized");
    }
    if let Client::Ws(ws) = &mut ws {
        assert_eq!(ws.next().await, None);
        assert_eq!(ws.close_code, Some(4001));
    }
    // And the token no longer opens one.
    let refused = Sse::request(
        &server,
        "",
        &[("authorization", format!("Bearer {}", bob.token))],
    )
    .await;
    assert_eq!(refused.status(), 401);
}

#[tokio::test]
async fn tokens_come_as_bearer_access_token_header_or_query() {
    let server = TestServer::start().await;
    let alice = server.user().await;
    let thread = alice.create_thread("auth", &[]).await;
    // Kaizala's header and the browser's query parameter carry the same server-signed token.
    let mut header =
        Client::Sse(Sse::open(&server, "", &[("accessToken", alice.token.clone())]).await);
    let mut query =
        Client::Ws(Ws::open(&server, &format!("access_token={}", alice.token), &[]).await);
    header.until_ready().await;
    query.until_ready().await;
    alice.send(&thread, "hi").await;
    for client in [&mut header, &mut query] {
        assert_eq!(
            client.next_of("messageReceived").await["data"]["content"]["text"],
            "hi"
        );
    }

    for (headers, status) in [
        (vec![], 401),
        (vec![("authorization", "Bearer nope".to_owned())], 401),
        (vec![("authorization", "Basic abc".to_owned())], 401),
    ] {
        let response = Sse::request(&server, "", &headers).await;
        assert_eq!(response.status(), status);
        let body: Value = response.json().await.expect("JSON error");
        assert!(body["error"]["message"].is_string(), "{body}");
    }
    let response = Sse::request(
        &server,
        "since=abc",
        &[("authorization", format!("Bearer {}", alice.token))],
    )
    .await;
    assert_eq!(response.status(), 400);
    // An empty conversation list would follow nothing: refused.
    let response = Sse::request(
        &server,
        "conversations=",
        &[("authorization", format!("Bearer {}", alice.token))],
    )
    .await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.expect("JSON error");
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("conversations")));
    // The WebSocket endpoint without a handshake: the same JSON errors, credentials first.
    let plain = |authorization: Option<String>| {
        let mut request = server.http.get(format!("{}/stream/ws", server.base));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        request.send()
    };
    let response = plain(None).await.expect("send");
    assert_eq!(response.status(), 401);
    assert!(response.json::<Value>().await.expect("JSON")["error"]["message"].is_string());
    let response = plain(Some(format!("Bearer {}", alice.token)))
        .await
        .expect("send");
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.expect("JSON error");
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("WebSocket")));
    let voip = server.user_with_scopes(&["voip"]).await;
    let response = Sse::request(
        &server,
        "",
        &[("authorization", format!("Bearer {}", voip.token))],
    )
    .await;
    assert_eq!(response.status(), 403);
}

/// A method a route of confab's own does not take answers 405 with the JSON error and the
/// `Allow` header, like every other error of the stream (it was an empty body).
#[tokio::test]
async fn other_methods_on_confab_routes_answer_json_405() {
    let server = TestServer::start().await;
    for (method, path) in [
        (reqwest::Method::POST, "/stream/events"),
        (reqwest::Method::DELETE, "/stream/ws"),
        (reqwest::Method::POST, "/openapi.json"),
    ] {
        let response = server
            .http
            .request(method.clone(), format!("{}{path}", server.base))
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 405, "{method} {path}");
        let allow = response
            .headers()
            .get("allow")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(allow.contains("GET"), "{method} {path}: allow {allow:?}");
        let body: Value = response.json().await.expect("JSON error");
        assert_eq!(body["error"]["code"], "MethodNotAllowed", "{method} {path}");
        assert!(body["error"]["message"].is_string(), "{body}");
    }
}
