//! The data of logged events, as published and as their log rows keep it: what a stream, a
//! reconnecting reader and the webhook outboxes see. Shared because every store must log the
//! same bytes for the same write (message events: see [`crate::message_events`]).

use confab_core::actions::ActionBody;
use confab_core::ids::{ConversationId, IdentityId, MessageId};
use confab_core::model::{Audience, EventKind, Participant, RetentionPolicy, Role};
use confab_core::ports::ConversationUpdate;
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::message_events::MessageHints;

/// What an event's log row keeps as its payload (and whether its identity).
#[derive(Clone, Debug)]
pub enum EventRow {
    /// The event's data as published, and its identity.
    Whole,
    /// A shortened form of the data that a read makes whole again ([`lengthen`]), and the
    /// identity.
    Short(String),
    /// A message event: the message's change; the identity is the message's sender.
    Message(MessageHints),
}

impl EventRow {
    /// What the row keeps of an event with this `identity` and `data`: its identity column and
    /// its payload (a message event's row keeps no identity: the message's row has the sender).
    pub fn columns<'a>(
        &'a self,
        identity: Option<&'a IdentityId>,
        data: &'a str,
    ) -> (Option<&'a str>, &'a str) {
        match self {
            EventRow::Whole => (identity.map(IdentityId::as_str), data),
            EventRow::Short(short) => (identity.map(IdentityId::as_str), short.as_str()),
            EventRow::Message(hints) => (None, hints.logged.as_str()),
        }
    }

    /// A message event's stream hints (none for any other event).
    pub fn into_hints(self) -> Option<MessageHints> {
        match self {
            EventRow::Message(hints) => Some(hints),
            EventRow::Whole | EventRow::Short(_) => None,
        }
    }
}

/// The text of a conversationCreated event from its data without `participants`, which would
/// list again the ids of `members`: the data as published (the list put in), and its row, which
/// keeps it without (a thread created with ten ACS users: 2.5 KB → 1.7 KB, two rows to a page
/// instead of one); [`lengthen`] puts the list back on a read.
pub fn creation_event(mut short: Value) -> (String, EventRow) {
    let row = short.to_string();
    if let Some(object) = short.as_object_mut() {
        add_participants(object);
    }
    (short.to_string(), EventRow::Short(row))
}

/// Puts into a conversationCreated event's data its `participants`: the ids of its `members`,
/// in their order.
pub fn add_participants(object: &mut serde_json::Map<String, Value>) {
    let ids: Vec<Value> = object
        .get("members")
        .and_then(Value::as_array)
        .map(|members| {
            members
                .iter()
                .filter_map(|m| m.get("id").cloned())
                .collect()
        })
        .unwrap_or_default();
    object.insert("participants".into(), Value::Array(ids));
}

/// The data of a non-message event from its row's payload: what [`creation_event`] left out
/// put back. A row logged whole (any other kind, or a creation from before rows were shortened)
/// is its data.
pub fn lengthen(kind: &EventKind, payload: String) -> Result<String, serde_json::Error> {
    if *kind != EventKind::ConversationCreated {
        return Ok(payload);
    }
    let mut data: Value = serde_json::from_str(&payload)?;
    match data.as_object_mut() {
        Some(object) if !object.contains_key("participants") => {
            add_participants(object);
            Ok(data.to_string())
        }
        _ => Ok(payload),
    }
}

/// A time as event data shows it (RFC 3339, UTC).
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A message's audience as event data shows it: its kind only, so that subscribers do not
/// learn of each other (the list itself stays in `messages.audience`).
pub fn audience_name(audience: &Audience) -> &'static str {
    match audience {
        Audience::Members => "members",
        Audience::AllSubscribers => "allSubscribers",
        Audience::Subscribers(_) => "subscribers",
    }
}

/// Participants as membership events list them: enough for a stream to follow its identity's
/// role and shared history without reading the participant back.
pub fn member_details<'a>(participants: impl Iterator<Item = &'a Participant>) -> Vec<Value> {
    participants
        .map(|p| {
            json!({
                "id": p.identity.as_str(),
                "displayName": p.display_name,
                "role": p.role.as_str(),
                "shareHistoryTime": p.share_history_time.map(rfc3339),
            })
        })
        .collect()
}

