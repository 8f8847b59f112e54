//! Times, ids and JSON columns as the stores keep them. Shared because a database written by one
//! store must read the same through another, and because what is read back (a time's precision,
//! an empty metadata object, an audience) must not depend on the backend.

use confab_core::ids::ConversationId;
use confab_core::model::{Audience, EventKind, MessageContent, Metadata, RetentionPolicy};
use confab_core::ports::{StoreError, StoreResult};
use time::OffsetDateTime;

/// One day in microseconds.
pub const DAY_MICROS: i64 = 86_400_000_000;

// ---------------------------------------------------------------------------------------------
// Times: integer unix microseconds.

/// The time in microseconds, rounded down.
pub fn micros(t: OffsetDateTime) -> i64 {
    let us = t.unix_timestamp_nanos().div_euclid(1000);
    i64::try_from(us).unwrap_or(if us < 0 { i64::MIN } else { i64::MAX })
}

/// The time in microseconds, rounded up: for `column >= t` bounds, so that a stored value
/// (always whole microseconds) passes exactly when the full-precision time would.
pub fn micros_ceil(t: OffsetDateTime) -> i64 {
    let us = (t.unix_timestamp_nanos() + 999).div_euclid(1000);
    i64::try_from(us).unwrap_or(if us < 0 { i64::MIN } else { i64::MAX })
}

/// A stored time read back; `None` out of range.
pub fn from_micros(us: i64) -> Option<OffsetDateTime> {
    // Whole seconds and the microseconds past them, in i64: the i128 arithmetic of
    // `from_unix_timestamp_nanos` was a fifth of decoding a time.
    let micros = u32::try_from(us.rem_euclid(1_000_000)).ok()?;
    OffsetDateTime::from_unix_timestamp(us.div_euclid(1_000_000))
        .ok()?
        .replace_microsecond(micros)
        .ok()
}

/// A time truncated to what the database keeps, with its microseconds: every time the store
/// hands out is one it can read back unchanged.
pub fn truncate(t: OffsetDateTime) -> StoreResult<(OffsetDateTime, i64)> {
    let us = micros(t);
    let exact = from_micros(us)
        .ok_or_else(|| StoreError::Unavailable(format!("time out of range: {t}")))?;
    Ok((exact, us))
}

// ---------------------------------------------------------------------------------------------
// Ids and JSON columns.

/// A conversation id as stored: 16 bytes big-endian, so byte order is numeric order.
pub fn conv_key(id: ConversationId) -> [u8; 16] {
    id.0.to_be_bytes()
}

/// A conversation id read back from its [`conv_key`].
pub fn conversation_from_key(key: [u8; 16]) -> ConversationId {
    ConversationId(u128::from_be_bytes(key))
}

/// Metadata as stored: a JSON object, NULL when empty (most messages carry none).
pub fn encode_metadata(metadata: &Metadata) -> StoreResult<Option<String>> {
    if metadata.is_empty() {
        return Ok(None);
    }
    serde_json::to_string(metadata)
        .map(Some)
        .map_err(|e| StoreError::Unavailable(format!("metadata: {e}")))
}

/// A metadata column read back: NULL when empty, else a JSON object.
pub fn decode_metadata(text: Option<&str>) -> Result<Metadata, serde_json::Error> {
    text.map_or_else(|| Ok(Metadata::new()), serde_json::from_str)
}

/// A message's content as stored: its JSON.
pub fn encode_content(content: &MessageContent) -> StoreResult<String> {
    serde_json::to_string(content).map_err(|e| StoreError::Unavailable(format!("content: {e}")))
}

/// A message's content read back from what [`encode_content`] wrote.
pub fn decode_content(text: &str) -> Result<MessageContent, serde_json::Error> {
    match plain_text(text) {
        Some(plain) => Ok(MessageContent {
            text: Some(plain.to_owned()),
            ..MessageContent::default()
        }),
        None => serde_json::from_str(text),
    }
}

