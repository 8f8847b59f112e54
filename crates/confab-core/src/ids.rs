//! Identifiers shared by every face.
//!
//! A conversation id is 128 bits: the ACS face shows it as `19:<32 hex>@thread.v2`, the Kaizala
//! face as a GUID. Both parse to the same [`ConversationId`].

use std::fmt::{self, Write as _};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A conversation: an ACS chat thread and a Kaizala group are the same row.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ConversationId(pub u128);

/// A conversation id shown in its ACS wire form, `19:<32 lowercase hex>@thread.v2`.
#[derive(Clone, Copy, Debug)]
pub struct AcsForm(ConversationId);

impl fmt::Display for AcsForm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Written out rather than `format!("{:032x}")`: it is made several times for every
        // message (event data, the event's envelope, the Location header), and the padded u128
        // formatting was ~1.5 % of a send's server time.
        let mut hex = Uuid::encode_buffer();
        f.write_str(ACS_PREFIX)?;
        f.write_str(Uuid::from_u128(self.0 .0).simple().encode_lower(&mut hex))?;
        f.write_str(ACS_SUFFIX)
    }
}

/// What surrounds a conversation id's hex digits in the ACS wire form.
const ACS_PREFIX: &str = "19:";
const ACS_SUFFIX: &str = "@thread.v2";

impl ConversationId {
    /// A new conversation's id: a UUIDv7, whose leading bits are the time in milliseconds
    /// and the other 74 random. New conversations then sort after the older ones, so that the
    /// rows and index entries keyed by conversation (its row, its participants, each member's
    /// list of conversations, its messages) are appended at the right edge of their B-trees
    /// instead of landing on a random page each: creating a thread with ten participants
    /// dirtied about a dozen scattered pages, which the next commit had to write to the WAL.
    pub fn generate() -> Self {
        Self(Uuid::now_v7().as_u128())
    }

    /// The ACS wire form, `19:<32 lowercase hex>@thread.v2`.
    pub fn to_acs(self) -> String {
        let mut acs = String::with_capacity(ACS_PREFIX.len() + 32 + ACS_SUFFIX.len());
        // Writing into a String cannot fail.
        let _ = write!(acs, "{}", self.acs());
        acs
    }

    /// The ACS wire form as a `Display`, to write it into other text (a serializer's
    /// `collect_str`, a `write!`) without a `String` of its own.
    pub fn acs(self) -> AcsForm {
        AcsForm(self)
    }

    /// The Kaizala wire form, a hyphenated GUID.
    pub fn to_guid(self) -> String {
        Uuid::from_u128(self.0).hyphenated().to_string()
    }

    /// Parses either face's form: `19:<hex>@thread.v2`, a GUID, or a GUID with an `@1` suffix.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        if let Some(rest) = text.strip_prefix(ACS_PREFIX) {
            let hex = rest.strip_suffix(ACS_SUFFIX)?;
            if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            return u128::from_str_radix(hex, 16).ok().map(Self);
        }
        let guid = text.split_once('@').map_or(text, |(guid, _)| guid);
        Uuid::parse_str(guid).ok().map(|u| Self(u.as_u128()))
    }
}

impl fmt::Debug for ConversationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.acs())
    }
}

impl FromStr for ConversationId {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Self::parse(s).ok_or(())
    }
}

/// A server-wide unique, time-ordered message id (microseconds since the epoch, bumped to stay
/// strictly increasing). Shown on the wire as a decimal string.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
pub struct MessageId(pub i64);

impl MessageId {
    pub fn parse(text: &str) -> Option<Self> {
        text.trim().parse::<i64>().ok().filter(|v| *v > 0).map(Self)
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An identity, as an ACS CommunicationIdentifier raw id: `8:acs:<resource>_<uuid>` for users made
/// by the Identity API, `4:+<E.164>` for phone numbers.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
pub struct IdentityId(String);

/// The kinds of identifier confab stores; anything else is rejected at the face.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum IdentityKind {
    CommunicationUser,
    PhoneNumber,
}

impl IdentityId {
    /// A new ACS user of this server's resource.
    pub fn new_user(resource_id: &str) -> Self {
        Self(format!("8:acs:{resource_id}_{}", Uuid::new_v4()))
    }

