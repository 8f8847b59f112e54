//! The load loop's HTTP/1.1 connection: each request written as prepared bytes, the answer's
//! head parsed with httparse and its body read by `Content-Length` into a buffer the connection
//! keeps. hyper's client runs every connection as a second task fed through a channel and
//! collects every body into fresh buffers; on two cores shared with the server, that cost the
//! load generator about as much CPU per page of messages as the server spent on it. The stream
//! scenario's subscribers read their answer heads with [`read_head`] too; the setup calls and the
//! stream scenario's sends keep using hyper (`client.rs`).

use std::fmt::Write as _;

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use hyper::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::client::{Io, Target, REQUEST_TIMEOUT};

/// The most answer-head bytes read before giving up on a server.
const MAX_HEAD: usize = 16 * 1024;
/// The most answer headers parsed.
const MAX_HEADERS: usize = 32;

/// One keep-alive connection.
pub struct Conn {
    io: Box<dyn Io>,
    /// What was read and not yet used: the start of an answer.
    buf: Vec<u8>,
    /// The server said `Connection: close`: the next request needs a new connection.
    closing: bool,
}

impl Conn {
    pub async fn open(target: &Target) -> anyhow::Result<Self> {
        Ok(Self {
            io: target.connect_io().await?,
            buf: Vec::with_capacity(64 * 1024),
            closing: false,
        })
    }

    /// Whether the connection can take another request.
    pub fn is_open(&self) -> bool {
        !self.closing
    }

    /// Sends one request and reads its whole answer; answers the status.
    pub async fn exchange(&mut self, request: &[u8]) -> anyhow::Result<StatusCode> {
        match tokio::time::timeout(REQUEST_TIMEOUT, self.round_trip(request)).await {
            Ok(result) => result,
            Err(_) => {
                self.closing = true;
                bail!("no answer within {REQUEST_TIMEOUT:?}")
            }
        }
    }

    async fn round_trip(&mut self, request: &[u8]) -> anyhow::Result<StatusCode> {
        let result = async {
            self.io.write_all(request).await?;
            self.io.flush().await?;
            self.read_answer().await
        }
        .await;
        if result.is_err() {
            self.closing = true;
        }
        result
    }

    async fn read_answer(&mut self) -> anyhow::Result<StatusCode> {
        let head = read_head(&mut *self.io, &mut self.buf, MAX_HEAD).await?;
        if head.close {
            self.closing = true;
        }
        if head.transfer_encoding {
            bail!("a Transfer-Encoding answer (the load loop reads Content-Length bodies only)");
        }
        let body_len = match head.content_length {
            Some(len) => len,
            // No body by definition.
            None if head.status == StatusCode::NO_CONTENT
                || head.status == StatusCode::NOT_MODIFIED =>
            {
                0
            }
            None => bail!("an answer without Content-Length"),
        };
        let end = head.len + body_len;
        while self.buf.len() < end {
            fill(&mut *self.io, &mut self.buf).await?;
        }
        self.buf.drain(..end);
        Ok(head.status)
    }
}

/// What the load loop and the stream scenario need of an answer's head.
pub struct Head {
    pub status: StatusCode,
    /// Its length in bytes, the blank line included: the body starts there.
    pub len: usize,
    pub content_length: Option<usize>,
    /// A `Transfer-Encoding` header is there, and whether it names `chunked`.
    pub transfer_encoding: bool,
    pub chunked: bool,
    /// `Connection: close`.
    pub close: bool,
}

/// Reads from `io` into `buf` (which may already hold the start of the answer) until the
/// answer's head is whole, and parses it; `buf` keeps the head and whatever followed it.
pub async fn read_head(io: &mut dyn Io, buf: &mut Vec<u8>, max: usize) -> anyhow::Result<Head> {
    loop {
        if let Some(head) = parse_head(buf)? {
            return Ok(head);
        }
        if buf.len() >= max {
            bail!("an answer head longer than {max} bytes");
        }
        fill(io, buf).await?;
    }
}

/// The answer's head, once it is all in `buf`.
fn parse_head(buf: &[u8]) -> anyhow::Result<Option<Head>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut answer = httparse::Response::new(&mut headers);
    let len = match answer.parse(buf).context("parsing the answer")? {
        httparse::Status::Complete(len) => len,
        httparse::Status::Partial => return Ok(None),
    };
    let code = answer
        .code
        .ok_or_else(|| anyhow!("an answer without a status"))?;
    let mut head = Head {
        status: StatusCode::from_u16(code)?,
        len,
        content_length: None,
        transfer_encoding: false,
        chunked: false,
        close: false,
    };
    for header in answer.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            let text = std::str::from_utf8(header.value).context("Content-Length")?;
            head.content_length = Some(text.trim().parse::<usize>().context("Content-Length")?);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            head.transfer_encoding = true;
            head.chunked |= header
                .value
                .to_ascii_lowercase()
                .windows(7)
                .any(|w| w == b"chunked");
        } else if header.name.eq_ignore_ascii_case("connection")
            && header.value.eq_ignore_ascii_case(b"close")
        {
            head.close = true;
        }
    }
    Ok(Some(head))
}

/// Reads what the server has sent into `buf`.
async fn fill(io: &mut dyn Io, buf: &mut Vec<u8>) -> anyhow::Result<()> {
    if buf.capacity() - buf.len() < 16 * 1024 {
        buf.reserve(64 * 1024);
    }
    if io.read_buf(buf).await? == 0 {
        bail!("the server closed the connection");
    }
    Ok(())
}

impl Target {
    /// A request as bytes, with the headers every call carries (as [`Target::request`]) and
    /// `extra` ones.
    pub fn raw_request(
        &self,
        method: Method,
        path_and_query: &str,
        auth: Option<&str>,
        extra: &[(&str, &str)],
        body: Option<Bytes>,
    ) -> Bytes {
        let body = body.unwrap_or_default();
        let mut head = String::with_capacity(256 + path_and_query.len());
        // Writing into a String cannot fail.
        let _ = write!(
            head,
            "{method} {path_and_query} HTTP/1.1\r\nhost: {}\r\naccept: application/json\r\n",
            self.host
        );
        if let Some(auth) = auth {
            let _ = write!(head, "authorization: {auth}\r\n");
        }
        if !body.is_empty() {
            head.push_str("content-type: application/json\r\n");
        }
        for (name, value) in extra {
            let _ = write!(head, "{name}: {value}\r\n");
        }
        if !body.is_empty() || method != Method::GET {
            let _ = write!(head, "content-length: {}\r\n", body.len());
        }
        head.push_str("\r\n");
        let mut bytes = Vec::with_capacity(head.len() + body.len());
        bytes.extend_from_slice(head.as_bytes());
        bytes.extend_from_slice(&body);
        Bytes::from(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_read_once_whole() {
        let answer = b"HTTP/1.1 201 Created\r\ncontent-length: 10\r\nConnection: close\r\n\r\n{\"id\":\"1\"}";
        let head = parse_head(answer).expect("parses").expect("whole");
        assert_eq!(head.status, StatusCode::CREATED);
        assert_eq!(&answer[head.len..], br#"{"id":"1"}"#);
        assert_eq!(head.content_length, Some(10));
        assert!(head.close && !head.transfer_encoding && !head.chunked);

        let stream = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n";
        let head = parse_head(stream).expect("parses").expect("whole");
        assert!(head.transfer_encoding && head.chunked && !head.close);
        assert_eq!(head.content_length, None);

        assert!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-le")
            .expect("parses")
            .is_none());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n").is_err());
    }
}
