//! Participants: add, list (paging), remove; access after removal; history sharing; limits.

use std::collections::HashSet;

use serde_json::{json, Value};

use crate::support::*;

fn phones(range: std::ops::Range<usize>) -> Vec<Value> {
    range.map(|n| participant(&phone(n))).collect()
}

#[tokio::test]
async fn add_participants_answers_201() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let newcomer = server.user().await;
    let thread = owner.create_thread("add", &[]).await;
    let resp = owner
        .add_participants(&thread, vec![newcomer.participant()])
        .await
        .expect(201);
    assert!(resp.body.is_object(), "{}", resp.text);
    if let Some(invalid) = resp.body["invalidParticipants"].as_array() {
        assert!(invalid.is_empty(), "{}", resp.text);
    }
    let ids = owner.participant_ids(&thread).await;
    assert!(ids.contains(&newcomer.id), "{ids:?}");
    newcomer.get_thread(&thread).await.expect(200);
    newcomer.send(&thread, "I'm in").await;
}

#[tokio::test]
async fn add_reports_invalid_participants_and_adds_the_valid_ones() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let newcomer = server.user().await;
    let thread = owner.create_thread("add", &[]).await;
    let bad = json!({"communicationIdentifier": {"rawId": "28:not-supported"}});
    let resp = owner
        .add_participants(&thread, vec![newcomer.participant(), bad])
        .await
        .expect(201);
    let invalid = resp.body["invalidParticipants"]
        .as_array()
        .expect("invalidParticipants");
    assert_eq!(invalid.len(), 1, "{}", resp.text);
    assert!(invalid[0]["code"].is_string() && invalid[0]["message"].is_string());
    if let Some(target) = invalid[0]["target"].as_str() {
        assert_eq!(target, "28:not-supported");
    }
    let ids = owner.participant_ids(&thread).await;
    assert!(ids.contains(&newcomer.id), "{ids:?}");
    assert_eq!(ids.len(), 2, "{ids:?}");
}

#[tokio::test]
async fn re_adding_a_participant_is_a_no_op() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let member = server.user().await;
    let thread = owner.create_thread("again", &[&member]).await;
    owner.add(&thread, &[&member]).await;
    let ids = owner.participant_ids(&thread).await;
    assert_eq!(
        ids.iter().filter(|id| **id == member.id).count(),
        1,
        "{ids:?}"
    );
    assert_eq!(ids.len(), 2);
}

#[tokio::test]
async fn participant_given_without_raw_id_is_added() {
    // rawId is optional in requests: the kind-specific property suffices.
    let server = TestServer::start().await;
    let owner = server.user().await;
    let newcomer = server.user().await;
    let thread = owner.create_thread("no raw id", &[]).await;
    let p = json!({"communicationIdentifier": {"communicationUser": {"id": newcomer.id}}});
    owner.add_participants(&thread, vec![p]).await.expect(201);
    assert!(owner.participant_ids(&thread).await.contains(&newcomer.id));
}

#[tokio::test]
async fn phone_numbers_are_participants() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("phones", &[]).await;
    let number = phone(42);
    owner
        .add_participants(&thread, vec![participant(&number)])
        .await
        .expect(201);
    let listed = owner.list_all(&participants_path(&thread)).await;
    let entry = listed
        .iter()
        .find(|p| p["communicationIdentifier"]["rawId"] == number.as_str())
        .unwrap_or_else(|| panic!("{number} in {listed:?}"));
    assert_eq!(
        entry["communicationIdentifier"]["phoneNumber"]["value"],
        &number[2..]
    );
}

#[tokio::test]
async fn list_participants_shows_identifier_display_name_and_share_history_time() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let member = server.user().await;
    let thread = owner.create_thread("list", &[]).await;
    let share = rfc3339(now() - time::Duration::hours(1));
    let p = json!({
        "communicationIdentifier": member.ident(),
        "displayName": "Member",
        "shareHistoryTime": share,
    });
    owner.add_participants(&thread, vec![p]).await.expect(201);
    let listed = owner.list_all(&participants_path(&thread)).await;
    let entry = listed
        .iter()
        .find(|p| p["communicationIdentifier"]["rawId"] == member.id.as_str())
        .expect("member listed");
    assert_user_identifier(&entry["communicationIdentifier"], &member.id);
    assert_eq!(entry["displayName"], "Member");
    assert_eq!(
        parse_time(&entry["shareHistoryTime"]),
        parse_time(&json!(share))
    );
}