/// The text of content stored as `{"text":"..."}` with nothing in the text to unescape — what
/// `encode_content` writes for most user messages — read without the JSON parser, which took
/// a fifth of the decoding of a page of messages. Anything else is left to the parser.
pub fn plain_text(stored: &str) -> Option<&str> {
    let text = stored.strip_prefix(r#"{"text":""#)?.strip_suffix(r#""}"#)?;
    // A `"` or `\` inside would be (part of) an escape, or the end of the string; a control
    // character is not JSON at all (the parser rejects it, and so must this).
    (!text.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20)).then_some(text)
}

/// The `message_audience` identity that stands for every subscriber (no raw id is `*`).
pub const ALL_SUBSCRIBERS: &str = "*";

/// A message's audience as stored in `messages.audience`: NULL for the members, `*` for every
/// subscriber, or a JSON array of raw ids.
pub fn encode_audience(audience: &Audience) -> StoreResult<Option<String>> {
    match audience {
        Audience::Members => Ok(None),
        Audience::AllSubscribers => Ok(Some(ALL_SUBSCRIBERS.to_owned())),
        Audience::Subscribers(list) => serde_json::to_string(list)
            .map(Some)
            .map_err(|e| StoreError::Unavailable(format!("audience: {e}"))),
    }
}

/// `messages.audience` read back: NULL for the members, `*` for every subscriber, or a JSON
/// array of raw ids.
pub fn decode_audience(text: Option<&str>) -> Result<Audience, serde_json::Error> {
    match text {
        None => Ok(Audience::Members),
        Some(ALL_SUBSCRIBERS) => Ok(Audience::AllSubscribers),
        Some(list) => serde_json::from_str(list).map(Audience::Subscribers),
    }
}

/// A value of a JSON column (an action's body, a response's), as stored; `what` names it in
/// the error.
pub fn encode_json<T: serde::Serialize + ?Sized>(value: &T, what: &str) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Unavailable(format!("{what}: {e}")))
}

/// A retention policy as stored: its days, NULL without one.
pub fn retention_days(retention: Option<RetentionPolicy>) -> Option<u32> {
    retention.map(|RetentionPolicy::ThreadCreationDate { delete_after_days }| delete_after_days)
}

/// A retention policy read back from [`retention_days`].
pub fn retention_policy(days: Option<u32>) -> Option<RetentionPolicy> {
    days.map(|delete_after_days| RetentionPolicy::ThreadCreationDate { delete_after_days })
}

/// When a conversation created at `created_on` expires under `days` of retention.
pub fn expires_on(created_on: i64, days: Option<u32>) -> Option<i64> {
    days.map(|days| created_on.saturating_add(i64::from(days).saturating_mul(DAY_MICROS)))
}

/// The event kind as written in `events.kind`: its serde name.
pub fn event_kind_name(kind: &EventKind) -> &'static str {
    kind.name()
}

/// Permission lists as stored: comma-separated.
pub fn join_scopes(scopes: &[String]) -> String {
    scopes.join(",")
}

