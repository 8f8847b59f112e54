//! The one model under both faces.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ids::{ConversationId, IdentityId, MessageId};

/// A time as RFC 3339 text (what `time::serde::rfc3339` writes), formatted into `buf` rather
/// than a `String` of its own: times are written into every message and event on the wire.
/// `None` for a year outside 0..=9999, which `time` does not format.
pub fn rfc3339_text(t: OffsetDateTime, buf: &mut [u8; 40]) -> Option<&str> {
    // The longest, `YYYY-MM-DDTHH:MM:SS.nnnnnnnnn+HH:MM`, is 35 bytes. What was written is
    // measured from the slice: `format_into` answers a short count (`time` 0.3.55 leaves out
    // the fraction's digits after the first).
    let mut rest = &mut buf[..];
    t.format_into(&mut rest, &time::format_description::well_known::Rfc3339)
        .ok()?;
    let written = 40 - rest.len();
    std::str::from_utf8(buf.get(..written)?).ok()
}

/// The first and last whole seconds confab takes a time in, as Unix seconds:
/// 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z. RFC 3339 writes four-digit years, and
/// `time` formats none outside them: a time from a request outside this range (in UTC, as
/// times are kept) is refused rather than failing when it is written, or read back as none.
pub const EARLIEST_UNIX_SECOND: i64 = -62_167_219_200;
pub const LATEST_UNIX_SECOND: i64 = 253_402_300_799;

/// Whether `t`, in UTC, falls within years 0 to 9999 (see [`EARLIEST_UNIX_SECOND`]).
pub fn within_year_range(t: OffsetDateTime) -> bool {
    (EARLIEST_UNIX_SECOND..=LATEST_UNIX_SECOND).contains(&t.unix_timestamp())
}

/// Name/value pairs attached to threads, participants and messages.
pub type Metadata = BTreeMap<String, String>;

/// An identity known to this server.
#[derive(Clone, Debug, PartialEq)]
pub struct Identity {
    pub id: IdentityId,
    pub created_on: OffsetDateTime,
    /// Bumped by every revocation: a token minted under an older generation is no longer valid.
    pub token_generation: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Role {
    Admin,
    Member,
    Subscriber,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
            Role::Subscriber => "subscriber",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "admin" => Some(Role::Admin),
            "member" => Some(Role::Member),
            "subscriber" => Some(Role::Subscriber),
            _ => None,
        }
    }
}

/// What kind of conversation this is. ACS threads are `Chat`; the Kaizala face makes `Group`s
/// and `ConnectGroup`s (managed public groups). Every kind is a thread on the ACS face and a group
/// on the Kaizala face.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConversationKind {
    #[default]
    Chat,
    Group,
    ConnectGroup,
}

impl ConversationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ConversationKind::Chat => "chat",
            ConversationKind::Group => "group",
            ConversationKind::ConnectGroup => "connectGroup",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            ConversationKind::Chat,
            ConversationKind::Group,
            ConversationKind::ConnectGroup,
        ]
        .into_iter()
        .find(|k| k.as_str().eq_ignore_ascii_case(text))
    }
}

/// When a conversation deletes itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetentionPolicy {
    /// Deleted this many days after its creation.
    ThreadCreationDate { delete_after_days: u32 },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Conversation {
    pub id: ConversationId,
    pub topic: String,
    pub created_by: IdentityId,
    pub created_on: OffsetDateTime,
    pub deleted_on: Option<OffsetDateTime>,
    pub metadata: Metadata,
    pub retention: Option<RetentionPolicy>,
    /// The time of the newest message (system messages included).
    pub last_message_on: Option<OffsetDateTime>,
    pub kind: ConversationKind,
    /// Shown to new members of a Kaizala group.
    pub welcome_message: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Participant {
    pub identity: IdentityId,
    pub display_name: Option<String>,
    /// Messages created before this time are hidden from the participant. `None`: all history.
    pub share_history_time: Option<OffsetDateTime>,
    pub metadata: Metadata,
    pub role: Role,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageType {
    Text,
    Html,
    TopicUpdated,
    ParticipantAdded,
    ParticipantRemoved,
}

impl MessageType {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::Text => "text",
            MessageType::Html => "html",
            MessageType::TopicUpdated => "topicUpdated",
            MessageType::ParticipantAdded => "participantAdded",
            MessageType::ParticipantRemoved => "participantRemoved",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            MessageType::Text,
            MessageType::Html,
            MessageType::TopicUpdated,
            MessageType::ParticipantAdded,
            MessageType::ParticipantRemoved,
        ]
        .into_iter()
        .find(|t| t.as_str().eq_ignore_ascii_case(text))
    }

    pub fn is_system(self) -> bool {
        !matches!(self, MessageType::Text | MessageType::Html)
    }
}

