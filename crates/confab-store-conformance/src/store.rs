//! The `Store` contract: identities, conversations, participants, messages, read receipts, the
//! event log, groups, subgroups, subscribers, message audiences and connector credentials.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use confab_core::ids::{ConversationId, IdentityId, MessageId};
use confab_core::model::{
    Application, Audience, ConversationKind, Identity, Message, MessageType, Metadata, Participant,
    ParticipantRef, PinChallenge, RefreshToken, RetentionPolicy, Role, SubscribeOutcome,
};
use confab_core::ports::{
    Clock, ConversationUpdate, ListQuery, MessageEdit, MessageQuery, PinOutcome, PinRedemption,
    StoreError,
};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use crate::{
    all_messages, create, list, member, meta, new_conversation, phone, query, text, user, Fixture,
};

pub async fn identities(f: Fixture) {
    let id = user(1);
    let identity = Identity {
        id: id.clone(),
        created_on: datetime!(2024-01-01 00:00:00 UTC),
        token_generation: 3,
    };
    assert_eq!(f.store.get_identity(&id).await, Ok(None));
    f.store.create_identity(&identity).await.expect("create");
    assert_eq!(f.store.get_identity(&id).await, Ok(Some(identity.clone())));
    assert!(matches!(
        f.store.create_identity(&identity).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(f.store.bump_token_generation(&id).await, Ok(4));
    assert_eq!(f.store.bump_token_generation(&id).await, Ok(5));
    let stored = f.store.get_identity(&id).await.expect("get").expect("some");
    assert_eq!(stored.token_generation, 5);
    assert_eq!(
        f.store.bump_token_generation(&user(2)).await,
        Err(StoreError::NotFound)
    );
    f.store.delete_identity(&id).await.expect("delete");
    assert_eq!(f.store.get_identity(&id).await, Ok(None));
    assert_eq!(
        f.store.delete_identity(&id).await,
        Err(StoreError::NotFound)
    );
    // A phone-number identity works the same.
    let phone = Identity {
        id: IdentityId::phone("+14255550123").expect("phone"),
        created_on: datetime!(2024-02-03 04:05:06.789 UTC),
        token_generation: 0,
    };
    f.store.create_identity(&phone).await.expect("create phone");
    assert_eq!(f.store.get_identity(&phone.id).await, Ok(Some(phone)));
}

pub async fn create_and_get_conversation(f: Fixture) {
    let now = f.clock.now();
    let mut new = new_conversation(1, &[1, 2]);
    new.metadata = meta(&[("k", "v")]);
    new.retention = Some(RetentionPolicy::ThreadCreationDate {
        delete_after_days: 30,
    });
    // A duplicate: the last one wins.
    let mut again = member(2);
    again.display_name = Some("Second".into());
    again.role = Role::Admin;
    again.share_history_time = Some(datetime!(2023-12-31 12:00:00 UTC));
    new.participants.push(again.clone());
    let id = new.id;

    let created = f.store.create_conversation(new).await.expect("create");
    assert!(created.created);
    let conversation = created.conversation;
    assert_eq!(conversation.id, id);
    assert_eq!(conversation.topic, "Topic");
    assert_eq!(conversation.created_by, user(1));
    assert_eq!(conversation.created_on, now);
    assert_eq!(conversation.deleted_on, None);
    assert_eq!(conversation.metadata, meta(&[("k", "v")]));
    assert_eq!(
        conversation.retention,
        Some(RetentionPolicy::ThreadCreationDate {
            delete_after_days: 30
        })
    );
    assert_eq!(conversation.last_message_on, Some(now));
    assert_eq!(
        f.store.get_conversation(id).await,
        Ok(Some(conversation.clone()))
    );
    assert_eq!(
        f.store.get_conversation(ConversationId::generate()).await,
        Ok(None)
    );

    let participants = f.store.list_participants(id, list(10)).await.expect("list");
    assert_eq!(participants.items, vec![member(1), again.clone()]);
    assert_eq!(participants.next, None);
    assert_eq!(
        f.store.get_participant(id, &user(2)).await,
        Ok(Some(again.clone()))
    );
    assert_eq!(f.store.get_participant(id, &user(3)).await, Ok(None));

    let messages = all_messages(&f, id, query(10)).await;
    assert_eq!(messages.len(), 1);
    let added = &messages[0];
    assert_eq!(added.kind, MessageType::ParticipantAdded);
    assert_eq!(added.sequence_id, 1);
    assert_eq!(added.sender, None);
    assert_eq!(added.created_on, now);
    assert_eq!(added.version, added.id.0);
    assert_eq!(added.content.initiator, Some(user(1)));
    assert_eq!(
        added.content.participants,
        vec![
            ParticipantRef {
                identity: user(1),
                display_name: Some("User 1".into()),
                share_history_time: None
            },
            ParticipantRef {
                identity: user(2),
                display_name: Some("Second".into()),
                share_history_time: again.share_history_time
            },
        ]
    );
}

pub async fn conversation_id_conflict(f: Fixture) {
    let new = new_conversation(1, &[1]);
    f.store
        .create_conversation(new.clone())
        .await
        .expect("create");
    let again = f.store.create_conversation(new).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
}

pub async fn repeatability_key(f: Fixture) {
    let mut first = new_conversation(1, &[1, 2]);
    first.repeatability_key = Some("key-1".into());
    let created = f
        .store
        .create_conversation(first.clone())
        .await
        .expect("first");
    assert!(created.created);

    f.clock.advance(Duration::seconds(5));
    let mut second = new_conversation(3, &[3]);
    second.repeatability_key = Some("key-1".into());
    second.topic = "Other".into();
    let repeated = f
        .store
        .create_conversation(second.clone())
        .await
        .expect("repeat");
    assert!(!repeated.created);
    assert_eq!(repeated.conversation, created.conversation);
    // Nothing changed: no second conversation, no extra message, no new participants.
    assert_eq!(f.store.get_conversation(second.id).await, Ok(None));
    assert_eq!(all_messages(&f, first.id, query(10)).await.len(), 1);
    assert_eq!(
        f.store
            .list_conversations(&user(3), None, None, 10)
            .await
            .expect("list")
            .items
            .len(),
        0
    );

    // Another key creates another conversation.
    second.repeatability_key = Some("key-2".into());
    assert!(
        f.store
            .create_conversation(second)
            .await
            .expect("other")
            .created
    );
}

pub async fn update_conversation(f: Fixture) {
    let id = create(&f, 1, &[1]).await;
    f.clock.advance(Duration::seconds(1));

    // A new topic appends a topicUpdated message.
    let update = ConversationUpdate {
        topic: Some("New".into()),
        ..ConversationUpdate::default()
    };
    f.store
        .update_conversation(id, update.clone(), &user(1))
        .await
        .expect("update");
    let conversation = f
        .store
        .get_conversation(id)
        .await
        .expect("get")
        .expect("some");
    assert_eq!(conversation.topic, "New");
    assert_eq!(conversation.last_message_on, Some(f.clock.now()));
    let messages = all_messages(&f, id, query(10)).await;
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0].kind, MessageType::TopicUpdated);
    assert_eq!(messages[0].sequence_id, 2);
    assert_eq!(messages[0].content.topic.as_deref(), Some("New"));
    assert_eq!(messages[0].content.initiator, Some(user(1)));

    // The same topic again: no message.
    f.store
        .update_conversation(id, update, &user(1))
        .await
        .expect("same");
    assert_eq!(all_messages(&f, id, query(10)).await.len(), 2);

    // Metadata replaces the whole map; retention set, then cleared.
    f.store
        .update_conversation(
            id,
            ConversationUpdate {
                metadata: Some(meta(&[("a", "1"), ("b", "2")])),
                retention: Some(Some(RetentionPolicy::ThreadCreationDate {
                    delete_after_days: 7,
                })),
                ..ConversationUpdate::default()
            },
            &user(1),
        )
        .await
        .expect("metadata");
    f.store
        .update_conversation(
            id,
            ConversationUpdate {
                metadata: Some(meta(&[("c", "3")])),
                ..ConversationUpdate::default()
            },
            &user(1),
        )
        .await
        .expect("metadata again");
    let conversation = f
        .store
        .get_conversation(id)
        .await
        .expect("get")
        .expect("some");
    assert_eq!(conversation.metadata, meta(&[("c", "3")]));
    assert_eq!(
        conversation.retention,
        Some(RetentionPolicy::ThreadCreationDate {
            delete_after_days: 7
        })
    );
    assert_eq!(conversation.topic, "New");
    f.store
        .update_conversation(
            id,
            ConversationUpdate {
                retention: Some(None),
                ..ConversationUpdate::default()
            },
            &user(1),
        )
        .await
        .expect("clear retention");
    let conversation = f
        .store
        .get_conversation(id)
        .await
        .expect("get")
        .expect("some");
    assert_eq!(conversation.retention, None);
    assert_eq!(conversation.metadata, meta(&[("c", "3")]));
    // A cleared policy no longer expires anything.
    f.clock.advance(Duration::days(30));
    assert_eq!(f.store.delete_expired_conversations().await, Ok(vec![]));

    assert_eq!(
        f.store
            .update_conversation(
                ConversationId::generate(),
                ConversationUpdate::default(),
                &user(1)
            )
            .await,
        Err(StoreError::NotFound)
    );
}

