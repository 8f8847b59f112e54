//! The outbound HTTP client webhooks are validated and delivered with (reqwest over rustls with
//! the ring provider; https callbacks trust the system's CA bundle). Redirects are not
//! followed: a 3xx answer is a failed delivery, as in Kaizala.

use std::time::Duration;

use async_trait::async_trait;
use confab_core::ports::webhooks::{ClientError, Exchange};
use confab_core::ports::WebhookClient;

/// The most of a handshake answer's body that is read.
const HANDSHAKE_BODY_LIMIT: usize = 4096;

pub struct HttpWebhookClient {
    client: reqwest::Client,
}

impl HttpWebhookClient {
    pub fn new() -> anyhow::Result<Self> {
        crate::tls::install_default_provider();
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("confab-webhooks/", env!("CARGO_PKG_VERSION")))
            .pool_idle_timeout(Duration::from_secs(30));
        // The TLS stack has no built-in roots: trust the system's bundle if there is one.
        for bundle in [
            "/etc/ssl/certs/ca-certificates.crt",
            "/etc/pki/tls/certs/ca-bundle.crt",
            "/etc/ssl/cert.pem",
        ] {
            if let Ok(pem) = std::fs::read(bundle) {
                if let Ok(certs) = reqwest::Certificate::from_pem_bundle(&pem) {
                    for cert in certs {
                        builder = builder.add_root_certificate(cert);
                    }
                    break;
                }
            }
        }
        Ok(Self {
            client: builder.build()?,
        })
    }
}

fn describe(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        "timed out".to_owned()
    } else if err.is_connect() {
        format!("cannot connect: {err}")
    } else {
        err.to_string()
    }
}

impl HttpWebhookClient {
    /// Builds the request and runs `read` on its answer, the whole within `timeout`.
    async fn call<T>(
        &self,
        method: reqwest::Method,
        url: &str,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        timeout: Duration,
        read: impl AsyncFnOnce(reqwest::Response) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        let mut request = self.client.request(method, url).timeout(timeout).body(body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let attempt = async {
            let response = request.send().await.map_err(|e| describe(&e))?;
            read(response).await
        };
        tokio::time::timeout(timeout, attempt)
            .await
            .unwrap_or_else(|_| Err("timed out".to_owned()))
    }
}

#[async_trait]
impl WebhookClient for HttpWebhookClient {
    async fn post(
        &self,
        url: &str,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<u16, ClientError> {
        self.call(
            reqwest::Method::POST,
            url,
            headers,
            body,
            timeout,
            async |response| Ok(response.status().as_u16()),
        )
        .await
    }

    async fn exchange(
        &self,
        method: &str,
        url: &str,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Exchange, ClientError> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
        self.call(method, url, headers, body, timeout, read_exchange)
            .await
    }
}

/// Status, headers and at most [`HANDSHAKE_BODY_LIMIT`] bytes of the body: a handshake's
/// answer is short, whatever the endpoint sends.
async fn read_exchange(mut response: reqwest::Response) -> Result<Exchange, ClientError> {
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .filter_map(|(name, value)| {
            value
                .to_str()
                .ok()
                .map(|v| (name.as_str().to_owned(), v.to_owned()))
        })
        .collect();
    let mut body = Vec::new();
    while body.len() < HANDSHAKE_BODY_LIMIT {
        match response.chunk().await.map_err(|e| describe(&e))? {
            Some(chunk) => body.extend_from_slice(&chunk),
            None => break,
        }
    }
    body.truncate(HANDSHAKE_BODY_LIMIT);
    Ok(Exchange {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}
