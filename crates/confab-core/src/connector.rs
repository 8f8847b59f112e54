//! Connector (Kaizala) applications and their login: an admin registers an application
//! (id + secret, permissions); a phone number asks for a PIN, trades it for a refresh token,
//! and trades that for access tokens. An access token is this server's own bearer token (scope
//! `chat`, subject the phone identity), so it works on the ACS face too.
//!
//! Secrets are stored as SHA-256 hashes only and compared in constant time.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::identity::Caller;
use crate::ids::{IdentityId, IdentityKind};
use crate::model::{Application, PinChallenge, RefreshToken};
use crate::ports::connectors::constant_time_eq;
use crate::ports::{PinMessage, PinOutcome, PinRedemption, StoreError};
use crate::ratelimit::Operation;
use crate::tokens::{ConnectorGrant, Scope};
use crate::Core;

/// Permission families a connector can hold (permission.md); a permission is `family.verb`.
pub const PERMISSION_FAMILIES: [&str; 9] = [
    "groupinfo",
    "groupmember",
    "textmessage",
    "action",
    "profile",
    "media",
    "webhook",
    "tenant",
    "reaction",
];
pub const PERMISSION_VERBS: [&str; 4] = ["read", "write", "remove", "update"];

/// Digits of a PIN. PINs never start with 0, so clients that send them as JSON numbers lose
/// nothing.
const PIN_DIGITS: u32 = 6;
const MAX_APPLICATION_NAME_CHARS: usize = 256;

/// Settings of the connector login.
#[derive(Clone, Debug, PartialEq)]
pub struct ConnectorConfig {
    /// How long a PIN can be used.
    pub pin_lifetime: Duration,
    /// Wrong PINs tolerated before the PIN is thrown away.
    pub pin_attempts: u32,
    pub refresh_token_lifetime: Duration,
    pub access_token_lifetime: Duration,
    /// Per mille of a refresh token's life after which `accessToken` also hands out a successor.
    pub rotate_after_permille: u32,
}

impl Default for ConnectorConfig {
    fn default() -> Self {
        Self {
            pin_lifetime: Duration::minutes(10),
            pin_attempts: 5,
            refresh_token_lifetime: Duration::days(365),
            access_token_lifetime: Duration::hours(24),
            rotate_after_permille: 900,
        }
    }
}

/// Every permission: the default of an application registered without a list.
pub fn all_permissions() -> Vec<String> {
    PERMISSION_FAMILIES
        .iter()
        .flat_map(|family| {
            PERMISSION_VERBS
                .iter()
                .map(move |verb| format!("{family}.{verb}"))
        })
        .collect()
}

/// Validates permission names (`family.verb`, case-insensitive; `family` alone grants every
/// verb), lower-cased and without duplicates.
pub fn parse_permissions(names: &[String]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for name in names {
        let name = name.trim().to_ascii_lowercase();
        let (family, verbs) = match name.split_once('.') {
            Some((family, verb)) if PERMISSION_VERBS.contains(&verb) => {
                (family.to_owned(), vec![verb])
            }
            None => (name.clone(), PERMISSION_VERBS.to_vec()),
            Some(_) => (String::new(), Vec::new()),
        };
        if !PERMISSION_FAMILIES.contains(&family.as_str()) || verbs.is_empty() {
            return Err(Error::invalid(
                format!(
                    "Unknown permission '{name}'. Permissions are <family>.<read|write|remove|update> with family one of {}.",
                    PERMISSION_FAMILIES.join(", ")
                ),
                "scopes",
            ));
        }
        for verb in verbs {
            let permission = format!("{family}.{verb}");
            if !out.contains(&permission) {
                out.push(permission);
            }
        }
    }
    if out.is_empty() {
        return Err(Error::invalid(
            "At least one permission is required.",
            "scopes",
        ));
    }
    Ok(out)
}

/// A new application, as the admin asked for it.
#[derive(Clone, Debug, Default)]
pub struct NewApplication {
    pub name: String,
    /// `None`: every permission.
    pub permissions: Option<Vec<String>>,
}

