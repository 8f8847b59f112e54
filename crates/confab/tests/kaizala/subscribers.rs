//! Public groups: subscribers added, fetched (cursor pages of at most 50) and removed; only
//! admins post; a message to all or to listed subscribers reaches only them, on the Kaizala
//! face and on the ACS face (a subscriber's access token is its ACS bearer token).

use std::collections::HashSet;

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::*;

/// Every subscriber's mobile number, page by page (`count` per page); answers the pages' sizes.
async fn fetch_all(admin: &Kz, group: &str, count: Value) -> (Vec<String>, Vec<usize>) {
    let mut numbers = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut body = json!({ "count": count });
        if let Some(cursor) = &cursor {
            body["cursor"] = json!(cursor);
        }
        let page = admin
            .post(&format!("/groups/{group}/subscribers"), &body)
            .await
            .expect(200);
        let list = page.body["subscribers"].as_array().expect("subscribers");
        sizes.push(list.len());
        for s in list {
            numbers.push(s["mobileNumber"].as_str().expect("number").to_owned());
            assert!(uuid::Uuid::parse_str(s["id"].as_str().expect("id")).is_ok());
            assert!(s["isProvisioned"].is_boolean());
        }
        match page.body["cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return (numbers, sizes),
        }
        assert!(sizes.len() < 100, "paging does not end");
    }
}

#[tokio::test]
async fn add_fetch_and_remove_subscribers() {
    let server = TestServer::start().await;
    let alice = server.user(&number(1)).await;
    let bob = server.user(&number(2)).await;
    let id = public_group(&alice, &[&number(2)]).await;
    // A subscriber who logged in is provisioned; the others are not.
    let sam = server.user(&number(10)).await;

    // The docs' relaxed body; each number answered on its own.
    let added = alice
        .call(
            Method::PUT,
            &format!("/groups/{id}/subscribers/add"),
            Some(&format!(
                "{{subscribers : ['{}', '{}', 'garbage', '{}']}}",
                number(10),
                number(11),
                number(2)
            )),
        )
        .await
        .expect(200);
    let result = &added.body["result"];
    assert_eq!(result[number(10)], json!({"isAdded": true}));
    assert_eq!(result[number(11)], json!({"isAdded": true}));
    assert_eq!(result["garbage"]["isAdded"], false);
    assert!(result["garbage"]["reason"].is_string());
    // Bob is a member: members are not subscribers.
    assert_eq!(result[number(2)]["isAdded"], false);
    // Adding again is fine.
    let again = add_subscribers(&alice, &id, &[number(10)]).await;
    assert_eq!(again["result"][number(10)]["isAdded"], true);

    // Fetch: a POST; an empty body means the defaults.
    let fetched = alice
        .call(Method::POST, &format!("/groups/{id}/subscribers"), None)
        .await
        .expect(200);
    let list = fetched.body["subscribers"]
        .as_array()
        .expect("list")
        .clone();
    assert_eq!(list.len(), 2);
    assert!(fetched.body.get("cursor").is_none());
    let sam_entry = list
        .iter()
        .find(|s| s["mobileNumber"] == number(10).as_str())
        .expect("sam");
    assert_eq!(sam_entry["isProvisioned"], true);
    assert_eq!(sam_entry["name"], "");
    assert_eq!(sam_entry["profilePic"], "");
    // Members (not only admins) fetch too.
    bob.post(&format!("/groups/{id}/subscribers"), &json!({}))
        .await
        .expect(200);

    // Subscribers are not members: not in the member list, not counted.
    let members = alice.members(&id).await;
    assert_eq!(members.len(), 2);
    let details = alice.get(&format!("/groups/{id}")).await.expect(200);
    assert_eq!(details.body["userCount"], 2);
    // The subscriber sees the group, as a subscriber.
    let seen = sam.get(&format!("/groups/{id}")).await.expect(200);
    assert_eq!(seen.body["callerRole"], "Subscriber");

    // Remove: each number answered.
    let removed = alice
        .put(
            &format!("/groups/{id}/subscribers/remove"),
            &json!({"subscribers": [number(11), number(12), "garbage"]}),
        )
        .await
        .expect(200);
    assert_eq!(
        removed.body["result"][number(11)],
        json!({"isRemoved": true})
    );
    assert_eq!(removed.body["result"][number(12)]["isRemoved"], false);
    assert_eq!(removed.body["result"]["garbage"]["isRemoved"], false);
    let (left, _) = fetch_all(&alice, &id, json!(50)).await;
    assert_eq!(left, [number(10)]);
    // A subscriber may remove itself, and only itself.
    sam.put(
        &format!("/groups/{id}/subscribers/remove"),
        &json!({"subscribers": [number(10), number(2)]}),
    )
    .await
    .error(403);
    sam.put(
        &format!("/groups/{id}/subscribers/remove"),
        &json!({"subscribers": [number(10)]}),
    )
    .await
    .expect(200);
    sam.get(&format!("/groups/{id}")).await.error(403);
}

