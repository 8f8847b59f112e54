//! The `Store` conformance suite: the checks every store backend must pass, written against
//! the `Store` trait (and its supertraits) only, so that SQLite and PostgreSQL run the very
//! same assertions.
//!
//! # Wiring a backend
//!
//! A backend's integration test (one test binary) writes an `async fn` that answers a fresh,
//! empty store wrapped in a [`Fixture`], or `None` when the backend cannot run here (a check
//! then prints a line to stderr and passes), and hands it to [`all_checks!`]:
//!
//! ```ignore
//! use std::sync::Arc;
//! use confab_store_conformance::{Fixture, TestClock};
//!
//! async fn fixture() -> Option<Fixture> {
//!     let url = std::env::var("CONFAB_TEST_POSTGRES_URL").ok()?; // unset: every check skips
//!     let clock = TestClock::new();
//!     let (store, scratch) = my_backend::open_scratch(&url, clock.clone()).await.ok()?;
//!     // `scratch` (a temp dir, a scratch schema, …) is dropped after the store.
//!     Some(Fixture::new(Arc::new(store), clock).with_guard(scratch))
//! }
//!
//! confab_store_conformance::all_checks!(fixture);
//! ```
//!
//! [`all_checks!`] makes one `#[tokio::test]` (multi-thread, 4 workers) per check, named after
//! it; [`checks!`] does the same for a chosen list (`checks!(fixture; store::identities)`). Put
//! the call in a module per store flavour to run the suite more than once in one binary (SQLite
//! runs it on a file and in memory). The calling crate needs `tokio` (with `macros` and
//! `rt-multi-thread`) among its dev-dependencies.
//!
//! The checks are the `pub async fn …(f: Fixture)` of the modules [`store`], [`actions`],
//! [`media`] and [`webhooks`]; the helpers here and there are public for a backend's own tests.

use std::any::Any;
use std::sync::Arc;

use confab_core::ids::{ConversationId, IdentityId};
use confab_core::model::{
    Audience, Message, MessageContent, MessageType, Metadata, Participant, Role,
};
use confab_core::ports::{
    Clock, CommittedEvent, EventSink, ListQuery, MessageQuery, NewConversation, NewMessage, Store,
};
use parking_lot::Mutex;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

pub mod actions;
pub mod media;
pub mod store;
pub mod webhooks;

// ---------------------------------------------------------------------------------------------
// Harness.

/// A clock the test moves by hand. It starts at 2024-01-01 00:00:00 UTC.
pub struct TestClock(Mutex<OffsetDateTime>);

impl TestClock {
    /// A clock at 2024-01-01 00:00:00 UTC.
    pub fn new() -> Arc<Self> {
        Arc::new(Self(Mutex::new(datetime!(2024-01-01 00:00:00 UTC))))
    }

    /// Moves the clock forward (or back, with a negative duration).
    pub fn advance(&self, by: Duration) {
        *self.0.lock() += by;
    }

    /// Sets the clock.
    pub fn set(&self, to: OffsetDateTime) {
        *self.0.lock() = to;
    }
}

impl Clock for TestClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock()
    }
}

/// A fresh, empty store for one check, the clock it was made with, and whatever must outlive
/// it.
pub struct Fixture {
    /// The store under test, made with [`clock`](Self::clock).
    pub store: Arc<dyn Store>,
    pub clock: Arc<TestClock>,
    /// What the store handed its event sink, when the backend set this one as its sink
    /// ([`Fixture::with_published`]).
    pub published: Option<Arc<PublishedEvents>>,
    /// Kept alive until after the store is dropped (fields drop in order): a temp dir, a
    /// scratch schema's owner, …
    pub guard: Option<Box<dyn Any + Send + Sync>>,
}

/// An event sink that keeps what it is handed: what a store published after its commits.
#[derive(Default)]
pub struct PublishedEvents(Mutex<Vec<Arc<CommittedEvent>>>);

impl PublishedEvents {
    /// Everything published so far, in order.
    pub fn all(&self) -> Vec<Arc<CommittedEvent>> {
        self.0.lock().clone()
    }
}

impl EventSink for PublishedEvents {
    fn committed(&self, events: Vec<Arc<CommittedEvent>>) {
        self.0.lock().extend(events);
    }
}

/// How many logged events [`Fixture::logged_events`] asks for at a time.
const EVENT_PAGE: usize = 1000;

impl Fixture {
    /// A fixture for `store`, which must have been made with `clock`.
    pub fn new(store: Arc<dyn Store>, clock: Arc<TestClock>) -> Self {
        Self {
            store,
            clock,
            published: None,
            guard: None,
        }
    }

    /// Says that the store hands its committed events to `published` (the backend set it as
    /// the store's event sink).
    pub fn with_published(mut self, published: Arc<PublishedEvents>) -> Self {
        self.published = Some(published);
        self
    }

    /// Keeps `guard` until after the store is dropped.
    pub fn with_guard(mut self, guard: impl Any + Send + Sync) -> Self {
        self.guard = Some(Box::new(guard));
        self
    }

    /// Every event logged so far, oldest first (through `Store::events_after`).
    pub async fn logged_events(&self) -> Vec<CommittedEvent> {
        let mut out: Vec<CommittedEvent> = Vec::new();
        loop {
            let after = out
                .last()
                .map(|e| e.position.expect("a logged event has a position"))
                .unwrap_or(0);
            let page = self
                .store
                .events_after(after, EVENT_PAGE)
                .await
                .expect("events");
            if page.is_empty() {
                return out;
            }
            out.extend(page);
        }
    }

