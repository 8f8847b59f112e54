//! Actions: surveys (every question type, validation, updates, multiple responses, anonymous
//! and sender-only results, due dates), jobs, polls, announcements, let's-meet, custom packages
//! with properties; listing by type, date and page; details with responses; public-group
//! subscribers responding; reminders; the action as a text message on the ACS face.

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::*;

/// The docs' survey request, relaxed JSON as they print it.
const DOCS_SURVEY: &str = r#"{
  actionType: "Survey",
  actionBody: {
    isAnonymous:false,
    isSenderOnly:false,
    acceptMultipleResponses:false,
    dueDate:10,
    title: "A test survey!!",
    questions: [
        { title: "a test question written here", type: "Text" },
        { title: "Single select question", type: "SingleOption",
          options: [{title:"Opt1"},{title:"Opt2"}] },
        { title: "Multi select question", type: "MultiOption",
          options: [{title:"MOpt1"},{title:"MOpt2"},{title:"MOpt3"}] },
        { title: "Numeric question", type: "Numeric" },
        { title: "Location question", type: "Location" },
        { title: "DateTime question", type: "DateTime" },
        { title: "Image question", type: "Image" }
    ]
  }
}"#;

fn good_answers() -> Value {
    json!(["Response from API", "Opt1", ["MOpt1", "MOpt2"], 123,
           {"lt": 1, "lg": 1, "n": "cool"}, 1500377471, "eyJUaHVtYm5haWwiOiIv"])
}

async fn post_raw(kz: &Kz, group: &str, body: &str) -> Resp {
    kz.call(
        Method::POST,
        &format!("/groups/{group}/actions"),
        Some(body),
    )
    .await
}

/// Posts an action; answers its actionId.
async fn post_action(kz: &Kz, group: &str, body: &Value) -> String {
    let resp = kz
        .post(&format!("/groups/{group}/actions"), body)
        .await
        .expect(200);
    assert_eq!(resp.body["referenceId"], resp.body["actionId"]);
    resp.body["actionId"].as_str().expect("actionId").to_owned()
}

async fn respond(kz: &Kz, group: &str, action: &str, body: &Value) -> Resp {
    kz.post(&format!("/groups/{group}/actions/{action}/responses"), body)
        .await
}

async fn answer(kz: &Kz, group: &str, action: &str, answers: Value) -> Resp {
    respond(
        kz,
        group,
        action,
        &json!({"actionType": "Survey", "actionBody": {"Answers": answers}}),
    )
    .await
}

async fn details(kz: &Kz, group: &str, action: &str) -> Value {
    kz.get(&format!("/groups/{group}/actions/{action}?getDetails=true"))
        .await
        .expect(200)
        .body
}

fn survey(title: &str, flags: Value) -> Value {
    let mut body = json!({
        "title": title,
        "questions": [{"title": "Pick", "type": "SingleOption",
                       "options": [{"title": "A"}, {"title": "B"}]}],
    });
    if let (Value::Object(body), Value::Object(flags)) = (&mut body, flags) {
        body.extend(flags);
    }
    json!({"actionType": "Survey", "actionBody": body})
}

