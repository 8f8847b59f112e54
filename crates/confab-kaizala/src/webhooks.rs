//! Webhook routes (connectors/webHooks.md): `POST /webhook` (after the validationToken
//! handshake) → `{webhookId, secret}`, `GET /webhook?objectId&objectType`, `PUT /webhook/{id}`
//! (any field; `{"Active": "true"}` re-enables), `DELETE /webhook/{id}`; and the admin API's
//! delivery log: `GET /admin/webhooks/{id}/deliveries?before&limit`, `POST
//! /admin/webhooks/{id}/deliveries/{deliveryId}/redeliver`.
//!
//! `secret` (answered once, at creation) is the key of the `X-Confab-Signature` header of every
//! delivery: `sha256=<hex HMAC-SHA256 of the body>`.

use axum::extract::{Path, Request, State};
use axum::Json;
use confab_core::ids::MessageId;
use confab_core::ports::webhooks::{Webhook, WebhookObject};
use confab_core::webhooks::{delivery_view, Subscribe, WebhookChange, WebhookTarget};
use serde::Deserialize;
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::admin::signed_body;
use crate::auth::epoch_millis;
use crate::error::{KaizalaError, KzResult};
use crate::extract::{group_id, string_list, Flag, KzCall, KzJson, KzState, Params, Text};
use crate::wire::{message_from_reference, reference_id};
use crate::AdminState;

#[derive(Deserialize, Default)]
pub struct WebhookRequest {
    objectid: Option<Text>,
    objecttype: Option<Text>,
    /// A list, or one comma-separated string.
    eventtypes: Option<Value>,
    callbackurl: Option<Text>,
    callbacktoken: Option<Text>,
    callbackcontext: Option<Text>,
    validity: Option<Text>,
    active: Option<Flag>,
}

fn target(object_type: Option<&str>, object_id: Option<&str>) -> KzResult<WebhookTarget> {
    let object_type = object_type
        .ok_or_else(|| KaizalaError::invalid("objectType is required.", "objectType"))?;
    let invalid = || {
        KaizalaError::invalid(
            "objectType must be Group, Action or ActionPackage.",
            "objectType",
        )
    };
    let object = WebhookObject::parse(object_type).ok_or_else(invalid)?;
    let id = object_id
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| KaizalaError::invalid("objectId is required.", "objectId"))?;
    Ok(match object {
        WebhookObject::Group => WebhookTarget::Group(group_id(id)?),
        WebhookObject::Action => {
            WebhookTarget::Action(message_from_reference(id).ok_or_else(|| {
                KaizalaError::invalid("objectId is not an action id.", "objectId")
            })?)
        }
        WebhookObject::ActionPackage => WebhookTarget::ActionPackage(id.to_owned()),
        // ACS event subscriptions: made through the admin API only.
        WebhookObject::Resource => return Err(invalid()),
    })
}

fn event_types(value: Option<Value>) -> KzResult<Option<Vec<String>>> {
    string_list(value, "eventTypes", "event types")
}

fn validity(value: Option<Text>) -> KzResult<Option<OffsetDateTime>> {
    let Some(Text(text)) = value else {
        return Ok(None);
    };
    let bad =
        || KaizalaError::invalid("validity must be a time in epoch milliseconds.", "validity");
    let millis: i64 = text.trim().parse().map_err(|_| bad())?;
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
        .map(Some)
        .map_err(|_| bad())
}

fn text(value: Option<Text>) -> Option<String> {
    value.map(|Text(t)| t)
}

fn wire_object_id(webhook: &Webhook) -> String {
    match webhook.object {
        WebhookObject::Action => webhook
            .object_id
            .parse::<i64>()
            .map(|id| reference_id(MessageId(id)))
            .unwrap_or_else(|_| webhook.object_id.clone()),
        _ => webhook.object_id.clone(),
    }
}

fn webhook_json(webhook: &Webhook) -> Value {
    json!({
        "id": webhook.id,
        "objectId": wire_object_id(webhook),
        "objectType": webhook.object.as_str(),
        "events": webhook.event_types,
        "filters": [],
        "callbackUrl": webhook.callback_url,
        "callbackToken": webhook.callback_token,
        "callbackContext": webhook.callback_context,
        "ts": epoch_millis(webhook.created_on),
        "validity": epoch_millis(webhook.validity),
        "active": webhook.active,
        "disabledReason": webhook.disabled_reason,
    })
}

