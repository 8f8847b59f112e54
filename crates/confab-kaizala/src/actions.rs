//! Action routes (connectors/actions*.md, action_responses.md): post an action (`POST
//! /groups/{id}/actions`: Survey, Job, Poll, Announcement, LetsMeet, the media actions Image,
//! Album, Audio, Document, Video (`{mediaResource, caption?}`, media.md), or a custom package by
//! `id`), list a group's actions (`GET …/actions?actionType&fromDate&count`), an action's
//! details (`GET …/actions/{actionId}?getDetails=true`), responses (`POST
//! …/actions/{actionId}/responses`, an update with `responseId`) and reminders (`POST
//! …/actions/{actionId}/reminders`).
//!
//! `actionId` and `referenceId` are the same GUID (the message's reference id); the plain
//! message id (the ACS message id, also in the message's `kaizalaActionId` metadata) is
//! accepted wherever an action id is.

use axum::extract::{Path, State};
use axum::Json;
use confab_core::actions::{
    date_millis, location, Action, ActionBody, ActionDetails, ActionKind, ActionResponse,
    ActionsQuery, Answer, Due, Location, Meeting, PostAction, Property, Question, QuestionType,
    RespondAction,
};
use confab_core::ids::{IdentityId, MessageId};
use confab_core::model::{within_year_range, Audience};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::error::{KaizalaError, KzResult};
use crate::extract::{group_id, Flag, KzCall, KzJson, KzState, OptionalKzJson, Params, Text};
use crate::groups::parse_members;
use crate::wire::{message_from_reference, reference_id};

#[derive(Deserialize)]
pub struct PostActionRequest {
    id: Option<Text>,
    actiontype: Option<Text>,
    actionbody: Option<Value>,
    sendtoallsubscribers: Option<Flag>,
    subscribers: Option<Vec<Text>>,
}

#[derive(Deserialize, Default)]
pub struct ResponseRequest {
    id: Option<Text>,
    actiontype: Option<Text>,
    responseid: Option<Text>,
    actionbody: Option<Value>,
}

/// A field of a (lower-cased) relaxed-JSON object; the first of `names` present and not null.
fn field<'a>(body: &'a Map<String, Value>, names: &[&str]) -> Option<&'a Value> {
    names
        .iter()
        .find_map(|n| body.get(*n))
        .filter(|v| !v.is_null())
}

fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn text_field(body: &Map<String, Value>, names: &[&str]) -> KzResult<Option<String>> {
    match field(body, names) {
        None => Ok(None),
        Some(value) => text_of(value)
            .map(Some)
            .ok_or_else(|| KaizalaError::invalid(format!("{} must be text.", names[0]), names[0])),
    }
}

fn flag_field(body: &Map<String, Value>, name: &str) -> KzResult<bool> {
    match field(body, &[name]) {
        None => Ok(false),
        Some(value) => serde_json::from_value::<Flag>(value.clone())
            .map(|Flag(f)| f)
            .map_err(|_| KaizalaError::invalid(format!("{name} must be true or false."), name)),
    }
}

fn list_field<'a>(body: &'a Map<String, Value>, name: &str) -> KzResult<&'a [Value]> {
    match field(body, &[name]) {
        None => Ok(&[]),
        Some(Value::Array(list)) => Ok(list),
        Some(_) => Err(KaizalaError::invalid(
            format!("{name} must be a list."),
            name,
        )),
    }
}

/// A due date: hours as a number (or numeric text), or a date (RFC 3339 text).
fn due_field(body: &Map<String, Value>, names: &[&str]) -> KzResult<Option<Due>> {
    let Some(value) = field(body, names) else {
        return Ok(None);
    };
    let hours = match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    if let Some(hours) = hours {
        return Ok(Some(Due::Hours(hours)));
    }
    if let Value::String(s) = value {
        if let Ok(at) = OffsetDateTime::parse(s.trim(), &Rfc3339) {
            if within_year_range(at) {
                return Ok(Some(Due::At(at)));
            }
        }
    }
    Err(KaizalaError::invalid(
        format!(
            "{} must be a number of hours or an RFC 3339 date.",
            names[0]
        ),
        names[0],
    ))
}

