//! Bearer tokens: compact JWTs (HS256) minted and verified by this server.
//!
//! Hand-written rather than a JWT crate because of one wire constraint: the Python SDK decodes the
//! payload segment with plain base64, so the payload must contain neither `-` nor `_` (see
//! NOTES.md). A nonce claim is varied until that holds.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use time::OffsetDateTime;

use crate::ids::IdentityId;
use crate::FastMap;

type HmacSha256 = Hmac<Sha256>;

const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// What a token grants. Parsed from the Identity API's scope names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Scope {
    #[serde(rename = "chat")]
    Chat,
    #[serde(rename = "voip")]
    Voip,
    #[serde(rename = "chat.join")]
    ChatJoin,
    #[serde(rename = "chat.join.limited")]
    ChatJoinLimited,
    #[serde(rename = "voip.join")]
    VoipJoin,
}

impl Scope {
    pub const ALL: [Scope; 5] = [
        Scope::Chat,
        Scope::Voip,
        Scope::ChatJoin,
        Scope::ChatJoinLimited,
        Scope::VoipJoin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Chat => "chat",
            Scope::Voip => "voip",
            Scope::ChatJoin => "chat.join",
            Scope::ChatJoinLimited => "chat.join.limited",
            Scope::VoipJoin => "voip.join",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(text))
    }
}

/// The claims confab puts in a token.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// The identity's raw id.
    pub sub: String,
    /// Granted scopes. Shared (as the connector fields), so that every request's `Caller` is
    /// made from the remembered claims without copying them.
    pub scp: Arc<[Scope]>,
    /// The identity's token generation when minted; a revocation bumps it.
    pub gen: u32,
    pub iat: i64,
    pub exp: i64,
    /// Varied until the encoded payload has no `-` or `_`.
    pub n: u32,
    /// The connector application a Kaizala login minted this token for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<Arc<str>>,
    /// The connector permissions (`groupinfo.read`, …) of such a token.
    #[serde(default, skip_serializing_if = "<[String]>::is_empty")]
    pub perm: Arc<[String]>,
}

/// What a token minted through a connector (Kaizala) login carries besides its scopes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectorGrant {
    pub application: Arc<str>,
    pub permissions: Arc<[String]>,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token signature is not valid")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
}

/// Mints and verifies tokens with one server secret.
pub struct TokenIssuer {
    mac: HmacSha256,
    verified: Mutex<VerifiedTokens>,
}

impl TokenIssuer {
    pub fn new(secret: &[u8]) -> Self {
        Self::with_cache_capacity(secret, VERIFIED_TOKENS)
    }

    /// An issuer that remembers up to about `2 × capacity` verified tokens.
    fn with_cache_capacity(secret: &[u8], capacity: usize) -> Self {
        // HMAC accepts keys of any length, so this cannot fail.
        let mac = HmacSha256::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
        Self {
            mac,
            verified: Mutex::new(VerifiedTokens::new(capacity)),
        }
    }

    /// Mints a token for `identity`, valid until `expires_on`.
    pub fn mint(
        &self,
        identity: &IdentityId,
        generation: u32,
        scopes: &[Scope],
        issued_on: OffsetDateTime,
        expires_on: OffsetDateTime,
    ) -> String {
        self.mint_with(identity, generation, scopes, issued_on, expires_on, None)
    }

    /// Mints a token, carrying a connector grant if given.
    pub fn mint_with(
        &self,
        identity: &IdentityId,
        generation: u32,
        scopes: &[Scope],
        issued_on: OffsetDateTime,
        expires_on: OffsetDateTime,
        grant: Option<&ConnectorGrant>,
    ) -> String {
        let mut claims = Claims {
            sub: identity.as_str().to_owned(),
            scp: scopes.into(),
            gen: generation,
            iat: issued_on.unix_timestamp(),
            exp: expires_on.unix_timestamp(),
            n: rand::random::<u16>() as u32,
            app: grant.map(|g| g.application.clone()),
            perm: grant.map(|g| g.permissions.clone()).unwrap_or_default(),
        };
        let header = URL_SAFE_NO_PAD.encode(HEADER);
        let payload = loop {
            // Serializing plain structs of strings and numbers cannot fail.
            let json = serde_json::to_vec(&claims).unwrap_or_default();
            let encoded = URL_SAFE_NO_PAD.encode(json);
            if !encoded.contains(['-', '_']) {
                break encoded;
            }
            claims.n = claims.n.wrapping_add(1);
        };
        let signing_input = format!("{header}.{payload}");
        let signature = URL_SAFE_NO_PAD.encode(self.sign(signing_input.as_bytes()));
        format!("{signing_input}.{signature}")
    }

