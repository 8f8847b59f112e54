//! The PostgreSQL store against a real server: `CONFAB_TEST_POSTGRES_URL` names the database
//! (`scripts/test` sets it, starting PostgreSQL if it is not running). Without it these tests
//! say so and pass: a user's machine need not run PostgreSQL.
//!
//! Each test works in a scratch schema of its own, dropped at the end. The `Store` contract is
//! the conformance suite's (`mod conformance`); the tests here are what only a shared database
//! has: several nodes at once, migrations, the connection.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use confab_core::ids::{ConversationId, IdentityId};
use confab_core::model::{Application, Identity, PinChallenge, RefreshToken};
use confab_core::ports::webhooks::DeliveryAttempt;
use confab_core::ports::{
    CommittedEvent, ConnectorStore, PinOutcome, PinRedemption, Store, StoreError, SystemClock,
    WebhookStore,
};
use confab_store_conformance::webhooks::{conversation, now, send, webhook};
use confab_store_conformance::{list, new_conversation, query, text};
use confab_store_conformance::{Fixture, PublishedEvents, TestClock};
use confab_store_postgres::{Config, PostgresStore};
use time::macros::datetime;
use time::Duration;

/// A schema of its own in the test database, dropped on drop.
struct Scratch {
    base: Config,
    schema: String,
}

impl Scratch {
    /// `None` (after saying why) when no test database is configured.
    fn new() -> Option<Self> {
        let Ok(url) = std::env::var("CONFAB_TEST_POSTGRES_URL") else {
            eprintln!("CONFAB_TEST_POSTGRES_URL is not set: PostgreSQL store test skipped");
            return None;
        };
        let base: Config = url.parse().expect("CONFAB_TEST_POSTGRES_URL");
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let schema = format!(
            "confab_test_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let sql = format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema};");
        run_blocking(&base, sql);
        Some(Self { base, schema })
    }

    /// The configuration a store of this schema connects with.
    fn config(&self) -> Config {
        let mut config = self.base.clone();
        config.options(format!("-c search_path={}", self.schema));
        config
    }

    async fn store(&self) -> PostgresStore {
        PostgresStore::connect(self.config(), Arc::new(SystemClock))
            .await
            .expect("connect")
    }

    /// Runs SQL in this schema.
    fn sql(&self, sql: &str) {
        run_blocking(&self.config(), sql.to_owned());
    }

    /// The `bigint` a query of this schema answers.
    fn number(&self, sql: &str) -> i64 {
        let config = self.config();
        let sql = sql.to_owned();
        std::thread::spawn(move || {
            let mut client = postgres::Config::from(config)
                .connect(postgres::NoTls)
                .expect("connect");
            client
                .query_one(sql.as_str(), &[])
                .expect("query")
                .get::<_, i64>(0)
        })
        .join()
        .expect("query thread")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        run_blocking(
            &self.base,
            format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema),
        );
    }
}

/// Runs SQL on a connection of its own, on a thread of its own (the synchronous client must not
/// run on an async worker).
fn run_blocking(config: &Config, sql: String) {
    let config = config.clone();
    std::thread::spawn(move || {
        let mut client = postgres::Config::from(config)
            .connect(postgres::NoTls)
            .expect("connect");
        client.batch_execute(&sql).expect("sql");
    })
    .join()
    .expect("sql thread");
}

/// A fresh store in a scratch schema, for the conformance suite.
async fn conformance_store() -> Option<Fixture> {
    let scratch = Scratch::new()?;
    let clock = TestClock::new();
    let store = PostgresStore::connect(scratch.config(), clock.clone())
        .await
        .expect("connect");
    let published = Arc::new(PublishedEvents::default());
    assert!(store.set_event_sink(published.clone()));
    Some(
        Fixture::new(Arc::new(store), clock)
            .with_published(published)
            .with_guard(scratch),
    )
}