/// An option or choice: `{title, image?}` or plain text.
fn option_of(value: &Value) -> KzResult<(String, Option<String>)> {
    match value {
        Value::Object(map) => {
            let title = text_field(map, &["title"])?.ok_or_else(|| {
                KaizalaError::invalid("Every option needs a title.", "options.title")
            })?;
            Ok((title, text_field(map, &["image"])?))
        }
        other => text_of(other)
            .map(|t| (t, None))
            .ok_or_else(|| KaizalaError::invalid("Every option needs a title.", "options.title")),
    }
}

fn questions_of(body: &Map<String, Value>) -> KzResult<Vec<Question>> {
    list_field(body, "questions")?
        .iter()
        .map(|q| {
            let q = q.as_object().ok_or_else(|| {
                KaizalaError::invalid("Every question must be an object.", "questions")
            })?;
            let title = text_field(q, &["title"])?.unwrap_or_default();
            let type_text = text_field(q, &["type"])?.ok_or_else(|| {
                KaizalaError::invalid("Every question needs a type.", "questions.type")
            })?;
            let kind = QuestionType::parse(&type_text).ok_or_else(|| {
                KaizalaError::invalid(
                    format!(
                        "The question type {type_text:?} is not one of SingleOption, MultiOption, \
                         Text, Numeric, Location, DateTime, Image, AttachmentList."
                    ),
                    "questions.type",
                )
            })?;
            let options = list_field(q, "options")?
                .iter()
                .map(|o| option_of(o).map(|(title, _)| title))
                .collect::<KzResult<Vec<_>>>()?;
            Ok(Question {
                title,
                kind,
                options,
                invisible: flag_field(q, "isinvisible")?,
            })
        })
        .collect()
}

fn properties_of(body: &Map<String, Value>) -> KzResult<Vec<Property>> {
    list_field(body, "properties")?
        .iter()
        .map(|p| {
            let p = p.as_object().ok_or_else(|| {
                KaizalaError::invalid("Every property must be an object.", "properties")
            })?;
            let value = match field(p, &["value"]) {
                None => String::new(),
                Some(v) => text_of(v).unwrap_or_else(|| v.to_string()),
            };
            Ok(Property {
                name: text_field(p, &["name"])?.unwrap_or_default(),
                kind: text_field(p, &["type"])?.unwrap_or_else(|| "Text".into()),
                value,
            })
        })
        .collect()
}

fn texts_of(list: &[Value], name: &str) -> KzResult<Vec<String>> {
    list.iter()
        .map(|v| {
            text_of(v).ok_or_else(|| KaizalaError::invalid(format!("{name} must list text."), name))
        })
        .collect()
}

fn meeting_time(value: &Value) -> Option<OffsetDateTime> {
    let millis = date_millis(value)?;
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000).ok()
}

