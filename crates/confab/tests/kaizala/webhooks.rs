//! Webhooks: subscribe (with the validationToken handshake), list, update, re-enable and
//! delete; deliveries with the documented envelope, `kz-callback-token` and a valid
//! signature; retries while the receiver is down, order per conversation, disabling after the
//! last try and resuming on re-enable; survival of a restart; a dead receiver not delaying
//! another; the delivery log and redelivery through the admin API.
//!
//! Receivers are small axum servers on 127.0.0.1:0 run by the test. Retries use millisecond
//! settings, and the tests move the server's clock so that retries fall due.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::*;

/// How a receiver answers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    Ok,
    /// 500 to every POST.
    Fail,
    /// Never answers a POST (the delivery times out).
    Hang,
}

/// One POST a receiver got.
#[derive(Clone, Debug)]
pub struct Call {
    pub headers: HeaderMap,
    pub body: String,
    pub json: Value,
}

#[derive(Default)]
struct ReceiverState {
    mode: Option<Mode>,
    /// Echo the validation token (else answer something else).
    no_echo: bool,
    calls: Vec<Call>,
    failed: usize,
}

/// A local webhook receiver.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    state: Arc<Mutex<ReceiverState>>,
}

async fn validate(
    State(state): State<Arc<Mutex<ReceiverState>>>,
    Query(query): Query<Vec<(String, String)>>,
) -> impl IntoResponse {
    let token = query
        .into_iter()
        .find(|(k, _)| k == "validationToken")
        .map(|(_, v)| v)
        .unwrap_or_default();
    if state.lock().expect("state").no_echo {
        (StatusCode::OK, "nope".to_owned())
    } else {
        (StatusCode::OK, token)
    }
}

async fn receive(
    State(state): State<Arc<Mutex<ReceiverState>>>,
    headers: HeaderMap,
    body: String,
) -> StatusCode {
    let mode = state.lock().expect("state").mode.unwrap_or(Mode::Ok);
    match mode {
        Mode::Ok => {
            let json = serde_json::from_str(&body).unwrap_or(Value::Null);
            state.lock().expect("state").calls.push(Call {
                headers,
                body,
                json,
            });
            StatusCode::OK
        }
        Mode::Fail => {
            state.lock().expect("state").failed += 1;
            StatusCode::INTERNAL_SERVER_ERROR
        }
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            StatusCode::OK
        }
    }
}

impl Receiver {
    pub async fn start() -> Receiver {
        let state: Arc<Mutex<ReceiverState>> = Arc::default();
        let app = Router::new()
            .route("/hook", get(validate).post(receive))
            .with_state(state.clone());
        Receiver {
            url: format!("{}/hook", crate::local::serve(app).await),
            state,
        }
    }

    pub fn set(&self, mode: Mode) {
        self.state.lock().expect("state").mode = Some(mode);
    }

    pub fn no_echo(&self) {
        self.state.lock().expect("state").no_echo = true;
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state.lock().expect("state").calls.clone()
    }

    pub fn failed(&self) -> usize {
        self.state.lock().expect("state").failed
    }

    /// The calls received so far of this event type, once per event (delivery is at least
    /// once: a slow answer may bring a repeat).
    pub fn of(&self, event_type: &str) -> Vec<Call> {
        unique(self.calls())
            .into_iter()
            .filter(|c| c.json["eventType"] == event_type)
            .collect()
    }
}

/// The calls, the first of each event id only.
pub fn unique(calls: Vec<Call>) -> Vec<Call> {
    let mut seen = HashSet::new();
    calls
        .into_iter()
        .filter(|c| seen.insert(c.json["eventId"].to_string()))
        .collect()
}

/// Settings for fast retries.
pub fn fast(s: &mut confab::Settings) {
    s.webhook_retry_base_ms = 20;
    s.webhook_retry_factor = 2;
    s.webhook_poll_ms = 20;
    s.webhook_timeout_ms = 5_000;
    s.webhook_handshake_timeout_ms = 2_000;
}