#[tokio::test]
async fn list_participants_pages_with_max_page_size_and_next_link() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("pages", &[]).await;
    owner
        .add_participants(&thread, phones(0..6))
        .await
        .expect(201);
    let mut page = owner
        .get(&format!("{}?maxPageSize=2", participants_path(&thread)))
        .await;
    let mut seen = Vec::new();
    loop {
        let page_ok = page.expect(200);
        assert!(page_ok.value().len() <= 2, "{}", page_ok.text);
        seen.extend(
            page_ok
                .value()
                .iter()
                .map(|p| raw_id(&p["communicationIdentifier"])),
        );
        let Some(link) = page_ok.next_link() else {
            break;
        };
        page = owner.follow(&link).await;
    }
    assert_eq!(seen.len(), 7, "{seen:?}");
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), 7, "{seen:?}");
    assert!(unique.contains(&owner.id));
}

#[tokio::test]
async fn list_participants_skip() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("skip", &[]).await;
    owner
        .add_participants(&thread, phones(0..4))
        .await
        .expect(201);
    let all = owner.participant_ids(&thread).await;
    assert_eq!(all.len(), 5);
    let skipped = owner
        .get(&format!("{}?skip=2", participants_path(&thread)))
        .await
        .expect(200);
    let rest: Vec<String> = skipped
        .value()
        .iter()
        .map(|p| raw_id(&p["communicationIdentifier"]))
        .collect();
    assert_eq!(rest, all[2..].to_vec());
    let past_end = owner
        .get(&format!("{}?skip=10", participants_path(&thread)))
        .await
        .expect(200);
    assert!(past_end.value().is_empty());
}

#[tokio::test]
async fn list_participants_skip_with_paging() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("skip", &[]).await;
    owner
        .add_participants(&thread, phones(0..6))
        .await
        .expect(201);
    let all = owner.participant_ids(&thread).await;
    let items = owner
        .list_all(&format!(
            "{}?skip=3&maxPageSize=2",
            participants_path(&thread)
        ))
        .await;
    let ids: Vec<String> = items
        .iter()
        .map(|p| raw_id(&p["communicationIdentifier"]))
        .collect();
    assert_eq!(ids, all[3..].to_vec());
}

#[tokio::test]
async fn remove_participant_answers_204() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let member = server.user().await;
    let thread = owner.create_thread("remove", &[&member]).await;
    let resp = owner
        .remove_participant(&thread, &member.id)
        .await
        .expect(204);
    assert!(resp.text.is_empty(), "{}", resp.text);
    assert_eq!(owner.participant_ids(&thread).await, vec![owner.id.clone()]);
}

#[tokio::test]
async fn remove_phone_number_participant() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("remove", &[]).await;
    owner
        .add_participants(&thread, phones(0..2))
        .await
        .expect(201);
    owner
        .remove_participant(&thread, &phone(0))
        .await
        .expect(204);
    let ids = owner.participant_ids(&thread).await;
    assert!(
        !ids.contains(&phone(0)) && ids.contains(&phone(1)),
        "{ids:?}"
    );
}

#[tokio::test]
async fn removed_participant_is_forbidden_at_once() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let member = server.user().await;
    let thread = owner.create_thread("out", &[&member]).await;
    let message = owner.send(&thread, "before").await;
    member.get_thread(&thread).await.expect(200);
    owner
        .remove_participant(&thread, &member.id)
        .await
        .expect(204);
    member.get_thread(&thread).await.error(403);
    member
        .send_message_with(&thread, json!({"content": "x"}))
        .await
        .error(403);
    member.get(&messages_path(&thread)).await.error(403);
    member.get_message(&thread, &message).await.error(403);
    member.get(&participants_path(&thread)).await.error(403);
    // And the thread is no longer listed for them.
    let listed = member.list_all("/chat/threads").await;
    assert!(
        listed.iter().all(|t| t["id"] != thread.as_str()),
        "{listed:?}"
    );
}