/// The action's body from the request.
fn parse_body(
    kind: ActionKind,
    package: Option<String>,
    raw: &Value,
    media_base: String,
) -> KzResult<PostAction> {
    let empty = Map::new();
    let body = match raw {
        Value::Object(map) => map,
        Value::Null => &empty,
        _ => {
            return Err(KaizalaError::invalid(
                "actionBody must be an object.",
                "actionBody",
            ))
        }
    };
    let mut action = ActionBody {
        kind,
        package,
        title: text_field(body, &["title"])?.unwrap_or_default(),
        message: None,
        questions: Vec::new(),
        choice_images: Vec::new(),
        anonymous: flag_field(body, "isanonymous")?,
        sender_only: flag_field(body, "issenderonly")?,
        multiple_responses: flag_field(body, "acceptmultipleresponses")?,
        due: None,
        assignees: Vec::new(),
        properties: Vec::new(),
        media: Vec::new(),
        meeting: None,
    };
    let mut due = None;
    match kind {
        ActionKind::Survey | ActionKind::Custom => {
            action.questions = questions_of(body)?;
            action.properties = properties_of(body)?;
            due = due_field(body, &["duedate", "validity", "expiryinhours"])?;
        }
        ActionKind::Job => {
            let given = texts_of(list_field(body, "assignedto")?, "assignedTo")?;
            let (valid, invalid) = parse_members(given.into_iter().map(Text).collect());
            if !invalid.is_empty() {
                return Err(KaizalaError::invalid(
                    format!("Not mobile numbers: {}.", invalid.join(", ")),
                    "assignedTo",
                ));
            }
            action.assignees = valid;
            due = due_field(body, &["duedate"])?;
        }
        ActionKind::Poll => {
            action.title = text_field(body, &["question", "title"])?.unwrap_or_default();
            let choices = list_field(body, "choices")?
                .iter()
                .map(option_of)
                .collect::<KzResult<Vec<_>>>()?;
            action.choice_images = choices.iter().map(|(_, image)| image.clone()).collect();
            action.questions = vec![Question {
                title: action.title.clone(),
                kind: QuestionType::SingleOption,
                options: choices.into_iter().map(|(title, _)| title).collect(),
                invisible: false,
            }];
            due = due_field(body, &["expiryinhours", "duedate"])?;
        }
        ActionKind::Announcement => {
            action.message = text_field(body, &["message"])?;
            action.media = texts_of(list_field(body, "mediaresources")?, "mediaResources")?;
            if action.title.trim().is_empty() {
                action.title = action.message.clone().unwrap_or_default();
            }
        }
        ActionKind::Image
        | ActionKind::Album
        | ActionKind::Audio
        | ActionKind::Document
        | ActionKind::Video => {
            action.title = text_field(body, &["caption", "title"])?.unwrap_or_default();
            let resource = match field(body, &["mediaresource"]) {
                Some(value) => text_of(value),
                // One resource given as the announcement's list.
                None => match list_field(body, "mediaresources")? {
                    [one] => text_of(one),
                    _ => None,
                },
            };
            action.media = vec![resource.ok_or_else(|| {
                KaizalaError::invalid(
                    "mediaResource (from POST /media) is required.",
                    "mediaResource",
                )
            })?];
        }
        ActionKind::LetsMeet => {
            let starting = field(body, &["startingtime"])
                .map(|v| {
                    meeting_time(v).ok_or_else(|| {
                        KaizalaError::invalid(
                            "startingTime must be a date (RFC 3339 or epoch time).",
                            "startingTime",
                        )
                    })
                })
                .transpose()?
                .ok_or_else(|| {
                    KaizalaError::invalid("startingTime is required.", "startingTime")
                })?;
            let duration = match field(body, &["durationinmins", "duration"]) {
                None => 30,
                Some(v) => v
                    .as_u64()
                    .or_else(|| text_of(v).and_then(|t| t.trim().parse().ok()))
                    .and_then(|d| u32::try_from(d).ok())
                    .ok_or_else(|| {
                        KaizalaError::invalid("duration must be a number of minutes.", "duration")
                    })?,
            };
            let place = field(body, &["place"])
                .map(|v| {
                    location(v).ok_or_else(|| {
                        KaizalaError::invalid(
                            "place must be {latitude, longitude, name} within range.",
                            "place",
                        )
                    })
                })
                .transpose()?;
            action.meeting = Some(Meeting {
                starting_time: starting,
                duration_mins: duration,
                place,
                agenda: text_field(body, &["agenda"])?,
            });
        }
    }
    Ok(PostAction {
        body: action,
        due,
        audience: Audience::Members,
        media_base,
    })
}

/// The action named by a request: `id` (a custom package) or `actionType`.
fn request_kind(
    id: Option<Text>,
    action_type: Option<Text>,
) -> KzResult<(ActionKind, Option<String>)> {
    let id = id
        .map(|Text(t)| t.trim().to_owned())
        .filter(|t| !t.is_empty());
    let action_type = action_type
        .map(|Text(t)| t.trim().to_owned())
        .filter(|t| !t.is_empty());
    match (id, action_type) {
        (Some(package), _) => Ok((ActionKind::Custom, Some(package))),
        (None, Some(name)) => match ActionKind::parse(&name) {
            Some(ActionKind::Custom) | None => Err(KaizalaError::invalid(
                format!(
                    "actionType {name:?} is not one of Survey, Job, Poll, Announcement, LetsMeet, \
                     Image, Album, Audio, Document, Video (give a custom action package by id)."
                ),
                "actionType",
            )),
            Some(kind) => Ok((kind, None)),
        },
        (None, None) => Err(KaizalaError::invalid(
            "Either id (an action package) or actionType is required.",
            "actionType",
        )),
    }
}

fn audience_of(to_all: Option<Flag>, listed: Option<Vec<Text>>) -> KzResult<Audience> {
    let to_all = to_all.is_some_and(|Flag(f)| f);
    let listed = listed.unwrap_or_default();
    match (to_all, listed.is_empty()) {
        (false, true) => Ok(Audience::Members),
        (true, true) => Ok(Audience::AllSubscribers),
        (true, false) => Err(KaizalaError::invalid(
            "Give either sendToAllSubscribers: true or a list of subscribers, not both.",
            "subscribers",
        )),
        (false, false) => {
            let (valid, invalid) = parse_members(listed);
            if !invalid.is_empty() {
                return Err(KaizalaError::invalid(
                    format!("Not mobile numbers: {}.", invalid.join(", ")),
                    "subscribers",
                ));
            }
            Ok(Audience::Subscribers(valid))
        }
    }
}