pub async fn delete_conversation(f: Fixture) {
    let id = create(&f, 1, &[1, 2]).await;
    let message = f
        .store
        .append_message(text(id, 1, "hi"))
        .await
        .expect("append");
    f.store
        .put_read_receipt(id, &user(2), message.id)
        .await
        .expect("receipt");
    f.clock.advance(Duration::seconds(10));
    f.store.delete_conversation(id, None).await.expect("delete");

    let conversation = f
        .store
        .get_conversation(id)
        .await
        .expect("get")
        .expect("some");
    assert_eq!(conversation.deleted_on, Some(f.clock.now()));
    assert_eq!(
        f.store.delete_conversation(id, None).await,
        Err(StoreError::NotFound)
    );
    assert_eq!(
        f.store
            .delete_conversation(ConversationId::generate(), None)
            .await,
        Err(StoreError::NotFound)
    );

    // Every write to it is NotFound.
    assert_eq!(
        f.store.append_message(text(id, 1, "late")).await.err(),
        Some(StoreError::NotFound)
    );
    assert_eq!(
        f.store
            .update_conversation(
                id,
                ConversationUpdate {
                    topic: Some("x".into()),
                    ..ConversationUpdate::default()
                },
                &user(1)
            )
            .await,
        Err(StoreError::NotFound)
    );
    assert_eq!(
        f.store
            .add_participants(id, vec![member(3)], &user(1), 10)
            .await,
        Err(StoreError::NotFound)
    );
    assert_eq!(
        f.store.remove_participant(id, &user(2), &user(1)).await,
        Err(StoreError::NotFound)
    );
    assert_eq!(
        f.store
            .edit_message(
                id,
                message.id,
                MessageEdit {
                    text: Some("x".into()),
                    ..MessageEdit::default()
                }
            )
            .await
            .err(),
        Some(StoreError::NotFound)
    );
    assert_eq!(
        f.store.delete_message(id, message.id).await,
        Err(StoreError::NotFound)
    );
    assert_eq!(
        f.store.put_read_receipt(id, &user(1), message.id).await,
        Err(StoreError::NotFound)
    );

    // Reads still answer, and the member still lists it (marked deleted).
    assert_eq!(
        f.store.get_message(id, message.id).await,
        Ok(Some(message.clone()))
    );
    let listed = f
        .store
        .list_conversations(&user(2), None, None, 10)
        .await
        .expect("list");
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].deleted_on, Some(f.clock.now()));
}

pub async fn list_conversations(f: Fixture) {
    // Ten conversations, one a second; then a message moves the second-oldest to the top.
    let mut ids = Vec::new();
    for _ in 0..10 {
        ids.push(create(&f, 1, &[1, 2]).await);
        f.clock.advance(Duration::seconds(1));
    }
    let other = create(&f, 3, &[3]).await;
    f.clock.advance(Duration::seconds(1));
    let moved_on = f.clock.now();
    f.store
        .append_message(text(ids[1], 1, "bump"))
        .await
        .expect("append");

    let mut expected: Vec<ConversationId> = ids.iter().rev().copied().collect();
    expected.retain(|id| *id != ids[1]);
    expected.insert(0, ids[1]);

    // Paging, three at a time.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = f
            .store
            .list_conversations(&user(2), None, after.clone(), 3)
            .await
            .expect("page");
        assert!(page.items.len() <= 3);
        seen.extend(page.items.iter().map(|s| s.id));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, expected);
    assert!(!seen.contains(&other));

    let top = f
        .store
        .list_conversations(&user(2), None, None, 1)
        .await
        .expect("top");
    assert_eq!(top.items[0].id, ids[1]);
    assert_eq!(top.items[0].topic, "Topic");
    assert_eq!(top.items[0].last_message_on, Some(moved_on));
    assert_eq!(top.items[0].deleted_on, None);

    // Exactly `limit` rows left: no next page.
    let all = f
        .store
        .list_conversations(&user(2), None, None, 10)
        .await
        .expect("all");
    assert_eq!(all.items.len(), 10);
    assert_eq!(all.next, None);

    // Active since: the bumped one and the three newest (created at +7 s, +8 s, +9 s).
    let since = datetime!(2024-01-01 00:00:07 UTC);
    let active = f
        .store
        .list_conversations(&user(2), Some(since), None, 100)
        .await
        .expect("active");
    assert_eq!(
        active.items.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![ids[1], ids[9], ids[8], ids[7]]
    );

    // Identical activity: ordered by id, descending, and paging still sees each once.
    let same_time: Vec<ConversationId> = {
        let mut v = Vec::new();
        for _ in 0..5 {
            v.push(create(&f, 4, &[4]).await);
        }
        v.sort();
        v.reverse();
        v
    };
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = f
            .store
            .list_conversations(&user(4), None, after.clone(), 2)
            .await
            .expect("page");
        seen.extend(page.items.iter().map(|s| s.id));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, same_time);

    for bad in ["nope", "12_xyz", ""] {
        assert_eq!(
            f.store
                .list_conversations(&user(2), None, Some(bad.into()), 3)
                .await,
            Err(StoreError::InvalidCursor),
            "{bad}"
        );
    }

    // Removing a member takes the conversation off their list.
    f.store
        .remove_participant(ids[0], &user(2), &user(1))
        .await
        .expect("remove");
    let after_removal = f
        .store
        .list_conversations(&user(2), None, None, 100)
        .await
        .expect("list");
    assert!(!after_removal.items.iter().any(|s| s.id == ids[0]));
}

pub async fn retention_expiry(f: Fixture) {
    let mut one = new_conversation(1, &[1]);
    one.retention = Some(RetentionPolicy::ThreadCreationDate {
        delete_after_days: 1,
    });
    let mut two = new_conversation(1, &[1]);
    two.retention = Some(RetentionPolicy::ThreadCreationDate {
        delete_after_days: 2,
    });
    let forever = new_conversation(1, &[1]);
    for new in [one.clone(), two.clone(), forever.clone()] {
        f.store.create_conversation(new).await.expect("create");
    }
    assert_eq!(f.store.delete_expired_conversations().await, Ok(vec![]));

    f.clock.advance(Duration::hours(23));
    assert_eq!(f.store.delete_expired_conversations().await, Ok(vec![]));
    f.clock.advance(Duration::hours(1));
    assert_eq!(
        f.store.delete_expired_conversations().await,
        Ok(vec![one.id])
    );
    let deleted = f
        .store
        .get_conversation(one.id)
        .await
        .expect("get")
        .expect("some");
    assert_eq!(deleted.deleted_on, Some(f.clock.now()));
    // Already deleted: not again.
    assert_eq!(f.store.delete_expired_conversations().await, Ok(vec![]));

    f.clock.advance(Duration::days(5));
    assert_eq!(
        f.store.delete_expired_conversations().await,
        Ok(vec![two.id])
    );
    let kept = f
        .store
        .get_conversation(forever.id)
        .await
        .expect("get")
        .expect("some");
    assert_eq!(kept.deleted_on, None);
    assert!(
        f.events()
            .await
            .iter()
            .filter(|k| *k == "conversationDeleted")
            .count()
            == 2
    );

    // A policy set later counts from creation, not from the update.
    f.store
        .update_conversation(
            forever.id,
            ConversationUpdate {
                retention: Some(Some(RetentionPolicy::ThreadCreationDate {
                    delete_after_days: 3,
                })),
                ..ConversationUpdate::default()
            },
            &user(1),
        )
        .await
        .expect("set retention");
    assert_eq!(
        f.store.delete_expired_conversations().await,
        Ok(vec![forever.id])
    );
}

