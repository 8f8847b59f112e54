//! Chat messages: send, get, list (paging, startTime), update, delete, limits.

use std::collections::HashSet;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::*;

const UNKNOWN_MESSAGE: &str = "1700000000000001";

fn sequence(message: &Value) -> i64 {
    let text = message["sequenceId"]
        .as_str()
        .unwrap_or_else(|| panic!("sequenceId: {message}"));
    text.parse()
        .unwrap_or_else(|_| panic!("sequenceId not a number: {message}"))
}

#[tokio::test]
async fn send_message_answers_201_with_id_and_location() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("m", &[]).await;
    let resp = owner
        .send_message_with(&thread, json!({"content": "hello"}))
        .await
        .expect(201);
    let id = resp.body["id"].as_str().expect("id");
    assert!(!id.is_empty());
    let location = resp.header("location").expect("Location header");
    assert!(location.contains(&format!("/messages/{id}")), "{location}");
}

#[tokio::test]
async fn get_message_answers_every_field() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("m", &[]).await;
    let before = now();
    let body = json!({
        "content": "hello world",
        "senderDisplayName": "Alice",
        "type": "text",
        "metadata": {"tags": "greeting", "lang": "en"},
    });
    let id = owner
        .send_message_with(&thread, body)
        .await
        .expect(201)
        .body["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let msg = owner.get_message(&thread, &id).await.expect(200).body;
    assert_eq!(msg["id"], id.as_str());
    assert_eq!(msg["type"], "text");
    assert!(sequence(&msg) > 0);
    assert!(
        msg["version"].as_str().is_some_and(|v| !v.is_empty()),
        "version: {msg}"
    );
    assert_eq!(msg["content"]["message"], "hello world");
    assert_eq!(msg["senderDisplayName"], "Alice");
    assert_close(
        parse_time(&msg["createdOn"]),
        before,
        Duration::from_secs(5),
    );
    assert_user_identifier(&msg["senderCommunicationIdentifier"], &owner.id);
    assert_eq!(msg["metadata"], json!({"tags": "greeting", "lang": "en"}));
    assert!(
        msg["editedOn"].is_null() && msg["deletedOn"].is_null(),
        "{msg}"
    );
}

#[tokio::test]
async fn html_message_keeps_its_type() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("m", &[]).await;
    let body = json!({"content": "<p>hi <b>there</b></p>", "type": "html"});
    let id = owner
        .send_message_with(&thread, body)
        .await
        .expect(201)
        .body["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let msg = owner.get_message(&thread, &id).await.expect(200).body;
    assert_eq!(msg["type"], "html");
    assert_eq!(msg["content"]["message"], "<p>hi <b>there</b></p>");
}

#[tokio::test]
async fn message_type_defaults_to_text() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("m", &[]).await;
    let id = owner.send(&thread, "plain").await;
    assert_eq!(
        owner.get_message(&thread, &id).await.expect(200).body["type"],
        "text"
    );
}

#[tokio::test]
async fn other_members_read_the_message() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let member = server.user().await;
    let thread = owner.create_thread("m", &[&member]).await;
    let id = owner.send(&thread, "for you").await;
    let msg = member.get_message(&thread, &id).await.expect(200).body;
    assert_eq!(msg["content"]["message"], "for you");
    assert_user_identifier(&msg["senderCommunicationIdentifier"], &owner.id);
}

#[tokio::test]
async fn list_messages_newest_first_paged_and_gapless() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("many", &[]).await;
    let mut sent = Vec::new();
    for i in 0..30 {
        sent.push(owner.send(&thread, &format!("message {i}")).await);
    }
    let mut page = owner
        .get(&format!("{}?maxPageSize=7", messages_path(&thread)))
        .await
        .expect(200);
    let mut all = Vec::new();
    let mut pages = 0;
    loop {
        pages += 1;
        assert!(page.value().len() <= 7, "page of {}", page.value().len());
        all.extend(page.value().iter().cloned());
        let Some(link) = page.next_link() else { break };
        page = owner.follow(&link).await.expect(200);
    }
    // 30 texts plus the participantAdded of the creation.
    assert!(all.len() >= 31, "{}", all.len());
    assert!(pages >= 5, "{pages} pages");
    let ids: HashSet<&str> = all.iter().map(|m| m["id"].as_str().expect("id")).collect();
    assert_eq!(ids.len(), all.len(), "ids unique");
    let seqs: Vec<i64> = all.iter().map(sequence).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] == w[1] + 1),
        "strictly decreasing, no gaps: {seqs:?}"
    );
    assert_eq!(*seqs.last().expect("last"), 1, "{seqs:?}");
    let texts: Vec<&str> = all
        .iter()
        .filter(|m| m["type"] == "text")
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    let newest_first: Vec<&str> = sent.iter().rev().map(String::as_str).collect();
    assert_eq!(texts, newest_first);
}

