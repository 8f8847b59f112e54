//! Wire models of the ACS Chat and Identity APIs, and their conversions to and from the core's.

use confab_core::ids::IdentityId;
use confab_core::model::{
    Conversation, ConversationSummary, Message, MessageType, Metadata, Participant, ReadReceipt,
    RetentionPolicy,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::api_version::ChatVersion;
use crate::error::{AcsError, AcsResult};

/// `CommunicationIdentifierModel`: in requests any one of `rawId`, `communicationUser`,
/// `phoneNumber` names the identity; in responses all that apply are set.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentifierModel {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub communication_user: Option<CommunicationUserModel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<PhoneNumberModel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub microsoft_teams_user: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub microsoft_teams_app: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct CommunicationUserModel {
    pub id: String,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct PhoneNumberModel {
    pub value: String,
}

impl IdentifierModel {
    pub fn from_identity(id: &IdentityId) -> Self {
        match id.phone_number() {
            Some(number) => IdentifierModel {
                kind: Some("phoneNumber".into()),
                raw_id: Some(id.to_string()),
                phone_number: Some(PhoneNumberModel {
                    value: number.to_owned(),
                }),
                ..Default::default()
            },
            None => IdentifierModel {
                kind: Some("communicationUser".into()),
                raw_id: Some(id.to_string()),
                communication_user: Some(CommunicationUserModel { id: id.to_string() }),
                ..Default::default()
            },
        }
    }

    /// The identity this model names, or a description of why it names none.
    pub fn to_identity(&self) -> Result<IdentityId, String> {
        if self.microsoft_teams_user.is_some() || self.microsoft_teams_app.is_some() {
            return Err("Microsoft Teams identifiers are not supported.".into());
        }
        let parsed = if let Some(raw) = &self.raw_id {
            IdentityId::parse(raw)
        } else if let Some(user) = &self.communication_user {
            IdentityId::parse(&user.id)
        } else if let Some(phone) = &self.phone_number {
            IdentityId::phone(&phone.value)
        } else {
            return Err("The identifier names no identity.".into());
        };
        parsed.ok_or_else(|| {
            "The identifier is not a valid communication user or phone number.".into()
        })
    }

    /// A display form for error targets.
    pub fn describe(&self) -> String {
        self.raw_id
            .clone()
            .or_else(|| self.communication_user.as_ref().map(|u| u.id.clone()))
            .or_else(|| self.phone_number.as_ref().map(|p| p.value.clone()))
            .unwrap_or_default()
    }
}

// ---- Identity API ----

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateIdentityRequest {
    #[serde(default)]
    pub create_token_with_scopes: Option<Vec<String>>,
    #[serde(default)]
    pub expires_in_minutes: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IssueTokenRequest {
    pub scopes: Vec<String>,
    #[serde(default)]
    pub expires_in_minutes: Option<i64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessToken {
    pub token: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_on: OffsetDateTime,
}

#[derive(Debug, Serialize)]
pub struct CommunicationIdentity {
    pub id: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateIdentityResult {
    pub identity: CommunicationIdentity,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_token: Option<AccessToken>,
}

// ---- Chat API: requests ----

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatParticipantIn {
    pub communication_identifier: IdentifierModel,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub share_history_time: Option<OffsetDateTime>,
    #[serde(default)]
    pub metadata: Option<Metadata>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateThreadRequest {
    pub topic: String,
    #[serde(default)]
    pub participants: Vec<ChatParticipantIn>,
    #[serde(default)]
    pub metadata: Option<Metadata>,
    #[serde(default)]
    pub retention_policy: Option<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateThreadRequest {
    #[serde(default)]
    pub topic: Option<String>,
    #[serde(default)]
    pub metadata: Option<Metadata>,
    /// Absent: unchanged; `null` or `{"kind":"none"}`: removed.
    #[serde(default, deserialize_with = "present")]
    pub retention_policy: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendMessageRequest {
    pub content: String,
    #[serde(default)]
    pub sender_display_name: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub metadata: Option<Metadata>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateMessageRequest {
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub metadata: Option<Metadata>,
}

#[derive(Debug, Deserialize)]
pub struct AddParticipantsRequest {
    pub participants: Vec<ChatParticipantIn>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendReadReceiptRequest {
    pub chat_message_id: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TypingRequest {
    #[serde(default)]
    pub sender_display_name: Option<String>,
}

/// Distinguishes a field sent as `null` (`Some(Value::Null)`) from one not sent (`None`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

/// Parses a `ChatRetentionPolicy`; `None` means no policy.
pub fn retention_from_wire(value: &serde_json::Value) -> AcsResult<Option<RetentionPolicy>> {
    if value.is_null() {
        return Ok(None);
    }
    let invalid = |message: &str| AcsError::invalid(message, "retentionPolicy");
    match value.get("kind").and_then(|k| k.as_str()) {
        Some(kind) if kind.eq_ignore_ascii_case("none") => Ok(None),
        Some(kind) if kind.eq_ignore_ascii_case("threadCreationDate") => {
            let days = value
                .get("deleteThreadAfterDays")
                .and_then(|d| d.as_u64())
                .and_then(|d| u32::try_from(d).ok())
                .ok_or_else(|| invalid("deleteThreadAfterDays must be a positive integer."))?;
            Ok(Some(RetentionPolicy::ThreadCreationDate {
                delete_after_days: days,
            }))
        }
        _ => Err(invalid(
            "retentionPolicy.kind must be 'threadCreationDate' or 'none'.",
        )),
    }
}

// ---- Chat API: responses ----

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatThreadProperties {
    pub id: String,
    pub topic: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_on: OffsetDateTime,
    pub created_by_communication_identifier: IdentifierModel,
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub deleted_on: Option<OffsetDateTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_policy: Option<serde_json::Value>,
}

impl ChatThreadProperties {
    pub fn new(conversation: &Conversation, version: ChatVersion) -> Self {
        let newer = version.has_metadata();
        Self {
            id: conversation.id.to_acs(),
            topic: conversation.topic.clone(),
            created_on: conversation.created_on,
            created_by_communication_identifier: IdentifierModel::from_identity(
                &conversation.created_by,
            ),
            deleted_on: conversation.deleted_on,
            metadata: newer.then(|| conversation.metadata.clone()),
            retention_policy: newer.then(|| retention_to_wire(conversation.retention)),
        }
    }
}

fn retention_to_wire(policy: Option<RetentionPolicy>) -> serde_json::Value {
    match policy {
        None => serde_json::json!({ "kind": "none" }),
        Some(RetentionPolicy::ThreadCreationDate { delete_after_days }) => serde_json::json!({
            "kind": "threadCreationDate",
            "deleteThreadAfterDays": delete_after_days,
        }),
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatThreadItem {
    pub id: String,
    pub topic: String,
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub deleted_on: Option<OffsetDateTime>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub last_message_received_on: Option<OffsetDateTime>,
}

impl From<&ConversationSummary> for ChatThreadItem {
    fn from(summary: &ConversationSummary) -> Self {
        Self {
            id: summary.id.to_acs(),
            topic: summary.topic.clone(),
            deleted_on: summary.deleted_on,
            last_message_received_on: summary.last_message_on,
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatParticipantOut {
    pub communication_identifier: IdentifierModel,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub share_history_time: Option<OffsetDateTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
}

impl ChatParticipantOut {
    pub fn new(participant: &Participant, version: ChatVersion) -> Self {
        Self {
            communication_identifier: IdentifierModel::from_identity(&participant.identity),
            display_name: participant.display_name.clone(),
            share_history_time: participant.share_history_time,
            metadata: (version.has_metadata() && !participant.metadata.is_empty())
                .then(|| participant.metadata.clone()),
        }
    }
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatMessageContent {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub participants: Option<Vec<ChatParticipantOut>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initiator_communication_identifier: Option<IdentifierModel>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatMessage {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub sequence_id: String,
    pub version: String,
    pub content: ChatMessageContent,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender_display_name: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_on: OffsetDateTime,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender_communication_identifier: Option<IdentifierModel>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub deleted_on: Option<OffsetDateTime>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub edited_on: Option<OffsetDateTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
}

impl ChatMessage {
    pub fn new(message: &Message) -> Self {
        let content = &message.content;
        let participants = matches!(
            message.kind,
            MessageType::ParticipantAdded | MessageType::ParticipantRemoved
        )
        .then(|| {
            content
                .participants
                .iter()
                .map(|p| ChatParticipantOut {
                    communication_identifier: IdentifierModel::from_identity(&p.identity),
                    display_name: p.display_name.clone(),
                    share_history_time: p.share_history_time,
                    metadata: None,
                })
                .collect()
        });
        Self {
            id: message.id.to_string(),
            kind: message.kind.as_str(),
            sequence_id: message.sequence_id.to_string(),
            version: message.version.to_string(),
            content: ChatMessageContent {
                message: content.text.clone(),
                topic: content.topic.clone(),
                participants,
                initiator_communication_identifier: content
                    .initiator
                    .as_ref()
                    .map(IdentifierModel::from_identity),
            },
            sender_display_name: message.sender_display_name.clone(),
            created_on: message.created_on,
            sender_communication_identifier: message
                .sender
                .as_ref()
                .map(IdentifierModel::from_identity),
            deleted_on: message.deleted_on,
            edited_on: message.edited_on,
            metadata: (!message.metadata.is_empty()).then(|| message.metadata.clone()),
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatMessageReadReceipt {
    pub sender_communication_identifier: IdentifierModel,
    pub chat_message_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub read_on: OffsetDateTime,
}

impl From<&ReadReceipt> for ChatMessageReadReceipt {
    fn from(receipt: &ReadReceipt) -> Self {
        Self {
            sender_communication_identifier: IdentifierModel::from_identity(&receipt.reader),
            chat_message_id: receipt.message_id.to_string(),
            read_on: receipt.read_on,
        }
    }
}

/// A page of any listing: `{"value": [...], "nextLink": "..."}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Collection<T> {
    pub value: Vec<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_link: Option<String>,
}