#[tokio::test]
async fn survey_responses_are_validated_and_updated_by_response_id() {
    let server = TestServer::start().await;
    let alice = server.user(&number(1)).await;
    let bob = server.user(&number(2)).await;
    let carol = server.user(&number(3)).await;
    let group = alice.group(&[&number(2), &number(3)]).await;

    let created = post_raw(&alice, &group, DOCS_SURVEY).await.expect(200);
    let action = created.body["actionId"].as_str().expect("id").to_owned();
    assert!(uuid::Uuid::parse_str(&action).is_ok());

    // The docs' response body (mixed-case names, the short location form).
    let first = respond(
        &bob,
        &group,
        &action,
        &json!({"actionType": "Survey", "actionBody": {
            "responseName": "API response",
            "responseLocation": {"latitude": 1, "longitude": 1, "name": "locationName234"},
            "Answers": good_answers()}}),
    )
    .await
    .expect(200);
    let bob_response = first.body["responseId"].as_str().expect("id").to_owned();
    answer(&carol, &group, &action, good_answers())
        .await
        .expect(200);

    // Each question type rejects a wrong answer with 400.
    let wrong: [(usize, Value); 9] = [
        (0, json!({"not": "text"})),
        (1, json!("Opt3")),
        (1, json!(2)),
        (2, json!(["MOpt1", "nope"])),
        (2, json!(["MOpt1", "MOpt1"])),
        (3, json!("many")),
        (4, json!({"lt": 100, "lg": 1})),
        (5, json!("next tuesday")),
        (6, json!(42)),
    ];
    for (index, bad) in wrong {
        let mut answers = good_answers();
        answers[index] = bad.clone();
        let err = answer(&bob, &group, &action, answers).await.error(400);
        assert_eq!(err["errorCode"], "InvalidParameters", "{index}: {bad}");
    }
    // Too few answers, too long a text, no answers.
    let mut short = good_answers();
    short.as_array_mut().expect("list").pop();
    answer(&bob, &group, &action, short).await.error(400);
    let mut long = good_answers();
    long[0] = json!("x".repeat(4001));
    answer(&bob, &group, &action, long).await.error(400);
    respond(&bob, &group, &action, &json!({"actionBody": {}}))
        .await
        .error(400);
    // The wrong type for this action.
    respond(
        &bob,
        &group,
        &action,
        &json!({"actionType": "Job", "actionBody": {"isCompleted": true}}),
    )
    .await
    .error(400);

    // One response each: a second one is 409; an update by responseId replaces it.
    answer(&bob, &group, &action, good_answers())
        .await
        .error(409);
    let mut changed = good_answers();
    changed[1] = json!("Opt2");
    let updated = respond(
        &bob,
        &group,
        &action,
        &json!({"responseId": bob_response, "actionBody": {"answers": changed}}),
    )
    .await
    .expect(200);
    assert_eq!(updated.body["responseId"], bob_response.as_str());
    // Only its responder updates a response; an unknown one is 404.
    respond(
        &carol,
        &group,
        &action,
        &json!({"responseId": bob_response, "actionBody": {"answers": good_answers()}}),
    )
    .await
    .error(403);
    respond(
        &bob,
        &group,
        &action,
        &json!({"responseId": uuid::Uuid::new_v4().to_string(),
                "actionBody": {"answers": good_answers()}}),
    )
    .await
    .error(404);

    let shown = details(&alice, &group, &action).await;
    assert_eq!(shown["actionType"], "Survey");
    assert_eq!(shown["sender"], number(1).as_str());
    let detail = &shown["actionDetails"];
    assert_eq!(detail["title"], "A test survey!!");
    assert_eq!(detail["responseCount"], 2);
    assert_eq!(detail["questions"].as_array().expect("q").len(), 7);
    assert_eq!(detail["questions"][5]["type"], "DateTime");
    let responses = detail["responses"].as_array().expect("responses");
    assert_eq!(responses.len(), 2);
    let bobs = responses
        .iter()
        .find(|r| r["responseId"] == bob_response.as_str())
        .expect("bob's");
    assert_eq!(bobs["responder"], number(2).as_str());
    assert_eq!(bobs["answers"][1], "Opt2");
    assert_eq!(bobs["answers"][2], json!(["MOpt1", "MOpt2"]));
    assert_eq!(bobs["answers"][3], 123.0);
    assert_eq!(bobs["answers"][4]["name"], "cool");
    assert_eq!(bobs["answers"][5], "2017-07-18T11:31:11Z");
    // An update replaces the whole response (its name went with it).
    assert!(bobs.get("responseName").is_none());
    assert!(bobs["updatedAt"].is_string());
    // The single-option tally counts each responder's latest answer.
    assert_eq!(detail["results"][0]["options"][0]["count"], 1);
    assert_eq!(detail["results"][0]["options"][1]["count"], 1);
    // Without getDetails: no responses.
    let plain = alice
        .get(&format!("/groups/{group}/actions/{action}"))
        .await
        .expect(200);
    assert!(plain.body["actionDetails"].get("responses").is_none());
}

