//! The rules of the real-time event stream: which events an identity may follow, how its view
//! changes as it joins and leaves conversations, and how long the event log is kept.
//!
//! A stream's transport (the stream face) does the I/O; this module decides. Per connection a
//! [`StreamScope`] holds the identity's memberships, loaded once when the stream opens and then
//! kept up to date from the membership events the stream itself sees, so that deciding costs a
//! hash lookup per event and no query.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::chat::require_chat;
use crate::error::{Error, Result};
use crate::identity::Caller;
use crate::ids::{ConversationId, IdentityId};
use crate::model::{EventKind, Role};
use crate::ports::{Bus, CommittedEvent, EventBounds, Membership};
use crate::Core;

/// How long the event log keeps events, i.e. how far back a stream can resume.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventRetention {
    /// Events older than this are deleted (`None`: no age limit).
    pub max_age: Option<time::Duration>,
    /// At most this many of the newest events are kept (`None`: no count limit).
    pub max_count: Option<u64>,
}

impl Default for EventRetention {
    fn default() -> Self {
        Self {
            max_age: Some(time::Duration::days(7)),
            max_count: None,
        }
    }
}

/// The most conversations a stream can be narrowed to.
pub const MAX_STREAM_CONVERSATIONS: usize = 1000;

/// Rows deleted per store write when purging old events, so that a purge never holds the
/// writer for long.
const PURGE_CHUNK: usize = 10_000;

/// What the stream should do with one event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send it.
    Deliver,
    /// Not for this stream.
    Skip,
    /// The identity's credentials changed: re-check the token before going on.
    Recheck,
}

/// One stream's view: whose it is, which conversations it follows and in which role.
#[derive(Clone, Debug)]
pub struct StreamScope {
    identity: IdentityId,
    only: Option<HashSet<ConversationId>>,
    members: HashMap<ConversationId, Membership>,
}

impl StreamScope {
    pub fn new(
        identity: IdentityId,
        only: Option<HashSet<ConversationId>>,
        memberships: Vec<Membership>,
    ) -> Self {
        let members = memberships
            .into_iter()
            .map(|m| (m.conversation, m))
            .collect();
        Self {
            identity,
            only,
            members,
        }
    }

    pub fn identity(&self) -> &IdentityId {
        &self.identity
    }

    /// Whether the stream follows `conversation` right now.
    pub fn follows(&self, conversation: ConversationId) -> bool {
        self.members.contains_key(&conversation)
            && self.only.as_ref().is_none_or(|o| o.contains(&conversation))
    }

    /// Decides about `event`, and applies what it changes to this identity's memberships: a
    /// stream sees its own addition, and nothing of a conversation after its own removal.
    /// Events must come in position order (replayed, then live).
    pub fn admit(&mut self, event: &CommittedEvent) -> Verdict {
        if event.kind == EventKind::CredentialsChanged {
            return match &event.identity {
                Some(who) if *who != self.identity => Verdict::Skip,
                _ => Verdict::Recheck,
            };
        }
        let Some(conversation) = event.conversation else {
            return Verdict::Skip;
        };
        if self
            .only
            .as_ref()
            .is_some_and(|o| !o.contains(&conversation))
        {
            return Verdict::Skip;
        }
        let change = self.membership_change(event);
        if let Some(Change::Joined {
            role,
            share_history_us,
        }) = &change
        {
            let entry = self
                .members
                .entry(conversation)
                .or_insert_with(|| Membership {
                    conversation,
                    role: *role,
                    share_history_us: *share_history_us,
                    added_us: event.at_us,
                });
            entry.role = *role;
            entry.share_history_us = *share_history_us;
        }
        let visible = match self.members.get(&conversation) {
            // Events from before the identity joined are not its business.
            Some(member) if event.at_us >= member.added_us => {
                visible_to(event, &self.identity, member)
            }
            _ => false,
        };
        if matches!(change, Some(Change::Left)) {
            self.members.remove(&conversation);
        }
        if visible {
            Verdict::Deliver
        } else {
            Verdict::Skip
        }
    }

