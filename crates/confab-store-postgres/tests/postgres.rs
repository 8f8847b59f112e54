//! The PostgreSQL store against a real server: `CONFAB_TEST_POSTGRES_URL` names the database
//! (`scripts/test` sets it, starting PostgreSQL if it is not running). Without it these tests
//! say so and pass: a user's machine need not run PostgreSQL.
//!
//! Each test works in a scratch schema of its own, dropped at the end.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use confab_core::ids::{ConversationId, IdentityId, MessageId};
use confab_core::model::{Application, Identity, PinChallenge, RefreshToken};
use confab_core::ports::{
    ConnectorStore, MediaKind, MediaRecord, MediaStore, PinOutcome, PinRedemption, Store,
    StoreError, SystemClock,
};
use confab_store_conformance::{Fixture, TestClock};
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
        config.options(&format!("-c search_path={}", self.schema));
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
        let mut client = config.connect(postgres::NoTls).expect("connect");
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
    Some(Fixture::new(Arc::new(store), clock).with_guard(scratch))
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identities_are_created_read_revoked_and_deleted() {
    let Some(scratch) = Scratch::new() else {
        return;
    };
    let store = scratch.store().await;
    let alice = identity(1);
    store.create_identity(&alice).await.expect("create");
    assert_eq!(
        store.get_identity(&alice.id).await.expect("get"),
        Some(alice.clone())
    );
    assert!(matches!(
        store.create_identity(&alice).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.bump_token_generation(&alice.id).await, Ok(1));
    assert_eq!(store.bump_token_generation(&alice.id).await, Ok(2));
    let read = store
        .get_identity(&alice.id)
        .await
        .expect("get")
        .expect("found");
    assert_eq!(read.token_generation, 2);
    store.delete_identity(&alice.id).await.expect("delete");
    assert_eq!(store.get_identity(&alice.id).await, Ok(None));
    assert_eq!(
        store.delete_identity(&alice.id).await,
        Err(StoreError::NotFound)
    );
    assert_eq!(
        store.bump_token_generation(&alice.id).await,
        Err(StoreError::NotFound)
    );
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applications_are_registered_listed_and_deleted_with_their_credentials() {
    let Some(scratch) = Scratch::new() else {
        return;
    };
    let store = scratch.store().await;
    let t0 = datetime!(2024-01-01 00:00:00 UTC);
    let (a, b) = (
        application("a", t0 + Duration::seconds(1)),
        application("b", t0),
    );
    store.create_application(&a).await.expect("a");
    store.create_application(&b).await.expect("b");
    assert!(matches!(
        store.create_application(&a).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.get_application("a").await, Ok(Some(a.clone())));
    assert_eq!(store.get_application("zz").await, Ok(None));
    // Oldest first.
    assert_eq!(
        store.list_applications().await,
        Ok(vec![b.clone(), a.clone()])
    );
    let who = phone(1);
    store
        .add_refresh_token(&refresh_token(1, "a", &who, t0))
        .await
        .expect("token");
    store
        .put_pin(&PinChallenge {
            application: "a".into(),
            identity: who.clone(),
            pin_hash: [3; 32],
            expires_on: t0 + Duration::minutes(5),
            attempts_left: 3,
        })
        .await
        .expect("pin");
    store.delete_application("a").await.expect("delete");
    assert_eq!(
        store.delete_application("a").await,
        Err(StoreError::NotFound)
    );
    assert_eq!(store.get_refresh_token(&[1; 32]).await, Ok(None));
    assert_eq!(
        store.redeem_pin(redemption("a", &who, 3, 9, t0)).await,
        Ok(PinOutcome::Missing)
    );
    assert_eq!(store.list_applications().await, Ok(vec![b]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pin_counts_attempts_expires_and_is_used_once() {
    let Some(scratch) = Scratch::new() else {
        return;
    };
    let store = scratch.store().await;
    let t0 = datetime!(2024-01-01 00:00:00 UTC);
    store
        .create_application(&application("a", t0))
        .await
        .expect("app");
    let who = phone(2);
    let pin = |attempts_left| PinChallenge {
        application: "a".into(),
        identity: who.clone(),
        pin_hash: [5; 32],
        expires_on: t0 + Duration::minutes(5),
        attempts_left,
    };
    // Two wrong attempts of two: the PIN is gone.
    store.put_pin(&pin(2)).await.expect("pin");
    assert_eq!(
        store.redeem_pin(redemption("a", &who, 6, 1, t0)).await,
        Ok(PinOutcome::Wrong { attempts_left: 1 })
    );
    assert_eq!(
        store.redeem_pin(redemption("a", &who, 6, 1, t0)).await,
        Ok(PinOutcome::Wrong { attempts_left: 0 })
    );
    assert_eq!(
        store.redeem_pin(redemption("a", &who, 5, 1, t0)).await,
        Ok(PinOutcome::Missing)
    );
    // Expired.
    store.put_pin(&pin(3)).await.expect("pin");
    assert_eq!(
        store
            .redeem_pin(redemption("a", &who, 5, 1, t0 + Duration::minutes(5)))
            .await,
        Ok(PinOutcome::Expired)
    );
    // The right PIN: the identity is created on the first login only, the refresh token
    // stored, and an earlier token of the same application replaced.
    store
        .add_refresh_token(&refresh_token(8, "a", &who, t0))
        .await
        .expect("old token");
    store.put_pin(&pin(3)).await.expect("pin");
    assert_eq!(
        store.redeem_pin(redemption("a", &who, 5, 1, t0)).await,
        Ok(PinOutcome::Redeemed { first_login: true })
    );
    assert_eq!(store.get_refresh_token(&[8; 32]).await, Ok(None));
    assert_eq!(
        store.get_refresh_token(&[1; 32]).await,
        Ok(Some(refresh_token(1, "a", &who, t0)))
    );
    assert!(store.get_identity(&who).await.expect("identity").is_some());
    assert_eq!(
        store.redeem_pin(redemption("a", &who, 5, 2, t0)).await,
        Ok(PinOutcome::Missing)
    );
    store.put_pin(&pin(3)).await.expect("pin");
    assert_eq!(
        store.redeem_pin(redemption("a", &who, 5, 2, t0)).await,
        Ok(PinOutcome::Redeemed { first_login: false })
    );
    // Purging: the PIN left below expires at t0 + 5 min, the tokens at t0 + 30 days.
    store.put_pin(&pin(3)).await.expect("pin");
    assert_eq!(
        store
            .purge_expired_credentials(t0 + Duration::minutes(10))
            .await,
        Ok(1)
    );
    assert_eq!(
        store
            .purge_expired_credentials(t0 + Duration::days(31))
            .await,
        Ok(1)
    );
    assert_eq!(store.get_refresh_token(&[2; 32]).await, Ok(None));
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

fn media(id: &str, uploader: &IdentityId) -> MediaRecord {
    MediaRecord {
        id: id.into(),
        uploader: uploader.clone(),
        kind: MediaKind::Image,
        content_type: "image/png".into(),
        file_name: Some("a.png".into()),
        size: 1234,
        sha256: "ab".repeat(32),
        created_on: datetime!(2024-01-01 00:00:00 UTC),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_are_recorded_all_or_none_and_visible_through_their_messages() {
    let Some(scratch) = Scratch::new() else {
        return;
    };
    let store = scratch.store().await;
    let (member, subscriber, stranger) = (phone(1), phone(2), phone(3));
    let first = media(&"1".repeat(32), &member);
    store.put_media(vec![first.clone()]).await.expect("put");
    assert_eq!(store.get_media(&first.id).await, Ok(Some(first.clone())));
    // A batch with an id that exists fails whole: its new record is not kept.
    let second = media(&"2".repeat(32), &member);
    assert!(matches!(
        store.put_media(vec![second.clone(), first.clone()]).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.get_media(&second.id).await, Ok(None));

    // A conversation with a member, a subscriber and a message to all subscribers (written
    // straight to the tables: this store does not create conversations yet).
    let conversation = ConversationId::generate();
    let key = hex(&confab_store_common::stored::conv_key(conversation));
    scratch.sql(&format!(
        "INSERT INTO conversations (id, topic, created_by, created_on)
             VALUES ('\\x{key}', 't', '{member}', 1);
         INSERT INTO participants (conversation, identity, role, added_on)
             VALUES ('\\x{key}', '{member}', 'member', 1);
         INSERT INTO subscribers (conversation, identity, added_on)
             VALUES ('\\x{key}', '{subscriber}', 1);
         INSERT INTO messages (conversation, id, sequence_id, kind, content, version,
                 created_on, changed_on, audience)
             VALUES ('\\x{key}', 10, 1, 'text', '{{}}', 10, 10, 10, '*');
         INSERT INTO message_audience (conversation, identity, message_id)
             VALUES ('\\x{key}', '*', 10);"
    ));
    assert_eq!(store.media_visible_to(&first.id, &member).await, Ok(false));
    store
        .link_message_media(conversation, MessageId(10), vec![first.id.clone()])
        .await
        .expect("link");
    // Linking again changes nothing.
    store
        .link_message_media(conversation, MessageId(10), vec![first.id.clone()])
        .await
        .expect("link again");
    assert_eq!(store.media_visible_to(&first.id, &member).await, Ok(true));
    assert_eq!(
        store.media_visible_to(&first.id, &subscriber).await,
        Ok(true)
    );
    assert_eq!(
        store.media_visible_to(&first.id, &stranger).await,
        Ok(false)
    );
    scratch.sql("UPDATE messages SET deleted_on = 11");
    assert_eq!(store.media_visible_to(&first.id, &member).await, Ok(false));
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
