//! The ports of the connector (Kaizala) login: storage of applications, PINs and refresh
//! tokens, and the sender that delivers a PIN to a phone.
//!
//! Only hashes of secrets are stored (application secrets, PINs, refresh tokens). What can race
//! (two logins with one PIN, attempts counting down) is decided inside one store write.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreResult;
use crate::ids::IdentityId;
use crate::model::{Application, PinChallenge, RefreshToken};

/// A PIN login to settle in one transaction.
#[derive(Clone, Debug)]
pub struct PinRedemption {
    pub application: String,
    pub identity: IdentityId,
    /// The hash of the PIN the client sent.
    pub pin_hash: [u8; 32],
    pub now: OffsetDateTime,
    /// Stored when the PIN matches, replacing every earlier refresh token of this application
    /// for this identity.
    pub refresh_token: RefreshToken,
}

/// How a PIN login ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinOutcome {
    /// The PIN matched and is used up; the refresh token is stored. `first_login`: the identity
    /// row was created by this login.
    Redeemed { first_login: bool },
    /// The PIN did not match; this many attempts are left (0: the PIN is gone).
    Wrong { attempts_left: u32 },
    /// The PIN had expired (it is gone now).
    Expired,
    /// No PIN is pending for this application and number (never asked, used, or locked out).
    Missing,
}

/// Storage of connector applications and their credentials.
#[async_trait]
pub trait ConnectorStore: Send + Sync + 'static {
    /// Registers an application (`Conflict` if the id exists).
    async fn create_application(&self, application: &Application) -> StoreResult<()>;
    async fn get_application(&self, id: &str) -> StoreResult<Option<Application>>;
    /// Every application, oldest first.
    async fn list_applications(&self) -> StoreResult<Vec<Application>>;
    /// Deletes the application with its pending PINs and refresh tokens (`NotFound` if unknown).
    async fn delete_application(&self, id: &str) -> StoreResult<()>;

    /// Stores a PIN, replacing any pending one of the same application and number.
    async fn put_pin(&self, pin: &PinChallenge) -> StoreResult<()>;
    /// Checks a PIN (constant-time), counting the attempt, and on a match uses it up, stores the
    /// refresh token and creates the identity if it does not exist, all in one transaction.
    async fn redeem_pin(&self, redemption: PinRedemption) -> StoreResult<PinOutcome>;

    async fn get_refresh_token(&self, hash: &[u8; 32]) -> StoreResult<Option<RefreshToken>>;
    /// Stores an additional refresh token (a rotation's successor).
    async fn add_refresh_token(&self, token: &RefreshToken) -> StoreResult<()>;
    /// Deletes PINs and refresh tokens that expired before `now`; answers how many.
    async fn purge_expired_credentials(&self, now: OffsetDateTime) -> StoreResult<usize>;
}

/// A PIN to deliver.
#[derive(Clone, Debug)]
pub struct PinMessage {
    /// E.164, with the `+`.
    pub mobile_number: String,
    pub pin: String,
    pub application_id: String,
    pub application_name: String,
    pub expires_on: OffsetDateTime,
}

/// Delivers PINs (a log file in development, an SMS gateway in production).
#[async_trait]
pub trait PinSender: Send + Sync + 'static {
    /// Sends the PIN; the error says why it could not be delivered.
    async fn send_pin(&self, message: &PinMessage) -> Result<(), String>;
}

/// Only logs that a PIN was sent, without the PIN. The core's default until the server sets a
/// real sender.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoPinSender;

#[async_trait]
impl PinSender for NoPinSender {
    async fn send_pin(&self, message: &PinMessage) -> Result<(), String> {
        tracing::warn!(
            application = %message.application_id,
            "no PIN sender is configured; the PIN was not delivered"
        );
        Ok(())
    }
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // Keep the optimiser from short-circuiting on the accumulated value.
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }
}
