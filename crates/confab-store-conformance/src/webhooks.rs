//! The `WebhookStore` contract: subscriptions, the outbox (one delivery per matching active
//! subscription, written with the event), due deliveries first in line per webhook and
//! conversation, attempts, disabling after the last one, resuming, redelivery and purging.

use confab_core::ids::{ConversationId, IdentityId};
use confab_core::model::{
    Audience, ConversationKind, MessageContent, MessageType, Metadata, Participant, Role,
};
use confab_core::ports::webhooks::{
    DeliveryAttempt, DeliveryStatus, EventSchema, Webhook, WebhookObject,
};
use confab_core::ports::{Clock, NewConversation, NewMessage, Store, StoreError};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use crate::Fixture;

/// Numbers the webhooks' ids.
static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// The admin of [`conversation`]: a phone number.
pub fn alice() -> IdentityId {
    IdentityId::phone("+14255550101").expect("id")
}

/// The time the webhook checks start at ([`TestClock`](crate::TestClock)'s start).
pub fn now() -> OffsetDateTime {
    datetime!(2024-01-01 00:00:00 UTC)
}

/// A conversation of one admin, Alice.
pub async fn conversation(store: &dyn Store) -> ConversationId {
    let id = ConversationId::generate();
    store
        .create_conversation(NewConversation {
            id,
            topic: "t".into(),
            created_by: alice(),
            metadata: Metadata::new(),
            retention: None,
            participants: vec![Participant {
                identity: alice(),
                display_name: Some("Alice".into()),
                share_history_time: None,
                metadata: Metadata::new(),
                role: Role::Admin,
            }],
            repeatability_key: None,
            kind: ConversationKind::default(),
            welcome_message: None,
        })
        .await
        .expect("create");
    id
}

/// Alice sends `text`.
pub async fn send(store: &dyn Store, conversation: ConversationId, text: &str) {
    store
        .append_message(NewMessage {
            conversation,
            kind: MessageType::Text,
            content: MessageContent {
                text: Some(text.into()),
                ..MessageContent::default()
            },
            sender: Some(alice()),
            sender_display_name: None,
            metadata: Metadata::new(),
            audience: Audience::Members,
        })
        .await
        .expect("send");
}

/// A Kaizala group webhook of Alice's for `types`, valid for a day from [`now`].
pub fn webhook(conversation: ConversationId, types: &[&str]) -> Webhook {
    Webhook {
        id: format!(
            "hook-{}",
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ),
        object: WebhookObject::Group,
        object_id: conversation.to_guid(),
        event_types: types.iter().map(|t| (*t).to_owned()).collect(),
        callback_url: "http://127.0.0.1:1/hook".into(),
        callback_token: None,
        callback_context: Some("ctx".into()),
        secret: "s".into(),
        owner: Some(alice()),
        schema: EventSchema::Kaizala,
        name: None,
        threads: Vec::new(),
        validity: now() + Duration::days(1),
        active: true,
        created_on: now(),
        disabled_reason: None,
    }
}

