//! Authentication: HMAC-SHA256 signatures on the Identity API, bearer tokens on chat.

use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::*;

const VECTORS: &str = include_str!("hmac-vectors.json");

fn vectors() -> (Vec<u8>, Vec<Value>) {
    let file: Value = serde_json::from_str(VECTORS).expect("hmac-vectors.json");
    let key = STANDARD
        .decode(file["access_key_base64"].as_str().expect("key"))
        .expect("base64");
    (key, file["vectors"].as_array().expect("vectors").clone())
}

fn create_path() -> String {
    with_api("/identities", IDENTITY_API)
}

/// `POST /identities` with `body` and exactly these headers.
async fn post_identities_with(
    server: &TestServer,
    body: &[u8],
    headers: Vec<(&'static str, String)>,
) -> Resp {
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    server
        .send_raw(Method::POST, &create_path(), &headers, body.to_vec())
        .await
}

/// `POST /identities` with an empty body, correctly signed as of `date` (an x-ms-date value).
async fn create_signed_at(server: &TestServer, date: &str) -> Resp {
    let signed = sign(&server.key, "POST", &create_path(), date, &server.host, b"");
    post_identities_with(server, b"", TestServer::signed_headers(&signed)).await
}

fn without(headers: Vec<(&'static str, String)>, name: &str) -> Vec<(&'static str, String)> {
    headers.into_iter().filter(|(n, _)| *n != name).collect()
}

fn replaced(
    headers: Vec<(&'static str, String)>,
    name: &'static str,
    value: String,
) -> Vec<(&'static str, String)> {
    let mut headers = without(headers, name);
    headers.push((name, value));
    headers
}

// --- the signing helper against the SDK vectors ----------------------------------------------

#[test]
fn signing_helper_reproduces_every_sdk_vector() {
    let (key, vectors) = vectors();
    assert_eq!(vectors.len(), 12);
    for v in &vectors {
        let text = |k: &str| {
            v[k].as_str()
                .unwrap_or_else(|| panic!("{k} in {v}"))
                .to_owned()
        };
        let signed = sign(
            &key,
            &text("method"),
            &text("request_target"),
            &text("x-ms-date"),
            &text("host"),
            text("body").as_bytes(),
        );
        assert_eq!(
            signed.content_hash,
            text("x-ms-content-sha256"),
            "{}",
            text("request_target")
        );
        assert_eq!(signed.string_to_sign, text("string_to_sign"));
        assert_eq!(signed.authorization, text("authorization"));
    }
}

#[test]
fn empty_body_hash_is_the_sha256_of_nothing() {
    assert_eq!(content_hash(b""), EMPTY_SHA256);
}

#[tokio::test]
async fn server_with_the_vector_key_accepts_the_vector_requests_signed_now() {
    let (key, vectors) = vectors();
    let server = start_with_access_key(&key).await;
    assert_eq!(
        server.key, key,
        "the connection string carries the configured key"
    );
    // The vectors' first two requests (create without and with a body), re-signed for our host
    // and clock by the helper that reproduces the vectors.
    for v in vectors.iter().take(2) {
        let body = v["body"].as_str().expect("body").as_bytes().to_vec();
        let resp = server
            .admin()
            .call_bytes(Method::POST, &create_path(), body)
            .await
            .expect(201);
        assert!(resp.body["identity"]["id"].is_string(), "{}", resp.text);
    }
    // And the JS vector's issueAccessToken body against an identity of this server.
    let id = server.admin().new_identity().await;
    let resp = server
        .admin()
        .issue_token(
            &id,
            json!({"scopes": ["chat", "voip"], "expiresInMinutes": 60}),
        )
        .await
        .expect(200);
    assert!(resp.body["token"].is_string());
}

#[tokio::test]
async fn a_different_key_is_refused() {
    let server = TestServer::start().await;
    let body = b"{}";
    let signed = sign(
        b"not the key",
        "POST",
        &create_path(),
        &rfc1123(SystemTime::now()),
        &server.host,
        body,
    );
    post_identities_with(&server, body, TestServer::signed_headers(&signed))
        .await
        .error(401);
}

// --- HMAC on the server -----------------------------------------------------------------------

#[tokio::test]
async fn hmac_valid_signature_is_accepted() {
    let server = TestServer::start().await;
    let body = br#"{"createTokenWithScopes":["chat"]}"#;
    let signed = server.sign_now("POST", &create_path(), body);
    let resp = post_identities_with(&server, body, TestServer::signed_headers(&signed)).await;
    resp.expect(201);
}

#[tokio::test]
async fn hmac_valid_signature_with_empty_body_is_accepted() {
    let server = TestServer::start().await;
    let signed = server.sign_now("POST", &create_path(), b"");
    assert_eq!(signed.content_hash, EMPTY_SHA256);
    post_identities_with(&server, b"", TestServer::signed_headers(&signed))
        .await
        .expect(201);
}

#[tokio::test]
async fn hmac_wrong_signature_is_401() {
    let server = TestServer::start().await;
    let body = b"{}";
    let signed = server.sign_now("POST", &create_path(), body);
    let mut sig = STANDARD
        .decode(
            signed
                .authorization
                .rsplit_once("Signature=")
                .expect("sig")
                .1,
        )
        .expect("b64");
    sig[0] ^= 1;
    let auth = format!(
        "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature={}",
        STANDARD.encode(sig)
    );
    let headers = replaced(TestServer::signed_headers(&signed), "authorization", auth);
    post_identities_with(&server, body, headers)
        .await
        .error(401);
}

#[tokio::test]
async fn hmac_signature_over_another_path_is_401() {
    let server = TestServer::start().await;
    let signed = server.sign_now("POST", "/identities?api-version=2022-10-01", b"");
    post_identities_with(&server, b"", TestServer::signed_headers(&signed))
        .await
        .error(401);
}

#[tokio::test]
async fn hmac_signature_over_another_method_is_401() {
    let server = TestServer::start().await;
    let signed = server.sign_now("GET", &create_path(), b"");
    post_identities_with(&server, b"", TestServer::signed_headers(&signed))
        .await
        .error(401);
}

#[tokio::test]
async fn hmac_signature_over_another_host_is_401() {
    let server = TestServer::start().await;
    let signed = sign(
        &server.key,
        "POST",
        &create_path(),
        &rfc1123(SystemTime::now()),
        "127.0.0.1:1",
        b"",
    );
    post_identities_with(&server, b"", TestServer::signed_headers(&signed))
        .await
        .error(401);
}

#[tokio::test]
async fn hmac_missing_authorization_is_401() {
    let server = TestServer::start().await;
    let signed = server.sign_now("POST", &create_path(), b"");
    let headers = without(TestServer::signed_headers(&signed), "authorization");
    post_identities_with(&server, b"", headers).await.error(401);
}

#[tokio::test]
async fn hmac_missing_date_is_401() {
    let server = TestServer::start().await;
    let signed = server.sign_now("POST", &create_path(), b"");
    let headers = without(TestServer::signed_headers(&signed), "x-ms-date");
    post_identities_with(&server, b"", headers).await.error(401);
}

#[tokio::test]
async fn hmac_missing_content_hash_is_401() {
    let server = TestServer::start().await;
    let signed = server.sign_now("POST", &create_path(), b"");
    let headers = without(TestServer::signed_headers(&signed), "x-ms-content-sha256");
    post_identities_with(&server, b"", headers).await.error(401);
}

#[tokio::test]
async fn hmac_content_hash_not_matching_the_body_is_401() {
    let server = TestServer::start().await;
    let body = br#"{"createTokenWithScopes":["chat"]}"#;
    // Signed consistently, but over the hash of another body.
    let signed = sign_with_hash(
        &server.key,
        "POST",
        &create_path(),
        &rfc1123(SystemTime::now()),
        &server.host,
        &content_hash(b"{}"),
    );
    post_identities_with(&server, body, TestServer::signed_headers(&signed))
        .await
        .error(401);
}

#[tokio::test]
async fn hmac_body_changed_after_signing_is_401() {
    let server = TestServer::start().await;
    let signed = server.sign_now(
        "POST",
        &create_path(),
        br#"{"createTokenWithScopes":["voip"]}"#,
    );
    let tampered = br#"{"createTokenWithScopes":["chat"]}"#;
    post_identities_with(&server, tampered, TestServer::signed_headers(&signed))
        .await
        .error(401);
}

#[tokio::test]
async fn hmac_stale_date_is_401() {
    let server = TestServer::start().await;
    let date = rfc1123(SystemTime::now() - Duration::from_secs(16 * 60));
    create_signed_at(&server, &date).await.error(401);
}

#[tokio::test]
async fn hmac_date_too_far_in_the_future_is_401() {
    let server = TestServer::start().await;
    let date = rfc1123(SystemTime::now() + Duration::from_secs(16 * 60));
    create_signed_at(&server, &date).await.error(401);
}

#[tokio::test]
async fn hmac_date_within_the_skew_is_accepted() {
    let server = TestServer::start().await;
    let date = rfc1123(SystemTime::now() - Duration::from_secs(10 * 60));
    create_signed_at(&server, &date).await.expect(201);
}

#[tokio::test]
async fn hmac_date_not_rfc1123_is_401() {
    let server = TestServer::start().await;
    let date = "2026-11-22T03:20:10Z";
    create_signed_at(&server, date).await.error(401);
}

#[tokio::test]
async fn identity_api_refuses_a_bearer_token() {
    let server = TestServer::start().await;
    let user = server.user().await;
    let client = server.client_with_auth(Some(&format!("Bearer {}", user.token)));
    client
        .send(Method::POST, &create_path(), None)
        .await
        .error(401);
}

// --- bearer tokens on chat ---------------------------------------------------------------------

#[tokio::test]
async fn chat_without_token_is_401() {
    let server = TestServer::start().await;
    let client = server.client_with_auth(None);
    client
        .send(Method::GET, &with_api("/chat/threads", CHAT_API), None)
        .await
        .error(401);
}

#[tokio::test]
async fn chat_with_garbage_token_is_401() {
    let server = TestServer::start().await;
    for auth in [
        "Bearer garbage",
        "Bearer a.b.c",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "garbage",
    ] {
        let client = server.client_with_auth(Some(auth));
        let resp = client
            .send(Method::GET, &with_api("/chat/threads", CHAT_API), None)
            .await;
        assert_eq!(resp.status.as_u16(), 401, "{auth}: {}", resp.text);
        resp.error(401);
    }
}

#[tokio::test]
async fn chat_with_tampered_token_is_401() {
    let server = TestServer::start().await;
    let user = server.user().await;
    // Change the payload's `exp` and keep the signature.
    let parts: Vec<&str> = user.token.split('.').collect();
    let mut payload: Value = serde_json::from_slice(&decode_segment(parts[1])).expect("payload");
    payload["exp"] = json!(payload["exp"].as_i64().expect("exp") + 3600);
    let forged = STANDARD.encode(serde_json::to_vec(&payload).expect("json"));
    let forged = forged
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_");
    let token = format!("{}.{}.{}", parts[0], forged, parts[2]);
    let client = server.client_with_auth(Some(&format!("Bearer {token}")));
    client
        .send(Method::GET, &with_api("/chat/threads", CHAT_API), None)
        .await
        .error(401);
}

#[tokio::test]
async fn chat_with_token_of_another_server_is_401() {
    let server = TestServer::start().await;
    let other = TestServer::start().await;
    let stranger = other.user().await;
    let client = server.client_with_auth(Some(&format!("Bearer {}", stranger.token)));
    client
        .send(Method::GET, &with_api("/chat/threads", CHAT_API), None)
        .await
        .error(401);
}

#[tokio::test]
async fn chat_with_expired_token_is_401() {
    // A server whose token secret is known, so that the test can mint a token that expired a
    // minute ago (the Identity API issues 60 minutes at least). A token minted the same way but
    // still valid is accepted, which shows the expired one fails for its `exp` alone.
    let known = start_with_token_secret().await;
    let server = &known.server;
    let id = server.admin().new_identity().await;
    let now = now().unix_timestamp();
    let valid = mint_token(&known.token_secret, &id, &["chat"], now - 60, now + 3600);
    server
        .user_from(id.clone(), valid)
        .get("/chat/threads")
        .await
        .expect(200);
    let expired = mint_token(&known.token_secret, &id, &["chat"], now - 7200, now - 60);
    server
        .user_from(id.clone(), expired)
        .get("/chat/threads")
        .await
        .error(401);
}

#[tokio::test]
async fn chat_with_hmac_signature_instead_of_token_is_401() {
    let server = TestServer::start().await;
    let path = with_api("/chat/threads", CHAT_API);
    let signed = server.sign_now("GET", &path, b"");
    let headers = TestServer::signed_headers(&signed);
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    server
        .send_raw(Method::GET, &path, &headers, Vec::new())
        .await
        .error(401);
}

/// Every chat operation of the swagger answers 401 without a token.
#[tokio::test]
async fn every_chat_operation_requires_a_token() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("t", &[]).await;
    let message = owner.send(&thread, "hi").await;
    let client = server.client_with_auth(None);
    for (method, path, body) in chat_operations(&thread, &message, &owner.id) {
        let resp = client
            .send(method.clone(), &with_api(&path, CHAT_API), body.as_ref())
            .await;
        assert_eq!(resp.status.as_u16(), 401, "{method} {path}: {}", resp.text);
        resp.error(401);
    }
}

/// Every thread-scoped chat operation answers 403 to an authenticated non-participant.
#[tokio::test]
async fn every_thread_operation_forbids_non_participants() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let stranger = server.user().await;
    let thread = owner.create_thread("t", &[]).await;
    let message = owner.send(&thread, "hi").await;
    for (method, path, body) in chat_operations(&thread, &message, &owner.id) {
        if path == "/chat/threads" {
            continue; // create and list are not thread-scoped
        }
        let resp = stranger
            .raw()
            .send(method.clone(), &with_api(&path, CHAT_API), body.as_ref())
            .await;
        assert_eq!(resp.status.as_u16(), 403, "{method} {path}: {}", resp.text);
        resp.error(403);
    }
    // Nothing changed for the owner.
    owner.get_thread(&thread).await.expect(200);
    owner.get_message(&thread, &message).await.expect(200);
}

/// A token with only `voip` cannot chat (403), on any chat operation.
#[tokio::test]
async fn voip_only_token_cannot_chat() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("t", &[]).await;
    let message = owner.send(&thread, "hi").await;
    let voip_token = server.admin().token(&owner.id, &["voip"]).await;
    let voip = server.user_from(owner.id.clone(), voip_token);
    for (method, path, body) in chat_operations(&thread, &message, &owner.id) {
        let resp = voip
            .raw()
            .send(method.clone(), &with_api(&path, CHAT_API), body.as_ref())
            .await;
        assert_eq!(resp.status.as_u16(), 403, "{method} {path}: {}", resp.text);
        resp.error(403);
    }
}

