//! `GET /stream/events`: the stream as Server-Sent Events.
//!
//! ```text
//! retry: 2000
//!
//! id: 42
//! data: {"position":42,"conversation":"19:…@thread.v2","type":"messageReceived","at":"…","data":{…}}
//!
//! data: {"conversation":"19:…","type":"typing","at":"…","data":{…}}      (no id: ephemeral)
//!
//! event: ready
//! data: {"type":"ready","position":42}
//!
//! : heartbeat
//!
//! event: closed
//! data: {"type":"closed","reason":"slow-consumer","message":"…"}
//! ```
//!
//! The `id:` is the position, so a browser's EventSource resumes by itself (`Last-Event-ID`).
//! The frames a connection has queued go out together, as one chunk.

use std::collections::HashMap;
use std::convert::Infallible;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures_util::stream::{self, StreamExt};

use crate::session::{self, Channels, Closing, Frame};
use crate::{params, StreamError, StreamState};

pub(crate) async fn handler(
    State(state): State<StreamState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, StreamError> {
    let request = params::parse(&headers, &query)?;
    let channels = session::prepare(&state, request).await?.start();
    let mut response = Body::from_stream(body(channels)).into_response();
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Proxies (nginx) must not buffer a stream.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// Frames written together at most: what a connection has queued goes out as one chunk (one
/// write) rather than one chunk per event.
const FRAMES_PER_CHUNK: usize = 64;

/// The response body: the frames as SSE, ending after the closing frame.
fn body(channels: Channels) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> {
    let first = stream::iter([Bytes::from_static(b"retry: 2000\n\n")]);
    let frames = stream::unfold(Some(channels), |state| async move {
        let mut channels = state?;
        let chunk = tokio::select! {
            biased;
            closing = &mut channels.close => match closing {
                Ok(closing) => return Some((render_closing(&closing), None)),
                // The session ended without a word: the client is gone.
                Err(_) => return None,
            },
            frame = channels.frames.recv() => match frame {
                Some(frame) => {
                    let mut chunk = BytesMut::new();
                    render(frame, &mut chunk);
                    for _ in 1..FRAMES_PER_CHUNK {
                        match channels.frames.try_recv() {
                            Ok(frame) => render(frame, &mut chunk),
                            Err(_) => break,
                        }
                    }
                    chunk.freeze()
                }
                None => {
                    return channels
                        .close
                        .try_recv()
                        .ok()
                        .map(|closing| (render_closing(&closing), None));
                }
            },
        };
        Some((chunk, Some(channels)))
    });
    first.chain(frames).map(Ok::<_, Infallible>)
}

/// Appends one frame, as SSE.
fn render(frame: Frame, out: &mut BytesMut) {
    match frame {
        Frame::Event(event) => {
            if let Some(position) = event.position {
                out.extend_from_slice(format!("id: {position}\n").as_bytes());
            }
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(&event.wire);
            out.extend_from_slice(b"\n\n");
        }
        Frame::Ready(position) => out.extend_from_slice(
            format!("event: ready\ndata: {{\"type\":\"ready\",\"position\":{position}}}\n\n")
                .as_bytes(),
        ),
        Frame::Heartbeat => out.extend_from_slice(b": heartbeat\n\n"),
    }
}

fn render_closing(closing: &Closing) -> Bytes {
    Bytes::from(format!(
        "event: {}\ndata: {}\n\n",
        closing.kind, closing.json
    ))
}