/// What a message says. User messages carry `text`; system messages the other fields.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MessageContent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub participants: Vec<ParticipantRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initiator: Option<IdentityId>,
}

/// A participant as recorded inside a participantAdded/Removed system message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParticipantRef {
    pub identity: IdentityId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub share_history_time: Option<OffsetDateTime>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub id: MessageId,
    pub conversation: ConversationId,
    /// 1, 2, 3 … per conversation, no gaps, assigned at commit.
    pub sequence_id: i64,
    pub kind: MessageType,
    pub content: MessageContent,
    pub sender: Option<IdentityId>,
    pub sender_display_name: Option<String>,
    pub metadata: Metadata,
    /// Changes on every edit (the id-clock value of the last change).
    pub version: i64,
    pub created_on: OffsetDateTime,
    pub edited_on: Option<OffsetDateTime>,
    pub deleted_on: Option<OffsetDateTime>,
    /// Who may read it besides the conversation's members and admins (who read everything).
    pub audience: Audience,
}

/// Who a message is for. Members and admins of a conversation read every message; subscribers
/// of a public group (Kaizala ConnectGroup) read only the messages whose audience reaches them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Audience {
    /// The conversation's members and admins only (every message of a plain group or thread,
    /// system messages included).
    #[default]
    Members,
    /// The members and every subscriber, present and future.
    AllSubscribers,
    /// The members and these subscribers.
    Subscribers(Vec<IdentityId>),
}

impl Audience {
    /// Whether a subscriber reads a message with this audience.
    pub fn reaches_subscriber(&self, subscriber: &IdentityId) -> bool {
        match self {
            Audience::Members => false,
            Audience::AllSubscribers => true,
            Audience::Subscribers(list) => list.contains(subscriber),
        }
    }

