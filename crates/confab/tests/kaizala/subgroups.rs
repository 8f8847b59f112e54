//! Subgroups: create under a parent, attach existing groups, list (direct and the whole tree with
//! `fetchAllGroups`), detach; no cycles.

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::*;

/// The ids of a `subGroups` array.
fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("subGroups")
        .iter()
        .map(|g| g["groupId"].as_str().expect("groupId").to_owned())
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test]
async fn create_list_and_remove_subgroups() {
    let server = TestServer::start().await;
    let alice = server.user(&number(1)).await;
    let bob = server.user(&number(2)).await;
    let parent = alice.group(&[&number(2)]).await;

    // The docs' path and body (groupName) …
    let first = alice
        .post(
            &format!("/groups/{parent}/subGroups"),
            &json!({"groupName": "Sub one", "groupImageUrl": "", "welcomeMessage": "Hello",
                    "members": [number(3), "not a number"], "addUserToGroup": true}),
        )
        .await
        .expect(200);
    assert_eq!(first.body["groupName"], "Sub one");
    assert_eq!(first.body["membersAdded"], false);
    assert_eq!(first.body["invalidMembers"], json!(["not a number"]));
    let first = first.body["groupId"].as_str().expect("id").to_owned();
    // … and the swagger's (name, lower-case path, relaxed JSON).
    let second = alice
        .call(
            Method::POST,
            &format!("/groups/{parent}/subgroups"),
            Some("{name: 'Sub two', groupType: 'ConnectGroup'}"),
        )
        .await
        .expect(200);
    let second = second.body["groupId"].as_str().expect("id").to_owned();

    // The creator is the subgroup's admin.
    let members = alice.members(&first).await;
    assert!(members.iter().any(|m| m.0 == number(1) && m.1 == "Admin"));
    assert!(members.iter().any(|m| m.0 == number(3) && m.1 == "Member"));

    // Bob (a member of the parent) lists them, in the swagger shape and the docs' one.
    let listed = bob
        .get(&format!("/groups/{parent}/subGroups"))
        .await
        .expect(200);
    assert_eq!(listed.body["groupId"], parent.as_str());
    assert_eq!(listed.body["hasSubGroups"], true);
    assert_eq!(
        sorted(ids(&listed.body["subGroups"])),
        sorted(vec![first.clone(), second.clone()])
    );
    assert_eq!(
        ids(&listed.body["groups"][0]["subGroups"]),
        ids(&listed.body["subGroups"])
    );
    let sub = listed.body["subGroups"]
        .as_array()
        .expect("subGroups")
        .iter()
        .find(|g| g["groupId"] == second.as_str())
        .cloned()
        .expect("second");
    assert_eq!(sub["groupName"], "Sub two");
    assert_eq!(sub["groupType"], "ConnectGroup");
    assert_eq!(sub["hasParentGroups"], true);
    assert_eq!(sub["hasSubGroups"], false);
    assert_eq!(sub["isDuplicate"], false);

    // The counts show up in the group details.
    let details = alice.get(&format!("/groups/{parent}")).await.expect(200);
    assert_eq!(details.body["hasSubGroups"], true);
    assert_eq!(details.body["currentLevelSubGroupCount"], 2);
    let child = alice.get(&format!("/groups/{first}")).await.expect(200);
    assert_eq!(child.body["hasParentGroups"], true);
    assert_eq!(child.body["currentLevelParentGroupCount"], 1);

    // Detach: the subgroup stays a group; detaching again is 404.
    let removed = alice
        .delete(&format!("/groups/{parent}/subGroups/{first}"))
        .await
        .expect(200);
    assert_eq!(removed.body["result"], true);
    alice
        .delete(&format!("/groups/{parent}/subgroups/{first}"))
        .await
        .error(404);
    let listed = alice
        .get(&format!("/groups/{parent}/subGroups"))
        .await
        .expect(200);
    assert_eq!(ids(&listed.body["subGroups"]), [second.as_str()]);
    let child = alice.get(&format!("/groups/{first}")).await.expect(200);
    assert_eq!(child.body["hasParentGroups"], false);
}