/// Waits (at most 20 s) until `done` holds, moving the server's clock a second forward every
/// 20 ms so that retries fall due.
pub async fn eventually(server: &TestServer, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        server.clock.advance(time::Duration::seconds(1));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Subscribes `kz` to events of a group; answers (webhookId, secret).
pub async fn subscribe(
    kz: &Kz,
    group: &str,
    receiver: &Receiver,
    events: &[&str],
) -> (String, String) {
    let resp = kz
        .post(
            "/webhook",
            &json!({"objectId": group, "objectType": "Group", "eventTypes": events,
                    "callBackUrl": receiver.url, "callBackToken": "tok-123",
                    "callBackContext": "ctx-abc"}),
        )
        .await
        .expect(200);
    (
        resp.body["webhookId"].as_str().expect("id").to_owned(),
        resp.body["secret"].as_str().expect("secret").to_owned(),
    )
}

pub fn signature_ok(call: &Call, secret: &str) -> bool {
    crate::signature::signed_with(&call.headers, &call.body, secret)
}

const ALL: &[&str] = &[
    "TextMessageCreated",
    "MemberAdded",
    "MemberRemoved",
    "SurveyCreated",
    "SurveyResponse",
    "ActionCreated",
    "ActionResponse",
];

#[tokio::test]
async fn subscribe_list_update_and_delete() {
    let server = TestServer::start_with(fast).await;
    let alice = server.user(&number(1)).await;
    let bob = server.user(&number(2)).await;
    let group = alice.group(&[&number(2)]).await;
    let receiver = Receiver::start().await;

    // Relaxed JSON, mixed-case names, as the docs write it.
    let body = format!(
        "{{ObjectId: '{group}', objectType: 'Group', EventTypes: ['TextMessageCreated'], \
         callBackUrl: '{}', callBackToken: 'tok'}}",
        receiver.url
    );
    let created = alice
        .call(Method::POST, "/webhook", Some(&body))
        .await
        .expect(200);
    let id = created.body["webhookId"].as_str().expect("id").to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok());
    assert!(created.body["secret"]
        .as_str()
        .is_some_and(|s| s.len() >= 32));

    let listed = alice
        .get(&format!("/webhook?objectId={group}&objectType=Group"))
        .await
        .expect(200);
    let hooks = listed.body["webhooks"].as_array().expect("webhooks");
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0]["id"], id.as_str());
    assert_eq!(hooks[0]["objectId"], group.as_str());
    assert_eq!(hooks[0]["events"], json!(["TextMessageCreated"]));
    assert_eq!(hooks[0]["callbackUrl"], receiver.url.as_str());
    assert_eq!(hooks[0]["callbackToken"], "tok");
    assert_eq!(hooks[0]["active"], true);
    assert!(hooks[0].get("secret").is_none());

    // Update the event types.
    let updated = alice
        .put(
            &format!("/webhook/{id}"),
            &json!({"eventTypes": ["TextMessageCreated", "MemberAdded"]}),
        )
        .await
        .expect(200);
    assert_eq!(
        updated.body["events"],
        json!(["TextMessageCreated", "MemberAdded"])
    );

    // Bad requests: 400 in the Kaizala shape, never 500.
    for (body, text) in [
        (
            json!({"objectId": group, "objectType": "Thing", "eventTypes": ["TextMessageCreated"], "callBackUrl": receiver.url}),
            "objectType",
        ),
        (
            json!({"objectId": group, "objectType": "Group", "eventTypes": ["Nope"], "callBackUrl": receiver.url}),
            "Nope",
        ),
        (
            json!({"objectId": group, "objectType": "Group", "eventTypes": [], "callBackUrl": receiver.url}),
            "eventTypes",
        ),
        (
            json!({"objectId": group, "objectType": "Group", "eventTypes": ["TextMessageCreated"], "callBackUrl": "ftp://x"}),
            "callBackUrl",
        ),
        (
            json!({"objectId": group, "objectType": "Group", "eventTypes": ["TextMessageCreated"]}),
            "callBackUrl",
        ),
        (
            json!({"objectId": "not-a-guid", "objectType": "Group", "eventTypes": ["TextMessageCreated"], "callBackUrl": receiver.url}),
            "GUID",
        ),
    ] {
        let error = alice.post("/webhook", &body).await.error(400);
        assert_kaizala_error(&error, text);
    }
    alice
        .call(Method::POST, "/webhook", Some("{oops"))
        .await
        .error(400);

    // Only admins of the group subscribe to it; others do not see its webhooks.
    let denied = json!({"objectId": group, "objectType": "Group",
                        "eventTypes": ["TextMessageCreated"], "callBackUrl": receiver.url});
    bob.post("/webhook", &denied).await.error(403);
    bob.get(&format!("/webhook?objectId={group}&objectType=Group"))
        .await
        .error(403);
    bob.put(&format!("/webhook/{id}"), &json!({"Active": "true"}))
        .await
        .error(404);
    bob.delete(&format!("/webhook/{id}")).await.error(404);

    // A connector without the webhook permission may not.
    let limited = server
        .app_with(Some(&["groupinfo".to_owned(), "groupmember".to_owned()]))
        .await;
    let carol = server.login(&limited, &number(3)).await;
    let own = carol.group(&[]).await;
    let error = carol
        .post(
            "/webhook",
            &json!({"objectId": own, "objectType": "Group",
                    "eventTypes": ["TextMessageCreated"], "callBackUrl": receiver.url}),
        )
        .await
        .error(403);
    assert_kaizala_error(&error, "webhook");

    // The handshake: a receiver that does not echo the token is refused.
    let silent = Receiver::start().await;
    silent.no_echo();
    let error = alice
        .post(
            "/webhook",
            &json!({"objectId": group, "objectType": "Group",
                    "eventTypes": ["TextMessageCreated"], "callBackUrl": silent.url}),
        )
        .await
        .error(400);
    assert_kaizala_error(&error, "validationToken");
    // Nobody listening at all: refused too.
    let error = alice
        .post(
            "/webhook",
            &json!({"objectId": group, "objectType": "Group",
                    "eventTypes": ["TextMessageCreated"], "callBackUrl": "http://127.0.0.1:9/hook"}),
        )
        .await
        .error(400);
    assert_kaizala_error(&error, "validationToken");

    // Delete.
    alice.delete(&format!("/webhook/{id}")).await.expect(200);
    alice.delete(&format!("/webhook/{id}")).await.error(404);
    let listed = alice
        .get(&format!("/webhook?objectId={group}&objectType=Group"))
        .await
        .expect(200);
    assert_eq!(listed.body["webhooks"], json!([]));
    // A deleted webhook gets nothing.
    alice.send(&group, "after delete").await.expect(200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(receiver.calls().is_empty());
}

