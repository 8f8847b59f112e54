//! A client of the admin API (`confab app create|list|delete`): requests HMAC-signed with the
//! access key, exactly as the ACS SDKs sign Identity calls.

use std::path::Path;
use std::time::SystemTime;

use anyhow::{anyhow, bail, Context};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use reqwest::{Method, Url};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Talks to one server's admin API.
pub struct AdminClient {
    endpoint: Url,
    access_key: Vec<u8>,
    client: reqwest::Client,
}

/// `endpoint=…;accesskey=…` → (endpoint, access key base64).
pub fn parse_connection_string(text: &str) -> anyhow::Result<(String, String)> {
    let mut endpoint = None;
    let mut key = None;
    for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, value) = part
            .split_once('=')
            .ok_or_else(|| anyhow!("the connection string part {part:?} has no '='"))?;
        match name.trim().to_ascii_lowercase().as_str() {
            "endpoint" => endpoint = Some(value.trim().to_owned()),
            "accesskey" => key = Some(value.trim().to_owned()),
            _ => {}
        }
    }
    match (endpoint, key) {
        (Some(endpoint), Some(key)) => Ok((endpoint, key)),
        _ => bail!("the connection string needs endpoint=…;accesskey=…"),
    }
}

impl AdminClient {
    /// `ca_cert`: a PEM certificate to trust (the server's self-signed one); `insecure`: trust
    /// any certificate.
    pub fn new(
        endpoint: &str,
        access_key_base64: &str,
        ca_cert: Option<&Path>,
        insecure: bool,
    ) -> anyhow::Result<Self> {
        let endpoint = Url::parse(endpoint).with_context(|| format!("endpoint {endpoint:?}"))?;
        let access_key = STANDARD
            .decode(access_key_base64.trim())
            .context("the access key is not valid base64")?;
        let mut builder = reqwest::Client::builder().danger_accept_invalid_certs(insecure);
        if let Some(path) = ca_cert {
            let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)
                .with_context(|| format!("{} is not a PEM certificate", path.display()))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        Ok(Self {
            endpoint,
            access_key,
            client: builder.build().context("building the HTTP client")?,
        })
    }

    /// Registers an application; answers `{applicationId, applicationSecret, name, scopes}`.
    pub async fn create_application(
        &self,
        name: &str,
        scopes: Option<&[String]>,
    ) -> anyhow::Result<Value> {
        let mut body = serde_json::json!({ "name": name });
        if let Some(scopes) = scopes {
            body["scopes"] = serde_json::json!(scopes);
        }
        self.send(Method::POST, "/admin/applications", Some(body))
            .await
    }

    pub async fn list_applications(&self) -> anyhow::Result<Value> {
        self.send(Method::GET, "/admin/applications", None).await
    }

    pub async fn delete_application(&self, id: &str) -> anyhow::Result<()> {
        let path = format!("/admin/applications/{id}");
        self.send(Method::DELETE, &path, None).await.map(|_| ())
    }

    /// A webhook's delivery log, newest first: `{webhook, deliveries: [...]}`.
    pub async fn webhook_deliveries(&self, id: &str, limit: Option<u32>) -> anyhow::Result<Value> {
        let mut path = format!("/admin/webhooks/{id}/deliveries");
        if let Some(limit) = limit {
            path.push_str(&format!("?limit={limit}"));
        }
        self.send(Method::GET, &path, None).await
    }

    /// Queues a delivery again, due now.
    pub async fn redeliver(&self, id: &str, delivery: &str) -> anyhow::Result<Value> {
        let path = format!("/admin/webhooks/{id}/deliveries/{delivery}/redeliver");
        self.send(Method::POST, &path, None).await
    }

    /// Creates an ACS event subscription (the server validates the endpoint first).
    pub async fn create_event_subscription(&self, request: Value) -> anyhow::Result<Value> {
        self.send(Method::POST, "/admin/eventSubscriptions", Some(request))
            .await
    }

    pub async fn list_event_subscriptions(&self) -> anyhow::Result<Value> {
        self.send(Method::GET, "/admin/eventSubscriptions", None)
            .await
    }

    pub async fn event_subscription(&self, id: &str) -> anyhow::Result<Value> {
        let path = format!("/admin/eventSubscriptions/{id}");
        self.send(Method::GET, &path, None).await
    }

    /// Changes an event subscription: any of `{endpointUrl, includedEventTypes, threadIds,
    /// enabled}`.
    pub async fn update_event_subscription(
        &self,
        id: &str,
        change: Value,
    ) -> anyhow::Result<Value> {
        let path = format!("/admin/eventSubscriptions/{id}");
        self.send(Method::PATCH, &path, Some(change)).await
    }

    pub async fn delete_event_subscription(&self, id: &str) -> anyhow::Result<()> {
        let path = format!("/admin/eventSubscriptions/{id}");
        self.send(Method::DELETE, &path, None).await.map(|_| ())
    }

    /// An event subscription's delivery log, newest first: `{subscription, deliveries}`.
    pub async fn event_deliveries(&self, id: &str, limit: Option<u32>) -> anyhow::Result<Value> {
        let mut path = format!("/admin/eventSubscriptions/{id}/deliveries");
        if let Some(limit) = limit {
            path.push_str(&format!("?limit={limit}"));
        }
        self.send(Method::GET, &path, None).await
    }

    /// Queues an event subscription's delivery again, due now.
    pub async fn redeliver_event(&self, id: &str, delivery: &str) -> anyhow::Result<Value> {
        let path = format!("/admin/eventSubscriptions/{id}/deliveries/{delivery}/redeliver");
        self.send(Method::POST, &path, None).await
    }

    /// Sends a signed request; answers the JSON body (Null when empty) or the server's error.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let url = self
            .endpoint
            .join(path)
            .with_context(|| format!("joining {path}"))?;
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let date = httpdate::fmt_http_date(SystemTime::now());
        let content_hash = STANDARD.encode(Sha256::digest(body.as_bytes()));
        let host = match (url.host_str(), url.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            (None, _) => bail!("the endpoint has no host"),
        };
        let path_and_query = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        let string_to_sign = format!("{method}\n{path_and_query}\n{date};{host};{content_hash}");
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.access_key)
            .map_err(|_| anyhow!("the access key is not usable"))?;
        mac.update(string_to_sign.as_bytes());
        let signature = STANDARD.encode(mac.finalize().into_bytes());
        let mut request = self
            .client
            .request(method, url.clone())
            .header("x-ms-date", date)
            .header("x-ms-content-sha256", content_hash)
            .header(
                "authorization",
                format!(
                    "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature={signature}"
                ),
            );
        if !body.is_empty() {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("calling {url}"))?;
        let status = response.status();
        let text = response.text().await.context("reading the answer")?;
        let value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if !status.is_success() {
            // The Kaizala error shape has `message` on top, the ACS one under `error`.
            let message = value
                .get("message")
                .or_else(|| value.get("error").and_then(|e| e.get("message")))
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| value.to_string());
            bail!("the server answered {status}: {message}");
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_strings_parse() {
        let (endpoint, key) =
            parse_connection_string("endpoint=https://localhost:8443/;accesskey=c2VjcmV0").unwrap();
        assert_eq!(endpoint, "https://localhost:8443/");
        assert_eq!(key, "c2VjcmV0");
        assert!(parse_connection_string("endpoint=https://x/").is_err());
        assert!(parse_connection_string("garbage").is_err());
    }
}