/// The 16 operations of the chat swagger, with valid bodies.
pub fn chat_operations(
    thread: &str,
    message: &str,
    participant: &str,
) -> Vec<(Method, String, Option<Value>)> {
    let t = thread_path(thread);
    let m = message_path(thread, message);
    vec![
        (
            Method::POST,
            "/chat/threads".into(),
            Some(json!({"topic": "x"})),
        ),
        (Method::GET, "/chat/threads".into(), None),
        (Method::GET, t.clone(), None),
        (Method::PATCH, t.clone(), Some(json!({"topic": "y"}))),
        (
            Method::POST,
            format!("{t}/messages"),
            Some(json!({"content": "x"})),
        ),
        (Method::GET, format!("{t}/messages"), None),
        (Method::GET, m.clone(), None),
        (Method::PATCH, m.clone(), Some(json!({"content": "z"}))),
        (Method::GET, format!("{t}/participants"), None),
        (
            Method::POST,
            format!("{t}/participants/:add"),
            Some(json!({"participants": [participant_json(&phone(1))]})),
        ),
        (
            Method::POST,
            format!("{t}/readReceipts"),
            Some(json!({"chatMessageId": message})),
        ),
        (Method::GET, format!("{t}/readReceipts"), None),
        (Method::POST, format!("{t}/typing"), Some(json!({}))),
        (
            Method::POST,
            format!("{t}/participants/:remove"),
            Some(ident(participant)),
        ),
        (Method::DELETE, m, None),
        (Method::DELETE, t, None),
    ]
}

