//! System messages: participantAdded, participantRemoved, topicUpdated.

use std::collections::HashSet;

use serde_json::{json, Value};

use crate::support::*;

fn participant_ids(message: &Value) -> HashSet<String> {
    message["content"]["participants"]
        .as_array()
        .unwrap_or_else(|| panic!("content.participants: {message}"))
        .iter()
        .map(|p| raw_id(&p["communicationIdentifier"]))
        .collect()
}

#[tokio::test]
async fn create_thread_adds_a_participant_added_message() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let (a, b) = (server.user().await, server.user().await);
    let thread = owner.create_thread("hello", &[&a, &b]).await;
    let added = owner.messages_of_type(&thread, "participantAdded").await;
    assert_eq!(added.len(), 1, "{added:?}");
    let ids = participant_ids(&added[0]);
    assert!(ids.contains(&a.id) && ids.contains(&b.id), "{ids:?}");
    assert_eq!(
        added[0]["sequenceId"], "1",
        "the first message of the thread"
    );
    assert!(added[0]["id"].is_string() && added[0]["version"].is_string());
    assert!(added[0]["createdOn"].is_string());
    // Participants see it too.
    assert_eq!(
        a.messages_of_type(&thread, "participantAdded").await.len(),
        1
    );
}

#[tokio::test]
async fn add_participants_adds_a_participant_added_message_with_initiator() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let member = server.user().await;
    let newcomer = server.user().await;
    let thread = owner.create_thread("grow", &[&member]).await;
    member.add(&thread, &[&newcomer]).await;
    let added = owner.messages_of_type(&thread, "participantAdded").await;
    assert_eq!(added.len(), 2, "{added:?}");
    let newest = &added[0];
    assert_eq!(participant_ids(newest), [newcomer.id.clone()].into());
    assert_user_identifier(
        &newest["content"]["initiatorCommunicationIdentifier"],
        &member.id,
    );
}

#[tokio::test]
async fn participant_added_message_carries_display_name() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let newcomer = server.user().await;
    let thread = owner.create_thread("names", &[]).await;
    let p = json!({"communicationIdentifier": newcomer.ident(), "displayName": "Newbie"});
    owner.add_participants(&thread, vec![p]).await.expect(201);
    let added = owner.messages_of_type(&thread, "participantAdded").await;
    let entry = &added[0]["content"]["participants"][0];
    assert_eq!(raw_id(&entry["communicationIdentifier"]), newcomer.id);
    assert_eq!(entry["displayName"], "Newbie");
}

#[tokio::test]
async fn remove_participant_adds_a_participant_removed_message() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let member = server.user().await;
    let thread = owner.create_thread("shrink", &[&member]).await;
    owner
        .remove_participant(&thread, &member.id)
        .await
        .expect(204);
    let removed = owner.messages_of_type(&thread, "participantRemoved").await;
    assert_eq!(removed.len(), 1, "{removed:?}");
    assert_eq!(participant_ids(&removed[0]), [member.id.clone()].into());
    assert_user_identifier(
        &removed[0]["content"]["initiatorCommunicationIdentifier"],
        &owner.id,
    );
}

#[tokio::test]
async fn leaving_adds_a_participant_removed_message_by_the_leaver() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let member = server.user().await;
    let thread = owner.create_thread("leave", &[&member]).await;
    member
        .remove_participant(&thread, &member.id)
        .await
        .expect(204);
    let removed = owner.messages_of_type(&thread, "participantRemoved").await;
    assert_eq!(removed.len(), 1);
    assert_user_identifier(
        &removed[0]["content"]["initiatorCommunicationIdentifier"],
        &member.id,
    );
}

#[tokio::test]
async fn topic_update_message_has_topic_and_initiator() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let member = server.user().await;
    let thread = owner.create_thread("before", &[&member]).await;
    member
        .patch(&thread_path(&thread), json!({"topic": "after"}))
        .await
        .expect(204);
    let updates = owner.messages_of_type(&thread, "topicUpdated").await;
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0]["content"]["topic"], "after");
    assert_user_identifier(
        &updates[0]["content"]["initiatorCommunicationIdentifier"],
        &member.id,
    );
}

#[tokio::test]
async fn system_messages_cannot_be_edited_or_deleted() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("sys", &[]).await;
    let added = owner.messages_of_type(&thread, "participantAdded").await;
    let id = added[0]["id"].as_str().expect("id");
    owner
        .patch(&message_path(&thread, id), json!({"content": "x"}))
        .await
        .error(403);
    owner.delete(&message_path(&thread, id)).await.error(403);
}

#[tokio::test]
async fn system_and_user_messages_share_one_gapless_sequence() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let member = server.user().await;
    let thread = owner.create_thread("seq", &[]).await; // 1 participantAdded
    owner.send(&thread, "a").await; // 2
    owner.add(&thread, &[&member]).await; // 3 participantAdded
    owner
        .patch(&thread_path(&thread), json!({"topic": "b"}))
        .await
        .expect(204); // 4
    owner.send(&thread, "c").await; // 5
    owner
        .remove_participant(&thread, &member.id)
        .await
        .expect(204); // 6
    let all = owner.messages(&thread).await;
    let kinds: Vec<&str> = all.iter().map(|m| m["type"].as_str().unwrap()).collect();
    let seqs: Vec<&str> = all
        .iter()
        .map(|m| m["sequenceId"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "participantRemoved",
            "text",
            "topicUpdated",
            "participantAdded",
            "text",
            "participantAdded"
        ]
    );
    assert_eq!(seqs, ["6", "5", "4", "3", "2", "1"]);
}
