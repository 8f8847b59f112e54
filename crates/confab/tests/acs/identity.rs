//! The Identity API: identities, tokens, scopes, revocation and deletion; the token format.

use std::collections::HashSet;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::*;

const SLACK: Duration = Duration::from_secs(120);

/// Asserts an `accessToken`/issue answer: a token and an expiresOn ≈ now + minutes.
#[track_caller]
fn assert_token(access_token: &Value, minutes: i64) {
    assert!(
        access_token["token"]
            .as_str()
            .is_some_and(|t| !t.is_empty()),
        "{access_token}"
    );
    let expires_on = parse_time(&access_token["expiresOn"]);
    assert_close(expires_on, now() + time::Duration::minutes(minutes), SLACK);
}

#[tokio::test]
async fn create_identity_without_body_has_no_token() {
    let server = TestServer::start().await;
    let resp = server.admin().create_identity(None).await.expect(201);
    let id = resp.body["identity"]["id"].as_str().expect("identity.id");
    assert!(id.starts_with("8:acs:"), "{id}");
    assert!(resp.body["accessToken"].is_null(), "{}", resp.text);
}

#[tokio::test]
async fn create_identity_with_empty_object_has_no_token() {
    let server = TestServer::start().await;
    let resp = server
        .admin()
        .create_identity(Some(json!({})))
        .await
        .expect(201);
    assert!(resp.body["identity"]["id"].is_string());
    assert!(resp.body["accessToken"].is_null(), "{}", resp.text);
}

#[tokio::test]
async fn create_identity_with_empty_scope_list_gives_no_token_or_400() {
    // `createTokenWithScopes: []` asks for no token (the SDKs send the field only with scopes).
    let server = TestServer::start().await;
    let resp = server
        .admin()
        .create_identity(Some(json!({"createTokenWithScopes": []})))
        .await;
    if resp.status.as_u16() == 201 {
        assert!(resp.body["accessToken"].is_null(), "{}", resp.text);
    } else {
        resp.error(400);
    }
}

#[tokio::test]
async fn identities_are_unique() {
    let server = TestServer::start().await;
    let mut ids = HashSet::new();
    for _ in 0..10 {
        assert!(ids.insert(server.admin().new_identity().await));
    }
}

#[tokio::test]
async fn create_identity_with_token_defaults_to_24_hours() {
    let server = TestServer::start().await;
    let body = json!({"createTokenWithScopes": ["chat"]});
    let resp = server.admin().create_identity(Some(body)).await.expect(201);
    assert!(resp.body["identity"]["id"].is_string());
    assert_token(&resp.body["accessToken"], 1440);
}

#[tokio::test]
async fn create_identity_token_of_60_minutes() {
    let server = TestServer::start().await;
    let body = json!({"createTokenWithScopes": ["chat"], "expiresInMinutes": 60});
    let resp = server.admin().create_identity(Some(body)).await.expect(201);
    assert_token(&resp.body["accessToken"], 60);
}

#[tokio::test]
async fn create_identity_token_of_1440_minutes() {
    let server = TestServer::start().await;
    let body = json!({"createTokenWithScopes": ["chat"], "expiresInMinutes": 1440});
    let resp = server.admin().create_identity(Some(body)).await.expect(201);
    assert_token(&resp.body["accessToken"], 1440);
}

#[tokio::test]
async fn create_identity_token_of_59_minutes_is_400() {
    let server = TestServer::start().await;
    let body = json!({"createTokenWithScopes": ["chat"], "expiresInMinutes": 59});
    server.admin().create_identity(Some(body)).await.error(400);
}

#[tokio::test]
async fn create_identity_token_of_1441_minutes_is_400() {
    let server = TestServer::start().await;
    let body = json!({"createTokenWithScopes": ["chat"], "expiresInMinutes": 1441});
    server.admin().create_identity(Some(body)).await.error(400);
}

#[tokio::test]
async fn create_identity_with_unknown_scope_is_400() {
    let server = TestServer::start().await;
    let body = json!({"createTokenWithScopes": ["chat", "superpowers"]});
    server.admin().create_identity(Some(body)).await.error(400);
}

#[tokio::test]
async fn every_documented_scope_is_accepted() {
    let server = TestServer::start().await;
    for scope in [
        "chat",
        "voip",
        "chat.join",
        "chat.join.limited",
        "voip.join",
    ] {
        let body = json!({"createTokenWithScopes": [scope]});
        let resp = server.admin().create_identity(Some(body)).await;
        assert_eq!(resp.status.as_u16(), 201, "{scope}: {}", resp.text);
        assert_token(&resp.body["accessToken"], 1440);
    }
    let all = json!({"createTokenWithScopes": ["chat", "voip"]});
    server.admin().create_identity(Some(all)).await.expect(201);
}

