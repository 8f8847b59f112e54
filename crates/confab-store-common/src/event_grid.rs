//! The outbox of ACS event subscriptions: the chat events of Event Grid
//! (`Microsoft.Communication.*`, reference/NOTES.md), thread-level (one per change) and
//! user-level (one per participant it concerns, not the one who made the change), in the Event
//! Grid or the CloudEvents 1.0 envelope.
//!
//! Like the Kaizala outbox, it runs where the event row is inserted, in the same transaction,
//! and writes one delivery row per event and matching subscription; the delivery worker posts
//! them in order per subscription and thread.
//!
//! Shared because every store must send the same events: the envelopes, their ids and
//! subjects, and who gets a user-level one.

use confab_core::event_subscriptions::{EVENT_TYPE_PREFIX as PREFIX, TOPIC};
use confab_core::ids::{ConversationId, IdentityId};
use confab_core::model::EventKind;
use confab_core::ports::webhooks::EventSchema;
use confab_core::ports::StoreResult;
use confab_core::webhooks::acs_event_id;
use serde_json::{json, Value};

use crate::event_payloads::rfc3339;
use crate::outbox::{resource_key, CachedHook, Delivery, HookCache, OutboxStore};
use crate::stored;

/// One change, before it is addressed: its thread-level type, its user-level type, the part
/// of the subject after `thread/{id}/`, and its data.
pub struct Change {
    pub thread_type: &'static str,
    pub user_type: &'static str,
    pub subject: String,
    pub data: Value,
}

/// The facts about a thread every thread event carries.
pub struct Thread {
    pub created_on_us: i64,
    pub topic: String,
    pub metadata: Value,
}

impl Thread {
    /// The facts from a conversation's stored creation time, topic and metadata column.
    pub fn from_stored(created_on_us: i64, topic: String, metadata: Option<String>) -> Self {
        Self {
            created_on_us,
            topic,
            metadata: metadata
                .and_then(|m| serde_json::from_str(&m).ok())
                .unwrap_or_else(|| json!({})),
        }
    }
}

/// `CommunicationIdentifierModel` of an identity.
pub fn identifier(id: &IdentityId) -> Value {
    match id.phone_number() {
        Some(number) => json!({ "rawId": id.as_str(), "phoneNumber": { "value": number } }),
        None => json!({ "rawId": id.as_str(), "communicationUser": { "id": id.as_str() } }),
    }
}

pub fn identifier_of(raw: Option<&str>) -> Value {
    raw.and_then(IdentityId::parse)
        .map_or(Value::Null, |id| identifier(&id))
}

pub fn time_of(us: i64) -> Value {
    stored::from_micros(us).map_or(Value::Null, |t| json!(rfc3339(t)))
}

/// A version as Event Grid shows it: a number.
pub fn version(value: &Value) -> Value {
    value
        .as_str()
        .and_then(|v| v.parse::<i64>().ok())
        .map_or(Value::Null, Value::from)
}

/// Message type as Event Grid shows it (`Text`, `Html`); `None` for system messages, which
/// have no events.
pub fn message_type(kind: Option<&str>) -> Option<&'static str> {
    match kind {
        Some("text") => Some("Text"),
        Some("html") => Some("Html"),
        _ => None,
    }
}

