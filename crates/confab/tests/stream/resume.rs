//! Resuming: a client that reconnects with its last position gets every missed event, in
//! order, then live ones — no gap, no duplicate; a position the server no longer keeps (or never
//! handed out) is answered with an explicit `reset`.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;

use crate::clients::{Client, Frame, Sse, Ws};
use crate::support::*;

const MISSED: usize = 1000;

/// Sends `n` messages `prefix0..` from 4 concurrent senders; answers their texts.
async fn send_many(user: &User, thread: &str, prefix: &str, n: usize) -> HashSet<String> {
    let mut tasks = Vec::new();
    for lane in 0..4 {
        let user = user.clone();
        let thread = thread.to_owned();
        let prefix = prefix.to_owned();
        tasks.push(tokio::spawn(async move {
            for i in (lane..n).step_by(4) {
                user.send(&thread, &format!("{prefix}{i}")).await;
            }
        }));
    }
    for task in tasks {
        task.await.expect("sender");
    }
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

/// Reads message events until every text in `want` has come; checks order and uniqueness of
/// positions on the way. Answers the last position.
async fn expect_all(client: &mut Client, mut want: HashSet<String>, after: i64) -> i64 {
    let mut last = after;
    while !want.is_empty() {
        let event = client.next_event().await;
        let position = event["position"].as_i64().unwrap_or(last);
        assert!(
            position > last,
            "positions must increase (no duplicate): {position} after {last}"
        );
        last = position;
        if event["type"] == "messageReceived" {
            let text = event["data"]["content"]["text"].as_str().unwrap_or("");
            assert!(
                want.remove(text) || text.is_empty(),
                "unexpected or repeated {text}"
            );
        }
    }
    last
}

#[tokio::test]
async fn reconnecting_after_a_thousand_missed_events_gets_them_all_in_order() {
    let server = TestServer::start().await;
    let alice = server.user().await;
    let bob = server.user().await;
    let thread = alice.create_thread("resume", &[&bob]).await;

    // Bob streams, then goes away at a known position.
    let mut first = Client::Sse(Sse::bearer(&server, &bob.token, "").await);
    let (position, _) = first.until_ready().await;
    drop(first);

    let missed = send_many(&alice, &thread, "missed-", MISSED).await;

    // SSE, resuming the way EventSource does (Last-Event-ID); more messages are sent while it
    // replays, and must come exactly once, after the missed ones.
    let mut sse = Client::Sse(
        Sse::open(
            &server,
            "",
            &[
                ("authorization", format!("Bearer {}", bob.token)),
                ("last-event-id", position.to_string()),
            ],
        )
        .await,
    );
    let concurrent = {
        let alice = alice.clone();
        let thread = thread.clone();
        tokio::spawn(async move { send_many(&alice, &thread, "during-", 200).await })
    };
    let (ready_at, replayed) = sse.until_ready().await;
    let texts: Vec<&str> = replayed
        .iter()
        .filter(|e| e["type"] == "messageReceived")
        .filter_map(|e| e["data"]["content"]["text"].as_str())
        .collect();
    assert!(
        texts.len() >= MISSED,
        "replayed {} of {MISSED}",
        texts.len()
    );
    let positions: Vec<i64> = replayed
        .iter()
        .map(|e| e["position"].as_i64().expect("position"))
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "in order, once");
    assert!(positions.first().is_some_and(|p| *p > position));
    let replayed_texts: HashSet<&str> = texts.iter().copied().collect();
    assert!(missed.iter().all(|t| replayed_texts.contains(t.as_str())));
    // The messages sent meanwhile: some were replayed, the rest come live, none twice.
    let during = concurrent.await.expect("senders");
    let still: HashSet<String> = during
        .into_iter()
        .filter(|t| !replayed_texts.contains(t.as_str()))
        .collect();
    let last = expect_all(
        &mut sse,
        still,
        ready_at.max(*positions.last().unwrap_or(&0)),
    )
    .await;

    // WebSocket, resuming with `since`: the same thousand, from the same position.
    let mut ws = Client::Ws(Ws::bearer(&server, &bob.token, &format!("since={position}")).await);
    let (_, replayed_ws) = ws.until_ready().await;
    let ws_positions: Vec<i64> = replayed_ws
        .iter()
        .map(|e| e["position"].as_i64().expect("position"))
        .collect();
    assert!(ws_positions.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(
        ws_positions.last(),
        Some(&last),
        "caught up to the same head"
    );
    assert!(ws_positions.len() >= MISSED + 200);

    // And live after that.
    alice.send(&thread, "live").await;
    for client in [&mut sse, &mut ws] {
        let event = client.next_of("messageReceived").await;
        assert_eq!(event["data"]["content"]["text"], "live");
        assert!(event["position"].as_i64().expect("position") > last);
    }
}

#[tokio::test]
async fn a_position_no_longer_kept_is_told_explicitly() {
    let server = TestServer::start_with(|s| {
        s.event_retention_count = 10;
        s.retention_sweep_secs = 1;
    })
    .await;
    let alice = server.user().await;
    let thread = alice.create_thread("old", &[]).await;
    for i in 0..40 {
        alice.send(&thread, &format!("m{i}")).await;
    }
    // Within a few sweeps, position 1 is gone.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let reset: Value = loop {
        let mut sse = Client::Sse(Sse::bearer(&server, &alice.token, "since=1").await);
        match sse.next().await {
            Some(Frame::End { kind, json }) => {
                assert_eq!(kind, "reset");
                break json;
            }
            _ if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => panic!("no reset after the purge: {other:?}"),
        }
    };
    assert_eq!(reset["type"], "reset");
    assert_eq!(reset["reason"], "position-too-old");
    let oldest = reset["oldest"].as_i64().expect("oldest");
    let head = reset["head"].as_i64().expect("head");
    assert!(oldest > 1 && head - oldest < 20, "{reset}");

    // From the oldest kept position minus one, it resumes; over WebSocket the reset comes with
    // close code 4000.
    let mut ok =
        Client::Ws(Ws::bearer(&server, &alice.token, &format!("since={}", oldest - 1)).await);
    let (_, replayed) = ok.until_ready().await;
    assert!(!replayed.is_empty());
    let mut ws = Ws::bearer(&server, &alice.token, "since=1").await;
    match ws.next().await {
        Some(Frame::End { kind, json }) => {
            assert_eq!(kind, "reset");
            assert_eq!(json["reason"], "position-too-old");
        }
        other => panic!("expected a reset: {other:?}"),
    }
    assert_eq!(ws.next().await, None);
    assert_eq!(ws.close_code, Some(4000));

    // A position this server never handed out.
    let mut sse = Client::Sse(Sse::bearer(&server, &alice.token, "since=999999999").await);
    match sse.next().await {
        Some(Frame::End { json, .. }) => assert_eq!(json["reason"], "position-unknown"),
        other => panic!("expected a reset: {other:?}"),
    }
}
