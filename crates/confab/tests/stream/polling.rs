//! Polling instead of streaming: list messages with `startTime` returns everything created,
//! edited or deleted since. A client that polls with the newest change time it has seen (not
//! its own clock) misses nothing, even while writes go on.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::support::*;

/// The newest of a message's created/edited/deleted times.
fn changed_on(message: &Value) -> OffsetDateTime {
    ["createdOn", "editedOn", "deletedOn"]
        .iter()
        .filter(|k| message[**k].is_string())
        .map(|k| parse_time(&message[*k]))
        .max()
        .expect("createdOn")
}

#[tokio::test]
async fn start_time_returns_created_edited_and_deleted_since() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("poll", &[]).await;
    let kept = owner.send(&thread, "kept").await;
    let edited = owner.send(&thread, "to edit").await;
    let deleted = owner.send(&thread, "to delete").await;
    tick().await;
    let since = rfc3339(now());
    tick().await;
    owner
        .patch(
            &message_path(&thread, &edited),
            json!({"content": "edited"}),
        )
        .await
        .expect(204);
    owner
        .delete(&message_path(&thread, &deleted))
        .await
        .expect(204);
    let new = owner.send(&thread, "new").await;
    let path = format!(
        "{}?startTime={}&maxPageSize=1",
        messages_path(&thread),
        enc(&since)
    );
    let listed = owner.list_all(&path).await;
    let by_id: HashMap<&str, &Value> = listed
        .iter()
        .map(|m| (m["id"].as_str().expect("id"), m))
        .collect();
    assert_eq!(by_id.len(), 3, "{listed:?}");
    assert!(!by_id.contains_key(kept.as_str()));
    assert_eq!(by_id[edited.as_str()]["content"]["message"], "edited");
    assert!(by_id[edited.as_str()]["editedOn"].is_string());
    assert!(by_id[deleted.as_str()]["deletedOn"].is_string());
    assert!(by_id.contains_key(new.as_str()));
}

#[tokio::test]
async fn polling_with_the_last_change_seen_misses_nothing_under_concurrent_writes() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("poll-race", &[]).await;
    let created = parse_time(&owner.get_thread(&thread).await.expect(200).body["createdOn"]);

    // Writers: send, then edit or delete some of what they sent.
    let mut writers = Vec::new();
    for lane in 0..3 {
        let owner = owner.clone();
        let thread = thread.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..40 {
                let id = owner.send(&thread, &format!("w{lane}-{i}")).await;
                match i % 4 {
                    1 => {
                        owner
                            .patch(&message_path(&thread, &id), json!({"content": "edited"}))
                            .await
                            .expect(204);
                    }
                    2 => {
                        owner.delete(&message_path(&thread, &id)).await.expect(204);
                    }
                    _ => {}
                }
            }
        }));
    }

    // The poller: each round asks for what changed since the newest change it has seen, and
    // keeps the newest version of every message.
    let mut view: HashMap<String, Value> = HashMap::new();
    let mut since = created;
    let poll = |since: OffsetDateTime| {
        let owner = owner.clone();
        let path = format!(
            "{}?startTime={}",
            messages_path(&thread),
            enc(&rfc3339(since))
        );
        async move { owner.list_all(&path).await }
    };
    let mut absorb = |items: Vec<Value>, since: &mut OffsetDateTime| {
        for message in items {
            *since = (*since).max(changed_on(&message));
            let id = message["id"].as_str().expect("id").to_owned();
            let version = |m: &Value| m["version"].as_str().and_then(|v| v.parse::<i64>().ok());
            let newer = view
                .get(&id)
                .is_none_or(|old| version(old) < version(&message));
            if newer {
                view.insert(id, message);
            }
        }
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while writers.iter().any(|w| !w.is_finished()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "writers took too long"
        );
        let items = poll(since).await;
        absorb(items, &mut since);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for writer in writers {
        writer.await.expect("writer");
    }
    let items = poll(since).await;
    absorb(items, &mut since);

    // The poller's view is exactly the thread as it is.
    let truth = owner.messages(&thread).await;
    assert_eq!(view.len(), truth.len(), "every message seen");
    for message in &truth {
        let id = message["id"].as_str().expect("id");
        let seen = &view[id];
        assert_eq!(
            seen["version"], message["version"],
            "latest version of {id}"
        );
        assert_eq!(
            seen["deletedOn"].is_string(),
            message["deletedOn"].is_string()
        );
        assert_eq!(seen["content"], message["content"]);
    }
}
