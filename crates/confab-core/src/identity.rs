//! The Identity API's rules: identities, tokens, revocation, and authenticating a bearer token.

use std::sync::Arc;

use time::Duration;

use crate::error::{Error, Result};
use crate::ids::IdentityId;
use crate::model::Identity;
use crate::ports::StoreError;
use crate::tokens::{ConnectorGrant, Scope, TokenError};
use crate::Core;

/// Token lifetimes the Identity API accepts, in minutes.
pub const TOKEN_MINUTES: std::ops::RangeInclusive<u32> = 60..=1440;
pub const DEFAULT_TOKEN_MINUTES: u32 = 1440;

/// A minted token and when it expires.
#[derive(Clone, Debug)]
pub struct IssuedToken {
    pub token: String,
    pub expires_on: time::OffsetDateTime,
}

/// Who is calling, once their bearer token has been verified.
#[derive(Clone, Debug, PartialEq)]
pub struct Caller {
    pub identity: IdentityId,
    pub scopes: Arc<[Scope]>,
    /// Set when the token came from a connector (Kaizala) login: its application and
    /// permissions. `None` for tokens of the Identity API.
    pub connector: Option<ConnectorGrant>,
}

impl Caller {
    fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    /// Read and write messages in threads the caller belongs to.
    pub fn can_chat(&self) -> bool {
        self.has(Scope::Chat) || self.has(Scope::ChatJoin) || self.has(Scope::ChatJoinLimited)
    }

    /// Create, update and delete threads (`chat` only; the join scopes cannot).
    pub fn can_manage_threads(&self) -> bool {
        self.has(Scope::Chat)
    }

    /// Add and remove participants (`chat` and `chat.join`, not `chat.join.limited`).
    pub fn can_manage_participants(&self) -> bool {
        self.has(Scope::Chat) || self.has(Scope::ChatJoin)
    }
}

/// A token request: which scopes, for how long (minutes; `None` = the default).
#[derive(Clone, Debug, Default)]
pub struct TokenRequest {
    pub scopes: Vec<Scope>,
    pub expires_in_minutes: Option<u32>,
}

impl Core {
    /// Creates a new communication user, optionally with a first token.
    pub async fn create_identity(
        &self,
        token: Option<TokenRequest>,
    ) -> Result<(Identity, Option<IssuedToken>)> {
        let lifetime = token.as_ref().map(validate_token_request).transpose()?;
        let identity = Identity {
            id: IdentityId::new_user(&self.resource_id),
            created_on: self.clock.now(),
            token_generation: 0,
        };
        self.store.create_identity(&identity).await?;
        let issued = match (token, lifetime) {
            (Some(request), Some(minutes)) => Some(self.mint(&identity, &request.scopes, minutes)),
            _ => None,
        };
        Ok((identity, issued))
    }

    pub async fn issue_token(&self, id: &IdentityId, request: TokenRequest) -> Result<IssuedToken> {
        let minutes = validate_token_request(&request)?;
        let identity = self
            .store
            .get_identity(id)
            .await?
            .ok_or_else(identity_not_found)?;
        Ok(self.mint(&identity, &request.scopes, minutes))
    }

    /// Invalidates every token issued to `id` so far.
    pub async fn revoke_tokens(&self, id: &IdentityId) -> Result<()> {
        let generation = self
            .store
            .bump_token_generation(id)
            .await
            .map_err(not_found_identity)?;
        self.generations.set(id.clone(), Some(generation));
        self.credentials_changed(Some(id));
        Ok(())
    }

    /// Deletes the identity; its tokens stop working at once.
    pub async fn delete_identity(&self, id: &IdentityId) -> Result<()> {
        self.store
            .delete_identity(id)
            .await
            .map_err(not_found_identity)?;
        self.generations.set(id.clone(), None);
        self.credentials_changed(Some(id));
        Ok(())
    }

    /// Verifies a bearer token: signature, expiry, and that it was not revoked since.
    pub async fn authenticate(&self, token: &str) -> Result<Caller> {
        let claims = self
            .tokens
            .verify(token, self.clock.now())
            .map_err(|err| match err {
                TokenError::Expired => {
                    Error::Unauthenticated("The access token has expired.".into())
                }
                _ => Error::Unauthenticated("The access token is not valid.".into()),
            })?;
        let identity = IdentityId::parse(&claims.sub)
            .ok_or_else(|| Error::Unauthenticated("The access token is not valid.".into()))?;
        let generation = self.current_generation(&identity).await?;
        if generation != Some(claims.gen) {
            return Err(Error::Unauthenticated(
                "The access token has been revoked.".into(),
            ));
        }
        let connector = match &claims.app {
            Some(application) => {
                if !self.application_exists(application).await? {
                    return Err(Error::Unauthenticated(
                        "The access token's application has been deleted.".into(),
                    ));
                }
                Some(ConnectorGrant {
                    application: application.clone(),
                    permissions: claims.perm.clone(),
                })
            }
            None => None,
        };
        Ok(Caller {
            identity,
            scopes: claims.scp.clone(),
            connector,
        })
    }

    /// The identity's token generation (None: deleted or unknown), cached after the first read.
    pub(crate) async fn current_generation(&self, id: &IdentityId) -> Result<Option<u32>> {
        if let Some(cached) = self.generations.get(id) {
            return Ok(cached);
        }
        let epoch = self.generations.epoch();
        let generation = self
            .store
            .get_identity(id)
            .await?
            .map(|i| i.token_generation);
        self.generations.fill(epoch, id.clone(), generation);
        Ok(generation)
    }

    /// Forgets the cached token generation of `id` (its identity row was just created).
    pub(crate) fn forget_generation(&self, id: &IdentityId) {
        self.generations.forget(id);
    }

    fn mint(&self, identity: &Identity, scopes: &[Scope], minutes: u32) -> IssuedToken {
        let now = self.clock.now();
        let expires_on = now + Duration::minutes(i64::from(minutes));
        let token = self.tokens.mint(
            &identity.id,
            identity.token_generation,
            scopes,
            now,
            expires_on,
        );
        IssuedToken { token, expires_on }
    }
}

fn validate_token_request(request: &TokenRequest) -> Result<u32> {
    if request.scopes.is_empty() {
        return Err(Error::invalid("At least one scope is required.", "scopes"));
    }
    let minutes = request.expires_in_minutes.unwrap_or(DEFAULT_TOKEN_MINUTES);
    if !TOKEN_MINUTES.contains(&minutes) {
        return Err(Error::invalid(
            format!(
                "expiresInMinutes must be between {} and {}.",
                TOKEN_MINUTES.start(),
                TOKEN_MINUTES.end()
            ),
            "expiresInMinutes",
        ));
    }
    Ok(minutes)
}

fn identity_not_found() -> Error {
    Error::NotFound("Identity not found.".into())
}

fn not_found_identity(err: StoreError) -> Error {
    match err {
        StoreError::NotFound => identity_not_found(),
        other => other.into(),
    }
}