    /// A phone-number identity from an E.164 number (with or without the leading `+`).
    pub fn phone(number: &str) -> Option<Self> {
        let digits = number.trim().trim_start_matches('+');
        let valid = (4..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
        valid.then(|| Self(format!("4:+{digits}")))
    }

    /// Parses a raw id. Accepts `8:acs:…`, `8:spool:…`, `8:gcch-acs:…`, `8:dod-acs:…`
    /// (communication users) and `4:+…` (phone numbers).
    pub fn parse(raw: &str) -> Option<Self> {
        let raw = raw.trim();
        if let Some(number) = raw.strip_prefix("4:") {
            return Self::phone(number);
        }
        let user = ["8:acs:", "8:spool:", "8:gcch-acs:", "8:dod-acs:"]
            .iter()
            .find_map(|prefix| raw.strip_prefix(prefix))?;
        let valid = !user.is_empty()
            && user.len() <= 256
            && user
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        valid.then(|| Self(raw.to_owned()))
    }

    /// An id read back from storage, as it was stored: it was checked on the way in, and is
    /// not checked again, so stored rows stay readable should the accepted syntax ever narrow.
    pub fn from_stored(raw: String) -> Self {
        Self(raw)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn kind(&self) -> IdentityKind {
        if self.0.starts_with("4:") {
            IdentityKind::PhoneNumber
        } else {
            IdentityKind::CommunicationUser
        }
    }

    /// The E.164 number (with `+`) of a phone-number identity.
    pub fn phone_number(&self) -> Option<&str> {
        self.0.strip_prefix("4:")
    }
}

impl fmt::Display for IdentityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_acs_form_is_the_padded_lowercase_hex() {
        for value in [0, 1, 0xabc, u128::MAX, ConversationId::generate().0] {
            let expected = format!("19:{value:032x}@thread.v2");
            assert_eq!(ConversationId(value).to_acs(), expected);
            assert_eq!(ConversationId(value).acs().to_string(), expected);
        }
    }

    #[test]
    fn conversation_id_round_trips_through_both_faces() {
        let id = ConversationId::generate();
        assert_eq!(ConversationId::parse(&id.to_acs()), Some(id));
        assert_eq!(ConversationId::parse(&id.to_guid()), Some(id));
        assert_eq!(
            ConversationId::parse(&format!("{}@1", id.to_guid())),
            Some(id)
        );
        assert_eq!(
            ConversationId::parse(&id.to_guid().to_uppercase()),
            Some(id)
        );
    }

    #[test]
    fn a_stored_identity_reads_back_as_stored_even_where_parse_would_refuse_it() {
        let stored = IdentityId::from_stored("8:legacy:someone".to_string());
        assert_eq!(stored.as_str(), "8:legacy:someone");
        assert_eq!(IdentityId::parse("8:legacy:someone"), None);
        let parsed = IdentityId::parse("8:acs:res_alice").expect("id");
        assert_eq!(IdentityId::from_stored("8:acs:res_alice".into()), parsed);
    }

    #[test]
    fn new_conversation_ids_are_distinct_and_sort_in_creation_order() {
        let ids: Vec<ConversationId> = (0..1000).map(|_| ConversationId::generate()).collect();
        assert!(
            ids.windows(2).all(|pair| pair[0] < pair[1]),
            "not increasing"
        );
        // Still mostly random: two ids of the same millisecond differ beyond the time prefix.
        let earlier = ConversationId::generate();
        let later = ConversationId::generate();
        assert_ne!(earlier.0 & ((1 << 74) - 1), later.0 & ((1 << 74) - 1));
    }

    #[test]
    fn conversation_id_rejects_garbage() {
        for bad in [
            "",
            "19:",
            "19:abc@thread.v2",
            "19:zz@thread.v2",
            "hello",
            "19:uni01_x@thread.v2",
        ] {
            assert_eq!(ConversationId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn identity_ids_parse() {
        let user = IdentityId::new_user("res");
        assert_eq!(IdentityId::parse(user.as_str()), Some(user.clone()));
        assert_eq!(user.kind(), IdentityKind::CommunicationUser);
        let phone = IdentityId::parse("4:+14255550123").expect("phone");
        assert_eq!(phone.kind(), IdentityKind::PhoneNumber);
        assert_eq!(phone.phone_number(), Some("+14255550123"));
        assert_eq!(IdentityId::phone("14255550123"), Some(phone));
        for bad in ["", "8:acs:", "4:+12ab", "28:bot", "8:acs:a b", "4:+1"] {
            assert_eq!(IdentityId::parse(bad), None, "{bad}");
        }
    }
}