/// The `Store` contract, as every store must keep it (`confab-store-conformance`).
mod conformance {
    confab_store_conformance::all_checks!(super::conformance_store);
}

fn identity(n: u32) -> Identity {
    Identity {
        id: IdentityId::parse(&format!("8:acs:res_{n:06}")).expect("identity"),
        created_on: datetime!(2024-01-01 00:00:00.123456 UTC),
        token_generation: 0,
    }
}

/// Many writes at once share batches; the ones that fail (duplicates) fail alone and the
/// others commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_write_fails_alone_in_its_batch() {
    let Some(scratch) = Scratch::new() else {
        return;
    };
    let store = Arc::new(scratch.store().await);
    store.create_identity(&identity(0)).await.expect("first");
    let mut tasks = Vec::new();
    for n in 0..200 {
        let store = Arc::clone(&store);
        // Every tenth is the identity that exists already.
        let id = if n % 10 == 0 { 0 } else { n };
        tasks.push(tokio::spawn(async move {
            store.create_identity(&identity(id)).await
        }));
    }
    let mut conflicts = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => conflicts += 1,
            Err(err) => panic!("unexpected {err:?}"),
        }
    }
    assert_eq!(conflicts, 20);
    for n in 1..200 {
        let expected = n % 10 != 0;
        let found = store.get_identity(&identity(n).id).await.expect("get");
        assert_eq!(found.is_some(), expected, "identity {n}");
    }
}

/// Two nodes on one database: their writers take turns, and each sees the other's commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_share_one_database() {
    let Some(scratch) = Scratch::new() else {
        return;
    };
    let (a, b) = tokio::join!(scratch.store(), scratch.store());
    let (a, b) = (Arc::new(a), Arc::new(b));
    let mut tasks = Vec::new();
    for n in 0..100 {
        let node = if n % 2 == 0 {
            Arc::clone(&a)
        } else {
            Arc::clone(&b)
        };
        tasks.push(tokio::spawn(async move {
            node.create_identity(&identity(n)).await
        }));
    }
    for task in tasks {
        task.await.expect("task").expect("create");
    }
    for n in 0..100 {
        let reader = if n % 2 == 0 { &b } else { &a };
        assert!(reader
            .get_identity(&identity(n).id)
            .await
            .expect("get")
            .is_some());
    }
}

/// A writer that waited for the writers' lock reads the id clock as the lock's last holder
/// left it: here "another node" moves the clock far ahead while holding the lock, and the
/// message appended meanwhile must get an id past it (before, the clock was read in the
/// statement that waited, which saw only what was committed when it began).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_that_waited_for_the_lock_reads_the_clock_its_holder_left() {
    let Some(scratch) = Scratch::new() else {
        return;
    };
    let store = scratch.store().await;
    let id = store
        .create_conversation(new_conversation(1, &[1]))
        .await
        .expect("create")
        .conversation
        .id;
    let ahead: i64 = 4_000_000_000_000_000; // µs: the year 2096
    let (locked, lock_taken) = std::sync::mpsc::channel();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let config = postgres::Config::from(scratch.config());
    let other_node = std::thread::spawn(move || {
        let mut client = config.connect(postgres::NoTls).expect("connect");
        client
            .batch_execute(
                "BEGIN; SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.confab_writes'))",
            )
            .expect("lock");
        locked.send(()).expect("locked");
        released.recv().expect("release");
        client
            .batch_execute(&format!(
                "INSERT INTO meta (key, value) VALUES ('id_clock', {ahead})
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value;
                 COMMIT"
            ))
            .expect("commit");
    });
    tokio::task::spawn_blocking(move || lock_taken.recv())
        .await
        .expect("wait")
        .expect("locked");
    let append = tokio::spawn(async move { store.append_message(text(id, 1, "after")).await });
    // Long enough for the append to be waiting for the lock; were it not yet, it would read
    // the moved clock anyway.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    release.send(()).expect("release");
    other_node.join().expect("other node");
    let message = append.await.expect("task").expect("append");
    assert!(
        message.id.0 > ahead,
        "id {} not past the clock",
        message.id.0
    );
}