pub async fn participants(f: Fixture) {
    let id = create(&f, 1, &[1, 2]).await;
    f.clock.advance(Duration::seconds(1));

    // 2 is updated, 3 and 4 are new: one message listing 3 and 4.
    let mut two = member(2);
    two.display_name = Some("Renamed".into());
    two.role = Role::Admin;
    two.metadata = meta(&[("x", "y")]);
    let mut three = member(3);
    three.share_history_time = Some(datetime!(2023-06-01 00:00:00 UTC));
    f.store
        .add_participants(
            id,
            vec![two.clone(), three.clone(), member(4)],
            &user(1),
            10,
        )
        .await
        .expect("add");
    assert_eq!(
        f.store.get_participant(id, &user(2)).await,
        Ok(Some(two.clone()))
    );
    assert_eq!(
        f.store.get_participant(id, &user(3)).await,
        Ok(Some(three.clone()))
    );
    let messages = all_messages(&f, id, query(10)).await;
    assert_eq!(messages.len(), 2);
    let added = &messages[0];
    assert_eq!(added.kind, MessageType::ParticipantAdded);
    assert_eq!(added.sequence_id, 2);
    assert_eq!(added.content.initiator, Some(user(1)));
    assert_eq!(
        added
            .content
            .participants
            .iter()
            .map(|p| p.identity.clone())
            .collect::<Vec<_>>(),
        vec![user(3), user(4)]
    );
    assert_eq!(
        added.content.participants[0].share_history_time,
        three.share_history_time
    );

    // Only updates: no message.
    f.store
        .add_participants(id, vec![member(2)], &user(1), 10)
        .await
        .expect("update only");
    assert_eq!(all_messages(&f, id, query(10)).await.len(), 2);
    assert_eq!(
        f.store.get_participant(id, &user(2)).await,
        Ok(Some(member(2)))
    );

    // Removal: a participantRemoved message naming them.
    f.store
        .remove_participant(id, &user(3), &user(1))
        .await
        .expect("remove");
    assert_eq!(f.store.get_participant(id, &user(3)).await, Ok(None));
    let messages = all_messages(&f, id, query(10)).await;
    let removed = &messages[0];
    assert_eq!(removed.kind, MessageType::ParticipantRemoved);
    assert_eq!(removed.sequence_id, 3);
    assert_eq!(removed.sender, None);
    assert_eq!(removed.content.initiator, Some(user(1)));
    assert_eq!(
        removed.content.participants,
        vec![ParticipantRef {
            identity: user(3),
            display_name: Some("User 3".into()),
            share_history_time: three.share_history_time,
        }]
    );
    assert_eq!(
        f.store.remove_participant(id, &user(3), &user(1)).await,
        Err(StoreError::NotFound)
    );
    assert_eq!(
        f.store
            .remove_participant(ConversationId::generate(), &user(1), &user(1))
            .await,
        Err(StoreError::NotFound)
    );
    assert_eq!(
        f.store
            .add_participants(ConversationId::generate(), vec![member(5)], &user(1), 10)
            .await,
        Err(StoreError::NotFound)
    );

    // An identity named twice in one request is one participant, as last named.
    let mut renamed = member(6);
    renamed.display_name = Some("Six, last".into());
    let mut twice = new_conversation(1, &[1, 6]);
    twice.participants.push(renamed.clone());
    let twice = f.store.create_conversation(twice).await.expect("create");
    let twice = twice.conversation.id;
    assert_eq!(
        f.store.get_participant(twice, &user(6)).await,
        Ok(Some(renamed))
    );
    let mut seven = member(7);
    seven.role = Role::Admin;
    f.store
        .add_participants(twice, vec![member(7), seven.clone()], &user(1), 10)
        .await
        .expect("add twice");
    assert_eq!(
        f.store.get_participant(twice, &user(7)).await,
        Ok(Some(seven))
    );
    let everyone = f
        .store
        .list_participants(twice, list(10))
        .await
        .expect("participants");
    assert_eq!(everyone.items.len(), 3);
}

pub async fn participant_limit(f: Fixture) {
    let id = create(&f, 1, &[1, 2, 3]).await;
    // 3 + 2 new > 4: refused, nothing changes (not even the update of 1).
    let mut one = member(1);
    one.display_name = Some("Changed".into());
    assert_eq!(
        f.store
            .add_participants(id, vec![one.clone(), member(4), member(5)], &user(1), 4)
            .await,
        Err(StoreError::ParticipantLimit(4))
    );
    assert_eq!(
        f.store.get_participant(id, &user(1)).await,
        Ok(Some(member(1)))
    );
    assert_eq!(f.store.get_participant(id, &user(4)).await, Ok(None));
    assert_eq!(all_messages(&f, id, query(10)).await.len(), 1);
    // Exactly to the limit is fine; updates do not count.
    f.store
        .add_participants(id, vec![one.clone(), member(4)], &user(1), 4)
        .await
        .expect("to the limit");
    assert_eq!(f.store.get_participant(id, &user(1)).await, Ok(Some(one)));
    f.store
        .add_participants(id, vec![member(2)], &user(1), 4)
        .await
        .expect("update at the limit");
    // Duplicates in one request count once.
    let other = create(&f, 1, &[1]).await;
    f.store
        .add_participants(other, vec![member(2), member(2), member(2)], &user(1), 2)
        .await
        .expect("duplicates");
}

pub async fn participant_pages(f: Fixture) {
    let members: Vec<u32> = (1..=25).collect();
    let id = create(&f, 1, &members).await;
    let mut seen = Vec::new();
    let mut q = ListQuery {
        limit: 7,
        skip: 3,
        after: None,
    };
    loop {
        let page = f
            .store
            .list_participants(id, q.clone())
            .await
            .expect("page");
        assert!(page.items.len() <= 7);
        seen.extend(page.items.into_iter().map(|p| p.identity));
        match page.next {
            // `skip` stays set: it must apply to the first page only.
            Some(next) => q.after = Some(next),
            None => break,
        }
    }
    let expected: Vec<IdentityId> = (4..=25).map(user).collect();
    assert_eq!(seen, expected);
    assert_eq!(
        f.store
            .list_participants(
                id,
                ListQuery {
                    after: Some("not hex".into()),
                    ..list(5)
                }
            )
            .await,
        Err(StoreError::InvalidCursor)
    );
    let empty = f
        .store
        .list_participants(ConversationId::generate(), list(5))
        .await
        .expect("empty");
    assert!(empty.items.is_empty() && empty.next.is_none());
}

pub async fn messages(f: Fixture) {
    let id = create(&f, 1, &[1, 2]).await;
    let other = create(&f, 1, &[1]).await;
    f.clock.advance(Duration::seconds(1));
    let sent_on = f.clock.now();

    let mut new = text(id, 2, "hello");
    new.metadata = meta(&[("m", "1")]);
    let message = f.store.append_message(new).await.expect("append");
    assert_eq!(message.conversation, id);
    assert_eq!(message.sequence_id, 2);
    assert_eq!(message.kind, MessageType::Text);
    assert_eq!(message.content.text.as_deref(), Some("hello"));
    assert_eq!(message.sender, Some(user(2)));
    assert_eq!(message.sender_display_name.as_deref(), Some("User 2"));
    assert_eq!(message.metadata, meta(&[("m", "1")]));
    assert_eq!(message.version, message.id.0);
    assert_eq!(message.created_on, sent_on);
    assert_eq!(message.edited_on, None);
    assert_eq!(message.deleted_on, None);
    // The id is the time in µs (or just past the previous one).
    assert!(message.id.0 >= sent_on.unix_timestamp() * 1_000_000);
    assert_eq!(
        f.store.get_message(id, message.id).await,
        Ok(Some(message.clone()))
    );
    assert_eq!(f.store.get_message(other, message.id).await, Ok(None));
    assert_eq!(f.store.get_message(id, MessageId(1)).await, Ok(None));
    let conversation = f
        .store
        .get_conversation(id)
        .await
        .expect("get")
        .expect("some");
    assert_eq!(conversation.last_message_on, Some(sent_on));
    assert_eq!(
        f.store
            .append_message(text(ConversationId::generate(), 1, "x"))
            .await
            .err(),
        Some(StoreError::NotFound)
    );

    // Edit: text only, then metadata only.
    f.clock.advance(Duration::seconds(1));
    let edited = f
        .store
        .edit_message(
            id,
            message.id,
            MessageEdit {
                text: Some("hello!".into()),
                metadata: None,
            },
        )
        .await
        .expect("edit");
    assert_eq!(edited.content.text.as_deref(), Some("hello!"));
    assert_eq!(edited.metadata, meta(&[("m", "1")]));
    assert_eq!(edited.edited_on, Some(f.clock.now()));
    assert!(edited.version > message.version);
    assert_eq!(edited.created_on, message.created_on);
    assert_eq!(edited.sequence_id, message.sequence_id);
    assert_eq!(
        f.store.get_message(id, message.id).await,
        Ok(Some(edited.clone()))
    );
    let edited_again = f
        .store
        .edit_message(
            id,
            message.id,
            MessageEdit {
                text: None,
                metadata: Some(Metadata::new()),
            },
        )
        .await
        .expect("edit metadata");
    assert_eq!(edited_again.content.text.as_deref(), Some("hello!"));
    assert!(edited_again.metadata.is_empty());
    assert!(edited_again.version > edited.version);
    // Versions come from the id clock: a later message has a larger id than every version.
    let later = f
        .store
        .append_message(text(id, 1, "later"))
        .await
        .expect("later");
    assert!(later.id.0 > edited_again.version);
    assert_eq!(later.sequence_id, 3);

    assert_eq!(
        f.store
            .edit_message(other, message.id, MessageEdit::default())
            .await
            .err(),
        Some(StoreError::NotFound)
    );

    // Delete.
    f.clock.advance(Duration::seconds(1));
    f.store
        .delete_message(id, message.id)
        .await
        .expect("delete");
    let deleted = f
        .store
        .get_message(id, message.id)
        .await
        .expect("get")
        .expect("still there");
    assert_eq!(deleted.deleted_on, Some(f.clock.now()));
    assert_eq!(deleted.content.text, None);
    assert_eq!(deleted.sequence_id, message.sequence_id);
    assert_eq!(
        f.store.delete_message(id, message.id).await,
        Err(StoreError::NotFound)
    );
    assert_eq!(
        f.store.delete_message(id, MessageId(42)).await,
        Err(StoreError::NotFound)
    );
    assert_eq!(
        f.store
            .edit_message(
                id,
                message.id,
                MessageEdit {
                    text: Some("zombie".into()),
                    ..MessageEdit::default()
                }
            )
            .await
            .err(),
        Some(StoreError::NotFound)
    );
}