#[tokio::test]
async fn multiple_responses_when_allowed() {
    let server = TestServer::start().await;
    let alice = server.user(&number(1)).await;
    let bob = server.user(&number(2)).await;
    let group = alice.group(&[&number(2)]).await;
    let many = post_action(
        &alice,
        &group,
        &survey("Many", json!({"acceptMultipleResponses": true})),
    )
    .await;
    for choice in ["A", "B", "A"] {
        answer(&bob, &group, &many, json!([choice]))
            .await
            .expect(200);
    }
    let shown = details(&alice, &group, &many).await;
    assert_eq!(
        shown["actionDetails"]["responses"]
            .as_array()
            .expect("r")
            .len(),
        3
    );
    assert_eq!(
        shown["actionDetails"]["results"][0]["options"][0]["count"],
        2
    );
    // By index too (0-based), and "true" flags as text.
    let once = post_action(
        &alice,
        &group,
        &survey("Once", json!({"acceptMultipleResponses": "false"})),
    )
    .await;
    answer(&bob, &group, &once, json!([1])).await.expect(200);
    answer(&bob, &group, &once, json!(["A"])).await.error(409);
}

#[tokio::test]
async fn anonymous_and_sender_only_results() {
    let server = TestServer::start().await;
    let alice = server.user(&number(1)).await;
    let bob = server.user(&number(2)).await;
    let carol = server.user(&number(3)).await;
    let group = alice.group(&[&number(2), &number(3)]).await;

    let anonymous = post_action(
        &alice,
        &group,
        &survey("Anon", json!({"isAnonymous": true})),
    )
    .await;
    answer(&bob, &group, &anonymous, json!(["A"]))
        .await
        .expect(200);
    answer(&carol, &group, &anonymous, json!(["B"]))
        .await
        .expect(200);
    for viewer in [&alice, &bob] {
        let shown = details(viewer, &group, &anonymous).await;
        let responses = shown["actionDetails"]["responses"].as_array().expect("r");
        assert_eq!(responses.len(), 2);
        for r in responses {
            // Nobody is named but to themselves.
            let own = viewer.number != number(1) && r["answers"][0] == "A";
            assert_eq!(r.get("responder").is_some(), own, "{r}");
        }
    }

    let private = post_action(
        &alice,
        &group,
        &survey("Mine", json!({"isSenderOnly": true})),
    )
    .await;
    answer(&bob, &group, &private, json!(["A"]))
        .await
        .expect(200);
    answer(&carol, &group, &private, json!(["B"]))
        .await
        .expect(200);
    // The sender sees everything, named.
    let sender_view = details(&alice, &group, &private).await;
    assert_eq!(
        sender_view["actionDetails"]["responses"]
            .as_array()
            .expect("r")
            .len(),
        2
    );
    assert!(sender_view["actionDetails"]["results"].is_array());
    // Others see only their own, and no results.
    let bob_view = details(&bob, &group, &private).await;
    let own = bob_view["actionDetails"]["responses"]
        .as_array()
        .expect("r");
    assert_eq!(own.len(), 1);
    assert_eq!(own[0]["responder"], number(2).as_str());
    assert!(bob_view["actionDetails"].get("results").is_none());
}

#[tokio::test]
async fn responses_close_at_the_due_date() {
    let server = TestServer::start().await;
    let alice = server.user(&number(1)).await;
    let bob = server.user(&number(2)).await;
    let group = alice.group(&[&number(2)]).await;
    let action = post_action(&alice, &group, &survey("Soon", json!({"dueDate": 1}))).await;
    let listed = alice
        .get(&format!("/groups/{group}/actions?actionType=Survey"))
        .await
        .expect(200);
    assert!(listed.body["actions"][0]["actionBody"]["expiryDate"].is_string());
    server.clock.advance(time::Duration::hours(2));
    let err = answer(&bob, &group, &action, json!(["A"])).await.error(409);
    assert_eq!(err["errorCode"], "Conflict");
    // Reminders are refused too; a due date in the past or not a number is 400.
    alice
        .post(
            &format!("/groups/{group}/actions/{action}/reminders"),
            &json!({}),
        )
        .await
        .error(409);
    for due in [json!(-1), json!("tomorrow"), json!("2001-01-01T00:00:00Z")] {
        alice
            .post(
                &format!("/groups/{group}/actions"),
                &survey("Bad", json!({ "dueDate": due })),
            )
            .await
            .error(400);
    }
}