#[tokio::test]
async fn list_messages_relative_next_link_works() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("rel", &[]).await;
    for i in 0..5 {
        owner.send(&thread, &format!("m{i}")).await;
    }
    let first = owner
        .get(&format!("{}?maxPageSize=2", messages_path(&thread)))
        .await
        .expect(200);
    let link = first.next_link().expect("nextLink");
    let rel = relative(&link);
    let second = owner.follow(&rel).await.expect(200);
    let abs = owner
        .follow(&format!("{}{}", server.base, rel))
        .await
        .expect(200);
    assert_eq!(second.value(), abs.value());
    assert_eq!(second.value().len(), 2);
    let first_ids: HashSet<&Value> = first.value().iter().map(|m| &m["id"]).collect();
    assert!(second.value().iter().all(|m| !first_ids.contains(&m["id"])));
}

#[tokio::test]
async fn list_messages_start_time_returns_only_newer_or_changed() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("since", &[]).await;
    let old = owner.send(&thread, "old").await;
    let _untouched = owner.send(&thread, "untouched").await;
    tick().await;
    let mid = rfc3339(now());
    tick().await;
    let new = owner.send(&thread, "new").await;
    let path = format!("{}?startTime={}", messages_path(&thread), enc(&mid));
    let ids: Vec<String> = owner
        .list_all(&path)
        .await
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, vec![new.clone()]);
    // Editing an old message makes it "changed since".
    owner
        .patch(
            &message_path(&thread, &old),
            json!({"content": "old, edited"}),
        )
        .await
        .expect(204);
    let ids: HashSet<String> = owner
        .list_all(&path)
        .await
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, [old, new].into());
}

#[tokio::test]
async fn update_message_changes_content_version_and_edited_on() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("edit", &[]).await;
    let id = owner.send(&thread, "draft").await;
    let before = owner.get_message(&thread, &id).await.expect(200).body;
    let resp = owner
        .patch(&message_path(&thread, &id), json!({"content": "final"}))
        .await
        .expect(204);
    assert!(resp.text.is_empty(), "{}", resp.text);
    let after = owner.get_message(&thread, &id).await.expect(200).body;
    assert_eq!(after["content"]["message"], "final");
    assert_ne!(after["version"], before["version"]);
    assert_close(
        parse_time(&after["editedOn"]),
        now(),
        Duration::from_secs(10),
    );
    assert_eq!(after["id"], before["id"]);
    assert_eq!(after["sequenceId"], before["sequenceId"]);
    assert_eq!(after["createdOn"], before["createdOn"]);
}

#[tokio::test]
async fn update_message_metadata() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("edit", &[]).await;
    let body = json!({"content": "x", "metadata": {"a": "1"}});
    let id = owner
        .send_message_with(&thread, body)
        .await
        .expect(201)
        .body["id"]
        .as_str()
        .expect("id")
        .to_owned();
    owner
        .patch(
            &message_path(&thread, &id),
            json!({"metadata": {"a": "2", "b": "3"}}),
        )
        .await
        .expect(204);
    let after = owner.get_message(&thread, &id).await.expect(200).body;
    assert_eq!(after["metadata"]["a"], "2");
    assert_eq!(after["metadata"]["b"], "3");
    assert_eq!(after["content"]["message"], "x", "content untouched");
}

#[tokio::test]
async fn delete_message_answers_204_and_sets_deleted_on() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("del", &[]).await;
    let id = owner.send(&thread, "oops").await;
    let resp = owner.delete(&message_path(&thread, &id)).await.expect(204);
    assert!(resp.text.is_empty(), "{}", resp.text);
    let msg = owner.get_message(&thread, &id).await.expect(200).body;
    assert_close(
        parse_time(&msg["deletedOn"]),
        now(),
        Duration::from_secs(10),
    );
}

#[tokio::test]
async fn only_the_sender_may_edit() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let member = server.user().await;
    let thread = owner.create_thread("mine", &[&member]).await;
    let id = owner.send(&thread, "mine").await;
    member
        .patch(&message_path(&thread, &id), json!({"content": "theirs"}))
        .await
        .error(403);
    let msg = owner.get_message(&thread, &id).await.expect(200).body;
    assert_eq!(msg["content"]["message"], "mine");
}

#[tokio::test]
async fn only_the_sender_may_delete() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let member = server.user().await;
    let thread = owner.create_thread("mine", &[&member]).await;
    let id = owner.send(&thread, "mine").await;
    member.delete(&message_path(&thread, &id)).await.error(403);
    let msg = owner.get_message(&thread, &id).await.expect(200).body;
    assert!(msg["deletedOn"].is_null(), "{msg}");
}