/// Where media is served: `<endpointUrl>/v1/media`.
fn media_base(state: &KzState) -> String {
    format!("{}/v1/media", state.config.endpoint_url)
}

fn action_id(text: &str) -> KzResult<MessageId> {
    message_from_reference(text)
        .ok_or_else(|| KaizalaError::not_found("The action does not exist."))
}

pub async fn post(
    State(state): State<KzState>,
    call: KzCall,
    Path(group): Path<String>,
    KzJson(request): KzJson<PostActionRequest>,
) -> KzResult<Json<Value>> {
    let id = group_id(&group)?;
    let (kind, package) = request_kind(request.id, request.actiontype)?;
    let raw = request.actionbody.unwrap_or(Value::Null);
    let mut action = parse_body(kind, package, &raw, media_base(&state))?;
    action.audience = audience_of(request.sendtoallsubscribers, request.subscribers)?;
    let action = state.core.post_action(&call.caller, id, action).await?;
    let reference = reference_id(action.id);
    Ok(Json(
        json!({ "referenceId": reference, "actionId": reference }),
    ))
}

pub async fn list(
    State(state): State<KzState>,
    call: KzCall,
    Path(group): Path<String>,
    params: Params,
) -> KzResult<Json<Value>> {
    let id = group_id(&group)?;
    let from = match params.text("fromdate") {
        None => None,
        Some(text) => {
            let value = text
                .parse::<f64>()
                .map(|n| json!(n))
                .unwrap_or_else(|_| Value::String(text.to_owned()));
            Some(meeting_time(&value).ok_or_else(|| {
                KaizalaError::invalid(
                    "fromDate must be an epoch time or an RFC 3339 date.",
                    "fromDate",
                )
            })?)
        }
    };
    let count = params
        .text("count")
        .map(|c| {
            c.parse::<i64>()
                .map_err(|_| KaizalaError::invalid("count must be a whole number.", "count"))
        })
        .transpose()?;
    let page = state
        .core
        .list_actions(
            &call.caller,
            id,
            ActionsQuery {
                kind: params.text("actiontype").map(str::to_owned),
                from,
                count,
                continuation: params.text("continuationtoken").map(str::to_owned),
            },
        )
        .await?;
    let base = media_base(&state);
    let actions: Vec<Value> = page
        .items
        .iter()
        .map(|a| action_json(a, false, &base))
        .collect();
    let mut body = json!({ "actions": actions, "hasMore": page.next.is_some() });
    if let Some(next) = page.next {
        body["continuationToken"] = json!(next);
    }
    Ok(Json(body))
}

pub async fn details(
    State(state): State<KzState>,
    call: KzCall,
    Path((group, action)): Path<(String, String)>,
    params: Params,
) -> KzResult<Json<Value>> {
    let id = group_id(&group)?;
    let action_id = action_id(&action)?;
    let with_details = params.flag(&["getdetails", "getdetail"])?;
    let details = state
        .core
        .action_details(&call.caller, id, action_id)
        .await?;
    let mut detail = action_json(&details.action, true, &media_base(&state));
    let mut body = envelope(&details.action);
    if with_details {
        if let Value::Object(map) = &mut detail {
            map.insert(
                "responses".into(),
                Value::Array(
                    details
                        .responses
                        .iter()
                        .map(|r| response_json(&details, r, &call.caller.identity))
                        .collect(),
                ),
            );
            if details.results_visible && !details.tallies.is_empty() {
                map.insert("results".into(), results_json(&details));
            }
        }
    }
    body["actionDetails"] = detail.clone();
    body["actionBody"] = detail;
    Ok(Json(body))
}

