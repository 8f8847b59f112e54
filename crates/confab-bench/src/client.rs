//! The HTTP client: keep-alive HTTP/1.1 connections (hyper), over TLS (tokio-rustls, trusting the
//! server's self-signed certificate, ALPN http/1.1 as the SDKs' HTTP stacks use it) or plain TCP,
//! and the ACS calls the setup needs: HMAC-signed Identity calls, bearer-token chat calls.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, bail, Context};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

pub const IDENTITY_VERSION: &str = "2023-10-01";
pub const CHAT_VERSION: &str = "2024-03-07";
/// The longest any single request may take before it counts as an error.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

/// Where to connect and how.
pub struct Target {
    pub addr: SocketAddr,
    /// The Host header: `127.0.0.1:<port>`.
    pub host: String,
    tls: Option<tokio_rustls::TlsConnector>,
}

pub type Sender = SendRequest<Full<Bytes>>;

impl Target {
    pub fn new(addr: SocketAddr, cert: Option<&Path>) -> anyhow::Result<Arc<Self>> {
        let tls = match cert {
            None => None,
            Some(path) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_file_iter(path)
                    .with_context(|| format!("reading {}", path.display()))?
                {
                    roots.add(cert.context("parsing the server certificate")?)?;
                }
                let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots)
                .with_no_client_auth();
                config.alpn_protocols = vec![b"http/1.1".to_vec()];
                Some(tokio_rustls::TlsConnector::from(Arc::new(config)))
            }
        };
        Ok(Arc::new(Self {
            addr,
            host: addr.to_string(),
            tls,
        }))
    }

    /// Opens one keep-alive connection.
    pub async fn connect(&self) -> anyhow::Result<Sender> {
        let io = self.connect_io().await?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }

    /// Opens one connection (TCP, and TLS over HTTPS) without an HTTP client on it.
    pub async fn connect_io(&self) -> anyhow::Result<Box<dyn Io>> {
        let tcp = TcpStream::connect(self.addr)
            .await
            .with_context(|| format!("connecting to {}", self.addr))?;
        tcp.set_nodelay(true)?;
        let io: Box<dyn Io> = match &self.tls {
            None => Box::new(tcp),
            Some(connector) => {
                let name = ServerName::IpAddress(self.addr.ip().into());
                Box::new(
                    connector
                        .connect(name, tcp)
                        .await
                        .context("TLS handshake")?,
                )
            }
        };
        Ok(io)
    }

    /// A request with the headers every call carries.
    pub fn request(
        &self,
        method: Method,
        path_and_query: &str,
        auth: Option<&str>,
        body: Option<Bytes>,
    ) -> Request<Full<Bytes>> {
        let mut builder = Request::builder()
            .method(method)
            .uri(path_and_query)
            .header("host", &self.host)
            .header("accept", "application/json");
        if let Some(auth) = auth {
            builder = builder.header("authorization", auth);
        }
        let body = match body {
            Some(body) => {
                builder = builder.header("content-type", "application/json");
                body
            }
            None => Bytes::new(),
        };
        builder
            .body(Full::new(body))
            .expect("a request made of valid parts")
    }
}

/// Sends one request and reads the whole answer.
pub async fn exchange(
    sender: &mut Sender,
    request: Request<Full<Bytes>>,
) -> anyhow::Result<(StatusCode, Bytes)> {
    let work = async {
        sender.ready().await?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        anyhow::Ok((status, body))
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, work).await {
        Ok(result) => result,
        Err(_) => bail!("no answer within {REQUEST_TIMEOUT:?}"),
    }
}

/// A connection for the setup calls, reconnecting once when the connection broke.
pub struct Api {
    pub target: Arc<Target>,
    sender: Option<Sender>,
}

/// A user with a chat token.
#[derive(Clone, Debug)]
pub struct User {
    pub raw_id: String,
    pub bearer: String,
}

impl Api {
    pub fn new(target: Arc<Target>) -> Self {
        Self {
            target,
            sender: None,
        }
    }

