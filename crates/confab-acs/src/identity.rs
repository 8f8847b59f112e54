//! The Identity API (2023-10-01): HMAC-signed calls that create identities and their tokens.

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use axum::{Json, Router};
use bytes::Bytes;
use confab_core::identity::{IssuedToken, TokenRequest};
use confab_core::ids::IdentityId;
use confab_core::tokens::Scope;

use crate::api_version;
use crate::error::{AcsError, AcsResult};
use crate::extract::{hmac_signed_body, optional_json, parse_json, AcsState};
use crate::wire::{
    AccessToken, CommunicationIdentity, CreateIdentityRequest, CreateIdentityResult,
    IssueTokenRequest,
};

pub fn routes() -> Router<AcsState> {
    // The `/:issueAccessToken`-style segments are literal on the ACS wire; axum reserves a
    // leading `:`, so they are captured and dispatched here.
    Router::new()
        .route("/identities", post(create))
        .route("/identities/{id}", delete(remove))
        .route("/identities/{id}/{action}", post(identity_action))
        .route("/teamsUser/{action}", post(teams_action))
}

async fn identity_action(
    State(state): State<AcsState>,
    Path((id, action)): Path<(String, String)>,
    request: Request,
) -> AcsResult<Response> {
    match action.as_str() {
        ":issueAccessToken" => Ok(issue_token(state, &id, request).await?.into_response()),
        ":revokeAccessTokens" => Ok(revoke_tokens(state, &id, request).await?.into_response()),
        _ => Err(AcsError::not_found(
            "The requested resource does not exist.",
        )),
    }
}

async fn teams_action(
    State(state): State<AcsState>,
    Path(action): Path<String>,
    request: Request,
) -> AcsResult<()> {
    match action.as_str() {
        ":exchangeAccessToken" => exchange_teams_token(state, request).await,
        _ => Err(AcsError::not_found(
            "The requested resource does not exist.",
        )),
    }
}

/// Checks the HMAC signature and the api-version; answers the body.
async fn signed_body(state: &AcsState, request: Request) -> AcsResult<Bytes> {
    let params = axum::extract::Query::<std::collections::HashMap<String, String>>::try_from_uri(
        request.uri(),
    )
    .map_err(|_| AcsError::bad_request("The query string is malformed."))?;
    let body = hmac_signed_body(state, request).await?;
    api_version::identity_version(
        params.get("api-version").map(String::as_str),
        state.config.strict_api_version,
    )?;
    Ok(body)
}

fn scopes_from(names: &[String]) -> AcsResult<Vec<Scope>> {
    names
        .iter()
        .map(|name| {
            Scope::parse(name)
                .ok_or_else(|| AcsError::invalid(format!("Unknown scope '{name}'."), "scopes"))
        })
        .collect()
}

fn minutes_from(minutes: Option<i64>) -> AcsResult<Option<u32>> {
    minutes
        .map(|m| {
            u32::try_from(m).map_err(|_| {
                AcsError::invalid(
                    "expiresInMinutes must be between 60 and 1440.",
                    "expiresInMinutes",
                )
            })
        })
        .transpose()
}

fn identity_from_path(id: &str) -> AcsResult<IdentityId> {
    IdentityId::parse(id).ok_or_else(|| AcsError::not_found("Identity not found."))
}

fn wire_token(issued: IssuedToken) -> AccessToken {
    AccessToken {
        token: issued.token,
        expires_on: issued.expires_on,
    }
}

async fn create(State(state): State<AcsState>, request: Request) -> AcsResult<Response> {
    let body = signed_body(&state, request).await?;
    let request: CreateIdentityRequest = optional_json(&body)?;
    let token = match request.create_token_with_scopes {
        Some(scopes) if !scopes.is_empty() => Some(TokenRequest {
            scopes: scopes_from(&scopes)?,
            expires_in_minutes: minutes_from(request.expires_in_minutes)?,
        }),
        _ => None,
    };
    let (identity, token) = state.core.create_identity(token).await?;
    let result = CreateIdentityResult {
        identity: CommunicationIdentity {
            id: identity.id.to_string(),
        },
        access_token: token.map(wire_token),
    };
    Ok((StatusCode::CREATED, Json(result)).into_response())
}

async fn issue_token(state: AcsState, id: &str, request: Request) -> AcsResult<Json<AccessToken>> {
    let body = signed_body(&state, request).await?;
    let request: IssueTokenRequest = parse_json(&body)?;
    let token = TokenRequest {
        scopes: scopes_from(&request.scopes)?,
        expires_in_minutes: minutes_from(request.expires_in_minutes)?,
    };
    let issued = state
        .core
        .issue_token(&identity_from_path(id)?, token)
        .await?;
    Ok(Json(wire_token(issued)))
}

async fn revoke_tokens(state: AcsState, id: &str, request: Request) -> AcsResult<StatusCode> {
    signed_body(&state, request).await?;
    state.core.revoke_tokens(&identity_from_path(id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn remove(
    State(state): State<AcsState>,
    Path(id): Path<String>,
    request: Request,
) -> AcsResult<StatusCode> {
    signed_body(&state, request).await?;
    state
        .core
        .delete_identity(&identity_from_path(&id)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Teams user tokens come from Microsoft Entra ID, which a self-hosted server cannot verify.
async fn exchange_teams_token(state: AcsState, request: Request) -> AcsResult<()> {
    signed_body(&state, request).await?;
    Err(AcsError::bad_request(
        "Exchanging Microsoft Teams user tokens is not supported by this server.",
    ))
}
