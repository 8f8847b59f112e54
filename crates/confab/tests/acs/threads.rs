//! Chat threads: create, get, update, list, delete; metadata and retention (2025-03-15).

use std::collections::HashSet;
use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn create_thread_answers_201_with_the_thread() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let before = now();
    let resp = owner
        .create_thread_with(json!({"topic": "Lunch"}))
        .await
        .expect(201);
    let thread = &resp.body["chatThread"];
    let id = thread["id"].as_str().expect("id");
    assert!(id.starts_with("19:") && id.ends_with("@thread.v2"), "{id}");
    assert_eq!(thread["topic"], "Lunch");
    assert_close(
        parse_time(&thread["createdOn"]),
        before,
        Duration::from_secs(5),
    );
    assert_user_identifier(&thread["createdByCommunicationIdentifier"], &owner.id);
    assert!(thread["deletedOn"].is_null());
    if let Some(invalid) = resp.body["invalidParticipants"].as_array() {
        assert!(invalid.is_empty(), "{}", resp.text);
    }
}

#[tokio::test]
async fn create_thread_sends_a_location_header() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let resp = owner
        .create_thread_with(json!({"topic": "t"}))
        .await
        .expect(201);
    let id = resp.body["chatThread"]["id"].as_str().expect("id");
    let location = resp.header("location").expect("Location header");
    let decoded = location
        .replace("%3A", ":")
        .replace("%3a", ":")
        .replace("%40", "@");
    assert!(
        decoded.contains(&format!("/chat/threads/{id}")),
        "{location}"
    );
}

#[tokio::test]
async fn create_thread_with_participants() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let (a, b) = (server.user().await, server.user().await);
    let thread = owner.create_thread("three", &[&a, &b]).await;
    let ids: HashSet<String> = owner.participant_ids(&thread).await.into_iter().collect();
    let want: HashSet<String> = [&owner.id, &a.id, &b.id].into_iter().cloned().collect();
    assert_eq!(ids, want);
    a.get_thread(&thread).await.expect(200);
    b.send(&thread, "hi").await;
}

#[tokio::test]
async fn creator_is_a_participant_without_listing_themselves() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("solo", &[]).await;
    assert_eq!(owner.participant_ids(&thread).await, vec![owner.id.clone()]);
}

#[tokio::test]
async fn create_thread_without_topic_is_400() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    owner
        .create_thread_with(json!({"participants": []}))
        .await
        .error(400);
}

#[tokio::test]
async fn create_thread_with_empty_topic_is_400() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    owner
        .create_thread_with(json!({"topic": ""}))
        .await
        .error(400);
}

#[tokio::test]
async fn repeatability_request_id_creates_one_thread() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let key = uuid::Uuid::new_v4().to_string();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let resp = owner
            .raw()
            .send_with_headers(
                Method::POST,
                &with_api("/chat/threads", CHAT_API),
                &[("repeatability-request-id", key.as_str())],
                &json!({"topic": "once"}),
            )
            .await;
        // The repeat may answer 201 or 200; both carry the first thread.
        assert!(matches!(resp.status.as_u16(), 200 | 201), "{}", resp.text);
        ids.push(
            resp.body["chatThread"]["id"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }
    assert_eq!(ids[0], ids[1]);
    let listed = owner.list_all("/chat/threads").await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], ids[0].as_str());
}

#[tokio::test]
async fn different_repeatability_request_ids_create_two_threads() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let mut ids = HashSet::new();
    for _ in 0..2 {
        let key = uuid::Uuid::new_v4().to_string();
        let resp = owner
            .raw()
            .send_with_headers(
                Method::POST,
                &with_api("/chat/threads", CHAT_API),
                &[("repeatability-request-id", key.as_str())],
                &json!({"topic": "twice"}),
            )
            .await
            .expect(201);
        ids.insert(
            resp.body["chatThread"]["id"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }
    assert_eq!(ids.len(), 2);
    assert_eq!(owner.list_all("/chat/threads").await.len(), 2);
}

#[tokio::test]
async fn invalid_participants_are_reported_and_valid_ones_added() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let good = server.user().await;
    let body = json!({
        "topic": "mixed",
        "participants": [
            good.participant(),
            {"communicationIdentifier": {"rawId": "not-an-identifier"}},
        ],
    });
    let resp = owner.create_thread_with(body).await.expect(201);
    let invalid = resp.body["invalidParticipants"]
        .as_array()
        .expect("invalidParticipants");
    assert_eq!(invalid.len(), 1, "{}", resp.text);
    assert!(
        invalid[0]["code"].is_string() && invalid[0]["message"].is_string(),
        "{}",
        resp.text
    );
    if let Some(target) = invalid[0]["target"].as_str() {
        assert_eq!(target, "not-an-identifier");
    }
    let thread = resp.body["chatThread"]["id"].as_str().expect("id");
    let ids = owner.participant_ids(thread).await;
    assert!(ids.contains(&good.id), "{ids:?}");
    assert_eq!(ids.len(), 2, "{ids:?}");
}