#[tokio::test]
async fn jobs_are_completed_by_their_assignees() {
    let server = TestServer::start().await;
    let alice = server.user(&number(1)).await;
    let bob = server.user(&number(2)).await;
    let carol = server.user(&number(3)).await;
    let dave = server.user(&number(4)).await;
    let group = alice.group(&[&number(2), &number(3), &number(4)]).await;
    // The docs' job body; an assignee outside the group is 400.
    alice
        .post(
            &format!("/groups/{group}/actions"),
            &json!({"actionType": "Job", "actionBody": {"title": "x",
                    "assignedTo": [number(2), number(9)], "dueDate": 10}}),
        )
        .await
        .error(400);
    let job = post_raw(
        &alice,
        &group,
        &format!(
            "{{actionType:'Job', actionBody: {{title : 'test job', assignedTo : ['{}', '{}'], \
             dueDate : 10}}}}",
            number(2),
            number(3)
        ),
    )
    .await
    .expect(200)
    .body["actionId"]
        .as_str()
        .expect("id")
        .to_owned();
    let done = json!({"actionType": "Job", "actionBody": {"isCompleted": true}});
    // Not an assignee: 403. isCompleted is required.
    respond(&dave, &group, &job, &done).await.error(403);
    respond(
        &bob,
        &group,
        &job,
        &json!({"actionType": "Job", "actionBody": {}}),
    )
    .await
    .error(400);
    respond(&bob, &group, &job, &done).await.expect(200);
    let listed = alice
        .get(&format!("/groups/{group}/actions?actionType=Job"))
        .await
        .expect(200);
    let body = &listed.body["actions"][0]["actionBody"];
    assert_eq!(body["title"], "test job");
    assert_eq!(body["assigneeCount"], 2);
    assert_eq!(body["responseCount"], 1);
    assert_eq!(body["isCompleted"], false);
    respond(&carol, &group, &job, &done).await.expect(200);
    let shown = details(&alice, &group, &job).await;
    let detail = &shown["actionDetails"];
    assert_eq!(detail["isCompleted"], true);
    assert_eq!(detail["status"], true);
    assert_eq!(detail["responseCount"], 2);
    assert!(detail["dueDate"].is_string());
    assert_eq!(detail["responses"][0]["isCompleted"], true);
}

#[tokio::test]
async fn polls_count_their_choices() {
    let server = TestServer::start().await;
    let alice = server.user(&number(1)).await;
    let bob = server.user(&number(2)).await;
    let carol = server.user(&number(3)).await;
    let group = alice.group(&[&number(2), &number(3)]).await;
    // The docs' poll, relaxed.
    let poll = post_raw(
        &alice,
        &group,
        "{actionType:\"Poll\", actionBody:{question:\"Do you find Kaizala extensibility easy to \
         use?\", choices: [{title:\"Yes\",image:\"eyJUaHVtYm5haWwiOiIv\"}, {title:\"No\"}, \
         {title:\"Not at all\"}], expiryInHours:10}}",
    )
    .await
    .expect(200)
    .body["actionId"]
        .as_str()
        .expect("id")
        .to_owned();
    // One choice: fewer than two is 400.
    alice
        .post(
            &format!("/groups/{group}/actions"),
            &json!({"actionType": "Poll", "actionBody": {"question": "?", "choices": [{"title": "x"}]}}),
        )
        .await
        .error(400);
    respond(
        &bob,
        &group,
        &poll,
        &json!({"actionType": "Poll", "actionBody": {"answers": ["Yes"]}}),
    )
    .await
    .expect(200);
    respond(
        &carol,
        &group,
        &poll,
        &json!({"actionBody": {"answers": [2]}}),
    )
    .await
    .expect(200);
    respond(
        &carol,
        &group,
        &poll,
        &json!({"actionBody": {"answers": ["Maybe"]}}),
    )
    .await
    .error(400);
    respond(
        &carol,
        &group,
        &poll,
        &json!({"actionBody": {"answers": ["No"]}}),
    )
    .await
    .error(409);
    let listed = bob
        .get(&format!("/groups/{group}/actions?actionType=Poll"))
        .await
        .expect(200);
    let body = &listed.body["actions"][0]["actionBody"];
    assert_eq!(
        body["question"],
        "Do you find Kaizala extensibility easy to use?"
    );
    assert_eq!(body["choices"][0]["image"], "eyJUaHVtYm5haWwiOiIv");
    assert_eq!(body["choices"][2]["title"], "Not at all");
    assert_eq!(body["isSenderOnly"], false);
    assert!(body["expiryDate"].is_string());
    let shown = details(&bob, &group, &poll).await;
    let counts: Vec<i64> = shown["actionDetails"]["results"][0]["options"]
        .as_array()
        .expect("options")
        .iter()
        .map(|o| o["count"].as_i64().expect("count"))
        .collect();
    assert_eq!(counts, [1, 0, 1]);
}

