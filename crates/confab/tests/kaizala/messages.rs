//! Messages: send (≤ 4000 characters), replies, and who may send.

use serde_json::json;

use crate::local::raw_exchange;
use crate::support::*;

#[tokio::test]
async fn send_messages_and_replies() {
    let server = TestServer::start().await;
    let alice = server.user(&number(1)).await;
    let bob = server.user(&number(2)).await;
    let id = alice.group(&[&number(2)]).await;

    let sent = alice
        .send(&id, "Hello All! Welcome to Kaizala.")
        .await
        .expect(200);
    let reference = sent.body["referenceId"]
        .as_str()
        .expect("referenceId")
        .to_owned();
    assert!(uuid::Uuid::parse_str(&reference).is_ok(), "{reference}");

    let reply = bob
        .post(
            &format!("/groups/{id}/messages"),
            &json!({"message": "Thanks!", "replyToReferenceId": reference}),
        )
        .await
        .expect(200);
    assert_ne!(reply.body["referenceId"], reference.as_str());

    // Both are listed on the ACS face, the reply with the message it answers.
    let acs = Acs::with_token(&server.base, &bob.http, &bob.identity(), &bob.token);
    assert_eq!(
        acs.texts(&thread_of(&id)).await,
        ["Hello All! Welcome to Kaizala.", "Thanks!"]
    );
    let listed = acs
        .call(
            reqwest::Method::GET,
            &format!("/chat/threads/{}/messages", enc(&thread_of(&id))),
            None,
        )
        .await
        .expect(200);
    let reply = listed.body["value"]
        .as_array()
        .expect("value")
        .iter()
        .find(|m| m["content"]["message"] == "Thanks!")
        .cloned()
        .expect("reply");
    assert!(reply["metadata"]["replyToMessageId"].is_string(), "{reply}");
    assert_eq!(
        reply["senderCommunicationIdentifier"]["rawId"],
        bob.identity()
    );

    // A reply to something that is not a message of this group.
    let other = alice.group(&[]).await;
    let elsewhere = alice.send(&other, "elsewhere").await.expect(200);
    bob.post(
        &format!("/groups/{id}/messages"),
        &json!({"message": "?", "replyToReferenceId": elsewhere.body["referenceId"]}),
    )
    .await
    .error(400);
    bob.post(
        &format!("/groups/{id}/messages"),
        &json!({"message": "?", "replyToReferenceId": "not a reference"}),
    )
    .await
    .error(400);
}

#[tokio::test]
async fn message_limits_and_permissions() {
    let server = TestServer::start().await;
    let alice = server.user(&number(1)).await;
    let carol = server.user(&number(3)).await;
    let id = alice.group(&[]).await;

    // 4000 characters (not bytes) is the limit.
    alice.send(&id, &"é".repeat(4000)).await.expect(200);
    let err = alice.send(&id, &"a".repeat(4001)).await.error(413);
    assert_eq!(err["errorCode"], "RequestTooLarge");
    alice.send(&id, "").await.error(400);
    alice.send(&id, "   ").await.error(400);
    // A NUL character: text that not every store can keep.
    let err = alice.send(&id, "a\u{0}b").await.error(400);
    assert_eq!(err["errorCategoryKey"], "InvalidParameters", "{err}");
    alice
        .post(
            &format!("/groups/{id}/messages"),
            &json!({"text": "wrong field"}),
        )
        .await
        .error(400);
    alice
        .post(&format!("/groups/{id}/messages"), &json!({"message": 42}))
        .await
        .expect(200);

    carol.send(&id, "let me in").await.error(403);
    alice
        .send(&uuid::Uuid::new_v4().to_string(), "hello?")
        .await
        .error(404);
    alice.send("nonsense", "hello?").await.error(400);

    // Listing a number that is not a subscriber is a clear 400 (see subscribers.rs).
    let public = alice
        .post(
            "/groups",
            &json!({"name": "Public", "groupType": "ConnectGroup"}),
        )
        .await
        .expect(200);
    let public = public.body["groupId"].as_str().expect("id");
    let err = alice
        .post(
            &format!("/groups/{public}/messages"),
            &json!({"Message": "to subscribers", "subscribers": [number(7)],
                    "sendToAllSubscribers": false}),
        )
        .await
        .error(400);
    assert!(err["message"].as_str().expect("m").contains("subscribers"));
    alice
        .post(
            &format!("/groups/{public}/messages"),
            &json!({"Message": "to the group", "sendToAllSubscribers": "false"}),
        )
        .await
        .expect(200);
}

#[tokio::test]
async fn connector_permissions_limit_what_tokens_do() {
    let server = TestServer::start().await;
    let read_only = server.app_with(Some(&["groupinfo.read".to_owned()])).await;
    let alice = server.user(&number(1)).await;
    let id = alice.group(&[&number(2)]).await;
    let bob = server.login(&read_only, &number(2)).await;
    bob.get("/groups").await.expect(200);
    bob.get(&format!("/groups/{id}")).await.expect(200);
    let err = bob.send(&id, "hi").await.error(403);
    assert!(err["message"].as_str().expect("m").contains("textmessage"));
    bob.get(&format!("/groups/{id}/members")).await.error(403);
}

/// A request whose Content-Length is past the route's body limit is answered 413 at once, in
/// the Kaizala error shape, without its body: the client below never sends it (the server's
/// body timeout is left at its 30 s, past `raw_exchange`'s wait). The media upload's limit is
/// its own (the largest upload), and is checked the same way, as is the admin API's.
#[tokio::test]
async fn bodies_declared_past_the_limit_are_413_before_they_are_sent() {
    let server = TestServer::start().await;
    let alice = server.user(&number(1)).await;
    let id = alice.group(&[]).await;
    let host = server.base.trim_start_matches("http://");
    let declared = |path: &str, content_type: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\naccessToken: {}\r\n\
             Content-Type: {content_type}\r\nContent-Length: 5000000000\r\n\r\n{{",
            alice.token
        )
    };
    for request in [
        declared(&format!("/v1/groups/{id}/messages"), "application/json"),
        declared("/v1/media", "multipart/form-data; boundary=b"),
        // The admin API reads its bodies before checking their signature.
        declared("/admin/applications", "application/json"),
    ] {
        let answer = raw_exchange(host, &request).await;
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
        let body: serde_json::Value = serde_json::from_str(body).expect("a JSON body");
        assert_kaizala_error(&body, body.to_string().as_str());
        assert_eq!(body["errorCode"], "RequestTooLarge", "{body}");
    }
    // A body within the limit, declared and sent, is served as before.
    alice.send(&id, "within").await.expect(200);
}