/// A retention policy as event data shows it (the ACS wire shape).
pub fn retention_json(policy: RetentionPolicy) -> Value {
    match policy {
        RetentionPolicy::ThreadCreationDate { delete_after_days } => {
            json!({
                "kind": "threadCreationDate",
                "deleteThreadAfterDays": delete_after_days,
            })
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The data of each kind of event but messages' and creations'.

/// conversationUpdated: what `update` changed (`changed` names it), by `by`; `new_topic` is the
/// topic when it changed.
pub fn conversation_updated(
    id: ConversationId,
    changed: &[&str],
    new_topic: Option<&String>,
    update: &ConversationUpdate,
    by: &IdentityId,
) -> Value {
    json!({
        "conversation": id.to_acs(),
        "changed": changed,
        "topic": new_topic,
        "metadata": update.metadata,
        "retentionPolicy": update.retention.map(|r| r.map(retention_json)),
        "by": by.as_str(),
    })
}

/// conversationUpdated: a subgroup linked to (`added`) or unlinked from `parent`.
pub fn subgroup_changed(parent: ConversationId, child: ConversationId, added: bool) -> Value {
    let mut data = json!({
        "conversation": parent.to_acs(),
        "changed": ["subGroups"],
    });
    let key = if added {
        "subGroupAdded"
    } else {
        "subGroupRemoved"
    };
    data[key] = json!(child.to_acs());
    data
}

/// conversationDeleted, for `reason` (`request`, `retention`), by `by` if someone asked.
pub fn conversation_deleted(id: ConversationId, reason: &str, by: Option<&IdentityId>) -> Value {
    json!({
        "conversation": id.to_acs(),
        "reason": reason,
        "by": by.map(IdentityId::as_str),
    })
}

/// participantsAdded: who joined, who was there already (and was updated), and every
/// participant given, with their details.
pub fn participants_added(
    conversation: ConversationId,
    added: &[&Participant],
    updated: &[&Participant],
    participants: &[Participant],
    by: &IdentityId,
) -> Value {
    let ids = |list: &[&Participant]| -> Vec<String> {
        list.iter().map(|p| p.identity.to_string()).collect()
    };
    json!({
        "conversation": conversation.to_acs(),
        "added": ids(added),
        "updated": ids(updated),
        "members": member_details(participants.iter()),
        "by": by.as_str(),
    })
}

/// participantRemoved: who left (with the display name they had), removed by `by`.
pub fn participant_removed(
    conversation: ConversationId,
    removed: &IdentityId,
    display_name: Option<&str>,
    by: &IdentityId,
) -> Value {
    json!({
        "conversation": conversation.to_acs(),
        "removed": removed.as_str(),
        "displayName": display_name,
        "by": by.as_str(),
    })
}

/// participantsAdded or participantRemoved of subscribers (raw ids), by `by`.
pub fn subscribers_changed(
    conversation: ConversationId,
    subscribers: &[&str],
    by: &IdentityId,
) -> Value {
    json!({
        "conversation": conversation.to_acs(),
        "subscribers": subscribers,
        "by": by.as_str(),
    })
}

/// readReceipt: `reader` has read up to `message`.
pub fn read_receipt(
    conversation: ConversationId,
    reader: &IdentityId,
    message: MessageId,
) -> Value {
    json!({
        "conversation": conversation.to_acs(),
        "reader": reader.as_str(),
        "messageId": message.to_string(),
    })
}

/// participantRoleChanged: `identity` now has `role`, given by `by`.
pub fn role_changed(
    conversation: ConversationId,
    identity: &IdentityId,
    role: Role,
    by: &IdentityId,
) -> Value {
    json!({
        "conversation": conversation.to_acs(),
        "identity": identity.as_str(),
        "role": role.as_str(),
        "by": by.as_str(),
    })
}

/// actionCreated: the action `id` (its message's id) with `body`, carrying `media`.
pub fn action_created(
    conversation: ConversationId,
    id: MessageId,
    body: &ActionBody,
    media: &[String],
) -> Value {
    let mut payload = json!({
        "conversation": conversation.to_acs(),
        "actionId": id.to_string(),
        "actionType": body.type_name(),
        "title": body.title,
    });
    if body.kind.is_media() {
        // A media action is an attachment (Kaizala webhooks: AttachmentCreated).
        payload["isAttachment"] = json!(true);
    }
    if !media.is_empty() {
        payload["media"] = json!(media);
    }
    payload
}

/// actionResponse: the response `response_id` to `action`, new or an update; the responder
/// unless hidden.
pub fn action_response(
    conversation: ConversationId,
    action: MessageId,
    response_id: &str,
    updated: bool,
    responder: Option<&IdentityId>,
) -> Value {
    json!({
        "conversation": conversation.to_acs(),
        "actionId": action.to_string(),
        "responseId": response_id,
        "updated": updated,
        "responder": responder.map(|r| r.as_str()),
    })
}
