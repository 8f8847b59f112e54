//! Group routes: create, list, details; members add, list, remove, change role; messages.

use axum::extract::{Path, State};
use axum::Json;
use confab_core::groups::{CreateGroup, GroupMessage};
use confab_core::ids::IdentityId;
use confab_core::model::{Audience, Conversation, ConversationKind, Role};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{KaizalaError, KzResult};
use crate::extract::{
    group_id, identity_from_text, member_id, required, Flag, KzCall, KzJson, KzState, Params, Text,
};
use crate::subgroups::by_parent;
use crate::wire::{
    group_json, member_id as wire_member_id, message_from_reference, parse_group_type, parse_role,
    reference_id, role_name, subgroup_json,
};

#[derive(Deserialize)]
pub struct CreateGroupRequest {
    name: Option<Text>,
    /// The subgroup docs' spelling of `name`.
    groupname: Option<Text>,
    welcomemessage: Option<Text>,
    members: Option<Vec<Text>>,
    grouptype: Option<Text>,
}

#[derive(Deserialize)]
pub struct MembersRequest {
    members: Option<Vec<Text>>,
}

#[derive(Deserialize)]
pub struct RoleRequest {
    role: Option<Text>,
}

#[derive(Deserialize)]
pub struct MessageRequest {
    message: Option<Text>,
    replytoreferenceid: Option<Text>,
    sendtoallsubscribers: Option<Flag>,
    subscribers: Option<Vec<Text>>,
}

/// Splits mobile numbers into identities and the entries that are not numbers.
pub(crate) fn parse_members(members: Vec<Text>) -> (Vec<IdentityId>, Vec<String>) {
    let mut valid = Vec::with_capacity(members.len());
    let mut invalid = Vec::new();
    for Text(member) in members {
        match identity_from_text(&member) {
            Some(identity) => valid.push(identity),
            None => invalid.push(member),
        }
    }
    (valid, invalid)
}

pub async fn create(
    State(state): State<KzState>,
    call: KzCall,
    KzJson(request): KzJson<CreateGroupRequest>,
) -> KzResult<Json<Value>> {
    let name = required(request.name.or(request.groupname), "name")?;
    let kind = match request.grouptype {
        None => ConversationKind::Group,
        Some(Text(text)) if text.trim().is_empty() => ConversationKind::Group,
        Some(Text(text)) => parse_group_type(&text).ok_or_else(|| {
            KaizalaError::invalid("groupType must be Group or ConnectGroup.", "groupType")
        })?,
    };
    let (members, invalid) = parse_members(request.members.unwrap_or_default());
    let conversation = state
        .core
        .create_group(
            &call.caller,
            CreateGroup {
                name,
                welcome_message: request.welcomemessage.map(|Text(t)| t),
                members,
                kind,
            },
        )
        .await?;
    Ok(Json(created_group(&conversation, &invalid)))
}

/// The answer to a group or subgroup creation; numbers that could not be parsed are listed.
pub(crate) fn created_group(conversation: &Conversation, invalid: &[String]) -> Value {
    let mut body = json!({
        "groupId": conversation.id.to_guid(),
        "groupName": conversation.topic,
        "membersAdded": invalid.is_empty(),
    });
    if !invalid.is_empty() {
        body["invalidMembers"] = json!(invalid);
    }
    body
}

pub async fn list(
    State(state): State<KzState>,
    call: KzCall,
    params: Params,
) -> KzResult<Json<Value>> {
    let detail = params.flag(&["showdetails", "showdetail"])?;
    if !params.flag(&["fetchallgroups"])? {
        let groups = state.core.list_groups(&call.caller).await?;
        let groups: Vec<Value> = groups.iter().map(|g| group_json(g, detail)).collect();
        return Ok(Json(json!({ "groups": groups })));
    }
    // fetchAllGroups: the caller's groups, then the subgroups below them that the caller is not
    // a member of (each once, without `callerRole`).
    let (groups, links) = state
        .core
        .list_groups_with_descendants(&call.caller)
        .await?;
    let mut seen: std::collections::HashSet<_> = groups.iter().map(|g| g.conversation.id).collect();
    let mut listed: Vec<Value> = groups.iter().map(|g| group_json(g, detail)).collect();
    for links in by_parent(&links).values() {
        for link in links {
            if seen.insert(link.child.id) {
                listed.push(subgroup_json(&link.child, link.child_has_subgroups, false));
            }
        }
    }
    Ok(Json(json!({ "groups": listed })))
}

