//! Real stream clients: Server-Sent Events over reqwest's streaming body (and over a raw socket
//! that stops reading), WebSocket over tokio-tungstenite.

#![allow(dead_code)]

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::support::TestServer;

/// How long any single wait for a frame may take before a test fails.
pub const WAIT: Duration = Duration::from_secs(20);

/// One frame of a stream, whatever the transport.
#[derive(Clone, Debug, PartialEq)]
pub enum Frame {
    /// An event: its JSON (and for SSE its `id:`).
    Event {
        id: Option<String>,
        json: Value,
    },
    Ready(i64),
    Heartbeat,
    /// `closed` or `reset`, with its JSON.
    End {
        kind: String,
        json: Value,
    },
}

impl Frame {
    pub fn event(&self) -> Option<&Value> {
        match self {
            Frame::Event { json, .. } => Some(json),
            _ => None,
        }
    }
}

/// An SSE client.
pub struct Sse {
    response: reqwest::Response,
    buffer: String,
    pub ended: bool,
}

impl Sse {
    /// Opens `GET /stream/events?<query>` with these extra headers; panics unless 200.
    pub async fn open(server: &TestServer, query: &str, headers: &[(&str, String)]) -> Sse {
        let response = Self::request(server, query, headers).await;
        assert_eq!(response.status(), 200, "stream refused");
        assert_eq!(
            response.headers()["content-type"]
                .to_str()
                .unwrap_or_default(),
            "text/event-stream"
        );
        Sse {
            response,
            buffer: String::new(),
            ended: false,
        }
    }

    pub async fn request(
        server: &TestServer,
        query: &str,
        headers: &[(&str, String)],
    ) -> reqwest::Response {
        let url = format!("{}/stream/events?{query}", server.base);
        let client = reqwest::Client::builder().build().expect("client");
        let mut request = client.get(url);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        request.send().await.expect("send")
    }

    /// Opens with a bearer token.
    pub async fn bearer(server: &TestServer, token: &str, query: &str) -> Sse {
        Self::open(
            server,
            query,
            &[("authorization", format!("Bearer {token}"))],
        )
        .await
    }

    /// The next frame; `None` at the end of the stream. Panics after [`WAIT`].
    pub async fn next(&mut self) -> Option<Frame> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(frame) = self.parse_one() {
                return Some(frame);
            }
            if self.ended {
                return None;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match timeout(left, self.response.chunk()).await {
                Err(_) => panic!("no SSE frame within {WAIT:?}; buffered: {:?}", self.buffer),
                Ok(Ok(Some(chunk))) => self.buffer.push_str(&String::from_utf8_lossy(&chunk)),
                Ok(Ok(None)) | Ok(Err(_)) => self.ended = true,
            }
        }
    }

    fn parse_one(&mut self) -> Option<Frame> {
        loop {
            let end = self.buffer.find("\n\n")?;
            let block: String = self.buffer.drain(..end + 2).collect();
            let mut id = None;
            let mut event = None;
            let mut data = String::new();
            let mut comment = false;
            for line in block.lines() {
                if let Some(rest) = line.strip_prefix("id: ") {
                    id = Some(rest.to_owned());
                } else if let Some(rest) = line.strip_prefix("event: ") {
                    event = Some(rest.to_owned());
                } else if let Some(rest) = line.strip_prefix("data: ") {
                    data.push_str(rest);
                } else if line.starts_with(':') {
                    comment = true;
                }
            }
            if comment && data.is_empty() {
                return Some(Frame::Heartbeat);
            }
            if data.is_empty() {
                continue; // `retry:`
            }
            let json: Value = serde_json::from_str(&data).expect("SSE data is JSON");
            return Some(match event.as_deref() {
                Some("ready") => Frame::Ready(json["position"].as_i64().expect("position")),
                Some(kind @ ("closed" | "reset")) => Frame::End {
                    kind: kind.to_owned(),
                    json,
                },
                _ => Frame::Event { id, json },
            });
        }
    }
}

/// A WebSocket client.
pub struct Ws {
    socket: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>,
    pub ended: bool,
    pub close_code: Option<u16>,
}

impl Ws {
    /// Connects to `/stream/ws?<query>` with these extra headers.
    pub async fn open(server: &TestServer, query: &str, headers: &[(&str, String)]) -> Ws {
        let url = format!("ws://{}/stream/ws?{query}", server.host);
        let mut request = url.into_client_request().expect("request");
        for (name, value) in headers {
            request.headers_mut().insert(
                reqwest::header::HeaderName::from_bytes(name.as_bytes()).expect("name"),
                value.parse().expect("value"),
            );
        }
        let (socket, response) = tokio_tungstenite::connect_async(request)
            .await
            .expect("WebSocket handshake");
        assert_eq!(response.status(), 101);
        Ws {
            socket,
            ended: false,
            close_code: None,
        }
    }

    pub async fn bearer(server: &TestServer, token: &str, query: &str) -> Ws {
        Self::open(
            server,
            query,
            &[("authorization", format!("Bearer {token}"))],
        )
        .await
    }

