//! Test support: a server per test, an HMAC-signing admin client for the Identity API and a
//! bearer-token client per user for the Chat API.

#![allow(dead_code)]

use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use reqwest::{Method, Url};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub const CHAT_API: &str = "2025-03-15";
pub const IDENTITY_API: &str = "2023-10-01";
/// base64(sha256("")).
pub const EMPTY_SHA256: &str = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
/// The ACS message limit: 28 KB of UTF-8.
pub const MAX_MESSAGE_BYTES: usize = 28 * 1024;

// ---------------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------------

pub use crate::resp::Resp;

impl Resp {
    /// Asserts an error status with a CommunicationErrorResponse body
    /// (`{"error": {"code": string, "message": string, ...}}`); answers the `error` object.
    #[track_caller]
    pub fn error(self, status: u16) -> Value {
        let resp = self.expect(status);
        assert_error_shape(&resp.body, &resp.text);
        resp.body["error"].clone()
    }

    pub fn value(&self) -> &Vec<Value> {
        self.body["value"]
            .as_array()
            .unwrap_or_else(|| panic!("no `value` array: {}", self.text))
    }

    pub fn next_link(&self) -> Option<String> {
        self.body["nextLink"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    }
}

/// Asserts the CommunicationErrorResponse shape.
#[track_caller]
pub fn assert_error_shape(body: &Value, text: &str) {
    let error = &body["error"];
    assert!(
        error.is_object(),
        "not a CommunicationErrorResponse: {text}"
    );
    let code = error["code"]
        .as_str()
        .unwrap_or_else(|| panic!("error.code not a string: {text}"));
    assert!(!code.is_empty(), "empty error.code: {text}");
    assert!(
        error["message"].is_string(),
        "error.message not a string: {text}"
    );
    if !error["target"].is_null() {
        assert!(
            error["target"].is_string(),
            "error.target not a string: {text}"
        );
    }
    if !error["details"].is_null() {
        assert!(
            error["details"].is_array(),
            "error.details not an array: {text}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// HMAC signing (NOTES.md "ACS: authentication")
// ---------------------------------------------------------------------------------------------

/// What the signing produces for one request.
#[derive(Clone, Debug)]
pub struct Signed {
    pub date: String,
    pub content_hash: String,
    pub string_to_sign: String,
    pub authorization: String,
}

pub fn content_hash(body: &[u8]) -> String {
    STANDARD.encode(Sha256::digest(body))
}

/// Signs a request exactly as the official SDKs do.
pub fn sign(
    key: &[u8],
    method: &str,
    path_and_query: &str,
    date: &str,
    host: &str,
    body: &[u8],
) -> Signed {
    sign_with_hash(key, method, path_and_query, date, host, &content_hash(body))
}

/// Signs with a given content hash (which may not match the body).
pub fn sign_with_hash(
    key: &[u8],
    method: &str,
    path_and_query: &str,
    date: &str,
    host: &str,
    content_hash: &str,
) -> Signed {
    let string_to_sign = format!("{method}\n{path_and_query}\n{date};{host};{content_hash}");
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("hmac key");
    mac.update(string_to_sign.as_bytes());
    let signature = STANDARD.encode(mac.finalize().into_bytes());
    Signed {
        date: date.to_owned(),
        content_hash: content_hash.to_owned(),
        string_to_sign,
        authorization: format!(
            "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature={signature}"
        ),
    }
}

pub fn rfc1123(at: SystemTime) -> String {
    httpdate::fmt_http_date(at)
}

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

/// Percent-encodes a path segment the way the SDKs do (`19%3A...%40thread.v2`).
pub fn enc(segment: &str) -> String {
    let mut out = String::new();
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Appends `api-version` to a path (which may already have a query).
pub fn with_api(path: &str, version: &str) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}api-version={version}")
}

/// A CommunicationIdentifierModel for a raw id (communication user or phone number).
pub fn ident(raw: &str) -> Value {
    match raw.strip_prefix("4:") {
        Some(number) => json!({"rawId": raw, "phoneNumber": {"value": number}}),
        None => json!({"rawId": raw, "communicationUser": {"id": raw}}),
    }
}

/// A ChatParticipant for a raw id.
pub fn participant(raw: &str) -> Value {
    json!({"communicationIdentifier": ident(raw)})
}

/// A phone-number raw id, distinct per `n`.
pub fn phone(n: usize) -> String {
    format!("4:+1555{n:07}")
}

/// The raw id of a CommunicationIdentifierModel in a response.
#[track_caller]
pub fn raw_id(identifier: &Value) -> String {
    identifier["rawId"]
        .as_str()
        .unwrap_or_else(|| panic!("identifier without rawId: {identifier}"))
        .to_owned()
}

/// Asserts an identifier in a response names this communication user, in full form.
#[track_caller]
pub fn assert_user_identifier(identifier: &Value, id: &str) {
    assert_eq!(identifier["rawId"], id, "{identifier}");
    assert_eq!(identifier["communicationUser"]["id"], id, "{identifier}");
    if !identifier["kind"].is_null() {
        assert_eq!(identifier["kind"], "communicationUser", "{identifier}");
    }
}

pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

#[track_caller]
pub fn parse_time(value: &Value) -> OffsetDateTime {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a timestamp string: {value}"));
    OffsetDateTime::parse(text, &Rfc3339).unwrap_or_else(|e| panic!("not RFC 3339 ({e}): {text}"))
}

/// RFC 3339, whole seconds, UTC (`2020-10-30T10:50:50Z`).
pub fn rfc3339(at: OffsetDateTime) -> String {
    at.replace_nanosecond(0)
        .expect("nanos")
        .format(&Rfc3339)
        .expect("format")
}

/// Asserts two times are within `slack` of each other.
#[track_caller]
pub fn assert_close(got: OffsetDateTime, want: OffsetDateTime, slack: Duration) {
    let diff = (got - want).unsigned_abs();
    assert!(diff <= slack, "{got} is not within {slack:?} of {want}");
}

/// Sleeps so that timestamps taken before and after differ by whole seconds.
pub async fn tick() {
    tokio::time::sleep(Duration::from_millis(1100)).await;
}

/// A nextLink, absolute or relative, made relative (`/chat/threads?...`).
pub fn relative(link: &str) -> String {
    match Url::parse(link) {
        Ok(url) => match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        },
        Err(_) => link.to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------------------------

pub struct TestServer {
    pub running: confab::Running,
    /// `http://127.0.0.1:<port>` (no trailing slash).
    pub base: String,
    /// `127.0.0.1:<port>`, as the client sends it in `Host`.
    pub host: String,
    /// The decoded access key.
    pub key: Vec<u8>,
    pub http: reqwest::Client,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    /// Starts a server on a random port with in-memory storage, after `configure` adjusted the
    /// test settings.
    pub async fn start_with(configure: impl FnOnce(&mut confab::Settings)) -> TestServer {
        let mut settings = confab::Settings::for_tests();
        configure(&mut settings);
        let running = confab::start(settings).await.expect("server starts");
        let addr = running.local_addr;
        let host = format!("127.0.0.1:{}", addr.port());
        let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(60));
        let base = match &running.cert_path {
            // HTTPS with confab's certificate: trust it, as the SDKs are told to.
            Some(cert) => {
                let _ = rustls::crypto::ring::default_provider().install_default();
                let pem = std::fs::read(cert).expect("read the server certificate");
                let cert = reqwest::Certificate::from_pem(&pem).expect("PEM certificate");
                builder = builder.add_root_certificate(cert);
                format!("https://{host}")
            }
            None => format!("http://{host}"),
        };
        let key = access_key_of(&running.connection_string);
        let http = builder.build().expect("client");
        TestServer {
            running,
            base,
            host,
            key,
            http,
        }
    }

    /// The signing Identity API client.
    pub fn admin(&self) -> Admin<'_> {
        Admin { server: self }
    }

    /// A new identity with a `chat` token.
    pub async fn user(&self) -> User {
        self.user_with_scopes(&["chat"]).await
    }

    /// A new identity with a token of these scopes.
    pub async fn user_with_scopes(&self, scopes: &[&str]) -> User {
        let body = self
            .admin()
            .create_identity(Some(json!({"createTokenWithScopes": scopes})))
            .await
            .expect(201)
            .body;
        let id = body["identity"]["id"]
            .as_str()
            .expect("identity.id")
            .to_owned();
        let token = body["accessToken"]["token"]
            .as_str()
            .expect("accessToken.token")
            .to_owned();
        self.user_from(id, token)
    }

    /// `n` users.
    pub async fn users(&self, n: usize) -> Vec<User> {
        let mut users = Vec::with_capacity(n);
        for _ in 0..n {
            users.push(self.user().await);
        }
        users
    }

    pub fn user_from(&self, id: String, token: String) -> User {
        User {
            id,
            token,
            base: self.base.clone(),
            http: self.http.clone(),
        }
    }

    /// A chat client with an arbitrary Authorization header value (None: no header).
    pub fn client_with_auth(&self, authorization: Option<&str>) -> RawClient {
        RawClient {
            base: self.base.clone(),
            http: self.http.clone(),
            authorization: authorization.map(str::to_owned),
        }
    }

    /// Signs `method path_and_query body` now, for this server's host and key.
    pub fn sign_now(&self, method: &str, path_and_query: &str, body: &[u8]) -> Signed {
        sign(
            &self.key,
            method,
            path_and_query,
            &rfc1123(SystemTime::now()),
            &self.host,
            body,
        )
    }

    /// Sends a request with exactly these headers (besides those reqwest adds: Host, length).
    pub async fn send_raw(
        &self,
        method: Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Resp {
        let url = format!("{}{}", self.base, path_and_query);
        let mut request = self.http.request(method, &url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        Resp::read(request.body(body).send().await.expect("send")).await
    }

    /// Headers of a correctly signed request.
    pub fn signed_headers(signed: &Signed) -> Vec<(&'static str, String)> {
        vec![
            ("x-ms-date", signed.date.clone()),
            ("x-ms-content-sha256", signed.content_hash.clone()),
            ("authorization", signed.authorization.clone()),
            ("content-type", "application/json".to_owned()),
        ]
    }
}

/// The `accesskey` of a connection string `endpoint=...;accesskey=<base64>`, decoded.
pub fn access_key_of(connection_string: &str) -> Vec<u8> {
    let encoded = connection_string
        .split(';')
        .find_map(|part| {
            let (name, value) = part.split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("accesskey")
                .then(|| value.trim())
        })
        .unwrap_or_else(|| panic!("no accesskey in {connection_string}"));
    STANDARD.decode(encoded).expect("access key is base64")
}

// ---------------------------------------------------------------------------------------------
// Identity API (HMAC)
// ---------------------------------------------------------------------------------------------

pub struct Admin<'a> {
    server: &'a TestServer,
}

impl Admin<'_> {
    /// A signed call; `path_and_query` is sent and signed verbatim.
    pub async fn call(&self, method: Method, path_and_query: &str, body: Option<&Value>) -> Resp {
        let bytes = body
            .map(|b| serde_json::to_vec(b).expect("json"))
            .unwrap_or_default();
        self.call_bytes(method, path_and_query, bytes).await
    }

    pub async fn call_bytes(&self, method: Method, path_and_query: &str, body: Vec<u8>) -> Resp {
        // Sign what will go on the wire: the target as the URL parser keeps it.
        let url = Url::parse(&format!("{}{}", self.server.base, path_and_query)).expect("url");
        let target = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        assert_eq!(
            target, path_and_query,
            "the URL parser changed the request target"
        );
        let signed = self.server.sign_now(method.as_str(), &target, &body);
        let headers = TestServer::signed_headers(&signed);
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        self.server
            .send_raw(method, path_and_query, &headers, body)
            .await
    }

    /// `POST /identities` with an optional body.
    pub async fn create_identity(&self, body: Option<Value>) -> Resp {
        let path = with_api("/identities", IDENTITY_API);
        self.call(Method::POST, &path, body.as_ref()).await
    }

    /// A new identity without a token; answers its id.
    pub async fn new_identity(&self) -> String {
        let body = self.create_identity(None).await.expect(201).body;
        body["identity"]["id"]
            .as_str()
            .expect("identity.id")
            .to_owned()
    }

    pub async fn issue_token(&self, id: &str, body: Value) -> Resp {
        let path = with_api(
            &format!("/identities/{}/:issueAccessToken", enc(id)),
            IDENTITY_API,
        );
        self.call(Method::POST, &path, Some(&body)).await
    }

    /// Issues a token with these scopes; answers the token.
    pub async fn token(&self, id: &str, scopes: &[&str]) -> String {
        let body = self
            .issue_token(id, json!({"scopes": scopes}))
            .await
            .expect(200)
            .body;
        body["token"].as_str().expect("token").to_owned()
    }

    pub async fn revoke(&self, id: &str) -> Resp {
        let path = with_api(
            &format!("/identities/{}/:revokeAccessTokens", enc(id)),
            IDENTITY_API,
        );
        self.call(Method::POST, &path, None).await
    }

    pub async fn delete(&self, id: &str) -> Resp {
        let path = with_api(&format!("/identities/{}", enc(id)), IDENTITY_API);
        self.call(Method::DELETE, &path, None).await
    }
}

// ---------------------------------------------------------------------------------------------
// Chat API (bearer)
// ---------------------------------------------------------------------------------------------

/// A chat client with any Authorization header (or none).
pub struct RawClient {
    base: String,
    http: reqwest::Client,
    authorization: Option<String>,
}

impl RawClient {
    /// Sends `path_and_query` verbatim (no api-version added).
    pub async fn send(&self, method: Method, path_and_query: &str, body: Option<&Value>) -> Resp {
        let url = if path_and_query.starts_with("http") {
            path_and_query.to_owned()
        } else {
            format!("{}{}", self.base, path_and_query)
        };
        let mut request = self.http.request(method.clone(), &url);
        if let Some(auth) = &self.authorization {
            request = request.header("authorization", auth);
        }
        if let Some(body) = body {
            let content_type = if method == Method::PATCH {
                "application/merge-patch+json"
            } else {
                "application/json"
            };
            request = request
                .header("content-type", content_type)
                .body(serde_json::to_vec(body).expect("json"));
        }
        Resp::read(request.send().await.expect("send")).await
    }

    /// Sends a JSON body with extra headers.
    pub async fn send_with_headers(
        &self,
        method: Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: &Value,
    ) -> Resp {
        let mut request = self
            .http
            .request(method, format!("{}{}", self.base, path_and_query));
        if let Some(auth) = &self.authorization {
            request = request.header("authorization", auth);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .header("content-type", "application/json")
            .body(serde_json::to_vec(body).expect("json"));
        Resp::read(request.send().await.expect("send")).await
    }

    /// Sends raw bytes with a content type.
    pub async fn send_bytes(
        &self,
        method: Method,
        path_and_query: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Resp {
        let mut request = self
            .http
            .request(method, format!("{}{}", self.base, path_and_query));
        if let Some(auth) = &self.authorization {
            request = request.header("authorization", auth);
        }
        let request = request.header("content-type", content_type).body(body);
        Resp::read(request.send().await.expect("send")).await
    }
}

/// An identity with a token, and chat calls made with it.
#[derive(Clone)]
pub struct User {
    pub id: String,
    pub token: String,
    base: String,
    http: reqwest::Client,
}

/// The path of a thread (percent-encoded id).
pub fn thread_path(thread: &str) -> String {
    format!("/chat/threads/{}", enc(thread))
}

pub fn messages_path(thread: &str) -> String {
    format!("{}/messages", thread_path(thread))
}

pub fn message_path(thread: &str, message: &str) -> String {
    format!("{}/messages/{}", thread_path(thread), enc(message))
}

pub fn participants_path(thread: &str) -> String {
    format!("{}/participants", thread_path(thread))
}

impl User {
    pub fn raw(&self) -> RawClient {
        RawClient {
            base: self.base.clone(),
            http: self.http.clone(),
            authorization: Some(format!("Bearer {}", self.token)),
        }
    }

    /// This user's CommunicationIdentifierModel.
    pub fn ident(&self) -> Value {
        ident(&self.id)
    }

    /// This user as a ChatParticipant.
    pub fn participant(&self) -> Value {
        participant(&self.id)
    }

    // --- raw verbs; `path` gets `api-version` appended -----------------------------------

    pub async fn get(&self, path: &str) -> Resp {
        self.raw()
            .send(Method::GET, &with_api(path, CHAT_API), None)
            .await
    }

    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.raw()
            .send(Method::POST, &with_api(path, CHAT_API), Some(&body))
            .await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Resp {
        self.raw()
            .send(Method::PATCH, &with_api(path, CHAT_API), Some(&body))
            .await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.raw()
            .send(Method::DELETE, &with_api(path, CHAT_API), None)
            .await
    }

    /// Follows a nextLink (absolute or relative) as the SDKs do: `api-version` replaced, the other
    /// query parameters kept.
    pub async fn follow(&self, link: &str) -> Resp {
        let absolute = if link.starts_with("http") {
            link.to_owned()
        } else {
            format!("{}{}", self.base, link)
        };
        let mut url = Url::parse(&absolute).expect("nextLink is a URL");
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| k != "api-version")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        url.query_pairs_mut()
            .clear()
            .extend_pairs(pairs)
            .append_pair("api-version", CHAT_API);
        self.raw().send(Method::GET, url.as_str(), None).await
    }

    /// All items of a paged list: the first page from `path`, then every nextLink.
    pub async fn list_all(&self, path: &str) -> Vec<Value> {
        let mut page = self.get(path).await.expect(200);
        let mut items = page.value().clone();
        let mut pages = 1;
        while let Some(link) = page.next_link() {
            page = self.follow(&link).await.expect(200);
            items.extend(page.value().iter().cloned());
            pages += 1;
            assert!(pages < 1000, "nextLink loops");
        }
        items
    }

    // --- chat helpers ----------------------------------------------------------------------

    /// `POST /chat/threads` with this body.
    pub async fn create_thread_with(&self, body: Value) -> Resp {
        self.post("/chat/threads", body).await
    }

    /// Creates a thread with these other participants; answers its id.
    pub async fn create_thread(&self, topic: &str, others: &[&User]) -> String {
        let participants: Vec<Value> = others.iter().map(|u| u.participant()).collect();
        let body = self
            .create_thread_with(json!({"topic": topic, "participants": participants}))
            .await
            .expect(201)
            .body;
        body["chatThread"]["id"]
            .as_str()
            .expect("chatThread.id")
            .to_owned()
    }

    pub async fn get_thread(&self, thread: &str) -> Resp {
        self.get(&thread_path(thread)).await
    }

    /// `POST .../messages`.
    pub async fn send_message_with(&self, thread: &str, body: Value) -> Resp {
        self.post(&messages_path(thread), body).await
    }

    /// Sends a text message; answers its id.
    pub async fn send(&self, thread: &str, content: &str) -> String {
        let body = self
            .send_message_with(thread, json!({"content": content}))
            .await
            .expect(201)
            .body;
        body["id"].as_str().expect("id").to_owned()
    }

    pub async fn get_message(&self, thread: &str, message: &str) -> Resp {
        self.get(&message_path(thread, message)).await
    }

    /// Every message of the thread visible to this user, newest first.
    pub async fn messages(&self, thread: &str) -> Vec<Value> {
        self.list_all(&messages_path(thread)).await
    }

    /// The messages of one type, newest first.
    pub async fn messages_of_type(&self, thread: &str, kind: &str) -> Vec<Value> {
        self.messages(thread)
            .await
            .into_iter()
            .filter(|m| m["type"] == kind)
            .collect()
    }

    pub async fn add_participants(&self, thread: &str, participants: Vec<Value>) -> Resp {
        self.post(
            &format!("{}/:add", participants_path(thread)),
            json!({"participants": participants}),
        )
        .await
    }

    pub async fn add(&self, thread: &str, users: &[&User]) {
        let participants = users.iter().map(|u| u.participant()).collect();
        self.add_participants(thread, participants)
            .await
            .expect(201);
    }

    pub async fn remove_participant(&self, thread: &str, raw: &str) -> Resp {
        self.post(
            &format!("{}/:remove", participants_path(thread)),
            ident(raw),
        )
        .await
    }

    /// The raw ids of the thread's participants (all pages).
    pub async fn participant_ids(&self, thread: &str) -> Vec<String> {
        self.list_all(&participants_path(thread))
            .await
            .iter()
            .map(|p| raw_id(&p["communicationIdentifier"]))
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Servers with particular settings
// ---------------------------------------------------------------------------------------------

/// A server whose access key is `key`.
pub async fn start_with_access_key(key: &[u8]) -> TestServer {
    let encoded = STANDARD.encode(key);
    TestServer::start_with(|s| s.access_key = Some(encoded)).await
}

/// Turns on the strict api-version switch.
pub fn set_strict_api_version(settings: &mut confab::Settings) {
    settings.strict_api_version = true;
}

/// A data dir removed when dropped.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        let path = std::env::temp_dir().join(format!("confab-acs-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&path).expect("temp dir");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A server on disk whose token secret the test knows (written to `server.json` before the
/// first start), so that it can mint tokens the server must judge: e.g. expired ones.
pub struct KnownSecretServer {
    pub server: TestServer,
    pub token_secret: Vec<u8>,
    _dir: TempDir,
}

pub async fn start_with_token_secret() -> KnownSecretServer {
    let dir = TempDir::new();
    let token_secret: Vec<u8> = (0..32u8)
        .map(|i| i.wrapping_mul(7).wrapping_add(3))
        .collect();
    let file = json!({
        "access_key": STANDARD.encode(b"0123456789abcdef0123456789abcdef"),
        "token_secret": STANDARD.encode(&token_secret),
        "resource_id": uuid::Uuid::new_v4().to_string(),
    });
    std::fs::write(
        dir.0.join("server.json"),
        serde_json::to_vec(&file).expect("json"),
    )
    .expect("write server.json");
    let data_dir = dir.0.clone();
    let server = TestServer::start_with(|s| {
        s.in_memory = false;
        s.data_dir = data_dir;
        s.retention_sweep_secs = 0;
    })
    .await;
    KnownSecretServer {
        server,
        token_secret,
        _dir: dir,
    }
}

/// Mints an HS256 JWT as confab does (claims sub, scp, gen, iat, exp, n), signed with `secret`.
pub fn mint_token(secret: &[u8], identity: &str, scopes: &[&str], iat: i64, exp: i64) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = json!({"sub": identity, "scp": scopes, "gen": 0, "iat": iat, "exp": exp, "n": 0});
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("json"));
    let input = format!("{header}.{payload}");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("key");
    mac.update(input.as_bytes());
    format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}
