//! Read receipts and typing notifications.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;

use crate::support::*;

fn receipts_path(thread: &str) -> String {
    format!("{}/readReceipts", thread_path(thread))
}

fn typing_path(thread: &str) -> String {
    format!("{}/typing", thread_path(thread))
}

#[tokio::test]
async fn send_read_receipt_answers_200_and_is_listed() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let reader = server.user().await;
    let thread = owner.create_thread("read", &[&reader]).await;
    let message = owner.send(&thread, "read me").await;
    reader
        .post(&receipts_path(&thread), json!({"chatMessageId": message}))
        .await
        .expect(200);
    let receipts = owner.list_all(&receipts_path(&thread)).await;
    assert_eq!(receipts.len(), 1, "{receipts:?}");
    let receipt = &receipts[0];
    assert_user_identifier(&receipt["senderCommunicationIdentifier"], &reader.id);
    assert_eq!(receipt["chatMessageId"], message.as_str());
    assert_close(
        parse_time(&receipt["readOn"]),
        now(),
        Duration::from_secs(10),
    );
}

#[tokio::test]
async fn a_newer_read_receipt_replaces_the_readers_older_one() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let reader = server.user().await;
    let thread = owner.create_thread("read", &[&reader]).await;
    let first = owner.send(&thread, "one").await;
    let second = owner.send(&thread, "two").await;
    reader
        .post(&receipts_path(&thread), json!({"chatMessageId": first}))
        .await
        .expect(200);
    reader
        .post(&receipts_path(&thread), json!({"chatMessageId": second}))
        .await
        .expect(200);
    let receipts = owner.list_all(&receipts_path(&thread)).await;
    let mine: Vec<_> = receipts
        .iter()
        .filter(|r| r["senderCommunicationIdentifier"]["rawId"] == reader.id.as_str())
        .collect();
    // One receipt per reader (the latest), or one per message; the latest must be there.
    assert!(
        mine.iter().any(|r| r["chatMessageId"] == second.as_str()),
        "{receipts:?}"
    );
}

#[tokio::test]
async fn read_receipts_of_several_readers_page() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let readers = server.users(3).await;
    let refs: Vec<&User> = readers.iter().collect();
    let thread = owner.create_thread("read", &refs).await;
    let message = owner.send(&thread, "read me").await;
    for reader in &readers {
        reader
            .post(&receipts_path(&thread), json!({"chatMessageId": message}))
            .await
            .expect(200);
    }
    let items = owner
        .list_all(&format!("{}?maxPageSize=2", receipts_path(&thread)))
        .await;
    let senders: HashSet<String> = items
        .iter()
        .map(|r| raw_id(&r["senderCommunicationIdentifier"]))
        .collect();
    let want: HashSet<String> = readers.iter().map(|r| r.id.clone()).collect();
    assert_eq!(senders, want);
    assert_eq!(items.len(), 3);
    let first = owner
        .get(&format!("{}?maxPageSize=2", receipts_path(&thread)))
        .await
        .expect(200);
    assert_eq!(first.value().len(), 2);
    assert!(first.next_link().is_some(), "{}", first.text);
}

#[tokio::test]
async fn read_receipt_for_unknown_message_is_404() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("read", &[]).await;
    owner
        .post(
            &receipts_path(&thread),
            json!({"chatMessageId": "1700000000000001"}),
        )
        .await
        .error(404);
}

#[tokio::test]
async fn read_receipt_without_message_id_is_400() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("read", &[]).await;
    owner
        .post(&receipts_path(&thread), json!({}))
        .await
        .error(400);
}

#[tokio::test]
async fn read_receipts_of_non_participant_are_403() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let stranger = server.user().await;
    let thread = owner.create_thread("read", &[]).await;
    let message = owner.send(&thread, "x").await;
    stranger
        .post(&receipts_path(&thread), json!({"chatMessageId": message}))
        .await
        .error(403);
    stranger.get(&receipts_path(&thread)).await.error(403);
}

#[tokio::test]
async fn empty_thread_has_no_read_receipts() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("read", &[]).await;
    let resp = owner.get(&receipts_path(&thread)).await.expect(200);
    assert!(resp.value().is_empty());
}

#[tokio::test]
async fn typing_notification_answers_200() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("typing", &[]).await;
    owner
        .post(&typing_path(&thread), json!({"senderDisplayName": "Alice"}))
        .await
        .expect(200);
    owner
        .post(&typing_path(&thread), json!({}))
        .await
        .expect(200);
}

#[tokio::test]
async fn typing_notification_without_body_answers_200() {
    // The body is optional in the swagger.
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("typing", &[]).await;
    let resp = owner
        .raw()
        .send(
            reqwest::Method::POST,
            &with_api(&typing_path(&thread), CHAT_API),
            None,
        )
        .await;
    resp.expect(200);
}

#[tokio::test]
async fn typing_notification_of_non_participant_is_403() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let stranger = server.user().await;
    let thread = owner.create_thread("typing", &[]).await;
    stranger
        .post(&typing_path(&thread), json!({}))
        .await
        .error(403);
}

#[tokio::test]
async fn typing_notification_in_unknown_thread_is_404() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = "19:0123456789abcdef0123456789abcdef@thread.v2";
    owner.post(&typing_path(thread), json!({})).await.error(404);
}

#[tokio::test]
async fn read_receipt_for_a_message_before_the_readers_shared_history_is_404() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let late = server.user().await;
    let thread = owner.create_thread("history", &[]).await;
    let early = owner.send(&thread, "before").await;
    tick().await;
    let p = json!({"communicationIdentifier": late.ident(), "shareHistoryTime": rfc3339(now())});
    owner.add_participants(&thread, vec![p]).await.expect(201);
    late.post(&receipts_path(&thread), json!({"chatMessageId": early}))
        .await
        .error(404);
}