#[tokio::test]
async fn announcements_meetings_and_custom_packages() {
    let server = TestServer::start().await;
    let alice = server.user(&number(1)).await;
    let bob = server.user(&number(2)).await;
    let group = alice.group(&[&number(2)]).await;

    let announcement = post_action(
        &alice,
        &group,
        &json!({"actionType": "Announcement", "actionBody": {"Message": "Announcement text",
                "Title": "Title text", "MediaResources": ["eyJUaHVtYm5haWwi"]}}),
    )
    .await;
    // Announcements take no responses.
    respond(
        &bob,
        &group,
        &announcement,
        &json!({"actionBody": {"answers": []}}),
    )
    .await
    .error(400);

    let meeting = post_raw(
        &alice,
        &group,
        "{actionType:\"LetsMeet\", actionBody:{title:\"lets catch up?\", \
         startingTime:\"2030-01-01T00:00:00Z\", duration:45, place:{\"latitude\":15.0, \
         \"longitude\":96.0,\"name\":\"MS Building 3\"}, agenda:\"no agenda\", isSenderOnly:false}}",
    )
    .await
    .expect(200)
    .body["actionId"]
        .as_str()
        .expect("id")
        .to_owned();
    respond(
        &bob,
        &group,
        &meeting,
        &json!({"actionBody": {"answers": ["Yes"]}}),
    )
    .await
    .expect(200);

    // A custom package with properties (the swagger example), and one with questions.
    let custom = post_action(
        &alice,
        &group,
        &json!({"id": "com.microsoft.kaizala.miniapps.BdayMessage.12", "actionBody": {
            "properties": [{"name": "name", "value": "TestTitle", "type": "Text"},
                           {"name": "occasion", "value": "birthday", "type": "Text"}]}}),
    )
    .await;
    respond(
        &bob,
        &group,
        &custom,
        &json!({"id": "com.microsoft.kaizala.miniapps.BdayMessage.12",
                "actionBody": {"Answers": ["test text"]}}),
    )
    .await
    .expect(200);
    let quiz = post_action(
        &alice,
        &group,
        &json!({"id": "com.t4m.surveyquiz", "actionBody": {"title": "Quiz",
                "questions": [{"title": "n", "type": "Numeric"}]}}),
    )
    .await;
    respond(
        &bob,
        &group,
        &quiz,
        &json!({"actionBody": {"answers": ["x"]}}),
    )
    .await
    .error(400);
    respond(
        &bob,
        &group,
        &quiz,
        &json!({"actionBody": {"answers": ["42.5"]}}),
    )
    .await
    .expect(200);
    // A bad property type is 400; an unknown actionType is 400.
    alice
        .post(
            &format!("/groups/{group}/actions"),
            &json!({"id": "pkg", "actionBody": {"properties": [{"name": "a", "type": "Blob", "value": "v"}]}}),
        )
        .await
        .error(400);
    alice
        .post(
            &format!("/groups/{group}/actions"),
            &json!({"actionType": "Dance", "actionBody": {"title": "x"}}),
        )
        .await
        .error(400);

    let all = bob
        .get(&format!("/groups/{group}/actions"))
        .await
        .expect(200);
    let actions = all.body["actions"].as_array().expect("actions");
    let types: Vec<&str> = actions
        .iter()
        .map(|a| a["actionType"].as_str().expect("type"))
        .collect();
    assert_eq!(
        types,
        [
            "Announcement",
            "LetsMeet",
            "com.microsoft.kaizala.miniapps.BdayMessage.12",
            "com.t4m.surveyquiz"
        ]
    );
    assert_eq!(actions[0]["actionBody"]["message"], "Announcement text");
    assert_eq!(
        actions[0]["actionBody"]["mediaResources"][0],
        "eyJUaHVtYm5haWwi"
    );
    assert_eq!(actions[1]["actionBody"]["duration"], 45);
    assert_eq!(actions[1]["actionBody"]["place"]["name"], "MS Building 3");
    assert_eq!(
        actions[1]["actionBody"]["startingTime"],
        "2030-01-01T00:00:00Z"
    );
    assert_eq!(
        actions[2]["actionBody"]["properties"][1]["value"],
        "birthday"
    );
    assert_eq!(actions[2]["actionBody"]["responseCount"], 1);
    // A package id filters like a type.
    let by_package = bob
        .get(&format!(
            "/groups/{group}/actions?actionType=com.t4m.surveyquiz"
        ))
        .await
        .expect(200);
    assert_eq!(by_package.body["actions"].as_array().expect("a").len(), 1);
    let shown = details(&alice, &group, &quiz).await;
    assert_eq!(shown["actionDetails"]["responses"][0]["answers"][0], 42.5);
}

