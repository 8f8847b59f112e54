//! What only the SQLite store does, beyond the conformance suite (tests/conformance.rs):
//! `close`, reopening a file, separate in-memory stores, the schema version check, and a
//! throughput probe.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use confab_core::ids::{ConversationId, IdentityId};
use confab_core::model::{Identity, MessageContent, MessageType, Metadata, Participant, Role};
use confab_core::ports::{
    Clock, MessageEdit, NewConversation, NewMessage, Store, StoreError, SystemClock, WebhookStore,
};
use confab_store_conformance::webhooks::{conversation, now, send, webhook};
use confab_store_conformance::{list, new_conversation, query, text, user, TestClock};
use confab_store_sqlite::SqliteStore;
use time::macros::datetime;
use time::Duration;

mod support;
use support::TempDir;

// ---------------------------------------------------------------------------------------------
// Closing, on a file store and an in-memory one.

mod close_finishes_and_refuses_writes {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn file() {
        let dir = TempDir::new();
        let store = SqliteStore::open(&dir.db(), TestClock::new()).expect("open");
        check(store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn in_memory() {
        check(SqliteStore::in_memory(TestClock::new()).expect("in_memory")).await;
    }

    async fn check(store: SqliteStore) {
        let store = Arc::new(store);
        let id = store
            .create_conversation(new_conversation(1, &[1]))
            .await
            .expect("create")
            .conversation
            .id;
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let store = Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                store.append_message(text(id, 1, "x")).await
            }));
        }
        // Let the appends queue up, then close: each is either committed or refused, never lost.
        tokio::task::yield_now().await;
        store.close().await;
        let mut committed = 0;
        for task in tasks {
            match task.await.expect("task") {
                Ok(_) => committed += 1,
                Err(err) => assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}"),
            }
        }
        assert!(matches!(
            store.append_message(text(id, 1, "late")).await,
            Err(StoreError::Unavailable(_))
        ));
        // Reads still work and see exactly the committed appends.
        let listed = store.list_messages(id, query(1000)).await.expect("list");
        assert_eq!(listed.items.len(), committed + 1);
        store.close().await; // twice is fine
    }
}

