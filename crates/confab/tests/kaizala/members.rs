//! Members: list (role, isProvisioned), add, remove, change role.

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn list_members_with_roles_and_provisioning() {
    let server = TestServer::start().await;
    let alice = server.user(&number(1)).await;
    let id = alice.group(&[&number(2)]).await;
    let members = alice.members(&id).await;
    assert_eq!(members.len(), 2);
    let find = |n: &str| members.iter().find(|m| m.0 == n).cloned().expect("member");
    assert_eq!(find(&number(1)).1, "Admin");
    assert!(find(&number(1)).2);
    assert_eq!(find(&number(2)).1, "Member");
    assert!(!find(&number(2)).2, "number 2 never logged in");
    assert!(
        uuid::Uuid::parse_str(&find(&number(2)).3).is_ok(),
        "member ids are GUIDs"
    );

    // After its first login, a member is provisioned; and reads the group.
    let bob = server.user(&number(2)).await;
    let members = bob.members(&id).await;
    assert!(members.iter().all(|m| m.2));

    let carol = server.user(&number(3)).await;
    carol.get(&format!("/groups/{id}/members")).await.error(403);
    alice
        .get(&format!("/groups/{}/members", uuid::Uuid::new_v4()))
        .await
        .error(404);
}

#[tokio::test]
async fn add_members() {
    let server = TestServer::start().await;
    let alice = server.user(&number(1)).await;
    let bob = server.user(&number(2)).await;
    let id = alice.group(&[&number(2)]).await;
    let path = format!("/groups/{id}/members");

    let added = alice
        .put(&path, &json!({"members": [number(3), number(4)]}))
        .await
        .expect(200);
    assert_eq!(added.body["result"], true);
    assert_eq!(alice.members(&id).await.len(), 4);

    // Only admins add; re-adding is a no-op that keeps roles.
    let err = bob
        .put(&path, &json!({"members": [number(5)]}))
        .await
        .error(403);
    assert!(err["message"].as_str().expect("m").contains("admin"));
    alice
        .put(&path, &json!({"members": [number(1), number(2)]}))
        .await
        .expect(200);
    let members = alice.members(&id).await;
    assert_eq!(members.len(), 4);
    assert_eq!(
        members.iter().find(|m| m.0 == number(1)).expect("alice").1,
        "Admin"
    );

    // Invalid numbers are reported; all invalid or none given is a 400.
    let partly = alice
        .put(&path, &json!({"members": [number(6), "nope"]}))
        .await
        .expect(200);
    assert_eq!(partly.body["result"], false);
    assert_eq!(partly.body["invalidMembers"], json!(["nope"]));
    alice
        .put(&path, &json!({"members": ["nope"]}))
        .await
        .error(400);
    alice.put(&path, &json!({"members": []})).await.error(400);
    alice.put(&path, &json!({})).await.error(400);
    let many: Vec<String> = (100..201).map(number).collect();
    alice.put(&path, &json!({"members": many})).await.error(400);
    // The group limit (250) holds across requests.
    for batch in 0..2 {
        let numbers: Vec<String> = (0..100).map(|n| number(1000 + batch * 100 + n)).collect();
        alice
            .put(&path, &json!({"members": numbers}))
            .await
            .expect(200);
    }
    let numbers: Vec<String> = (0..50).map(|n| number(2000 + n)).collect();
    let err = alice
        .put(&path, &json!({"members": numbers}))
        .await
        .error(400);
    assert!(err["message"].as_str().expect("m").contains("250"), "{err}");
}

#[tokio::test]
async fn remove_members() {
    let server = TestServer::start().await;
    let alice = server.user(&number(1)).await;
    let bob = server.user(&number(2)).await;
    let id = alice.group(&[&number(2), &number(3), &number(4)]).await;
    let members = alice.members(&id).await;
    let guid_of = |n: &str| members.iter().find(|m| m.0 == n).expect("member").3.clone();

    // By the member GUID `members` answers, or by mobile number.
    let removed = alice
        .delete(&format!("/groups/{id}/members/{}", guid_of(&number(3))))
        .await
        .expect(200);
    assert_eq!(removed.body["result"], true);
    alice
        .delete(&format!("/groups/{id}/members/{}", enc(&number(4))))
        .await
        .expect(200);
    assert_eq!(alice.members(&id).await.len(), 2);
    alice
        .delete(&format!("/groups/{id}/members/{}", guid_of(&number(3))))
        .await
        .error(404);
    alice
        .delete(&format!("/groups/{id}/members/whoever"))
        .await
        .error(404);

    // A member may not remove others, but may leave.
    bob.delete(&format!("/groups/{id}/members/{}", guid_of(&number(1))))
        .await
        .error(403);
    // The last admin may not leave.
    let err = alice
        .delete(&format!("/groups/{id}/members/{}", guid_of(&number(1))))
        .await
        .error(409);
    assert_eq!(err["errorCode"], "Conflict");
    bob.delete(&format!("/groups/{id}/members/{}", guid_of(&number(2))))
        .await
        .expect(200);
    bob.get(&format!("/groups/{id}")).await.error(403);
}

#[tokio::test]
async fn change_member_roles() {
    let server = TestServer::start().await;
    let alice = server.user(&number(1)).await;
    let bob = server.user(&number(2)).await;
    let id = alice.group(&[&number(2)]).await;
    let bob_path = format!("/groups/{id}/members/{}", enc(&number(2)));
    let alice_path = format!("/groups/{id}/members/{}", enc(&number(1)));

    bob.put(&alice_path, &json!({"role": "Member"}))
        .await
        .error(403);
    alice
        .put(&bob_path, &json!({"role": "Admin"}))
        .await
        .expect(200);
    assert!(bob.members(&id).await.iter().all(|m| m.1 == "Admin"));
    // With two admins, one may step down; the last one may not.
    alice
        .put(&alice_path, &json!({"role": "member"}))
        .await
        .expect(200);
    bob.put(&bob_path, &json!({"role": "Member"}))
        .await
        .error(409);
    // Alice, a member now, cannot add members any more.
    alice
        .put(
            &format!("/groups/{id}/members"),
            &json!({"members": [number(5)]}),
        )
        .await
        .error(403);

    bob.put(&alice_path, &json!({"role": "Owner"}))
        .await
        .error(400);
    bob.put(&alice_path, &json!({"role": "Subscriber"}))
        .await
        .error(400);
    bob.put(&alice_path, &json!({})).await.error(400);
    bob.put(
        &format!("/groups/{id}/members/{}", enc(&number(9))),
        &json!({"role": "Admin"}),
    )
    .await
    .error(404);
}