pub async fn message_pages(f: Fixture) {
    let id = create(&f, 1, &[1]).await;
    let mut sent = Vec::new();
    for i in 0..1000 {
        if i % 10 == 0 {
            f.clock.advance(Duration::milliseconds(3));
        }
        sent.push(
            f.store
                .append_message(text(id, 1, &format!("m{i}")))
                .await
                .expect("append"),
        );
    }
    let listed = all_messages(&f, id, query(50)).await;
    // 1000 messages + the participantAdded message, each once, newest first.
    assert_eq!(listed.len(), 1001);
    let ids: Vec<MessageId> = listed.iter().map(|m| m.id).collect();
    let unique: HashSet<MessageId> = ids.iter().copied().collect();
    assert_eq!(unique.len(), 1001);
    assert!(ids.windows(2).all(|w| w[0] > w[1]));
    let mut newest_first: Vec<Message> = sent.clone();
    newest_first.reverse();
    assert_eq!(&listed[..1000], &newest_first[..]);
    assert_eq!(listed[1000].sequence_id, 1);
    // Sequence ids run down without a gap.
    for (i, m) in listed.iter().enumerate() {
        assert_eq!(m.sequence_id, 1001 - i as i64);
    }

    // A page of exactly the remaining rows has no next.
    let last = f
        .store
        .list_messages(
            id,
            MessageQuery {
                after: Some(sent[1].id.0.to_string()),
                limit: 2,
                ..MessageQuery::default()
            },
        )
        .await
        .expect("last page");
    assert_eq!(last.items.len(), 2);
    assert_eq!(last.next, None);

    for bad in ["abc", "-5", "", "1_2"] {
        assert_eq!(
            f.store
                .list_messages(
                    id,
                    MessageQuery {
                        after: Some(bad.into()),
                        limit: 10,
                        ..MessageQuery::default()
                    }
                )
                .await,
            Err(StoreError::InvalidCursor),
            "{bad}"
        );
    }
}

pub async fn changed_since_and_created_from(f: Fixture) {
    let id = create(&f, 1, &[1]).await;
    let mut old = Vec::new();
    for i in 0..20 {
        f.clock.advance(Duration::seconds(1));
        old.push(
            f.store
                .append_message(text(id, 1, &format!("old {i}")))
                .await
                .expect("append"),
        );
    }
    f.clock.advance(Duration::minutes(10));
    let mark = f.clock.now();
    f.clock.advance(Duration::seconds(1));
    f.store
        .edit_message(
            id,
            old[3].id,
            MessageEdit {
                text: Some("edited".into()),
                ..MessageEdit::default()
            },
        )
        .await
        .expect("edit");
    f.store.delete_message(id, old[7].id).await.expect("delete");
    let mut new = Vec::new();
    for i in 0..3 {
        new.push(
            f.store
                .append_message(text(id, 1, &format!("new {i}")))
                .await
                .expect("append"),
        );
    }
    // Created and edited since: listed once.
    f.store
        .edit_message(
            id,
            new[1].id,
            MessageEdit {
                text: Some("new 1, edited".into()),
                ..MessageEdit::default()
            },
        )
        .await
        .expect("edit");

    let changed = all_messages(
        &f,
        id,
        MessageQuery {
            changed_since: Some(mark),
            limit: 2,
            ..MessageQuery::default()
        },
    )
    .await;
    let changed_ids: Vec<MessageId> = changed.iter().map(|m| m.id).collect();
    assert_eq!(
        changed_ids,
        vec![new[2].id, new[1].id, new[0].id, old[7].id, old[3].id]
    );
    assert_eq!(changed[1].content.text.as_deref(), Some("new 1, edited"));
    assert!(changed[3].deleted_on.is_some());
    assert_eq!(changed[4].content.text.as_deref(), Some("edited"));

    // created_from: only what was created at or after the time (a shared-history boundary).
    let from = old[15].created_on;
    let recent = all_messages(
        &f,
        id,
        MessageQuery {
            created_from: Some(from),
            limit: 3,
            ..MessageQuery::default()
        },
    )
    .await;
    assert_eq!(recent.len(), 3 + 5);
    assert!(recent.iter().all(|m| m.created_on >= from));
    assert_eq!(recent.last().map(|m| m.id), Some(old[15].id));

    // Both together.
    let both = all_messages(
        &f,
        id,
        MessageQuery {
            created_from: Some(from),
            changed_since: Some(mark),
            limit: 10,
            ..MessageQuery::default()
        },
    )
    .await;
    assert_eq!(both.len(), 3);

    // A time between two microseconds still includes the message created at the later one.
    let just_before = old[15].created_on - Duration::nanoseconds(500);
    let around = all_messages(
        &f,
        id,
        MessageQuery {
            created_from: Some(just_before),
            limit: 100,
            ..MessageQuery::default()
        },
    )
    .await;
    assert_eq!(around.len(), 8);
}

pub async fn read_receipts(f: Fixture) {
    let id = create(&f, 1, &[1, 2, 3]).await;
    let other = create(&f, 1, &[1]).await;
    let first = f.store.append_message(text(id, 1, "a")).await.expect("a");
    let second = f.store.append_message(text(id, 1, "b")).await.expect("b");
    let elsewhere = f
        .store
        .append_message(text(other, 1, "c"))
        .await
        .expect("c");

    f.clock.advance(Duration::seconds(1));
    let read_on = f.clock.now();
    f.store
        .put_read_receipt(id, &user(2), second.id)
        .await
        .expect("read");
    f.clock.advance(Duration::seconds(1));
    // An older message changes nothing.
    f.store
        .put_read_receipt(id, &user(2), first.id)
        .await
        .expect("older");
    f.store
        .put_read_receipt(id, &user(3), first.id)
        .await
        .expect("read 3");
    f.store
        .put_read_receipt(id, &user(1), first.id)
        .await
        .expect("read 1");
    f.clock.advance(Duration::seconds(1));
    f.store
        .put_read_receipt(id, &user(1), second.id)
        .await
        .expect("newer");

    let receipts = f
        .store
        .list_read_receipts(id, list(10))
        .await
        .expect("list");
    let summary: Vec<(IdentityId, MessageId)> = receipts
        .items
        .iter()
        .map(|r| (r.reader.clone(), r.message_id))
        .collect();
    assert_eq!(
        summary,
        vec![
            (user(1), second.id),
            (user(2), second.id),
            (user(3), first.id)
        ]
    );
    assert_eq!(receipts.items[0].read_on, f.clock.now());
    assert_eq!(receipts.items[1].read_on, read_on);

    // Paging with skip.
    let page = f
        .store
        .list_read_receipts(
            id,
            ListQuery {
                skip: 1,
                limit: 1,
                after: None,
            },
        )
        .await
        .expect("page");
    assert_eq!(page.items[0].reader, user(2));
    let next = f
        .store
        .list_read_receipts(
            id,
            ListQuery {
                skip: 1,
                limit: 1,
                after: page.next,
            },
        )
        .await
        .expect("next");
    assert_eq!(next.items[0].reader, user(3));
    assert_eq!(next.next, None);
    assert_eq!(
        f.store
            .list_read_receipts(
                id,
                ListQuery {
                    after: Some("zz".into()),
                    ..list(5)
                }
            )
            .await,
        Err(StoreError::InvalidCursor)
    );

    // The message must be in the conversation.
    assert_eq!(
        f.store.put_read_receipt(id, &user(2), elsewhere.id).await,
        Err(StoreError::NotFound)
    );
    assert_eq!(
        f.store.put_read_receipt(id, &user(2), MessageId(5)).await,
        Err(StoreError::NotFound)
    );
    assert_eq!(
        f.store
            .put_read_receipt(ConversationId::generate(), &user(2), second.id)
            .await,
        Err(StoreError::NotFound)
    );
    // A reader who leaves keeps their receipt.
    f.store
        .remove_participant(id, &user(3), &user(1))
        .await
        .expect("remove");
    assert_eq!(
        f.store
            .list_read_receipts(id, list(10))
            .await
            .expect("list")
            .items
            .len(),
        3
    );
}

