//! Messages: send (≤ 4000 characters), replies, and who may send.

use serde_json::json;

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