    /// How `event` changes this identity's membership of its conversation, if it does. The
    /// event's data is parsed only when it names the identity (a substring test first).
    fn membership_change(&self, event: &CommittedEvent) -> Option<Change> {
        let me = self.identity.as_str();
        match event.kind {
            EventKind::ConversationDeleted => return Some(Change::Left),
            EventKind::ConversationCreated
            | EventKind::ParticipantsAdded
            | EventKind::ParticipantRemoved
            | EventKind::ParticipantRoleChanged => {}
            _ => return None,
        }
        if !event.data().contains(me) {
            return None;
        }
        let data: MemberData = serde_json::from_str(event.data()).ok()?;
        let named = |list: &[String]| list.iter().any(|id| id == me);
        match event.kind {
            EventKind::ConversationCreated | EventKind::ParticipantsAdded => {
                if let Some(detail) = data.members.iter().find(|m| m.id == me) {
                    return Some(Change::Joined {
                        role: detail
                            .role
                            .as_deref()
                            .and_then(Role::parse)
                            .unwrap_or(Role::Member),
                        share_history_us: detail.share_history_time.as_deref().and_then(micros),
                    });
                }
                if named(&data.participants) || named(&data.added) || named(&data.updated) {
                    let current = self.members.get(&event.conversation?);
                    return Some(Change::Joined {
                        role: current.map_or(Role::Member, |m| m.role),
                        share_history_us: current.and_then(|m| m.share_history_us),
                    });
                }
                named(&data.subscribers).then_some(Change::Joined {
                    role: Role::Subscriber,
                    share_history_us: None,
                })
            }
            EventKind::ParticipantRemoved => (data.removed.as_deref() == Some(me)
                || named(&data.subscribers))
            .then_some(Change::Left),
            EventKind::ParticipantRoleChanged => {
                let role = data.role.as_deref().and_then(Role::parse)?;
                let current = self.members.get(&event.conversation?)?;
                (data.identity.as_deref() == Some(me)).then_some(Change::Joined {
                    role,
                    share_history_us: current.share_history_us,
                })
            }
            _ => None,
        }
    }
}

enum Change {
    Joined {
        role: Role,
        share_history_us: Option<i64>,
    },
    Left,
}

/// The membership-related fields of an event's data.
#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct MemberData {
    members: Vec<MemberDetail>,
    participants: Vec<String>,
    added: Vec<String>,
    updated: Vec<String>,
    subscribers: Vec<String>,
    removed: Option<String>,
    identity: Option<String>,
    role: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MemberDetail {
    id: String,
    role: Option<String>,
    share_history_time: Option<String>,
}

fn micros(text: &str) -> Option<i64> {
    let t = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1000).ok()
}

/// Whether `identity`, a `member` of the event's conversation, may see `event`:
///
/// * subscribers (of a public group) see only user messages whose audience reaches them;
/// * members and admins see everything of the conversation, except their own typing and
///   messages from before their shared history.
pub fn visible_to(event: &CommittedEvent, identity: &IdentityId, member: &Membership) -> bool {
    let is_message = matches!(
        event.kind,
        EventKind::MessageReceived | EventKind::MessageEdited | EventKind::MessageDeleted
    );
    if member.role == Role::Subscriber {
        return is_message
            && event.message.is_some_and(|m| !m.system)
            && event.audience.reaches_subscriber(identity);
    }
    match event.kind {
        EventKind::Typing => event.identity.as_ref() != Some(identity),
        EventKind::CredentialsChanged => false,
        _ if is_message => match (event.message, member.share_history_us) {
            (Some(message), Some(from)) => message.created_us >= from,
            _ => true,
        },
        _ => true,
    }
}

impl Core {
    /// The live feed of committed events.
    pub fn bus(&self) -> &Arc<dyn Bus> {
        &self.bus
    }

    /// Opens a stream for `caller`: its memberships now, narrowed to `only` if given.
    pub async fn open_stream(
        &self,
        caller: &Caller,
        only: Option<HashSet<ConversationId>>,
    ) -> Result<StreamScope> {
        require_chat(caller)?;
        if only
            .as_ref()
            .is_some_and(|o| o.len() > MAX_STREAM_CONVERSATIONS)
        {
            return Err(Error::invalid(
                format!("At most {MAX_STREAM_CONVERSATIONS} conversations can be followed."),
                "conversations",
            ));
        }
        let memberships = self.store.list_memberships(&caller.identity).await?;
        Ok(StreamScope::new(caller.identity.clone(), only, memberships))
    }

    /// The positions a stream can resume from.
    pub async fn event_bounds(&self) -> Result<EventBounds> {
        Ok(self.store.event_bounds().await?)
    }

    /// Up to `limit` logged events after position `after`, in order.
    pub async fn events_after(&self, after: i64, limit: usize) -> Result<Vec<Arc<CommittedEvent>>> {
        Ok(self
            .store
            .events_after(after, limit)
            .await?
            .into_iter()
            .map(Arc::new)
            .collect())
    }

    /// Deletes the events past the retention; answers how many. Run periodically.
    pub async fn purge_events(&self) -> Result<usize> {
        let older_than = self
            .event_retention
            .max_age
            .map(|age| self.clock.now() - age);
        if older_than.is_none() && self.event_retention.max_count.is_none() {
            return Ok(0);
        }
        let mut purged = 0;
        // Chunk by chunk, each its own write, until nothing is left to purge.
        loop {
            let deleted = self
                .store
                .purge_events(older_than, self.event_retention.max_count, PURGE_CHUNK)
                .await?;
            purged += deleted;
            if deleted < PURGE_CHUNK {
                return Ok(purged);
            }
        }
    }