/// A registered application with its secret, shown once.
#[derive(Clone, Debug)]
pub struct CreatedApplication {
    pub application: Application,
    pub secret: String,
}

/// A PIN login as a face parsed it.
#[derive(Clone, Debug)]
pub struct PinLogin {
    pub application: String,
    pub identity: IdentityId,
    pub pin: String,
    /// Some clients send the secret too; it is then checked.
    pub secret: Option<String>,
}

/// A refresh token handed out (by a login or a rotation).
#[derive(Clone, Debug)]
pub struct IssuedRefreshToken {
    pub token: String,
    pub permissions: Vec<String>,
    pub expires_on: OffsetDateTime,
}

/// What `accessToken` answers.
#[derive(Clone, Debug)]
pub struct ConnectorAccess {
    pub access_token: String,
    pub expires_on: OffsetDateTime,
    pub identity: IdentityId,
    pub permissions: Vec<String>,
    /// A successor refresh token, near the end of the presented one's life.
    pub refresh_token: Option<IssuedRefreshToken>,
}

fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn pin_hash(application: &str, identity: &IdentityId, pin: &str) -> [u8; 32] {
    sha256(format!("pin\0{application}\0{identity}\0{pin}").as_bytes())
}

/// Application ids are GUIDs; accepted in any case.
pub fn normalize_application_id(id: &str) -> String {
    id.trim().to_ascii_lowercase()
}

fn unknown_application() -> Error {
    Error::Unauthenticated("The application id is not registered.".into())
}

impl Core {
    /// Registers an application; the secret is returned here and never again.
    pub async fn create_application(&self, request: NewApplication) -> Result<CreatedApplication> {
        let name = request.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > MAX_APPLICATION_NAME_CHARS {
            return Err(Error::invalid(
                format!("The name must have 1 to {MAX_APPLICATION_NAME_CHARS} characters."),
                "name",
            ));
        }
        let scopes = match &request.permissions {
            Some(names) => parse_permissions(names)?,
            None => all_permissions(),
        };
        let secret = random_secret();
        let application = Application {
            id: Uuid::new_v4().hyphenated().to_string(),
            name,
            secret_hash: sha256(secret.as_bytes()),
            scopes,
            created_on: self.clock.now(),
        };
        self.store.create_application(&application).await?;
        self.applications.set(application.id.clone(), true);
        Ok(CreatedApplication {
            application,
            secret,
        })
    }

    pub async fn list_applications(&self) -> Result<Vec<Application>> {
        Ok(self.store.list_applications().await?)
    }

    /// Deletes an application: its refresh tokens and the access tokens minted from them stop
    /// working at once.
    pub async fn delete_application(&self, id: &str) -> Result<()> {
        let id = normalize_application_id(id);
        self.store
            .delete_application(&id)
            .await
            .map_err(|err| match err {
                StoreError::NotFound => Error::NotFound("The application does not exist.".into()),
                other => other.into(),
            })?;
        self.applications.set(id, false);
        Ok(())
    }

    /// Counts a call of a connector application against the per-connector and per-tenant
    /// rate limits.
    pub fn check_connector_rate(&self, application: &str) -> Result<()> {
        self.throttle
            .check_connector(&normalize_application_id(application))
    }

    /// Sends a new PIN to a phone number for an application (replacing a pending one).
    pub async fn generate_pin(&self, application: &str, identity: &IdentityId) -> Result<()> {
        let application = normalize_application_id(application);
        self.check_connector_rate(&application)?;
        let mobile_number = phone_number(identity)?;
        let app = self
            .store
            .get_application(&application)
            .await?
            .ok_or_else(unknown_application)?;
        let low = 10u32.pow(PIN_DIGITS - 1);
        let pin = (low + rand::random::<u32>() % (9 * low)).to_string();
        let expires_on = self.clock.now() + self.connectors.pin_lifetime;
        self.store
            .put_pin(&PinChallenge {
                application: app.id.clone(),
                identity: identity.clone(),
                pin_hash: pin_hash(&app.id, identity, &pin),
                expires_on,
                attempts_left: self.connectors.pin_attempts.max(1),
            })
            .await?;
        let message = PinMessage {
            mobile_number,
            pin,
            application_id: app.id,
            application_name: app.name,
            expires_on,
        };
        self.pin_sender.send_pin(&message).await.map_err(|err| {
            tracing::warn!(error = %err, "PIN delivery failed");
            Error::Unavailable("The PIN could not be delivered; try again later.".into())
        })
    }