#[tokio::test]
async fn get_thread_answers_its_properties() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let member = server.user().await;
    let created = owner
        .create_thread_with(json!({"topic": "props", "participants": [member.participant()]}))
        .await
        .expect(201)
        .body["chatThread"]
        .clone();
    let id = created["id"].as_str().expect("id");
    for user in [&owner, &member] {
        let got = user.get_thread(id).await.expect(200).body;
        assert_eq!(got["id"], id);
        assert_eq!(got["topic"], "props");
        assert_eq!(
            parse_time(&got["createdOn"]),
            parse_time(&created["createdOn"])
        );
        assert_user_identifier(&got["createdByCommunicationIdentifier"], &owner.id);
        assert!(got["deletedOn"].is_null());
    }
}

#[tokio::test]
async fn thread_id_may_be_raw_or_percent_encoded_in_paths() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("paths", &[]).await;
    let raw = format!("/chat/threads/{thread}");
    let encoded = thread_path(&thread);
    assert_ne!(raw, encoded);
    for path in [&raw, &encoded] {
        let got = owner.get(path).await.expect(200);
        assert_eq!(got.body["id"], thread.as_str());
        owner
            .post(&format!("{path}/messages"), json!({"content": "x"}))
            .await
            .expect(201);
    }
    assert_eq!(owner.messages_of_type(&thread, "text").await.len(), 2);
}

#[tokio::test]
async fn get_unknown_thread_is_404() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    owner
        .get_thread("19:0123456789abcdef0123456789abcdef@thread.v2")
        .await
        .error(404);
}

/// The swagger is silent on a malformed thread id; confab answers 400 (target chatThreadId),
/// since such an id cannot name any thread.
#[tokio::test]
async fn malformed_thread_id_is_400() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    for bad in ["not-a-thread", "19:xyz@thread.v2", "19:uni01_abc@thread.v2"] {
        let resp = owner.get_thread(bad).await;
        assert_eq!(resp.status.as_u16(), 400, "{bad}: {}", resp.text);
        resp.error(400);
    }
}

#[tokio::test]
async fn update_topic_answers_204_and_changes_it() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("old", &[]).await;
    let resp = owner
        .patch(&thread_path(&thread), json!({"topic": "new"}))
        .await
        .expect(204);
    assert!(resp.text.is_empty(), "{}", resp.text);
    assert_eq!(
        owner.get_thread(&thread).await.expect(200).body["topic"],
        "new"
    );
    let listed = owner.list_all("/chat/threads").await;
    assert_eq!(listed[0]["topic"], "new");
}

#[tokio::test]
async fn update_topic_adds_a_topic_updated_message() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("old", &[]).await;
    owner
        .patch(&thread_path(&thread), json!({"topic": "new"}))
        .await
        .expect(204);
    let updates = owner.messages_of_type(&thread, "topicUpdated").await;
    assert_eq!(updates.len(), 1, "{updates:?}");
    assert_eq!(updates[0]["content"]["topic"], "new");
    assert_user_identifier(
        &updates[0]["content"]["initiatorCommunicationIdentifier"],
        &owner.id,
    );
}

#[tokio::test]
async fn update_thread_accepts_plain_json_too() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("old", &[]).await;
    let body = serde_json::to_vec(&json!({"topic": "json"})).expect("json");
    owner
        .raw()
        .send_bytes(
            Method::PATCH,
            &with_api(&thread_path(&thread), CHAT_API),
            "application/json",
            body,
        )
        .await
        .expect(204);
    assert_eq!(owner.get_thread(&thread).await.body["topic"], "json");
}

