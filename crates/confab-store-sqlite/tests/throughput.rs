//! A rough throughput probe, not run by default:
//! `cargo test -p confab-store-sqlite --release --test throughput -- --ignored --nocapture`.

use std::sync::Arc;
use std::time::Instant;

use confab_core::ids::{ConversationId, IdentityId};
use confab_core::model::{MessageContent, MessageType, Metadata, Participant, Role};
use confab_core::ports::{NewConversation, NewMessage, Store, SystemClock};
use confab_store_sqlite::SqliteStore;

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