    /// Checks the signature and expiry; answers the claims. Revocation is checked by the caller
    /// against the identity's current generation.
    ///
    /// A client sends the same token with every request, so the claims of a token that verified
    /// are remembered, keyed by the whole token: a hit is the very bytes that were checked
    /// before under this secret, and only the expiry, which depends on `now`, is checked again.
    pub fn verify(&self, token: &str, now: OffsetDateTime) -> Result<Arc<Claims>, TokenError> {
        // The lookup's own statement, so that the lock is released before a miss verifies.
        let remembered = self.verified.lock().get(token);
        let claims = match remembered {
            Some(claims) => claims,
            None => {
                let claims = Arc::new(self.verify_signature(token)?);
                self.verified.lock().insert(token, claims.clone());
                claims
            }
        };
        if claims.exp <= now.unix_timestamp() {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }

    /// The claims of a well-formed token signed with this server's secret, expired or not.
    fn verify_signature(&self, token: &str) -> Result<Claims, TokenError> {
        let (signing_input, signature) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let (_header, payload) = signing_input.split_once('.').ok_or(TokenError::Malformed)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| TokenError::Malformed)?;
        let mut mac = self.mac.clone();
        mac.update(signing_input.as_bytes());
        mac.verify_slice(&signature)
            .map_err(|_| TokenError::BadSignature)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| TokenError::Malformed)?;
        serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)
    }

    fn sign(&self, data: &[u8]) -> Vec<u8> {
        let mut mac = self.mac.clone();
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }
}

/// Verified tokens remembered per generation of the cache (see `VerifiedTokens`): enough for
/// every client of a busy server; ~4 MB with both generations full (a ~300-byte token and its
/// claims a token). Only tokens that verified are kept, so no client can fill it with junk.
const VERIFIED_TOKENS: usize = 4096;

/// The claims of recently verified tokens, in two generations so that memory stays bounded
/// without bookkeeping per hit: new tokens go to `recent`; when it is full it becomes `older`
/// and the previous `older` is dropped; a token found in `older` moves back to `recent`. A token
/// in use stays; one unused for a generation is verified again when it returns.
struct VerifiedTokens {
    capacity: usize,
    recent: FastMap<Box<str>, Arc<Claims>>,
    older: FastMap<Box<str>, Arc<Claims>>,
}