    /// Trades a PIN for a refresh token. The PIN is single-use and allows a few attempts.
    pub async fn login_with_pin(&self, login: PinLogin) -> Result<IssuedRefreshToken> {
        let application = normalize_application_id(&login.application);
        self.check_connector_rate(&application)?;
        phone_number(&login.identity)?;
        let pin = login.pin.trim();
        if pin.is_empty() || pin.len() > 16 || !pin.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::invalid("The PIN must be a number.", "pin"));
        }
        let app = self
            .store
            .get_application(&application)
            .await?
            .ok_or_else(unknown_application)?;
        if let Some(secret) = &login.secret {
            check_secret(&app, secret)?;
        }
        let now = self.clock.now();
        let (token, refresh) = self.new_refresh_token(&app.id, &login.identity, &app.scopes, now);
        let outcome = self
            .store
            .redeem_pin(PinRedemption {
                application: app.id.clone(),
                identity: login.identity.clone(),
                pin_hash: pin_hash(&app.id, &login.identity, pin),
                now,
                refresh_token: refresh.clone(),
            })
            .await?;
        match outcome {
            PinOutcome::Redeemed { first_login } => {
                if first_login {
                    self.forget_generation(&login.identity);
                }
                Ok(IssuedRefreshToken {
                    token,
                    permissions: refresh.scopes,
                    expires_on: refresh.expires_on,
                })
            }
            PinOutcome::Wrong { attempts_left: 0 } => Err(Error::Unauthenticated(
                "The PIN is not valid and no attempts are left; generate a new PIN.".into(),
            )),
            PinOutcome::Wrong { attempts_left } => Err(Error::Unauthenticated(format!(
                "The PIN is not valid ({attempts_left} attempts left)."
            ))),
            PinOutcome::Expired => Err(Error::Unauthenticated(
                "The PIN has expired; generate a new PIN.".into(),
            )),
            PinOutcome::Missing => Err(Error::Unauthenticated(
                "No PIN is pending for this number and application (it was used, locked or never generated).".into(),
            )),
        }
    }

    /// Trades a refresh token for an access token (and, near the refresh token's end of life, a
    /// successor refresh token).
    pub async fn connector_access_token(
        &self,
        application: &str,
        secret: &str,
        refresh_token: &str,
    ) -> Result<ConnectorAccess> {
        let application = normalize_application_id(application);
        self.check_connector_rate(&application)?;
        let app = self
            .store
            .get_application(&application)
            .await?
            .ok_or_else(unknown_application)?;
        check_secret(&app, secret)?;
        let invalid = || Error::Unauthenticated("The refresh token is not valid.".into());
        let stored = self
            .store
            .get_refresh_token(&sha256(refresh_token.trim().as_bytes()))
            .await?
            .ok_or_else(invalid)?;
        if !constant_time_eq(stored.application.as_bytes(), app.id.as_bytes()) {
            return Err(invalid());
        }
        let now = self.clock.now();
        if stored.expires_on <= now {
            return Err(Error::Unauthenticated(
                "The refresh token has expired; log in with a PIN again.".into(),
            ));
        }
        let generation = self
            .current_generation(&stored.identity)
            .await?
            .ok_or_else(|| {
                Error::Unauthenticated("The refresh token's identity no longer exists.".into())
            })?;
        let grant = ConnectorGrant {
            application: app.id.as_str().into(),
            permissions: stored.scopes.as_slice().into(),
        };
        let expires_on = now + self.connectors.access_token_lifetime;
        let access_token = self.tokens.mint_with(
            &stored.identity,
            generation,
            &[Scope::Chat],
            now,
            expires_on,
            Some(&grant),
        );
        let life = stored.expires_on - stored.created_on;
        let rotate_at = stored.created_on
            + life * (f64::from(self.connectors.rotate_after_permille.min(1000)) / 1000.0);
        let refresh_token = if now >= rotate_at {
            let (token, successor) =
                self.new_refresh_token(&app.id, &stored.identity, &stored.scopes, now);
            self.store.add_refresh_token(&successor).await?;
            Some(IssuedRefreshToken {
                token,
                permissions: successor.scopes,
                expires_on: successor.expires_on,
            })
        } else {
            None
        };
        Ok(ConnectorAccess {
            access_token,
            expires_on,
            identity: stored.identity,
            permissions: stored.scopes,
            refresh_token,
        })
    }

    /// Deletes expired PINs and refresh tokens. Run periodically by the server.
    pub async fn purge_expired_credentials(&self) -> Result<usize> {
        Ok(self
            .store
            .purge_expired_credentials(self.clock.now())
            .await?)
    }

    /// Whether a connector application exists, cached after the first read.
    pub(crate) async fn application_exists(&self, id: &str) -> Result<bool> {
        if let Some(known) = self.applications.get(id) {
            return Ok(known);
        }
        let epoch = self.applications.epoch();
        let exists = self.store.get_application(id).await?.is_some();
        self.applications.fill(epoch, id.to_owned(), exists);
        Ok(exists)
    }

    /// Counts a Kaizala call: the caller's own limits, then its connector's and the tenant's.
    pub(crate) fn throttle_connector_call(
        &self,
        caller: &Caller,
        operation: Operation,
    ) -> Result<()> {
        self.throttle.check(&caller.identity, operation)?;
        match &caller.connector {
            Some(grant) => self.throttle.check_connector(&grant.application),
            None => Ok(()),
        }
    }

    fn new_refresh_token(
        &self,
        application: &str,
        identity: &IdentityId,
        scopes: &[String],
        now: OffsetDateTime,
    ) -> (String, RefreshToken) {
        let token = random_secret();
        let stored = RefreshToken {
            hash: sha256(token.as_bytes()),
            application: application.to_owned(),
            identity: identity.clone(),
            scopes: scopes.to_vec(),
            created_on: now,
            expires_on: now + self.connectors.refresh_token_lifetime,
        };
        (token, stored)
    }
}