#[tokio::test]
async fn fetch_pages_of_at_most_fifty() {
    let server = TestServer::start().await;
    let alice = server.user(&number(1)).await;
    let id = public_group(&alice, &[]).await;
    let numbers: Vec<String> = (100..220).map(number).collect();
    for chunk in numbers.chunks(60) {
        let added = add_subscribers(&alice, &id, chunk).await;
        assert_eq!(added["result"].as_object().expect("result").len(), 60);
    }

    // count 50: three pages, every subscriber once.
    let (seen, sizes) = fetch_all(&alice, &id, json!(50)).await;
    assert_eq!(sizes, [50, 50, 20]);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 120);
    assert_eq!(
        seen.iter().collect::<HashSet<_>>(),
        numbers.iter().collect::<HashSet<_>>()
    );
    // No count: 50. A larger count is capped at 50; a count as a string works.
    let (_, sizes) = fetch_all(&alice, &id, Value::Null).await;
    assert_eq!(sizes, [50, 50, 20]);
    let (_, sizes) = fetch_all(&alice, &id, json!(500)).await;
    assert_eq!(sizes, [50, 50, 20]);
    let (seen, sizes) = fetch_all(&alice, &id, json!("45")).await;
    assert_eq!(sizes, [45, 45, 30]);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 120);

    // Bad counts and cursors are 400.
    for body in [
        json!({"count": 0}),
        json!({"count": -3}),
        json!({"count": "many"}),
        json!({"cursor": "not a cursor"}),
        json!({"cursor": "s00zz"}),
    ] {
        alice
            .post(&format!("/groups/{id}/subscribers"), &body)
            .await
            .error(400);
    }
}

#[tokio::test]
async fn subscriber_management_errors() {
    let server = TestServer::start().await;
    let alice = server.user(&number(1)).await;
    let bob = server.user(&number(2)).await;
    let carol = server.user(&number(3)).await;
    let public = public_group(&alice, &[&number(2)]).await;
    let plain = alice.group(&[&number(2)]).await;
    let path = |group: &str, what: &str| format!("/groups/{group}/subscribers{what}");

    // Only admins add and remove; non-members are refused; unknown groups are 404.
    bob.put(&path(&public, "/add"), &json!({"subscribers": [number(9)]}))
        .await
        .error(403);
    bob.put(
        &path(&public, "/remove"),
        &json!({"subscribers": [number(9)]}),
    )
    .await
    .error(403);
    carol
        .put(&path(&public, "/add"), &json!({"subscribers": [number(9)]}))
        .await
        .error(403);
    carol.post(&path(&public, ""), &json!({})).await.error(403);
    let unknown = uuid::Uuid::new_v4().to_string();
    alice
        .put(
            &path(&unknown, "/add"),
            &json!({"subscribers": [number(9)]}),
        )
        .await
        .error(404);
    alice.post(&path(&unknown, ""), &json!({})).await.error(404);
    alice
        .put(
            &path("nonsense", "/add"),
            &json!({"subscribers": [number(9)]}),
        )
        .await
        .error(400);

    // Only public groups have subscribers.
    alice
        .put(&path(&plain, "/add"), &json!({"subscribers": [number(9)]}))
        .await
        .error(400);
    alice.post(&path(&plain, ""), &json!({})).await.error(400);

    // Bodies: a list of at least one valid number, at most 100.
    for body in [
        json!({}),
        json!({"subscribers": []}),
        json!({"subscribers": ["garbage"]}),
        json!({"subscribers": "+14255550009"}),
        json!({ "subscribers": (0..101).map(|n| number(1000 + n)).collect::<Vec<_>>() }),
    ] {
        alice.put(&path(&public, "/add"), &body).await.error(400);
    }
    // GET is not how subscribers are fetched.
    alice.get(&path(&public, "")).await.error(405);
}

