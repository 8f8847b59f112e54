//! Test support: a server per test with a hand-moved clock and a PIN file, the admin client, and
//! a Kaizala client per phone number (PIN login → refresh token → access token).

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use confab::admin_client::AdminClient;
use confab_core::ports::Clock;
use reqwest::Method;
use serde_json::{json, Value};
use time::OffsetDateTime;

pub const CHAT_API: &str = "2025-03-15";
pub const IDENTITY_API: &str = "2023-10-01";

// ---------------------------------------------------------------------------------------------
// Responses (after tests/acs/support.rs)

pub use crate::resp::Resp;

impl Resp {
    /// Asserts an error status with the Kaizala error shape `{message, errorCode,
    /// errorCategoryKey}`; answers the body.
    #[track_caller]
    pub fn error(self, status: u16) -> Value {
        let resp = self.expect(status);
        assert_kaizala_error(&resp.body, &resp.text);
        resp.body
    }
}

#[track_caller]
pub fn assert_kaizala_error(body: &Value, text: &str) {
    for field in ["message", "errorCode", "errorCategoryKey"] {
        let value = body[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field} is not a string: {text}"));
        assert!(!value.is_empty(), "empty {field}: {text}");
    }
}

// ---------------------------------------------------------------------------------------------
// The clock

/// A clock the test moves by hand; starts at the real time.
pub struct TestClock(Mutex<OffsetDateTime>);

impl TestClock {
    pub fn advance(&self, by: time::Duration) {
        let mut now = self.0.lock().expect("clock");
        *now += by;
    }
}

impl Clock for TestClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().expect("clock")
    }
}

// ---------------------------------------------------------------------------------------------
// The server

/// A unique directory for the PIN file, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    fn new() -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "confab-kaizala-test-{}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            OffsetDateTime::now_utc().unix_timestamp_nanos()
        ));
        std::fs::create_dir_all(&path).expect("temp dir");
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub struct TestServer {
    pub running: confab::Running,
    /// `http://127.0.0.1:<port>` (no trailing slash).
    pub base: String,
    pub clock: Arc<TestClock>,
    pub pin_file: PathBuf,
    pub admin: AdminClient,
    pub http: reqwest::Client,
    _dir: TempDir,
}

/// A registered connector application.
#[derive(Clone, Debug)]
pub struct App {
    pub id: String,
    pub secret: String,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(configure: impl FnOnce(&mut confab::Settings)) -> TestServer {
        let dir = TempDir::new();
        let pin_file = dir.0.join("pins.log");
        let mut settings = confab::Settings::for_tests();
        settings.pin_file = Some(pin_file.clone());
        configure(&mut settings);
        let clock = Arc::new(TestClock(Mutex::new(OffsetDateTime::now_utc())));
        let running = confab::start_with_clock(settings, clock.clone())
            .await
            .expect("server starts");
        let base = format!("http://127.0.0.1:{}", running.local_addr.port());
        let admin =
            AdminClient::new(&running.endpoint, &running.access_key, None, false).expect("admin");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client");
        TestServer {
            running,
            base,
            clock,
            pin_file,
            admin,
            http,
            _dir: dir,
        }
    }

    /// Registers an application with every permission.
    pub async fn app(&self) -> App {
        self.app_with(None).await
    }

    pub async fn app_with(&self, scopes: Option<&[String]>) -> App {
        let created = self
            .admin
            .create_application("Test connector", scopes)
            .await
            .expect("create application");
        App {
            id: created["applicationId"].as_str().expect("id").to_owned(),
            secret: created["applicationSecret"]
                .as_str()
                .expect("secret")
                .to_owned(),
        }
    }