    /// The next frame; `None` once closed. Panics after [`WAIT`].
    pub async fn next(&mut self) -> Option<Frame> {
        loop {
            if self.ended {
                return None;
            }
            let message = match timeout(WAIT, self.socket.next()).await {
                Err(_) => panic!("no WebSocket frame within {WAIT:?}"),
                Ok(message) => message,
            };
            match message {
                Some(Ok(Message::Text(text))) => {
                    let json: Value = serde_json::from_str(&text).expect("JSON");
                    return Some(match json["type"].as_str() {
                        Some("ready") => Frame::Ready(json["position"].as_i64().expect("position")),
                        Some("heartbeat") => Frame::Heartbeat,
                        Some(kind @ ("closed" | "reset")) if json.get("reason").is_some() => {
                            Frame::End {
                                kind: kind.to_owned(),
                                json,
                            }
                        }
                        _ => Frame::Event {
                            id: json["position"].as_i64().map(|p| p.to_string()),
                            json,
                        },
                    });
                }
                Some(Ok(Message::Close(frame))) => {
                    self.close_code = frame.map(|f| u16::from(f.code));
                    self.ended = true;
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => self.ended = true,
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}

/// Either transport, for tests that run over both.
pub enum Client {
    Sse(Sse),
    Ws(Ws),
}

impl Client {
    pub async fn next(&mut self) -> Option<Frame> {
        match self {
            Client::Sse(c) => c.next().await,
            Client::Ws(c) => c.next().await,
        }
    }

    /// Waits for `ready` (skipping heartbeats); answers its position. Events before it are
    /// returned too (a replay). Panics after [`WAIT`] in all (heartbeats would keep each
    /// frame's wait alive forever).
    pub async fn until_ready(&mut self) -> (i64, Vec<Value>) {
        let mut events = Vec::new();
        let ready = timeout(WAIT, async {
            loop {
                match self.next().await.expect("stream ended before ready") {
                    Frame::Ready(position) => return position,
                    Frame::Event { json, .. } => events.push(json),
                    Frame::Heartbeat => {}
                    end @ Frame::End { .. } => panic!("stream ended before ready: {end:?}"),
                }
            }
        })
        .await
        .expect("no ready frame in time");
        (ready, events)
    }

    /// The next event (skipping heartbeats and `ready`); panics if the stream ends, or after
    /// [`WAIT`].
    pub async fn next_event(&mut self) -> Value {
        timeout(WAIT, async {
            loop {
                match self.next().await.expect("stream ended") {
                    Frame::Event { json, .. } => return json,
                    Frame::End { kind, json } => panic!("stream ended: {kind} {json}"),
                    _ => {}
                }
            }
        })
        .await
        .expect("no event in time")
    }

    /// The next event of this type (skipping others); panics after [`WAIT`].
    pub async fn next_of(&mut self, kind: &str) -> Value {
        timeout(WAIT, async {
            loop {
                let event = self.next_event().await;
                if event["type"] == kind {
                    return event;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no {kind} event in time"))
    }

    /// Reads until the end; answers the events seen and how it ended.
    pub async fn until_end(&mut self) -> (Vec<Value>, Option<(String, Value)>) {
        let mut events = Vec::new();
        while let Some(frame) = self.next().await {
            match frame {
                Frame::Event { json, .. } => events.push(json),
                Frame::End { kind, json } => return (events, Some((kind, json))),
                _ => {}
            }
        }
        (events, None)
    }
}

/// An SSE client on a raw socket with a small receive buffer, which then stops reading: the
/// slow consumer.
pub struct StalledSse {
    socket: TcpStream,
}

impl StalledSse {
    pub async fn open(server: &TestServer, token: &str) -> StalledSse {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("rcvbuf");
        let mut socket = socket
            .connect(server.running.local_addr)
            .await
            .expect("connect");
        let request = format!(
            "GET /stream/events HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\
             Accept: text/event-stream\r\n\r\n",
            server.host
        );
        socket.write_all(request.as_bytes()).await.expect("request");
        // Read the head and the first frames (up to `ready`), then stop reading.
        let mut seen = Vec::new();
        let mut buf = [0u8; 1024];
        while !String::from_utf8_lossy(&seen).contains("event: ready") {
            let n = timeout(WAIT, socket.read(&mut buf))
                .await
                .expect("stalled client: no ready")
                .expect("read");
            assert!(n > 0, "closed early");
            seen.extend_from_slice(&buf[..n]);
        }
        assert!(String::from_utf8_lossy(&seen).starts_with("HTTP/1.1 200"));
        StalledSse { socket }
    }

    /// Reads everything left until the server closes; answers it as text.
    pub async fn drain(mut self) -> String {
        let mut all = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match timeout(left, self.socket.read(&mut buf)).await {
                Err(_) => panic!("the stalled client's stream did not end"),
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => all.extend_from_slice(&buf[..n]),
            }
            // The end of a chunked body: the server finished the stream.
            if all.ends_with(b"0\r\n\r\n") {
                break;
            }
        }
        String::from_utf8_lossy(&all).into_owned()
    }
}