#[tokio::test]
async fn events_reach_the_receiver_with_the_envelope_token_and_signature() {
    let server = TestServer::start_with(fast).await;
    let alice = server.user(&number(1)).await;
    let bob = server.user(&number(2)).await;
    let carol = server.user(&number(3)).await;
    let group = alice.group(&[&number(2)]).await;
    let receiver = Receiver::start().await;
    let (id, secret) = subscribe(&alice, &group, &receiver, ALL).await;

    alice.send(&group, "hello hooks").await.expect(200);
    alice
        .put(
            &format!("/groups/{group}/members"),
            &json!({"members": [number(3)]}),
        )
        .await
        .expect(200);
    let survey = alice
        .post(
            &format!("/groups/{group}/actions"),
            &json!({"actionType": "Survey", "actionBody": {
                "title": "Lunch?",
                "questions": [{"title": "Pick", "type": "SingleOption",
                               "options": [{"title": "Pizza"}, {"title": "Salad"}]}]}}),
        )
        .await
        .expect(200);
    let action = survey.body["actionId"].as_str().expect("id").to_owned();
    for (who, choice) in [(&bob, "Salad"), (&carol, "Pizza")] {
        who.post(
            &format!("/groups/{group}/actions/{action}/responses"),
            &json!({"actionType": "Survey", "actionBody": {"Answers": [choice]}}),
        )
        .await
        .expect(200);
    }
    eventually(&server, "4 kinds of events", || {
        receiver.of("SurveyResponse").len() == 2
            && receiver.of("TextMessageCreated").len() == 1
            && receiver.of("MemberAdded").len() == 1
            && receiver.of("SurveyCreated").len() == 1
    })
    .await;
    // The survey's own message is not a text message, and the generic types are not sent
    // twice when the specific one is subscribed to.
    assert!(receiver.of("ActionCreated").is_empty());
    assert!(receiver.of("ActionResponse").is_empty());

    let text = &receiver.of("TextMessageCreated")[0];
    let envelope = &text.json;
    assert_eq!(envelope["objectId"], group.as_str());
    assert_eq!(envelope["objectType"], "Group");
    assert_eq!(envelope["data"]["text"], "hello hooks");
    assert_eq!(envelope["context"], "ctx-abc");
    assert_eq!(envelope["fromUser"], number(1));
    assert!(envelope["fromUserId"].is_string());
    assert!(envelope.get("fromUserName").is_some());
    assert!(envelope.get("fromUserProfilePic").is_some());
    let event_id = envelope["eventId"].as_str().expect("eventId");
    assert!(uuid::Uuid::parse_str(event_id).is_ok());
    for call in receiver.calls() {
        assert_eq!(call.headers["kz-callback-token"], "tok-123");
        assert!(signature_ok(&call, &secret), "signature of {}", call.body);
        assert_eq!(
            call.headers["x-confab-event-id"].to_str().expect("id"),
            call.json["eventId"].as_str().expect("eventId")
        );
        assert!(call.headers["content-type"]
            .to_str()
            .expect("type")
            .starts_with("application/json"));
    }
    assert_eq!(unique(receiver.calls()).len(), 5, "one event id per event");

    let added = &receiver.of("MemberAdded")[0].json;
    assert_eq!(added["data"]["member"], number(3));
    assert_eq!(added["data"]["type"], "Member");
    let created = &receiver.of("SurveyCreated")[0].json;
    assert_eq!(created["data"]["actionId"], action.as_str());
    assert_eq!(created["data"]["title"], "Lunch?");
    assert_eq!(created["data"]["groupId"], group.as_str());
    let responses = receiver.of("SurveyResponse");
    let mut answers: Vec<(String, String)> = responses
        .iter()
        .map(|c| {
            let d = &c.json["data"];
            (
                d["responder"].as_str().expect("responder").to_owned(),
                d["responseDetails"]["responseWithQuestions"][0]["answer"]
                    .as_str()
                    .expect("answer")
                    .to_owned(),
            )
        })
        .collect();
    answers.sort();
    assert_eq!(
        answers,
        [
            (number(2), "Salad".to_owned()),
            (number(3), "Pizza".to_owned())
        ]
    );
    assert_eq!(responses[0].json["data"]["actionId"], action.as_str());

    // An Action subscription: responses to that one action.
    let on_action = Receiver::start().await;
    alice
        .post(
            "/webhook",
            &json!({"objectId": action, "objectType": "Action",
                    "eventTypes": ["SurveyResponse"], "callBackUrl": on_action.url}),
        )
        .await
        .expect(200);
    bob.post(
        &format!("/groups/{group}/actions/{action}/responses"),
        &json!({"actionType": "Survey", "responseId": responses.iter()
                    .find(|c| c.json["data"]["responder"] == number(2))
                    .map(|c| c.json["data"]["responseId"].clone()).unwrap_or_default(),
                "actionBody": {"Answers": ["Pizza"]}}),
    )
    .await
    .expect(200);
    eventually(&server, "the action's response", || {
        on_action.calls().len() == 1
    })
    .await;
    let update = &on_action.calls()[0].json;
    assert_eq!(update["objectType"], "Action");
    assert_eq!(update["objectId"], action.as_str());
    assert_eq!(update["data"]["isUpdateResponse"], true);
    let _ = id;
}

