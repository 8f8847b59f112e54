//! ACS event subscriptions through the admin API: endpoint validation (the Event Grid
//! SubscriptionValidationEvent, the CloudEvents OPTIONS handshake), the chat events in the Event
//! Grid schema and as CloudEvents, thread-level and user-level, thread filters, signatures,
//! order per thread, retries until the subscription is disabled, re-enabling, the delivery log,
//! redelivery, the CLI, and deliveries surviving a restart.
//!
//! Receivers are small axum servers on 127.0.0.1:0 run by the test. Retries use millisecond
//! settings (the server runs on the real clock here).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method as AxumMethod, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::*;

const PREFIX: &str = "Microsoft.Communication.";

/// How a receiver answers deliveries.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Ok,
    /// 503 to every delivery.
    Fail,
}

/// One delivery a receiver got (handshakes are not recorded).
#[derive(Clone, Debug)]
struct Call {
    headers: HeaderMap,
    body: String,
    /// The one event: the array's element (Event Grid) or the CloudEvent itself.
    event: Value,
}

#[derive(Default)]
struct ReceiverState {
    mode: Option<Mode>,
    /// Answer the validation handshake wrongly.
    refuse_validation: bool,
    calls: Vec<Call>,
    failed: usize,
}

type Shared = Arc<Mutex<ReceiverState>>;

/// A local Event Grid / CloudEvents endpoint.
#[derive(Clone)]
struct Receiver {
    url: String,
    state: Shared,
}