#[tokio::test]
async fn update_thread_by_a_member_is_allowed() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let member = server.user().await;
    let thread = owner.create_thread("old", &[&member]).await;
    member
        .patch(&thread_path(&thread), json!({"topic": "theirs"}))
        .await
        .expect(204);
    assert_eq!(owner.get_thread(&thread).await.body["topic"], "theirs");
}

#[tokio::test]
async fn update_unknown_thread_is_404() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let path = thread_path("19:0123456789abcdef0123456789abcdef@thread.v2");
    owner.patch(&path, json!({"topic": "x"})).await.error(404);
}

#[tokio::test]
async fn list_threads_lists_only_the_callers_threads() {
    let server = TestServer::start().await;
    let (a, b) = (server.user().await, server.user().await);
    let shared = a.create_thread("shared", &[&b]).await;
    let only_a = a.create_thread("a only", &[]).await;
    let only_b = b.create_thread("b only", &[]).await;
    let ids = |items: Vec<serde_json::Value>| -> HashSet<String> {
        items
            .iter()
            .map(|t| t["id"].as_str().expect("id").to_owned())
            .collect()
    };
    assert_eq!(
        ids(a.list_all("/chat/threads").await),
        [shared.clone(), only_a].into()
    );
    assert_eq!(
        ids(b.list_all("/chat/threads").await),
        [shared, only_b].into()
    );
}

#[tokio::test]
async fn list_threads_items_have_id_topic_and_last_message_time() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("item", &[]).await;
    owner.send(&thread, "hi").await;
    let items = owner.list_all("/chat/threads").await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], thread.as_str());
    assert_eq!(items[0]["topic"], "item");
    assert_close(
        parse_time(&items[0]["lastMessageReceivedOn"]),
        now(),
        Duration::from_secs(10),
    );
}

/// Creates `n` threads; answers their ids.
async fn threads(owner: &User, n: usize) -> HashSet<String> {
    let mut ids = HashSet::new();
    for i in 0..n {
        ids.insert(owner.create_thread(&format!("t{i}"), &[]).await);
    }
    ids
}

#[tokio::test]
async fn list_threads_pages_by_max_page_size_following_absolute_next_links() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let created = threads(&owner, 5).await;
    let mut page = owner.get("/chat/threads?maxPageSize=2").await.expect(200);
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    loop {
        sizes.push(page.value().len());
        seen.extend(
            page.value()
                .iter()
                .map(|t| t["id"].as_str().expect("id").to_owned()),
        );
        let Some(link) = page.next_link() else { break };
        let absolute = if link.starts_with("http") {
            link
        } else {
            format!("{}{}", server.base, link)
        };
        assert!(
            absolute.starts_with("http://"),
            "keeps the client's scheme: {absolute}"
        );
        page = owner.follow(&absolute).await.expect(200);
    }
    assert!(sizes.iter().all(|s| *s <= 2), "{sizes:?}");
    assert_eq!(sizes.iter().sum::<usize>(), 5, "{sizes:?}");
    assert_eq!(seen.iter().cloned().collect::<HashSet<_>>(), created);
    assert_eq!(seen.len(), 5, "no duplicates: {seen:?}");
}

#[tokio::test]
async fn list_threads_pages_following_relative_next_links() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let created = threads(&owner, 5).await;
    let mut page = owner.get("/chat/threads?maxPageSize=2").await.expect(200);
    let mut seen = Vec::new();
    loop {
        assert!(page.value().len() <= 2);
        seen.extend(
            page.value()
                .iter()
                .map(|t| t["id"].as_str().expect("id").to_owned()),
        );
        let Some(link) = page.next_link() else { break };
        let rel = relative(&link);
        assert!(rel.starts_with("/chat/threads"), "{rel}");
        page = owner.follow(&rel).await.expect(200);
    }
    assert_eq!(seen.len(), 5, "{seen:?}");
    assert_eq!(seen.into_iter().collect::<HashSet<_>>(), created);
}

#[tokio::test]
async fn next_link_keeps_max_page_size() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    threads(&owner, 3).await;
    let page = owner.get("/chat/threads?maxPageSize=1").await.expect(200);
    let link = page.next_link().expect("nextLink");
    // Followed with api-version replaced; the page size is kept from the link.
    let next = owner.follow(&link).await.expect(200);
    assert_eq!(next.value().len(), 1, "{}", next.text);
}

