//! The load loop's HTTP/1.1 connection: each request written as prepared bytes, the answer's
//! head parsed with httparse and its body read by `Content-Length` into a buffer the connection
//! keeps. hyper's client runs every connection as a second task fed through a channel and
//! collects every body into fresh buffers; on two cores shared with the server, that cost the
//! load generator about as much CPU per page of messages as the server spent on it. The setup
//! calls and the stream scenario keep using hyper (`client.rs`).

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
        let (status, head_len, body_len) = loop {
            if let Some(head) = self.parse_head()? {
                break head;
            }
            if self.buf.len() >= MAX_HEAD {
                bail!("an answer head longer than {MAX_HEAD} bytes");
            }
            self.fill().await?;
        };
        let end = head_len + body_len;
        while self.buf.len() < end {
            self.fill().await?;
        }
        self.buf.drain(..end);
        Ok(status)
    }

    /// The answer's status, head length and body length, once the head is all there.
    fn parse_head(&mut self) -> anyhow::Result<Option<(StatusCode, usize, usize)>> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut answer = httparse::Response::new(&mut headers);
        let head_len = match answer.parse(&self.buf).context("parsing the answer")? {
            httparse::Status::Complete(len) => len,
            httparse::Status::Partial => return Ok(None),
        };
        let code = answer
            .code
            .ok_or_else(|| anyhow!("an answer without a status"))?;
        let status = StatusCode::from_u16(code)?;
        let mut body_len = None;
        for header in answer.headers.iter() {
            if header.name.eq_ignore_ascii_case("content-length") {
                let text = std::str::from_utf8(header.value).context("Content-Length")?;
                body_len = Some(text.trim().parse::<usize>().context("Content-Length")?);
            } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
                bail!("a chunked answer (the load loop reads Content-Length bodies only)");
            } else if header.name.eq_ignore_ascii_case("connection")
                && header.value.eq_ignore_ascii_case(b"close")
            {
                self.closing = true;
            }
        }
        let body_len = match body_len {
            Some(len) => len,
            // No body by definition.
            None if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED => 0,
            None => bail!("an answer without Content-Length"),
        };
        Ok(Some((status, head_len, body_len)))
    }

    /// Reads what the server has sent into `buf`.
    async fn fill(&mut self) -> anyhow::Result<()> {
        if self.buf.capacity() - self.buf.len() < 16 * 1024 {
            self.buf.reserve(64 * 1024);
        }
        if self.io.read_buf(&mut self.buf).await? == 0 {
            bail!("the server closed the connection");
        }
        Ok(())
    }
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