async fn handle(
    State(state): State<Shared>,
    method: AxumMethod,
    headers: HeaderMap,
    body: String,
) -> Response {
    let refuse = state.lock().expect("state").refuse_validation;
    // The CloudEvents abuse-protection handshake.
    if method == AxumMethod::OPTIONS {
        let origin = headers
            .get("webhook-request-origin")
            .cloned()
            .unwrap_or(HeaderValue::from_static(""));
        if refuse {
            return StatusCode::OK.into_response();
        }
        let mut response = StatusCode::OK.into_response();
        response
            .headers_mut()
            .insert("webhook-allowed-origin", origin);
        return response;
    }
    let json: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    // The Event Grid validation handshake.
    if headers
        .get("aeg-event-type")
        .is_some_and(|v| v == "SubscriptionValidation")
    {
        assert_eq!(
            json[0]["eventType"],
            "Microsoft.EventGrid.SubscriptionValidationEvent"
        );
        let code = if refuse {
            json!("wrong")
        } else {
            json[0]["data"]["validationCode"].clone()
        };
        return axum::Json(json!({ "validationResponse": code })).into_response();
    }
    let mode = state.lock().expect("state").mode.unwrap_or(Mode::Ok);
    if mode == Mode::Fail {
        state.lock().expect("state").failed += 1;
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let event = if json.is_array() {
        assert_eq!(json.as_array().map(Vec::len), Some(1), "one event a POST");
        json[0].clone()
    } else {
        json
    };
    state.lock().expect("state").calls.push(Call {
        headers,
        body,
        event,
    });
    StatusCode::OK.into_response()
}

impl Receiver {
    async fn start() -> Receiver {
        let state: Shared = Arc::default();
        let app = Router::new()
            .route("/events", axum::routing::any(handle))
            .with_state(state.clone());
        Receiver {
            url: format!("{}/events", crate::local::serve(app).await),
            state,
        }
    }

    fn set(&self, mode: Mode) {
        self.state.lock().expect("state").mode = Some(mode);
    }

    fn refuse_validation(&self) {
        self.state.lock().expect("state").refuse_validation = true;
    }

    fn failed(&self) -> usize {
        self.state.lock().expect("state").failed
    }

    /// Deliveries so far, the first of each event id only (delivery is at least once).
    fn events(&self) -> Vec<Call> {
        let mut seen = HashSet::new();
        self.state
            .lock()
            .expect("state")
            .calls
            .iter()
            .filter(|c| seen.insert(c.event["id"].to_string()))
            .cloned()
            .collect()
    }

    fn all_calls(&self) -> Vec<Call> {
        self.state.lock().expect("state").calls.clone()
    }

    /// The event type of a delivery, without its prefix (either envelope).
    fn types(&self) -> Vec<String> {
        self.events().iter().map(event_type).collect()
    }
}

fn event_type(call: &Call) -> String {
    let full = call.event["eventType"]
        .as_str()
        .or_else(|| call.event["type"].as_str())
        .expect("an event type");
    full.strip_prefix(PREFIX).expect("prefixed").to_owned()
}

/// Fast retries; a subscription is disabled after 3 failed tries.
fn fast(s: &mut confab::Settings) {
    s.webhook_retry_base_ms = 20;
    s.webhook_retry_factor = 2;
    s.webhook_poll_ms = 20;
    s.webhook_max_attempts = 3;
    s.webhook_timeout_ms = 5_000;
    s.webhook_handshake_timeout_ms = 2_000;
}

/// Waits (at most 20 s) until `done` holds.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const SUBSCRIPTIONS: &str = "/admin/eventSubscriptions";

/// Creates a subscription with this request (plus the receiver's URL); answers it.
async fn subscribe(server: &TestServer, receiver: &Receiver, mut request: Value) -> Value {
    request["endpointUrl"] = json!(receiver.url);
    server
        .admin()
        .call(Method::POST, SUBSCRIPTIONS, Some(&request))
        .await
        .expect(201)
        .body
}

fn signature_ok(call: &Call, secret: &str) -> bool {
    crate::signature::signed_with(&call.headers, &call.body, secret)
}

fn recipient(call: &Call) -> Option<String> {
    call.event["data"]["recipientCommunicationIdentifier"]["rawId"]
        .as_str()
        .map(str::to_owned)
}

#[tokio::test]
async fn subscriptions_are_validated_listed_changed_and_deleted() {
    let server = TestServer::start_with(fast).await;
    let admin = server.admin();
    let receiver = Receiver::start().await;
    let created = subscribe(
        &server,
        &receiver,
        json!({"name": "orders", "includedEventTypes": ["ChatMessageReceived",
               "microsoft.communication.chatthreadcreated"]}),
    )
    .await;
    let id = created["id"].as_str().expect("id").to_owned();
    assert_eq!(created["name"], "orders");
    assert_eq!(created["eventDeliverySchema"], "EventGridSchema");
    assert_eq!(
        created["includedEventTypes"],
        json!([
            "Microsoft.Communication.ChatMessageReceived",
            "Microsoft.Communication.ChatThreadCreated"
        ])
    );
    assert_eq!(created["threadIds"], json!([]));
    assert_eq!(created["enabled"], true);
    assert!(created["secret"].as_str().is_some_and(|s| s.len() >= 32));

    // Defaults: every chat event type.
    let all = subscribe(&server, &receiver, json!({})).await;
    assert_eq!(all["includedEventTypes"].as_array().map(Vec::len), Some(16));
    let listed = admin
        .call(Method::GET, SUBSCRIPTIONS, None)
        .await
        .expect(200);
    let ids: Vec<&str> = listed.body["value"]
        .as_array()
        .expect("value")
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert_eq!(ids, [id.as_str(), all["id"].as_str().expect("id")]);

    // Change the types and narrow to a thread; disable.
    let user = server.user().await;
    let thread = user.create_thread("t", &[]).await;
    let path = format!("{SUBSCRIPTIONS}/{id}");
    let changed = admin
        .call(
            Method::PATCH,
            &path,
            Some(
                &json!({"includedEventTypes": ["ChatMessageEdited"], "threadIds": [thread],
                         "enabled": false}),
            ),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(
        changed["includedEventTypes"],
        json!(["Microsoft.Communication.ChatMessageEdited"])
    );
    assert_eq!(changed["threadIds"], json!([thread]));
    assert_eq!(changed["enabled"], false);
    assert_eq!(
        admin.call(Method::GET, &path, None).await.expect(200).body,
        changed
    );

    // Bad requests, in the ACS error shape.
    let bad = [
        json!({}),
        json!({"endpointUrl": "ftp://x"}),
        json!({"endpointUrl": receiver.url, "includedEventTypes": ["SMSReceived"]}),
        json!({"endpointUrl": receiver.url, "includedEventTypes": []}),
        json!({"endpointUrl": receiver.url, "eventDeliverySchema": "Kaizala"}),
        json!({"endpointUrl": receiver.url, "threadIds": ["not-a-thread"]}),
        json!({"endpointUrl": receiver.url, "name": "has spaces"}),
        json!({"endpointUrl": receiver.url, "name": "orders"}),
    ];
    for body in bad {
        let resp = admin.call(Method::POST, SUBSCRIPTIONS, Some(&body)).await;
        assert!(
            [400, 409].contains(&resp.status.as_u16()),
            "{body}: {}",
            resp.text
        );
        assert!(resp.body["error"]["message"].as_str().is_some(), "{body}");
    }
    // An endpoint that fails validation is refused, and nothing is recorded.
    let refusing = Receiver::start().await;
    refusing.refuse_validation();
    let resp = admin
        .call(
            Method::POST,
            SUBSCRIPTIONS,
            Some(&json!({"endpointUrl": refusing.url})),
        )
        .await
        .error(400);
    assert!(resp["message"]
        .as_str()
        .is_some_and(|m| m.contains("validationResponse")));
    assert_eq!(resp["target"], "endpointUrl");
    let resp = admin
        .call(
            Method::POST,
            SUBSCRIPTIONS,
            Some(&json!({"endpointUrl": refusing.url,
                         "eventDeliverySchema": "CloudEventSchemaV1_0"})),
        )
        .await
        .error(400);
    assert!(resp["message"]
        .as_str()
        .is_some_and(|m| m.contains("WebHook-Allowed-Origin")));
    let listed = admin
        .call(Method::GET, SUBSCRIPTIONS, None)
        .await
        .expect(200);
    assert_eq!(listed.body["value"].as_array().map(Vec::len), Some(2));

    // Unsigned: 401. Unknown: 404.
    server
        .client_with_auth(None)
        .send(Method::GET, SUBSCRIPTIONS, None)
        .await
        .error(401);
    admin
        .call(Method::GET, &format!("{SUBSCRIPTIONS}/nope"), None)
        .await
        .error(404);
    admin
        .call(
            Method::PATCH,
            &format!("{SUBSCRIPTIONS}/nope"),
            Some(&json!({})),
        )
        .await
        .error(404);

    // Delete: 204, then gone.
    admin.call(Method::DELETE, &path, None).await.expect(204);
    admin.call(Method::GET, &path, None).await.error(404);
    admin.call(Method::DELETE, &path, None).await.error(404);
}

#[tokio::test]
async fn chat_events_reach_an_event_grid_endpoint_thread_and_user_level() {
    let server = TestServer::start_with(fast).await;
    let receiver = Receiver::start().await;
    let subscription = subscribe(&server, &receiver, json!({"name": "all-chat"})).await;
    let secret = subscription["secret"].as_str().expect("secret").to_owned();
    let users = server.users(4).await;
    let (alice, bob, carol, dave) = (&users[0], &users[1], &users[2], &users[3]);

    let thread = alice.create_thread("plans", &[bob, carol]).await;
    let message = alice.send(&thread, "hello").await;
    alice
        .patch(
            &message_path(&thread, &message),
            json!({"content": "hello!"}),
        )
        .await
        .expect(204);
    alice
        .delete(&message_path(&thread, &message))
        .await
        .expect(204);
    alice
        .patch(&thread_path(&thread), json!({"topic": "new plans"}))
        .await
        .expect(204);
    alice
        .post(
            &format!("{}/:add", participants_path(&thread)),
            json!({"participants": [dave.participant()]}),
        )
        .await
        .expect(201);
    alice
        .post(
            &format!("{}/:remove", participants_path(&thread)),
            carol.ident(),
        )
        .await
        .expect(204);
    alice.delete(&thread_path(&thread)).await.expect(204);

    let thread_level = [
        "ChatThreadCreated",
        "ChatMessageReceivedInThread",
        "ChatMessageEditedInThread",
        "ChatMessageDeletedInThread",
        "ChatThreadPropertiesUpdated",
        "ChatThreadParticipantAdded",
        "ChatThreadParticipantRemoved",
        "ChatThreadDeleted",
    ];
    // Per user-level type: who gets it (every participant of the moment but the actor).
    let (a, b, c, d) = (&alice.id, &bob.id, &carol.id, &dave.id);
    let user_level: Vec<(&str, Vec<&String>)> = vec![
        ("ChatThreadCreatedWithUser", vec![b, c]),
        ("ChatMessageReceived", vec![b, c]),
        ("ChatMessageEdited", vec![b, c]),
        ("ChatMessageDeleted", vec![b, c]),
        ("ChatThreadPropertiesUpdatedPerUser", vec![b, c]),
        ("ChatParticipantAddedToThreadWithUser", vec![b, c, d]),
        ("ChatParticipantRemovedFromThreadWithUser", vec![b, c, d]),
        ("ChatThreadWithUserDeleted", vec![b, d]),
    ];
    let expected = thread_level.len() + user_level.iter().map(|(_, who)| who.len()).sum::<usize>();
    eventually("every event", || receiver.events().len() >= expected).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let events = receiver.events();
    assert_eq!(events.len(), expected, "{:?}", receiver.types());

    // Thread-level events in the order of the changes.
    let in_thread: Vec<String> = events
        .iter()
        .map(event_type)
        .filter(|t| thread_level.contains(&t.as_str()))
        .collect();
    assert_eq!(in_thread, thread_level);
    for (event_type_name, who) in &user_level {
        let mut got: Vec<String> = events
            .iter()
            .filter(|c| event_type(c) == *event_type_name)
            .filter_map(recipient)
            .collect();
        got.sort();
        let mut want: Vec<String> = who.iter().map(|w| (*w).clone()).collect();
        want.sort();
        assert_eq!(got, want, "{event_type_name}");
        assert!(!got.contains(a), "the actor gets no {event_type_name}");
    }

    // The envelope, the headers and the signature of every delivery.
    for call in &events {
        let e = &call.event;
        assert!(uuid::Uuid::parse_str(e["id"].as_str().expect("id")).is_ok());
        assert!(e["topic"]
            .as_str()
            .is_some_and(|t| t.contains("/providers/Microsoft.Communication/")));
        assert!(e["subject"]
            .as_str()
            .is_some_and(|s| s.starts_with(&format!("thread/{thread}/"))));
        assert_eq!(e["dataVersion"], "1.0");
        assert_eq!(e["metadataVersion"], "1");
        assert!(e["eventTime"].as_str().is_some());
        assert_eq!(e["data"]["threadId"], thread.as_str());
        assert!(e["data"]["createTime"].as_str().is_some());
        assert!(e["data"]["version"].is_i64());
        assert_eq!(call.headers["aeg-event-type"], "Notification");
        assert_eq!(call.headers["aeg-subscription-name"], "ALL-CHAT");
        assert_eq!(call.headers["aeg-data-version"], "1.0");
        assert!(call.headers.get("aeg-delivery-count").is_some());
        assert_eq!(
            call.headers["x-confab-event-id"],
            e["id"].as_str().expect("id")
        );
        assert!(signature_ok(call, &secret), "signature of {}", call.body);
        if let Some(to) = recipient(call) {
            assert!(e["subject"]
                .as_str()
                .is_some_and(|s| s.ends_with(&format!("/recipient/{to}"))));
        }
    }

    // The data of some, as the Event Grid samples show it.
    let of = |t: &str| -> Vec<&Call> { events.iter().filter(|c| event_type(c) == t).collect() };
    let received = &of("ChatMessageReceived")[0].event;
    assert_eq!(
        received["subject"],
        format!(
            "thread/{thread}/sender/{a}/recipient/{}",
            recipient(of("ChatMessageReceived")[0]).expect("r")
        )
    );
    let data = &received["data"];
    assert_eq!(data["messageBody"], "hello");
    assert_eq!(data["messageId"], message.as_str());
    assert_eq!(data["senderCommunicationIdentifier"]["rawId"], a.as_str());
    assert_eq!(
        data["senderCommunicationIdentifier"]["communicationUser"]["id"],
        a.as_str()
    );
    assert_eq!(data["type"], "Text");
    assert!(data["composeTime"].as_str().is_some());
    assert_eq!(data["metadata"], json!({}));
    let edited = &of("ChatMessageEditedInThread")[0].event["data"];
    assert_eq!(edited["messageBody"], "hello!");
    assert!(edited["editTime"].as_str().is_some());
    assert!(of("ChatMessageDeleted")[0].event["data"]["deleteTime"]
        .as_str()
        .is_some());
    let created = &of("ChatThreadCreated")[0].event;
    assert_eq!(created["subject"], format!("thread/{thread}/createdBy/{a}"));
    assert_eq!(created["data"]["properties"]["topic"], "plans");
    assert_eq!(
        created["data"]["participants"].as_array().map(Vec::len),
        Some(3)
    );
    let updated = &of("ChatThreadPropertiesUpdated")[0].event["data"];
    assert_eq!(updated["properties"]["topic"], "new plans");
    assert_eq!(
        updated["editedByCommunicationIdentifier"]["rawId"],
        a.as_str()
    );
    let added = &of("ChatThreadParticipantAdded")[0].event["data"];
    assert_eq!(
        added["participantAdded"]["participantCommunicationIdentifier"]["rawId"],
        d.as_str()
    );
    assert_eq!(added["addedByCommunicationIdentifier"]["rawId"], a.as_str());
    let removed = &of("ChatThreadParticipantRemoved")[0].event;
    assert_eq!(
        removed["subject"],
        format!("thread/{thread}/participantRemoved/{c}")
    );
    assert_eq!(
        removed["data"]["removedByCommunicationIdentifier"]["rawId"],
        a.as_str()
    );

    // The delivery log through the admin API.
    let id = subscription["id"].as_str().expect("id");
    let log = server
        .admin()
        .call(
            Method::GET,
            &format!("{SUBSCRIPTIONS}/{id}/deliveries?limit=1000"),
            None,
        )
        .await
        .expect(200)
        .body;
    let deliveries = log["deliveries"].as_array().expect("deliveries");
    assert_eq!(deliveries.len(), expected);
    assert!(deliveries.iter().all(|d| d["status"] == "delivered"));
    assert_eq!(log["subscription"]["id"], id);
}

#[tokio::test]
async fn cloud_events_for_the_chosen_threads_only() {
    let server = TestServer::start_with(fast).await;
    let receiver = Receiver::start().await;
    let users = server.users(2).await;
    let (alice, bob) = (&users[0], &users[1]);
    let watched = alice.create_thread("watched", &[bob]).await;
    let other = alice.create_thread("other", &[bob]).await;
    let subscription = subscribe(
        &server,
        &receiver,
        json!({"eventDeliverySchema": "CloudEventSchemaV1_0", "threadIds": [watched],
               "includedEventTypes": ["ChatMessageReceivedInThread", "ChatMessageReceived"]}),
    )
    .await;
    assert_eq!(subscription["eventDeliverySchema"], "CloudEventSchemaV1_0");
    alice.send(&other, "not this one").await;
    alice.send(&watched, "one").await;
    bob.send(&watched, "two").await;
    eventually("four events", || receiver.events().len() >= 4).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let events = receiver.events();
    assert_eq!(events.len(), 4, "{:?}", receiver.types());
    for call in &events {
        let e = &call.event;
        assert_eq!(e["specversion"], "1.0");
        assert!(e["source"]
            .as_str()
            .is_some_and(|s| s.contains("communicationServices")));
        assert_eq!(e["data"]["threadId"], watched.as_str());
        assert!(e["time"].as_str().is_some());
        assert!(e["subject"]
            .as_str()
            .is_some_and(|s| s.starts_with("thread/")));
        assert_eq!(
            call.headers["content-type"],
            "application/cloudevents+json; charset=utf-8"
        );
        assert!(signature_ok(
            call,
            subscription["secret"].as_str().expect("secret")
        ));
    }
    let bodies: Vec<(String, Value)> = events
        .iter()
        .map(|c| (event_type(c), c.event["data"]["messageBody"].clone()))
        .collect();
    assert_eq!(
        bodies,
        [
            ("ChatMessageReceivedInThread".to_owned(), json!("one")),
            ("ChatMessageReceived".to_owned(), json!("one")),
            ("ChatMessageReceivedInThread".to_owned(), json!("two")),
            ("ChatMessageReceived".to_owned(), json!("two")),
        ]
    );
    assert_eq!(recipient(&events[1]).as_deref(), Some(bob.id.as_str()));
    assert_eq!(recipient(&events[3]).as_deref(), Some(alice.id.as_str()));
}

#[tokio::test]
async fn a_failing_endpoint_is_disabled_then_re_enabled_and_gets_everything_in_order() {
    let server = TestServer::start_with(fast).await;
    let admin = server.admin();
    let receiver = Receiver::start().await;
    let subscription = subscribe(
        &server,
        &receiver,
        json!({"includedEventTypes": ["ChatMessageReceivedInThread"]}),
    )
    .await;
    let id = subscription["id"].as_str().expect("id").to_owned();
    let path = format!("{SUBSCRIPTIONS}/{id}");
    let alice = server.user().await;
    let thread = alice.create_thread("t", &[]).await;
    receiver.set(Mode::Fail);
    for i in 0..3 {
        alice.send(&thread, &format!("m{i}")).await;
    }
    // Three tries of the first, then the subscription is disabled; the others wait behind it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let disabled = loop {
        if receiver.failed() >= 3 {
            let shown = admin.call(Method::GET, &path, None).await.expect(200).body;
            if shown["enabled"] == false {
                break shown;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "never disabled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(disabled["disabledReason"]
        .as_str()
        .is_some_and(|r| r.contains("HTTP 503") && r.contains("enabled")));
    assert_eq!(receiver.failed(), 3);
    let log = admin
        .call(Method::GET, &format!("{path}/deliveries"), None)
        .await
        .expect(200)
        .body;
    let deliveries = log["deliveries"].as_array().expect("deliveries");
    assert_eq!(deliveries.len(), 3);
    let first = deliveries.last().expect("oldest");
    assert_eq!(first["status"], "failed");
    assert_eq!(first["attempts"], 3);
    assert_eq!(first["lastStatus"], 503);
    assert!(deliveries[..2].iter().all(|d| d["attempts"] == 0));

    // Back up and re-enabled: all three, in order.
    receiver.set(Mode::Ok);
    let enabled = admin
        .call(Method::PATCH, &path, Some(&json!({"enabled": true})))
        .await
        .expect(200)
        .body;
    assert_eq!(enabled["enabled"], true);
    assert_eq!(enabled["disabledReason"], Value::Null);
    eventually("all three", || receiver.events().len() >= 3).await;
    let texts: Vec<Value> = receiver
        .events()
        .iter()
        .map(|c| c.event["data"]["messageBody"].clone())
        .collect();
    assert_eq!(texts, [json!("m0"), json!("m1"), json!("m2")]);

    // Manual redelivery: the same event again, with the same id.
    let delivery = first["id"].as_i64().expect("delivery id");
    let before = receiver.all_calls().len();
    let again = admin
        .call(
            Method::POST,
            &format!("{path}/deliveries/{delivery}/redeliver"),
            None,
        )
        .await
        .expect(200)
        .body;
    assert_eq!(again["status"], "pending");
    eventually("redelivered", || receiver.all_calls().len() > before).await;
    let last = receiver.all_calls().pop().expect("a call");
    assert_eq!(last.event["data"]["messageBody"], "m0");
    assert_eq!(last.event["id"], first["eventId"]);
    admin
        .call(
            Method::POST,
            &format!("{path}/deliveries/999999/redeliver"),
            None,
        )
        .await
        .error(404);

    // The CLI reads the same log.
    let output = crate::cli::confab(
        &server.running.connection_string,
        &["events", "deliveries", &id, "--limit", "2"],
    )
    .await;
    assert!(output.status.success(), "{output:?}");
    let printed: Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(printed["subscription"]["id"], id.as_str());
    assert_eq!(printed["deliveries"].as_array().map(Vec::len), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_manages_subscriptions() {
    let server = TestServer::start_with(fast).await;
    let receiver = Receiver::start().await;
    let connection = server.running.connection_string.clone();
    let run = |args: &'static [&'static str]| crate::cli::confab(&connection, args);
    let created = crate::cli::confab(
        &connection,
        &[
            "events",
            "create",
            "--url",
            &receiver.url,
            "--name",
            "cli",
            "--types",
            "ChatMessageReceived,ChatThreadCreated",
        ],
    )
    .await;
    assert!(created.status.success(), "{created:?}");
    let created: Value = serde_json::from_slice(&created.stdout).expect("json");
    let id = created["id"].as_str().expect("id").to_owned();
    assert_eq!(created["name"], "cli");
    let on = |verb: &'static str| {
        let (connection, id) = (connection.clone(), id.clone());
        async move { crate::cli::confab(&connection, &["events", verb, &id]).await }
    };
    let output = on("disable").await;
    assert!(output.status.success(), "{output:?}");
    let shown: Value = serde_json::from_slice(&on("show").await.stdout).expect("json");
    assert_eq!(shown["enabled"], false);
    let listed: Value =
        serde_json::from_slice(&run(&["events", "list"]).await.stdout).expect("json");
    assert_eq!(listed["value"][0]["id"], id.as_str());
    let output = on("delete").await;
    assert!(output.status.success(), "{output:?}");
    // An error names the server's message and fails.
    let output = on("show").await;
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("does not exist"));
}

#[tokio::test]
async fn recorded_deliveries_survive_a_restart() {
    let dir = std::env::temp_dir().join(format!(
        "confab-events-restart-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    let configure = |s: &mut confab::Settings| {
        fast(s);
        s.webhook_max_attempts = 100;
        s.in_memory = false;
        s.data_dir = dir.clone();
    };
    let receiver = Receiver::start().await;
    let server = TestServer::start_with(configure).await;
    subscribe(
        &server,
        &receiver,
        json!({"includedEventTypes": ["ChatMessageReceivedInThread"]}),
    )
    .await;
    let alice = server.user().await;
    let thread = alice.create_thread("t", &[]).await;
    receiver.set(Mode::Fail);
    for i in 0..3 {
        alice.send(&thread, &format!("r{i}")).await;
    }
    server.running.shutdown().await;
    assert!(receiver.events().is_empty());

    receiver.set(Mode::Ok);
    let _server = TestServer::start_with(configure).await;
    eventually("the three after the restart", || {
        receiver.events().len() >= 3
    })
    .await;
    let texts: Vec<Value> = receiver
        .events()
        .iter()
        .map(|c| c.event["data"]["messageBody"].clone())
        .collect();
    assert_eq!(texts, [json!("r0"), json!("r1"), json!("r2")]);
    let _ = std::fs::remove_dir_all(&dir);
}