#[tokio::test]
async fn unknown_message_is_404() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("none", &[]).await;
    let path = message_path(&thread, UNKNOWN_MESSAGE);
    owner.get(&path).await.error(404);
    owner.patch(&path, json!({"content": "x"})).await.error(404);
    owner.delete(&path).await.error(404);
}

/// The swagger is silent; confab answers 404 for a message id that cannot name a message.
#[tokio::test]
async fn malformed_message_id_is_404() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("none", &[]).await;
    owner.get_message(&thread, "not-a-message").await.error(404);
}

#[tokio::test]
async fn message_of_another_thread_is_404() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let one = owner.create_thread("one", &[]).await;
    let two = owner.create_thread("two", &[]).await;
    let id = owner.send(&one, "in one").await;
    owner.get_message(&two, &id).await.error(404);
}

#[tokio::test]
async fn content_of_exactly_28_kb_is_accepted() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("big", &[]).await;
    let content = "a".repeat(MAX_MESSAGE_BYTES);
    let id = owner.send(&thread, &content).await;
    let msg = owner.get_message(&thread, &id).await.expect(200).body;
    assert_eq!(
        msg["content"]["message"].as_str().map(str::len),
        Some(MAX_MESSAGE_BYTES)
    );
}

#[tokio::test]
async fn content_over_28_kb_is_413() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("big", &[]).await;
    let content = "a".repeat(MAX_MESSAGE_BYTES + 1);
    owner
        .send_message_with(&thread, json!({"content": content}))
        .await
        .error(413);
}

#[tokio::test]
async fn content_limit_counts_utf8_bytes() {
    // 14,337 two-byte characters: under 28 K characters but over 28 KB.
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("big", &[]).await;
    let content = "é".repeat(MAX_MESSAGE_BYTES / 2 + 1);
    owner
        .send_message_with(&thread, json!({"content": content}))
        .await
        .error(413);
    let fits = "é".repeat(MAX_MESSAGE_BYTES / 2);
    owner
        .send_message_with(&thread, json!({"content": fits}))
        .await
        .expect(201);
}

#[tokio::test]
async fn edit_over_28_kb_is_413() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("big", &[]).await;
    let id = owner.send(&thread, "small").await;
    let content = "a".repeat(MAX_MESSAGE_BYTES + 1);
    owner
        .patch(&message_path(&thread, &id), json!({"content": content}))
        .await
        .error(413);
}

#[tokio::test]
async fn empty_content_is_400() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("empty", &[]).await;
    owner
        .send_message_with(&thread, json!({"content": ""}))
        .await
        .error(400);
}

#[tokio::test]
async fn missing_content_is_400() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("empty", &[]).await;
    owner
        .send_message_with(&thread, json!({"senderDisplayName": "x"}))
        .await
        .error(400);
}

#[tokio::test]
async fn type_other_than_text_or_html_is_400() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("types", &[]).await;
    for kind in [
        "topicUpdated",
        "participantAdded",
        "participantRemoved",
        "video",
        "",
    ] {
        let resp = owner
            .send_message_with(&thread, json!({"content": "x", "type": kind}))
            .await;
        assert_eq!(resp.status.as_u16(), 400, "{kind:?}: {}", resp.text);
        resp.error(400);
    }
    assert!(owner.messages_of_type(&thread, "text").await.is_empty());
}

#[tokio::test]
async fn sender_display_name_and_metadata_show_in_the_list() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("list", &[]).await;
    let body = json!({"content": "c", "senderDisplayName": "Bob", "metadata": {"x": "y"}});
    owner.send_message_with(&thread, body).await.expect(201);
    let texts = owner.messages_of_type(&thread, "text").await;
    assert_eq!(texts.len(), 1);
    assert_eq!(texts[0]["senderDisplayName"], "Bob");
    assert_eq!(texts[0]["metadata"], json!({"x": "y"}));
    assert_eq!(texts[0]["content"]["message"], "c");
}

#[tokio::test]
async fn message_patch_accepts_plain_json_too() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("p", &[]).await;
    let id = owner.send(&thread, "a").await;
    let body = serde_json::to_vec(&json!({"content": "b"})).expect("json");
    owner
        .raw()
        .send_bytes(
            Method::PATCH,
            &with_api(&message_path(&thread, &id), CHAT_API),
            "application/json",
            body,
        )
        .await
        .expect(204);
    assert_eq!(
        owner.get_message(&thread, &id).await.body["content"]["message"],
        "b"
    );
}