#[tokio::test]
async fn list_threads_start_time_returns_only_newer_activity() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let old = owner.create_thread("old", &[]).await;
    tick().await;
    let mid = rfc3339(now());
    tick().await;
    let new = owner.create_thread("new", &[]).await;
    let path = format!("/chat/threads?startTime={}", enc(&mid));
    let ids: Vec<String> = owner
        .list_all(&path)
        .await
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, vec![new.clone()]);
    // Activity in the old thread brings it back.
    owner.send(&old, "ping").await;
    let ids: HashSet<String> = owner
        .list_all(&path)
        .await
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, [old, new].into());
}

#[tokio::test]
async fn list_threads_with_malformed_start_time_is_400() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    owner
        .get("/chat/threads?startTime=yesterday")
        .await
        .error(400);
}

#[tokio::test]
async fn list_threads_with_bad_max_page_size_is_400() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    for size in ["0", "-1", "abc", "201"] {
        let resp = owner
            .get(&format!("/chat/threads?maxPageSize={size}"))
            .await;
        assert_eq!(resp.status.as_u16(), 400, "{size}: {}", resp.text);
        resp.error(400);
    }
    owner.get("/chat/threads?maxPageSize=200").await.expect(200);
}

#[tokio::test]
async fn delete_thread_answers_204_then_get_is_404() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let member = server.user().await;
    let thread = owner.create_thread("doomed", &[&member]).await;
    let resp = owner.delete(&thread_path(&thread)).await.expect(204);
    assert!(resp.text.is_empty(), "{}", resp.text);
    owner.get_thread(&thread).await.error(404);
    member.get_thread(&thread).await.error(404);
    member
        .send_message_with(&thread, json!({"content": "x"}))
        .await
        .error(404);
}

#[tokio::test]
async fn deleted_thread_is_no_longer_listed_as_live() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("doomed", &[]).await;
    owner.delete(&thread_path(&thread)).await.expect(204);
    // Either gone from the list, or listed with deletedOn set.
    for item in owner.list_all("/chat/threads").await {
        if item["id"] == thread.as_str() {
            assert!(item["deletedOn"].is_string(), "{item}");
        }
    }
}

#[tokio::test]
async fn delete_unknown_thread_is_404() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("doomed", &[]).await;
    owner.delete(&thread_path(&thread)).await.expect(204);
    owner.delete(&thread_path(&thread)).await.error(404);
}

// --- 2025-03-15: metadata and retention --------------------------------------------------------

#[tokio::test]
async fn thread_metadata_and_retention_round_trip() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let body = json!({
        "topic": "meta",
        "metadata": {"project": "confab", "tier": "gold"},
        "retentionPolicy": {"kind": "threadCreationDate", "deleteThreadAfterDays": 30},
    });
    let resp = owner.create_thread_with(body).await.expect(201);
    let created = &resp.body["chatThread"];
    assert_eq!(
        created["metadata"],
        json!({"project": "confab", "tier": "gold"})
    );
    assert_eq!(
        created["retentionPolicy"],
        json!({"kind": "threadCreationDate", "deleteThreadAfterDays": 30})
    );
    let thread = created["id"].as_str().expect("id");
    let got = owner.get_thread(thread).await.expect(200).body;
    assert_eq!(
        got["metadata"],
        json!({"project": "confab", "tier": "gold"})
    );
    assert_eq!(
        got["retentionPolicy"],
        json!({"kind": "threadCreationDate", "deleteThreadAfterDays": 30})
    );
}

#[tokio::test]
async fn thread_metadata_and_retention_update_via_patch() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("meta", &[]).await;
    let body = json!({
        "metadata": {"k": "v"},
        "retentionPolicy": {"kind": "threadCreationDate", "deleteThreadAfterDays": 60},
    });
    owner.patch(&thread_path(&thread), body).await.expect(204);
    let got = owner.get_thread(&thread).await.expect(200).body;
    assert_eq!(got["topic"], "meta", "topic untouched by the patch");
    assert_eq!(got["metadata"], json!({"k": "v"}));
    assert_eq!(got["retentionPolicy"]["deleteThreadAfterDays"], 60);
    // Metadata-only changes add no topicUpdated message.
    assert!(owner
        .messages_of_type(&thread, "topicUpdated")
        .await
        .is_empty());
}

