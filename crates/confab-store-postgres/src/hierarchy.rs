//! The writes of `HierarchyStore`: subgroup links and subscribers, run by the writer thread
//! inside a batch transaction like the writes in `writes.rs` (checks first, then writes, then
//! the event). Their reads (`list_subgroups`, `list_subscribers`, `find_subscribers`) are in
//! `reads.rs`.

use confab_core::ids::{ConversationId, IdentityId};
use confab_core::model::{Conversation, EventKind, SubscribeOutcome};
use confab_core::ports::{StoreError, StoreResult};
use confab_store_common::creation::Creation;
use confab_store_common::event_payloads;
use confab_store_common::stored::conv_key;

use crate::writer::Writer;

impl Writer {
    /// Whether `descendant` is `ancestor` or lies below it (through any links, deleted groups
    /// included: a cycle through a deleted group would come back if it were ever restored).
    fn reaches(&self, ancestor: ConversationId, descendant: ConversationId) -> StoreResult<bool> {
        if ancestor == descendant {
            return Ok(true);
        }
        Ok(self
            .db
            .query_opt(
                "WITH RECURSIVE below(id) AS (
                     SELECT child FROM subgroups WHERE parent = $1
                     UNION
                     SELECT s.child FROM below JOIN subgroups AS s ON s.parent = below.id
                 )
                 SELECT 1 FROM below WHERE id = $2 LIMIT 1",
                &[
                    &conv_key(ancestor).as_slice(),
                    &conv_key(descendant).as_slice(),
                ],
            )?
            .is_some())
    }

    /// Links `child` under `parent` and logs it; answers false if the link existed (and logs
    /// nothing).
    fn link(
        &self,
        parent: ConversationId,
        child: ConversationId,
        by: &IdentityId,
        now_us: i64,
    ) -> StoreResult<bool> {
        let inserted = self.db.execute(
            "INSERT INTO subgroups (parent, child, added_on, added_by) VALUES ($1, $2, $3, $4)
             ON CONFLICT (parent, child) DO NOTHING",
            &[
                &conv_key(parent).as_slice(),
                &conv_key(child).as_slice(),
                &now_us,
                &by.as_str(),
            ],
        )?;
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
        let removed = self.db.execute(
            "DELETE FROM subgroups WHERE parent = $1 AND child = $2",
            &[&conv_key(parent).as_slice(), &conv_key(child).as_slice()],
        )?;
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
                let inserted = self.db.execute(
                    "INSERT INTO subscribers (conversation, identity, added_on)
                     VALUES ($1, $2, $3) ON CONFLICT (conversation, identity) DO NOTHING",
                    &[&key.as_slice(), &identity.as_str(), &now_us],
                )?;
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
            let deleted = self.db.execute(
                "DELETE FROM subscribers WHERE conversation = $1 AND identity = $2",
                &[&key.as_slice(), &identity.as_str()],
            )?;
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