pub async fn create(
    State(state): State<KzState>,
    call: KzCall,
    KzJson(request): KzJson<WebhookRequest>,
) -> KzResult<Json<Value>> {
    let target = target(
        request.objecttype.as_ref().map(|t| t.0.as_str()),
        request.objectid.as_ref().map(|t| t.0.as_str()),
    )?;
    let event_types = event_types(request.eventtypes)?
        .ok_or_else(|| KaizalaError::invalid("eventTypes is required.", "eventTypes"))?;
    let callback_url = text(request.callbackurl)
        .filter(|u| !u.trim().is_empty())
        .ok_or_else(|| KaizalaError::invalid("callBackUrl is required.", "callBackUrl"))?;
    let webhook = state
        .core
        .subscribe_webhook(
            &call.caller,
            Subscribe {
                target,
                event_types,
                callback_url,
                callback_token: text(request.callbacktoken),
                callback_context: text(request.callbackcontext),
                validity: validity(request.validity)?,
            },
        )
        .await?;
    Ok(Json(json!({
        "webhookId": webhook.id,
        // Shown once: the key of every delivery's X-Confab-Signature.
        "secret": webhook.secret,
    })))
}

pub async fn list(
    State(state): State<KzState>,
    call: KzCall,
    params: Params,
) -> KzResult<Json<Value>> {
    let target = target(params.text("objecttype"), params.text("objectid"))?;
    let webhooks = state.core.list_webhooks(&call.caller, target).await?;
    let webhooks: Vec<Value> = webhooks.iter().map(webhook_json).collect();
    Ok(Json(json!({ "webhooks": webhooks })))
}

pub async fn update(
    State(state): State<KzState>,
    call: KzCall,
    Path(id): Path<String>,
    KzJson(request): KzJson<WebhookRequest>,
) -> KzResult<Json<Value>> {
    let target = match (&request.objecttype, &request.objectid) {
        (None, None) => None,
        (t, o) => Some(target(
            t.as_ref().map(|t| t.0.as_str()),
            o.as_ref().map(|t| t.0.as_str()),
        )?),
    };
    let change = WebhookChange {
        target,
        event_types: event_types(request.eventtypes)?,
        callback_url: text(request.callbackurl),
        callback_token: text(request.callbacktoken),
        callback_context: text(request.callbackcontext),
        validity: validity(request.validity)?,
        active: request.active.map(|Flag(f)| f),
    };
    let webhook = state
        .core
        .update_webhook(&call.caller, id.trim(), change)
        .await?;
    let mut body = webhook_json(&webhook);
    body["webhookId"] = json!(webhook.id);
    Ok(Json(body))
}

pub async fn remove(
    State(state): State<KzState>,
    call: KzCall,
    Path(id): Path<String>,
) -> KzResult<Json<Value>> {
    state.core.delete_webhook(&call.caller, id.trim()).await?;
    Ok(Json(json!({})))
}

/// `GET /admin/webhooks/{id}/deliveries?before&limit`: newest first.
pub async fn deliveries(
    State(state): State<AdminState>,
    Path(id): Path<String>,
    params: Params,
    request: Request,
) -> KzResult<Json<Value>> {
    signed_body(&state, request).await?;
    let number = |name: &str| -> KzResult<Option<i64>> {
        params
            .text(name)
            .map(|t| {
                t.parse::<i64>()
                    .map_err(|_| KaizalaError::invalid(format!("{name} must be a number."), name))
            })
            .transpose()
    };
    let before = number("before")?;
    let limit = number("limit")?.unwrap_or(100).clamp(1, 1000);
    let (webhook, list) = state
        .core
        .webhook_deliveries(&id, before, usize::try_from(limit).unwrap_or(100))
        .await?;
    let deliveries: Vec<Value> = list.iter().map(delivery_view).collect();
    Ok(Json(json!({
        "webhook": webhook_json(&webhook),
        "deliveries": deliveries,
    })))
}

/// `POST /admin/webhooks/{id}/deliveries/{deliveryId}/redeliver`: due again now.
pub async fn redeliver(
    State(state): State<AdminState>,
    Path((id, delivery)): Path<(String, String)>,
    request: Request,
) -> KzResult<Json<Value>> {
    signed_body(&state, request).await?;
    let delivery: i64 = delivery
        .trim()
        .parse()
        .map_err(|_| KaizalaError::not_found("The delivery does not exist."))?;
    let delivery = state.core.redeliver_webhook(&id, delivery).await?;
    Ok(Json(delivery_view(&delivery)))
}