#[tokio::test]
async fn concurrent_senders_get_unique_gapless_sequence_ids() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let members = server.users(4).await;
    let refs: Vec<&User> = members.iter().collect();
    let thread = owner.create_thread("race", &refs).await;
    let mut tasks = Vec::new();
    for (n, member) in members.iter().enumerate() {
        let (member, thread) = (member.clone(), thread.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..10 {
                member.send(&thread, &format!("{n}-{i}")).await;
            }
        }));
    }
    for task in tasks {
        task.await.expect("sender");
    }
    let all = owner.messages(&thread).await;
    assert_eq!(all.len(), 41, "40 texts and the participantAdded");
    let seqs: Vec<i64> = all.iter().map(sequence).collect();
    let want: Vec<i64> = (1..=41).rev().collect();
    assert_eq!(seqs, want);
    let ids: HashSet<&str> = all.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 41);
}

#[tokio::test]
async fn start_time_and_page_size_are_kept_across_pages() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("paged since", &[]).await;
    owner.send(&thread, "old").await;
    tick().await;
    let mid = rfc3339(now()).replace('Z', "+00:00");
    tick().await;
    let mut new = Vec::new();
    for i in 0..5 {
        new.push(owner.send(&thread, &format!("new {i}")).await);
    }
    let path = format!(
        "{}?startTime={}&maxPageSize=2",
        messages_path(&thread),
        enc(&mid)
    );
    let mut page = owner.get(&path).await.expect(200);
    let mut seen = Vec::new();
    loop {
        assert!(page.value().len() <= 2, "{}", page.text);
        seen.extend(
            page.value()
                .iter()
                .map(|m| m["id"].as_str().unwrap().to_owned()),
        );
        let Some(link) = page.next_link() else { break };
        page = owner.follow(&link).await.expect(200);
    }
    new.reverse();
    assert_eq!(seen, new);
}

#[tokio::test]
async fn list_messages_bad_page_size_is_400() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("bad", &[]).await;
    for size in ["0", "201", "x"] {
        let resp = owner
            .get(&format!("{}?maxPageSize={size}", messages_path(&thread)))
            .await;
        assert_eq!(resp.status.as_u16(), 400, "{size}: {}", resp.text);
        resp.error(400);
    }
}

#[tokio::test]
async fn deleted_message_is_listed_as_deleted_or_not_at_all() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("del", &[]).await;
    let id = owner.send(&thread, "gone").await;
    owner.delete(&message_path(&thread, &id)).await.expect(204);
    for m in owner.messages(&thread).await {
        if m["id"] == id.as_str() {
            assert!(m["deletedOn"].is_string(), "{m}");
        }
    }
}

#[tokio::test]
async fn each_edit_changes_the_version() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("versions", &[]).await;
    let id = owner.send(&thread, "v0").await;
    let mut versions = HashSet::new();
    versions.insert(owner.get_message(&thread, &id).await.body["version"].to_string());
    for i in 1..=3 {
        owner
            .patch(
                &message_path(&thread, &id),
                json!({"content": format!("v{i}")}),
            )
            .await
            .expect(204);
        let v = owner.get_message(&thread, &id).await.body["version"].to_string();
        assert!(versions.insert(v), "edit {i} repeated a version");
    }
}

#[tokio::test]
async fn messages_sent_between_pages_do_not_shift_the_next_page() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("moving", &[]).await;
    let mut sent = Vec::new();
    for i in 0..12 {
        sent.push(owner.send(&thread, &format!("m{i}")).await);
    }
    let first = owner
        .get(&format!("{}?maxPageSize=5", messages_path(&thread)))
        .await
        .expect(200);
    for i in 0..3 {
        owner.send(&thread, &format!("late {i}")).await;
    }
    let mut ids: Vec<String> = first
        .value()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    let mut link = first.next_link();
    while let Some(next) = link {
        let page = owner.follow(&next).await.expect(200);
        ids.extend(
            page.value()
                .iter()
                .map(|m| m["id"].as_str().unwrap().to_owned()),
        );
        link = page.next_link();
    }
    let texts: Vec<String> = ids.iter().filter(|id| sent.contains(id)).cloned().collect();
    let mut want = sent.clone();
    want.reverse();
    assert_eq!(texts, want, "every message once, newest first");
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "no duplicates: {ids:?}");
}

#[tokio::test]
async fn edit_to_empty_content_is_400() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("edit", &[]).await;
    let id = owner.send(&thread, "keep").await;
    owner
        .patch(&message_path(&thread, &id), json!({"content": ""}))
        .await
        .error(400);
    assert_eq!(
        owner.get_message(&thread, &id).await.body["content"]["message"],
        "keep"
    );
}
