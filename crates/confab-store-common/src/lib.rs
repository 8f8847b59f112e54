//! What every confab store adapter shares.
//!
//! The stores (SQLite, PostgreSQL) must be interchangeable: the same paging cursors, the same
//! JSON in their columns, the same event payloads and live events, the same webhook deliveries.
//! Everything that decides those bytes without touching a database lives here, once, and each
//! adapter keeps only its SQL and its row access. So does the queue in front of each store's
//! one writer thread (`write_queue`).

pub mod creation;
pub mod cursors;
pub mod event_grid;
pub mod event_payloads;
pub mod kaizala;
pub mod memberships;
pub mod message_events;
pub mod outbox;
pub mod sequence_ids;
pub mod stored;
pub mod write_queue;
