//! Paging. Cursors are opaque to callers but URL-safe (digits, hex, `_`), and each kind has its
//! own shape so that a cursor from another listing is rejected rather than misread. Shared so
//! that a cursor handed out by one store is one every store takes, and pages end alike.

use confab_core::ids::{ConversationId, IdentityId, MessageId};
use confab_core::model::Page;
use confab_core::ports::{StoreError, StoreResult};

/// How many rows a page may hold: at least one, so that paging always progresses.
pub fn page_size(limit: usize) -> usize {
    limit.max(1)
}

/// The SQL LIMIT for a page: one more row than the page, to learn whether another page exists.
pub fn fetch_limit(limit: usize) -> i64 {
    i64::try_from(page_size(limit).saturating_add(1)).unwrap_or(i64::MAX)
}

/// Builds a page from up to `limit + 1` fetched rows; `cursor` names the last row kept.
pub fn into_page<T>(mut rows: Vec<T>, limit: usize, cursor: impl FnOnce(&T) -> String) -> Page<T> {
    let limit = page_size(limit);
    let next = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(cursor)
    } else {
        None
    };
    Page { items: rows, next }
}

/// Messages: the message id, in decimal.
pub fn message_cursor(id: MessageId) -> String {
    id.0.to_string()
}

/// The message id of a [`message_cursor`].
pub fn parse_message_cursor(text: &str) -> StoreResult<i64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(StoreError::InvalidCursor);
    }
    text.parse::<i64>().map_err(|_| StoreError::InvalidCursor)
}

/// Conversations: last activity (microseconds) and id, `<activity>_<32 hex>`.
pub fn conversation_cursor(activity: i64, id: ConversationId) -> String {
    format!("{activity}_{:032x}", id.0)
}

/// The activity and conversation key of a [`conversation_cursor`].
pub fn parse_conversation_cursor(text: &str) -> StoreResult<(i64, [u8; 16])> {
    let (activity, id) = text.split_once('_').ok_or(StoreError::InvalidCursor)?;
    let digits = activity.strip_prefix('-').unwrap_or(activity);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(StoreError::InvalidCursor);
    }
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(StoreError::InvalidCursor);
    }
    let activity = activity
        .parse::<i64>()
        .map_err(|_| StoreError::InvalidCursor)?;
    let id = u128::from_str_radix(id, 16).map_err(|_| StoreError::InvalidCursor)?;
    Ok((activity, id.to_be_bytes()))
}

/// Groups of a member: `g` and the conversation id in hex.
pub fn group_cursor(id: ConversationId) -> String {
    format!("g{:032x}", id.0)
}

/// The conversation key of a [`group_cursor`].
pub fn parse_group_cursor(text: &str) -> StoreResult<[u8; 16]> {
    let hex = text.strip_prefix('g').ok_or(StoreError::InvalidCursor)?;
    if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(StoreError::InvalidCursor);
    }
    let id = u128::from_str_radix(hex, 16).map_err(|_| StoreError::InvalidCursor)?;
    Ok(id.to_be_bytes())
}

/// Subscribers: `s` and the identity's raw id, hex-encoded.
pub fn subscriber_cursor(name: &IdentityId) -> String {
    format!("s{}", name_cursor(name))
}

/// The raw id of a [`subscriber_cursor`].
pub fn parse_subscriber_cursor(text: &str) -> StoreResult<String> {
    parse_name_cursor(text.strip_prefix('s').ok_or(StoreError::InvalidCursor)?)
}

/// Participants and read receipts: the identity's raw id, hex-encoded (raw ids contain `:` and
/// `+`, which are not URL-safe).
pub fn name_cursor(name: &IdentityId) -> String {
    name.as_str().bytes().map(|b| format!("{b:02x}")).collect()
}

/// The raw id of a [`name_cursor`].
pub fn parse_name_cursor(text: &str) -> StoreResult<String> {
    if text.is_empty() {
        return Err(StoreError::InvalidCursor);
    }
    let bytes = text
        .as_bytes()
        .chunks(2)
        .map(|pair| match pair {
            [high, low] => Some(hex_digit(*high)? << 4 | hex_digit(*low)?),
            _ => None, // an odd length
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or(StoreError::InvalidCursor)?;
    String::from_utf8(bytes).map_err(|_| StoreError::InvalidCursor)
}

/// The value of one hex digit (either case).
pub fn hex_digit(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stored::conv_key;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let id = ConversationId(0x0123_4567_89ab_cdef_0011_2233_4455_6677);
        let cursor = conversation_cursor(-42, id);
        assert_eq!(parse_conversation_cursor(&cursor), Ok((-42, conv_key(id))));
        let who = IdentityId::parse("4:+14255550123").expect("id");
        assert_eq!(
            parse_name_cursor(&name_cursor(&who)).as_deref(),
            Ok(who.as_str())
        );
        assert_eq!(parse_message_cursor(&message_cursor(MessageId(17))), Ok(17));
        for bad in ["", "x", "-1", "1_", "_00", "12_zz", "1_0123"] {
            assert_eq!(parse_message_cursor(bad).ok(), None, "{bad}");
            assert_eq!(parse_conversation_cursor(bad).ok(), None, "{bad}");
        }
        for bad in ["", "a", "abc", "zz", "ff", "+1"] {
            assert_eq!(parse_name_cursor(bad).ok(), None, "{bad}");
        }
        assert_eq!(parse_group_cursor(&group_cursor(id)), Ok(conv_key(id)));
        for bad in ["", "g", "g12", "x0123456789abcdef0011223344556677", "gzz"] {
            assert_eq!(parse_group_cursor(bad).ok(), None, "{bad}");
        }
    }
}
