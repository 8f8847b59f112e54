//! Connector applications (admin API), PINs, refresh tokens and access tokens.

use reqwest::Method;
use serde_json::json;
use time::Duration;

use crate::support::*;

#[tokio::test]
async fn admin_api_registers_lists_and_deletes_applications() {
    let server = TestServer::start().await;
    let scopes = vec!["groupinfo".to_owned(), "textmessage.write".to_owned()];
    let created = server
        .admin
        .create_application("Orders bot", Some(&scopes))
        .await
        .expect("create");
    let id = created["applicationId"].as_str().expect("id").to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{created}");
    assert!(created["applicationSecret"].as_str().expect("secret").len() >= 32);
    assert_eq!(
        created["scopes"],
        json!([
            "groupinfo.read",
            "groupinfo.write",
            "groupinfo.remove",
            "groupinfo.update",
            "textmessage.write"
        ])
    );
    let listed = server.admin.list_applications().await.expect("list");
    let apps = listed["applications"].as_array().expect("applications");
    assert_eq!(apps.len(), 1);
    assert_eq!(apps[0]["applicationId"], id.as_str());
    assert_eq!(apps[0]["name"], "Orders bot");
    assert!(
        apps[0]["applicationSecret"].is_null(),
        "the secret is shown once"
    );

    // Bad input is a 400 in the Kaizala shape.
    let err = server
        .admin
        .create_application("   ", None)
        .await
        .expect_err("blank name");
    assert!(err.to_string().contains("400"), "{err}");
    let err = server
        .admin
        .create_application("x", Some(&["bogus.read".to_owned()]))
        .await
        .expect_err("bad scope");
    assert!(err.to_string().contains("400"), "{err}");

    server.admin.delete_application(&id).await.expect("delete");
    let err = server
        .admin
        .delete_application(&id)
        .await
        .expect_err("gone");
    assert!(err.to_string().contains("404"), "{err}");
    let listed = server.admin.list_applications().await.expect("list");
    assert_eq!(listed["applications"], json!([]));
}

#[tokio::test]
async fn admin_api_requires_an_hmac_signature() {
    let server = TestServer::start().await;
    let unsigned = server
        .call(Method::GET, "/admin/applications", &[], None)
        .await
        .error(401);
    assert_eq!(unsigned["errorCode"], "InvalidToken");
    assert_eq!(unsigned["errorCategoryKey"], "Unauthenticated");
    let other_key = confab::admin_client::AdminClient::new(
        &server.running.endpoint,
        "b3RoZXIga2V5",
        None,
        false,
    )
    .expect("client");
    let err = other_key.list_applications().await.expect_err("wrong key");
    assert!(err.to_string().contains("401"), "{err}");
}

#[tokio::test]
async fn pin_login_and_access_token() {
    let server = TestServer::start().await;
    let app = server.app().await;
    let number = number(1);

    let generated = server.generate_pin(&app, &number).await.expect(200);
    assert_eq!(generated.body, json!({}));
    let pin = server.last_pin(&number);
    assert_eq!(pin.len(), 6);

    let login = server.login_with_pin(&app, &number, &pin).await.expect(200);
    let refresh = login.body["refreshToken"].as_str().expect("refresh");
    assert!(login.body["grantedScope"]
        .as_str()
        .expect("scope")
        .contains("textmessage.write"));
    let expiry = login.body["refreshTokenExpiry"]
        .as_i64()
        .expect("expiry ms");
    let in_a_year = (server_now(&server) + Duration::days(365)).unix_timestamp() * 1000;
    assert!(
        (expiry - in_a_year).abs() < 5_000,
        "{expiry} vs {in_a_year}"
    );

    let access = server.access_token(&app, refresh).await.expect(200);
    let body = &access.body;
    assert_eq!(
        body["endpointUrl"].as_str(),
        Some(server.running.endpoint.trim_end_matches('/'))
    );
    assert!(body["refreshToken"].is_null(), "no rotation early in life");
    let token_expiry = body["accessTokenExpiry"].as_i64().expect("ms");
    let in_a_day = (server_now(&server) + Duration::hours(24)).unix_timestamp() * 1000;
    assert!((token_expiry - in_a_day).abs() < 5_000);
    let token = body["accessToken"].as_str().expect("token");

    // The access token works on every call, through the accessToken header.
    let groups = server
        .call(Method::GET, "/v1/groups", &[("accessToken", token)], None)
        .await
        .expect(200);
    assert_eq!(groups.body["groups"], json!([]));

    // A PIN works once.
    server.login_with_pin(&app, &number, &pin).await.error(401);
    // The number may be written without `+`; the applicationSecret may come along.
    server.generate_pin(&app, "14255550001").await.expect(200);
    let pin = server.last_pin(&number);
    let body = json!({"mobileNumber": number, "applicationId": app.id, "pin": pin,
                      "applicationSecret": "wrong"})
    .to_string();
    server
        .call(
            Method::POST,
            "/v1/loginWithPinAndApplicationId",
            &[],
            Some(&body),
        )
        .await
        .error(401);
    let body = json!({"mobileNumber": number, "applicationId": app.id, "pin": pin,
                      "applicationSecret": app.secret})
    .to_string();
    server
        .call(
            Method::POST,
            "/v1/loginWithPinAndApplicationId",
            &[],
            Some(&body),
        )
        .await
        .expect(200);
}

