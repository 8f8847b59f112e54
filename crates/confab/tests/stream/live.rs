//! Live delivery over both transports: messages, edits, deletes, participants, thread
//! properties, typing and read receipts, each with its conversation and position.

use serde_json::json;

use crate::clients::{Client, Frame, Sse, Ws};
use crate::support::*;

#[tokio::test]
async fn live_events_reach_sse_and_websocket_clients() {
    let server = TestServer::start().await;
    let alice = server.user().await;
    let bob = server.user().await;
    let thread = alice.create_thread("live", &[&bob]).await;

    let mut sse = Client::Sse(Sse::bearer(&server, &alice.token, "").await);
    let mut ws = Client::Ws(Ws::bearer(&server, &bob.token, "").await);
    let (sse_head, replayed) = sse.until_ready().await;
    assert!(replayed.is_empty(), "no `since`: nothing replayed");
    ws.until_ready().await;

    let id = alice.send(&thread, "hello").await;
    for client in [&mut sse, &mut ws] {
        let event = client.next_of("messageReceived").await;
        assert_eq!(event["conversation"], thread.as_str());
        assert!(event["position"].as_i64().expect("position") > sse_head);
        assert!(event["at"].is_string());
        let data = &event["data"];
        assert_eq!(data["messageId"], id.as_str());
        assert_eq!(data["type"], "text");
        assert_eq!(data["content"]["text"], "hello");
        assert_eq!(data["sender"], alice.id.as_str());
        assert_eq!(data["sequenceId"], 2, "after the participantAdded message");
    }

    alice
        .patch(
            &message_path(&thread, &id),
            json!({"content": "hello, edited"}),
        )
        .await
        .expect(204);
    alice.delete(&message_path(&thread, &id)).await.expect(204);
    alice
        .patch(&thread_path(&thread), json!({"topic": "renamed"}))
        .await
        .expect(204);
    for client in [&mut sse, &mut ws] {
        let edited = client.next_of("messageEdited").await;
        assert_eq!(edited["data"]["content"]["text"], "hello, edited");
        assert!(edited["data"]["editedOn"].is_string());
        let deleted = client.next_of("messageDeleted").await;
        assert_eq!(deleted["data"]["messageId"], id.as_str());
        let updated = client.next_of("conversationUpdated").await;
        assert_eq!(updated["data"]["topic"], "renamed");
        assert_eq!(updated["data"]["changed"], json!(["topic"]));
        let system = client.next_of("messageReceived").await;
        assert_eq!(system["data"]["type"], "topicUpdated");
    }

    // Typing: ephemeral (no position), not echoed to the typist.
    bob.post(
        &format!("{}/typing", thread_path(&thread)),
        json!({"senderDisplayName": "Bob"}),
    )
    .await
    .expect(200);
    let typing = sse.next_event().await;
    assert_eq!(typing["type"], "typing");
    assert!(typing.get("position").is_none());
    assert_eq!(typing["data"]["sender"], bob.id.as_str());
    assert_eq!(typing["data"]["senderDisplayName"], "Bob");

    // A read receipt reaches the other participant; participants added too.
    let last = alice.send(&thread, "read me").await;
    bob.post(
        &format!("{}/readReceipts", thread_path(&thread)),
        json!({"chatMessageId": last}),
    )
    .await
    .expect(200);
    let carol = server.user().await;
    alice.add(&thread, &[&carol]).await;
    let receipt = sse.next_of("readReceipt").await;
    assert_eq!(receipt["data"]["reader"], bob.id.as_str());
    assert_eq!(receipt["data"]["messageId"], last.as_str());
    let added = sse.next_of("participantsAdded").await;
    assert_eq!(added["data"]["added"], json!([carol.id]));

    // Bob never saw his own typing: the next thing he has is the message after it.
    let next = ws.next_event().await;
    assert_eq!(next["data"]["content"]["text"], "read me");
}

#[tokio::test]
async fn positions_increase_and_sse_ids_are_positions() {
    let server = TestServer::start().await;
    let alice = server.user().await;
    let thread = alice.create_thread("ids", &[]).await;
    let mut sse = Sse::bearer(&server, &alice.token, "").await;
    let mut last = -1;
    let mut seen = 0;
    let mut ready = false;
    for i in 0..5 {
        alice.send(&thread, &format!("m{i}")).await;
    }
    while seen < 5 {
        match sse.next().await.expect("frame") {
            Frame::Ready(_) => ready = true,
            Frame::Event { id, json } => {
                let position = json["position"].as_i64().expect("position");
                assert_eq!(id.as_deref(), Some(position.to_string().as_str()));
                assert!(position > last);
                last = position;
                seen += 1;
            }
            Frame::Heartbeat => {}
            Frame::End { json, .. } => panic!("ended: {json}"),
        }
    }
    assert!(ready);
}

#[tokio::test]
async fn a_stream_can_be_narrowed_to_some_conversations() {
    let server = TestServer::start().await;
    let alice = server.user().await;
    let one = alice.create_thread("one", &[]).await;
    let two = alice.create_thread("two", &[]).await;
    let query = format!("conversations={}", enc(&two));
    let mut ws = Client::Ws(Ws::bearer(&server, &alice.token, &query).await);
    ws.until_ready().await;
    alice.send(&one, "not this").await;
    alice.send(&two, "this").await;
    let event = ws.next_of("messageReceived").await;
    assert_eq!(event["conversation"], two.as_str());
    assert_eq!(event["data"]["content"]["text"], "this");
}

#[tokio::test]
async fn heartbeats_flow_on_an_idle_stream() {
    let server = TestServer::start_with(|s| s.stream_heartbeat_secs = 1).await;
    let alice = server.user().await;
    let sse = Client::Sse(Sse::bearer(&server, &alice.token, "").await);
    let ws = Client::Ws(Ws::bearer(&server, &alice.token, "").await);
    for mut client in [sse, ws] {
        client.until_ready().await;
        assert_eq!(client.next().await, Some(Frame::Heartbeat));
    }
}