#[tokio::test]
async fn a_receiver_that_is_down_gets_everything_in_order_when_it_comes_back() {
    let server = TestServer::start_with(fast).await;
    let alice = server.user(&number(1)).await;
    let group = alice.group(&[]).await;
    let receiver = Receiver::start().await;
    subscribe(&alice, &group, &receiver, &["TextMessageCreated"]).await;
    receiver.set(Mode::Fail);
    for i in 0..5 {
        alice.send(&group, &format!("m{i}")).await.expect(200);
    }
    // It keeps failing for a while (no more than the first in line is tried at a time).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while receiver.failed() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "no retries");
        server.clock.advance(time::Duration::milliseconds(30));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    receiver.set(Mode::Ok);
    eventually(&server, "all five", || {
        let texts: HashSet<String> = receiver
            .calls()
            .iter()
            .map(|c| c.json["data"]["text"].as_str().unwrap_or("").to_owned())
            .collect();
        texts.len() == 5
    })
    .await;
    // In order (a repeat, if any, comes right after its first delivery).
    let mut seen: Vec<String> = Vec::new();
    for call in receiver.calls() {
        let text = call.json["data"]["text"].as_str().expect("text").to_owned();
        if !seen.contains(&text) {
            seen.push(text);
        }
    }
    assert_eq!(seen, ["m0", "m1", "m2", "m3", "m4"]);
}

