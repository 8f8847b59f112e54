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
//! An event's JSON bytes are the shared ones, not copied per connection.

use std::collections::HashMap;
use std::convert::Infallible;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
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

/// The response body: the frames as SSE, ending after the closing frame.
fn body(channels: Channels) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> {
    let first = stream::iter([vec![Bytes::from_static(b"retry: 2000\n\n")]]);
    let frames = stream::unfold(Some(channels), |state| async move {
        let mut channels = state?;
        let chunks = tokio::select! {
            biased;
            closing = &mut channels.close => match closing {
                Ok(closing) => return Some((render_closing(&closing), None)),
                // The session ended without a word: the client is gone.
                Err(_) => return None,
            },
            frame = channels.frames.recv() => match frame {
                Some(frame) => render(frame),
                None => {
                    return channels
                        .close
                        .try_recv()
                        .ok()
                        .map(|closing| (render_closing(&closing), None));
                }
            },
        };
        Some((chunks, Some(channels)))
    });
    first
        .chain(frames)
        .flat_map(stream::iter)
        .map(Ok::<_, Infallible>)
}

fn render(frame: Frame) -> Vec<Bytes> {
    match frame {
        Frame::Event(event) => {
            let head = match event.position {
                Some(position) => Bytes::from(format!("id: {position}\ndata: ")),
                None => Bytes::from_static(b"data: "),
            };
            vec![head, event.wire.clone(), Bytes::from_static(b"\n\n")]
        }
        Frame::Ready(position) => vec![Bytes::from(format!(
            "event: ready\ndata: {{\"type\":\"ready\",\"position\":{position}}}\n\n"
        ))],
        Frame::Heartbeat => vec![Bytes::from_static(b": heartbeat\n\n")],
    }
}

fn render_closing(closing: &Closing) -> Vec<Bytes> {
    vec![Bytes::from(format!(
        "event: {}\ndata: {}\n\n",
        closing.kind, closing.json
    ))]
}