#[tokio::test]
async fn non_participant_is_forbidden() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let stranger = server.user().await;
    let thread = owner.create_thread("private", &[]).await;
    stranger.get_thread(&thread).await.error(403);
    stranger.get(&participants_path(&thread)).await.error(403);
    stranger
        .add_participants(&thread, vec![stranger.participant()])
        .await
        .error(403);
    stranger
        .remove_participant(&thread, &owner.id)
        .await
        .error(403);
    assert_eq!(owner.participant_ids(&thread).await, vec![owner.id.clone()]);
}

#[tokio::test]
async fn share_history_time_hides_earlier_messages() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let late = server.user().await;
    let thread = owner.create_thread("history", &[]).await;
    let early = owner.send(&thread, "before you came").await;
    tick().await;
    let share = rfc3339(now());
    tick().await;
    let p = json!({"communicationIdentifier": late.ident(), "shareHistoryTime": share});
    owner.add_participants(&thread, vec![p]).await.expect(201);
    let after = owner.send(&thread, "welcome").await;
    let visible: Vec<String> = late
        .messages(&thread)
        .await
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(visible.contains(&after), "{visible:?}");
    assert!(!visible.contains(&early), "{visible:?}");
    late.get_message(&thread, &early).await.error(404);
    late.get_message(&thread, &after).await.expect(200);
    // The owner still sees everything.
    let owner_sees: Vec<String> = owner
        .messages(&thread)
        .await
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(owner_sees.contains(&early) && owner_sees.contains(&after));
}

#[tokio::test]
async fn without_share_history_time_the_whole_history_is_visible() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let late = server.user().await;
    let thread = owner.create_thread("history", &[]).await;
    let early = owner.send(&thread, "old news").await;
    owner.add(&thread, &[&late]).await;
    late.get_message(&thread, &early).await.expect(200);
    let visible = late.messages_of_type(&thread, "text").await;
    assert_eq!(visible.len(), 1);
}

#[tokio::test]
async fn add_more_than_200_in_one_batch_is_400() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("batch", &[]).await;
    owner
        .add_participants(&thread, phones(0..201))
        .await
        .error(400);
    assert_eq!(
        owner.participant_ids(&thread).await.len(),
        1,
        "nothing added"
    );
    owner
        .add_participants(&thread, phones(0..200))
        .await
        .expect(201);
    assert_eq!(owner.participant_ids(&thread).await.len(), 201);
}

#[tokio::test]
async fn create_with_more_than_200_participants_is_400() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let body = json!({"topic": "big", "participants": phones(0..201)});
    owner.create_thread_with(body).await.error(400);
    assert!(owner.list_all("/chat/threads").await.is_empty());
}

#[tokio::test]
async fn more_than_250_participants_in_total_is_400() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let body = json!({"topic": "crowd", "participants": phones(0..200)});
    let thread = owner.create_thread_with(body).await.expect(201).body["chatThread"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    // 201 now; 49 more make exactly 250.
    owner
        .add_participants(&thread, phones(200..249))
        .await
        .expect(201);
    assert_eq!(owner.participant_ids(&thread).await.len(), 250);
    owner
        .add_participants(&thread, phones(249..250))
        .await
        .error(400);
    assert_eq!(owner.participant_ids(&thread).await.len(), 250);
}

#[tokio::test]
async fn add_empty_participant_list_is_400() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("empty", &[]).await;
    owner.add_participants(&thread, vec![]).await.error(400);
}

#[tokio::test]
async fn add_participants_without_participants_field_is_400() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("empty", &[]).await;
    owner
        .post(&format!("{}/:add", participants_path(&thread)), json!({}))
        .await
        .error(400);
}

#[tokio::test]
async fn participant_metadata_over_1_kb_is_400() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let member = server.user().await;
    let thread = owner.create_thread("meta", &[]).await;
    let p = json!({"communicationIdentifier": member.ident(), "metadata": {"k": "v".repeat(1100)}});
    let resp = owner.add_participants(&thread, vec![p]).await;
    // Either refused as a whole (400) or reported as an invalid participant (201).
    match resp.status.as_u16() {
        201 => {
            let invalid = resp.body["invalidParticipants"]
                .as_array()
                .expect("invalidParticipants");
            assert_eq!(invalid.len(), 1, "{}", resp.text);
        }
        _ => {
            resp.error(400);
        }
    }
    assert!(!owner.participant_ids(&thread).await.contains(&member.id));
}

#[tokio::test]
async fn remove_with_malformed_identifier_is_400() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("bad", &[]).await;
    let path = format!("{}/:remove", participants_path(&thread));
    owner
        .post(&path, json!({"rawId": "garbage"}))
        .await
        .error(400);
}