/// Fails unless a connector token's permissions include `family` (any verb). Tokens of the
/// Identity API carry no connector permissions and are limited by their scopes only.
pub(crate) fn require_permission(caller: &Caller, family: &str, what: &str) -> Result<()> {
    match &caller.connector {
        None => Ok(()),
        Some(grant)
            if grant
                .permissions
                .iter()
                .any(|p| p.split('.').next() == Some(family)) =>
        {
            Ok(())
        }
        Some(_) => Err(Error::Forbidden(format!(
            "The connector's permissions do not allow {what} ({family}.* is required)."
        ))),
    }
}

fn check_secret(app: &Application, secret: &str) -> Result<()> {
    if constant_time_eq(&sha256(secret.trim().as_bytes()), &app.secret_hash) {
        Ok(())
    } else {
        Err(Error::Unauthenticated(
            "The application secret is not valid.".into(),
        ))
    }
}

fn phone_number(identity: &IdentityId) -> Result<String> {
    match (identity.kind(), identity.phone_number()) {
        (IdentityKind::PhoneNumber, Some(number)) => Ok(number.to_owned()),
        _ => Err(Error::invalid(
            "The mobile number must be an E.164 phone number.",
            "mobileNumber",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_parse() {
        let all = all_permissions();
        assert_eq!(all.len(), 36);
        assert!(all.contains(&"textmessage.write".to_owned()));
        let parsed =
            parse_permissions(&["GroupInfo.Read".into(), "textmessage".into()]).expect("valid");
        assert_eq!(
            parsed,
            [
                "groupinfo.read",
                "textmessage.read",
                "textmessage.write",
                "textmessage.remove",
                "textmessage.update"
            ]
        );
        for bad in ["", "groupinfo.delete", "bogus.read", "bogus"] {
            assert!(parse_permissions(&[bad.into()]).is_err(), "{bad}");
        }
        assert!(parse_permissions(&[]).is_err());
    }
}