// ---------------------------------------------------------------------------------------------
// File store only.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_keeps_data_and_continues_ids_and_sequences() {
    let dir = TempDir::new();
    let clock = TestClock::new();
    let (id, last_version, last_id) = {
        let store = SqliteStore::open(&dir.db(), clock.clone()).expect("open");
        let created = store
            .create_conversation(new_conversation(1, &[1, 2]))
            .await
            .expect("create");
        let id = created.conversation.id;
        let mut last = None;
        for i in 0..5 {
            last = Some(
                store
                    .append_message(text(id, 1, &format!("{i}")))
                    .await
                    .expect("append"),
            );
        }
        let last = last.expect("sent");
        // An edit moves the id clock past every message id.
        clock.advance(Duration::hours(1));
        let edited = store
            .edit_message(
                id,
                last.id,
                MessageEdit {
                    text: Some("edited".into()),
                    ..MessageEdit::default()
                },
            )
            .await
            .expect("edit");
        store
            .create_identity(&Identity {
                id: user(9),
                created_on: clock.now(),
                token_generation: 1,
            })
            .await
            .expect("identity");
        (id, edited.version, last.id)
    }; // dropped: the writer finishes and stops

    // The clock went back (a restart on a machine with a slower clock).
    clock.set(datetime!(2023-01-01 00:00:00 UTC));
    let store = SqliteStore::open(&dir.db(), clock.clone()).expect("reopen");
    assert!(store.get_identity(&user(9)).await.expect("get").is_some());
    let conversation = store
        .get_conversation(id)
        .await
        .expect("get")
        .expect("kept");
    assert_eq!(conversation.topic, "Topic");
    let next = store
        .append_message(text(id, 2, "again"))
        .await
        .expect("append");
    assert_eq!(next.sequence_id, 7);
    assert!(next.id > last_id);
    assert!(next.id.0 > last_version, "ids stay above every version");
    let listed = store.list_messages(id, query(100)).await.expect("list");
    assert_eq!(listed.items.len(), 7);
    assert_eq!(
        listed.items[1].content.text.as_deref(),
        Some("edited"),
        "the edit survived"
    );
    drop(store);

    // A third open with no changes in between migrates nothing and still works.
    let store = SqliteStore::open(&dir.db(), clock).expect("third open");
    assert_eq!(
        store
            .list_participants(id, list(10))
            .await
            .expect("list")
            .items
            .len(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_stores_are_separate_and_leave_no_files() {
    let clock = TestClock::new();
    let a = SqliteStore::in_memory(clock.clone()).expect("a");
    let b = SqliteStore::in_memory(clock.clone()).expect("b");
    assert_ne!(a.path(), b.path());
    let created = a
        .create_conversation(new_conversation(1, &[1]))
        .await
        .expect("create");
    assert_eq!(b.get_conversation(created.conversation.id).await, Ok(None));
    let path = a.path().to_path_buf();
    assert!(path.exists());
    drop(a);
    assert!(!path.exists());
    let mut wal = path.into_os_string();
    wal.push("-wal");
    assert!(!PathBuf::from(wal).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_schema_is_refused() {
    let dir = TempDir::new();
    let clock = TestClock::new();
    drop(SqliteStore::open(&dir.db(), clock.clone()).expect("open"));
    {
        let conn = rusqlite::Connection::open(dir.db()).expect("raw");
        conn.execute_batch("PRAGMA user_version = 999")
            .expect("bump");
    }
    assert!(matches!(
        SqliteStore::open(&dir.db(), clock),
        Err(StoreError::Unavailable(_))
    ));
}

// ---------------------------------------------------------------------------------------------
// Webhooks.

#[tokio::test]
async fn subscriptions_and_pending_deliveries_survive_a_reopen() {
    let dir = TempDir::new();
    let clock = TestClock::new();
    assert_eq!(clock.now(), now());
    let (conversation_id, hook) = {
        let store = SqliteStore::open(&dir.db(), clock.clone()).expect("open");
        let c = conversation(&store).await;
        let hook = webhook(c, &["TextMessageCreated"]);
        store.create_webhook(hook.clone()).await.expect("create");
        send(&store, c, "one").await;
        (c, hook)
    };
    let store = SqliteStore::open(&dir.db(), clock.clone()).expect("reopen");
    assert_eq!(store.due_deliveries(now(), 10).await.expect("due").len(), 1);
    // The writer loaded the subscription: new events are recorded too.
    send(&store, conversation_id, "two").await;
    assert_eq!(
        store
            .list_deliveries(&hook.id, None, 10)
            .await
            .expect("log")
            .len(),
        2
    );
}

// ---------------------------------------------------------------------------------------------
// A rough throughput probe, not run by default:
// `cargo test -p confab-store-sqlite --release --test sqlite_only appends_per_second -- --ignored --nocapture`.

const TASKS: usize = 512;
const PER_TASK: usize = 200;
const CONVERSATIONS: usize = 64;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark; run in release with --ignored --nocapture"]
async fn appends_per_second() {
    let dir = std::env::temp_dir().join(format!("confab-throughput-{}", std::process::id()));
    let path = dir.join("bench.sqlite");
    let store = Arc::new(SqliteStore::open(&path, Arc::new(SystemClock)).expect("open"));
    let sender = IdentityId::parse("8:acs:res_bench").expect("id");
    let mut conversations = Vec::new();
    for _ in 0..CONVERSATIONS {
        let new = NewConversation {
            id: ConversationId::generate(),
            topic: "bench".into(),
            created_by: sender.clone(),
            metadata: Metadata::new(),
            retention: None,
            participants: vec![Participant {
                identity: sender.clone(),
                display_name: None,
                share_history_time: None,
                metadata: Metadata::new(),
                role: Role::Admin,
            }],
            repeatability_key: None,
            kind: Default::default(),
            welcome_message: None,
        };
        conversations.push(
            store
                .create_conversation(new)
                .await
                .expect("create")
                .conversation
                .id,
        );
    }

    let started = Instant::now();
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let store = Arc::clone(&store);
        let sender = sender.clone();
        let conversation = conversations[task % CONVERSATIONS];
        tasks.push(tokio::spawn(async move {
            for i in 0..PER_TASK {
                let message = NewMessage {
                    conversation,
                    kind: MessageType::Text,
                    content: MessageContent {
                        text: Some(format!("message {i} from task {task}")),
                        ..MessageContent::default()
                    },
                    sender: Some(sender.clone()),
                    sender_display_name: Some("Bench".into()),
                    metadata: Metadata::new(),
                    audience: Default::default(),
                };
                store.append_message(message).await.expect("append");
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    let elapsed = started.elapsed();
    let total = TASKS * PER_TASK;
    println!(
        "{total} appends from {TASKS} tasks in {elapsed:?}: {:.0} appends/s (synchronous=FULL)",
        total as f64 / elapsed.as_secs_f64()
    );
    drop(store);
    let _ = std::fs::remove_dir_all(dir);
}