    /// Tells open streams that `identity`'s credentials changed (`None`: anyone's).
    pub(crate) fn credentials_changed(&self, identity: Option<&IdentityId>) {
        self.bus.publish(CommittedEvent::credentials_changed(
            identity,
            self.clock.now(),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Audience;
    use crate::ports::bus::{EventParts, MessageRef};

    fn id(raw: &str) -> IdentityId {
        IdentityId::parse(raw).expect("id")
    }

    fn event(
        kind: EventKind,
        conversation: ConversationId,
        at_us: i64,
        data: &str,
    ) -> CommittedEvent {
        CommittedEvent::new(EventParts {
            position: Some(at_us),
            kind,
            conversation: Some(conversation),
            identity: None,
            message: None,
            audience: Audience::Members,
            at_us,
            data: data.into(),
        })
    }

    fn message(conversation: ConversationId, at_us: i64, audience: Audience) -> CommittedEvent {
        let mut e = event(EventKind::MessageReceived, conversation, at_us, "{}");
        e.message = Some(MessageRef {
            id: at_us,
            created_us: at_us,
            system: false,
        });
        e.audience = audience;
        e
    }

    #[test]
    fn a_stream_follows_joins_and_leaves() {
        let me = id("8:acs:r_me");
        let c = ConversationId(1);
        let mut scope = StreamScope::new(me.clone(), None, Vec::new());
        assert_eq!(
            scope.admit(&message(c, 10, Audience::Members)),
            Verdict::Skip
        );
        let added = event(
            EventKind::ParticipantsAdded,
            c,
            20,
            r#"{"added":["8:acs:r_me"],"updated":[]}"#,
        );
        assert_eq!(scope.admit(&added), Verdict::Deliver);
        assert_eq!(
            scope.admit(&message(c, 30, Audience::Members)),
            Verdict::Deliver
        );
        let removed = event(
            EventKind::ParticipantRemoved,
            c,
            40,
            r#"{"removed":"8:acs:r_me"}"#,
        );
        assert_eq!(
            scope.admit(&removed),
            Verdict::Deliver,
            "told of its removal"
        );
        assert_eq!(
            scope.admit(&message(c, 50, Audience::Members)),
            Verdict::Skip
        );
    }

    #[test]
    fn subscribers_see_only_messages_addressed_to_them() {
        let me = id("4:+14255550100");
        let c = ConversationId(2);
        let mut scope = StreamScope::new(
            me.clone(),
            None,
            vec![Membership {
                conversation: c,
                role: Role::Subscriber,
                share_history_us: None,
                added_us: 0,
            }],
        );
        assert_eq!(
            scope.admit(&message(c, 1, Audience::Members)),
            Verdict::Skip
        );
        assert_eq!(
            scope.admit(&message(c, 2, Audience::AllSubscribers)),
            Verdict::Deliver
        );
        assert_eq!(
            scope.admit(&message(c, 3, Audience::Subscribers(vec![me.clone()]))),
            Verdict::Deliver
        );
        assert_eq!(
            scope.admit(&message(
                c,
                4,
                Audience::Subscribers(vec![id("4:+14255550199")])
            )),
            Verdict::Skip
        );
        let added = event(
            EventKind::ParticipantsAdded,
            c,
            5,
            r#"{"subscribers":["4:+14255550101"]}"#,
        );
        assert_eq!(scope.admit(&added), Verdict::Skip);
    }

    #[test]
    fn shared_history_and_typing_and_credentials() {
        let me = id("8:acs:r_me");
        let c = ConversationId(3);
        let mut scope = StreamScope::new(
            me.clone(),
            Some([c].into()),
            vec![Membership {
                conversation: c,
                role: Role::Member,
                share_history_us: Some(100),
                added_us: 0,
            }],
        );
        let mut old = message(c, 150, Audience::Members);
        old.message = old.message.map(|m| MessageRef {
            created_us: 50,
            ..m
        });
        assert_eq!(
            scope.admit(&old),
            Verdict::Skip,
            "before the shared history"
        );
        let at = OffsetDateTime::UNIX_EPOCH;
        assert_eq!(
            scope.admit(&CommittedEvent::typing(c, &me, None, at)),
            Verdict::Skip
        );
        assert_eq!(
            scope.admit(&CommittedEvent::typing(c, &id("8:acs:r_x"), None, at)),
            Verdict::Deliver
        );
        assert_eq!(
            scope.admit(&CommittedEvent::typing(
                ConversationId(4),
                &id("8:acs:r_x"),
                None,
                at
            )),
            Verdict::Skip
        );
        assert_eq!(
            scope.admit(&CommittedEvent::credentials_changed(Some(&me), at)),
            Verdict::Recheck
        );
        assert_eq!(
            scope.admit(&CommittedEvent::credentials_changed(
                Some(&id("8:acs:r_x")),
                at
            )),
            Verdict::Skip
        );
    }
}