#[tokio::test]
async fn retention_policy_none_round_trips() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let body = json!({"topic": "keep", "retentionPolicy": {"kind": "none"}});
    let resp = owner.create_thread_with(body).await.expect(201);
    let thread = resp.body["chatThread"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let got = owner.get_thread(&thread).await.expect(200).body;
    // `none` may be echoed or omitted; it must not become a deletion policy.
    let policy = &got["retentionPolicy"];
    assert!(policy.is_null() || policy["kind"] == "none", "{policy}");
}

#[tokio::test]
async fn thread_metadata_over_1_kb_is_400() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let body = json!({"topic": "big", "metadata": {"k": "v".repeat(1100)}});
    owner.create_thread_with(body).await.error(400);
}

#[tokio::test]
async fn participant_metadata_round_trips() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let member = server.user().await;
    let body = json!({
        "topic": "p-meta",
        "participants": [{
            "communicationIdentifier": member.ident(),
            "displayName": "Member",
            "metadata": {"role": "reviewer"},
        }],
    });
    let resp = owner.create_thread_with(body).await.expect(201);
    let thread = resp.body["chatThread"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let listed = owner.list_all(&participants_path(&thread)).await;
    let entry = listed
        .iter()
        .find(|p| p["communicationIdentifier"]["rawId"] == member.id.as_str())
        .expect("member listed");
    assert_eq!(entry["displayName"], "Member");
    assert_eq!(entry["metadata"], json!({"role": "reviewer"}));
}

#[tokio::test]
async fn retention_days_follow_the_service_limits_of_30_to_90() {
    // NOTES.md, limits of the cloud service: retention 30–90 days.
    let server = TestServer::start().await;
    let owner = server.user().await;
    for days in [30, 90] {
        let body = json!({
            "topic": "r",
            "retentionPolicy": {"kind": "threadCreationDate", "deleteThreadAfterDays": days},
        });
        let resp = owner.create_thread_with(body).await;
        assert_eq!(resp.status.as_u16(), 201, "{days}: {}", resp.text);
    }
    for days in [0, 29, 91] {
        let body = json!({
            "topic": "r",
            "retentionPolicy": {"kind": "threadCreationDate", "deleteThreadAfterDays": days},
        });
        let resp = owner.create_thread_with(body).await;
        assert_eq!(resp.status.as_u16(), 400, "{days}: {}", resp.text);
        resp.error(400);
    }
}

#[tokio::test]
async fn retention_policy_without_days_is_400() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let body = json!({"topic": "r", "retentionPolicy": {"kind": "threadCreationDate"}});
    owner.create_thread_with(body).await.error(400);
}

#[tokio::test]
async fn update_topic_to_empty_is_400() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("keep", &[]).await;
    owner
        .patch(&thread_path(&thread), json!({"topic": ""}))
        .await
        .error(400);
    assert_eq!(owner.get_thread(&thread).await.body["topic"], "keep");
}

#[tokio::test]
async fn update_metadata_over_1_kb_is_400() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("meta", &[]).await;
    let body = json!({"metadata": {"k": "v".repeat(1100)}});
    owner.patch(&thread_path(&thread), body).await.error(400);
}

#[tokio::test]
async fn start_time_accepts_the_sdks_date_time_forms() {
    // Python sends `2024-01-01T00:00:00.000Z`, others an explicit offset; both are RFC 3339.
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("forms", &[]).await;
    let hour_ago = now() - time::Duration::hours(1);
    let whole = rfc3339(hour_ago);
    let fractional = whole.replace('Z', ".123Z");
    let offset = whole.replace('Z', "+00:00");
    let east = rfc3339(hour_ago + time::Duration::hours(2)).replace('Z', "+02:00");
    for form in [whole, fractional, offset, east] {
        let path = format!("/chat/threads?startTime={}", enc(&form));
        let resp = owner.get(&path).await;
        assert_eq!(resp.status.as_u16(), 200, "{form}: {}", resp.text);
        let ids: Vec<&str> = resp
            .value()
            .iter()
            .map(|t| t["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, vec![thread.as_str()], "{form}");
    }
}

#[tokio::test]
async fn concurrent_creates_with_one_repeatability_id_make_one_thread() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let key = uuid::Uuid::new_v4().to_string();
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let (owner, key) = (owner.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            let resp = owner
                .raw()
                .send_with_headers(
                    Method::POST,
                    &with_api("/chat/threads", CHAT_API),
                    &[("repeatability-request-id", key.as_str())],
                    &json!({"topic": "race"}),
                )
                .await;
            assert!(matches!(resp.status.as_u16(), 200 | 201), "{}", resp.text);
            resp.body["chatThread"]["id"]
                .as_str()
                .expect("id")
                .to_owned()
        }));
    }
    let mut ids = HashSet::new();
    for task in tasks {
        ids.insert(task.await.expect("create"));
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(owner.list_all("/chat/threads").await.len(), 1);
}

