//! The events other nodes commit, on this node's bus.
//!
//! Every node's writer hands its own committed events to its sink (`writer.rs`). What the
//! other nodes commit reaches this node through the database: a writer that logged events
//! ends its batch with a notification on the schema's channel (`pg_notify`, delivered at
//! COMMIT), whose payload names the node and the batch's last position. The tail thread
//! listens on a connection of its own and, on another node's notification, reads the log after
//! the last position published here and publishes what it finds.
//!
//! A stream drops an event at or below a position it already handled, so a node's bus must
//! carry the events in position order (the log's order, which is the commit order: writers
//! take turns). Both publishers therefore go through one cursor, [`PublishedThrough`], under
//! its lock: the writer publishes its batch itself only when nothing lies between the cursor
//! and the batch; otherwise it publishes from the log too. The log is the truth; what is
//! published from memory is what the log holds, byte for byte (`events_after`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use confab_core::ports::{CommittedEvent, EventSink, StoreResult};
use parking_lot::Mutex;
use postgres::{Client, Config};

use confab_store_common::memberships::membership_changed;

use crate::db::{at_once, get, Conn, DbResult};
use crate::memberships::NodeMemberships;
use crate::{events, schema, Node};

/// The last log position this node's bus has carried; `None` until the first publication.
pub(crate) type PublishedThrough = Arc<Mutex<Option<i64>>>;

/// Events read from the log at a time.
const LOG_PAGE: usize = 1000;

/// How often the tail thread looks up from waiting, to see whether it should stop.
const WAKE_EVERY: Duration = Duration::from_millis(250);

/// How long the tail waits before connecting again after losing its connection.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// The schema's notification channel: a name of its own per schema (so that stores in other
/// schemas of the database do not wake each other), short enough for any schema name.
pub(crate) fn channel(client: &mut Client) -> StoreResult<String> {
    let row = client
        .query_one("SELECT 'confab_' || md5(current_schema())", &[])
        .db()?;
    get(&row, 0)
}

/// What a batch's notification says: the node that committed it and its last position.
pub(crate) fn notification_payload(node: u64, last_position: i64) -> String {
    format!("{node}:{last_position}")
}

fn parse_payload(payload: &str) -> Option<(u64, i64)> {
    let (node, position) = payload.split_once(':')?;
    Some((node.parse().ok()?, position.parse().ok()?))
}

/// Publishes to `sink` every logged event after the cursor, in order, and moves the cursor.
/// A cursor not yet set starts at the log's head: what was committed before is not live.
/// The memberships the events change are forgotten before they are published.
pub(crate) fn publish_from_log(
    db: &Conn,
    sink: &dyn EventSink,
    through: &mut Option<i64>,
    memberships: &NodeMemberships,
) -> StoreResult<()> {
    let Some(mut after) = *through else {
        *through = Some(at_once(events::bounds(db))?.head);
        return Ok(());
    };
    loop {
        let page = at_once(events::events_after(db, after, LOG_PAGE))?;
        let full = page.len() == LOG_PAGE;
        let Some(last) = page.last().and_then(|e| e.position) else {
            return Ok(());
        };
        after = last;
        *through = Some(last);
        memberships.forget(
            page.iter()
                .filter_map(|e| membership_changed(&e.kind, e.conversation)),
        );
        sink.committed(page.into_iter().map(Arc::new).collect());
        if !full {
            return Ok(());
        }
    }
}

/// Publishes a batch this node's writer just committed: as it is when the cursor is right
/// before it (the usual case), from the log when something lies between (another node's
/// events, or positions a rolled-back batch took), not at all when the tail already did.
/// `through` is the node's cursor, locked by the writer since before the batch's COMMIT.
pub(crate) fn publish_own(
    db: &Conn,
    sink: &dyn EventSink,
    node: &Node,
    batch: Vec<Arc<CommittedEvent>>,
    through: &mut Option<i64>,
) {
    let (Some(first), Some(last)) = (
        batch.first().and_then(|e| e.position),
        batch.last().and_then(|e| e.position),
    ) else {
        return;
    };
    match *through {
        Some(t) if last <= t => return,
        Some(t) if first > t + 1 => match publish_from_log(db, sink, through, &node.memberships) {
            Ok(()) if through.is_some_and(|t| t >= last) => return,
            Ok(()) => {}
            Err(err) => {
                tracing::warn!(error = %err, "cannot read the event log; publishing the batch alone");
            }
        },
        _ => {}
    }
    *through = Some(last);
    sink.committed(batch);
}

/// The tail thread; it stops when this is dropped.
pub(crate) struct Tail {
    stop: Arc<AtomicBool>,
}

impl Drop for Tail {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Starts the tail thread of `node`.
pub(crate) fn start(config: Config, node: Node, sink: Arc<dyn EventSink>) -> StoreResult<Tail> {
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = Arc::clone(&stop);
    std::thread::Builder::new()
        .name("confab-postgres-tail".into())
        .spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                let followed = follow(&config, &node, &*sink, &stopping);
                node.memberships.stop_following();
                if let Err(err) = followed {
                    tracing::warn!(error = %err, "lost the other nodes' events; connecting again");
                    std::thread::sleep(RECONNECT_AFTER);
                }
            }
        })
        .map_err(|e| {
            confab_core::ports::StoreError::Unavailable(format!("cannot start the tail: {e}"))
        })?;
    Ok(Tail { stop })
}

/// Listens, catches up with the log, then publishes other nodes' batches as they are notified,
/// until `stop`. Answers an error when the connection fails.
fn follow(
    config: &Config,
    node: &Node,
    sink: &dyn EventSink,
    stop: &AtomicBool,
) -> StoreResult<()> {
    let mut client = schema::connect(config)?;
    let channel = channel(&mut client)?;
    client
        .batch_execute(&format!("LISTEN \"{channel}\""))
        .db()?;
    let db = Conn::new(client);
    // Listening first, then reading: nothing committed in between is missed.
    publish_from_log(&db, sink, &mut node.published.lock(), &node.memberships)?;
    node.memberships.start_following();
    while !stop.load(Ordering::Relaxed) {
        let newest_elsewhere = db
            .notifications(WAKE_EVERY)?
            .iter()
            .filter_map(|payload| parse_payload(payload))
            .filter(|(from, _)| *from != node.id)
            .map(|(_, position)| position)
            .max();
        if let Some(position) = newest_elsewhere {
            let mut through = node.published.lock();
            if through.is_none_or(|t| t < position) {
                publish_from_log(&db, sink, &mut through, &node.memberships)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_names_the_node_and_the_position() {
        assert_eq!(parse_payload(&notification_payload(7, 42)), Some((7, 42)));
        assert_eq!(parse_payload("7"), None);
        assert_eq!(parse_payload("x:42"), None);
        assert_eq!(parse_payload(""), None);
    }
}
