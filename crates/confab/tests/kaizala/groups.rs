//! Groups: create, list, details.

use reqwest::Method;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn create_a_group_and_read_its_details() {
    let server = TestServer::start().await;
    let alice = server.user(&number(1)).await;
    let created = alice
        .post(
            "/groups",
            &json!({"name": "Kaizala Test group",
                    "welcomeMessage": "Welcome to group created programmatically",
                    "members": [number(2), number(3)], "groupType": "Group"}),
        )
        .await
        .expect(200);
    assert_eq!(created.body["groupName"], "Kaizala Test group");
    assert_eq!(created.body["membersAdded"], true);
    let id = created.body["groupId"]
        .as_str()
        .expect("groupId")
        .to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok());

    let details = alice.get(&format!("/groups/{id}")).await.expect(200);
    let group = &details.body;
    assert_eq!(group["groupId"], id.as_str());
    assert_eq!(group["groupName"], "Kaizala Test group");
    assert_eq!(group["groupType"], "Group");
    assert_eq!(
        group["welcomeMessage"],
        "Welcome to group created programmatically"
    );
    assert_eq!(group["callerRole"], "Admin");
    assert_eq!(group["userCount"], 3);
    assert_eq!(group["currentLevelUserCount"], 3);
    // Alice logged in; the two members never did.
    assert_eq!(group["unProvisionedUserCount"], 2);
    assert_eq!(group["hasSubGroups"], false);
    assert_eq!(
        group["groups"][0]["groupId"],
        id.as_str(),
        "the documented shape too"
    );

    // A public group; no groupType means Group; no members means just the creator.
    let public = alice
        .post(
            "/groups",
            &json!({"name": "Public", "welcomeMessage": "Hi", "groupType": "ConnectGroup"}),
        )
        .await
        .expect(200);
    let public_id = public.body["groupId"].as_str().expect("id").to_owned();
    let details = alice.get(&format!("/groups/{public_id}")).await.expect(200);
    assert_eq!(details.body["groupType"], "ConnectGroup");
    assert_eq!(details.body["userCount"], 1);
    let plain = alice
        .post("/groups", &json!({"name": "Plain"}))
        .await
        .expect(200);
    let plain_id = plain.body["groupId"].as_str().expect("id").to_owned();
    let details = alice.get(&format!("/groups/{plain_id}")).await.expect(200);
    assert_eq!(details.body["groupType"], "Group");
    assert_eq!(details.body["welcomeMessage"], "");
}

#[tokio::test]
async fn create_group_errors() {
    let server = TestServer::start().await;
    let alice = server.user(&number(1)).await;
    let err = alice
        .post("/groups", &json!({"welcomeMessage": "x"}))
        .await
        .error(400);
    assert!(err["message"].as_str().expect("m").contains("name"));
    alice
        .post("/groups", &json!({"name": "   "}))
        .await
        .error(400);
    alice
        .post("/groups", &json!({"name": "x".repeat(1025)}))
        .await
        .error(400);
    let err = alice
        .post("/groups", &json!({"name": "g", "groupType": "Secret"}))
        .await
        .error(400);
    assert!(err["message"].as_str().expect("m").contains("groupType"));
    let many: Vec<String> = (10..111).map(number).collect();
    let err = alice
        .post("/groups", &json!({"name": "g", "members": many}))
        .await
        .error(400);
    assert!(err["message"].as_str().expect("m").contains("100"), "{err}");
    let hundred: Vec<String> = (10..110).map(number).collect();
    alice
        .post("/groups", &json!({"name": "g", "members": hundred}))
        .await
        .expect(200);
    alice
        .post(
            "/groups",
            &json!({"name": "g", "welcomeMessage": "w".repeat(4001)}),
        )
        .await
        .error(400);
    alice
        .post("/groups", &json!({"name": "g", "members": "+14255550002"}))
        .await
        .error(400);

    // Numbers that are not numbers are skipped and reported; the group is still made.
    let created = alice
        .post(
            "/groups",
            &json!({"name": "g", "members": [number(2), "call me", "12"]}),
        )
        .await
        .expect(200);
    assert_eq!(created.body["membersAdded"], false);
    assert_eq!(created.body["invalidMembers"], json!(["call me", "12"]));
    let id = created.body["groupId"].as_str().expect("id");
    assert_eq!(alice.members(id).await.len(), 2);
}

#[tokio::test]
async fn list_the_callers_groups() {
    let server = TestServer::start().await;
    let alice = server.user(&number(1)).await;
    let bob = server.user(&number(2)).await;
    let first = alice.group(&[&number(2)]).await;
    let second = alice.group(&[]).await;

    let listed = alice.get("/groups").await.expect(200);
    let groups = listed.body["groups"].as_array().expect("groups");
    let mut ids: Vec<&str> = groups
        .iter()
        .map(|g| g["groupId"].as_str().expect("id"))
        .collect();
    ids.sort();
    let mut want = vec![first.as_str(), second.as_str()];
    want.sort();
    assert_eq!(ids, want);
    assert!(groups[0]["groupName"].is_string());
    assert!(
        groups[0]["userCount"].is_null(),
        "details only with showDetail"
    );

    for query in [
        "showDetail=true",
        "showDetails=True",
        "ShowDetails=1&fetchAllGroups=true",
    ] {
        let listed = alice.get(&format!("/groups?{query}")).await.expect(200);
        let groups = listed.body["groups"].as_array().expect("groups");
        assert_eq!(groups.len(), 2, "{query}");
        assert!(groups.iter().all(|g| g["callerRole"] == "Admin"), "{query}");
        assert!(groups.iter().all(|g| g["userCount"].is_number()), "{query}");
    }
    alice.get("/groups?showDetail=maybe").await.error(400);

    let theirs = bob.get("/groups?showDetail=true").await.expect(200);
    let groups = theirs.body["groups"].as_array().expect("groups");
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0]["groupId"], first.as_str());
    assert_eq!(groups[0]["callerRole"], "Member");
}

#[tokio::test]
async fn group_details_errors() {
    let server = TestServer::start().await;
    let alice = server.user(&number(1)).await;
    let carol = server.user(&number(3)).await;
    let id = alice.group(&[]).await;
    let err = carol.get(&format!("/groups/{id}")).await.error(403);
    assert_eq!(err["errorCode"], "AccessDenied");
    assert_eq!(err["errorCategoryKey"], "Forbidden");
    let unknown = uuid::Uuid::new_v4();
    let err = alice.get(&format!("/groups/{unknown}")).await.error(404);
    assert_eq!(err["errorCode"], "NotFound");
    let err = alice.get("/groups/not-a-guid").await.error(400);
    assert_eq!(err["errorCode"], "InvalidParameters");
    // A group deleted on the ACS face is gone here too.
    let acs = Acs::with_token(&server.base, &alice.http, &alice.identity(), &alice.token);
    acs.call(
        Method::DELETE,
        &format!("/chat/threads/{}", enc(&thread_of(&id))),
        None,
    )
    .await
    .expect(204);
    alice.get(&format!("/groups/{id}")).await.error(404);
    let listed = alice.get("/groups").await.expect(200);
    assert_eq!(listed.body["groups"], json!([]));
}