#[tokio::test]
async fn issue_token_answers_200_with_token() {
    let server = TestServer::start().await;
    let id = server.admin().new_identity().await;
    let resp = server
        .admin()
        .issue_token(&id, json!({"scopes": ["chat"]}))
        .await
        .expect(200);
    assert_token(&resp.body, 1440);
    let resp = server
        .admin()
        .issue_token(
            &id,
            json!({"scopes": ["chat", "voip"], "expiresInMinutes": 60}),
        )
        .await
        .expect(200);
    assert_token(&resp.body, 60);
}

#[tokio::test]
async fn issued_token_chats_as_the_identity() {
    let server = TestServer::start().await;
    let id = server.admin().new_identity().await;
    let token = server.admin().token(&id, &["chat"]).await;
    let user = server.user_from(id.clone(), token);
    let resp = user
        .create_thread_with(json!({"topic": "mine"}))
        .await
        .expect(201);
    assert_user_identifier(
        &resp.body["chatThread"]["createdByCommunicationIdentifier"],
        &id,
    );
}

#[tokio::test]
async fn issue_token_out_of_range_is_400() {
    let server = TestServer::start().await;
    let id = server.admin().new_identity().await;
    for minutes in [59, 1441, 0, -1] {
        let body = json!({"scopes": ["chat"], "expiresInMinutes": minutes});
        let resp = server.admin().issue_token(&id, body).await;
        assert_eq!(resp.status.as_u16(), 400, "{minutes}: {}", resp.text);
        resp.error(400);
    }
}

#[tokio::test]
async fn issue_token_with_unknown_scope_is_400() {
    let server = TestServer::start().await;
    let id = server.admin().new_identity().await;
    server
        .admin()
        .issue_token(&id, json!({"scopes": ["root"]}))
        .await
        .error(400);
}

#[tokio::test]
async fn issue_token_without_scopes_is_400() {
    let server = TestServer::start().await;
    let id = server.admin().new_identity().await;
    server.admin().issue_token(&id, json!({})).await.error(400);
}

#[tokio::test]
async fn issue_token_for_unknown_identity_is_404() {
    let server = TestServer::start().await;
    let unknown = "8:acs:00000000-0000-0000-0000-000000000000_00000000-0000-0000-0000-000000000000";
    server
        .admin()
        .issue_token(unknown, json!({"scopes": ["chat"]}))
        .await
        .error(404);
}

#[tokio::test]
async fn identity_id_may_arrive_raw_in_the_path() {
    // The SDKs percent-encode the id; a raw `8:acs:...` must name the same identity.
    let server = TestServer::start().await;
    let id = server.admin().new_identity().await;
    let path = with_api(&format!("/identities/{id}/:issueAccessToken"), IDENTITY_API);
    let body = json!({"scopes": ["chat"]});
    server
        .admin()
        .call(Method::POST, &path, Some(&body))
        .await
        .expect(200);
}

#[tokio::test]
async fn revoke_answers_204() {
    let server = TestServer::start().await;
    let id = server.admin().new_identity().await;
    let resp = server.admin().revoke(&id).await.expect(204);
    assert!(resp.text.is_empty(), "{}", resp.text);
}

#[tokio::test]
async fn revoke_for_unknown_identity_is_404() {
    let server = TestServer::start().await;
    let unknown = "8:acs:00000000-0000-0000-0000-000000000000_00000000-0000-0000-0000-000000000001";
    server.admin().revoke(unknown).await.error(404);
}

#[tokio::test]
async fn revoked_token_is_401_on_chat() {
    let server = TestServer::start().await;
    let user = server.user().await;
    user.get("/chat/threads").await.expect(200);
    server.admin().revoke(&user.id).await.expect(204);
    user.get("/chat/threads").await.error(401);
}

#[tokio::test]
async fn revoke_invalidates_every_earlier_token() {
    let server = TestServer::start().await;
    let user = server.user().await;
    let second = server.admin().token(&user.id, &["chat"]).await;
    server.admin().revoke(&user.id).await.expect(204);
    user.get("/chat/threads").await.error(401);
    server
        .user_from(user.id.clone(), second)
        .get("/chat/threads")
        .await
        .error(401);
}

#[tokio::test]
async fn token_issued_after_revoke_works() {
    let server = TestServer::start().await;
    let user = server.user().await;
    let thread = user.create_thread("before", &[]).await;
    server.admin().revoke(&user.id).await.expect(204);
    let fresh = server.user_from(
        user.id.clone(),
        server.admin().token(&user.id, &["chat"]).await,
    );
    fresh.get("/chat/threads").await.expect(200);
    fresh.get_thread(&thread).await.expect(200);
    user.get("/chat/threads").await.error(401);
}