pub async fn concurrent_appends_are_gapless(f: Fixture) {
    let store = Arc::clone(&f.store);
    let mut conversations = Vec::new();
    for _ in 0..4 {
        let created = store
            .create_conversation(new_conversation(1, &[1]))
            .await
            .expect("create");
        conversations.push(created.conversation.id);
    }
    // 2,000 appends from 40 tasks, spread over the conversations.
    let mut tasks = Vec::new();
    for task in 0..40u32 {
        let store = Arc::clone(&store);
        let conversations = conversations.clone();
        tasks.push(tokio::spawn(async move {
            let mut sent = Vec::new();
            for i in 0..50u32 {
                let conversation = conversations[((task + i) % 4) as usize];
                let message = store
                    .append_message(text(conversation, 1, &format!("{task}/{i}")))
                    .await
                    .expect("append");
                sent.push(message);
            }
            sent
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("task"));
    }
    assert_eq!(all.len(), 2000);
    let unique: HashSet<MessageId> = all.iter().map(|m| m.id).collect();
    assert_eq!(unique.len(), 2000);

    let mut by_conversation: BTreeMap<ConversationId, Vec<&Message>> = BTreeMap::new();
    for m in &all {
        by_conversation.entry(m.conversation).or_default().push(m);
    }
    for (conversation, mut messages) in by_conversation {
        messages.sort_by_key(|m| m.sequence_id);
        // Sequence 1 is the participantAdded message: the appends take 2..=n+1, no gap.
        let sequences: Vec<i64> = messages.iter().map(|m| m.sequence_id).collect();
        let expected: Vec<i64> = (2..=messages.len() as i64 + 1).collect();
        assert_eq!(sequences, expected);
        // Ids increase with the sequence.
        assert!(messages.windows(2).all(|w| w[0].id < w[1].id));
        // And the store agrees with what the appends answered.
        let listed = store
            .list_messages(conversation, query(1000))
            .await
            .expect("list");
        assert_eq!(listed.items.len(), messages.len() + 1);
        let mut listed_texts: Vec<&Message> = listed.items.iter().collect();
        listed_texts.reverse();
        assert_eq!(&listed_texts[1..], &messages[..]);
    }
}

pub async fn failures_in_a_batch_leave_no_gaps(f: Fixture) {
    let store = Arc::clone(&f.store);
    let good = store
        .create_conversation(new_conversation(1, &[1]))
        .await
        .expect("create")
        .conversation
        .id;
    let gone = store
        .create_conversation(new_conversation(1, &[1]))
        .await
        .expect("create")
        .conversation
        .id;
    store.delete_conversation(gone, None).await.expect("delete");
    // Good and failing appends submitted together land in shared batches.
    let mut tasks = Vec::new();
    for i in 0..400u32 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let target = if i % 3 == 0 { gone } else { good };
            store.append_message(text(target, 1, "x")).await
        }));
    }
    let mut ok = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(message) => {
                assert_eq!(message.conversation, good);
                ok += 1;
            }
            Err(err) => assert_eq!(err, StoreError::NotFound),
        }
    }
    assert_eq!(ok, 266);
    let listed = store.list_messages(good, query(1000)).await.expect("list");
    let sequences: Vec<i64> = listed.items.iter().rev().map(|m| m.sequence_id).collect();
    assert_eq!(sequences, (1..=267).collect::<Vec<i64>>());
}