pub async fn the_outbox_follows_the_subscriptions(f: Fixture) {
    let store = &*f.store;
    assert_eq!(f.clock.now(), now());
    let one = conversation(store).await;
    let two = conversation(store).await;
    // No subscription: no delivery.
    send(store, one, "before").await;
    let hook = webhook(one, &["TextMessageCreated"]);
    store.create_webhook(hook.clone()).await.expect("create");
    let other = webhook(one, &["MemberAdded"]);
    store.create_webhook(other.clone()).await.expect("create");
    assert_eq!(
        store
            .list_webhooks(WebhookObject::Group, &one.to_guid())
            .await
            .expect("list")
            .len(),
        2
    );
    send(store, one, "a").await;
    send(store, one, "b").await;
    send(store, two, "elsewhere").await;
    let log = store
        .list_deliveries(&hook.id, None, 10)
        .await
        .expect("log");
    assert_eq!(log.len(), 2);
    assert!(store
        .list_deliveries(&other.id, None, 10)
        .await
        .expect("log")
        .is_empty());
    let payload: serde_json::Value = serde_json::from_str(&log[1].payload).expect("json");
    assert_eq!(payload["eventType"], "TextMessageCreated");
    assert_eq!(payload["data"]["text"], "a");
    assert_eq!(payload["context"], "ctx");
    assert_eq!(payload["fromUser"], "+14255550101");
    assert_eq!(payload["fromUserName"], "Alice");

    // First in line only: "a" is due, "b" waits behind it.
    let due = store.due_deliveries(now(), 10).await.expect("due");
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].id, log[1].id);

    // A failed try with a retry: not due until then.
    let retry_at = now() + Duration::seconds(30);
    store
        .record_delivery_attempt(DeliveryAttempt {
            delivery: due[0].id,
            webhook: hook.id.clone(),
            at: now(),
            delivered: false,
            status: Some(500),
            error: Some("HTTP 500".into()),
            retry_at: Some(retry_at),
        })
        .await
        .expect("record");
    assert!(store
        .due_deliveries(now(), 10)
        .await
        .expect("due")
        .is_empty());
    assert_eq!(
        store.next_delivery_due().await.expect("next"),
        Some(retry_at)
    );
    // The last try fails: the webhook is disabled and gets nothing more.
    store
        .record_delivery_attempt(DeliveryAttempt {
            delivery: due[0].id,
            webhook: hook.id.clone(),
            at: retry_at,
            delivered: false,
            status: None,
            error: Some("timed out".into()),
            retry_at: None,
        })
        .await
        .expect("record");
    let disabled = store
        .get_webhook(&hook.id)
        .await
        .expect("get")
        .expect("some");
    assert!(!disabled.active);
    assert!(disabled
        .disabled_reason
        .expect("reason")
        .contains("timed out"));
    send(store, one, "while disabled").await;
    assert_eq!(
        store
            .list_deliveries(&hook.id, None, 10)
            .await
            .expect("log")
            .len(),
        2
    );
    assert!(store
        .due_deliveries(retry_at, 10)
        .await
        .expect("due")
        .is_empty());

    // Re-enabled: the failed one is first in line again, in a new round.
    store
        .update_webhook(
            Webhook {
                active: true,
                disabled_reason: None,
                ..disabled
            },
            true,
        )
        .await
        .expect("update");
    let due = store.due_deliveries(retry_at, 10).await.expect("due");
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].status, DeliveryStatus::Pending);
    assert_eq!((due[0].attempts, due[0].round_start), (2, 2));
    store
        .record_delivery_attempt(DeliveryAttempt {
            delivery: due[0].id,
            webhook: hook.id.clone(),
            at: retry_at,
            delivered: true,
            status: Some(200),
            error: None,
            retry_at: None,
        })
        .await
        .expect("record");
    let due = store.due_deliveries(retry_at, 10).await.expect("due");
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].id, log[0].id);

    // Redelivery and purging.
    let again = store
        .redeliver(&hook.id, log[1].id)
        .await
        .expect("redeliver");
    assert_eq!(again.status, DeliveryStatus::Pending);
    assert!(store.redeliver(&other.id, log[1].id).await.is_err());
    store
        .record_delivery_attempt(DeliveryAttempt {
            delivery: log[1].id,
            webhook: hook.id.clone(),
            at: retry_at,
            delivered: true,
            status: Some(200),
            error: None,
            retry_at: None,
        })
        .await
        .expect("record");
    assert_eq!(
        store
            .purge_deliveries(now() + Duration::days(1), 100)
            .await
            .expect("purge"),
        1
    );

    // Deleting takes the deliveries along.
    store.delete_webhook(&hook.id).await.expect("delete");
    assert!(store.get_webhook(&hook.id).await.expect("get").is_none());
    // An id with a NUL character names nothing; a store that cannot even look it up says the
    // text is invalid, never that it failed.
    let nul = store.get_webhook("a\0b").await;
    assert!(
        matches!(nul, Ok(None) | Err(StoreError::InvalidText)),
        "{nul:?}"
    );
    assert!(store
        .list_deliveries(&hook.id, None, 10)
        .await
        .expect("log")
        .is_empty());
    send(store, one, "after delete").await;
    assert!(store
        .due_deliveries(retry_at, 10)
        .await
        .expect("due")
        .is_empty());
}

fn bob() -> IdentityId {
    IdentityId::parse("8:acs:bob").expect("id")
}

/// An admin's ACS event subscription.
fn event_subscription(
    schema: EventSchema,
    types: &[&str],
    threads: Vec<ConversationId>,
) -> Webhook {
    Webhook {
        object: WebhookObject::Resource,
        object_id: String::new(),
        owner: None,
        schema,
        name: Some("orders".into()),
        threads,
        ..webhook(ConversationId(0), types)
    }
}