#[tokio::test]
async fn delete_identity_answers_204() {
    let server = TestServer::start().await;
    let id = server.admin().new_identity().await;
    let resp = server.admin().delete(&id).await.expect(204);
    assert!(resp.text.is_empty(), "{}", resp.text);
}

#[tokio::test]
async fn deleted_identity_tokens_are_401() {
    let server = TestServer::start().await;
    let user = server.user().await;
    user.get("/chat/threads").await.expect(200);
    server.admin().delete(&user.id).await.expect(204);
    user.get("/chat/threads").await.error(401);
}

#[tokio::test]
async fn deleted_identity_gets_no_new_token() {
    let server = TestServer::start().await;
    let id = server.admin().new_identity().await;
    server.admin().delete(&id).await.expect(204);
    server
        .admin()
        .issue_token(&id, json!({"scopes": ["chat"]}))
        .await
        .error(404);
}

#[tokio::test]
async fn delete_unknown_identity_is_404() {
    let server = TestServer::start().await;
    let id = server.admin().new_identity().await;
    server.admin().delete(&id).await.expect(204);
    server.admin().delete(&id).await.error(404);
}

#[tokio::test]
async fn voip_only_token_cannot_create_a_thread() {
    let server = TestServer::start().await;
    let voip = server.user_with_scopes(&["voip"]).await;
    voip.create_thread_with(json!({"topic": "nope"}))
        .await
        .error(403);
    voip.get("/chat/threads").await.error(403);
}

#[tokio::test]
async fn chat_and_voip_token_can_chat() {
    let server = TestServer::start().await;
    let user = server.user_with_scopes(&["chat", "voip"]).await;
    let thread = user.create_thread("both", &[]).await;
    user.send(&thread, "hello").await;
}

#[tokio::test]
async fn identity_api_version_missing_is_400() {
    let server = TestServer::start().await;
    server
        .admin()
        .call(Method::POST, "/identities", None)
        .await
        .error(400);
}

#[tokio::test]
async fn identity_newer_api_version_is_served() {
    let server = TestServer::start().await;
    let path = with_api("/identities", "2099-01-01");
    let body = json!({"createTokenWithScopes": ["chat"]});
    server
        .admin()
        .call(Method::POST, &path, Some(&body))
        .await
        .expect(201);
}

#[tokio::test]
async fn identity_malformed_json_is_400() {
    let server = TestServer::start().await;
    let path = with_api("/identities", IDENTITY_API);
    let resp = server
        .admin()
        .call_bytes(Method::POST, &path, b"{not json".to_vec())
        .await;
    resp.error(400);
}

// --- the token format (NOTES.md: the Python SDK decodes the payload with plain base64) ----------

#[tokio::test]
async fn token_is_a_jwt_whose_payload_decodes_with_plain_base64() {
    let server = TestServer::start().await;
    for _ in 0..25 {
        let body = json!({"createTokenWithScopes": ["chat"], "expiresInMinutes": 60});
        let resp = server.admin().create_identity(Some(body)).await.expect(201);
        let token = resp.body["accessToken"]["token"].as_str().expect("token");
        let segments: Vec<&str> = token.split('.').collect();
        assert_eq!(segments.len(), 3, "{token}");
        let payload = segments[1];
        assert!(
            !payload.contains(['-', '_']),
            "payload not plain base64: {payload}"
        );
        let padded = format!("{payload}{}", "=".repeat((4 - payload.len() % 4) % 4));
        let json = STANDARD
            .decode(padded)
            .expect("payload decodes with standard base64");
        let claims: Value = serde_json::from_slice(&json).expect("payload is JSON");
        let exp = claims["exp"].as_i64().expect("exp claim");
        let expires_on = parse_time(&resp.body["accessToken"]["expiresOn"]);
        assert!(
            (exp - expires_on.unix_timestamp()).abs() <= 1,
            "exp {exp} vs {expires_on}"
        );
    }
}

#[tokio::test]
async fn issued_tokens_are_jwts_too() {
    let server = TestServer::start().await;
    let id = server.admin().new_identity().await;
    for _ in 0..10 {
        let token = server.admin().token(&id, &["chat", "voip"]).await;
        let segments: Vec<&str> = token.split('.').collect();
        assert_eq!(segments.len(), 3, "{token}");
        assert!(!segments[1].contains(['-', '_']), "{token}");
    }
}

#[tokio::test]
async fn issue_token_with_empty_scope_list_is_400() {
    let server = TestServer::start().await;
    let id = server.admin().new_identity().await;
    server
        .admin()
        .issue_token(&id, json!({"scopes": []}))
        .await
        .error(400);
}