    pub async fn call(
        &mut self,
        method: Method,
        path_and_query: &str,
        auth: Option<&str>,
        extra: &[(&str, String)],
        body: Option<Bytes>,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let mut last_err = None;
        for _ in 0..2 {
            let sender = match &mut self.sender {
                Some(sender) if !sender.is_closed() => sender,
                _ => self.sender.insert(self.target.connect().await?),
            };
            let mut request =
                self.target
                    .request(method.clone(), path_and_query, auth, body.clone());
            for (name, value) in extra {
                request.headers_mut().insert(
                    hyper::header::HeaderName::from_bytes(name.as_bytes())?,
                    value.parse()?,
                );
            }
            match exchange(sender, request).await {
                Ok(answer) => return Ok(answer),
                Err(err) => {
                    self.sender = None;
                    last_err = Some(err);
                }
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow!("no attempt made")))
    }

    /// `POST /identities` with a chat token, HMAC-signed with the access key.
    pub async fn create_user(&mut self, access_key: &[u8]) -> anyhow::Result<User> {
        let path = format!("/identities?api-version={IDENTITY_VERSION}");
        let body =
            Bytes::from_static(br#"{"createTokenWithScopes":["chat"],"expiresInMinutes":1440}"#);
        let headers = hmac_headers(access_key, "POST", &path, &self.target.host, &body);
        let (status, answer) = self
            .call(Method::POST, &path, None, &headers, Some(body))
            .await?;
        let value = expect_json(status, StatusCode::CREATED, &answer, "create identity")?;
        let raw_id = value["identity"]["id"]
            .as_str()
            .ok_or_else(|| anyhow!("no identity.id in {value}"))?;
        let token = value["accessToken"]["token"]
            .as_str()
            .ok_or_else(|| anyhow!("no accessToken.token in {value}"))?;
        Ok(User {
            raw_id: raw_id.to_string(),
            bearer: format!("Bearer {token}"),
        })
    }

    /// `POST /chat/threads`: a thread made by `creator` with `others` as participants too.
    pub async fn create_thread(
        &mut self,
        creator: &User,
        others: &[&User],
    ) -> anyhow::Result<String> {
        let body = create_thread_body("bench", creator, others);
        let path = format!("/chat/threads?api-version={CHAT_VERSION}");
        let (status, answer) = self
            .call(
                Method::POST,
                &path,
                Some(&creator.bearer),
                &[("repeatability-request-id", uuid::Uuid::new_v4().to_string())],
                Some(body),
            )
            .await?;
        let value = expect_json(status, StatusCode::CREATED, &answer, "create thread")?;
        value["chatThread"]["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("no chatThread.id in {value}"))
    }

    /// `POST /chat/threads/{id}/participants/:add`, as `caller` (at most 200 at a time).
    pub async fn add_participants(
        &mut self,
        caller: &User,
        thread: &str,
        users: &[&User],
    ) -> anyhow::Result<()> {
        let participants: Vec<Value> = users
            .iter()
            .map(|u| json!({ "communicationIdentifier": { "rawId": u.raw_id } }))
            .collect();
        let body = Bytes::from(json!({ "participants": participants }).to_string());
        let path = format!(
            "/chat/threads/{}/participants/:add?api-version={CHAT_VERSION}",
            encode_segment(thread)
        );
        let (status, answer) = self
            .call(Method::POST, &path, Some(&caller.bearer), &[], Some(body))
            .await?;
        let value = expect_json(status, StatusCode::CREATED, &answer, "add participants")?;
        match value.get("invalidParticipants") {
            Some(invalid) => bail!("add participants: some were refused: {invalid}"),
            None => Ok(()),
        }
    }

    /// Walks every page of a thread's messages (200 per page, following nextLink) and counts
    /// the user messages (text and html; not the system messages).
    pub async fn count_messages(&mut self, user: &User, thread: &str) -> anyhow::Result<Walk> {
        self.walk(user, &messages_path(thread, 200), false).await
    }

    /// Follows nextLink from `first` to the last page. With `pages`, keeps every link.
    pub async fn walk(&mut self, user: &User, first: &str, pages: bool) -> anyhow::Result<Walk> {
        let mut walk = Walk::default();
        let mut link = first.to_string();
        loop {
            let (status, answer) = self
                .call(Method::GET, &link, Some(&user.bearer), &[], None)
                .await?;
            let value = expect_json(status, StatusCode::OK, &answer, "list messages")?;
            let items = value["value"]
                .as_array()
                .ok_or_else(|| anyhow!("no value array in a message page"))?;
            walk.user_messages += items
                .iter()
                .filter(|m| matches!(m["type"].as_str(), Some("text" | "html")))
                .count() as u64;
            walk.all_messages += items.len() as u64;
            if pages {
                walk.links.push((link.clone(), items.len()));
            }
            match value["nextLink"].as_str() {
                Some(next) if !items.is_empty() => link = relative(next),
                _ => return Ok(walk),
            }
        }
    }
}

/// A Kaizala connector application.
#[derive(Clone, Debug)]
pub struct KzApp {
    pub id: String,
    pub secret: String,
}

/// A Kaizala user: a mobile number with an access token (sent in the `accessToken` header; on
/// the ACS face the same token is a bearer token).
#[derive(Clone, Debug)]
pub struct KzUser {
    pub number: String,
    pub token: String,
}

impl KzUser {
    /// The same identity as an ACS caller.
    pub fn as_acs(&self) -> User {
        User {
            raw_id: format!("4:{}", self.number),
            bearer: format!("Bearer {}", self.token),
        }
    }
}

impl Api {
    /// `POST /admin/applications`, HMAC-signed with the access key.
    pub async fn create_application(&mut self, access_key: &[u8]) -> anyhow::Result<KzApp> {
        let path = "/admin/applications";
        let body = Bytes::from_static(br#"{"name":"confab-bench"}"#);
        let headers = hmac_headers(access_key, "POST", path, &self.target.host, &body);
        let (status, answer) = self
            .call(Method::POST, path, None, &headers, Some(body))
            .await?;
        let value = expect_json(status, StatusCode::CREATED, &answer, "create application")?;
        let field = |name: &str| {
            value[name]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| anyhow!("no {name} in {value}"))
        };
        Ok(KzApp {
            id: field("applicationId")?,
            secret: field("applicationSecret")?,
        })
    }

    /// The Kaizala login: `generatePin`, the PIN read back from the server's PIN file,
    /// `loginWithPinAndApplicationId`, `accessToken`.
    pub async fn kaizala_login(
        &mut self,
        app: &KzApp,
        number: &str,
        pin_file: &Path,
    ) -> anyhow::Result<KzUser> {
        let body = json!({ "mobileNumber": number, "applicationId": app.id }).to_string();
        let (status, answer) = self
            .call(
                Method::POST,
                "/v1/generatePin",
                None,
                &[],
                Some(body.into()),
            )
            .await?;
        expect_json(status, StatusCode::OK, &answer, "generatePin")?;
        let pin = last_pin(pin_file, number)?;
        let body =
            json!({ "mobileNumber": number, "applicationId": app.id, "pin": pin }).to_string();
        let (status, answer) = self
            .call(
                Method::POST,
                "/v1/loginWithPinAndApplicationId",
                None,
                &[],
                Some(body.into()),
            )
            .await?;
        let login = expect_json(status, StatusCode::OK, &answer, "login with PIN")?;
        let refresh = login["refreshToken"]
            .as_str()
            .ok_or_else(|| anyhow!("no refreshToken in {login}"))?;
        let headers = [
            ("applicationId", app.id.clone()),
            ("applicationSecret", app.secret.clone()),
            ("refreshToken", refresh.to_owned()),
        ];
        let (status, answer) = self
            .call(Method::GET, "/v1/accessToken", None, &headers, None)
            .await?;
        let access = expect_json(status, StatusCode::OK, &answer, "accessToken")?;
        let token = access["accessToken"]
            .as_str()
            .ok_or_else(|| anyhow!("no accessToken in {access}"))?;
        Ok(KzUser {
            number: number.to_owned(),
            token: token.to_owned(),
        })
    }

    /// `POST /v1/groups`: a group made by `creator` with `members` (mobile numbers); answers its
    /// id.
    pub async fn create_group(
        &mut self,
        creator: &KzUser,
        members: &[&str],
    ) -> anyhow::Result<String> {
        let body = json!({ "name": "bench", "members": members }).to_string();
        let (status, answer) = self
            .call(
                Method::POST,
                "/v1/groups",
                None,
                &[("accessToken", creator.token.clone())],
                Some(body.into()),
            )
            .await?;
        let value = expect_json(status, StatusCode::OK, &answer, "create group")?;
        value["groupId"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("no groupId in {value}"))
    }
}

/// The last PIN the server's file sender wrote for `number` (lines `<time> <number> <pin> …`).
fn last_pin(pin_file: &Path, number: &str) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(pin_file)
        .with_context(|| format!("reading {}", pin_file.display()))?;
    confab::pins::last_pin_in(&text, number)
        .ok_or_else(|| anyhow!("no PIN for {number} in {}", pin_file.display()))
}

/// The ACS thread of a Kaizala group: the same conversation under its ACS id.
pub fn thread_of_group(group: &str) -> anyhow::Result<String> {
    confab_core::ids::ConversationId::parse(group)
        .map(|id| id.to_acs())
        .ok_or_else(|| anyhow!("the group id {group:?} is not a conversation id"))
}

/// The path to send a Kaizala message to a group.
pub fn group_messages_path(group: &str) -> String {
    format!("/v1/groups/{group}/messages")
}

pub fn kaizala_message_body(text: &str) -> Bytes {
    Bytes::from(json!({ "message": text }).to_string())
}

/// What walking a thread's pages found.
#[derive(Debug, Default)]
pub struct Walk {
    pub user_messages: u64,
    pub all_messages: u64,
    /// Each page's link and item count, newest first (when asked for).
    pub links: Vec<(String, usize)>,
}

/// A nextLink may be absolute; the connection only needs its path and query.
fn relative(link: &str) -> String {
    match link.find("://") {
        Some(at) => {
            let rest = &link[at + 3..];
            match rest.find('/') {
                Some(slash) => rest[slash..].to_string(),
                None => "/".into(),
            }
        }
        None => link.to_string(),
    }
}

/// The path of a thread's messages, first page.
pub fn messages_path(thread: &str, page_size: usize) -> String {
    format!(
        "/chat/threads/{}/messages?api-version={CHAT_VERSION}&maxPageSize={page_size}",
        encode_segment(thread)
    )
}

/// The path to send a message to a thread.
pub fn send_path(thread: &str) -> String {
    format!(
        "/chat/threads/{}/messages?api-version={CHAT_VERSION}",
        encode_segment(thread)
    )
}

/// Percent-encodes a thread id as the SDKs do in paths (`19%3A...%40thread.v2`).
pub fn encode_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

pub fn send_body(content: &str) -> Bytes {
    Bytes::from(json!({ "content": content }).to_string())
}

pub fn create_thread_body(topic: &str, creator: &User, others: &[&User]) -> Bytes {
    let participants: Vec<Value> = std::iter::once(creator)
        .chain(others.iter().copied())
        .map(|u| json!({ "communicationIdentifier": { "rawId": u.raw_id } }))
        .collect();
    Bytes::from(json!({ "topic": topic, "participants": participants }).to_string())
}

fn expect_json(
    status: StatusCode,
    expected: StatusCode,
    body: &[u8],
    what: &str,
) -> anyhow::Result<Value> {
    if status != expected {
        bail!(
            "{what}: expected {expected}, got {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(500)])
        );
    }
    serde_json::from_slice(body).with_context(|| format!("{what}: the answer is not JSON"))
}

/// The headers of an HMAC-signed Identity call (reference/NOTES.md).
pub fn hmac_headers(
    key: &[u8],
    method: &str,
    path_and_query: &str,
    host: &str,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    let date = httpdate::fmt_http_date(SystemTime::now());
    let hash = B64.encode(Sha256::digest(body));
    let to_sign = format!("{method}\n{path_and_query}\n{date};{host};{hash}");
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(to_sign.as_bytes());
    let signature = B64.encode(mac.finalize().into_bytes());
    vec![
        ("x-ms-date", date),
        ("x-ms-content-sha256", hash),
        (
            "authorization",
            format!("HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature={signature}"),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_and_links() {
        assert_eq!(encode_segment("19:abc@thread.v2"), "19%3Aabc%40thread.v2");
        assert_eq!(relative("https://127.0.0.1:1/a?b=c"), "/a?b=c");
        assert_eq!(relative("/a?b=c"), "/a?b=c");
    }

    #[test]
    fn empty_body_hash() {
        let headers = hmac_headers(b"k", "POST", "/identities", "h:1", b"");
        assert_eq!(headers[1].1, "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
    }
}
