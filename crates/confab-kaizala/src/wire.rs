//! Wire forms of the Kaizala face: member ids and message reference ids as GUIDs, roles, group
//! types, and the group objects of `GET /groups`.

use confab_core::ids::{IdentityId, IdentityKind, MessageId};
use confab_core::model::{Conversation, ConversationKind, GroupView, Role};
use serde_json::{json, Value};
use uuid::Uuid;

/// The high half of a member GUID ("KZMB", version 8): the low half holds the phone number, so
/// the id maps back to the member without a lookup.
const MEMBER_TAG: u64 = 0x4b5a_4d42_0000_8000;
/// The high half of a message reference GUID ("KZMS", version 8): the low half holds the id.
const REFERENCE_TAG: u64 = 0x4b5a_4d53_0000_8000;
/// The RFC 4122 variant bits, set in the low half.
const VARIANT: u64 = 0x8000_0000_0000_0000;
const PAYLOAD: u64 = 0x3fff_ffff_ffff_ffff;

fn tagged(tag: u64, payload: u64) -> String {
    let value = (u128::from(tag) << 64) | u128::from(VARIANT | (payload & PAYLOAD));
    Uuid::from_u128(value).hyphenated().to_string()
}

fn untag(tag: u64, text: &str) -> Option<u64> {
    let value = Uuid::parse_str(text.trim()).ok()?.as_u128();
    let (high, low) = ((value >> 64) as u64, value as u64);
    (high == tag && low & !PAYLOAD == VARIANT).then_some(low & PAYLOAD)
}

/// A member's id: a GUID for a phone number, the raw id for any other identity.
pub fn member_id(identity: &IdentityId) -> String {
    let number = identity
        .phone_number()
        .and_then(|n| n.trim_start_matches('+').parse::<u64>().ok());
    match (identity.kind(), number) {
        (IdentityKind::PhoneNumber, Some(number)) => tagged(MEMBER_TAG, number),
        _ => identity.to_string(),
    }
}

/// The phone identity of a member GUID.
pub fn member_from_guid(text: &str) -> Option<IdentityId> {
    untag(MEMBER_TAG, text).and_then(|number| IdentityId::phone(&number.to_string()))
}

/// A message's `referenceId`.
pub fn reference_id(id: MessageId) -> String {
    tagged(REFERENCE_TAG, u64::try_from(id.0).unwrap_or(0))
}

/// The message of a `referenceId` (or of a plain message id, as the ACS face shows it).
pub fn message_from_reference(text: &str) -> Option<MessageId> {
    untag(REFERENCE_TAG, text)
        .and_then(|id| i64::try_from(id).ok())
        .map(MessageId)
        .filter(|id| id.0 > 0)
        .or_else(|| MessageId::parse(text))
}

pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Admin => "Admin",
        Role::Member => "Member",
        Role::Subscriber => "Subscriber",
    }
}

pub fn parse_role(text: &str) -> Option<Role> {
    Role::parse(&text.trim().to_ascii_lowercase())
}

/// `Group` for groups and ACS threads, `ConnectGroup` for public groups.
pub fn group_type(kind: ConversationKind) -> &'static str {
    match kind {
        ConversationKind::ConnectGroup => "ConnectGroup",
        ConversationKind::Chat | ConversationKind::Group => "Group",
    }
}

pub fn parse_group_type(text: &str) -> Option<ConversationKind> {
    match text.trim().to_ascii_lowercase().as_str() {
        "group" => Some(ConversationKind::Group),
        "connectgroup" => Some(ConversationKind::ConnectGroup),
        _ => None,
    }
}

/// A group as `GET /groups` lists it; `detail` adds the counts and the caller's role.
pub fn group_json(group: &GroupView, detail: bool) -> Value {
    let conversation = &group.conversation;
    let mut value = json!({
        "groupId": conversation.id.to_guid(),
        "groupName": conversation.topic,
        "groupImageUrl": "",
        "groupType": group_type(conversation.kind),
        "hasSubGroups": group.subgroup_count > 0,
        "hasParentGroups": group.parent_count > 0,
        "isMappedToTenant": false,
    });
    if detail {
        if let Value::Object(map) = &mut value {
            let extra = json!({
                "welcomeMessage": conversation.welcome_message.clone().unwrap_or_default(),
                "callerRole": group.viewer_role.map(role_name),
                "currentLevelSubGroupCount": group.subgroup_count,
                "currentLevelParentGroupCount": group.parent_count,
                "userCount": group.member_count,
                "uniqueUserCount": group.member_count,
                "currentLevelUserCount": group.member_count,
                "unProvisionedUserCount": group.unprovisioned_count,
                "currentLevelUnProvisionedUserCount": group.unprovisioned_count,
                "isDuplicate": false,
                "isEditable": group.viewer_role == Some(Role::Admin),
                "isDetailsReadable": true,
            });
            if let Value::Object(extra) = extra {
                map.extend(extra);
            }
        }
    }
    value
}

/// A subgroup as the subgroup listing shows it (swagger `SubGroup`). `duplicate`: the group was
/// shown earlier in the same tree (a group with several parents), and is not expanded again.
pub fn subgroup_json(conversation: &Conversation, has_subgroups: bool, duplicate: bool) -> Value {
    json!({
        "groupId": conversation.id.to_guid(),
        "groupName": conversation.topic,
        "groupImageUrl": "",
        "groupType": group_type(conversation.kind),
        "hasSubGroups": has_subgroups,
        "hasParentGroups": true,
        "isMappedToTenant": false,
        "isDuplicate": duplicate,
        "welcomeMessage": conversation.welcome_message.clone().unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_ids_round_trip() {
        for number in ["+14255550123", "+919652000000", "+1234", "+999999999999999"] {
            let phone = IdentityId::phone(number).expect("phone");
            let id = member_id(&phone);
            assert!(Uuid::parse_str(&id).is_ok(), "{id}");
            assert_eq!(member_from_guid(&id), Some(phone.clone()));
            assert_eq!(member_from_guid(&id.to_uppercase()), Some(phone));
        }
        let user = IdentityId::parse("8:acs:res_1").expect("user");
        assert_eq!(member_id(&user), "8:acs:res_1");
        assert_eq!(member_from_guid(&Uuid::new_v4().to_string()), None);
        assert_eq!(member_from_guid("nonsense"), None);
    }

    #[test]
    fn reference_ids_round_trip() {
        let id = MessageId(1_700_000_000_123_456);
        let reference = reference_id(id);
        assert!(Uuid::parse_str(&reference).is_ok());
        assert_eq!(message_from_reference(&reference), Some(id));
        assert_eq!(message_from_reference("1700000000123456"), Some(id));
        assert_eq!(message_from_reference(&Uuid::new_v4().to_string()), None);
        assert_eq!(message_from_reference(""), None);
    }
}