#[tokio::test]
async fn list_threads_start_time_with_offset_is_kept_in_next_links() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    owner.create_thread("old", &[]).await;
    tick().await;
    let mid = rfc3339(now()).replace('Z', "+00:00");
    tick().await;
    let new = threads(&owner, 3).await;
    let path = format!("/chat/threads?startTime={}&maxPageSize=1", enc(&mid));
    let ids: HashSet<String> = owner
        .list_all(&path)
        .await
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, new);
}

#[tokio::test]
async fn another_users_repeatability_id_does_not_return_their_thread() {
    // The key is the client's idempotency token for its own request: another caller reusing it
    // must not be handed a thread it does not belong to.
    let server = TestServer::start().await;
    let (a, b) = (server.user().await, server.user().await);
    let key = uuid::Uuid::new_v4().to_string();
    let create = |user: User, topic: &'static str| {
        let key = key.clone();
        async move {
            user.raw()
                .send_with_headers(
                    Method::POST,
                    &with_api("/chat/threads", CHAT_API),
                    &[("repeatability-request-id", key.as_str())],
                    &json!({"topic": topic}),
                )
                .await
        }
    };
    let first = create(a.clone(), "a's").await.expect(201);
    let a_thread = first.body["chatThread"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let second = create(b.clone(), "b's").await;
    if second.status.is_success() {
        let b_thread = second.body["chatThread"]["id"]
            .as_str()
            .expect("id")
            .to_owned();
        assert_ne!(
            b_thread, a_thread,
            "b was handed a's thread: {}",
            second.text
        );
        b.get_thread(&b_thread).await.expect(200);
    } else {
        let status = second.status.as_u16();
        second.error(status);
    }
    assert_eq!(
        a.get_thread(&a_thread).await.expect(200).body["topic"],
        "a's"
    );
}

#[tokio::test]
async fn repeated_create_with_a_different_body_does_not_create_another_thread() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let key = uuid::Uuid::new_v4().to_string();
    let mut statuses = Vec::new();
    for topic in ["first", "second"] {
        let resp = owner
            .raw()
            .send_with_headers(
                Method::POST,
                &with_api("/chat/threads", CHAT_API),
                &[("repeatability-request-id", key.as_str())],
                &json!({"topic": topic}),
            )
            .await;
        statuses.push(resp.status.as_u16());
    }
    assert_eq!(statuses[0], 201);
    let listed = owner.list_all("/chat/threads").await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["topic"], "first");
}

#[tokio::test]
async fn list_threads_is_ordered_by_last_activity_newest_first() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let a = owner.create_thread("a", &[]).await;
    let b = owner.create_thread("b", &[]).await;
    let c = owner.create_thread("c", &[]).await;
    owner.send(&a, "bump a").await;
    let items = owner.list_all("/chat/threads").await;
    let ids: Vec<&str> = items.iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![a.as_str(), c.as_str(), b.as_str()]);
}

#[tokio::test]
async fn many_threads_created_at_once_page_without_loss_or_duplicates() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let mut tasks = Vec::new();
    for i in 0..25 {
        let owner = owner.clone();
        tasks.push(tokio::spawn(async move {
            owner.create_thread(&format!("t{i}"), &[]).await
        }));
    }
    let mut created = HashSet::new();
    for task in tasks {
        created.insert(task.await.expect("create"));
    }
    let items = owner.list_all("/chat/threads?maxPageSize=3").await;
    let ids: Vec<String> = items
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 25, "{ids:?}");
    assert_eq!(ids.into_iter().collect::<HashSet<_>>(), created);
}

#[tokio::test]
async fn unknown_body_fields_are_ignored() {
    // Newer SDKs may send fields this server does not know.
    let server = TestServer::start().await;
    let owner = server.user().await;
    let body = json!({"topic": "future", "someNewField": {"x": 1}});
    let resp = owner.create_thread_with(body).await.expect(201);
    let thread = resp.body["chatThread"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    owner
        .send_message_with(
            &thread,
            json!({"content": "x", "attachments": [], "newThing": true}),
        )
        .await
        .expect(201);
}