#[tokio::test]
async fn past_the_last_try_the_webhook_is_disabled_and_put_re_enables_it() {
    let server = TestServer::start_with(|s| {
        fast(s);
        s.webhook_max_attempts = 3;
    })
    .await;
    let alice = server.user(&number(1)).await;
    let group = alice.group(&[]).await;
    let receiver = Receiver::start().await;
    let (id, _) = subscribe(&alice, &group, &receiver, &["TextMessageCreated"]).await;
    receiver.set(Mode::Fail);
    alice.send(&group, "lost?").await.expect(200);
    let list = format!("/webhook?objectId={group}&objectType=Group");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let listed = alice.get(&list).await.expect(200);
        if listed.body["webhooks"][0]["active"] == false {
            assert!(listed.body["webhooks"][0]["disabledReason"]
                .as_str()
                .is_some_and(|r| r.contains("HTTP 500")));
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never disabled");
        server.clock.advance(time::Duration::seconds(1));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(receiver.failed(), 3);
    // The log says so.
    let log = server
        .admin
        .webhook_deliveries(&id, None)
        .await
        .expect("log");
    assert_eq!(log["deliveries"][0]["status"], "failed");
    assert_eq!(log["deliveries"][0]["attempts"], 3);
    assert_eq!(log["deliveries"][0]["lastStatus"], 500);
    assert_eq!(log["deliveries"][0]["lastError"], "HTTP 500");

    // Disabled: nothing is tried.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(receiver.failed(), 3);

    receiver.set(Mode::Ok);
    alice
        .put(&format!("/webhook/{id}"), &json!({"Active": "true"}))
        .await
        .expect(200);
    alice.send(&group, "after").await.expect(200);
    eventually(&server, "both after re-enabling", || {
        receiver.calls().len() >= 2
    })
    .await;
    let texts: Vec<Value> = receiver
        .calls()
        .iter()
        .map(|c| c.json["data"]["text"].clone())
        .collect();
    assert_eq!(texts[..2], [json!("lost?"), json!("after")]);
    let listed = alice.get(&list).await.expect(200);
    assert_eq!(listed.body["webhooks"][0]["active"], true);
}

#[tokio::test]
async fn recorded_deliveries_survive_a_restart() {
    let dir = std::env::temp_dir().join(format!(
        "confab-webhook-restart-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    let configure = |s: &mut confab::Settings| {
        fast(s);
        s.in_memory = false;
        s.data_dir = dir.clone();
    };
    let receiver = Receiver::start().await;
    let server = TestServer::start_with(configure).await;
    let alice = server.user(&number(1)).await;
    let group = alice.group(&[]).await;
    subscribe(&alice, &group, &receiver, &["TextMessageCreated"]).await;
    receiver.set(Mode::Fail);
    for i in 0..3 {
        alice.send(&group, &format!("r{i}")).await.expect(200);
    }
    server.running.shutdown().await;
    assert!(receiver.calls().is_empty());

    receiver.set(Mode::Ok);
    let server = TestServer::start_with(configure).await;
    eventually(&server, "the three after the restart", || {
        unique(receiver.calls()).len() >= 3
    })
    .await;
    let texts: Vec<Value> = unique(receiver.calls())
        .iter()
        .map(|c| c.json["data"]["text"].clone())
        .collect();
    assert_eq!(texts[..3], [json!("r0"), json!("r1"), json!("r2")]);
    server.running.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_dead_receiver_does_not_delay_another() {
    let server = TestServer::start_with(|s| {
        fast(s);
        s.webhook_timeout_ms = 1_000;
    })
    .await;
    let alice = server.user(&number(1)).await;
    let one = alice.group(&[]).await;
    let two = alice.group(&[]).await;
    let dead = Receiver::start().await;
    let alive = Receiver::start().await;
    subscribe(&alice, &one, &dead, &["TextMessageCreated"]).await;
    subscribe(&alice, &two, &alive, &["TextMessageCreated"]).await;
    // A second subscription on the same group as the dead one.
    subscribe(&alice, &one, &alive, &["TextMessageCreated"]).await;
    dead.set(Mode::Hang);
    alice.send(&one, "to the dead").await.expect(200);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = tokio::time::Instant::now();
    alice.send(&two, "to the living").await.expect(200);
    let deadline = started + Duration::from_millis(800);
    while alive.calls().len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "delayed: {:?}",
            alive.calls().len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn the_delivery_log_and_redelivery_through_the_admin_api() {
    let server = TestServer::start_with(fast).await;
    let alice = server.user(&number(1)).await;
    let group = alice.group(&[]).await;
    let receiver = Receiver::start().await;
    let (id, _) = subscribe(&alice, &group, &receiver, &["TextMessageCreated"]).await;
    alice.send(&group, "logged").await.expect(200);
    eventually(&server, "delivered", || !receiver.calls().is_empty()).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let log = loop {
        let log = server
            .admin
            .webhook_deliveries(&id, None)
            .await
            .expect("log");
        if log["deliveries"][0]["status"] == "delivered" {
            break log;
        }
        assert!(tokio::time::Instant::now() < deadline, "{log}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let delivery = &log["deliveries"][0];
    assert!(delivery["attempts"].as_u64().is_some_and(|n| n >= 1));
    assert_eq!(delivery["lastStatus"], 200);
    assert!(delivery["deliveredOn"].is_string());
    assert_eq!(delivery["eventType"], "TextMessageCreated");
    assert_eq!(delivery["payload"]["data"]["text"], "logged");
    let delivery_id = delivery["id"].to_string();
    let before = receiver.calls().len();

    let again = server
        .admin
        .redeliver(&id, &delivery_id)
        .await
        .expect("redeliver");
    assert_eq!(again["status"], "pending");
    eventually(&server, "redelivered", || receiver.calls().len() > before).await;
    let calls = receiver.calls();
    assert!(calls
        .iter()
        .all(|c| c.json["eventId"] == calls[0].json["eventId"]));

    // The CLI reads the same log.
    let output = crate::cli::confab(
        &server.running.connection_string,
        &["webhook", "deliveries", &id, "--limit", "5"],
    )
    .await;
    assert!(output.status.success(), "{output:?}");
    let printed: Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(printed["webhook"]["id"], id.as_str());
    assert!(!printed["deliveries"].as_array().expect("list").is_empty());

    // Unknown ones: 404; unsigned: 401.
    assert!(server.admin.redeliver(&id, "999999").await.is_err());
    assert!(server.admin.webhook_deliveries("nope", None).await.is_err());
    server
        .call(
            Method::GET,
            &format!("/admin/webhooks/{id}/deliveries"),
            &[],
            None,
        )
        .await
        .error(401);
}

#[tokio::test]
async fn a_message_sent_on_the_acs_face_reaches_the_kaizala_webhook() {
    let server = TestServer::start_with(fast).await;
    let alice = server.user(&number(1)).await;
    let bob = server.user(&number(2)).await;
    let group = alice.group(&[&number(2)]).await;
    let receiver = Receiver::start().await;
    let (_, secret) = subscribe(&alice, &group, &receiver, &["TextMessageCreated"]).await;

    // Bob posts through the ACS face, with his Kaizala token as the bearer token.
    let acs_bob = Acs::with_token(&server.base, &bob.http, &bob.identity(), &bob.token);
    acs_bob
        .call(
            Method::POST,
            &format!("/chat/threads/{}/messages", enc(&thread_of(&group))),
            Some(json!({"content": "from the ACS face"})),
        )
        .await
        .expect(201);

    eventually(&server, "the ACS message as TextMessageCreated", || {
        receiver.of("TextMessageCreated").len() == 1
    })
    .await;
    let call = &receiver.of("TextMessageCreated")[0];
    assert!(signature_ok(call, &secret));
    assert_eq!(call.json["objectId"], group.as_str());
    assert_eq!(call.json["objectType"], "Group");
    assert_eq!(
        call.json["fromUser"],
        number(2),
        "the ACS sender is the acting user"
    );
    assert!(
        call.body.contains("from the ACS face"),
        "the message text is in the payload: {}",
        call.body
    );
}