/// Writes the deliveries of one logged event to the ACS subscriptions it matches.
#[allow(clippy::too_many_arguments)]
pub fn acs_outbox(
    store: &impl OutboxStore,
    hooks: &HookCache,
    position: i64,
    kind: &EventKind,
    conversation: ConversationId,
    identity: Option<&IdentityId>,
    payload: &Value,
    at: i64,
) -> StoreResult<()> {
    // Only these kinds make chat events; the others cost nothing here.
    if !matches!(
        kind,
        EventKind::MessageReceived
            | EventKind::MessageEdited
            | EventKind::MessageDeleted
            | EventKind::ConversationCreated
            | EventKind::ConversationUpdated
            | EventKind::ConversationDeleted
            | EventKind::ParticipantsAdded
            | EventKind::ParticipantRemoved
    ) {
        return Ok(());
    }
    let Some(hooks) = hooks.get(&resource_key()) else {
        return Ok(());
    };
    let hooks: Vec<&CachedHook> = hooks
        .iter()
        .filter(|h| {
            h.validity_us >= at && (h.threads.is_empty() || h.threads.contains(&conversation))
        })
        .collect();
    if hooks.is_empty() {
        return Ok(());
    }
    let Some(thread) = store.thread_facts(conversation)? else {
        return Ok(());
    };
    let (changes, actor, extra_recipient) = match changes(kind, identity, payload, &thread, at) {
        Some(found) => found,
        None => return Ok(()),
    };
    let wants_user_level = hooks.iter().any(|h| {
        changes
            .iter()
            .any(|c| h.event_types.iter().any(|t| t == c.user_type))
    });
    let recipients = if wants_user_level {
        let mut list = store.participant_ids(conversation)?;
        if let Some(extra) = extra_recipient {
            if !list.contains(&extra) {
                list.push(extra);
            }
        }
        list.retain(|r| Some(r) != actor.as_ref());
        list
    } else {
        Vec::new()
    };
    let thread_id = conversation.to_acs();
    for (index, change) in changes.iter().enumerate() {
        let index = u16::try_from(index).unwrap_or(u16::MAX);
        let mut common = change.data.clone();
        common["threadId"] = json!(thread_id);
        common["createTime"] = time_of(thread.created_on_us);
        let transaction = acs_event_id(position, index, 0);
        common["transactionId"] = json!(transaction);
        let subject = format!("thread/{thread_id}/{}", change.subject);
        // The thread-level event, then one per recipient.
        let mut events = vec![(
            change.thread_type,
            transaction.clone(),
            subject.clone(),
            common.clone(),
        )];
        for (ordinal, recipient) in recipients.iter().enumerate() {
            let mut data = common.clone();
            data["recipientCommunicationIdentifier"] = identifier(recipient);
            let ordinal = u16::try_from(ordinal + 1).unwrap_or(u16::MAX);
            events.push((
                change.user_type,
                acs_event_id(position, index, ordinal),
                format!("{subject}/recipient/{}", recipient.as_str()),
                data,
            ));
        }
        for (event_type, id, subject, data) in events {
            for hook in &hooks {
                if !hook.event_types.iter().any(|t| t == event_type) {
                    continue;
                }
                let envelope = envelope(hook.schema, event_type, &id, &subject, &data, at);
                store.insert_delivery(&Delivery {
                    webhook: &hook.id,
                    event_position: position,
                    event_id: &id,
                    event_type,
                    order_key: &thread_id,
                    envelope: &envelope,
                    at,
                })?;
            }
        }
    }
    Ok(())
}

/// The Event Grid event or the CloudEvent.
pub fn envelope(
    schema: EventSchema,
    event_type: &str,
    id: &str,
    subject: &str,
    data: &Value,
    at: i64,
) -> Value {
    let time = time_of(at);
    match schema {
        EventSchema::CloudEvents => json!({
            "specversion": "1.0",
            "id": id,
            "source": TOPIC,
            "type": format!("{PREFIX}{event_type}"),
            "subject": subject,
            "time": time,
            "datacontenttype": "application/json",
            "data": data,
        }),
        // Event Grid posts an array; it is sent one event at a time.
        EventSchema::EventGrid | EventSchema::Kaizala => json!([{
            "id": id,
            "topic": TOPIC,
            "subject": subject,
            "data": data,
            "eventType": format!("{PREFIX}{event_type}"),
            "dataVersion": "1.0",
            "metadataVersion": "1",
            "eventTime": time,
        }]),
    }
}