fn participant_json(raw: &str) -> Value {
    participant(raw)
}

/// Decodes a JWT segment (base64url, no padding).
pub fn decode_segment(segment: &str) -> Vec<u8> {
    let standard = segment.replace('-', "+").replace('_', "/");
    let padded = format!("{standard}{}", "=".repeat((4 - standard.len() % 4) % 4));
    STANDARD.decode(padded).expect("base64 segment")
}

// --- HTTPS, as the SDKs require for bearer tokens ------------------------------------------------

#[tokio::test]
async fn https_with_the_servers_certificate_serves_identity_and_chat() {
    let server = TestServer::start_with(|s| s.http = false).await;
    assert!(server.base.starts_with("https://"), "{}", server.base);
    assert!(
        server.running.endpoint.starts_with("https://"),
        "{}",
        server.running.endpoint
    );
    assert!(server
        .running
        .connection_string
        .starts_with("endpoint=https://"));
    let owner = server.user().await; // HMAC-signed over TLS
    let thread = owner.create_thread("secure", &[]).await;
    owner.create_thread("secure 2", &[]).await;
    owner.send(&thread, "over TLS").await;
    let first = owner.get("/chat/threads?maxPageSize=1").await.expect(200);
    let link = first.next_link().expect("nextLink");
    if link.contains("://") {
        assert!(
            link.starts_with("https://"),
            "an absolute nextLink keeps the scheme: {link}"
        );
    }
    assert_eq!(owner.follow(&link).await.expect(200).value().len(), 1);
}