/// A permission list read back from what [`join_scopes`] wrote.
pub fn split_scopes(text: String) -> Vec<String> {
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A webhook subscription's event types, as stored: a JSON array.
pub fn event_types_text(types: &[String]) -> StoreResult<String> {
    serde_json::to_string(types).map_err(|e| StoreError::Unavailable(e.to_string()))
}

/// The event types of a subscription read back from [`event_types_text`].
pub fn parse_event_types(text: &str) -> Option<Vec<String>> {
    serde_json::from_str(text).ok()
}

/// The JSON array of a webhook subscription's threads, as stored.
pub fn threads_text(threads: &[ConversationId]) -> String {
    serde_json::Value::from(threads.iter().map(|t| t.to_acs()).collect::<Vec<String>>()).to_string()
}

/// A subscription's threads read back from [`threads_text`]; `None` if any is not a thread id.
pub fn parse_threads(text: &str) -> Option<Vec<ConversationId>> {
    let threads: Vec<String> = serde_json::from_str(text).ok()?;
    threads.iter().map(|t| ConversationId::parse(t)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_kind_names_are_the_serde_names() {
        for kind in [
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
            EventKind::ActionCreated,
            EventKind::ActionResponse,
        ] {
            let serde = serde_json::to_value(&kind).expect("serialize");
            assert_eq!(serde.as_str(), Some(event_kind_name(&kind)));
        }
    }

    #[test]
    fn content_reads_back_as_written_with_or_without_the_parser() {
        let text = |t: &str| MessageContent {
            text: Some(t.into()),
            ..MessageContent::default()
        };
        let contents = [
            text("hello"),
            text(""),
            text("héllo ✓ 👋"),
            text(r#"say "hi""#),
            text(r"back\slash"),
            text("two\nlines\tand\u{1}control"),
            text(r#"ends with "}"#),
            MessageContent {
                text: Some("t".into()),
                topic: Some("topic".into()),
                ..MessageContent::default()
            },
            MessageContent {
                topic: Some("only a topic".into()),
                ..MessageContent::default()
            },
            MessageContent::default(),
        ];
        for content in contents {
            let stored = encode_content(&content).expect("encode");
            assert_eq!(
                decode_content(&stored).expect("decode"),
                content,
                "{stored}"
            );
        }
        // The plain path takes only escape-free text-only content.
        assert_eq!(plain_text(r#"{"text":"hello"}"#), Some("hello"));
        assert_eq!(plain_text(r#"{"text":""}"#), Some(""));
        assert_eq!(plain_text(r#"{"text":"a\"b"}"#), None);
        assert_eq!(plain_text(r#"{"text":"a","topic":"b"}"#), None);
        assert_eq!(plain_text("{\"text\":\"a\u{1}b\"}"), None);
        // What the parser rejects stays rejected.
        assert!(decode_content("{\"text\":\"a\u{1}b\"}").is_err());
        assert!(decode_content(r#"{"text":"x"#).is_err());
    }

    #[test]
    fn micros_round_down_and_up() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_789).expect("t");
        assert_eq!(micros(t), 1_700_000_000_123_456);
        assert_eq!(micros_ceil(t), 1_700_000_000_123_457);
        let exact = from_micros(micros(t)).expect("exact");
        assert_eq!(micros(exact), micros_ceil(exact));
        let before = OffsetDateTime::from_unix_timestamp_nanos(-1_500).expect("t");
        assert_eq!(micros(before), -2);
        assert_eq!(micros_ceil(before), -1);
        // Back from microseconds, before the epoch too; out of range is None.
        for us in [
            0, 1, 999_999, 1_000_000, -1, -2, -999_999, -1_000_000, -1_000_001,
        ] {
            let expected = OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000).ok();
            assert_eq!(from_micros(us), expected, "{us}");
            assert_eq!(from_micros(us).map(micros), Some(us));
        }
        assert_eq!(from_micros(i64::MAX), None);
        assert_eq!(from_micros(i64::MIN), None);
    }

    #[test]
    fn expiry_saturates() {
        assert_eq!(expires_on(10, None), None);
        assert_eq!(expires_on(10, Some(1)), Some(10 + DAY_MICROS));
        assert_eq!(expires_on(10, Some(u32::MAX)), Some(i64::MAX));
    }

    #[test]
    fn webhook_columns_round_trip() {
        let threads = [ConversationId(1), ConversationId(u128::MAX)];
        assert_eq!(
            parse_threads(&threads_text(&threads)).as_deref(),
            Some(&threads[..])
        );
        assert_eq!(parse_threads(r#"["not a thread"]"#), None);
        let types = vec!["ChatMessageReceived".to_owned()];
        assert_eq!(
            parse_event_types(&event_types_text(&types).expect("text")),
            Some(types)
        );
        assert_eq!(retention_policy(retention_days(None)), None);
        let policy = RetentionPolicy::ThreadCreationDate {
            delete_after_days: 30,
        };
        assert_eq!(retention_policy(retention_days(Some(policy))), Some(policy));
    }

    #[test]
    fn conversation_keys_round_trip() {
        let id = ConversationId(0x0123_4567_89ab_cdef_0011_2233_4455_6677);
        assert_eq!(conversation_from_key(conv_key(id)), id);
    }
}