/// Two nodes appending to one thread keep its sequence ids gapless and unique. Each writer
/// remembers the newest sequence id of the threads it appended to; when the other node's writer
/// has appended since (the id clock moved), what it remembers is behind, and it must read again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_appending_to_one_thread_keep_its_sequence_ids_gapless() {
    let Some(scratch) = Scratch::new() else {
        return;
    };
    let (a, b) = tokio::join!(scratch.store(), scratch.store());
    let (a, b) = (Arc::new(a), Arc::new(b));
    let id = a
        .create_conversation(new_conversation(1, &[1]))
        .await
        .expect("create")
        .conversation
        .id;
    // One at a time, alternating: each append must follow the one the other node made.
    let mut expected = 1; // the creation's system message
    for n in 0..10 {
        let node = if n % 2 == 0 { &a } else { &b };
        let message = node
            .append_message(text(id, 1, &format!("one at a time {n}")))
            .await
            .expect("append");
        expected += 1;
        assert_eq!(message.sequence_id, expected, "append {n}");
    }
    // Many at once on both nodes, so that each writer takes several together.
    let mut tasks = Vec::new();
    for n in 0..60 {
        let node = Arc::clone(if n % 2 == 0 { &a } else { &b });
        tasks.push(tokio::spawn(async move {
            node.append_message(text(id, 1, &format!("at once {n}")))
                .await
                .expect("append")
                .sequence_id
        }));
    }
    let mut sequence_ids = Vec::new();
    for task in tasks {
        sequence_ids.push(task.await.expect("task"));
    }
    sequence_ids.sort_unstable();
    assert_eq!(
        sequence_ids,
        (expected + 1..=expected + 60).collect::<Vec<_>>()
    );
    let stored = scratch
        .number("SELECT count(DISTINCT sequence_id) * 1000000 + max(sequence_id) FROM messages");
    assert_eq!(
        stored,
        71 * 1_000_000 + 71,
        "stored sequence ids 1..=71, each once"
    );
}