    /// A raw request to `/v1{path}` (or any path starting with `/` outside `/v1` when `raw`).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Resp {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_owned());
        }
        Resp::read(request.send().await.expect("send")).await
    }

    /// The last PIN the file sender wrote for `number`.
    pub fn last_pin(&self, number: &str) -> String {
        let text = std::fs::read_to_string(&self.pin_file).expect("PIN file");
        confab::pins::last_pin_in(&text, number)
            .unwrap_or_else(|| panic!("no PIN for {number} in {text}"))
    }

    pub async fn generate_pin(&self, app: &App, number: &str) -> Resp {
        let body = json!({"mobileNumber": number, "applicationId": app.id}).to_string();
        self.call(Method::POST, "/v1/generatePin", &[], Some(&body))
            .await
    }

    pub async fn login_with_pin(&self, app: &App, number: &str, pin: &str) -> Resp {
        let body = format!(
            "{{\"mobileNumber\":\"{number}\",\"applicationId\":\"{}\", \"pin\":{pin}}}",
            app.id
        );
        self.call(
            Method::POST,
            "/v1/loginWithPinAndApplicationId",
            &[],
            Some(&body),
        )
        .await
    }

    pub async fn access_token(&self, app: &App, refresh_token: &str) -> Resp {
        self.call(
            Method::GET,
            "/v1/accessToken",
            &[
                ("applicationId", &app.id),
                ("applicationSecret", &app.secret),
                ("refreshToken", refresh_token),
            ],
            None,
        )
        .await
    }

    /// PIN → refresh token → access token for `number` on `app`.
    pub async fn login(&self, app: &App, number: &str) -> Kz {
        self.generate_pin(app, number).await.expect(200);
        let pin = self.last_pin(number);
        let login = self.login_with_pin(app, number, &pin).await.expect(200);
        let refresh = login.body["refreshToken"]
            .as_str()
            .expect("refresh")
            .to_owned();
        let access = self.access_token(app, &refresh).await.expect(200);
        Kz {
            base: self.base.clone(),
            http: self.http.clone(),
            number: number.to_owned(),
            token: access.body["accessToken"]
                .as_str()
                .expect("token")
                .to_owned(),
            refresh,
        }
    }

    /// A logged-in user on a fresh application.
    pub async fn user(&self, number: &str) -> Kz {
        let app = self.app().await;
        self.login(&app, number).await
    }

    /// A new ACS communication user with a `chat` token (through the Identity API).
    pub async fn acs_user(&self) -> Acs {
        let created = self
            .admin
            .send(
                Method::POST,
                &format!("/identities?api-version={IDENTITY_API}"),
                Some(json!({"createTokenWithScopes": ["chat"]})),
            )
            .await
            .expect("create identity");
        Acs {
            base: self.base.clone(),
            http: self.http.clone(),
            id: created["identity"]["id"].as_str().expect("id").to_owned(),
            token: created["accessToken"]["token"]
                .as_str()
                .expect("token")
                .to_owned(),
        }
    }

    /// An Identity API token for an existing identity (a phone number after its first login).
    pub async fn acs_token_for(&self, raw_id: &str) -> String {
        let path = format!(
            "/identities/{}/:issueAccessToken?api-version={IDENTITY_API}",
            enc(raw_id)
        );
        let issued = self
            .admin
            .send(Method::POST, &path, Some(json!({"scopes": ["chat"]})))
            .await
            .expect("issue token");
        issued["token"].as_str().expect("token").to_owned()
    }
}

/// Percent-encodes a path segment the way the SDKs do.
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

/// A distinct phone number per `n`, in E.164.
pub fn number(n: usize) -> String {
    format!("+1425555{n:04}")
}

// ---------------------------------------------------------------------------------------------
// Clients

/// A Kaizala client: the `accessToken` header on every call.
#[derive(Clone)]
pub struct Kz {
    pub base: String,
    pub http: reqwest::Client,
    pub number: String,
    pub token: String,
    pub refresh: String,
}

impl Kz {
    pub fn identity(&self) -> String {
        format!("4:{}", self.number)
    }