pub async fn details(
    State(state): State<KzState>,
    call: KzCall,
    Path(group): Path<String>,
) -> KzResult<Json<Value>> {
    let group = state
        .core
        .get_group(&call.caller, group_id(&group)?)
        .await?;
    let detail = group_json(&group, true);
    // The docs show the details wrapped in `groups`; clients read either shape.
    let mut body = detail.clone();
    body["groups"] = json!([detail]);
    Ok(Json(body))
}

pub async fn members(
    State(state): State<KzState>,
    call: KzCall,
    Path(group): Path<String>,
) -> KzResult<Json<Value>> {
    let members = state
        .core
        .list_group_members(&call.caller, group_id(&group)?)
        .await?;
    let members: Vec<Value> = members
        .iter()
        .map(|m| {
            json!({
                "id": wire_member_id(&m.participant.identity),
                "role": role_name(m.participant.role),
                "mobileNumber": m.participant.identity.phone_number(),
                "isProvisioned": m.provisioned,
            })
        })
        .collect();
    Ok(Json(json!({ "members": members })))
}

pub async fn add_members(
    State(state): State<KzState>,
    call: KzCall,
    Path(group): Path<String>,
    KzJson(request): KzJson<MembersRequest>,
) -> KzResult<Json<Value>> {
    let id = group_id(&group)?;
    let given = request.members.unwrap_or_default();
    if given.is_empty() {
        return Err(KaizalaError::invalid(
            "members must list at least one mobile number.",
            "members",
        ));
    }
    let (members, invalid) = parse_members(given);
    if members.is_empty() {
        return Err(KaizalaError::invalid(
            format!("No valid mobile number in members: {}.", invalid.join(", ")),
            "members",
        ));
    }
    state
        .core
        .add_group_members(&call.caller, id, members)
        .await?;
    let mut body = json!({ "result": invalid.is_empty() });
    if !invalid.is_empty() {
        body["invalidMembers"] = json!(invalid);
    }
    Ok(Json(body))
}

pub async fn remove_member(
    State(state): State<KzState>,
    call: KzCall,
    Path((group, member)): Path<(String, String)>,
) -> KzResult<Json<Value>> {
    let id = group_id(&group)?;
    let who = member_id(&member)?;
    state
        .core
        .remove_group_member(&call.caller, id, &who)
        .await?;
    Ok(Json(json!({ "result": true })))
}

pub async fn set_role(
    State(state): State<KzState>,
    call: KzCall,
    Path((group, member)): Path<(String, String)>,
    KzJson(request): KzJson<RoleRequest>,
) -> KzResult<Json<Value>> {
    let id = group_id(&group)?;
    let role_text = required(request.role, "role")?;
    let role = parse_role(&role_text)
        .filter(|r| *r != Role::Subscriber)
        .ok_or_else(|| KaizalaError::invalid("role must be Admin or Member.", "role"))?;
    let who = member_id(&member)?;
    state
        .core
        .set_group_member_role(&call.caller, id, &who, role)
        .await?;
    Ok(Json(json!({ "result": true })))
}

pub async fn send_message(
    State(state): State<KzState>,
    call: KzCall,
    Path(group): Path<String>,
    KzJson(request): KzJson<MessageRequest>,
) -> KzResult<Json<Value>> {
    let id = group_id(&group)?;
    let text = match request.message {
        Some(Text(text)) => text,
        None => return Err(KaizalaError::invalid("message is required.", "message")),
    };
    let to_all = request.sendtoallsubscribers.is_some_and(|Flag(f)| f);
    let listed = request.subscribers.unwrap_or_default();
    let audience = match (to_all, listed.is_empty()) {
        (false, true) => Audience::Members,
        (true, true) => Audience::AllSubscribers,
        (true, false) => {
            return Err(KaizalaError::invalid(
                "Give either sendToAllSubscribers: true or a list of subscribers, not both.",
                "subscribers",
            ))
        }
        (false, false) => {
            let (valid, invalid) = parse_members(listed);
            if !invalid.is_empty() {
                return Err(KaizalaError::invalid(
                    format!("Not mobile numbers: {}.", invalid.join(", ")),
                    "subscribers",
                ));
            }
            Audience::Subscribers(valid)
        }
    };
    let reply_to = match request.replytoreferenceid {
        Some(Text(reference)) if !reference.trim().is_empty() => {
            Some(message_from_reference(&reference).ok_or_else(|| {
                KaizalaError::invalid(
                    "replyToReferenceId is not a message reference id.",
                    "replyToReferenceId",
                )
            })?)
        }
        _ => None,
    };
    let message = state
        .core
        .send_group_message(
            &call.caller,
            id,
            GroupMessage {
                text,
                reply_to,
                audience,
            },
        )
        .await?;
    Ok(Json(json!({ "referenceId": reference_id(message.id) })))
}
