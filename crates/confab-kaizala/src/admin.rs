//! The admin API of connector applications, HMAC-signed with the access key exactly like the
//! ACS Identity API: `POST /admin/applications` {name, scopes?} → {applicationId,
//! applicationSecret}, `GET /admin/applications`, `DELETE /admin/applications/{id}`.

use std::time::SystemTime;

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use confab_acs::declares_more_than;
use confab_core::connector::NewApplication;
use confab_core::model::Application;
use serde::Deserialize;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;

use crate::error::{KaizalaError, KzResult};
use crate::extract::{body_too_large, check_json_type, parse_body, required, string_list, Text};
use crate::AdminState;

#[derive(Deserialize)]
pub struct CreateApplicationRequest {
    name: Option<Text>,
    /// A list, or one comma-separated string.
    scopes: Option<Value>,
}

/// Checks the signature over the whole request, then that a body is JSON; answers the body.
pub(crate) async fn signed_body(state: &AdminState, request: Request) -> KzResult<Bytes> {
    if declares_more_than(request.headers(), crate::BODY_LIMIT) {
        return Err(body_too_large());
    }
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, crate::BODY_LIMIT)
        .await
        .map_err(|_| body_too_large())?;
    confab_acs::auth::verify_hmac(
        &parts,
        &body,
        &state.config.access_key,
        state.config.max_clock_skew,
        SystemTime::now(),
    )
    .map_err(|err| KaizalaError::Core(err.0))?;
    if !body.is_empty() {
        check_json_type(&parts.headers)?;
    }
    Ok(body)
}

fn scopes_from(value: Option<Value>) -> KzResult<Option<Vec<String>>> {
    string_list(value, "scopes", "permission names")
}

fn application_json(app: &Application) -> Value {
    json!({
        "applicationId": app.id,
        "name": app.name,
        "scopes": app.scopes,
        "createdOn": app.created_on.format(&Rfc3339).unwrap_or_default(),
    })
}

pub async fn create(State(state): State<AdminState>, request: Request) -> KzResult<Response> {
    let body = signed_body(&state, request).await?;
    let request: CreateApplicationRequest = parse_body(&body)?;
    let name = required(request.name, "name")?;
    let created = state
        .core
        .create_application(NewApplication {
            name,
            permissions: scopes_from(request.scopes)?,
        })
        .await?;
    let mut body = application_json(&created.application);
    body["applicationSecret"] = json!(created.secret);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

pub async fn list(State(state): State<AdminState>, request: Request) -> KzResult<Json<Value>> {
    signed_body(&state, request).await?;
    let applications = state.core.list_applications().await?;
    let applications: Vec<Value> = applications.iter().map(application_json).collect();
    Ok(Json(json!({ "applications": applications })))
}

pub async fn remove(
    State(state): State<AdminState>,
    Path(id): Path<String>,
    request: Request,
) -> KzResult<StatusCode> {
    signed_body(&state, request).await?;
    state.core.delete_application(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}