fn server_now(server: &TestServer) -> time::OffsetDateTime {
    use confab_core::ports::Clock;
    server.clock.now()
}

#[tokio::test]
async fn generate_pin_errors() {
    let server = TestServer::start().await;
    let app = server.app().await;
    let unknown = App {
        id: uuid::Uuid::new_v4().to_string(),
        secret: "x".into(),
    };
    let err = server.generate_pin(&unknown, &number(1)).await.error(401);
    assert!(err["message"]
        .as_str()
        .expect("message")
        .contains("application"));
    let err = server.generate_pin(&app, "not a number").await.error(400);
    assert_eq!(err["errorCode"], "InvalidParameters");
    assert!(err["message"].as_str().expect("m").contains("mobileNumber"));
    let body = json!({"applicationId": app.id}).to_string();
    let err = server
        .call(Method::POST, "/v1/generatePin", &[], Some(&body))
        .await
        .error(400);
    assert!(err["message"].as_str().expect("m").contains("mobileNumber"));
    // An ACS raw id is not a mobile number.
    server.generate_pin(&app, "8:acs:res_1").await.error(400);
}

#[tokio::test]
async fn pins_expire_and_allow_few_attempts() {
    let server = TestServer::start_with(|s| {
        s.pin_lifetime_secs = 60;
        s.pin_max_attempts = 3;
    })
    .await;
    let app = server.app().await;
    let number = number(2);

    // Expiry.
    server.generate_pin(&app, &number).await.expect(200);
    let pin = server.last_pin(&number);
    server.clock.advance(Duration::seconds(61));
    let err = server.login_with_pin(&app, &number, &pin).await.error(401);
    assert!(
        err["message"].as_str().expect("m").contains("expired"),
        "{err}"
    );

    // Attempts: two wrong ones are counted, the third uses the PIN up.
    server.generate_pin(&app, &number).await.expect(200);
    let pin = server.last_pin(&number);
    let wrong = if pin == "111111" { "222222" } else { "111111" };
    let err = server.login_with_pin(&app, &number, wrong).await.error(401);
    assert!(
        err["message"].as_str().expect("m").contains("2 attempts"),
        "{err}"
    );
    server.login_with_pin(&app, &number, wrong).await.error(401);
    let err = server.login_with_pin(&app, &number, wrong).await.error(401);
    assert!(
        err["message"].as_str().expect("m").contains("no attempts"),
        "{err}"
    );
    server.login_with_pin(&app, &number, &pin).await.error(401);

    // A new PIN replaces the old; a non-numeric PIN is a 400 and counts for nothing.
    server.generate_pin(&app, &number).await.expect(200);
    let old = server.last_pin(&number);
    server.generate_pin(&app, &number).await.expect(200);
    let new = server.last_pin(&number);
    if old != new {
        server.login_with_pin(&app, &number, &old).await.error(401);
    }
    server
        .login_with_pin(&app, &number, "\"12ab\"")
        .await
        .error(400);
    server.login_with_pin(&app, &number, &new).await.expect(200);

    // A PIN of one application does not log in to another.
    let other = server.app().await;
    server.generate_pin(&app, &number).await.expect(200);
    let pin = server.last_pin(&number);
    server
        .login_with_pin(&other, &number, &pin)
        .await
        .error(401);
}

