//! The outbox of Kaizala webhooks (on a group, an action or an action package): the events an
//! event makes, their envelopes, and which subscriptions get them. Shared because every store
//! must send the same deliveries.

use confab_core::actions::{ActionBody, Answer, ResponseBody, ACTION_TYPE_KEY};
use confab_core::ids::{ConversationId, IdentityId};
use confab_core::model::EventKind;
use confab_core::ports::webhooks::WebhookObject;
use confab_core::ports::StoreResult;
use confab_core::webhooks::{
    action_event_types, event_id, kaizala_member_id, kaizala_reference_id, subscribed_as,
};
use serde_json::{json, Value};

use crate::outbox::{Delivery, HookCache, OutboxStore};

/// One webhook event an outbox entry is made of, before matching.
pub struct Outgoing {
    /// The specific event type, and the generic one it also counts as.
    pub specific: &'static str,
    pub generic: Option<&'static str>,
    pub data: Value,
}

/// The deliveries of an event to Kaizala webhooks (on its group, action or package).
#[allow(clippy::too_many_arguments)]
pub fn kaizala_outbox(
    store: &impl OutboxStore,
    hooks: &HookCache,
    position: i64,
    kind: &EventKind,
    conversation: ConversationId,
    message: Option<i64>,
    identity: Option<&IdentityId>,
    payload: &Value,
    at: i64,
) -> StoreResult<()> {
    let group = conversation.to_guid();
    let group_key = (WebhookObject::Group, group.clone());
    // Objects whose subscriptions may match, with the objectId the envelope shows.
    let mut objects: Vec<((WebhookObject, String), String)> = Vec::new();
    if hooks.contains_key(&group_key) {
        objects.push((group_key, group.clone()));
    }
    let outgoing: Vec<Outgoing> = match kind {
        EventKind::MessageReceived => {
            if objects.is_empty() || !matches!(payload["type"].as_str(), Some("text" | "html")) {
                return Ok(());
            }
            // An action's message: its `ActionCreated` event stands for it.
            if payload["metadata"].get(ACTION_TYPE_KEY).is_some() {
                return Ok(());
            }
            vec![Outgoing {
                specific: "TextMessageCreated",
                generic: None,
                data: json!({ "text": payload["content"]["text"] }),
            }]
        }
        EventKind::ActionCreated | EventKind::ActionResponse => {
            let Some(action) = message else {
                return Ok(());
            };
            let action_key = (WebhookObject::Action, action.to_string());
            let any_package = hooks
                .keys()
                .any(|(o, _)| *o == WebhookObject::ActionPackage);
            if hooks.contains_key(&action_key) {
                objects.push((action_key, kaizala_reference_id(action)));
            }
            if objects.is_empty() && !any_package {
                return Ok(());
            }
            let Some((body, package)) = action_row(store, action)? else {
                return Ok(());
            };
            if let Some(package) = package {
                let key = (WebhookObject::ActionPackage, package.to_ascii_lowercase());
                if hooks.contains_key(&key) {
                    objects.push((key, package));
                }
            }
            if objects.is_empty() {
                return Ok(());
            }
            let response = *kind == EventKind::ActionResponse;
            let (specific, generic) = action_event_types(body.type_name(), response);
            let data = if response {
                let Some(id) = payload["responseId"].as_str() else {
                    return Ok(());
                };
                response_data(store, conversation, action, &body, id, identity, payload)?
            } else {
                let mut data = action_data(conversation, action, &body);
                if specific == "AttachmentCreated" {
                    data["media"] = payload["media"].clone();
                    data["caption"] = json!(body.message.as_deref().unwrap_or(&body.title));
                }
                data
            };
            vec![Outgoing {
                specific,
                generic,
                data,
            }]
        }
        EventKind::ParticipantsAdded | EventKind::ParticipantRemoved => {
            if objects.is_empty() {
                return Ok(());
            }
            let added = *kind == EventKind::ParticipantsAdded;
            let ids: Vec<String> = if added {
                payload["added"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default()
            } else {
                payload["removed"]
                    .as_str()
                    .map(|s| vec![s.to_owned()])
                    .unwrap_or_default()
            };
            ids.iter()
                .filter_map(|id| IdentityId::parse(id))
                .map(|member| {
                    let details = payload["members"].as_array().and_then(|list| {
                        list.iter().find(|m| m["id"].as_str() == Some(member.as_str()))
                    });
                    Outgoing {
                        specific: if added { "MemberAdded" } else { "MemberRemoved" },
                        generic: None,
                        data: json!({
                            "member": member.phone_number().unwrap_or(member.as_str()),
                            "memberId": kaizala_member_id(&member),
                            "memberName": details.map_or(Value::Null, |d| d["displayName"].clone()),
                            "memberProfilePic": "",
                            "type": details.and_then(|d| d["role"].as_str()).map_or("Member", role_name),
                        }),
                    }
                })
                .collect()
        }
        EventKind::ConversationUpdated => {
            if objects.is_empty() {
                return Ok(());
            }
            let (specific, child) = if let Some(c) = payload["subGroupAdded"].as_str() {
                ("GroupAdded", c)
            } else if let Some(c) = payload["subGroupRemoved"].as_str() {
                ("GroupRemoved", c)
            } else {
                return Ok(());
            };
            let child = ConversationId::parse(child).map(ConversationId::to_guid);
            vec![Outgoing {
                specific,
                generic: None,
                data: json!({ "groupId": group, "subGroupId": child }),
            }]
        }
        _ => return Ok(()),
    };
    let from_name = match identity {
        Some(id) => store.display_name(conversation, id)?,
        None => None,
    };
    for (index, out) in outgoing.iter().enumerate() {
        let eid = event_id(position, u16::try_from(index).unwrap_or(u16::MAX));
        for (key, wire_id) in &objects {
            let Some(hooks) = hooks.get(key) else {
                continue;
            };
            for hook in hooks {
                // Expired, or its owner has left the conversation (or was never in it:
                // a package webhook hears only of its owner's groups).
                let Some(owner) = &hook.owner else {
                    continue;
                };
                if hook.validity_us < at || !store.is_participant(conversation, owner)? {
                    continue;
                }
                let Some(event_type) = subscribed_as(&hook.event_types, out.specific, out.generic)
                else {
                    continue;
                };
                let envelope = json!({
                    "objectId": wire_id,
                    "objectType": key.0.as_str(),
                    "eventType": event_type,
                    "eventId": eid,
                    "data": out.data,
                    "context": hook.context,
                    "fromUser": identity.map(|id| id.phone_number().unwrap_or(id.as_str())),
                    "fromUserId": identity.map(kaizala_member_id),
                    "fromUserName": from_name,
                    "fromUserProfilePic": "",
                });
                store.insert_delivery(&Delivery {
                    webhook: &hook.id,
                    event_position: position,
                    event_id: &eid,
                    event_type,
                    order_key: &group,
                    envelope: &envelope,
                    at,
                })?;
            }
        }
    }
    Ok(())
}

/// An action's body and package, if it exists and its body reads back.
fn action_row(
    store: &impl OutboxStore,
    action: i64,
) -> StoreResult<Option<(ActionBody, Option<String>)>> {
    let row = store.action_row(action)?;
    Ok(row.and_then(|(body, package)| {
        serde_json::from_str::<ActionBody>(&body)
            .ok()
            .map(|b| (b, package))
    }))
}

#[allow(clippy::too_many_arguments)]
fn response_data(
    store: &impl OutboxStore,
    conversation: ConversationId,
    action: i64,
    body: &ActionBody,
    response_id: &str,
    responder: Option<&IdentityId>,
    payload: &Value,
) -> StoreResult<Value> {
    let stored = store.action_response_body(action, response_id)?;
    let response: ResponseBody = stored
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default();
    let name = match responder {
        Some(id) => store.display_name(conversation, id)?,
        None => None,
    };
    let phone = responder.map(|r| r.phone_number().unwrap_or(r.as_str()).to_owned());
    let details = if body.kind == confab_core::actions::ActionKind::Job {
        json!({ "response": {
            "assignee": phone,
            "assigneeName": name,
            "assigneeProfilePic": "",
            "isCompleted": response.completed.unwrap_or(false),
        }})
    } else {
        let answers: Vec<Value> = body
            .questions
            .iter()
            .enumerate()
            .map(|(i, q)| {
                json!({
                    "title": q.title,
                    "type": serde_json::to_value(q.kind).unwrap_or(Value::Null),
                    "options": q.options.iter().map(|o| json!({ "title": o })).collect::<Vec<_>>(),
                    "isInvisible": q.invisible,
                    "answer": response.answers.get(i).map_or(Value::Null, |a| answer_value(a, &q.options)),
                })
            })
            .collect();
        json!({ "responseWithQuestions": answers })
    };
    Ok(json!({
        "actionId": kaizala_reference_id(action),
        "groupId": conversation.to_guid(),
        "responseId": response_id,
        "isUpdateResponse": payload["updated"].as_bool().unwrap_or(false),
        "responder": phone,
        "responderName": name,
        "responderProfilePic": "",
        "isAnonymous": body.anonymous || responder.is_none(),
        "responseDetails": details,
    }))
}

pub fn role_name(role: &str) -> &'static str {
    match role.to_ascii_lowercase().as_str() {
        "admin" => "Admin",
        "subscriber" => "Subscriber",
        _ => "Member",
    }
}

