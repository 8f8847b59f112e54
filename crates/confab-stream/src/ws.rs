//! `GET /stream/ws`: the stream over WebSocket. One text message per frame: an event's shared
//! JSON as is, `{"type":"ready","position":…}`, `{"type":"heartbeat"}`; at the end the closing
//! JSON (`{"type":"closed"|"reset","reason":…}`) and a close frame with a matching code (4000
//! reset, 4001 unauthorized, 4008 slow consumer, 1001 shutdown, 1011 error). Messages from the
//! client are ignored (pings are answered).

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use confab_core::Error;
use tokio::time::timeout;

use crate::session::{self, Channels, Closing, Frame};
use crate::{params, StreamError, StreamState};

pub(crate) async fn handler(
    State(state): State<StreamState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, StreamError> {
    let request = params::parse(&headers, &query)?;
    let prepared = session::prepare(&state, request).await?;
    // Credentials first, then the handshake; a request that is no WebSocket handshake gets
    // the stream's JSON error like any other.
    let upgrade = upgrade.map_err(|rejection| {
        Error::bad_request(format!(
            "This is the WebSocket stream: {}.",
            rejection.body_text()
        ))
    })?;
    let send_timeout = state.config.send_timeout;
    Ok(upgrade.on_upgrade(move |socket| pump(socket, prepared.start(), send_timeout)))
}

/// Sends the session's frames until it ends or the client goes. A send that cannot complete
/// within `send_timeout` (the client stopped reading) drops the connection.
async fn pump(mut socket: WebSocket, mut channels: Channels, send_timeout: Duration) {
    loop {
        tokio::select! {
            biased;
            closing = &mut channels.close => {
                if let Ok(closing) = closing {
                    say_goodbye(&mut socket, &closing, send_timeout).await;
                }
                return;
            }
            frame = channels.frames.recv() => match frame {
                Some(frame) => {
                    let sent = timeout(send_timeout, socket.send(message(frame))).await;
                    if !matches!(sent, Ok(Ok(()))) {
                        return;
                    }
                }
                None => {
                    if let Ok(closing) = channels.close.try_recv() {
                        say_goodbye(&mut socket, &closing, send_timeout).await;
                    }
                    return;
                }
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

fn message(frame: Frame) -> Message {
    match frame {
        // The shared bytes, not a copy: the wire form is UTF-8 JSON by construction.
        Frame::Event(event) => match Utf8Bytes::try_from(event.wire.clone()) {
            Ok(text) => Message::Text(text),
            Err(_) => Message::Text(Utf8Bytes::from(
                String::from_utf8_lossy(&event.wire).into_owned(),
            )),
        },
        Frame::Ready(position) => Message::Text(Utf8Bytes::from(format!(
            "{{\"type\":\"ready\",\"position\":{position}}}"
        ))),
        Frame::Heartbeat => Message::Text(Utf8Bytes::from_static("{\"type\":\"heartbeat\"}")),
    }
}

async fn say_goodbye(socket: &mut WebSocket, closing: &Closing, send_timeout: Duration) {
    let text = Message::Text(Utf8Bytes::from(closing.json.clone()));
    if matches!(timeout(send_timeout, socket.send(text)).await, Ok(Ok(()))) {
        let close = Message::Close(Some(CloseFrame {
            code: closing.code,
            reason: Utf8Bytes::from_static(closing.reason),
        }));
        let _ = timeout(send_timeout, socket.send(close)).await;
    }
}
