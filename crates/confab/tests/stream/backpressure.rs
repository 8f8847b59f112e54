//! Back-pressure: a client that stops reading is cut off with a reason, while a client that
//! reads keeps up and gets everything.

use std::collections::HashSet;

use crate::clients::{Client, Sse, StalledSse, Ws};
use crate::support::*;

const MESSAGES: usize = 1500;
const SIZE: usize = 16 * 1024;

#[tokio::test]
async fn a_slow_consumer_is_cut_off_while_a_fast_one_keeps_up() {
    let server = TestServer::start_with(|s| {
        s.stream_buffer = 8;
        s.stream_send_timeout_ms = 500;
        s.stream_bus_capacity = 64;
    })
    .await;
    let alice = server.user().await;
    let thread = alice.create_thread("firehose", &[]).await;

    let stalled = StalledSse::open(&server, &alice.token).await;
    let mut fast_sse = Client::Sse(Sse::bearer(&server, &alice.token, "").await);
    let mut fast_ws = Client::Ws(Ws::bearer(&server, &alice.token, "").await);
    let (from, _) = fast_sse.until_ready().await;
    fast_ws.until_ready().await;

    let want: HashSet<String> = (0..MESSAGES).map(|i| format!("{i:05}")).collect();
    let readers: Vec<_> = [fast_sse, fast_ws]
        .into_iter()
        .map(|mut client| {
            let mut want = want.clone();
            tokio::spawn(async move {
                let mut last = from;
                while !want.is_empty() {
                    let event = client.next_of("messageReceived").await;
                    let position = event["position"].as_i64().expect("position");
                    assert!(position > last, "in order, once");
                    last = position;
                    let text = event["data"]["content"]["text"].as_str().unwrap_or("");
                    assert!(
                        want.remove(&text[..5]),
                        "unexpected or repeated {}",
                        &text[..5]
                    );
                }
            })
        })
        .collect();

    let padding = "x".repeat(SIZE);
    let mut lanes = Vec::new();
    for lane in 0..4 {
        let alice = alice.clone();
        let thread = thread.clone();
        let padding = padding.clone();
        lanes.push(tokio::spawn(async move {
            for i in (lane..MESSAGES).step_by(4) {
                alice.send(&thread, &format!("{i:05}{padding}")).await;
            }
        }));
    }
    for lane in lanes {
        lane.await.expect("sender");
    }
    for reader in readers {
        reader
            .await
            .expect("the fast consumers got every message, in order");
    }

    let text = stalled.drain().await;
    assert!(
        text.contains("event: closed") && text.contains("\"reason\":\"slow-consumer\""),
        "the slow consumer is told why: {}",
        &text[text.len().saturating_sub(400)..]
    );
    let delivered = text.matches("\"type\":\"messageReceived\"").count();
    assert!(delivered < MESSAGES, "cut off before the end ({delivered})");
}