#[tokio::test]
async fn fetch_pages_by_type_date_and_count() {
    let server = TestServer::start().await;
    let alice = server.user(&number(1)).await;
    let group = alice.group(&[&number(2)]).await;
    // The server's clock, which the loop moves: actions i are made at start + i minutes.
    let start = confab_core::ports::Clock::now(server.clock.as_ref());
    for i in 0..5 {
        post_action(&alice, &group, &survey(&format!("S{i}"), json!({}))).await;
        post_action(
            &alice,
            &group,
            &json!({"actionType": "Poll", "actionBody": {"question": format!("P{i}"),
                    "choices": ["a", "b"]}}),
        )
        .await;
        server.clock.advance(time::Duration::minutes(1));
    }
    // Surveys only, two a page, oldest first; hasMore and a continuation token.
    let mut titles = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut path = format!("/groups/{group}/actions?actionType=survey&count=2");
        if let Some(t) = &token {
            path.push_str(&format!("&continuationToken={t}"));
        }
        let page = alice.get(&path).await.expect(200);
        let list = page.body["actions"].as_array().expect("actions");
        assert!(list.len() <= 2);
        for a in list {
            assert_eq!(a["actionType"], "Survey");
            assert!(a["sentAt"].is_string());
            assert!(a["creationTime"].is_i64());
            titles.push(a["actionBody"]["title"].as_str().expect("t").to_owned());
        }
        assert_eq!(
            page.body["hasMore"],
            page.body.get("continuationToken").is_some()
        );
        match page.body["continuationToken"].as_str() {
            Some(t) => token = Some(t.to_owned()),
            None => break,
        }
    }
    assert_eq!(titles, ["S0", "S1", "S2", "S3", "S4"]);
    // fromDate (epoch ms): the last two minutes' actions.
    let from = (start + time::Duration::minutes(3)).unix_timestamp() * 1000;
    let recent = alice
        .get(&format!("/groups/{group}/actions?fromDate={from}"))
        .await
        .expect(200);
    let titles: Vec<&str> = recent.body["actions"]
        .as_array()
        .expect("a")
        .iter()
        .map(|a| {
            a["actionBody"]["title"]
                .as_str()
                .or(a["actionBody"]["question"].as_str())
                .expect("title")
        })
        .collect();
    assert_eq!(titles, ["S3", "P3", "S4", "P4"]);
    assert_eq!(recent.body["hasMore"], false);
    // Bad parameters: 400.
    for query in [
        "count=0",
        "count=x",
        "fromDate=never",
        "continuationToken=zz",
    ] {
        alice
            .get(&format!("/groups/{group}/actions?{query}"))
            .await
            .error(400);
    }
}