pub async fn respond(
    State(state): State<KzState>,
    call: KzCall,
    Path((group, action)): Path<(String, String)>,
    KzJson(request): KzJson<ResponseRequest>,
) -> KzResult<Json<Value>> {
    let id = group_id(&group)?;
    let action_id = action_id(&action)?;
    let empty = Map::new();
    let body = match &request.actionbody {
        Some(Value::Object(map)) => map,
        None | Some(Value::Null) => &empty,
        Some(_) => {
            return Err(KaizalaError::invalid(
                "actionBody must be an object.",
                "actionBody",
            ))
        }
    };
    let answers = match field(body, &["answers"]) {
        None => None,
        Some(Value::Array(list)) => Some(list.clone()),
        Some(_) => return Err(KaizalaError::invalid("answers must be a list.", "answers")),
    };
    let completed = match field(body, &["iscompleted"]) {
        None => None,
        Some(_) => Some(flag_field(body, "iscompleted")?),
    };
    let kind = request.id.or(request.actiontype).map(|Text(t)| t);
    let response = state
        .core
        .respond_action(
            &call.caller,
            id,
            action_id,
            RespondAction {
                response_id: request.responseid.map(|Text(t)| t),
                kind,
                answers,
                completed,
                name: text_field(body, &["responsename"])?,
                location: field(body, &["responselocation"]).cloned(),
            },
        )
        .await?;
    Ok(Json(json!({ "responseId": response.id })))
}

pub async fn remind(
    State(state): State<KzState>,
    call: KzCall,
    Path((group, action)): Path<(String, String)>,
    OptionalKzJson(_body): OptionalKzJson<Value>,
) -> KzResult<Json<Value>> {
    let id = group_id(&group)?;
    let action_id = action_id(&action)?;
    let message = state
        .core
        .remind_action(&call.caller, id, action_id)
        .await?;
    Ok(Json(json!({ "referenceId": reference_id(message.id) })))
}

fn sender_text(identity: &IdentityId) -> String {
    identity
        .phone_number()
        .map_or_else(|| identity.to_string(), str::to_owned)
}

fn rfc3339(t: OffsetDateTime) -> Value {
    t.format(&Rfc3339).map(Value::String).unwrap_or(Value::Null)
}

fn envelope(action: &Action) -> Value {
    let reference = reference_id(action.id);
    json!({
        "referenceId": reference,
        "actionId": reference,
        "actionType": action.body.type_name(),
        "sender": action.sender.as_ref().map(sender_text),
        "sentAt": rfc3339(action.created_on),
        "creationTime": action.created_on.unix_timestamp(),
    })
}

fn location_json(location: &Location) -> Value {
    json!({
        "latitude": location.latitude,
        "longitude": location.longitude,
        "name": location.name,
    })
}

fn questions_json(body: &ActionBody) -> Value {
    Value::Array(
        body.questions
            .iter()
            .map(|q| {
                let mut value = json!({
                    "title": q.title,
                    "type": q.kind.as_str(),
                    "isInvisible": q.invisible,
                });
                if !q.options.is_empty() {
                    value["options"] =
                        Value::Array(q.options.iter().map(|o| json!({ "title": o })).collect());
                }
                value
            })
            .collect(),
    )
}

