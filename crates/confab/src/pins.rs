//! The PIN senders behind the core's `PinSender` port: a file in the data dir (development, the
//! default) and an HTTP POST to an SMS gateway (production).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use async_trait::async_trait;
use confab_core::ports::{PinMessage, PinSender};
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;

/// The PINs file inside the data dir.
pub const PIN_FILE: &str = "pins.log";

/// How PINs go out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PinSenderKind {
    /// Appended to a file (`pin_file`, by default `pins.log` in the data dir) and logged.
    #[default]
    File,
    /// POSTed as JSON to `pin_sms_url`.
    Http,
}

/// Appends `<time> <mobile number> <pin> application=<id> expires=<time>` lines to a file and
/// logs them. Without a file (in memory, none configured) it only logs.
pub struct FilePinSender {
    path: Option<PathBuf>,
}

impl FilePinSender {
    pub fn new(path: Option<PathBuf>) -> Self {
        Self { path }
    }
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

#[async_trait]
impl PinSender for FilePinSender {
    async fn send_pin(&self, message: &PinMessage) -> Result<(), String> {
        tracing::info!(
            mobile_number = %message.mobile_number,
            pin = %message.pin,
            application = %message.application_id,
            "Kaizala PIN"
        );
        let Some(path) = self.path.clone() else {
            return Ok(());
        };
        let line = format!(
            "{} {} {} application={} expires={}\n",
            rfc3339(time::OffsetDateTime::now_utc()),
            message.mobile_number,
            message.pin,
            message.application_id,
            rfc3339(message.expires_on)
        );
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?;
            // One write per line: appends of whole lines do not interleave.
            file.write_all(line.as_bytes())
        })
        .await
        .map_err(|e| format!("writing the PIN file failed: {e}"))?
        .map_err(|e| format!("writing the PIN file failed: {e}"))
    }
}

/// The PIN last written for `number` in the text of a PIN file (the lines [`FilePinSender`]
/// appends: `<time> <mobile number> <pin> …`), for whoever reads the file in place of the SMS
/// it stands for (the tests, the benchmark).
pub fn last_pin_in(text: &str, number: &str) -> Option<String> {
    text.lines().rev().find_map(|line| {
        let mut fields = line.split(' ');
        let (_, to, pin) = (fields.next()?, fields.next()?, fields.next()?);
        (to == number).then(|| pin.to_owned())
    })
}

/// POSTs `{mobileNumber, pin, message, applicationId, applicationName, expiresOn}` to an SMS
/// gateway; any 2xx answer counts as sent.
pub struct HttpPinSender {
    client: reqwest::Client,
    url: String,
}

impl HttpPinSender {
    pub fn new(url: &str) -> anyhow::Result<Self> {
        let parsed = reqwest::Url::parse(url).with_context(|| format!("pin_sms_url {url:?}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            bail!("pin_sms_url must be an http or https URL");
        }
        let mut builder = reqwest::Client::builder().timeout(std::time::Duration::from_secs(10));
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
            client: builder.build().context("building the SMS gateway client")?,
            url: url.to_owned(),
        })
    }
}

#[async_trait]
impl PinSender for HttpPinSender {
    async fn send_pin(&self, message: &PinMessage) -> Result<(), String> {
        let body = serde_json::json!({
            "mobileNumber": message.mobile_number,
            "pin": message.pin,
            "message": format!("Your {} PIN is {}", message.application_name, message.pin),
            "applicationId": message.application_id,
            "applicationName": message.application_name,
            "expiresOn": rfc3339(message.expires_on),
        });
        let response = self
            .client
            .post(&self.url)
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("the SMS gateway could not be reached: {e}"))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("the SMS gateway answered {}", response.status()))
        }
    }
}

/// The sender the settings ask for.
pub fn sender(
    kind: PinSenderKind,
    file: Option<&Path>,
    sms_url: Option<&str>,
    data_dir: Option<&Path>,
) -> anyhow::Result<Arc<dyn PinSender>> {
    Ok(match kind {
        PinSenderKind::File => {
            let path = file
                .map(Path::to_path_buf)
                .or_else(|| data_dir.map(|dir| dir.join(PIN_FILE)));
            Arc::new(FilePinSender::new(path))
        }
        PinSenderKind::Http => {
            let url = sms_url.context("pin_sender = \"http\" needs pin_sms_url")?;
            Arc::new(HttpPinSender::new(url)?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(number: &str, pin: &str) -> PinMessage {
        PinMessage {
            mobile_number: number.into(),
            pin: pin.into(),
            application_id: "app".into(),
            application_name: "App".into(),
            expires_on: time::OffsetDateTime::now_utc(),
        }
    }

    /// What the file sender writes, `last_pin_in` reads back: the newest PIN of that number.
    #[tokio::test]
    async fn the_file_senders_lines_give_the_last_pin_of_a_number() {
        let dir = crate::tempdir::TempDir::new("pins").expect("dir");
        let path = dir.path().join(PIN_FILE);
        let sender = FilePinSender::new(Some(path.clone()));
        for (number, pin) in [
            ("+14255550001", "1111"),
            ("+14255550002", "2222"),
            ("+14255550001", "3333"),
        ] {
            sender
                .send_pin(&message(number, pin))
                .await
                .expect("written");
        }
        let text = std::fs::read_to_string(&path).expect("file");
        assert_eq!(last_pin_in(&text, "+14255550001").as_deref(), Some("3333"));
        assert_eq!(last_pin_in(&text, "+14255550002").as_deref(), Some("2222"));
        assert_eq!(last_pin_in(&text, "+14255550009"), None);
    }
}