#[tokio::test]
async fn subscribers_respond_to_actions_addressed_to_them() {
    let server = TestServer::start().await;
    let alice = server.user(&number(1)).await;
    let bob = server.user(&number(2)).await;
    let sam = server.user(&number(10)).await;
    let sue = server.user(&number(11)).await;
    let group = public_group(&alice, &[&number(2)]).await;
    add_subscribers(&alice, &group, &[number(10), number(11)]).await;
    // Members do not post in a public group; subscribers neither.
    bob.post(&format!("/groups/{group}/actions"), &survey("x", json!({})))
        .await
        .error(403);
    let mut to_sam = survey("For Sam", json!({}));
    to_sam["subscribers"] = json!([number(10)]);
    let action = post_action(&alice, &group, &to_sam).await;
    let mut to_all = survey("For all", json!({}));
    to_all["sendToAllSubscribers"] = json!(true);
    let everyone = post_action(&alice, &group, &to_all).await;
    let members_only = post_action(&alice, &group, &survey("Members", json!({}))).await;

    answer(&sam, &group, &action, json!(["A"]))
        .await
        .expect(200);
    // Sue is not addressed: the action does not exist for her.
    answer(&sue, &group, &action, json!(["A"])).await.error(404);
    answer(&sue, &group, &members_only, json!(["A"]))
        .await
        .error(404);
    answer(&sue, &group, &everyone, json!(["B"]))
        .await
        .expect(200);
    answer(&sam, &group, &everyone, json!(["A"]))
        .await
        .expect(200);
    answer(&bob, &group, &everyone, json!(["A"]))
        .await
        .expect(200);

    let sams = sam
        .get(&format!("/groups/{group}/actions"))
        .await
        .expect(200);
    let titles: Vec<&str> = sams.body["actions"]
        .as_array()
        .expect("a")
        .iter()
        .map(|a| a["actionBody"]["title"].as_str().expect("t"))
        .collect();
    assert_eq!(titles, ["For Sam", "For all"]);
    // A subscriber sees only its own response, without results.
    let shown = details(&sue, &group, &everyone).await;
    let responses = shown["actionDetails"]["responses"].as_array().expect("r");
    assert_eq!(responses.len(), 1);
    assert_eq!(responses[0]["responder"], number(11).as_str());
    assert!(shown["actionDetails"].get("results").is_none());
    // The admin sees all three.
    let admin_view = details(&alice, &group, &everyone).await;
    assert_eq!(
        admin_view["actionDetails"]["responses"]
            .as_array()
            .expect("r")
            .len(),
        3
    );
    // Subscribers send no reminders.
    sam.post(
        &format!("/groups/{group}/actions/{action}/reminders"),
        &json!({}),
    )
    .await
    .error(403);
}

#[tokio::test]
async fn actions_are_text_messages_on_the_acs_face_and_reminders_follow() {
    let server = TestServer::start().await;
    let alice = server.user(&number(1)).await;
    let bob = server.user(&number(2)).await;
    let group = alice.group(&[&number(2)]).await;
    let action = post_action(&alice, &group, &survey("Lunch?", json!({}))).await;
    // Only the sender (or an admin) reminds; a reminder is a text message.
    bob.post(
        &format!("/groups/{group}/actions/{action}/reminders"),
        &json!({}),
    )
    .await
    .error(403);
    let reminded = alice
        .post(
            &format!("/groups/{group}/actions/{action}/Reminders"),
            &json!({}),
        )
        .await
        .expect(200);
    assert!(reminded.body["referenceId"].is_string());

    let token = server.acs_token_for(&alice.identity()).await;
    let acs = Acs::with_token(&server.base, &server.http, &alice.identity(), &token);
    assert_eq!(
        acs.texts(&thread_of(&group)).await,
        ["Lunch?", "Reminder: Lunch?"]
    );
    let listed = acs
        .call(
            Method::GET,
            &format!("/chat/threads/{}/messages", enc(&thread_of(&group))),
            None,
        )
        .await
        .expect(200);
    let message = listed.body["value"]
        .as_array()
        .expect("value")
        .iter()
        .find(|m| m["content"]["message"] == "Lunch?")
        .expect("action message")
        .clone();
    assert_eq!(message["type"], "text");
    assert_eq!(message["metadata"]["kaizalaActionType"], "Survey");
    let acs_id = message["metadata"]["kaizalaActionId"]
        .as_str()
        .expect("action id")
        .to_owned();
    assert_eq!(acs_id, message["id"].as_str().expect("id"));
    // The ACS message id names the action on the Kaizala face too.
    answer(&bob, &group, &acs_id, json!(["B"]))
        .await
        .expect(200);
    let shown = details(&alice, &group, &action).await;
    assert_eq!(shown["actionDetails"]["responseCount"], 1);
}

