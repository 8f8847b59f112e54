//! Subgroup routes: create a subgroup, attach existing groups, list (direct, or the whole tree
//! with `fetchAllGroups`), detach. `/subGroups` (docs) and `/subgroups` (swagger) are one path:
//! the router lower-cases literal segments.

use std::collections::{BTreeMap, HashSet};

use axum::extract::{Path, State};
use axum::Json;
use confab_core::groups::CreateGroup;
use confab_core::ids::ConversationId;
use confab_core::model::{ConversationKind, SubgroupLink};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{KaizalaError, KzResult};
use crate::extract::{group_id, required, Flag, KzCall, KzJson, KzState, Params, Text};
use crate::groups::{created_group, parse_members};
use crate::wire::{group_json, parse_group_type, subgroup_json};

#[derive(Deserialize)]
pub struct CreateSubgroupRequest {
    /// The swagger's spelling.
    name: Option<Text>,
    /// The docs' spelling.
    groupname: Option<Text>,
    welcomemessage: Option<Text>,
    members: Option<Vec<Text>>,
    grouptype: Option<Text>,
    addusertogroup: Option<Flag>,
}

#[derive(Deserialize)]
pub struct AttachRequest {
    subgroups: Option<Vec<Text>>,
}

/// `POST /groups/{id}/subGroups`: creates a group under this one; the caller is its admin.
pub async fn create(
    State(state): State<KzState>,
    call: KzCall,
    Path(group): Path<String>,
    KzJson(request): KzJson<CreateSubgroupRequest>,
) -> KzResult<Json<Value>> {
    let parent = group_id(&group)?;
    let name = required(request.name.or(request.groupname), "groupName")?;
    if request.addusertogroup.is_some_and(|Flag(add)| !add) {
        return Err(KaizalaError::invalid(
            "addUserToGroup: false is not supported: the creator is the subgroup's admin.",
            "addUserToGroup",
        ));
    }
    let kind = match request.grouptype {
        Some(Text(text)) if !text.trim().is_empty() => {
            parse_group_type(&text).ok_or_else(|| {
                KaizalaError::invalid("groupType must be Group or ConnectGroup.", "groupType")
            })?
        }
        _ => ConversationKind::Group,
    };
    let (members, invalid) = parse_members(request.members.unwrap_or_default());
    let conversation = state
        .core
        .create_subgroup(
            &call.caller,
            parent,
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

/// `PUT /groups/{id}/subGroups` `{subGroups: [ids]}`: attaches existing groups.
pub async fn attach(
    State(state): State<KzState>,
    call: KzCall,
    Path(group): Path<String>,
    KzJson(request): KzJson<AttachRequest>,
) -> KzResult<Json<Value>> {
    let parent = group_id(&group)?;
    let children = request
        .subgroups
        .unwrap_or_default()
        .into_iter()
        .map(|Text(id)| {
            ConversationId::parse(&id).ok_or_else(|| {
                KaizalaError::invalid(format!("'{id}' is not a valid group id."), "subGroups")
            })
        })
        .collect::<KzResult<Vec<_>>>()?;
    state
        .core
        .add_subgroups(&call.caller, parent, &children)
        .await?;
    Ok(Json(json!({ "result": true })))
}

/// `DELETE /groups/{id}/subGroups/{subGroupId}`: detaches a subgroup (it is not deleted).
pub async fn detach(
    State(state): State<KzState>,
    call: KzCall,
    Path((group, sub)): Path<(String, String)>,
) -> KzResult<Json<Value>> {
    let parent = group_id(&group)?;
    let child = ConversationId::parse(&sub).ok_or_else(|| {
        KaizalaError::invalid("The subgroup id is not a valid GUID.", "subGroupId")
    })?;
    state
        .core
        .remove_subgroup(&call.caller, parent, child)
        .await?;
    Ok(Json(json!({ "result": true })))
}

/// `GET /groups/{id}/subGroups[?fetchAllGroups=true]`: the group with its subgroups; with
/// `fetchAllGroups` every subgroup carries its own `subGroups`, down the whole hierarchy.
pub async fn list(
    State(state): State<KzState>,
    call: KzCall,
    Path(group): Path<String>,
    params: Params,
) -> KzResult<Json<Value>> {
    let id = group_id(&group)?;
    let all = params.flag(&["fetchallgroups"])?;
    let tree = state.core.list_subgroups(&call.caller, id, all).await?;
    let mut root = group_json(&tree.root, false);
    root["welcomeMessage"] = json!(tree
        .root
        .conversation
        .welcome_message
        .clone()
        .unwrap_or_default());
    let children = by_parent(&tree.links);
    let mut shown = HashSet::from([id]);
    root["subGroups"] = json!(subtree(id, &children, all, &mut shown));
    // The docs wrap the group in `groups`, the swagger answers it bare: answer both.
    let mut body = root.clone();
    body["groups"] = json!([root]);
    Ok(Json(body))
}

/// The links grouped by parent.
pub(crate) fn by_parent(links: &[SubgroupLink]) -> BTreeMap<ConversationId, Vec<&SubgroupLink>> {
    let mut children: BTreeMap<ConversationId, Vec<&SubgroupLink>> = BTreeMap::new();
    for link in links {
        children.entry(link.parent).or_default().push(link);
    }
    children
}

/// The subgroups of `parent`, each (when `deep`) with its own; a group met a second time is
/// marked `isDuplicate` and not expanded again. Iterative, so no hierarchy can exhaust the
/// stack.
fn subtree(
    parent: ConversationId,
    children: &BTreeMap<ConversationId, Vec<&SubgroupLink>>,
    deep: bool,
    shown: &mut HashSet<ConversationId>,
) -> Vec<Value> {
    // Builds bottom-up: a stack of (group, its JSON, its pending children).
    struct Frame<'a> {
        json: Value,
        pending: std::vec::IntoIter<&'a SubgroupLink>,
        done: Vec<Value>,
    }
    let direct = children.get(&parent).cloned().unwrap_or_default();
    let mut stack = vec![Frame {
        json: Value::Null,
        pending: direct.into_iter(),
        done: Vec::new(),
    }];
    loop {
        let Some(top) = stack.last_mut() else {
            return Vec::new();
        };
        match top.pending.next() {
            Some(link) => {
                let child = link.child.id;
                let duplicate = !shown.insert(child);
                let json = subgroup_json(&link.child, link.child_has_subgroups, duplicate);
                let below = if deep && !duplicate {
                    children.get(&child).cloned().unwrap_or_default()
                } else {
                    Vec::new()
                };
                if deep && !duplicate {
                    stack.push(Frame {
                        json,
                        pending: below.into_iter(),
                        done: Vec::new(),
                    });
                } else {
                    top.done.push(json);
                }
            }
            None => {
                let Some(mut frame) = stack.pop() else {
                    return Vec::new();
                };
                match stack.last_mut() {
                    None => return frame.done,
                    Some(parent) => {
                        frame.json["subGroups"] = Value::Array(frame.done);
                        parent.done.push(frame.json);
                    }
                }
            }
        }
    }
}
