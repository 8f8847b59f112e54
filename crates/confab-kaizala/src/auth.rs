//! The login routes: `generatePin`, `loginWithPinAndApplicationId`, `accessToken`.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use confab_core::connector::PinLogin;
use serde::Deserialize;
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::error::{KaizalaError, KzResult};
use crate::extract::{header_text, identity_from_text, required, KzJson, KzState, Text};

#[derive(Deserialize)]
pub struct GeneratePinRequest {
    mobilenumber: Option<Text>,
    applicationid: Option<Text>,
}

#[derive(Deserialize)]
pub struct LoginRequest {
    mobilenumber: Option<Text>,
    applicationid: Option<Text>,
    pin: Option<Text>,
    applicationsecret: Option<Text>,
}

fn mobile_number(value: Option<Text>) -> KzResult<confab_core::ids::IdentityId> {
    let text = required(value, "mobileNumber")?;
    identity_from_text(&text)
        .filter(|id| id.phone_number().is_some())
        .ok_or_else(|| {
            KaizalaError::invalid(
                "mobileNumber must be a phone number with its country code, e.g. +14255550123.",
                "mobileNumber",
            )
        })
}

/// Epoch milliseconds, as Kaizala answers times.
pub fn epoch_millis(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

pub async fn generate_pin(
    State(state): State<KzState>,
    KzJson(request): KzJson<GeneratePinRequest>,
) -> KzResult<Json<Value>> {
    let application = required(request.applicationid, "applicationId")?;
    let identity = mobile_number(request.mobilenumber)?;
    state.core.generate_pin(&application, &identity).await?;
    Ok(Json(json!({})))
}

pub async fn login(
    State(state): State<KzState>,
    KzJson(request): KzJson<LoginRequest>,
) -> KzResult<Json<Value>> {
    let application = required(request.applicationid, "applicationId")?;
    let identity = mobile_number(request.mobilenumber)?;
    let pin = required(request.pin, "pin")?;
    let issued = state
        .core
        .login_with_pin(PinLogin {
            application,
            identity,
            pin,
            secret: request
                .applicationsecret
                .map(|Text(s)| s)
                .filter(|s| !s.trim().is_empty()),
        })
        .await?;
    Ok(Json(json!({
        "refreshToken": issued.token,
        "grantedScope": issued.permissions.join(","),
        "refreshTokenExpiry": epoch_millis(issued.expires_on),
    })))
}

pub async fn access_token(
    State(state): State<KzState>,
    headers: HeaderMap,
) -> KzResult<Json<Value>> {
    let header = |name: &str, spelled: &str| {
        header_text(&headers, name).ok_or_else(|| {
            KaizalaError::unauthenticated(format!("The {spelled} header is missing."))
        })
    };
    let application = header("applicationid", "applicationId")?;
    let secret = header("applicationsecret", "applicationSecret")?;
    let refresh_token = header("refreshtoken", "refreshToken")?;
    let access = state
        .core
        .connector_access_token(application, secret, refresh_token)
        .await?;
    Ok(Json(json!({
        "accessToken": access.access_token,
        "endpointUrl": state.config.endpoint_url,
        "accessTokenExpiry": epoch_millis(access.expires_on),
        "refreshToken": access.refresh_token.as_ref().map(|r| r.token.clone()),
        "refreshTokenExpiry": access.refresh_token.as_ref().map(|r| epoch_millis(r.expires_on)),
        "scope": access.permissions.join(","),
    })))
}