#[tokio::test]
async fn action_errors_have_the_kaizala_shape() {
    let server = TestServer::start().await;
    let alice = server.user(&number(1)).await;
    let eve = server.user(&number(9)).await;
    let group = alice.group(&[&number(2)]).await;
    let action = post_action(&alice, &group, &survey("x", json!({}))).await;
    // Not a member: 403; unknown group or action: 404.
    eve.get(&format!("/groups/{group}/actions"))
        .await
        .error(403);
    eve.post(&format!("/groups/{group}/actions"), &survey("x", json!({})))
        .await
        .error(403);
    let unknown = uuid::Uuid::new_v4();
    alice
        .get(&format!("/groups/{unknown}/actions"))
        .await
        .error(404);
    alice
        .get(&format!("/groups/{group}/actions/{unknown}"))
        .await
        .error(404);
    answer(&alice, &group, &unknown.to_string(), json!(["A"]))
        .await
        .error(404);
    // Not JSON: 415; too large: 413; malformed: 400; missing fields: 400.
    let resp = alice
        .http
        .post(format!("{}/v1/groups/{group}/actions", alice.base))
        .header("accessToken", &alice.token)
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .expect("send");
    Resp::read(resp).await.error(415);
    let huge =
        json!({"actionType": "Survey", "actionBody": {"title": "x".repeat(2 * 1024 * 1024)}});
    alice
        .post(&format!("/groups/{group}/actions"), &huge)
        .await
        .error(413);
    post_raw(&alice, &group, "{actionType: ").await.error(400);
    for body in [
        json!({"actionBody": {"title": "x"}}),
        json!({"actionType": "Survey", "actionBody": {"title": "x", "questions": []}}),
        json!({"actionType": "Survey", "actionBody": {"title": "", "questions": [{"title": "q", "type": "Text"}]}}),
        json!({"actionType": "Survey", "actionBody": {"title": "x", "questions": [{"title": "q", "type": "Essay"}]}}),
        json!({"actionType": "Survey", "actionBody": {"title": "x", "questions": [{"title": "q", "type": "SingleOption"}]}}),
        json!({"actionType": "Survey", "actionBody": {"title": "x", "questions": "none"}}),
        json!({"actionType": "Job", "actionBody": {"title": "x", "assignedTo": []}}),
        json!({"actionType": "LetsMeet", "actionBody": {"title": "x"}}),
        json!({"actionType": "Announcement", "actionBody": {"title": "x"}}),
        // Dates outside the years 0 to 9999 in UTC, which no answer could write back.
        json!({"actionType": "LetsMeet", "actionBody": {"title": "m", "duration": 30,
               "startingTime": -62_167_219_200_001_i64}}),
        json!({"actionType": "LetsMeet", "actionBody": {"title": "m", "duration": 30,
               "startingTime": "0000-01-01T00:00:00+00:01"}}),
        json!({"actionType": "LetsMeet", "actionBody": {"title": "m", "duration": 30,
               "startingTime": "9999-12-31T23:59:59-00:01"}}),
        survey("x", json!({"dueDate": "9999-12-31T23:59:59-00:01"})),
    ] {
        let err = alice
            .post(&format!("/groups/{group}/actions"), &body)
            .await
            .error(400);
        assert_eq!(err["errorCategoryKey"], "InvalidParameters", "{body}");
    }
    assert!(!action.is_empty());
}

#[tokio::test]
async fn actions_need_the_action_permission() {
    let server = TestServer::start().await;
    let alice = server.user(&number(1)).await;
    let group = alice.group(&[&number(2)]).await;
    let action = post_action(&alice, &group, &survey("x", json!({}))).await;
    let limited = server
        .app_with(Some(&["groupinfo".to_owned(), "textmessage".to_owned()]))
        .await;
    let bob = server.login(&limited, &number(2)).await;
    bob.post(&format!("/groups/{group}/actions"), &survey("y", json!({})))
        .await
        .error(403);
    bob.get(&format!("/groups/{group}/actions"))
        .await
        .error(403);
    answer(&bob, &group, &action, json!(["A"])).await.error(403);
    let allowed = server.app_with(Some(&["action.write".to_owned()])).await;
    let bob = server.login(&allowed, &number(2)).await;
    answer(&bob, &group, &action, json!(["A"]))
        .await
        .expect(200);
}