/// The action's type-specific body (`detail`: everything, as the details route shows it).
fn action_body_json(action: &Action, detail: bool, media_base: &str) -> Value {
    let body = &action.body;
    let reference = reference_id(action.id);
    let due = body.due.map(rfc3339);
    let mut value = match body.kind {
        ActionKind::Survey | ActionKind::Custom => {
            let mut v = json!({
                "actionId": reference,
                "title": body.title,
                "responseCount": action.responder_count,
                "expiryDate": due,
                "isAnonymous": body.anonymous,
                "isSenderOnly": body.sender_only,
                "acceptMultipleResponses": body.multiple_responses,
            });
            if detail || body.kind == ActionKind::Custom {
                v["questions"] = questions_json(body);
            }
            if let Some(package) = &body.package {
                v["id"] = json!(package);
                v["properties"] = Value::Array(
                    body.properties
                        .iter()
                        .map(|p| json!({ "name": p.name, "type": p.kind, "value": p.value }))
                        .collect(),
                );
            }
            v
        }
        ActionKind::Job => json!({
            "actionId": reference,
            "title": body.title,
            "assigneeCount": body.assignees.len(),
            "assignedTo": body.assignees.iter().map(sender_text).collect::<Vec<_>>(),
            "responseCount": action.completed_count,
            "isCompleted": action.is_completed(),
            "status": action.is_completed(),
            "dueDate": due,
        }),
        ActionKind::Poll => {
            let options = body
                .questions
                .first()
                .map(|q| q.options.as_slice())
                .unwrap_or(&[]);
            let choices: Vec<Value> = options
                .iter()
                .enumerate()
                .map(|(i, title)| {
                    let mut choice = json!({ "title": title });
                    if let Some(Some(image)) = body.choice_images.get(i) {
                        choice["image"] = json!(image);
                    }
                    choice
                })
                .collect();
            json!({
                "actionId": reference,
                "question": body.title,
                "isSenderOnly": body.sender_only,
                "isAnonymous": body.anonymous,
                "expiryDate": due,
                "choices": choices,
                "responseCount": action.responder_count,
            })
        }
        ActionKind::Announcement => json!({
            "actionId": reference,
            "title": body.title,
            "message": body.message,
            "mediaResources": body.media,
        }),
        ActionKind::Image
        | ActionKind::Album
        | ActionKind::Audio
        | ActionKind::Document
        | ActionKind::Video => {
            let urls: Vec<String> = body
                .media
                .iter()
                .map(|id| format!("{media_base}/{id}"))
                .collect();
            json!({
                "actionId": reference,
                "caption": body.title,
                "mediaCount": urls.len(),
                "mediaUrls": urls,
            })
        }
        ActionKind::LetsMeet => {
            let meeting = body.meeting.as_ref();
            json!({
                "actionId": reference,
                "title": body.title,
                "startingTime": meeting.map(|m| rfc3339(m.starting_time)),
                "agenda": meeting.and_then(|m| m.agenda.clone()),
                "duration": meeting.map(|m| m.duration_mins),
                "isSenderOnly": body.sender_only,
                "place": meeting.and_then(|m| m.place.as_ref()).map(location_json),
                "responseCount": action.responder_count,
            })
        }
    };
    if detail {
        value["sentAt"] = rfc3339(action.created_on);
    }
    value
}

fn action_json(action: &Action, detail: bool, media_base: &str) -> Value {
    if detail {
        return action_body_json(action, true, media_base);
    }
    let mut value = envelope(action);
    value["actionBody"] = action_body_json(action, false, media_base);
    value
}

fn answer_json(question: Option<&Question>, answer: &Answer) -> Value {
    let title = |i: &usize| {
        question
            .and_then(|q| q.options.get(*i))
            .map_or(Value::Null, |t| json!(t))
    };
    match answer {
        Answer::Text(t) | Answer::Attachment(t) => json!(t),
        Answer::Option(i) => title(i),
        Answer::Options(list) => Value::Array(list.iter().map(title).collect()),
        Answer::Number(n) => json!(n),
        Answer::Location(l) => location_json(l),
        Answer::DateTime(ms) => {
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(*ms) * 1_000_000)
                .map(rfc3339)
                .unwrap_or(Value::Null)
        }
        Answer::Attachments(list) => json!(list),
        Answer::Raw(v) => v.clone(),
    }
}

fn response_json(details: &ActionDetails, response: &ActionResponse, viewer: &IdentityId) -> Value {
    let body = &details.action.body;
    let mut value = json!({
        "responseId": response.id,
        "respondedAt": rfc3339(response.created_on),
    });
    if details.named || response.responder == *viewer {
        value["responder"] = json!(sender_text(&response.responder));
    }
    if let Some(updated) = response.updated_on {
        value["updatedAt"] = rfc3339(updated);
    }
    if let Some(completed) = response.body.completed {
        value["isCompleted"] = json!(completed);
    }
    if body.kind != ActionKind::Job {
        value["answers"] = Value::Array(
            response
                .body
                .answers
                .iter()
                .enumerate()
                .map(|(i, a)| answer_json(body.questions.get(i), a))
                .collect(),
        );
    }
    if let Some(name) = &response.body.name {
        value["responseName"] = json!(name);
    }
    if let Some(location) = &response.body.location {
        value["responseLocation"] = location_json(location);
    }
    value
}

/// Option counts per question (`[{title, type, options: [{title, count}]}]`).
fn results_json(details: &ActionDetails) -> Value {
    Value::Array(
        details
            .action
            .body
            .questions
            .iter()
            .zip(&details.tallies)
            .filter(|(q, _)| !q.options.is_empty())
            .map(|(q, counts)| {
                json!({
                    "title": q.title,
                    "type": q.kind.as_str(),
                    "options": q.options.iter().zip(counts).map(|(title, count)| {
                        json!({ "title": title, "count": count })
                    }).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}