/// Creations waiting for the writer are taken together, and each is answered for itself:
/// created; repeated, its repeatability key taken by another creation (maybe of its own group);
/// or a conflict, its id taken. Each created thread has its participants, its first message and
/// its two events, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn creations_taken_together_are_answered_each() {
    let Some(scratch) = Scratch::new() else {
        return;
    };
    let store = Arc::new(scratch.store().await);
    let taken = store
        .create_conversation(new_conversation(1, &[1]))
        .await
        .expect("first")
        .conversation
        .id;
    // Two creations of one new id, 1 and 2: one is created, the other a conflict.
    let twin = ConversationId::generate();
    let mut tasks = Vec::new();
    for n in 0..60u32 {
        let store = Arc::clone(&store);
        let mut new = new_conversation(1, &[1, 2, 3]);
        if n % 10 == 9 {
            new.id = taken;
        } else if n == 1 || n == 2 {
            new.id = twin;
        } else if n % 3 == 0 {
            // Two creations a key: 0 and 3, 12 and 15, 18 and 21 …
            new.repeatability_key = Some(format!("key-{}", n / 6));
        }
        tasks.push(tokio::spawn(async move {
            let answer = store.create_conversation(new.clone()).await;
            (n, new, answer)
        }));
    }
    let mut by_key: std::collections::HashMap<String, Vec<(bool, ConversationId)>> =
        std::collections::HashMap::new();
    let mut created = Vec::new();
    let mut twins = Vec::new();
    for task in tasks {
        let (n, new, answer) = task.await.expect("task");
        if n % 10 == 9 {
            assert!(
                matches!(answer, Err(StoreError::Conflict(_))),
                "{n}: {answer:?}"
            );
            continue;
        }
        if new.id == twin {
            twins.push(answer.as_ref().map(|a| a.created).map_err(Clone::clone));
            if answer.is_err() {
                continue;
            }
        }
        let answer = answer.expect("create");
        if answer.created {
            assert_eq!(answer.conversation.id, new.id);
            created.push(new.id);
        }
        if let Some(key) = new.repeatability_key {
            by_key
                .entry(key)
                .or_default()
                .push((answer.created, answer.conversation.id));
        } else {
            assert!(answer.created, "{n}");
        }
    }
    for (key, answers) in &by_key {
        let made: Vec<_> = answers.iter().filter(|(created, _)| *created).collect();
        assert_eq!(made.len(), 1, "{key}: {answers:?}");
        assert!(answers.iter().all(|(_, id)| *id == made[0].1), "{key}");
    }
    let events = store.events_after(0, 10_000).await.expect("events");
    for id in &created {
        let participants = store
            .list_participants(*id, list(10))
            .await
            .expect("participants");
        assert_eq!(participants.items.len(), 3);
        let messages = store
            .list_messages(*id, query(10))
            .await
            .expect("list")
            .items;
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].sequence_id, 1);
        let kinds: Vec<&str> = events
            .iter()
            .filter(|e| e.conversation == Some(*id))
            .map(|e| e.kind.name())
            .collect();
        assert_eq!(kinds, ["conversationCreated", "messageReceived"]);
    }
    assert_eq!(twins.len(), 2);
    assert!(twins.contains(&Ok(true)), "{twins:?}");
    assert!(
        twins
            .iter()
            .any(|t| matches!(t, Err(StoreError::Conflict(_)))),
        "{twins:?}"
    );
    // 60 creations: 6 on a taken id; one twin; 8 keys of two, each repeated once (the keys of
    // 6 and of 36 are their own: 9 and 39 take an id instead).
    assert_eq!(created.len(), 60 - 6 - 1 - 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_newer_than_the_build_is_refused() {
    let Some(scratch) = Scratch::new() else {
        return;
    };
    drop(scratch.store().await);
    scratch.sql("UPDATE confab_schema SET version = version + 1");
    let refused = PostgresStore::connect(scratch.config(), Arc::new(SystemClock)).await;
    assert!(
        matches!(&refused, Err(StoreError::Unavailable(why)) if why.contains("newer")),
        "{:?}",
        refused.err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_after_close_are_refused_and_reads_still_work() {
    let Some(scratch) = Scratch::new() else {
        return;
    };
    let store = scratch.store().await;
    store.create_identity(&identity(1)).await.expect("create");
    store.close().await;
    assert!(matches!(
        store.create_identity(&identity(2)).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(store
        .get_identity(&identity(1).id)
        .await
        .expect("get")
        .is_some());
    store.close().await; // twice is fine
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_open_a_new_connection_once_theirs_was_closed() {
    let Some(scratch) = Scratch::new() else {
        return;
    };
    let mut config = scratch.config();
    let name = format!("{}_r", scratch.schema);
    config.application_name(name.as_str());
    let store = PostgresStore::connect(config, Arc::new(SystemClock))
        .await
        .expect("connect");
    store.create_identity(&identity(1)).await.expect("create");
    let read = || async { store.get_identity(&identity(1).id).await };
    assert!(read().await.expect("read").is_some());
    // The server ends the read connection (the writer's last statement was no such read).
    let ended = format!(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
         WHERE application_name = '{name}' AND query LIKE 'SELECT%FROM identities%'"
    );
    assert_eq!(scratch.number(&ended), 1);
    // A read may still meet the closed connection; the next ones get a new one.
    let mut recovered = false;
    for _ in 0..50 {
        if let Ok(Some(_)) = read().await {
            recovered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(recovered, "reads stay broken after their connection closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_url_is_a_clear_error() {
    let refused = PostgresStore::open(
        "postgres://127.0.0.1:1/none?connect_timeout=2",
        Arc::new(SystemClock),
    )
    .await;
    assert!(matches!(refused, Err(StoreError::Unavailable(_))));
    let garbage = PostgresStore::open("not a url ===", Arc::new(SystemClock)).await;
    assert!(
        matches!(&garbage, Err(StoreError::Unavailable(why)) if why.contains("URL")),
        "{:?}",
        garbage.err()
    );
}

fn application(id: &str, at: time::OffsetDateTime) -> Application {
    Application {
        id: id.into(),
        name: format!("App {id}"),
        secret_hash: [7; 32],
        scopes: vec!["groupinfo.read".into(), "message.write".into()],
        created_on: at,
    }
}

fn phone(n: u32) -> IdentityId {
    IdentityId::phone(&format!("+1425555{n:04}")).expect("phone")
}

fn refresh_token(byte: u8, app: &str, who: &IdentityId, at: time::OffsetDateTime) -> RefreshToken {
    RefreshToken {
        hash: [byte; 32],
        application: app.into(),
        identity: who.clone(),
        scopes: vec!["message.write".into()],
        created_on: at,
        expires_on: at + Duration::days(30),
    }
}

fn redemption(
    app: &str,
    who: &IdentityId,
    pin: u8,
    token: u8,
    now: time::OffsetDateTime,
) -> PinRedemption {
    PinRedemption {
        application: app.into(),
        identity: who.clone(),
        pin_hash: [pin; 32],
        now,
        refresh_token: refresh_token(token, app, who, now),
    }
}

/// Two nodes redeeming one PIN at once: exactly one login succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pin_redeemed_on_two_nodes_at_once_logs_in_once() {
    let Some(scratch) = Scratch::new() else {
        return;
    };
    let (a, b) = tokio::join!(scratch.store(), scratch.store());
    let t0 = datetime!(2024-01-01 00:00:00 UTC);
    a.create_application(&application("a", t0))
        .await
        .expect("app");
    let who = phone(3);
    for round in 0..10u8 {
        a.put_pin(&PinChallenge {
            application: "a".into(),
            identity: who.clone(),
            pin_hash: [5; 32],
            expires_on: t0 + Duration::minutes(5),
            attempts_left: 3,
        })
        .await
        .expect("pin");
        let (x, y) = tokio::join!(
            a.redeem_pin(redemption("a", &who, 5, round * 2, t0)),
            b.redeem_pin(redemption("a", &who, 5, round * 2 + 1, t0)),
        );
        let logins = [x, y]
            .into_iter()
            .filter(|outcome| matches!(outcome, Ok(PinOutcome::Redeemed { .. })))
            .count();
        assert_eq!(logins, 1, "round {round}");
    }
}

/// Two nodes' delivery workers share the due deliveries: one a node took is not due for the
/// other until its attempt is recorded or the claim's lease ends; the line's order is kept; a
/// subscription changed on one node is seen by the other's writer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_the_due_deliveries_without_sending_one_twice() {
    let Some(scratch) = Scratch::new() else {
        return;
    };
    let clock = TestClock::new();
    let (a, b) = tokio::join!(
        PostgresStore::connect(scratch.config(), clock.clone()),
        PostgresStore::connect(scratch.config(), clock.clone())
    );
    let (a, b) = (a.expect("a"), b.expect("b"));
    assert!(a.claims_due_deliveries());
    let (one, two) = (conversation(&a).await, conversation(&a).await);
    let hook = webhook(one, &["TextMessageCreated"]);
    // Created through a, matched by b's writer.
    a.create_webhook(hook.clone()).await.expect("create");
    send(&b, one, "x").await;
    send(&b, one, "y").await;
    send(&a, two, "z").await;
    let listed = b.list_deliveries(&hook.id, None, 10).await.expect("list");
    assert_eq!(listed.len(), 2);
    // The first in line, claimed by a: due for nobody else, a included.
    let first = a.due_deliveries(now(), 10).await.expect("due");
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].next_attempt_on, now());
    assert!(b.due_deliveries(now(), 10).await.expect("due").is_empty());
    assert!(a.due_deliveries(now(), 10).await.expect("due").is_empty());
    assert_eq!(
        a.next_delivery_due().await.expect("next"),
        Some(now() + Duration::seconds(60))
    );
    // The lease over (a died mid-attempt, say): b takes it.
    let later = now() + Duration::seconds(61);
    let again = b.due_deliveries(later, 10).await.expect("due");
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, first[0].id);
    let attempt = |delivery: i64, delivered: bool| DeliveryAttempt {
        delivery,
        webhook: hook.id.clone(),
        at: later,
        delivered,
        status: delivered.then_some(200),
        error: (!delivered).then(|| "refused".to_string()),
        retry_at: None,
    };
    b.record_delivery_attempt(attempt(again[0].id, true))
        .await
        .expect("delivered");
    // Then the next in its line.
    let next = a.due_deliveries(later, 10).await.expect("due");
    assert_eq!(next.len(), 1);
    assert_ne!(next[0].id, first[0].id);
    // A last failure recorded on b disables the webhook; a's writer no longer matches it.
    b.record_delivery_attempt(attempt(next[0].id, false))
        .await
        .expect("failed");
    send(&a, one, "w").await;
    assert_eq!(
        a.list_deliveries(&hook.id, None, 10)
            .await
            .expect("list")
            .len(),
        2
    );
    assert!(
        !a.get_webhook(&hook.id)
            .await
            .expect("get")
            .expect("hook")
            .active
    );
}

/// Appends waiting together go into one statement (`appends.rs`): under many concurrent sends
/// to several threads and to a thread that does not exist, each send gets its own answer, the
/// missing thread's fail alone, every thread's sequence ids run without a gap, and the event log
/// has the messages in sequence order; sends racing a close are committed or refused, none lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn appends_taken_together_are_answered_each_and_keep_their_order() {
    let Some(scratch) = Scratch::new() else {
        return;
    };
    let store = Arc::new(scratch.store().await);
    let mut threads = Vec::new();
    for _ in 0..3 {
        let created = store
            .create_conversation(new_conversation(1, &[1]))
            .await
            .expect("create");
        threads.push(created.conversation.id);
    }
    let missing = ConversationId::generate();
    let mut sends = Vec::new();
    for n in 0..330usize {
        let store = Arc::clone(&store);
        let to = if n % 11 == 10 {
            missing
        } else {
            threads[n % 3]
        };
        sends.push(tokio::spawn(async move {
            (
                to,
                store.append_message(text(to, 1, &format!("m{n}"))).await,
            )
        }));
    }
    for send in sends {
        let (to, answer) = send.await.expect("task");
        match answer {
            Ok(message) => {
                assert_eq!(message.conversation, to);
                assert_ne!(to, missing);
            }
            Err(err) => {
                assert_eq!(to, missing);
                assert_eq!(err, StoreError::NotFound);
            }
        }
    }
    let events = store.events_after(0, 10_000).await.expect("events");
    for thread in &threads {
        let listed = store
            .list_messages(*thread, query(1000))
            .await
            .expect("list")
            .items;
        // 100 sends and the participantAdded system message, newest first.
        let sequence: Vec<i64> = listed.iter().rev().map(|m| m.sequence_id).collect();
        assert_eq!(sequence, (1..=101).collect::<Vec<i64>>());
        let logged: Vec<i64> = events
            .iter()
            .filter(|e| e.conversation == Some(*thread) && e.message.is_some())
            .map(|e| e.message.expect("message").id)
            .collect();
        let by_sequence: Vec<i64> = listed.iter().rev().map(|m| m.id.0).collect();
        assert_eq!(logged, by_sequence);
    }

    // Sends racing a close: each committed or refused.
    let mut racing = Vec::new();
    for n in 0..50 {
        let store = Arc::clone(&store);
        let to = threads[0];
        racing.push(tokio::spawn(async move {
            store
                .append_message(text(to, 1, &format!("late {n}")))
                .await
        }));
    }
    tokio::task::yield_now().await;
    store.close().await;
    let mut committed = 0;
    for send in racing {
        match send.await.expect("task") {
            Ok(_) => committed += 1,
            Err(err) => assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}"),
        }
    }
    let listed = store
        .list_messages(threads[0], query(1000))
        .await
        .expect("list");
    assert_eq!(listed.items.len(), 101 + committed);
}

/// A page of a big thread reads a page of it, not the whole thread, even before PostgreSQL has
/// gathered statistics on the table (a new database, a thread that grew fast): the planner,
/// guessing a handful of rows, chose a bitmap scan that fetched and sorted every message of the
/// thread for a page of 50. Counted by the index entries the server reports read.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_page_of_a_big_thread_reads_a_page_before_any_statistics() {
    let Some(scratch) = Scratch::new() else {
        return;
    };
    // 100,000 messages: on a smaller table the planner walks the index even without statistics.
    const MESSAGES: usize = 100_000;
    let seeding = scratch.store().await;
    let thread = seeding
        .create_conversation(new_conversation(1, &[1]))
        .await
        .expect("create")
        .conversation
        .id;
    seeding
        .append_message(text(thread, 1, "the first"))
        .await
        .expect("append");
    // The rest are copies of the first, with the ids and sequence ids that follow it; no
    // autovacuum analyzes the table while the test runs.
    scratch.sql(&format!(
        "ALTER TABLE messages SET (autovacuum_enabled = false);
         INSERT INTO messages (conversation, id, sequence_id, kind, content, sender,
             sender_display_name, metadata, version, created_on, edited_on, deleted_on,
             changed_on, audience)
         SELECT conversation, id + n, sequence_id + n, kind, content, sender,
             sender_display_name, metadata, version + n, created_on + n, edited_on, deleted_on,
             changed_on + n, audience
         FROM messages CROSS JOIN generate_series(1, {}) AS n WHERE sequence_id = 2",
        MESSAGES - 1
    ));
    // As autovacuum does after many inserts, and before it analyzes: the planner then knows
    // how many rows the table has, but nothing of how they spread over the threads.
    scratch.sql("VACUUM messages");
    // The seeding connections end, so that their own counts are in before the baseline.
    seeding.close().await;
    drop(seeding);
    assert_eq!(
        scratch.number(
            "SELECT count(*) FROM pg_stat_user_tables WHERE relid = 'messages'::regclass
             AND COALESCE(last_analyze, last_autoanalyze) IS NOT NULL"
        ),
        0,
        "the table must not have statistics yet"
    );
    let entries_read = || {
        scratch.number(
            "SELECT idx_tup_read FROM pg_stat_user_indexes
             WHERE indexrelid = 'messages_pkey'::regclass",
        )
    };
    // The server publishes a backend's counts when it is idle or gone, within seconds.
    let settled = |mut last: i64| {
        for _ in 0..30 {
            std::thread::sleep(std::time::Duration::from_millis(500));
            let now = entries_read();
            if now == last {
                return now;
            }
            last = now;
        }
        last
    };
    let before = settled(entries_read());

    let store = scratch.store().await;
    let page = store.list_messages(thread, query(50)).await.expect("list");
    assert_eq!(page.items.len(), 50);
    assert_eq!(page.items[0].sequence_id, MESSAGES as i64 + 1);
    let mut after = entries_read();
    for _ in 0..40 {
        if after != before {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        after = entries_read();
    }
    let read = after - before;
    assert!(
        (50..=200).contains(&read),
        "{read} index entries read for a page of 50 in a thread of {MESSAGES}"
    );
}

/// Each node's sink carries every node's events — its own from its writer, the others' from
/// the log when their writers notify — once each, in the log's order (a stream drops what
/// comes at or below a position it handled).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_node_publishes_every_nodes_events_once_in_log_order() {
    let Some(scratch) = Scratch::new() else {
        return;
    };
    let (a, b) = tokio::join!(scratch.store(), scratch.store());
    let (a, b) = (Arc::new(a), Arc::new(b));
    let published = Arc::new(PublishedEvents::default());
    assert!(a.set_event_sink(published.clone()));
    // B streams nothing itself, but its writer still tells the others.
    let thread = a
        .create_conversation(new_conversation(1, &[1, 2]))
        .await
        .expect("create")
        .conversation
        .id;
    let first = published.all()[0].position.expect("position");

    let mut sends = Vec::new();
    for n in 0..200 {
        let node = Arc::clone(if n % 3 == 0 { &a } else { &b });
        sends.push(tokio::spawn(async move {
            node.append_message(text(thread, 1 + n % 2, &format!("m{n}")))
                .await
        }));
    }
    for send in sends {
        send.await.expect("task").expect("append");
    }
    // And a node that only listens: B's last batch alone must reach A.
    b.append_message(text(thread, 2, "last"))
        .await
        .expect("append");

    let logged = b.events_after(first - 1, 10_000).await.expect("events");
    assert_eq!(
        logged.len(),
        2 + 201,
        "a creation's two events and the sends"
    );
    let mut waited = 0;
    while published.all().len() < logged.len() && waited < 100 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        waited += 1;
    }
    let carried: Vec<Arc<CommittedEvent>> = published.all();
    let positions = |events: &mut dyn Iterator<Item = &CommittedEvent>| -> Vec<i64> {
        events.map(|e| e.position.expect("position")).collect()
    };
    assert_eq!(
        positions(&mut carried.iter().map(|e| &**e)),
        positions(&mut logged.iter()),
        "every event once, in the log's order"
    );
    for (carried, logged) in carried.iter().zip(&logged) {
        assert_eq!(**carried, *logged, "published as logged");
    }
}

