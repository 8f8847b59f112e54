//! Wire models of the ACS Chat and Identity APIs, and their conversions to and from the core's.

use axum::body::Body;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use confab_core::ids::IdentityId;
use confab_core::model::{
    Conversation, ConversationSummary, Message, MessageType, Metadata, Participant, ParticipantRef,
    ReadReceipt, RetentionPolicy,
};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::api_version::ChatVersion;
use crate::error::{AcsError, AcsResult};
use crate::json_text::{push_decimal_str, push_str};

/// `CommunicationIdentifierModel` as a request carries it: any one of `rawId`,
/// `communicationUser`, `phoneNumber` names the identity. Responses write it with
/// [`Identifier`].
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentifierModel {
    // `kind` is not read: the field that is set says what the identifier is.
    #[serde(default)]
    pub raw_id: Option<String>,
    #[serde(default)]
    pub communication_user: Option<CommunicationUserModel>,
    #[serde(default)]
    pub phone_number: Option<PhoneNumberModel>,
    #[serde(default)]
    pub microsoft_teams_user: Option<serde_json::Value>,
    #[serde(default)]
    pub microsoft_teams_app: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct CommunicationUserModel {
    pub id: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct PhoneNumberModel {
    pub value: String,
}

impl IdentifierModel {
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

/// `CommunicationIdentifierModel` as a response carries it: `kind`, `rawId` and the one of
/// `communicationUser` / `phoneNumber` that applies, written straight from the identity (a page
/// of messages writes one or two per message, so no owned model is built for them).
#[derive(Clone, Copy, Debug)]
pub struct Identifier<'a>(pub &'a IdentityId);

impl Serialize for Identifier<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct CommunicationUser<'a> {
            id: &'a str,
        }
        #[derive(Serialize)]
        struct PhoneNumber<'a> {
            value: &'a str,
        }
        let raw = self.0.as_str();
        let mut model = serializer.serialize_struct("CommunicationIdentifierModel", 3)?;
        match self.0.phone_number() {
            Some(number) => {
                model.serialize_field("kind", "phoneNumber")?;
                model.serialize_field("rawId", raw)?;
                model.serialize_field("phoneNumber", &PhoneNumber { value: number })?;
            }
            None => {
                model.serialize_field("kind", "communicationUser")?;
                model.serialize_field("rawId", raw)?;
                model.serialize_field("communicationUser", &CommunicationUser { id: raw })?;
            }
        }
        model.end()
    }
}

/// `serialize_with` for an identity field written as a `CommunicationIdentifierModel`.
fn identifier<S: Serializer>(id: &IdentityId, serializer: S) -> Result<S::Ok, S::Error> {
    Identifier(id).serialize(serializer)
}

/// `serialize_with` for an RFC 3339 time: the same text as `time::serde::rfc3339`, formatted
/// into a stack buffer instead of a fresh `String` per time.
fn rfc3339<S: Serializer>(t: &OffsetDateTime, serializer: S) -> Result<S::Ok, S::Error> {
    let mut buf = [0; 40];
    let text = confab_core::model::rfc3339_text(*t, &mut buf)
        .ok_or_else(|| serde::ser::Error::custom("a time out of RFC 3339's range"))?;
    serializer.serialize_str(text)
}

/// `serialize_with` for an optional time (with `skip_serializing_if = "Option::is_none"`).
fn opt_rfc3339<S: Serializer>(
    t: &Option<OffsetDateTime>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => rfc3339(t, serializer),
        None => serializer.serialize_none(),
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
    #[serde(serialize_with = "identifier")]
    pub created_by_communication_identifier: IdentityId,
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
            created_by_communication_identifier: conversation.created_by.clone(),
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

/// `ChatParticipant`, borrowed from the participant it shows.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatParticipantOut<'a> {
    #[serde(serialize_with = "identifier")]
    pub communication_identifier: &'a IdentityId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<&'a str>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "opt_rfc3339"
    )]
    pub share_history_time: Option<OffsetDateTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<&'a Metadata>,
}

impl<'a> ChatParticipantOut<'a> {
    pub fn new(participant: &'a Participant, version: ChatVersion) -> Self {
        Self {
            communication_identifier: &participant.identity,
            display_name: participant.display_name.as_deref(),
            share_history_time: participant.share_history_time,
            metadata: (version.has_metadata() && !participant.metadata.is_empty())
                .then_some(&participant.metadata),
        }
    }

    /// A participant named in a participantAdded/Removed message (which carries no metadata).
    fn named(participant: &'a ParticipantRef) -> Self {
        Self {
            communication_identifier: &participant.identity,
            display_name: participant.display_name.as_deref(),
            share_history_time: participant.share_history_time,
            metadata: None,
        }
    }
}