#[tokio::test]
async fn attach_existing_groups_fetch_all_levels_and_refuse_cycles() {
    let server = TestServer::start().await;
    let alice = server.user(&number(1)).await;
    let bob = server.user(&number(2)).await;
    let a = alice.group(&[&number(2)]).await;
    let b = alice.group(&[]).await;
    let c = alice.group(&[]).await;
    let d = alice.group(&[]).await;
    let attach = |parent: String, children: Vec<String>| {
        let alice = alice.clone();
        async move {
            alice
                .put(
                    &format!("/groups/{parent}/subGroups"),
                    &json!({ "subGroups": children }),
                )
                .await
        }
    };
    // a → b → c → d, and a → c too (c has two parents).
    let ok = attach(a.clone(), vec![b.clone()]).await.expect(200);
    assert_eq!(ok.body["result"], true);
    attach(b.clone(), vec![c.clone()]).await.expect(200);
    attach(c.clone(), vec![format!("{d}@1")]).await.expect(200);
    attach(a.clone(), vec![c.clone()]).await.expect(200);
    // Attaching again changes nothing.
    attach(a.clone(), vec![b.clone()]).await.expect(200);

    // No cycles, however long, and not the group itself.
    for (parent, child) in [(&d, &a), (&c, &a), (&d, &b), (&a, &a)] {
        let err = attach(parent.clone(), vec![child.clone()]).await.error(409);
        assert_eq!(err["errorCode"], "Conflict");
    }

    // Direct subgroups only …
    let direct = bob.get(&format!("/groups/{a}/subGroups")).await.expect(200);
    assert_eq!(
        sorted(ids(&direct.body["subGroups"])),
        sorted(vec![b.clone(), c.clone()])
    );
    assert!(direct.body["subGroups"][0].get("subGroups").is_none());
    // … or the whole tree, each group expanded once (the second c is a duplicate).
    let all = bob
        .get(&format!("/groups/{a}/subGroups?fetchAllGroups=true"))
        .await
        .expect(200);
    let top = all.body["subGroups"].as_array().expect("top").clone();
    let node = |list: &[Value], id: &str| -> Value {
        list.iter()
            .find(|g| g["groupId"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} not in {list:?}"))
    };
    let under_b = node(&top, &b);
    let under_b = under_b["subGroups"].as_array().expect("b's").clone();
    let c_under_b = node(&under_b, &c);
    let c_under_a = node(&top, &c);
    // Whichever c came first is expanded down to d; the other is marked a duplicate.
    let (expanded, duplicate) = if c_under_b["isDuplicate"] == false {
        (c_under_b, c_under_a)
    } else {
        (c_under_a, c_under_b)
    };
    assert_eq!(duplicate["isDuplicate"], true);
    assert_eq!(duplicate["hasSubGroups"], true);
    assert_eq!(ids(&expanded["subGroups"]), [d.as_str()]);
    let d_node = node(expanded["subGroups"].as_array().expect("c's"), &d);
    assert_eq!(d_node["subGroups"], json!([]));

    // GET /groups?fetchAllGroups=true: Bob's group and every group below it, once each.
    let mine = bob.get("/groups").await.expect(200);
    assert_eq!(ids(&mine.body["groups"]), [a.as_str()]);
    let everything = bob.get("/groups?fetchAllGroups=true").await.expect(200);
    assert_eq!(
        sorted(ids(&everything.body["groups"])),
        sorted(vec![a.clone(), b.clone(), c.clone(), d.clone()])
    );

    // Detaching b from a cuts b's branch from a's tree; c stays (through a → c).
    alice
        .delete(&format!("/groups/{a}/subGroups/{b}"))
        .await
        .expect(200);
    let all = alice
        .get(&format!("/groups/{a}/subGroups?fetchAllGroups=true"))
        .await
        .expect(200);
    assert_eq!(ids(&all.body["subGroups"]), [c.as_str()]);
    // And now b may hold a.
    attach(b.clone(), vec![a.clone()]).await.expect(200);
}

#[tokio::test]
async fn subgroup_errors() {
    let server = TestServer::start().await;
    let alice = server.user(&number(1)).await;
    let bob = server.user(&number(2)).await;
    let carol = server.user(&number(3)).await;
    let parent = alice.group(&[&number(2)]).await;
    let theirs = carol.group(&[&number(1)]).await;
    let own = alice.group(&[]).await;
    let sub = |name: &str| json!({ "groupName": name });

    // Only admins of the parent create, attach and detach.
    bob.post(&format!("/groups/{parent}/subGroups"), &sub("x"))
        .await
        .error(403);
    carol
        .post(&format!("/groups/{parent}/subGroups"), &sub("x"))
        .await
        .error(403);
    bob.put(
        &format!("/groups/{parent}/subGroups"),
        &json!({"subGroups": [own]}),
    )
    .await
    .error(403);
    // Attaching needs an admin of the child too: Alice is only a member of Carol's group.
    alice
        .put(
            &format!("/groups/{parent}/subGroups"),
            &json!({"subGroups": [theirs]}),
        )
        .await
        .error(403);
    alice
        .put(
            &format!("/groups/{parent}/subGroups"),
            &json!({"subGroups": [own]}),
        )
        .await
        .expect(200);
    bob.delete(&format!("/groups/{parent}/subGroups/{own}"))
        .await
        .error(403);
    // Carol is not in the parent: she cannot list its subgroups.
    carol
        .get(&format!("/groups/{parent}/subGroups"))
        .await
        .error(403);

    // Unknown and malformed ids, missing fields.
    let unknown = uuid::Uuid::new_v4().to_string();
    alice
        .post(&format!("/groups/{unknown}/subGroups"), &sub("x"))
        .await
        .error(404);
    alice
        .get(&format!("/groups/{unknown}/subGroups"))
        .await
        .error(404);
    alice
        .put(
            &format!("/groups/{parent}/subGroups"),
            &json!({"subGroups": [unknown]}),
        )
        .await
        .error(404);
    alice
        .delete(&format!("/groups/{parent}/subGroups/{unknown}"))
        .await
        .error(404);
    alice
        .post("/groups/nonsense/subGroups", &sub("x"))
        .await
        .error(400);
    alice
        .delete(&format!("/groups/{parent}/subGroups/nonsense"))
        .await
        .error(400);
    alice
        .put(
            &format!("/groups/{parent}/subGroups"),
            &json!({"subGroups": ["nonsense"]}),
        )
        .await
        .error(400);
    alice
        .put(
            &format!("/groups/{parent}/subGroups"),
            &json!({"subGroups": []}),
        )
        .await
        .error(400);
    alice
        .put(&format!("/groups/{parent}/subGroups"), &json!({}))
        .await
        .error(400);
    alice
        .post(
            &format!("/groups/{parent}/subGroups"),
            &json!({"members": []}),
        )
        .await
        .error(400);
    alice
        .post(
            &format!("/groups/{parent}/subGroups"),
            &json!({"groupName": "x", "addUserToGroup": false}),
        )
        .await
        .error(400);
    alice
        .post(
            &format!("/groups/{parent}/subGroups"),
            &json!({"groupName": "x", "groupType": "Team"}),
        )
        .await
        .error(400);
    alice
        .call(
            Method::POST,
            &format!("/groups/{parent}/subGroups"),
            Some("{groupName: "),
        )
        .await
        .error(400);
    alice
        .get(&format!("/groups/{parent}/subGroups?fetchAllGroups=maybe"))
        .await
        .error(400);
    // A known path with another method.
    alice
        .call(Method::PATCH, &format!("/groups/{parent}/subGroups"), None)
        .await
        .error(405);
}