/// A node answers memberships from memory while it follows the other nodes, and forgets one
/// when another node changes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_membership_another_node_changes_is_forgotten() {
    let Some(scratch) = Scratch::new() else {
        return;
    };
    let (a, b) = tokio::join!(scratch.store(), scratch.store());
    assert!(!a.follows_other_nodes(), "no sink, no tail");
    let published = Arc::new(PublishedEvents::default());
    assert!(a.set_event_sink(published.clone()));
    let mut waited = 0;
    while !a.follows_other_nodes() && waited < 100 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        waited += 1;
    }
    assert!(a.follows_other_nodes());
    let thread = b
        .create_conversation(new_conversation(1, &[1, 2, 3]))
        .await
        .expect("create")
        .conversation
        .id;
    let member = confab_store_conformance::user;
    // Once A has read B's creation, nothing else comes in while A fills its memberships.
    let mut waited = 0;
    while published.all().is_empty() && waited < 100 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        waited += 1;
    }
    assert!(!published.all().is_empty(), "B's creation reached A");
    for n in [2, 3] {
        let access = a.get_membership(thread, &member(n)).await.expect("get");
        assert!(access.and_then(|a| a.participant).is_some());
    }
    // Kept in memory: a row deleted behind every writer's back (no event) is not noticed.
    let key: String = confab_store_common::stored::conv_key(thread)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    scratch.sql(&format!(
        "DELETE FROM participants WHERE identity = '{}'
         AND conversation = decode('{key}', 'hex')",
        member(3)
    ));
    let access = a.get_membership(thread, &member(3)).await.expect("get");
    assert!(
        access.and_then(|a| a.participant).is_some(),
        "answered from memory"
    );

    // Another node removes 2: once its event is read, this node no longer answers it.
    b.remove_participant(thread, &member(2), &member(1))
        .await
        .expect("remove");
    let mut waited = 0;
    loop {
        let access = a.get_membership(thread, &member(2)).await.expect("get");
        if access.and_then(|a| a.participant).is_none() {
            break;
        }
        waited += 1;
        assert!(waited < 100, "the removal never reached the other node");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