#[tokio::test]
async fn remove_with_an_identifier_without_raw_id() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let member = server.user().await;
    let thread = owner.create_thread("remove", &[&member]).await;
    let path = format!("{}/:remove", participants_path(&thread));
    owner
        .post(&path, json!({"communicationUser": {"id": member.id}}))
        .await
        .expect(204);
    assert_eq!(owner.participant_ids(&thread).await, vec![owner.id.clone()]);
}

#[tokio::test]
async fn phone_number_without_raw_id_is_added() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("phone", &[]).await;
    let p = json!({"communicationIdentifier": {"phoneNumber": {"value": "+15550000777"}}});
    owner.add_participants(&thread, vec![p]).await.expect(201);
    assert!(owner
        .participant_ids(&thread)
        .await
        .contains(&"4:+15550000777".to_owned()));
}

#[tokio::test]
async fn share_history_time_given_on_create_is_honoured() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let member = server.user().await;
    let share = rfc3339(now() + time::Duration::hours(1));
    let body = json!({
        "topic": "future",
        "participants": [{"communicationIdentifier": member.ident(), "shareHistoryTime": share}],
    });
    let thread = owner.create_thread_with(body).await.expect(201).body["chatThread"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let early = owner.send(&thread, "now").await;
    // Sent before the member's shareHistoryTime: hidden from them.
    member.get_message(&thread, &early).await.error(404);
    assert!(member.messages_of_type(&thread, "text").await.is_empty());
    owner.get_message(&thread, &early).await.expect(200);
}

/// A shareHistoryTime outside the years 0 to 9999 in UTC is refused, on create and on add:
/// it could not be written back (a 500 once), and one past 9999 was kept as none, showing the
/// whole history.
#[tokio::test]
async fn share_history_time_outside_the_year_range_is_400() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let member = server.user().await;
    let thread = owner.create_thread("range", &[]).await;
    for share in ["0000-01-01T00:00:00+00:01", "9999-12-31T23:59:59-00:01"] {
        let p = json!({"communicationIdentifier": member.ident(), "shareHistoryTime": share});
        let err = owner
            .create_thread_with(json!({"topic": "t", "participants": [p.clone()]}))
            .await
            .error(400);
        assert!(
            err["message"]
                .as_str()
                .is_some_and(|m| m.contains("shareHistoryTime")),
            "{err}"
        );
        owner.add_participants(&thread, vec![p]).await.error(400);
    }
    // The last second of year 9999 in UTC is still a time.
    let last = json!({"communicationIdentifier": member.ident(),
                      "shareHistoryTime": "9999-12-31T23:59:59Z"});
    owner
        .add_participants(&thread, vec![last])
        .await
        .expect(201);
    let early = owner.send(&thread, "before").await;
    member.get_message(&thread, &early).await.error(404);
}

#[tokio::test]
async fn list_participants_bad_paging_parameters_are_400() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("bad", &[]).await;
    for query in ["maxPageSize=0", "maxPageSize=x", "skip=-1", "skip=x"] {
        let resp = owner
            .get(&format!("{}?{query}", participants_path(&thread)))
            .await;
        assert_eq!(resp.status.as_u16(), 400, "{query}: {}", resp.text);
        resp.error(400);
    }
}

#[tokio::test]
async fn removed_participant_can_be_added_again() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let member = server.user().await;
    let thread = owner.create_thread("again", &[&member]).await;
    owner
        .remove_participant(&thread, &member.id)
        .await
        .expect(204);
    member.get_thread(&thread).await.error(403);
    owner.add(&thread, &[&member]).await;
    member.get_thread(&thread).await.expect(200);
    member.send(&thread, "back").await;
}

#[tokio::test]
async fn a_participant_may_leave_by_removing_themselves() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let member = server.user().await;
    let thread = owner.create_thread("leave", &[&member]).await;
    member
        .remove_participant(&thread, &member.id)
        .await
        .expect(204);
    member.get_thread(&thread).await.error(403);
    assert_eq!(owner.participant_ids(&thread).await, vec![owner.id.clone()]);
}