    /// The kinds of the events logged so far, oldest first, by their wire names
    /// (`conversationCreated`, `messageReceived`, …).
    pub async fn events(&self) -> Vec<String> {
        self.logged_events()
            .await
            .iter()
            .map(|e| e.kind.name().to_owned())
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers.

/// An ACS user, `8:acs:res_<n, six digits>`.
pub fn user(n: u32) -> IdentityId {
    IdentityId::parse(&format!("8:acs:res_{n:06}")).expect("identity")
}

/// [`user`]`(n)` as a member named `User <n>`.
pub fn member(n: u32) -> Participant {
    Participant {
        identity: user(n),
        display_name: Some(format!("User {n}")),
        share_history_time: None,
        metadata: Metadata::new(),
        role: Role::Member,
    }
}

/// Metadata from pairs.
pub fn meta(pairs: &[(&str, &str)]) -> Metadata {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A new conversation with a fresh id, topic `Topic`, made by `by` with `members`.
pub fn new_conversation(by: u32, members: &[u32]) -> NewConversation {
    NewConversation {
        id: ConversationId::generate(),
        topic: "Topic".into(),
        created_by: user(by),
        metadata: Metadata::new(),
        retention: None,
        participants: members.iter().map(|n| member(*n)).collect(),
        repeatability_key: None,
        kind: Default::default(),
        welcome_message: None,
    }
}

/// A text message from [`user`]`(from)` to the members.
pub fn text(conversation: ConversationId, from: u32, body: &str) -> NewMessage {
    NewMessage {
        conversation,
        kind: MessageType::Text,
        content: MessageContent {
            text: Some(body.into()),
            ..MessageContent::default()
        },
        sender: Some(user(from)),
        sender_display_name: Some(format!("User {from}")),
        metadata: Metadata::new(),
        audience: Audience::Members,
    }
}

/// A message query for a page of `limit`.
pub fn query(limit: usize) -> MessageQuery {
    MessageQuery {
        limit,
        ..MessageQuery::default()
    }
}

/// A list query for a page of `limit`.
pub fn list(limit: usize) -> ListQuery {
    ListQuery {
        limit,
        ..ListQuery::default()
    }
}

/// Creates [`new_conversation`]`(by, members)` and answers its id.
pub async fn create(f: &Fixture, by: u32, members: &[u32]) -> ConversationId {
    let created = f
        .store
        .create_conversation(new_conversation(by, members))
        .await
        .expect("create");
    assert!(created.created);
    created.conversation.id
}

/// Every message of a conversation, newest first, through the pager.
pub async fn all_messages(
    f: &Fixture,
    conversation: ConversationId,
    mut q: MessageQuery,
) -> Vec<Message> {
    let mut out = Vec::new();
    loop {
        let page = f
            .store
            .list_messages(conversation, q.clone())
            .await
            .expect("page");
        assert!(page.items.len() <= q.limit.max(1));
        out.extend(page.items);
        match page.next {
            Some(next) => q.after = Some(next),
            None => return out,
        }
    }
}

/// A phone-number identity, `4:+1425555<n, four digits>`.
pub fn phone(n: u32) -> IdentityId {
    IdentityId::phone(&format!("+1425555{n:04}")).expect("phone")
}

// ---------------------------------------------------------------------------------------------
// The test makers.

/// One `#[tokio::test]` per listed check, each run on a fresh fixture from `$fixture` (an
/// `async fn() -> Option<Fixture>`; `None` skips the check):
/// `checks!(fixture; store::identities, webhooks::the_outbox_follows_the_subscriptions)`.
#[macro_export]
macro_rules! checks {
    ($fixture:expr; $($module:ident :: $check:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $check() {
                match ($fixture)().await {
                    Some(fixture) => $crate::$module::$check(fixture).await,
                    None => eprintln!(
                        "{}: skipped, no store to run it on",
                        concat!(stringify!($module), "::", stringify!($check))
                    ),
                }
            }
        )*
    };
}

/// Every check of the suite, one `#[tokio::test]` each (see [`checks!`]): `all_checks!(fixture)`.
#[macro_export]
macro_rules! all_checks {
    ($fixture:expr) => {
        $crate::checks!(
            $fixture;
            store::identities,
            store::create_and_get_conversation,
            store::conversation_id_conflict,
            store::repeatability_key,
            store::update_conversation,
            store::delete_conversation,
            store::list_conversations,
            store::retention_expiry,
            store::participants,
            store::membership,
            store::membership_follows_every_change,
            store::participant_limit,
            store::participant_pages,
            store::messages,
            store::message_pages,
            store::changed_since_and_created_from,
            store::read_receipts,
            store::concurrent_appends_are_gapless,
            store::failures_in_a_batch_leave_no_gaps,
            store::events_are_logged,
            store::published_events_read_back_alike,
            store::groups_and_members,
            store::participant_roles,
            store::subgroups,
            store::subscribers,
            store::message_audience,
            store::applications,
            store::pins,
            store::refresh_tokens,
            actions::actions_and_responses,
            actions::action_pages,
            actions::media_actions,
            media::records_round_trip_and_ids_are_unique,
            media::a_linked_message_makes_media_visible_to_its_readers,
            webhooks::the_outbox_follows_the_subscriptions,
            webhooks::acs_subscriptions_get_thread_and_user_level_events,
        );
    };
}

#[cfg(test)]
mod tests {
    use super::Fixture;

    /// No backend here: every check skips.
    async fn no_store() -> Option<Fixture> {
        None
    }

    mod skipped {
        crate::checks!(super::no_store; store::identities, webhooks::the_outbox_follows_the_subscriptions);
    }
}