/// The changes a logged event makes, who made it (not a recipient of its user-level events),
/// and a recipient who is no participant any more (a removed participant hears of it).
#[allow(clippy::type_complexity)]
pub fn changes(
    kind: &EventKind,
    identity: Option<&IdentityId>,
    payload: &Value,
    thread: &Thread,
    at: i64,
) -> Option<(Vec<Change>, Option<IdentityId>, Option<IdentityId>)> {
    let properties = json!({ "topic": thread.topic });
    match kind {
        EventKind::MessageReceived | EventKind::MessageEdited | EventKind::MessageDeleted => {
            let type_name = message_type(payload["type"].as_str())?;
            let sender = identity.cloned();
            let mut data = json!({
                "messageId": payload["messageId"],
                "senderCommunicationIdentifier": identifier_of(payload["sender"].as_str()),
                "senderDisplayName": payload["senderDisplayName"],
                "composeTime": if *kind == EventKind::MessageReceived {
                    time_of(at)
                } else {
                    payload["createdOn"].clone()
                },
                "type": type_name,
                "version": version(&payload["version"]),
            });
            let (thread_type, user_type) = match kind {
                EventKind::MessageReceived => {
                    data["messageBody"] = payload["content"]["text"].clone();
                    data["metadata"] = metadata_or_empty(&payload["metadata"]);
                    ("ChatMessageReceivedInThread", "ChatMessageReceived")
                }
                EventKind::MessageEdited => {
                    data["messageBody"] = payload["content"]["text"].clone();
                    data["metadata"] = metadata_or_empty(&payload["metadata"]);
                    data["editTime"] = payload["editedOn"].clone();
                    ("ChatMessageEditedInThread", "ChatMessageEdited")
                }
                _ => {
                    data["deleteTime"] = payload["deletedOn"].clone();
                    ("ChatMessageDeletedInThread", "ChatMessageDeleted")
                }
            };
            let subject = format!("sender/{}", payload["sender"].as_str().unwrap_or_default());
            Some((
                vec![Change {
                    thread_type,
                    user_type,
                    subject,
                    data,
                }],
                sender,
                None,
            ))
        }
        EventKind::ConversationCreated => {
            let creator = identity?;
            let participants: Vec<Value> = payload["members"]
                .as_array()
                .map(|list| list.iter().map(participant).collect())
                .unwrap_or_default();
            Some((
                vec![Change {
                    thread_type: "ChatThreadCreated",
                    user_type: "ChatThreadCreatedWithUser",
                    subject: format!("createdBy/{}", creator.as_str()),
                    data: json!({
                        "createdByCommunicationIdentifier": identifier(creator),
                        "properties": properties,
                        "metadata": thread.metadata,
                        "participants": participants,
                        "version": at / 1000,
                    }),
                }],
                Some(creator.clone()),
                None,
            ))
        }
        EventKind::ConversationUpdated => {
            let by = identity?;
            Some((
                vec![Change {
                    thread_type: "ChatThreadPropertiesUpdated",
                    user_type: "ChatThreadPropertiesUpdatedPerUser",
                    subject: format!("editedBy/{}", by.as_str()),
                    data: json!({
                        "editedByCommunicationIdentifier": identifier(by),
                        "editTime": time_of(at),
                        "properties": properties,
                        "metadata": thread.metadata,
                        "version": at / 1000,
                    }),
                }],
                Some(by.clone()),
                None,
            ))
        }
        EventKind::ConversationDeleted => {
            let by = payload["by"].as_str().and_then(IdentityId::parse);
            let mut data = json!({
                "deleteTime": time_of(at),
                "version": at / 1000,
            });
            if let Some(by) = &by {
                data["deletedByCommunicationIdentifier"] = identifier(by);
            }
            Some((
                vec![Change {
                    thread_type: "ChatThreadDeleted",
                    user_type: "ChatThreadWithUserDeleted",
                    subject: format!("deletedBy/{}", by.as_ref().map_or("", IdentityId::as_str)),
                    data,
                }],
                by,
                None,
            ))
        }
        EventKind::ParticipantsAdded => {
            let by = payload["by"].as_str().and_then(IdentityId::parse);
            let added: Vec<&str> = payload["added"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let changes = added
                .iter()
                .map(|id| {
                    let details = payload["members"]
                        .as_array()
                        .and_then(|list| list.iter().find(|m| m["id"].as_str() == Some(id)))
                        .cloned()
                        .unwrap_or_else(|| json!({ "id": id }));
                    Change {
                        thread_type: "ChatThreadParticipantAdded",
                        user_type: "ChatParticipantAddedToThreadWithUser",
                        subject: format!("participantAdded/{id}"),
                        data: json!({
                            "time": time_of(at),
                            "addedByCommunicationIdentifier": identifier_of(payload["by"].as_str()),
                            "participantAdded": participant(&details),
                            "version": at / 1000,
                        }),
                    }
                })
                .collect();
            Some((changes, by, None))
        }
        EventKind::ParticipantRemoved => {
            let removed = payload["removed"].as_str().and_then(IdentityId::parse)?;
            let by = payload["by"].as_str().and_then(IdentityId::parse);
            Some((
                vec![Change {
                    thread_type: "ChatThreadParticipantRemoved",
                    user_type: "ChatParticipantRemovedFromThreadWithUser",
                    subject: format!("participantRemoved/{}", removed.as_str()),
                    data: json!({
                        "time": time_of(at),
                        "removedByCommunicationIdentifier": identifier_of(payload["by"].as_str()),
                        "participantRemoved": {
                            "displayName": payload["displayName"],
                            "participantCommunicationIdentifier": identifier(&removed),
                        },
                        "version": at / 1000,
                    }),
                }],
                by,
                Some(removed),
            ))
        }
        _ => None,
    }
}

pub fn metadata_or_empty(value: &Value) -> Value {
    if value.is_object() {
        value.clone()
    } else {
        json!({})
    }
}

/// `AcsChatThreadParticipant` from a member of an event's `members` list.
pub fn participant(member: &Value) -> Value {
    json!({
        "displayName": member["displayName"],
        "participantCommunicationIdentifier": identifier_of(member["id"].as_str()),
    })
}