/// The participants of a participantAdded/Removed message, as `ChatParticipant`s.
struct NamedParticipants<'a>(&'a [ParticipantRef]);

impl Serialize for NamedParticipants<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(ChatParticipantOut::named))
    }
}

/// `ChatMessage`, written straight from a stored message into a response buffer by hand (see
/// `json_text`): a page writes fifty of them. The rarer parts (participants of a system
/// message, metadata) go through serde into the same buffer.
#[derive(Clone, Copy, Debug)]
pub struct ChatMessage<'a>(pub &'a Message);

impl ChatMessage<'_> {
    /// Appends the message's JSON object to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) -> Result<(), String> {
        let message = self.0;
        let content = &message.content;
        out.extend_from_slice(br#"{"id":"#);
        push_decimal_str(out, message.id.0);
        out.extend_from_slice(br#","type":"#);
        push_str(out, message.kind.as_str());
        out.extend_from_slice(br#","sequenceId":"#);
        push_decimal_str(out, message.sequence_id);
        out.extend_from_slice(br#","version":"#);
        push_decimal_str(out, message.version);
        out.extend_from_slice(br#","content":{"#);
        let mut first = true;
        let mut field = |out: &mut Vec<u8>, name: &[u8]| {
            if !std::mem::take(&mut first) {
                out.push(b',');
            }
            out.extend_from_slice(name);
        };
        if let Some(text) = &content.text {
            field(out, br#""message":"#);
            push_str(out, text);
        }
        if let Some(topic) = &content.topic {
            field(out, br#""topic":"#);
            push_str(out, topic);
        }
        // Only the participant system messages show their participants.
        if matches!(
            message.kind,
            MessageType::ParticipantAdded | MessageType::ParticipantRemoved
        ) {
            field(out, br#""participants":"#);
            serde_json::to_writer(&mut *out, &NamedParticipants(&content.participants))
                .map_err(|e| format!("participants: {e}"))?;
        }
        if let Some(initiator) = &content.initiator {
            field(out, br#""initiatorCommunicationIdentifier":"#);
            write_identifier(out, initiator);
        }
        out.push(b'}');
        if let Some(name) = &message.sender_display_name {
            out.extend_from_slice(br#","senderDisplayName":"#);
            push_str(out, name);
        }
        out.extend_from_slice(br#","createdOn":"#);
        write_rfc3339(out, message.created_on)?;
        if let Some(sender) = &message.sender {
            out.extend_from_slice(br#","senderCommunicationIdentifier":"#);
            write_identifier(out, sender);
        }
        if let Some(at) = message.deleted_on {
            out.extend_from_slice(br#","deletedOn":"#);
            write_rfc3339(out, at)?;
        }
        if let Some(at) = message.edited_on {
            out.extend_from_slice(br#","editedOn":"#);
            write_rfc3339(out, at)?;
        }
        if !message.metadata.is_empty() {
            out.extend_from_slice(br#","metadata":"#);
            serde_json::to_writer(&mut *out, &message.metadata)
                .map_err(|e| format!("metadata: {e}"))?;
        }
        out.push(b'}');
        Ok(())
    }

    /// About how many bytes this message takes as JSON: its strings plus the field names, ids
    /// and times around them, a little over for typical text. A response buffer sized from it
    /// is written without growing (growing copies the whole body each time it doubles).
    pub fn size_hint(&self) -> usize {
        let message = self.0;
        // `{"kind":"communicationUser","rawId":…,"communicationUser":{"id":…}}` and its name.
        let identifier = |id: &IdentityId| 2 * id.as_str().len() + 100;
        let content = &message.content;
        let text = content.text.as_ref().map_or(0, String::len)
            + content.topic.as_ref().map_or(0, String::len)
            + message.sender_display_name.as_ref().map_or(0, String::len)
            + message
                .metadata
                .iter()
                .map(|(k, v)| k.len() + v.len() + 6)
                .sum::<usize>();
        // Field names, three ids and the creation time: ~180 bytes; an optional time ~40.
        200 + text
            + text / 8
            + message.sender.as_ref().map_or(0, identifier)
            + content.initiator.as_ref().map_or(0, identifier)
            + content
                .participants
                .iter()
                .map(|p| {
                    identifier(&p.identity) + p.display_name.as_ref().map_or(0, String::len) + 80
                })
                .sum::<usize>()
            + 64 * (usize::from(message.edited_on.is_some())
                + usize::from(message.deleted_on.is_some()))
    }

    /// The message alone, as a response.
    pub fn response(&self) -> AcsResult<Response> {
        let mut body = Vec::with_capacity(self.size_hint());
        self.write_json(&mut body).map_err(response_error)?;
        Ok(json_body(body))
    }
}

/// A page of messages, `{"value":[…],"nextLink":"…"}`, as a response. The buffer is sized for
/// the page up front (growing it would copy the whole body each time it doubles).
pub fn message_page_response(messages: &[Message], next_link: Option<&str>) -> AcsResult<Response> {
    let capacity = 32
        + next_link.map_or(0, str::len)
        + messages
            .iter()
            .map(|m| ChatMessage(m).size_hint())
            .sum::<usize>();
    let mut body = Vec::with_capacity(capacity);
    write_message_page(&mut body, messages, next_link).map_err(response_error)?;
    Ok(json_body(body))
}

fn write_message_page(
    out: &mut Vec<u8>,
    messages: &[Message],
    next_link: Option<&str>,
) -> Result<(), String> {
    out.extend_from_slice(br#"{"value":["#);
    for (i, message) in messages.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        ChatMessage(message).write_json(out)?;
    }
    out.push(b']');
    if let Some(link) = next_link {
        out.extend_from_slice(br#","nextLink":"#);
        push_str(out, link);
    }
    out.push(b'}');
    Ok(())
}

/// A `CommunicationIdentifierModel`, as [`Identifier`] serializes it.
fn write_identifier(out: &mut Vec<u8>, id: &IdentityId) {
    let raw = id.as_str();
    match id.phone_number() {
        Some(number) => {
            out.extend_from_slice(br#"{"kind":"phoneNumber","rawId":"#);
            push_str(out, raw);
            out.extend_from_slice(br#","phoneNumber":{"value":"#);
            push_str(out, number);
        }
        None => {
            out.extend_from_slice(br#"{"kind":"communicationUser","rawId":"#);
            push_str(out, raw);
            out.extend_from_slice(br#","communicationUser":{"id":"#);
            push_str(out, raw);
        }
    }
    out.extend_from_slice(b"}}");
}

/// An RFC 3339 time as a JSON string, the text `time::serde::rfc3339` writes.
fn write_rfc3339(out: &mut Vec<u8>, t: OffsetDateTime) -> Result<(), String> {
    out.push(b'"');
    t.format_into(out, &Rfc3339)
        .map_err(|e| format!("time: {e}"))?;
    out.push(b'"');
    Ok(())
}

fn response_error(reason: String) -> AcsError {
    AcsError(confab_core::Error::Internal(format!(
        "response body: {reason}"
    )))
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatMessageReadReceipt {
    #[serde(serialize_with = "identifier")]
    pub sender_communication_identifier: IdentityId,
    pub chat_message_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub read_on: OffsetDateTime,
}

impl From<&ReadReceipt> for ChatMessageReadReceipt {
    fn from(receipt: &ReadReceipt) -> Self {
        Self {
            sender_communication_identifier: receipt.reader.clone(),
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

/// A JSON body, as a response (the buffer itself, not a copy).
fn json_body(body: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use confab_core::ids::{ConversationId, MessageId};
    use confab_core::model::{Audience, MessageContent};
    use time::macros::datetime;

    use super::*;

    fn user(raw: &str) -> IdentityId {
        IdentityId::parse(raw).expect("a valid raw id")
    }

    fn page_json(messages: &[Message]) -> String {
        let mut out = Vec::new();
        write_message_page(
            &mut out,
            messages,
            Some("/chat/threads/x/messages?continuationToken=1"),
        )
        .expect("writes");
        String::from_utf8(out).expect("utf-8")
    }

    fn message_json(message: &Message) -> String {
        let mut out = Vec::new();
        ChatMessage(message).write_json(&mut out).expect("writes");
        String::from_utf8(out).expect("utf-8")
    }

    /// Every optional field set. The expected text is what the owned `ChatMessage` (built with
    /// `IdentifierModel`s and `time::serde::rfc3339`) wrote: same names, order and omissions.
    #[test]
    fn chat_message_with_every_field_keeps_its_wire_shape() {
        let message = Message {
            id: MessageId(1_795_340_334_416_001),
            conversation: ConversationId(7),
            sequence_id: 42,
            kind: MessageType::ParticipantAdded,
            content: MessageContent {
                text: Some("say \"hi\"\n\u{e9}\u{1}".to_owned()),
                topic: Some("the topic".to_owned()),
                participants: vec![
                    ParticipantRef {
                        identity: user("8:acs:res_a"),
                        display_name: Some("Ann".to_owned()),
                        share_history_time: Some(datetime!(2026-01-02 03:04:05.000006 UTC)),
                    },
                    ParticipantRef {
                        identity: user("4:+14255550123"),
                        display_name: None,
                        share_history_time: None,
                    },
                ],
                initiator: Some(user("4:+14255550124")),
            },
            sender: Some(user("8:acs:res_b")),
            sender_display_name: Some("Bob".to_owned()),
            metadata: Metadata::from([
                ("b".to_owned(), "2".to_owned()),
                ("a".to_owned(), "1".to_owned()),
            ]),
            version: 1_795_340_334_416_009,
            created_on: datetime!(2026-11-22 09:38:53.123456 UTC),
            edited_on: Some(datetime!(2026-11-22 09:38:54 UTC)),
            deleted_on: Some(datetime!(2026-11-22 09:38:55.5 UTC)),
            audience: Audience::AllSubscribers,
        };
        let expected = concat!(
            r#"{"value":[{"id":"1795340334416001","type":"participantAdded","sequenceId":"42","#,
            r#""version":"1795340334416009","content":{"message":"say \"hi\"\né\u0001","#,
            r#""topic":"the topic","participants":[{"communicationIdentifier":"#,
            r#"{"kind":"communicationUser","rawId":"8:acs:res_a","#,
            r#""communicationUser":{"id":"8:acs:res_a"}},"displayName":"Ann","#,
            r#""shareHistoryTime":"2026-01-02T03:04:05.000006Z"},"#,
            r#"{"communicationIdentifier":{"kind":"phoneNumber","rawId":"4:+14255550123","#,
            r#""phoneNumber":{"value":"+14255550123"}}}],"#,
            r#""initiatorCommunicationIdentifier":{"kind":"phoneNumber","rawId":"4:+14255550124","#,
            r#""phoneNumber":{"value":"+14255550124"}}},"senderDisplayName":"Bob","#,
            r#""createdOn":"2026-11-22T09:38:53.123456Z","senderCommunicationIdentifier":"#,
            r#"{"kind":"communicationUser","rawId":"8:acs:res_b","#,
            r#""communicationUser":{"id":"8:acs:res_b"}},"deletedOn":"2026-11-22T09:38:55.5Z","#,
            r#""editedOn":"2026-11-22T09:38:54Z","metadata":{"a":"1","b":"2"}}],"#,
            r#""nextLink":"/chat/threads/x/messages?continuationToken=1"}"#,
        );
        assert_eq!(page_json(std::slice::from_ref(&message)), expected);
        // The hint covers the message (the page adds its own frame).
        assert!(ChatMessage(&message).size_hint() >= expected.len() - 60);
    }

    /// No optional field set; a user message's participants (there are none in practice) are
    /// never shown.
    #[test]
    fn chat_message_with_no_optional_field_keeps_its_wire_shape() {
        let message = Message {
            id: MessageId(5),
            conversation: ConversationId(7),
            sequence_id: 1,
            kind: MessageType::Text,
            content: MessageContent {
                participants: vec![ParticipantRef {
                    identity: user("8:acs:res_a"),
                    display_name: None,
                    share_history_time: None,
                }],
                ..MessageContent::default()
            },
            sender: None,
            sender_display_name: None,
            metadata: Metadata::new(),
            version: 5,
            created_on: datetime!(1970-01-01 00:00:00 UTC),
            edited_on: None,
            deleted_on: None,
            audience: Audience::Members,
        };
        let single = message_json(&message);
        assert_eq!(
            single,
            r#"{"id":"5","type":"text","sequenceId":"1","version":"5","content":{},"createdOn":"1970-01-01T00:00:00Z"}"#
        );
        // An empty participant list of a participant message is shown, empty.
        let added = Message {
            kind: MessageType::ParticipantAdded,
            content: MessageContent::default(),
            ..message
        };
        assert!(message_json(&added).contains(r#""content":{"participants":[]}"#));
    }

    /// Offsets and nanoseconds come out as `time::serde::rfc3339` writes them; a time RFC 3339
    /// cannot show (a year before 0) fails the response, as it did, rather than truncating it.
    #[test]
    fn an_unformattable_time_is_an_error() {
        let at = datetime!(2026-01-01 00:00:00 +01:00);
        let ours = serde_json::to_string(&ChatMessageReadReceipt {
            sender_communication_identifier: user("8:acs:res_a"),
            chat_message_id: "1".to_owned(),
            read_on: at,
        })
        .expect("serializes");
        assert!(ours.contains(r#""readOn":"2026-01-01T00:00:00+01:00""#));
        let message_at = |t| {
            let message = Message {
                id: MessageId(5),
                conversation: ConversationId(7),
                sequence_id: 1,
                kind: MessageType::Text,
                content: MessageContent::default(),
                sender: None,
                sender_display_name: None,
                metadata: Metadata::new(),
                version: 5,
                created_on: t,
                edited_on: None,
                deleted_on: None,
                audience: Audience::Members,
            };
            ChatMessage(&message).response().map(|_| ())
        };
        assert!(message_at(datetime!(2026-01-01 00:00:00.123456789 -09:30)).is_ok());
        assert!(message_at(datetime!(-0001-01-01 00:00:00 UTC)).is_err());
    }
}
