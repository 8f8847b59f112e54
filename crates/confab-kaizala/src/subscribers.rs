//! Subscriber routes of public groups: add (`PUT …/subscribers/add`), fetch (`POST
//! …/subscribers` with `{cursor, count}`), remove (`PUT …/subscribers/remove`).

use axum::extract::{Path, State};
use axum::Json;
use confab_core::ids::IdentityId;
use confab_core::model::SubscribeOutcome;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::error::{KaizalaError, KzResult};
use crate::extract::{group_id, identity_from_text, KzCall, KzJson, KzState, OptionalKzJson, Text};
use crate::wire::member_id;

#[derive(Deserialize)]
pub struct SubscribersRequest {
    subscribers: Option<Vec<Text>>,
}

#[derive(Deserialize, Default)]
pub struct FetchRequest {
    cursor: Option<Text>,
    count: Option<Text>,
}

/// The numbers as given, each with its identity (or `None` when it is not a mobile number).
fn parse_numbers(given: Option<Vec<Text>>) -> KzResult<Vec<(String, Option<IdentityId>)>> {
    let given = given.unwrap_or_default();
    if given.is_empty() {
        return Err(KaizalaError::invalid(
            "subscribers must list at least one mobile number.",
            "subscribers",
        ));
    }
    let parsed: Vec<(String, Option<IdentityId>)> = given
        .into_iter()
        .map(|Text(text)| {
            let identity = identity_from_text(&text);
            (text, identity)
        })
        .collect();
    if parsed.iter().all(|(_, identity)| identity.is_none()) {
        let numbers: Vec<&str> = parsed.iter().map(|(text, _)| text.as_str()).collect();
        return Err(KaizalaError::invalid(
            format!(
                "No valid mobile number in subscribers: {}.",
                numbers.join(", ")
            ),
            "subscribers",
        ));
    }
    Ok(parsed)
}

fn failure(flag: &str, reason: &str) -> Value {
    let mut entry = Map::new();
    entry.insert(flag.to_owned(), Value::Bool(false));
    entry.insert("reason".to_owned(), Value::String(reason.to_owned()));
    Value::Object(entry)
}

/// `PUT /groups/{id}/subscribers/add` `{subscribers: [numbers]}` → `{result: {number: {isAdded}}}`.
pub async fn add(
    State(state): State<KzState>,
    call: KzCall,
    Path(group): Path<String>,
    KzJson(request): KzJson<SubscribersRequest>,
) -> KzResult<Json<Value>> {
    let id = group_id(&group)?;
    let parsed = parse_numbers(request.subscribers)?;
    let identities: Vec<IdentityId> = parsed.iter().filter_map(|(_, i)| i.clone()).collect();
    let outcomes = state
        .core
        .add_subscribers(&call.caller, id, identities)
        .await?;
    let mut result = Map::new();
    for (text, identity) in &parsed {
        let entry = match identity {
            None => failure("isAdded", "Not a valid mobile number."),
            Some(identity) => match outcomes.iter().find(|(i, _)| i == identity) {
                Some((_, SubscribeOutcome::Added | SubscribeOutcome::AlreadySubscribed)) => {
                    json!({ "isAdded": true })
                }
                Some((_, SubscribeOutcome::IsMember)) => failure(
                    "isAdded",
                    "The number is a member of the group: members are not subscribers.",
                ),
                None => failure("isAdded", "Not added."),
            },
        };
        result.insert(text.clone(), entry);
    }
    Ok(Json(json!({ "result": result })))
}

/// `PUT /groups/{id}/subscribers/remove` `{subscribers: [numbers]}` →
/// `{result: {number: {isRemoved}}}`.
pub async fn remove(
    State(state): State<KzState>,
    call: KzCall,
    Path(group): Path<String>,
    KzJson(request): KzJson<SubscribersRequest>,
) -> KzResult<Json<Value>> {
    let id = group_id(&group)?;
    let parsed = parse_numbers(request.subscribers)?;
    let identities: Vec<IdentityId> = parsed.iter().filter_map(|(_, i)| i.clone()).collect();
    let outcomes = state
        .core
        .remove_subscribers(&call.caller, id, identities)
        .await?;
    let mut result = Map::new();
    for (text, identity) in &parsed {
        let removed = identity
            .as_ref()
            .and_then(|identity| outcomes.iter().find(|(i, _)| i == identity))
            .is_some_and(|(_, removed)| *removed);
        let entry = match (identity, removed) {
            (None, _) => failure("isRemoved", "Not a valid mobile number."),
            (Some(_), true) => json!({ "isRemoved": true }),
            (Some(_), false) => failure("isRemoved", "Not a subscriber of the group."),
        };
        result.insert(text.clone(), entry);
    }
    Ok(Json(json!({ "result": result })))
}

/// `POST /groups/{id}/subscribers` `{cursor?, count?}` (an empty body is fine) →
/// `{subscribers: [...], cursor?}`; `count` defaults to 50 and is capped at 50.
pub async fn fetch(
    State(state): State<KzState>,
    call: KzCall,
    Path(group): Path<String>,
    OptionalKzJson(request): OptionalKzJson<FetchRequest>,
) -> KzResult<Json<Value>> {
    let id = group_id(&group)?;
    let request = request.unwrap_or_default();
    let cursor = request
        .cursor
        .map(|Text(c)| c.trim().to_owned())
        .filter(|c| !c.is_empty());
    let count = match request.count {
        None => None,
        Some(Text(text)) if text.trim().is_empty() => None,
        Some(Text(text)) => Some(
            text.trim()
                .parse::<i64>()
                .map_err(|_| KaizalaError::invalid("count must be a whole number.", "count"))?,
        ),
    };
    let page = state
        .core
        .list_subscribers(&call.caller, id, cursor, count)
        .await?;
    let subscribers: Vec<Value> = page
        .items
        .iter()
        .map(|m| {
            json!({
                "id": member_id(&m.participant.identity),
                "mobileNumber": m.participant.identity.phone_number(),
                "name": "",
                "profilePic": "",
                "isProvisioned": m.provisioned,
            })
        })
        .collect();
    let mut body = json!({ "subscribers": subscribers });
    if let Some(next) = page.next {
        body["cursor"] = json!(next);
    }
    Ok(Json(body))
}