#[tokio::test]
async fn bearer_scheme_is_case_insensitive() {
    let server = TestServer::start().await;
    let user = server.user().await;
    let client = server.client_with_auth(Some(&format!("bearer {}", user.token)));
    client
        .send(Method::GET, &with_api("/chat/threads", CHAT_API), None)
        .await
        .expect(200);
}

#[tokio::test]
async fn clock_skew_is_configurable() {
    let server = TestServer::start_with(|s| s.max_clock_skew_secs = 60).await;
    let date = rfc1123(SystemTime::now() - Duration::from_secs(120));
    create_signed_at(&server, &date).await.error(401);
    let date = rfc1123(SystemTime::now() - Duration::from_secs(30));
    create_signed_at(&server, &date).await.expect(201);
}

#[tokio::test]
async fn restart_on_the_same_data_dir_keeps_keys_tokens_revocations_and_threads() {
    let dir = TempDir::new();
    let settings = |s: &mut confab::Settings| {
        s.in_memory = false;
        s.data_dir = dir.0.clone();
        s.retention_sweep_secs = 0;
    };
    let first = TestServer::start_with(settings).await;
    let owner = first.user().await;
    let revoked = first.user().await;
    let thread = owner.create_thread("durable", &[&revoked]).await;
    let message = owner.send(&thread, "still here").await;
    first.admin().revoke(&revoked.id).await.expect(204);
    let key = first.key.clone();
    first.running.shutdown().await;

    let second = TestServer::start_with(settings).await;
    assert_eq!(second.key, key, "the generated access key is kept");
    let owner = second.user_from(owner.id.clone(), owner.token.clone());
    let msg = owner.get_message(&thread, &message).await.expect(200).body;
    assert_eq!(msg["content"]["message"], "still here");
    second
        .user_from(revoked.id.clone(), revoked.token.clone())
        .get("/chat/threads")
        .await
        .error(401);
    second
        .admin()
        .issue_token(&revoked.id, json!({"scopes": ["chat"]}))
        .await
        .expect(200);
}