/// What a store publishes after a commit is what a stream resuming from the log reads back,
/// byte for byte: message events (with quotes to escape, a display name or none, metadata, an
/// audience), an edit and a delete after the message's own event (whose row now says something
/// else), a creation; a failing write publishes nothing. Then retention: the newest events kept.
pub async fn published_events_read_back_alike(f: Fixture) {
    let published = f
        .published
        .clone()
        .expect("the backend's fixture sets PublishedEvents as the store's event sink");
    let id = create(&f, 1, &[1]).await;
    let mut sent = Vec::new();
    for i in 0..5 {
        let mut message = text(id, 1, &format!("m{i} \"quoted\""));
        message.metadata = meta(&[("n", &i.to_string())]);
        message.sender_display_name = (i % 2 == 0).then(|| format!("User {i}"));
        if i == 4 {
            message.audience = Audience::Subscribers(vec![user(1)]);
        }
        sent.push(f.store.append_message(message).await.expect("append").id);
    }
    // A failing write publishes nothing.
    assert_eq!(
        f.store
            .append_message(text(ConversationId::generate(), 1, "nowhere"))
            .await
            .err(),
        Some(StoreError::NotFound)
    );
    f.clock.advance(Duration::seconds(1));
    f.store
        .edit_message(
            id,
            sent[0],
            MessageEdit {
                text: Some("m0 edited".into()),
                metadata: Some(Metadata::new()),
            },
        )
        .await
        .expect("edit");
    f.store.delete_message(id, sent[1]).await.expect("delete");

    let live = published.all();
    let kinds: Vec<&str> = live.iter().map(|e| e.kind.name()).collect();
    assert_eq!(
        kinds,
        [
            "conversationCreated",
            // The participantAdded system message.
            "messageReceived",
            "messageReceived",
            "messageReceived",
            "messageReceived",
            "messageReceived",
            "messageReceived",
            "messageEdited",
            "messageDeleted"
        ]
    );
    let logged = f.store.events_after(0, 100).await.expect("read");
    assert_eq!(logged.len(), live.len());
    for (published, read) in live.iter().zip(&logged) {
        // The same event, byte for byte, whether it came live or from the log.
        assert_eq!(**published, *read);
    }
    assert!(
        logged[2].data().contains(r#""text":"m0 \"quoted\"""#),
        "{}",
        logged[2].data()
    );
    assert!(logged[7].data().contains("m0 edited"));
    assert!(logged[2].message.is_some_and(|m| !m.system));
    assert!(logged[1].message.is_some_and(|m| m.system));
    assert_eq!(logged[6].audience, Audience::Subscribers(vec![user(1)]));
    assert!(live[0]
        .data()
        .contains(&format!(r#""participants":["{}"]"#, user(1))));
    let third = logged[2].position.expect("position");
    assert_eq!(
        f.store.events_after(third, 100).await.expect("read"),
        logged[3..].to_vec()
    );

    // Retention: keep the newest 3, at most two positions per purge.
    let bounds = f.store.event_bounds().await.expect("bounds");
    assert_eq!(bounds.head, logged[8].position.expect("position"));
    while f.store.purge_events(None, Some(3), 2).await.expect("purge") > 0 {}
    let kept = f.store.events_after(0, 100).await.expect("read");
    assert_eq!(kept, logged[6..].to_vec());
    let bounds = f.store.event_bounds().await.expect("bounds");
    assert_eq!(bounds.purged_through, logged[5].position.expect("position"));
    assert_eq!(bounds.head, logged[8].position.expect("position"));
}

pub async fn events_are_logged(f: Fixture) {
    let id = create(&f, 1, &[1, 2]).await;
    f.store
        .update_conversation(
            id,
            ConversationUpdate {
                topic: Some("T2".into()),
                ..ConversationUpdate::default()
            },
            &user(1),
        )
        .await
        .expect("update");
    f.store
        .add_participants(id, vec![member(3)], &user(1), 10)
        .await
        .expect("add");
    f.store
        .remove_participant(id, &user(3), &user(1))
        .await
        .expect("remove");
    let m = f
        .store
        .append_message(text(id, 1, "x"))
        .await
        .expect("append");
    f.store
        .edit_message(
            id,
            m.id,
            MessageEdit {
                text: Some("y".into()),
                ..MessageEdit::default()
            },
        )
        .await
        .expect("edit");
    f.store
        .put_read_receipt(id, &user(2), m.id)
        .await
        .expect("receipt");
    f.store
        .delete_message(id, m.id)
        .await
        .expect("delete message");
    f.store.delete_conversation(id, None).await.expect("delete");
    // A failed write logs nothing.
    let _ = f.store.delete_conversation(id, None).await;
    assert_eq!(
        f.events().await,
        vec![
            "conversationCreated",
            "messageReceived",
            "conversationUpdated",
            "messageReceived",
            "participantsAdded",
            "messageReceived",
            "participantRemoved",
            "messageReceived",
            "messageReceived",
            "messageEdited",
            "readReceipt",
            "messageDeleted",
            "conversationDeleted",
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Groups and connector credentials (the Kaizala face).

pub async fn groups_and_members(f: Fixture) {
    // A Kaizala group of two phone numbers, one of which has logged in (has an identity row).
    let mut new = new_conversation(1, &[]);
    new.kind = ConversationKind::ConnectGroup;
    new.welcome_message = Some("Welcome!".into());
    new.participants = vec![
        Participant {
            role: Role::Admin,
            ..member(1)
        },
        Participant {
            identity: phone(1),
            ..member(2)
        },
        Participant {
            identity: phone(2),
            ..member(3)
        },
    ];
    let created = f.store.create_conversation(new).await.expect("create");
    let id = created.conversation.id;
    assert_eq!(created.conversation.kind, ConversationKind::ConnectGroup);
    assert_eq!(
        created.conversation.welcome_message.as_deref(),
        Some("Welcome!")
    );
    let stored = f
        .store
        .get_conversation(id)
        .await
        .expect("get")
        .expect("some");
    assert_eq!(stored, created.conversation);
    f.store
        .create_identity(&Identity {
            id: phone(1),
            created_on: f.clock.now(),
            token_generation: 0,
        })
        .await
        .expect("identity");
    // user(1) exists? No: only the phone; so user(1) and phone(2) are unprovisioned.
    let group = f
        .store
        .get_group(id, &phone(1))
        .await
        .expect("group")
        .expect("some");
    assert_eq!(group.conversation, stored);
    assert_eq!(group.viewer_role, Some(Role::Member));
    assert_eq!((group.member_count, group.unprovisioned_count), (3, 2));
    let outsider = f
        .store
        .get_group(id, &user(9))
        .await
        .expect("group")
        .expect("some");
    assert_eq!(outsider.viewer_role, None);
    assert_eq!(
        f.store
            .get_group(ConversationId::generate(), &user(1))
            .await,
        Ok(None)
    );

    let members = f.store.list_members(id, list(10)).await.expect("members");
    let provisioned: Vec<(String, bool, Role)> = members
        .items
        .iter()
        .map(|m| {
            (
                m.participant.identity.to_string(),
                m.provisioned,
                m.participant.role,
            )
        })
        .collect();
    assert_eq!(
        provisioned,
        vec![
            (phone(1).to_string(), true, Role::Member),
            (phone(2).to_string(), false, Role::Member),
            (user(1).to_string(), false, Role::Admin),
        ]
    );
    let first = f.store.list_members(id, list(2)).await.expect("page 1");
    assert_eq!(first.items.len(), 2);
    let second = f
        .store
        .list_members(
            id,
            ListQuery {
                after: first.next.clone(),
                ..list(2)
            },
        )
        .await
        .expect("page 2");
    assert_eq!(second.items.len(), 1);
    assert_eq!(second.next, None);

    // The groups of a member, paged by id; deleted ones are left out; chats are groups too.
    let mut ids = vec![id];
    for _ in 0..4 {
        ids.push(create(&f, 1, &[1]).await);
    }
    let gone = create(&f, 1, &[1]).await;
    f.store
        .delete_conversation(gone, None)
        .await
        .expect("delete");
    ids.sort();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = f.store.list_groups(&user(1), after, 2).await.expect("page");
        assert!(page.items.len() <= 2);
        for g in &page.items {
            assert!(g.viewer_role.is_some());
            seen.push(g.conversation.id);
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    let theirs = f
        .store
        .list_groups(&phone(2), None, 10)
        .await
        .expect("list");
    assert_eq!(theirs.items.len(), 1);
    assert_eq!(
        theirs.items[0].conversation.kind,
        ConversationKind::ConnectGroup
    );
    assert_eq!(
        f.store.list_groups(&user(1), Some("bogus".into()), 2).await,
        Err(StoreError::InvalidCursor)
    );
}

pub async fn participant_roles(f: Fixture) {
    let id = create(&f, 1, &[2]).await;
    let before = f.events().await.len();
    f.store
        .set_participant_role(id, &user(2), Role::Admin, &user(1))
        .await
        .expect("promote");
    let two = f
        .store
        .get_participant(id, &user(2))
        .await
        .expect("get")
        .expect("some");
    assert_eq!(two.role, Role::Admin);
    // The same role again changes nothing and logs nothing.
    f.store
        .set_participant_role(id, &user(2), Role::Admin, &user(1))
        .await
        .expect("same");
    let events = f.events().await;
    assert_eq!(events.len(), before + 1);
    assert_eq!(
        events.last().map(String::as_str),
        Some("participantRoleChanged")
    );
    assert_eq!(
        f.store
            .set_participant_role(id, &user(3), Role::Admin, &user(1))
            .await,
        Err(StoreError::NotFound)
    );
    f.store.delete_conversation(id, None).await.expect("delete");
    assert_eq!(
        f.store
            .set_participant_role(id, &user(2), Role::Member, &user(1))
            .await,
        Err(StoreError::NotFound)
    );
}

// ---------------------------------------------------------------------------------------------
// Subgroups, subscribers and message audiences.

pub async fn subgroups(f: Fixture) {
    let a = create(&f, 1, &[]).await;
    let b = create(&f, 1, &[]).await;
    let c = create(&f, 1, &[]).await;
    let d = create(&f, 1, &[]).await;
    // a → b → c, a → c (a DAG: c has two parents), and a subgroup d created under c.
    assert_eq!(f.store.add_subgroup(a, b, &user(1)).await, Ok(true));
    assert_eq!(f.store.add_subgroup(b, c, &user(1)).await, Ok(true));
    assert_eq!(f.store.add_subgroup(a, c, &user(1)).await, Ok(true));
    assert_eq!(f.store.add_subgroup(a, c, &user(1)).await, Ok(false));
    let mut sub = new_conversation(2, &[]);
    sub.kind = ConversationKind::Group;
    let e = f.store.create_subgroup(sub, c).await.expect("create").id;
    assert_eq!(
        f.store
            .get_conversation(e)
            .await
            .expect("get")
            .map(|c| c.kind),
        Some(ConversationKind::Group)
    );
    // Cycles are refused, the self-link included, however long.
    for (parent, child) in [(c, a), (e, a), (b, b), (e, c)] {
        assert!(
            matches!(
                f.store.add_subgroup(parent, child, &user(1)).await,
                Err(StoreError::Conflict(_))
            ),
            "{parent:?} → {child:?}"
        );
    }
    assert_eq!(
        f.store.add_subgroup(a, ConversationId(7), &user(1)).await,
        Err(StoreError::NotFound)
    );
    assert!(matches!(
        f.store
            .create_subgroup(new_conversation(1, &[]), ConversationId(7))
            .await,
        Err(StoreError::NotFound)
    ));

    let direct = f.store.list_subgroups(a, false, 100).await.expect("direct");
    let mut children: Vec<_> = direct.iter().map(|l| l.child.id).collect();
    children.sort();
    let mut expected = vec![b, c];
    expected.sort();
    assert_eq!(children, expected);
    assert!(direct.iter().all(|l| l.parent == a));
    let via_c = direct.iter().find(|l| l.child.id == c).expect("c");
    assert!(via_c.child_has_subgroups);
    // Every link reachable from a, each once: a→b, a→c, b→c, c→e.
    let all = f.store.list_subgroups(a, true, 100).await.expect("all");
    let mut edges: Vec<_> = all.iter().map(|l| (l.parent, l.child.id)).collect();
    edges.sort();
    let mut expected = vec![(a, b), (a, c), (b, c), (c, e)];
    expected.sort();
    assert_eq!(edges, expected);
    assert_eq!(
        f.store.list_subgroups(a, true, 2).await.expect("cut").len(),
        2
    );
    assert_eq!(f.store.list_subgroups(d, true, 100).await, Ok(vec![]));

    // Counts of the group view.
    let view = f
        .store
        .get_group(c, &user(1))
        .await
        .expect("get")
        .expect("c");
    assert_eq!((view.subgroup_count, view.parent_count), (1, 2));

    // A deleted subgroup is left out (and so is what is only below it).
    f.store.delete_conversation(c, None).await.expect("delete");
    let all = f.store.list_subgroups(a, true, 100).await.expect("all");
    assert_eq!(
        all.iter()
            .map(|l| (l.parent, l.child.id))
            .collect::<Vec<_>>(),
        vec![(a, b)]
    );
    let view = f
        .store
        .get_group(a, &user(1))
        .await
        .expect("get")
        .expect("a");
    assert_eq!(view.subgroup_count, 1);

    let before = f.events().await.len();
    f.store
        .remove_subgroup(a, b, &user(1))
        .await
        .expect("remove");
    assert_eq!(
        f.store.remove_subgroup(a, b, &user(1)).await,
        Err(StoreError::NotFound)
    );
    assert_eq!(f.events().await.len(), before + 1);
    assert_eq!(f.store.list_subgroups(a, false, 100).await, Ok(vec![]));
    // Detached, b may now hold a.
    assert_eq!(f.store.add_subgroup(b, a, &user(1)).await, Ok(true));
}

pub async fn subscribers(f: Fixture) {
    let mut new = new_conversation(1, &[2]);
    new.kind = ConversationKind::ConnectGroup;
    let id = f
        .store
        .create_conversation(new)
        .await
        .expect("create")
        .conversation
        .id;
    let before = f.events().await.len();
    let outcomes = f
        .store
        .add_subscribers(id, vec![phone(1), user(2), phone(2), phone(1)], &user(1))
        .await
        .expect("add");
    assert_eq!(
        outcomes,
        vec![
            (phone(1), SubscribeOutcome::Added),
            (user(2), SubscribeOutcome::IsMember),
            (phone(2), SubscribeOutcome::Added),
            (phone(1), SubscribeOutcome::AlreadySubscribed),
        ]
    );
    assert_eq!(f.events().await[before..], ["participantsAdded".to_owned()]);
    // Subscribers are not participants: not listed, not counted, no system message.
    let participants = f.store.list_participants(id, list(10)).await.expect("list");
    assert_eq!(participants.items.len(), 1);
    let group = f
        .store
        .get_group(id, &phone(1))
        .await
        .expect("get")
        .expect("g");
    assert_eq!(group.member_count, 1);
    assert_eq!(group.viewer_role, Some(Role::Subscriber));
    assert_eq!(
        f.store
            .get_participant(id, &phone(1))
            .await
            .expect("get")
            .map(|p| p.role),
        Some(Role::Subscriber)
    );
    assert_eq!(all_messages(&f, id, query(10)).await.len(), 1);
    assert_eq!(
        f.store
            .find_subscribers(id, vec![phone(2), user(2), phone(3), phone(1)])
            .await,
        Ok(vec![phone(2), phone(1)])
    );

    // 120 subscribers in pages of 50: keyset by identity, no duplicates, no gaps.
    let many: Vec<IdentityId> = (100..220).map(phone).collect();
    f.store
        .add_subscribers(id, many, &user(1))
        .await
        .expect("many");
    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = f.store.list_subscribers(id, after, 50).await.expect("page");
        pages += 1;
        assert!(page.items.len() <= 50);
        for m in &page.items {
            assert_eq!(m.participant.role, Role::Subscriber);
            seen.push(m.participant.identity.clone());
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 122);
    let unique: HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), 122);
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted);
    assert_eq!(
        f.store.list_subscribers(id, Some("bogus".into()), 50).await,
        Err(StoreError::InvalidCursor)
    );
    // A participants cursor (the hex of a raw id) is not a subscribers cursor.
    assert_eq!(
        f.store
            .list_subscribers(id, Some("343a2b".into()), 50)
            .await
            .err(),
        Some(StoreError::InvalidCursor)
    );

    // Removing: each answered; an event only when something changed.
    let before = f.events().await.len();
    assert_eq!(
        f.store
            .remove_subscribers(id, vec![phone(1), phone(3)], &user(1))
            .await,
        Ok(vec![(phone(1), true), (phone(3), false)])
    );
    assert_eq!(
        f.events().await[before..],
        ["participantRemoved".to_owned()]
    );
    assert_eq!(f.store.get_participant(id, &phone(1)).await, Ok(None));
    f.store
        .remove_subscribers(id, vec![phone(3)], &user(1))
        .await
        .expect("none");
    assert_eq!(f.events().await.len(), before + 1);

    // A subscriber added as a member is a subscriber no more.
    f.store
        .add_participants(
            id,
            vec![Participant {
                identity: phone(2),
                ..member(9)
            }],
            &user(1),
            250,
        )
        .await
        .expect("member");
    assert_eq!(
        f.store
            .get_participant(id, &phone(2))
            .await
            .expect("get")
            .map(|p| p.role),
        Some(Role::Member)
    );
    assert_eq!(
        f.store.find_subscribers(id, vec![phone(2)]).await,
        Ok(vec![])
    );

    f.store.delete_conversation(id, None).await.expect("delete");
    assert_eq!(
        f.store.add_subscribers(id, vec![phone(5)], &user(1)).await,
        Err(StoreError::NotFound)
    );
}

pub async fn message_audience(f: Fixture) {
    let mut new = new_conversation(1, &[]);
    new.kind = ConversationKind::ConnectGroup;
    let id = f
        .store
        .create_conversation(new)
        .await
        .expect("create")
        .conversation
        .id;
    f.store
        .add_subscribers(id, vec![phone(1), phone(2), phone(3)], &user(1))
        .await
        .expect("subscribe");
    let send = |text: &str, audience: Audience| {
        let mut message = self::text(id, 1, text);
        message.audience = audience;
        message
    };
    let mut sent = Vec::new();
    for i in 0..30 {
        let audience = match i % 3 {
            0 => Audience::Members,
            1 => Audience::AllSubscribers,
            _ => Audience::Subscribers(vec![phone(1), phone(3)]),
        };
        let message = f
            .store
            .append_message(send(&format!("m{i}"), audience.clone()))
            .await
            .expect("append");
        assert_eq!(message.audience, audience);
        sent.push(message);
    }
    // Read back as sent.
    for message in &sent {
        let got = f
            .store
            .get_message(id, message.id)
            .await
            .expect("get")
            .expect("some");
        assert_eq!(got.audience, message.audience);
    }
    // Members read everything; each subscriber only what reaches it, in pages, newest first.
    let texts = |messages: &[Message]| -> Vec<String> {
        messages
            .iter()
            .filter_map(|m| m.content.text.clone())
            .collect()
    };
    let everything = all_messages(&f, id, query(10)).await;
    assert_eq!(texts(&everything).len(), 30);
    // (The store filters by audience only: whether a reader subscribes is the core's check, so
    // a stranger would get what goes to every subscriber.)
    for (who, expected) in [
        (phone(1), 20),
        (phone(2), 10),
        (phone(3), 20),
        (phone(4), 10),
    ] {
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = f
                .store
                .list_messages(
                    id,
                    MessageQuery {
                        after,
                        limit: 3,
                        subscriber: Some(who.clone()),
                        ..MessageQuery::default()
                    },
                )
                .await
                .expect("page");
            assert!(page.items.len() <= 3);
            seen.extend(page.items);
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        assert_eq!(seen.len(), expected, "{who}");
        assert!(seen.windows(2).all(|w| w[0].id > w[1].id), "newest first");
        assert!(seen.iter().all(|m| m.audience.reaches_subscriber(&who)));
        assert!(seen.iter().all(|m| !m.kind.is_system()));
    }
    // changed_since narrows a subscriber's listing too.
    let last = sent.last().expect("last");
    f.clock.advance(Duration::seconds(5));
    let since = f.clock.now();
    f.store
        .edit_message(
            id,
            last.id,
            MessageEdit {
                text: Some("edited".into()),
                metadata: None,
            },
        )
        .await
        .expect("edit");
    let changed = f
        .store
        .list_messages(
            id,
            MessageQuery {
                changed_since: Some(since),
                limit: 10,
                subscriber: Some(phone(1)),
                ..MessageQuery::default()
            },
        )
        .await
        .expect("changed");
    assert_eq!(texts(&changed.items), ["edited"]);
}

fn application(id: &str) -> Application {
    Application {
        id: id.into(),
        name: format!("App {id}"),
        secret_hash: [7; 32],
        scopes: vec!["groupinfo.read".into(), "textmessage.write".into()],
        created_on: datetime!(2024-01-01 00:00:00 UTC),
    }
}

fn refresh(hash: u8, app: &str, who: IdentityId, now: OffsetDateTime) -> RefreshToken {
    RefreshToken {
        hash: [hash; 32],
        application: app.into(),
        identity: who,
        scopes: vec!["groupinfo.read".into()],
        created_on: now,
        expires_on: now + Duration::days(365),
    }
}

pub async fn applications(f: Fixture) {
    let a = application("a");
    let mut b = application("b");
    b.created_on += Duration::seconds(1);
    f.store.create_application(&a).await.expect("a");
    f.store.create_application(&b).await.expect("b");
    assert!(matches!(
        f.store.create_application(&a).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(f.store.get_application("a").await, Ok(Some(a.clone())));
    assert_eq!(f.store.get_application("x").await, Ok(None));
    assert_eq!(
        f.store.list_applications().await,
        Ok(vec![a.clone(), b.clone()])
    );

    // Deleting an application takes its PINs and refresh tokens with it.
    let now = f.clock.now();
    f.store
        .add_refresh_token(&refresh(1, "a", phone(1), now))
        .await
        .expect("token");
    f.store
        .add_refresh_token(&refresh(2, "b", phone(1), now))
        .await
        .expect("token");
    f.store.delete_application("a").await.expect("delete");
    assert_eq!(f.store.get_application("a").await, Ok(None));
    assert_eq!(f.store.get_refresh_token(&[1; 32]).await, Ok(None));
    assert!(f
        .store
        .get_refresh_token(&[2; 32])
        .await
        .expect("get")
        .is_some());
    assert_eq!(
        f.store.delete_application("a").await,
        Err(StoreError::NotFound)
    );
}

pub async fn pins(f: Fixture) {
    f.store
        .create_application(&application("a"))
        .await
        .expect("app");
    let now = f.clock.now();
    let challenge = PinChallenge {
        application: "a".into(),
        identity: phone(1),
        pin_hash: [1; 32],
        expires_on: now + Duration::minutes(10),
        attempts_left: 2,
    };
    let redeem = |hash: u8, token: u8| PinRedemption {
        application: "a".into(),
        identity: phone(1),
        pin_hash: [hash; 32],
        now,
        refresh_token: refresh(token, "a", phone(1), now),
    };
    assert_eq!(
        f.store.redeem_pin(redeem(1, 10)).await,
        Ok(PinOutcome::Missing)
    );

    // Wrong, then right: redeemed once, creating the identity and the refresh token.
    f.store.put_pin(&challenge).await.expect("pin");
    assert_eq!(
        f.store.redeem_pin(redeem(9, 10)).await,
        Ok(PinOutcome::Wrong { attempts_left: 1 })
    );
    assert_eq!(
        f.store.redeem_pin(redeem(1, 11)).await,
        Ok(PinOutcome::Redeemed { first_login: true })
    );
    assert_eq!(f.store.get_refresh_token(&[10; 32]).await, Ok(None));
    assert!(f
        .store
        .get_refresh_token(&[11; 32])
        .await
        .expect("get")
        .is_some());
    assert!(f
        .store
        .get_identity(&phone(1))
        .await
        .expect("get")
        .is_some());
    assert_eq!(
        f.store.redeem_pin(redeem(1, 12)).await,
        Ok(PinOutcome::Missing)
    );

    // A second login replaces the first login's refresh token; the identity stays.
    f.store.put_pin(&challenge).await.expect("pin");
    assert_eq!(
        f.store.redeem_pin(redeem(1, 13)).await,
        Ok(PinOutcome::Redeemed { first_login: false })
    );
    assert_eq!(f.store.get_refresh_token(&[11; 32]).await, Ok(None));
    assert!(f
        .store
        .get_refresh_token(&[13; 32])
        .await
        .expect("get")
        .is_some());

    // Attempts run out: the PIN is gone, even the right one fails afterwards.
    f.store.put_pin(&challenge).await.expect("pin");
    assert_eq!(
        f.store.redeem_pin(redeem(9, 14)).await,
        Ok(PinOutcome::Wrong { attempts_left: 1 })
    );
    assert_eq!(
        f.store.redeem_pin(redeem(8, 14)).await,
        Ok(PinOutcome::Wrong { attempts_left: 0 })
    );
    assert_eq!(
        f.store.redeem_pin(redeem(1, 14)).await,
        Ok(PinOutcome::Missing)
    );

    // An expired PIN; a new PIN replaces a pending one.
    f.store
        .put_pin(&PinChallenge {
            expires_on: now,
            ..challenge.clone()
        })
        .await
        .expect("pin");
    assert_eq!(
        f.store.redeem_pin(redeem(1, 15)).await,
        Ok(PinOutcome::Expired)
    );
    assert_eq!(
        f.store.redeem_pin(redeem(1, 15)).await,
        Ok(PinOutcome::Missing)
    );
    f.store
        .put_pin(&PinChallenge {
            pin_hash: [5; 32],
            ..challenge.clone()
        })
        .await
        .expect("pin");
    f.store.put_pin(&challenge).await.expect("replace");
    assert_eq!(
        f.store.redeem_pin(redeem(1, 16)).await,
        Ok(PinOutcome::Redeemed { first_login: false })
    );
}

pub async fn refresh_tokens(f: Fixture) {
    let now = f.clock.now();
    let token = refresh(1, "a", phone(1), now);
    f.store.add_refresh_token(&token).await.expect("add");
    assert_eq!(
        f.store.get_refresh_token(&[1; 32]).await,
        Ok(Some(token.clone()))
    );
    let short = RefreshToken {
        hash: [2; 32],
        expires_on: now + Duration::seconds(5),
        ..token.clone()
    };
    f.store.add_refresh_token(&short).await.expect("add");
    f.store
        .put_pin(&PinChallenge {
            application: "a".into(),
            identity: phone(1),
            pin_hash: [1; 32],
            expires_on: now + Duration::seconds(5),
            attempts_left: 3,
        })
        .await
        .expect("pin");
    assert_eq!(f.store.purge_expired_credentials(now).await, Ok(0));
    assert_eq!(
        f.store
            .purge_expired_credentials(now + Duration::seconds(5))
            .await,
        Ok(2)
    );
    assert_eq!(f.store.get_refresh_token(&[2; 32]).await, Ok(None));
    assert_eq!(f.store.get_refresh_token(&[1; 32]).await, Ok(Some(token)));
}

/// `get_membership` answers what `get_conversation` and `get_participant` answer, in one read.
pub async fn membership(f: Fixture) {
    let store = &f.store;
    let new = new_conversation(1, &[1, 2]);
    let id = new.id;
    store.create_conversation(new).await.expect("create");
    let found = store
        .get_conversation(id)
        .await
        .expect("read")
        .expect("found");

    let access = store
        .get_membership(id, &user(2))
        .await
        .expect("read")
        .expect("conversation");
    assert_eq!(access.kind, found.kind);
    assert!(!access.deleted);
    assert_eq!(
        access.participant,
        store.get_participant(id, &user(2)).await.expect("read")
    );
    assert_eq!(access.participant.map(|p| p.identity), Some(user(2)));

    let stranger = store
        .get_membership(id, &user(3))
        .await
        .expect("read")
        .expect("conversation");
    assert_eq!(stranger.participant, None);
    assert_eq!(
        store
            .get_membership(ConversationId::generate(), &user(1))
            .await
            .expect("read"),
        None
    );

    store.delete_conversation(id, None).await.expect("delete");
    let deleted = store
        .get_membership(id, &user(1))
        .await
        .expect("read")
        .expect("a deleted conversation is still answered");
    assert!(deleted.deleted);
}

/// Every change of who is in a conversation shows in `get_membership` as soon as the write
/// that made it has returned, however often it was answered before (from memory or not).
pub async fn membership_follows_every_change(f: Fixture) {
    let store = &f.store;
    let mut new = new_conversation(1, &[1, 2]);
    new.kind = ConversationKind::ConnectGroup;
    let id = new.id;
    store.create_conversation(new).await.expect("create");
    let role_of = |identity: IdentityId| async move {
        store
            .get_membership(id, &identity)
            .await
            .expect("read")
            .expect("conversation")
            .participant
            .map(|p| p.role)
    };
    for _ in 0..2 {
        assert_eq!(role_of(user(2)).await, Some(Role::Member));
        assert_eq!(role_of(user(3)).await, None);
        assert_eq!(role_of(phone(1)).await, None);
    }

    store
        .add_participants(id, vec![member(3)], &user(1), 100)
        .await
        .expect("add");
    assert_eq!(role_of(user(3)).await, Some(Role::Member));
    store
        .add_subscribers(id, vec![phone(1)], &user(1))
        .await
        .expect("subscribe");
    assert_eq!(role_of(phone(1)).await, Some(Role::Subscriber));
    store
        .remove_subscribers(id, vec![phone(1)], &user(1))
        .await
        .expect("unsubscribe");
    assert_eq!(role_of(phone(1)).await, None);

    store
        .set_participant_role(id, &user(3), Role::Admin, &user(1))
        .await
        .expect("role");
    assert_eq!(role_of(user(3)).await, Some(Role::Admin));

    store
        .remove_participant(id, &user(2), &user(1))
        .await
        .expect("remove");
    assert_eq!(role_of(user(2)).await, None);

    store.delete_conversation(id, None).await.expect("delete");
    assert!(
        store
            .get_membership(id, &user(1))
            .await
            .expect("read")
            .expect("conversation")
            .deleted
    );
}