pub fn answer_value(answer: &Answer, options: &[String]) -> Value {
    let option = |i: &usize| options.get(*i).cloned().map_or(json!(i), Value::String);
    match answer {
        Answer::Text(t) => json!(t),
        Answer::Option(i) => option(i),
        Answer::Options(list) => Value::Array(list.iter().map(option).collect()),
        other => serde_json::to_value(other)
            .ok()
            .and_then(|v| v.as_object().and_then(|o| o.values().next().cloned()))
            .unwrap_or(Value::Null),
    }
}

pub fn action_data(conversation: ConversationId, action: i64, body: &ActionBody) -> Value {
    let questions: Vec<Value> = body
        .questions
        .iter()
        .map(|q| {
            json!({
                "title": q.title,
                "type": serde_json::to_value(q.kind).unwrap_or(Value::Null),
                "options": q.options.iter().map(|o| json!({ "title": o })).collect::<Vec<_>>(),
                "isInvisible": q.invisible,
            })
        })
        .collect();
    json!({
        "actionId": kaizala_reference_id(action),
        "groupId": conversation.to_guid(),
        "actionType": body.type_name(),
        "title": body.title,
        "text": body.message,
        "questions": questions,
        "dueDate": body.due.and_then(|d| d.format(&time::format_description::well_known::Rfc3339).ok()),
        "assignedTo": body.assignees.iter().map(|a| a.phone_number().unwrap_or(a.as_str()).to_owned()).collect::<Vec<_>>(),
        "isAnonymous": body.anonymous,
    })
}