fn payloads(
    deliveries: &[confab_core::ports::webhooks::WebhookDelivery],
) -> Vec<serde_json::Value> {
    let mut list: Vec<serde_json::Value> = deliveries
        .iter()
        .map(|d| serde_json::from_str(&d.payload).expect("json"))
        .collect();
    list.reverse();
    list
}

pub async fn acs_subscriptions_get_thread_and_user_level_events(f: Fixture) {
    let store = &*f.store;
    assert_eq!(f.clock.now(), now());
    let one = conversation(store).await;
    let two = conversation(store).await;
    let all = event_subscription(
        EventSchema::EventGrid,
        &[
            "ChatMessageReceivedInThread",
            "ChatMessageReceived",
            "ChatParticipantAddedToThreadWithUser",
        ],
        vec![],
    );
    let only_two = event_subscription(
        EventSchema::CloudEvents,
        &["ChatMessageReceivedInThread"],
        vec![two],
    );
    store.create_webhook(all.clone()).await.expect("create");
    store
        .create_webhook(only_two.clone())
        .await
        .expect("create");
    // Bob joins thread one: one user-level event for each participant but the one who added.
    store
        .add_participants(
            one,
            vec![Participant {
                identity: bob(),
                display_name: Some("Bob".into()),
                share_history_time: None,
                metadata: Metadata::new(),
                role: Role::Member,
            }],
            &alice(),
            250,
        )
        .await
        .expect("add");
    send(store, one, "hello").await;
    send(store, two, "hi two").await;

    let events = payloads(
        &store
            .list_deliveries(&all.id, None, 100)
            .await
            .expect("log"),
    );
    let types: Vec<&str> = events
        .iter()
        .map(|e| e[0]["eventType"].as_str().expect("type"))
        .collect();
    assert_eq!(
        types,
        [
            "Microsoft.Communication.ChatParticipantAddedToThreadWithUser",
            "Microsoft.Communication.ChatMessageReceivedInThread",
            "Microsoft.Communication.ChatMessageReceived",
            "Microsoft.Communication.ChatMessageReceivedInThread",
        ]
    );
    let added = &events[0][0];
    assert_eq!(
        added["data"]["recipientCommunicationIdentifier"]["rawId"],
        "8:acs:bob"
    );
    assert_eq!(added["data"]["participantAdded"]["displayName"], "Bob");
    let in_thread = &events[1][0];
    assert_eq!(
        in_thread["subject"],
        format!("thread/{}/sender/4:+14255550101", one.to_acs())
    );
    assert_eq!(in_thread["data"]["messageBody"], "hello");
    assert_eq!(in_thread["data"]["threadId"], one.to_acs());
    assert_eq!(in_thread["data"]["type"], "Text");
    assert_eq!(
        in_thread["data"]["senderCommunicationIdentifier"]["phoneNumber"]["value"],
        "+14255550101"
    );
    assert!(in_thread["data"]["version"].is_i64());
    assert_eq!(in_thread["dataVersion"], "1.0");
    // Alice sent it: only Bob gets the user-level one.
    let to_bob = &events[2][0];
    assert_eq!(
        to_bob["subject"],
        format!(
            "thread/{}/sender/4:+14255550101/recipient/8:acs:bob",
            one.to_acs()
        )
    );
    assert_eq!(to_bob["data"]["messageId"], in_thread["data"]["messageId"]);
    assert_ne!(to_bob["id"], in_thread["id"]);
    assert_eq!(events[3][0]["data"]["threadId"], two.to_acs());

    // The filtered CloudEvents subscription hears of thread two only.
    let cloud = payloads(
        &store
            .list_deliveries(&only_two.id, None, 100)
            .await
            .expect("log"),
    );
    assert_eq!(cloud.len(), 1);
    assert_eq!(cloud[0]["specversion"], "1.0");
    assert_eq!(
        cloud[0]["type"],
        "Microsoft.Communication.ChatMessageReceivedInThread"
    );
    assert_eq!(cloud[0]["data"]["messageBody"], "hi two");
    // Event ids are the same for every subscription: receivers de-duplicate on them.
    assert_eq!(cloud[0]["id"], events[3][0]["id"]);
    // Deliveries of one subscription and thread go out in order, one at a time.
    let due = store.due_deliveries(now(), 100).await.expect("due");
    assert_eq!(due.iter().filter(|d| d.webhook == all.id).count(), 2);
}