#[tokio::test]
async fn messages_reach_only_their_subscribers_on_both_faces() {
    let server = TestServer::start().await;
    let alice = server.user(&number(1)).await;
    let bob = server.user(&number(2)).await;
    let s1 = server.user(&number(21)).await;
    let s2 = server.user(&number(22)).await;
    let s3 = server.user(&number(23)).await;
    let id = public_group(&alice, &[&number(2)]).await;
    add_subscribers(&alice, &id, &[number(21), number(22), number(23)]).await;
    let messages = format!("/groups/{id}/messages");

    // To the group (the members), to every subscriber, to two of them.
    alice.send(&id, "members only").await.expect(200);
    let to_all = alice
        .post(
            &messages,
            &json!({"message": "to every subscriber", "sendToAllSubscribers": true}),
        )
        .await
        .expect(200);
    assert!(to_all.body["referenceId"].is_string());
    let listed = alice
        .post(
            &messages,
            &json!({"Message": "to s1 and s3", "subscribers": [number(21), number(23)],
                    "sendToAllSubscribers": false}),
        )
        .await
        .expect(200);
    let listed_ref = listed.body["referenceId"].as_str().expect("ref").to_owned();
    // A reply keeps its audience rules too.
    alice
        .post(
            &messages,
            &json!({"message": "reply to s1", "subscribers": [number(21)],
                    "replyToReferenceId": listed_ref}),
        )
        .await
        .expect(200);

    // On the ACS face, with each one's Kaizala access token as the bearer token.
    let thread = thread_of(&id);
    let acs = |kz: &Kz| Acs::with_token(&server.base, &kz.http, &kz.identity(), &kz.token);
    assert_eq!(
        acs(&alice).texts(&thread).await,
        [
            "members only",
            "to every subscriber",
            "to s1 and s3",
            "reply to s1"
        ]
    );
    assert_eq!(
        acs(&bob).texts(&thread).await,
        [
            "members only",
            "to every subscriber",
            "to s1 and s3",
            "reply to s1"
        ]
    );
    assert_eq!(
        acs(&s1).texts(&thread).await,
        ["to every subscriber", "to s1 and s3", "reply to s1"]
    );
    assert_eq!(acs(&s2).texts(&thread).await, ["to every subscriber"]);
    assert_eq!(
        acs(&s3).texts(&thread).await,
        ["to every subscriber", "to s1 and s3"]
    );
    // Subscribers see no system messages (member changes are the members' business).
    let listing = acs(&s1)
        .call(
            Method::GET,
            &format!("/chat/threads/{}/messages", enc(&thread)),
            None,
        )
        .await
        .expect(200);
    let all = listing.body["value"].as_array().expect("value");
    assert!(all.iter().all(|m| m["type"] == "text"), "{all:?}");
    // One by one: s2 cannot read a message not sent to it, nor page past its own.
    let hidden = acs(&alice)
        .call(
            Method::GET,
            &format!("/chat/threads/{}/messages", enc(&thread)),
            None,
        )
        .await
        .expect(200);
    let hidden_id = hidden.body["value"]
        .as_array()
        .expect("value")
        .iter()
        .find(|m| m["content"]["message"] == "to s1 and s3")
        .and_then(|m| m["id"].as_str())
        .expect("id")
        .to_owned();
    let one = |kz: &Kz| {
        let client = acs(kz);
        let path = format!("/chat/threads/{}/messages/{hidden_id}", enc(&thread));
        async move { client.call(Method::GET, &path, None).await }
    };
    one(&s2).await.expect(404);
    one(&s3).await.expect(200);
    one(&bob).await.expect(200);
    let paged = acs(&s1)
        .call(
            Method::GET,
            &format!("/chat/threads/{}/messages?maxPageSize=1", enc(&thread)),
            None,
        )
        .await
        .expect(200);
    assert_eq!(paged.body["value"].as_array().expect("value").len(), 1);
    assert!(paged.body["nextLink"].is_string());

    // A subscriber added later reads what went to every subscriber, not what was listed.
    let s4 = server.user(&number(24)).await;
    add_subscribers(&alice, &id, &[number(24)]).await;
    assert_eq!(acs(&s4).texts(&thread).await, ["to every subscriber"]);

    // Subscribers do not post, list members, participants or other subscribers, on either face.
    s1.send(&id, "can I?").await.error(403);
    s1.get(&format!("/groups/{id}/members")).await.error(403);
    s1.post(&format!("/groups/{id}/subscribers"), &json!({}))
        .await
        .error(403);
    s1.get(&format!("/groups/{id}/subGroups")).await.error(403);
    acs(&s1)
        .call(
            Method::POST,
            &format!("/chat/threads/{}/messages", enc(&thread)),
            Some(json!({"content": "via ACS"})),
        )
        .await
        .expect(403);
    acs(&s1)
        .call(
            Method::GET,
            &format!("/chat/threads/{}/participants", enc(&thread)),
            None,
        )
        .await
        .expect(403);
    // The members' participant list on the ACS face has no subscribers either.
    let participants = acs(&bob)
        .call(
            Method::GET,
            &format!("/chat/threads/{}/participants", enc(&thread)),
            None,
        )
        .await
        .expect(200);
    assert_eq!(
        participants.body["value"].as_array().expect("value").len(),
        2
    );

    // In a public group only admins post, to anyone.
    bob.send(&id, "member speaking").await.error(403);
    bob.post(
        &messages,
        &json!({"message": "x", "sendToAllSubscribers": true}),
    )
    .await
    .error(403);
    acs(&bob)
        .call(
            Method::POST,
            &format!("/chat/threads/{}/messages", enc(&thread)),
            Some(json!({"content": "via ACS"})),
        )
        .await
        .expect(403);

    // Bad audiences: a listed number that is not a subscriber, both forms at once, garbage,
    // and subscribers of a group that is not public.
    for body in [
        json!({"message": "x", "subscribers": [number(2)]}),
        json!({"message": "x", "subscribers": [number(99)]}),
        json!({"message": "x", "subscribers": [number(21)], "sendToAllSubscribers": true}),
        json!({"message": "x", "subscribers": ["garbage"]}),
    ] {
        alice.post(&messages, &body).await.error(400);
    }
    let plain = alice.group(&[]).await;
    alice
        .post(
            &format!("/groups/{plain}/messages"),
            &json!({"message": "x", "sendToAllSubscribers": true}),
        )
        .await
        .error(400);
    // Still 4000 characters at most.
    alice
        .post(
            &messages,
            &json!({"message": "a".repeat(4001), "sendToAllSubscribers": true}),
        )
        .await
        .error(413);

    // An unsubscribed subscriber reads nothing any more.
    alice
        .put(
            &format!("/groups/{id}/subscribers/remove"),
            &json!({"subscribers": [number(22)]}),
        )
        .await
        .expect(200);
    acs(&s2)
        .call(
            Method::GET,
            &format!("/chat/threads/{}/messages", enc(&thread)),
            None,
        )
        .await
        .expect(403);
}
