//! Compatibility with real Kaizala clients: relaxed JSON, case-insensitive names and paths, `@1`
//! group ids; the error statuses of the face (400, 401, 404, 405, 413, 415, 429).

use reqwest::Method;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn relaxed_json_and_case_insensitive_properties() {
    let server = TestServer::start().await;
    let app = server.app().await;
    let number = number(1);

    // The swagger's own sample: an unquoted key.
    let body = format!(
        "{{\"mobileNumber\":\"{number}\", applicationId:\"{}\"}}",
        app.id
    );
    server
        .call(Method::POST, "/v1/generatePin", &[], Some(&body))
        .await
        .expect(200);
    let pin = server.last_pin(&number);
    // Single quotes, mixed case, a trailing comma, a comment.
    let body = format!(
        "{{ MobileNumber: '{number}', APPLICATIONID: '{}', Pin: {pin}, // done\n }}",
        app.id
    );
    let login = server
        .call(
            Method::POST,
            "/v1/loginWithPinAndApplicationId",
            &[],
            Some(&body),
        )
        .await
        .expect(200);
    let refresh = login.body["refreshToken"].as_str().expect("refresh");
    let access = server.access_token(&app, refresh).await.expect(200);
    let token = access.body["accessToken"]
        .as_str()
        .expect("token")
        .to_owned();
    let kz = Kz {
        base: server.base.clone(),
        http: server.http.clone(),
        number: number.clone(),
        token,
        refresh: refresh.to_owned(),
    };

    // The docs' create-group sample, verbatim.
    let created = kz
        .call(
            Method::POST,
            "/groups",
            Some(
                "{\n    name:\"Kaizala Test group\",\n    welcomeMessage:\"Welcome to group created programmatically\",\n    members:[\"+911099999999\"],\n    groupType: \"Group\"\n}",
            ),
        )
        .await
        .expect(200);
    let id = created.body["groupId"].as_str().expect("id").to_owned();
    kz.call(
        Method::POST,
        &format!("/groups/{id}/messages"),
        Some("{'Message': 'It\\'s \"quoted\"'}"),
    )
    .await
    .expect(200);
    let acs = Acs::with_token(&server.base, &kz.http, &kz.identity(), &kz.token);
    assert_eq!(acs.texts(&thread_of(&id)).await, ["It's \"quoted\""]);

    for bad in [
        "{name:",
        "[1, 2]",
        "\"just a string\"",
        "{name: 'x'} trailing",
        "",
    ] {
        let err = kz.call(Method::POST, "/groups", Some(bad)).await.error(400);
        assert_eq!(err["errorCode"], "InvalidParameters", "{bad}");
    }
    kz.call(Method::POST, "/groups", Some(&"[".repeat(100_000)))
        .await
        .error(400);
}

#[tokio::test]
async fn paths_match_case_insensitively_and_group_ids_take_at_1() {
    let server = TestServer::start().await;
    let alice = server.user(&number(1)).await;
    let id = alice.group(&[&number(2)]).await;
    for path in [
        format!("/groups/{id}@1"),
        format!("/Groups/{id}"),
        format!("/GROUPS/{}", id.to_uppercase()),
        format!("/groups/{id}/"),
    ] {
        let resp = alice.get(&path).await.expect(200);
        assert_eq!(resp.body["groupId"], id.as_str(), "{path}");
    }
    alice
        .get(&format!("/groups/{id}@1/Members"))
        .await
        .expect(200);
    alice
        .post(
            &format!("/Groups/{id}@1/Messages"),
            &json!({"message": "hi"}),
        )
        .await
        .expect(200);
    // `/V1` and mixed-case operation names too.
    let resp = server
        .call(
            Method::GET,
            "/V1/GROUPS",
            &[("ACCESSTOKEN", &alice.token)],
            None,
        )
        .await
        .expect(200);
    assert_eq!(resp.body["groups"].as_array().expect("groups").len(), 1);
    // An ACS-style bearer header works as well as `accessToken`.
    let resp = server
        .http
        .get(format!("{}/v1/groups", server.base))
        .bearer_auth(&alice.token)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn error_statuses_have_the_kaizala_shape() {
    let server = TestServer::start().await;
    let alice = server.user(&number(1)).await;
    let id = alice.group(&[]).await;

    for path in ["/nowhere", "/", "/groups/x/nowhere/deeper"] {
        let err = alice.get(path).await.error(404);
        assert_eq!(err["errorCategoryKey"], "NotFound", "{path}");
    }
    let err = alice.delete("/groups").await.error(405);
    assert_eq!(err["errorCode"], "MethodNotAllowed");

    // 415: a body that says it is not JSON.
    let resp = alice
        .http
        .post(format!("{}/v1/groups", server.base))
        .header("accessToken", &alice.token)
        .header("content-type", "text/xml")
        .body("<group/>")
        .send()
        .await
        .expect("send");
    let resp = Resp::read(resp).await.error(415);
    assert_eq!(resp["errorCode"], "UnsupportedMediaType");
    // No Content-Type at all is accepted.
    let resp = alice
        .http
        .post(format!("{}/v1/groups", server.base))
        .header("accessToken", &alice.token)
        .body("{name: 'no content type'}")
        .send()
        .await
        .expect("send");
    Resp::read(resp).await.expect(200);

    // 413: a body past the limit.
    let huge = format!("{{\"message\": \"{}\"}}", "a".repeat(2 * 1024 * 1024));
    alice
        .call(Method::POST, &format!("/groups/{id}/messages"), Some(&huge))
        .await
        .error(413);

    // 401 comes before anything else.
    let resp = server
        .call(Method::POST, "/v1/groups", &[], Some("{not json"))
        .await
        .error(401);
    assert_eq!(resp["errorCode"], "InvalidToken");
}

#[tokio::test]
async fn kaizala_cloud_rate_limits_answer_429_with_retry_after() {
    let server = TestServer::start_with(|s| {
        s.rate_limits = confab_core::ratelimit::Profile::KaizalaCloud;
    })
    .await;
    let app = server.app().await;
    let alice = server.login(&app, &number(1)).await;
    // The login used 3 of the connector's 100 calls per minute.
    let mut limited = None;
    for i in 0..100 {
        let resp = alice.get("/groups").await;
        if resp.status == 429 {
            limited = Some((i, resp));
            break;
        }
        assert_eq!(resp.status, 200, "{}", resp.text);
    }
    let (i, resp) = limited.expect("throttled within 100 calls");
    assert_eq!(i, 97, "100 per minute per connector");
    let retry_after: u64 = resp
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let err = resp.error(429);
    assert_eq!(err["errorCategoryKey"], "Throttled");
    // Another connector still has its own allowance (the tenant allows 300).
    let bob = server.user(&number(2)).await;
    bob.get("/groups").await.expect(200);
    // Logins of the throttled connector are throttled too.
    server.generate_pin(&app, &number(3)).await.error(429);
}