    /// A request to `/v1{path}` with a JSON (or relaxed JSON) body.
    pub async fn call(&self, method: Method, path: &str, body: Option<&str>) -> Resp {
        let mut request = self
            .http
            .request(method, format!("{}/v1{path}", self.base))
            .header("accessToken", &self.token);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_owned());
        }
        Resp::read(request.send().await.expect("send")).await
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        self.call(Method::POST, path, Some(&body.to_string())).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Resp {
        self.call(Method::PUT, path, Some(&body.to_string())).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.call(Method::DELETE, path, None).await
    }

    /// Creates a group with these members; answers its id.
    pub async fn group(&self, members: &[&str]) -> String {
        let created = self
            .post(
                "/groups",
                &json!({"name": "Test group", "welcomeMessage": "Welcome", "members": members}),
            )
            .await
            .expect(200);
        created.body["groupId"]
            .as_str()
            .expect("groupId")
            .to_owned()
    }

    pub async fn send(&self, group: &str, text: &str) -> Resp {
        self.post(
            &format!("/groups/{group}/messages"),
            &json!({"message": text}),
        )
        .await
    }

    /// The members of a group: (mobileNumber, role, isProvisioned, id).
    pub async fn members(&self, group: &str) -> Vec<(String, String, bool, String)> {
        let resp = self
            .get(&format!("/groups/{group}/members"))
            .await
            .expect(200);
        resp.body["members"]
            .as_array()
            .expect("members")
            .iter()
            .map(|m| {
                (
                    m["mobileNumber"].as_str().unwrap_or_default().to_owned(),
                    m["role"].as_str().expect("role").to_owned(),
                    m["isProvisioned"].as_bool().expect("isProvisioned"),
                    m["id"].as_str().expect("id").to_owned(),
                )
            })
            .collect()
    }
}

/// An ACS client: bearer token, api-version 2025-03-15.
#[derive(Clone)]
pub struct Acs {
    pub base: String,
    pub http: reqwest::Client,
    pub id: String,
    pub token: String,
}

impl Acs {
    pub fn with_token(base: &str, http: &reqwest::Client, id: &str, token: &str) -> Acs {
        Acs {
            base: base.to_owned(),
            http: http.clone(),
            id: id.to_owned(),
            token: token.to_owned(),
        }
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut request = self
            .http
            .request(
                method,
                format!("{}{path}{sep}api-version={CHAT_API}", self.base),
            )
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        Resp::read(request.send().await.expect("send")).await
    }

    /// The texts of a thread's text messages, oldest first.
    pub async fn texts(&self, thread: &str) -> Vec<String> {
        let resp = self
            .call(
                Method::GET,
                &format!("/chat/threads/{}/messages", enc(thread)),
                None,
            )
            .await
            .expect(200);
        let mut texts: Vec<String> = resp.body["value"]
            .as_array()
            .expect("value")
            .iter()
            .filter(|m| m["type"] == "text")
            .map(|m| {
                m["content"]["message"]
                    .as_str()
                    .expect("message")
                    .to_owned()
            })
            .collect();
        texts.reverse();
        texts
    }
}

/// The ACS thread id of a Kaizala group id.
pub fn thread_of(group: &str) -> String {
    format!("19:{}@thread.v2", group.replace('-', ""))
}

/// Creates a public group (ConnectGroup) with these members; answers its id.
pub async fn public_group(admin: &Kz, members: &[&str]) -> String {
    let created = admin
        .post(
            "/groups",
            &json!({"name": "Public", "welcomeMessage": "Hi", "members": members,
                    "groupType": "ConnectGroup"}),
        )
        .await
        .expect(200);
    created.body["groupId"].as_str().expect("id").to_owned()
}

/// Adds subscribers to a public group; answers the response body.
pub async fn add_subscribers(admin: &Kz, group: &str, numbers: &[String]) -> Value {
    admin
        .put(
            &format!("/groups/{group}/subscribers/add"),
            &json!({ "subscribers": numbers }),
        )
        .await
        .expect(200)
        .body
}
