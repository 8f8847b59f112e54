//! One model under both faces: a group made here is a thread on the ACS face, a Kaizala access
//! token is an ACS bearer token, and the other way round.

use reqwest::Method;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn a_kaizala_group_is_an_acs_thread() {
    let server = TestServer::start().await;
    let alice = server.user(&number(1)).await;
    let bob = server.user(&number(2)).await;
    let id = alice.group(&[&number(2)]).await;
    alice.send(&id, "from Kaizala").await.expect(200);

    // Bob's Kaizala access token is his ACS bearer token: he reads the thread there.
    let acs_bob = Acs::with_token(&server.base, &bob.http, &bob.identity(), &bob.token);
    let thread = thread_of(&id);
    let props = acs_bob
        .call(
            Method::GET,
            &format!("/chat/threads/{}", enc(&thread)),
            None,
        )
        .await
        .expect(200);
    assert_eq!(props.body["id"], thread.as_str());
    assert_eq!(props.body["topic"], "Test group");
    assert_eq!(
        props.body["createdByCommunicationIdentifier"]["rawId"],
        alice.identity()
    );
    let participants = acs_bob
        .call(
            Method::GET,
            &format!("/chat/threads/{}/participants", enc(&thread)),
            None,
        )
        .await
        .expect(200);
    let mut raw: Vec<String> = participants.body["value"]
        .as_array()
        .expect("value")
        .iter()
        .map(|p| {
            p["communicationIdentifier"]["rawId"]
                .as_str()
                .expect("raw")
                .to_owned()
        })
        .collect();
    raw.sort();
    assert_eq!(raw, [alice.identity(), bob.identity()]);

    // A message sent on the ACS face is one message of the group.
    acs_bob
        .call(
            Method::POST,
            &format!("/chat/threads/{}/messages", enc(&thread)),
            Some(json!({"content": "from ACS"})),
        )
        .await
        .expect(201);
    assert_eq!(acs_bob.texts(&thread).await, ["from Kaizala", "from ACS"]);
    // The thread is in Bob's ACS thread list.
    let threads = acs_bob
        .call(Method::GET, "/chat/threads", None)
        .await
        .expect(200);
    assert!(threads.body["value"]
        .as_array()
        .expect("value")
        .iter()
        .any(|t| t["id"] == thread.as_str()));
}

#[tokio::test]
async fn an_acs_thread_is_a_kaizala_group() {
    let server = TestServer::start().await;
    // An ACS user makes a thread with a phone number in it.
    let acs = server.acs_user().await;
    let created = acs
        .call(
            Method::POST,
            "/chat/threads",
            Some(json!({
                "topic": "From ACS",
                "participants": [{"communicationIdentifier":
                    {"rawId": format!("4:{}", number(1)), "phoneNumber": {"value": number(1)}}}]
            })),
        )
        .await
        .expect(201);
    let thread = created.body["chatThread"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    acs.call(
        Method::POST,
        &format!("/chat/threads/{}/messages", enc(&thread)),
        Some(json!({"content": "hello phone"})),
    )
    .await
    .expect(201);

    // The phone number logs in on the Kaizala face and finds the thread among its groups.
    let phone = server.user(&number(1)).await;
    let groups = phone.get("/groups?showDetail=true").await.expect(200);
    let groups = groups.body["groups"].as_array().expect("groups");
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0]["groupName"], "From ACS");
    assert_eq!(groups[0]["groupType"], "Group");
    assert_eq!(groups[0]["callerRole"], "Member");
    let id = groups[0]["groupId"].as_str().expect("id").to_owned();
    assert_eq!(thread_of(&id), thread);
    // The ACS thread id works as a group id too.
    phone
        .get(&format!("/groups/{}", enc(&thread)))
        .await
        .expect(200);
    let members = phone.members(&id).await;
    let creator = members
        .iter()
        .find(|m| m.3 == acs.id)
        .expect("the ACS user");
    assert_eq!(creator.1, "Admin");
    assert_eq!(creator.0, "", "no mobile number for an ACS user");

    phone.send(&id, "hello ACS").await.expect(200);
    assert_eq!(acs.texts(&thread).await, ["hello phone", "hello ACS"]);
}

#[tokio::test]
async fn an_acs_token_of_a_phone_identity_works_on_the_kaizala_face() {
    let server = TestServer::start().await;
    let alice = server.user(&number(1)).await;
    let id = alice.group(&[]).await;
    // After its first login the phone number is an identity of the Identity API.
    let token = server.acs_token_for(&alice.identity()).await;
    let via_acs_token = Kz {
        token,
        ..alice.clone()
    };
    via_acs_token
        .get(&format!("/groups/{id}"))
        .await
        .expect(200);
    via_acs_token
        .send(&id, "with an Identity API token")
        .await
        .expect(200);
    assert_eq!(
        alice.members(&id).await.len(),
        1,
        "the same identity, not a second member"
    );
    // Revoking through the Identity API ends the Kaizala access tokens too.
    server
        .admin
        .send(
            Method::POST,
            &format!(
                "/identities/{}/:revokeAccessTokens?api-version={IDENTITY_API}",
                enc(&alice.identity())
            ),
            None,
        )
        .await
        .expect("revoke");
    alice.get("/groups").await.error(401);
    via_acs_token.get("/groups").await.error(401);
}

/// A member removed on one face is refused on the other as soon as the removal has answered,
/// though that face had just let them send.
#[tokio::test]
async fn a_member_removed_on_one_face_is_refused_on_the_other_at_once() {
    let server = TestServer::start().await;
    let alice = server.user(&number(1)).await;
    let bob = server.user(&number(2)).await;
    let carol = server.user(&number(3)).await;
    let id = alice.group(&[&number(2), &number(3)]).await;
    let messages = format!("/chat/threads/{}/messages", enc(&thread_of(&id)));

    // Removed on the Kaizala face, refused on the ACS face.
    let acs_bob = Acs::with_token(&server.base, &bob.http, &bob.identity(), &bob.token);
    acs_bob
        .call(Method::POST, &messages, Some(json!({"content": "in"})))
        .await
        .expect(201);
    alice
        .delete(&format!("/groups/{id}/members/{}", enc(&number(2))))
        .await
        .expect(200);
    acs_bob
        .call(Method::POST, &messages, Some(json!({"content": "out"})))
        .await
        .expect(403);

    // Removed on the ACS face, refused on the Kaizala face.
    carol.send(&id, "in").await.expect(200);
    let acs_alice = Acs::with_token(&server.base, &alice.http, &alice.identity(), &alice.token);
    acs_alice
        .call(
            Method::POST,
            &format!(
                "/chat/threads/{}/participants/:remove",
                enc(&thread_of(&id))
            ),
            Some(json!({"rawId": carol.identity(), "phoneNumber": {"value": number(3)}})),
        )
        .await
        .expect(204);
    carol.send(&id, "out").await.error(403);
}