    /// The audience as one subscriber may see it: a list shrinks to that subscriber, so that
    /// subscribers do not learn of each other.
    pub fn seen_by_subscriber(&self, subscriber: &IdentityId) -> Audience {
        match self {
            Audience::Subscribers(_) => Audience::Subscribers(vec![subscriber.clone()]),
            other => other.clone(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ReadReceipt {
    pub reader: IdentityId,
    pub message_id: MessageId,
    pub read_on: OffsetDateTime,
}

/// A conversation as listed for one of its participants.
#[derive(Clone, Debug, PartialEq)]
pub struct ConversationSummary {
    pub id: ConversationId,
    pub topic: String,
    pub deleted_on: Option<OffsetDateTime>,
    pub last_message_on: Option<OffsetDateTime>,
}

/// One page of a keyset-paged listing: `next` is the opaque key to continue after, if any.
#[derive(Clone, Debug, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// What happened, as recorded in the event log in the same transaction as the change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum EventKind {
    ConversationCreated,
    ConversationUpdated,
    ConversationDeleted,
    ParticipantsAdded,
    ParticipantRemoved,
    MessageReceived,
    MessageEdited,
    MessageDeleted,
    ReadReceipt,
    ParticipantRoleChanged,
    /// Ephemeral (never logged): someone is typing.
    Typing,
    /// Ephemeral control event (never logged nor sent to clients): an identity's tokens were
    /// revoked or its identity deleted; open streams re-check their tokens.
    CredentialsChanged,
    /// A Kaizala action was posted (its message also logs `MessageReceived`).
    ActionCreated,
    /// A response to an action was recorded or updated.
    ActionResponse,
}

impl EventKind {
    /// Every kind, in declaration order.
    pub const ALL: [EventKind; 14] = [
        EventKind::ConversationCreated,
        EventKind::ConversationUpdated,
        EventKind::ConversationDeleted,
        EventKind::ParticipantsAdded,
        EventKind::ParticipantRemoved,
        EventKind::MessageReceived,
        EventKind::MessageEdited,
        EventKind::MessageDeleted,
        EventKind::ReadReceipt,
        EventKind::ParticipantRoleChanged,
        EventKind::Typing,
        EventKind::CredentialsChanged,
        EventKind::ActionCreated,
        EventKind::ActionResponse,
    ];

    /// The kind's name on the wire and in the log (its serde name).
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::ConversationCreated => "conversationCreated",
            EventKind::ConversationUpdated => "conversationUpdated",
            EventKind::ConversationDeleted => "conversationDeleted",
            EventKind::ParticipantsAdded => "participantsAdded",
            EventKind::ParticipantRemoved => "participantRemoved",
            EventKind::MessageReceived => "messageReceived",
            EventKind::MessageEdited => "messageEdited",
            EventKind::MessageDeleted => "messageDeleted",
            EventKind::ReadReceipt => "readReceipt",
            EventKind::ParticipantRoleChanged => "participantRoleChanged",
            EventKind::Typing => "typing",
            EventKind::CredentialsChanged => "credentialsChanged",
            EventKind::ActionCreated => "actionCreated",
            EventKind::ActionResponse => "actionResponse",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        EventKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// A conversation as a Kaizala group, seen by one identity: with its member counts and the
/// viewer's role (`None`: the viewer is not a member).
#[derive(Clone, Debug, PartialEq)]
pub struct GroupView {
    pub conversation: Conversation,
    pub viewer_role: Option<Role>,
    pub member_count: usize,
    /// Members that are phone numbers which never logged in (no identity row yet).
    pub unprovisioned_count: usize,
    /// Live direct subgroups.
    pub subgroup_count: usize,
    /// Live direct parent groups.
    pub parent_count: usize,
}

/// One edge of the subgroup graph: `child` (live) is a subgroup of `parent`. A conversation
/// may have several parents; the graph has no cycles.
#[derive(Clone, Debug, PartialEq)]
pub struct SubgroupLink {
    pub parent: ConversationId,
    pub child: Conversation,
    /// Whether the child has live subgroups of its own.
    pub child_has_subgroups: bool,
}

/// What adding one subscriber did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubscribeOutcome {
    Added,
    /// It was a subscriber already (nothing changed).
    AlreadySubscribed,
    /// It is a member or admin of the group: members are not subscribers (nothing changed).
    IsMember,
}

/// A participant with whether its identity exists on this server (for a phone number: whether
/// it has ever logged in).
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    pub participant: Participant,
    pub provisioned: bool,
}

/// A registered connector application (Kaizala). Only a hash of the secret is kept.
#[derive(Clone, Debug, PartialEq)]
pub struct Application {
    pub id: String,
    pub name: String,
    pub secret_hash: [u8; 32],
    /// The permissions granted to tokens of this application (`groupinfo.read`, …).
    pub scopes: Vec<String>,
    pub created_on: OffsetDateTime,
}

/// A PIN sent to a phone number for one application. Only a hash of the PIN is kept.
#[derive(Clone, Debug, PartialEq)]
pub struct PinChallenge {
    pub application: String,
    pub identity: IdentityId,
    pub pin_hash: [u8; 32],
    pub expires_on: OffsetDateTime,
    pub attempts_left: u32,
}

/// A refresh token of an application for an identity. Only a hash of the token is kept.
#[derive(Clone, Debug, PartialEq)]
pub struct RefreshToken {
    pub hash: [u8; 32],
    pub application: String,
    pub identity: IdentityId,
    pub scopes: Vec<String>,
    pub created_on: OffsetDateTime,
    pub expires_on: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_text_is_the_whole_time() {
        let mut buf = [0; 40];
        let t = time::macros::datetime!(2023-11-14 22:13:20.123456 UTC);
        assert_eq!(
            rfc3339_text(t, &mut buf),
            Some("2023-11-14T22:13:20.123456Z")
        );
        let t = time::macros::datetime!(2023-11-14 22:13:20.123456789 +05:30);
        assert_eq!(
            rfc3339_text(t, &mut buf),
            Some("2023-11-14T22:13:20.123456789+05:30")
        );
        let t = time::macros::datetime!(2023-11-14 22:13:20 UTC);
        assert_eq!(rfc3339_text(t, &mut buf), Some("2023-11-14T22:13:20Z"));
    }
}
