//! The writes of `HierarchyStore`: subgroup links and subscribers, run by the writer thread
//! inside a batch transaction like the writes in `writes.rs` (checks first, then writes, then
//! the event).

use confab_core::ids::{ConversationId, IdentityId};
use confab_core::model::{Conversation, EventKind, SubscribeOutcome};
use confab_core::ports::{StoreError, StoreResult};
use confab_store_common::creation::Creation;
use confab_store_common::event_payloads;
use rusqlite::{params, OptionalExtension};

use crate::codec::{conv_key, DbResult};
use crate::writer::Writer;

impl Writer {
    /// Whether `descendant` is `ancestor` or lies below it (through any links, deleted groups
    /// included: a cycle through a deleted group would come back if it were ever restored).
    fn reaches(&self, ancestor: ConversationId, descendant: ConversationId) -> StoreResult<bool> {
        if ancestor == descendant {
            return Ok(true);
        }
        Ok(self
            .conn
            .prepare_cached(
                "WITH RECURSIVE below(id) AS (
                     SELECT child FROM subgroups WHERE parent = ?1
                     UNION
                     SELECT s.child FROM below JOIN subgroups AS s ON s.parent = below.id
                 )
                 SELECT 1 FROM below WHERE id = ?2 LIMIT 1",
            )
            .db()?
            .query_row(
                params![conv_key(ancestor), conv_key(descendant)],
                |_| Ok(()),
            )
            .optional()
            .db()?
            .is_some())
    }

    fn link(
        &self,
        parent: ConversationId,
        child: ConversationId,
        by: &IdentityId,
        now_us: i64,
    ) -> StoreResult<bool> {
        let inserted = self
            .conn
            .prepare_cached(
                "INSERT INTO subgroups (parent, child, added_on, added_by) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (parent, child) DO NOTHING",
            )
            .db()?
            .execute(params![
                conv_key(parent),
                conv_key(child),
                now_us,
                by.as_str()
            ])
            .db()?;
        if inserted == 0 {
            return Ok(false);
        }
        self.event(
            EventKind::ConversationUpdated,
            Some(parent),
            None,
            Some(by),
            event_payloads::subgroup_changed(parent, child, true),
            now_us,
        )?;
        Ok(true)
    }

    pub(crate) fn create_subgroup(
        &mut self,
        creation: &Creation,
        parent: ConversationId,
    ) -> StoreResult<Conversation> {
        self.ensure_open(parent)?;
        let created = self.create_conversation(creation)?;
        let (_, now_us) = self.now()?;
        self.link(
            parent,
            created.conversation.id,
            &created.conversation.created_by,
            now_us,
        )?;
        Ok(created.conversation)
    }

    pub(crate) fn add_subgroup(
        &mut self,
        parent: ConversationId,
        child: ConversationId,
        by: &IdentityId,
    ) -> StoreResult<bool> {
        self.ensure_open(parent)?;
        self.ensure_open(child)?;
        if self.reaches(child, parent)? {
            return Err(StoreError::Conflict(format!(
                "{} is {} or one of its subgroups",
                parent.to_acs(),
                child.to_acs()
            )));
        }
        let (_, now_us) = self.now()?;
        self.link(parent, child, by, now_us)
    }

    pub(crate) fn remove_subgroup(
        &mut self,
        parent: ConversationId,
        child: ConversationId,
        by: &IdentityId,
    ) -> StoreResult<()> {
        let (_, now_us) = self.now()?;
        let removed = self
            .conn
            .prepare_cached("DELETE FROM subgroups WHERE parent = ?1 AND child = ?2")
            .db()?
            .execute(params![conv_key(parent), conv_key(child)])
            .db()?;
        if removed == 0 {
            return Err(StoreError::NotFound);
        }
        self.event(
            EventKind::ConversationUpdated,
            Some(parent),
            None,
            Some(by),
            event_payloads::subgroup_changed(parent, child, false),
            now_us,
        )
    }

    pub(crate) fn add_subscribers(
        &mut self,
        conversation: ConversationId,
        identities: &[IdentityId],
        by: &IdentityId,
    ) -> StoreResult<Vec<(IdentityId, SubscribeOutcome)>> {
        self.ensure_open(conversation)?;
        let (_, now_us) = self.now()?;
        let key = conv_key(conversation);
        let mut outcomes = Vec::with_capacity(identities.len());
        let mut added = Vec::new();
        for identity in identities {
            let outcome = if self.is_participant(conversation, identity)? {
                SubscribeOutcome::IsMember
            } else {
                let inserted = self
                    .conn
                    .prepare_cached(
                        "INSERT INTO subscribers (conversation, identity, added_on)
                         VALUES (?1, ?2, ?3) ON CONFLICT (conversation, identity) DO NOTHING",
                    )
                    .db()?
                    .execute(params![key, identity.as_str(), now_us])
                    .db()?;
                if inserted == 1 {
                    added.push(identity.as_str());
                    SubscribeOutcome::Added
                } else {
                    SubscribeOutcome::AlreadySubscribed
                }
            };
            outcomes.push((identity.clone(), outcome));
        }
        if !added.is_empty() {
            self.event(
                EventKind::ParticipantsAdded,
                Some(conversation),
                None,
                Some(by),
                event_payloads::subscribers_changed(conversation, &added, by),
                now_us,
            )?;
        }
        Ok(outcomes)
    }

    pub(crate) fn remove_subscribers(
        &mut self,
        conversation: ConversationId,
        identities: &[IdentityId],
        by: &IdentityId,
    ) -> StoreResult<Vec<(IdentityId, bool)>> {
        self.ensure_open(conversation)?;
        let (_, now_us) = self.now()?;
        let key = conv_key(conversation);
        let mut outcomes = Vec::with_capacity(identities.len());
        let mut removed = Vec::new();
        for identity in identities {
            let deleted = self
                .conn
                .prepare_cached("DELETE FROM subscribers WHERE conversation = ?1 AND identity = ?2")
                .db()?
                .execute(params![key, identity.as_str()])
                .db()?;
            if deleted == 1 {
                removed.push(identity.as_str());
            }
            outcomes.push((identity.clone(), deleted == 1));
        }
        if !removed.is_empty() {
            self.event(
                EventKind::ParticipantRemoved,
                Some(conversation),
                None,
                Some(by),
                event_payloads::subscribers_changed(conversation, &removed, by),
                now_us,
            )?;
        }
        Ok(outcomes)
    }
}