#[tokio::test]
async fn access_token_errors() {
    let server = TestServer::start().await;
    let app = server.app().await;
    let user = server.login(&app, &number(3)).await;

    let err = server
        .call(
            Method::GET,
            "/v1/accessToken",
            &[("applicationId", &app.id)],
            None,
        )
        .await
        .error(401);
    assert!(err["message"]
        .as_str()
        .expect("m")
        .contains("applicationSecret"));
    let wrong_secret = App {
        id: app.id.clone(),
        secret: "wrong".into(),
    };
    server
        .access_token(&wrong_secret, &user.refresh)
        .await
        .error(401);
    server
        .access_token(&app, "not-a-refresh-token")
        .await
        .error(401);
    // A refresh token of one application is no good with another.
    let other = server.app().await;
    server.access_token(&other, &user.refresh).await.error(401);

    // Bad and expired access tokens.
    let bad = server
        .call(
            Method::GET,
            "/v1/groups",
            &[("accessToken", "garbage")],
            None,
        )
        .await
        .error(401);
    assert_eq!(bad["errorCategoryKey"], "Unauthenticated");
    server
        .call(Method::GET, "/v1/groups", &[], None)
        .await
        .error(401);
    server
        .clock
        .advance(Duration::hours(24) + Duration::seconds(1));
    let expired = user.get("/groups").await.error(401);
    assert!(expired["message"].as_str().expect("m").contains("expired"));
    // A new access token from the same refresh token works again.
    let access = server.access_token(&app, &user.refresh).await.expect(200);
    let token = access.body["accessToken"].as_str().expect("token");
    server
        .call(Method::GET, "/v1/groups", &[("accessToken", token)], None)
        .await
        .expect(200);
}

#[tokio::test]
async fn refresh_tokens_rotate_near_the_end_of_their_life() {
    let server = TestServer::start().await;
    let app = server.app().await;
    let user = server.login(&app, &number(4)).await;

    // Until 90 % of 365 days, no successor.
    server.clock.advance(Duration::days(328));
    let access = server.access_token(&app, &user.refresh).await.expect(200);
    assert!(access.body["refreshToken"].is_null());
    // After it, a successor with a full life; the old one works until it expires.
    server.clock.advance(Duration::days(1));
    let access = server.access_token(&app, &user.refresh).await.expect(200);
    let successor = access.body["refreshToken"]
        .as_str()
        .expect("successor")
        .to_owned();
    assert_ne!(successor, user.refresh);
    server
        .clock
        .advance(Duration::days(36) + Duration::seconds(1));
    let err = server.access_token(&app, &user.refresh).await.error(401);
    assert!(err["message"].as_str().expect("m").contains("expired"));
    let access = server.access_token(&app, &successor).await.expect(200);
    assert!(
        access.body["refreshToken"].is_null(),
        "the successor is young"
    );
}

#[tokio::test]
async fn a_new_login_or_a_deleted_application_ends_old_tokens() {
    let server = TestServer::start().await;
    let app = server.app().await;
    let first = server.login(&app, &number(5)).await;
    let second = server.login(&app, &number(5)).await;
    server.access_token(&app, &first.refresh).await.error(401);
    server.access_token(&app, &second.refresh).await.expect(200);
    // Both access tokens are still valid (they are bearer tokens until they expire) ...
    first.get("/groups").await.expect(200);
    // ... until the application is deleted: then its tokens stop working at once.
    server
        .admin
        .delete_application(&app.id)
        .await
        .expect("delete");
    let err = second.get("/groups").await.error(401);
    assert!(err["message"].as_str().expect("m").contains("application"));
    server.access_token(&app, &second.refresh).await.error(401);
    server.generate_pin(&app, &number(5)).await.error(401);
}

#[tokio::test]
async fn http_pin_sender_posts_to_the_sms_gateway() {
    // A one-shot gateway that records what it receives.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/sms", listener.local_addr().expect("addr"));
    let (tx, rx) = tokio::sync::oneshot::channel::<String>();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut socket, _) = listener.accept().await.expect("accept");
        let mut received = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = socket.read(&mut buf).await.expect("read");
            received.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&received).to_string();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if body.len() >= length {
                    let _ = socket
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                        .await;
                    let _ = tx.send(body.to_owned());
                    return;
                }
            }
            if n == 0 {
                return;
            }
        }
    });
    let server = TestServer::start_with(|s| {
        s.pin_sender = confab::pins::PinSenderKind::Http;
        s.pin_sms_url = Some(url);
    })
    .await;
    let app = server.app().await;
    server.generate_pin(&app, &number(6)).await.expect(200);
    let body: serde_json::Value =
        serde_json::from_str(&rx.await.expect("gateway got a request")).expect("json");
    assert_eq!(body["mobileNumber"], number(6).as_str());
    assert_eq!(body["applicationId"], app.id.as_str());
    let pin = body["pin"].as_str().expect("pin");
    server
        .login_with_pin(&app, &number(6), pin)
        .await
        .expect(200);
    // A gateway that is gone: the PIN cannot be delivered, a server-side failure.
    server.generate_pin(&app, &number(7)).await.error(503);
}
