//! `MediaStore`: media records, and who a message carrying a file makes it visible to.

use confab_core::ids::{ConversationId, IdentityId};
use confab_core::model::{
    Audience, ConversationKind, MessageContent, MessageType, Metadata, Participant, Role,
};
use confab_core::ports::{MediaKind, MediaRecord, NewConversation, NewMessage, StoreError};
use time::macros::datetime;

use crate::Fixture;

fn user(n: u32) -> IdentityId {
    IdentityId::parse(&format!("8:acs:res_{n:06}")).expect("identity")
}

fn record(id: &str, uploader: u32) -> MediaRecord {
    MediaRecord {
        id: id.into(),
        uploader: user(uploader),
        kind: MediaKind::Image,
        content_type: "image/png".into(),
        file_name: Some("a.png".into()),
        size: 1234,
        sha256: "ab".repeat(32),
        created_on: datetime!(2024-01-01 10:00:00.123456 UTC),
    }
}

fn conversation(members: &[u32]) -> NewConversation {
    NewConversation {
        id: ConversationId::generate(),
        topic: "Topic".into(),
        created_by: user(members[0]),
        metadata: Metadata::new(),
        retention: None,
        participants: members
            .iter()
            .map(|n| Participant {
                identity: user(*n),
                display_name: None,
                share_history_time: None,
                metadata: Metadata::new(),
                role: Role::Member,
            })
            .collect(),
        repeatability_key: None,
        kind: ConversationKind::ConnectGroup,
        welcome_message: None,
    }
}

fn message(conversation: ConversationId, from: u32, audience: Audience) -> NewMessage {
    NewMessage {
        conversation,
        kind: MessageType::Text,
        content: MessageContent {
            text: Some("a picture".into()),
            ..MessageContent::default()
        },
        sender: Some(user(from)),
        sender_display_name: None,
        metadata: Metadata::new(),
        audience,
    }
}

const A: &str = "0123456789abcdef0123456789abcdef";
const B: &str = "fedcba9876543210fedcba9876543210";

pub async fn records_round_trip_and_ids_are_unique(f: Fixture) {
    let store = &*f.store;
    store.put_media(vec![record(A, 1)]).await.expect("put");
    assert_eq!(store.get_media(A).await.expect("get"), Some(record(A, 1)));
    assert_eq!(store.get_media(B).await.expect("get"), None);
    assert!(matches!(
        store.put_media(vec![record(B, 2), record(A, 2)]).await,
        Err(StoreError::Conflict(_))
    ));
    // All or none: B was not kept either.
    assert_eq!(store.get_media(B).await.expect("get"), None);
    assert_eq!(store.get_media(A).await.expect("get"), Some(record(A, 1)));
}

pub async fn a_linked_message_makes_media_visible_to_its_readers(f: Fixture) {
    let store = &*f.store;
    store.put_media(vec![record(A, 1)]).await.expect("put");
    store.put_media(vec![record(B, 1)]).await.expect("put");
    let group = store
        .create_conversation(conversation(&[1, 2]))
        .await
        .expect("group")
        .conversation
        .id;
    let visible = |id: &'static str, n: u32| async move {
        store.media_visible_to(id, &user(n)).await.expect("visible")
    };
    // Not linked yet: nobody but the uploader (which the core checks itself).
    assert!(!visible(A, 2).await);

    let to_members = store
        .append_message(message(group, 1, Audience::Members))
        .await
        .expect("message");
    store
        .link_message_media(group, to_members.id, vec![A.into()])
        .await
        .expect("link");
    // Linking again changes nothing.
    store
        .link_message_media(group, to_members.id, vec![A.into()])
        .await
        .expect("link again");
    assert!(visible(A, 2).await, "a member");
    assert!(!visible(A, 3).await, "not a member");
    assert!(!visible(B, 2).await, "another file");

    // Subscribers see the files of the messages that reach them only.
    store
        .add_subscribers(group, vec![user(3), user(4)], &user(1))
        .await
        .expect("subscribe");
    assert!(!visible(A, 3).await, "a members-only message");
    let to_three = store
        .append_message(message(group, 1, Audience::Subscribers(vec![user(3)])))
        .await
        .expect("message");
    store
        .link_message_media(group, to_three.id, vec![B.into()])
        .await
        .expect("link");
    assert!(visible(B, 3).await);
    assert!(!visible(B, 4).await);

    // A deleted message no longer shows its files; nor does a deleted conversation.
    store
        .delete_message(group, to_three.id)
        .await
        .expect("delete message");
    assert!(!visible(B, 3).await);
    store
        .delete_conversation(group, None)
        .await
        .expect("delete group");
    assert!(!visible(A, 2).await);
}