#[tokio::test]
async fn duplicate_entries_in_one_batch_add_one_participant() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let member = server.user().await;
    let thread = owner.create_thread("dup", &[]).await;
    let resp = owner
        .add_participants(&thread, vec![member.participant(), member.participant()])
        .await;
    resp.expect(201);
    let ids = owner.participant_ids(&thread).await;
    assert_eq!(
        ids.iter().filter(|id| **id == member.id).count(),
        1,
        "{ids:?}"
    );
}

#[tokio::test]
async fn creator_listed_among_participants_appears_once_with_their_display_name() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let body = json!({
        "topic": "me",
        "participants": [{"communicationIdentifier": owner.ident(), "displayName": "Boss"}],
    });
    let thread = owner.create_thread_with(body).await.expect(201).body["chatThread"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let listed = owner.list_all(&participants_path(&thread)).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["displayName"], "Boss");
}

#[tokio::test]
async fn all_invalid_participants_on_create_still_create_the_thread() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let body = json!({
        "topic": "lonely",
        "participants": [
            {"communicationIdentifier": {"rawId": "bogus-1"}},
            {"communicationIdentifier": {"rawId": "4:+12"}},
        ],
    });
    let resp = owner.create_thread_with(body).await.expect(201);
    let invalid = resp.body["invalidParticipants"]
        .as_array()
        .expect("invalidParticipants");
    assert_eq!(invalid.len(), 2, "{}", resp.text);
    let thread = resp.body["chatThread"]["id"].as_str().expect("id");
    assert_eq!(owner.participant_ids(thread).await, vec![owner.id.clone()]);
}

#[tokio::test]
async fn a_batch_of_201_entries_is_400_even_if_one_is_invalid() {
    // The limit is on the batch: 200 valid entries and one invalid one are 201 entries.
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("batch", &[]).await;
    let mut batch = phones(0..200);
    batch.push(json!({"communicationIdentifier": {"rawId": "bogus"}}));
    owner
        .add_participants(&thread, batch.clone())
        .await
        .error(400);
    assert_eq!(
        owner.participant_ids(&thread).await.len(),
        1,
        "nothing added"
    );
    // The same on create.
    let body = json!({"topic": "batch", "participants": batch});
    owner.create_thread_with(body).await.error(400);
}

#[tokio::test]
async fn sdk_shaped_identifiers_with_kind_and_fractional_times_are_accepted() {
    // What the SDKs serialize: `kind` next to rawId and the kind's property, times with
    // milliseconds.
    let server = TestServer::start().await;
    let owner = server.user().await;
    let member = server.user().await;
    let thread = owner.create_thread("sdk", &[]).await;
    let share = rfc3339(now() - time::Duration::hours(1)).replace('Z', ".000Z");
    let p = json!({
        "communicationIdentifier": {
            "kind": "communicationUser",
            "rawId": member.id,
            "communicationUser": {"id": member.id},
        },
        "displayName": "Member",
        "shareHistoryTime": share,
    });
    owner.add_participants(&thread, vec![p]).await.expect(201);
    let phone = json!({
        "communicationIdentifier": {
            "kind": "phoneNumber",
            "rawId": "4:+15550001234",
            "phoneNumber": {"value": "+15550001234"},
        },
    });
    owner
        .add_participants(&thread, vec![phone])
        .await
        .expect(201);
    let ids = owner.participant_ids(&thread).await;
    assert!(
        ids.contains(&member.id) && ids.contains(&"4:+15550001234".to_owned()),
        "{ids:?}"
    );
    let remove = json!({"kind": "communicationUser", "rawId": member.id, "communicationUser": {"id": member.id}});
    owner
        .post(&format!("{}/:remove", participants_path(&thread)), remove)
        .await
        .expect(204);
}

#[tokio::test]
async fn teams_identifiers_are_reported_as_invalid_participants() {
    let server = TestServer::start().await;
    let owner = server.user().await;
    let thread = owner.create_thread("teams", &[]).await;
    let teams = json!({
        "communicationIdentifier": {
            "rawId": "8:orgid:00000000-0000-0000-0000-000000000000",
            "microsoftTeamsUser": {"userId": "00000000-0000-0000-0000-000000000000"},
        },
    });
    let resp = owner
        .add_participants(&thread, vec![teams])
        .await
        .expect(201);
    let invalid = resp.body["invalidParticipants"]
        .as_array()
        .expect("invalidParticipants");
    assert_eq!(invalid.len(), 1, "{}", resp.text);
}