impl VerifiedTokens {
    fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            recent: FastMap::default(),
            older: FastMap::default(),
        }
    }

    fn get(&mut self, token: &str) -> Option<Arc<Claims>> {
        if let Some(claims) = self.recent.get(token) {
            return Some(claims.clone());
        }
        let (token, claims) = self.older.remove_entry(token)?;
        self.insert_owned(token, claims.clone());
        Some(claims)
    }

    fn insert(&mut self, token: &str, claims: Arc<Claims>) {
        self.insert_owned(token.into(), claims);
    }

    fn insert_owned(&mut self, token: Box<str>, claims: Arc<Claims>) {
        if self.recent.len() >= self.capacity {
            self.older = std::mem::take(&mut self.recent);
        }
        self.recent.insert(token, claims);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.recent.len() + self.older.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use time::Duration;

    fn issuer() -> TokenIssuer {
        TokenIssuer::new(b"0123456789abcdef0123456789abcdef")
    }

    #[test]
    fn minted_tokens_verify_and_carry_claims() {
        let now = OffsetDateTime::now_utc();
        let id = IdentityId::new_user("res");
        let token = issuer().mint(
            &id,
            3,
            &[Scope::Chat, Scope::Voip],
            now,
            now + Duration::hours(1),
        );
        let claims = issuer().verify(&token, now).expect("valid");
        assert_eq!(claims.sub, id.as_str());
        assert_eq!(*claims.scp, [Scope::Chat, Scope::Voip]);
        assert_eq!(claims.gen, 3);
        assert_eq!(claims.exp, (now + Duration::hours(1)).unix_timestamp());
    }

    #[test]
    fn payload_decodes_with_plain_base64_as_the_python_sdk_does() {
        let now = OffsetDateTime::now_utc();
        for _ in 0..200 {
            let id = IdentityId::new_user("res");
            let token = issuer().mint(&id, 0, &[Scope::Chat], now, now + Duration::hours(24));
            let payload = token.split('.').nth(1).expect("payload");
            assert!(!payload.contains(['-', '_']), "{payload}");
            let padded = format!("{payload}{}", "=".repeat((4 - payload.len() % 4) % 4));
            let json = STANDARD.decode(padded).expect("plain base64");
            let value: serde_json::Value = serde_json::from_slice(&json).expect("json");
            assert!(value["exp"].is_i64());
        }
    }

    #[test]
    fn tampered_expired_and_foreign_tokens_are_refused() {
        let now = OffsetDateTime::now_utc();
        let id = IdentityId::new_user("res");
        let token = issuer().mint(&id, 0, &[Scope::Chat], now, now + Duration::hours(1));
        let other = TokenIssuer::new(b"another secret");
        assert_eq!(other.verify(&token, now), Err(TokenError::BadSignature));
        assert_eq!(
            issuer().verify(&token, now + Duration::hours(2)),
            Err(TokenError::Expired)
        );
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = URL_SAFE_NO_PAD
            .encode(r#"{"sub":"8:acs:x","scp":["chat"],"gen":0,"iat":0,"exp":99999999999,"n":0}"#);
        parts[1] = &forged;
        assert_eq!(
            issuer().verify(&parts.join("."), now),
            Err(TokenError::BadSignature)
        );
        for junk in ["", "a", "a.b", "a.b.c", "..."] {
            assert!(issuer().verify(junk, now).is_err(), "{junk}");
        }
    }

    /// A chat token of a new user, minted at `now` for an hour.
    fn chat_token(issuer: &TokenIssuer, now: OffsetDateTime) -> String {
        let id = IdentityId::new_user("res");
        issuer.mint(&id, 0, &[Scope::Chat], now, now + Duration::hours(1))
    }

    #[test]
    fn a_verified_token_is_remembered_and_still_expires() {
        let now = OffsetDateTime::now_utc();
        let issuer = issuer();
        let token = chat_token(&issuer, now);
        let first = issuer.verify(&token, now).expect("valid");
        let again = issuer.verify(&token, now).expect("valid");
        assert!(Arc::ptr_eq(&first, &again), "the second check is a hit");
        assert_eq!(issuer.verified.lock().len(), 1);
        assert_eq!(
            issuer.verify(&token, now + Duration::hours(2)),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn a_remembered_token_does_not_vouch_for_an_altered_one() {
        let now = OffsetDateTime::now_utc();
        let issuer = issuer();
        let token = chat_token(&issuer, now);
        issuer.verify(&token, now).expect("valid");
        let (signing_input, _) = token.rsplit_once('.').expect("three parts");
        let resigned = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode([0u8; 32]));
        assert_eq!(issuer.verify(&resigned, now), Err(TokenError::BadSignature));
        assert!(issuer.verify(&format!("{token}x"), now).is_err());
        assert_eq!(issuer.verified.lock().len(), 1, "refusals are not kept");
    }

    #[test]
    fn the_remembered_tokens_stay_bounded_and_keep_the_ones_in_use() {
        let now = OffsetDateTime::now_utc();
        let issuer = TokenIssuer::with_cache_capacity(b"secret", 4);
        let mint = || chat_token(&issuer, now);
        let busy = mint();
        let busy_claims = issuer.verify(&busy, now).expect("valid");
        let first_of_the_rest = mint();
        let first_claims = issuer.verify(&first_of_the_rest, now).expect("valid");
        for _ in 0..20 {
            issuer.verify(&mint(), now).expect("valid");
            let hit = issuer.verify(&busy, now).expect("valid");
            assert!(Arc::ptr_eq(&busy_claims, &hit), "a token in use stays");
            assert!(issuer.verified.lock().len() <= 8);
        }
        let again = issuer.verify(&first_of_the_rest, now).expect("still valid");
        assert_eq!(again, first_claims);
        assert!(
            !Arc::ptr_eq(&again, &first_claims),
            "an unused token was forgotten and verified again"
        );
    }
}
