//! The admin API of ACS event subscriptions (Event Grid / CloudEvents webhooks), HMAC-signed
//! with the access key like the Identity API, errors in the ACS shape:
//!
//! * `POST /admin/eventSubscriptions` `{name?, endpointUrl, eventDeliverySchema?,
//!   includedEventTypes?, threadIds?}` → 201, after the endpoint passed validation;
//! * `GET /admin/eventSubscriptions`, `GET|PATCH|DELETE /admin/eventSubscriptions/{id}`;
//! * `GET /admin/eventSubscriptions/{id}/deliveries?before&limit` (newest first) and
//!   `POST /admin/eventSubscriptions/{id}/deliveries/{deliveryId}/redeliver`.

use std::collections::HashMap;

use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use confab_core::event_subscriptions::{
    EventSubscriptionChange, NewEventSubscription, EVENT_TYPE_PREFIX,
};
use confab_core::ports::webhooks::{EventSchema, Webhook};
use confab_core::webhooks::delivery_view;
use serde::Deserialize;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;

use crate::error::{AcsError, AcsResult};
use crate::extract::{hmac_signed_body, parse_json, AcsState};

pub fn routes() -> Router<AcsState> {
    Router::new()
        .route("/admin/eventSubscriptions", post(create).get(list))
        .route(
            "/admin/eventSubscriptions/{id}",
            get(show).patch(update).delete(remove),
        )
        .route("/admin/eventSubscriptions/{id}/deliveries", get(deliveries))
        .route(
            "/admin/eventSubscriptions/{id}/deliveries/{delivery}/redeliver",
            post(redeliver),
        )
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct CreateRequest {
    name: Option<String>,
    endpoint_url: Option<String>,
    event_delivery_schema: Option<String>,
    included_event_types: Option<Vec<String>>,
    thread_ids: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct UpdateRequest {
    endpoint_url: Option<String>,
    included_event_types: Option<Vec<String>>,
    thread_ids: Option<Vec<String>>,
    enabled: Option<bool>,
}

fn subscription_json(s: &Webhook) -> Value {
    json!({
        "id": s.id,
        "name": s.name,
        "endpointUrl": s.callback_url,
        "eventDeliverySchema": s.schema.as_str(),
        "includedEventTypes": s
            .event_types
            .iter()
            .map(|t| format!("{EVENT_TYPE_PREFIX}{t}"))
            .collect::<Vec<_>>(),
        "threadIds": s.threads.iter().map(|t| t.to_acs()).collect::<Vec<_>>(),
        "enabled": s.active,
        "disabledReason": s.disabled_reason,
        "createdOn": s.created_on.format(&Rfc3339).unwrap_or_default(),
        "secret": s.secret,
    })
}

fn schema(text: Option<String>) -> AcsResult<Option<EventSchema>> {
    text.map(|t| {
        EventSchema::parse(&t)
            .filter(|s| *s != EventSchema::Kaizala)
            .ok_or_else(|| {
                AcsError::invalid(
                    "eventDeliverySchema must be EventGridSchema or CloudEventSchemaV1_0.",
                    "eventDeliverySchema",
                )
            })
    })
    .transpose()
}

async fn create(State(state): State<AcsState>, request: Request) -> AcsResult<Response> {
    let body = hmac_signed_body(&state, request).await?;
    let request: CreateRequest = parse_json(&body)?;
    let endpoint_url = request
        .endpoint_url
        .ok_or_else(|| AcsError::invalid("endpointUrl is required.", "endpointUrl"))?;
    let created = state
        .core
        .create_event_subscription(NewEventSubscription {
            name: request.name,
            endpoint_url,
            schema: schema(request.event_delivery_schema)?,
            event_types: request.included_event_types,
            threads: request.thread_ids,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(subscription_json(&created))).into_response())
}

async fn list(State(state): State<AcsState>, request: Request) -> AcsResult<Json<Value>> {
    hmac_signed_body(&state, request).await?;
    let list = state.core.list_event_subscriptions().await?;
    Ok(Json(
        json!({ "value": list.iter().map(subscription_json).collect::<Vec<_>>() }),
    ))
}

async fn show(
    State(state): State<AcsState>,
    Path(id): Path<String>,
    request: Request,
) -> AcsResult<Json<Value>> {
    hmac_signed_body(&state, request).await?;
    let subscription = state.core.event_subscription(&id).await?;
    Ok(Json(subscription_json(&subscription)))
}

async fn update(
    State(state): State<AcsState>,
    Path(id): Path<String>,
    request: Request,
) -> AcsResult<Json<Value>> {
    let body = hmac_signed_body(&state, request).await?;
    // An unknown id is a 404 whatever the body says.
    state.core.event_subscription(&id).await?;
    let request: UpdateRequest = parse_json(&body)?;
    let updated = state
        .core
        .update_event_subscription(
            &id,
            EventSubscriptionChange {
                endpoint_url: request.endpoint_url,
                event_types: request.included_event_types,
                threads: request.thread_ids,
                enabled: request.enabled,
            },
        )
        .await?;
    Ok(Json(subscription_json(&updated)))
}

async fn remove(
    State(state): State<AcsState>,
    Path(id): Path<String>,
    request: Request,
) -> AcsResult<StatusCode> {
    hmac_signed_body(&state, request).await?;
    state.core.delete_event_subscription(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn number(query: &HashMap<String, String>, name: &str) -> AcsResult<Option<i64>> {
    query
        .get(name)
        .map(|v| {
            v.trim()
                .parse::<i64>()
                .map_err(|_| AcsError::invalid(format!("{name} must be a number."), name))
        })
        .transpose()
}

async fn deliveries(
    State(state): State<AcsState>,
    Path(id): Path<String>,
    request: Request,
) -> AcsResult<Json<Value>> {
    let Query(query) = Query::<HashMap<String, String>>::try_from_uri(request.uri())
        .map_err(|_| AcsError::bad_request("The query string is malformed."))?;
    hmac_signed_body(&state, request).await?;
    let subscription = state.core.event_subscription(&id).await?;
    let before = number(&query, "before")?;
    let limit = number(&query, "limit")?.unwrap_or(100).clamp(1, 1000);
    let (_, list) = state
        .core
        .webhook_deliveries(
            &subscription.id,
            before,
            usize::try_from(limit).unwrap_or(100),
        )
        .await?;
    Ok(Json(json!({
        "subscription": subscription_json(&subscription),
        "deliveries": list.iter().map(delivery_view).collect::<Vec<_>>(),
    })))
}

async fn redeliver(
    State(state): State<AcsState>,
    Path((id, delivery)): Path<(String, String)>,
    request: Request,
) -> AcsResult<Json<Value>> {
    hmac_signed_body(&state, request).await?;
    let subscription = state.core.event_subscription(&id).await?;
    let delivery: i64 = delivery
        .trim()
        .parse()
        .map_err(|_| AcsError::not_found("The delivery does not exist."))?;
    let delivery = state
        .core
        .redeliver_webhook(&subscription.id, delivery)
        .await?;
    Ok(Json(delivery_view(&delivery)))
}
