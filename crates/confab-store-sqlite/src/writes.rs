//! The writes, one per `Store` method, as run by the writer thread inside a batch transaction.
//!
//! Each checks everything that can fail before its first write (see `writer.rs` on why), stamps
//! times and ids from the writer's clock, and logs its events in the same transaction.

use confab_core::ids::{ConversationId, IdentityId, MessageId};
use confab_core::model::{
    Application, Audience, EventKind, Identity, Message, MessageContent, MessageType, Participant,
    ParticipantRef, PinChallenge, RefreshToken, Role,
};
use confab_core::ports::connectors::constant_time_eq;
use confab_core::ports::{
    ConversationUpdate, CreatedConversation, MessageEdit, NewMessage, PinOutcome, PinRedemption,
    StoreError, StoreResult,
};
use confab_store_common::creation::{dedupe, participant_ref, Creation};
use confab_store_common::event_payloads::{self, EventRow};
use confab_store_common::message_events::{message_event_text, MessageHints};
use confab_store_common::outbox;
use rusqlite::{params, OptionalExtension};
use time::OffsetDateTime;

use crate::codec::{self, conv_key, encode_metadata, DbResult, MESSAGE_COLUMNS};
use crate::reads;
use crate::writer::Writer;

impl Writer {
    // Helpers.

    /// The clock's now, truncated to what the database keeps.
    pub(crate) fn now(&self) -> StoreResult<(OffsetDateTime, i64)> {
        codec::truncate(self.clock.now())
    }

    /// The next value of the id clock: the time in µs, bumped to stay strictly increasing.
    fn next_id(&mut self, now_us: i64) -> i64 {
        self.last_id = now_us.max(self.last_id.saturating_add(1));
        self.last_id
    }

    /// A fresh version for an edited or deleted message.
    fn next_version(&mut self, now_us: i64) -> i64 {
        self.clock_dirty = true;
        self.next_id(now_us)
    }

    /// Fails with `NotFound` unless the conversation exists and is not deleted.
    pub(crate) fn ensure_open(&self, conversation: ConversationId) -> StoreResult<()> {
        self.conn
            .prepare_cached("SELECT 1 FROM conversations WHERE id = ?1 AND deleted_on IS NULL")
            .db()?
            .query_row([conv_key(conversation)], |_| Ok(()))
            .optional()
            .db()?
            .ok_or(StoreError::NotFound)
    }

    /// Appends one row to the event log.
    pub(crate) fn event(
        &self,
        kind: EventKind,
        conversation: Option<ConversationId>,
        message: Option<i64>,
        identity: Option<&IdentityId>,
        payload: serde_json::Value,
        at: i64,
    ) -> StoreResult<()> {
        let data = payload.to_string();
        self.log_event(
            kind,
            conversation,
            message,
            identity,
            EventRow::Whole,
            data,
            at,
        )
    }

    /// [`Writer::event`] with the event's data already serialized, and what its row keeps: the
    /// wire event's `data`, a shortened form of it, or for a message event the message's change
    /// and no identity (the sender is in the message's row); a read puts the data together
    /// again.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn log_event(
        &self,
        kind: EventKind,
        conversation: Option<ConversationId>,
        message: Option<i64>,
        identity: Option<&IdentityId>,
        row: EventRow,
        data: String,
        at: i64,
    ) -> StoreResult<()> {
        let (row_identity, row_payload) = row.columns(identity, &data);
        self.conn
            .prepare_cached(
                "INSERT INTO events (conversation, kind, message_id, identity, payload, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .db()?
            .execute(params![
                conversation.map(conv_key),
                codec::event_kind_name(&kind),
                message,
                row_identity,
                row_payload,
                at
            ])
            .db()?;
        let position = self.conn.last_insert_rowid();
        self.note_membership_change(&kind, conversation);
        // The outbox: with no webhook subscription at all this is one `is_empty` check (and the
        // data is parsed back only when some subscription exists).
        if !self.webhooks.is_empty() {
            let payload: serde_json::Value = serde_json::from_str(&data)
                .map_err(|e| StoreError::Unavailable(format!("event data: {e}")))?;
            outbox::outbox(
                self,
                &self.webhooks,
                position,
                &kind,
                conversation,
                message,
                identity,
                &payload,
                at,
            )?;
        }
        let hints = row.into_hints();
        self.keep_event(position, kind, conversation, identity, hints, data, at);
        Ok(())
    }

    /// Logs a message event (received, edited, deleted) with the whole message as its data, so
    /// that a stream renders it without reading it back.
    fn log_message_event(&self, kind: EventKind, message: &Message, at: i64) -> StoreResult<()> {
        let text = message_event_text(message)?;
        self.log_event(
            kind,
            Some(message.conversation),
            Some(message.id.0),
            message.sender.as_ref(),
            EventRow::Message(MessageHints::new(message, text.logged)),
            text.data,
            at,
        )
    }

    /// Appends a message: takes the conversation's next sequence id (failing with `NotFound` if
    /// it is missing or deleted), stamps it, and logs `MessageReceived`.
    fn insert_message(
        &mut self,
        new: &NewMessage,
        now: OffsetDateTime,
        now_us: i64,
    ) -> StoreResult<Message> {
        let key = conv_key(new.conversation);
        // Encode first, so that whatever can fail fails before the first write (a job that fails
        // after writing costs its batch a replay; see the module doc).
        let content = codec::encode_content(&new.content)?;
        let metadata = encode_metadata(&new.metadata)?;
        let audience = codec::encode_audience(&new.audience)?;
        // The conversation is live and its newest sequence id known if this writer appended
        // to it since (`SequenceIds`). Otherwise one read checks the conversation and finds the
        // sequence id of its newest message (`codec::newest_message!`); nothing is written to
        // the conversation row. Inside the batch transaction the read sees the batch's earlier
        // appends, and a rolled-back job's append takes its sequence id with it.
        let last_sequence_id = match self.sequence_ids.get(&key) {
            Some(known) => known,
            None => self
                .conn
                .prepare_cached(concat!(
                    "SELECT COALESCE(",
                    codec::newest_message!("sequence_id"),
                    ", 0) FROM conversations AS c WHERE c.id = ?1 AND c.deleted_on IS NULL"
                ))
                .db()?
                .query_row(params![key], |row| row.get::<_, i64>(0))
                .optional()
                .db()?
                .ok_or(StoreError::NotFound)?,
        };
        let sequence_id = last_sequence_id + 1;
        let id = self.next_id(now_us);
        let sender = new.sender.as_ref().map(IdentityId::as_str);
        let row_bytes = codec::message_row_bytes(
            &content,
            sender,
            new.sender_display_name.as_deref(),
            metadata.as_deref(),
            audience.as_deref(),
        );
        let content = self.place_content(id, content, row_bytes, false)?;
        self.conn
            .prepare_cached(
                "INSERT INTO messages (id, conversation, sequence_id, kind, content, sender,
                     sender_display_name, metadata, version, created_on, changed_on, audience)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?1, ?9, ?9, ?10)",
            )
            .db()?
            .execute(params![
                id,
                key,
                sequence_id,
                new.kind.as_str(),
                content,
                sender,
                new.sender_display_name,
                metadata,
                now_us,
                audience
            ])
            .db()?;
        self.sequence_ids.set(key, sequence_id);
        let readers: Vec<&str> = match &new.audience {
            Audience::Members => Vec::new(),
            Audience::AllSubscribers => vec![codec::ALL_SUBSCRIBERS],
            Audience::Subscribers(list) => list.iter().map(IdentityId::as_str).collect(),
        };
        if !readers.is_empty() {
            let mut stmt = self
                .conn
                .prepare_cached(
                    "INSERT INTO message_audience (conversation, identity, message_id)
                     VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                )
                .db()?;
            for reader in readers {
                stmt.execute(params![key, reader, id]).db()?;
            }
        }
        let message = new.stored(id, sequence_id, now);
        self.log_message_event(EventKind::MessageReceived, &message, now_us)?;
        Ok(message)
    }

    /// Appends a system message (no sender) with the given content.
    fn system_message(
        &mut self,
        conversation: ConversationId,
        kind: MessageType,
        content: MessageContent,
        now: OffsetDateTime,
        now_us: i64,
    ) -> StoreResult<Message> {
        self.insert_message(
            &NewMessage::system(conversation, kind, content),
            now,
            now_us,
        )
    }

    /// Whether `identity` is a participant of `conversation`.
    pub(crate) fn is_participant(
        &self,
        conversation: ConversationId,
        identity: &IdentityId,
    ) -> StoreResult<bool> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM participants WHERE conversation = ?1 AND identity = ?2")
            .db()?
            .query_row(params![conv_key(conversation), identity.as_str()], |_| {
                Ok(())
            })
            .optional()
            .db()?
            .is_some())
    }

    /// Adds the participants to the conversation, or updates those already in it (which keep
    /// their `added_on`). One statement, prepared once for them all: its cache lookup hashes the
    /// whole SQL text.
    fn upsert_participants<'p>(
        &self,
        conversation: ConversationId,
        participants: impl IntoIterator<Item = &'p Participant>,
        now_us: i64,
    ) -> StoreResult<()> {
        let mut upsert = self
            .conn
            .prepare_cached(
                "INSERT INTO participants (conversation, identity, display_name,
                     share_history_time, metadata, role, added_on)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (conversation, identity) DO UPDATE SET
                     display_name = excluded.display_name,
                     share_history_time = excluded.share_history_time,
                     metadata = excluded.metadata,
                     role = excluded.role",
            )
            .db()?;
        let key = conv_key(conversation);
        for participant in participants {
            upsert
                .execute(params![
                    key,
                    participant.identity.as_str(),
                    participant.display_name,
                    participant.share_history_time.map(codec::micros),
                    encode_metadata(&participant.metadata)?,
                    participant.role.as_str(),
                    now_us
                ])
                .db()?;
        }
        Ok(())
    }

    /// What a message row holds as its content: the encoded content itself, or `''` when the
    /// row would outgrow [`codec::INLINE_ROW_BYTES`], the content then going to
    /// `message_bodies`. `replacing`: the message may have a body there already (an edit, a
    /// delete), which a content kept in the row must not leave behind.
    fn place_content(
        &self,
        id: i64,
        content: String,
        row_bytes: usize,
        replacing: bool,
    ) -> StoreResult<String> {
        if row_bytes > codec::INLINE_ROW_BYTES {
            self.conn
                .prepare_cached(
                    "INSERT INTO message_bodies (id, body) VALUES (?1, ?2)
                     ON CONFLICT (id) DO UPDATE SET body = excluded.body",
                )
                .db()?
                .execute(params![id, content])
                .db()?;
            return Ok(String::new());
        }
        if replacing {
            self.conn
                .prepare_cached("DELETE FROM message_bodies WHERE id = ?1")
                .db()?
                .execute([id])
                .db()?;
        }
        Ok(content)
    }

    /// [`Self::place_content`] for a changed message (an edit, a delete) that keeps its id.
    fn place_stored_content(
        &self,
        message: &Message,
        metadata: Option<&str>,
    ) -> StoreResult<String> {
        let content = codec::encode_content(&message.content)?;
        let audience = codec::encode_audience(&message.audience)?;
        let row_bytes = codec::message_row_bytes(
            &content,
            message.sender.as_ref().map(IdentityId::as_str),
            message.sender_display_name.as_deref(),
            metadata,
            audience.as_deref(),
        );
        self.place_content(message.id.0, content, row_bytes, true)
    }

    fn load_message(
        &self,
        conversation: ConversationId,
        id: MessageId,
    ) -> StoreResult<Option<Message>> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages
             WHERE id = ?1 AND conversation = ?2 AND deleted_on IS NULL"
        );
        self.conn
            .prepare_cached(&sql)
            .db()?
            .query_row(
                params![id.0, conv_key(conversation)],
                codec::message_from_row,
            )
            .optional()
            .db()
    }

    // -----------------------------------------------------------------------------------------
    // The writes, one per `Store` method.

    pub(crate) fn create_identity(&mut self, identity: &Identity) -> StoreResult<()> {
        let inserted = self
            .conn
            .prepare_cached(
                "INSERT INTO identities (id, created_on, token_generation) VALUES (?1, ?2, ?3)
                 ON CONFLICT (id) DO NOTHING",
            )
            .db()?
            .execute(params![
                identity.id.as_str(),
                codec::micros(identity.created_on),
                identity.token_generation
            ])
            .db()?;
        if inserted == 0 {
            return Err(StoreError::Conflict(format!(
                "identity {} already exists",
                identity.id
            )));
        }
        Ok(())
    }

    pub(crate) fn bump_token_generation(&mut self, id: &IdentityId) -> StoreResult<u32> {
        let generation: i64 = self
            .conn
            .prepare_cached(
                "UPDATE identities SET token_generation = token_generation + 1 WHERE id = ?1
                 RETURNING token_generation",
            )
            .db()?
            .query_row([id.as_str()], |row| row.get(0))
            .optional()
            .db()?
            .ok_or(StoreError::NotFound)?;
        u32::try_from(generation)
            .map_err(|_| StoreError::Conflict("token generation exhausted".into()))
    }

    pub(crate) fn delete_identity(&mut self, id: &IdentityId) -> StoreResult<()> {
        let deleted = self
            .conn
            .prepare_cached("DELETE FROM identities WHERE id = ?1")
            .db()?
            .execute([id.as_str()])
            .db()?;
        if deleted == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    pub(crate) fn create_conversation(
        &mut self,
        creation: &Creation,
    ) -> StoreResult<CreatedConversation> {
        let new = &creation.new;
        if let Some(key) = &new.repeatability_key {
            let earlier: Option<[u8; 16]> = self
                .conn
                .prepare_cached("SELECT id FROM conversations WHERE repeatability_key = ?1")
                .db()?
                .query_row([key], |row| row.get(0))
                .optional()
                .db()?;
            if let Some(earlier) = earlier {
                let id = ConversationId(u128::from_be_bytes(earlier));
                let conversation =
                    reads::get_conversation(&self.conn, id)?.ok_or(StoreError::NotFound)?;
                return Ok(CreatedConversation {
                    conversation,
                    created: false,
                });
            }
        }

        let (now, now_us) = self.now()?;
        let days = codec::retention_days(new.retention);
        let metadata = encode_metadata(&new.metadata)?;
        // The first write: a duplicate id fails here, before anything changed.
        let inserted = self
            .conn
            .prepare_cached(
                "INSERT INTO conversations (id, topic, created_by, created_on, metadata,
                     retention_days, expires_on, repeatability_key, kind, welcome_message)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )
            .db()?
            .execute(params![
                conv_key(new.id),
                new.topic,
                new.created_by.as_str(),
                now_us,
                metadata,
                days,
                codec::expires_on(now_us, days),
                new.repeatability_key,
                new.kind.as_str(),
                new.welcome_message
            ]);
        match inserted {
            Ok(_) => {}
            Err(err) if codec::is_constraint_violation(&err) => {
                return Err(StoreError::Conflict(format!(
                    "conversation {} already exists",
                    new.id.to_acs()
                )))
            }
            Err(err) => return Err(codec::db_err(err)),
        }

        self.upsert_participants(new.id, &creation.participants, now_us)?;
        self.log_event(
            EventKind::ConversationCreated,
            Some(new.id),
            None,
            Some(&new.created_by),
            creation.event_row.clone(),
            creation.event_data.clone(),
            now_us,
        )?;
        self.system_message(
            new.id,
            MessageType::ParticipantAdded,
            creation.first_message.clone(),
            now,
            now_us,
        )?;

        Ok(CreatedConversation {
            conversation: new.created(now),
            created: true,
        })
    }

    pub(crate) fn update_conversation(
        &mut self,
        id: ConversationId,
        update: &ConversationUpdate,
        by: &IdentityId,
    ) -> StoreResult<()> {
        let key = conv_key(id);
        let (topic, created_on): (String, i64) = self
            .conn
            .prepare_cached(
                "SELECT topic, created_on FROM conversations WHERE id = ?1 AND deleted_on IS NULL",
            )
            .db()?
            .query_row([key], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()
            .db()?
            .ok_or(StoreError::NotFound)?;
        let (now, now_us) = self.now()?;
        let mut changed = Vec::new();
        let new_topic = update.topic.as_ref().filter(|t| **t != topic);
        let metadata = update.metadata.as_ref().map(encode_metadata).transpose()?;
        if let Some(topic) = new_topic {
            self.conn
                .prepare_cached("UPDATE conversations SET topic = ?1 WHERE id = ?2")
                .db()?
                .execute(params![topic, key])
                .db()?;
            changed.push("topic");
        }
        if let Some(metadata) = metadata {
            self.conn
                .prepare_cached("UPDATE conversations SET metadata = ?1 WHERE id = ?2")
                .db()?
                .execute(params![metadata, key])
                .db()?;
            changed.push("metadata");
        }
        if let Some(retention) = update.retention {
            let days = codec::retention_days(retention);
            self.conn
                .prepare_cached(
                    "UPDATE conversations SET retention_days = ?1, expires_on = ?2 WHERE id = ?3",
                )
                .db()?
                .execute(params![days, codec::expires_on(created_on, days), key])
                .db()?;
            changed.push("retention");
        }
        if changed.is_empty() {
            return Ok(());
        }
        self.event(
            EventKind::ConversationUpdated,
            Some(id),
            None,
            Some(by),
            event_payloads::conversation_updated(id, &changed, new_topic, update, by),
            now_us,
        )?;
        if let Some(topic) = new_topic {
            let content = MessageContent {
                topic: Some(topic.clone()),
                initiator: Some(by.clone()),
                ..MessageContent::default()
            };
            self.system_message(id, MessageType::TopicUpdated, content, now, now_us)?;
        }
        Ok(())
    }

    pub(crate) fn delete_conversation(
        &mut self,
        id: ConversationId,
        by: Option<&IdentityId>,
    ) -> StoreResult<()> {
        let (_, now_us) = self.now()?;
        self.mark_deleted(id, now_us, "request", by)
    }

    fn mark_deleted(
        &mut self,
        id: ConversationId,
        now_us: i64,
        reason: &str,
        by: Option<&IdentityId>,
    ) -> StoreResult<()> {
        let updated = self
            .conn
            .prepare_cached(
                "UPDATE conversations SET deleted_on = ?1 WHERE id = ?2 AND deleted_on IS NULL",
            )
            .db()?
            .execute(params![now_us, conv_key(id)])
            .db()?;
        if updated == 0 {
            return Err(StoreError::NotFound);
        }
        self.sequence_ids.forget(&conv_key(id));
        self.event(
            EventKind::ConversationDeleted,
            Some(id),
            None,
            None,
            event_payloads::conversation_deleted(id, reason, by),
            now_us,
        )
    }

    pub(crate) fn delete_expired_conversations(&mut self) -> StoreResult<Vec<ConversationId>> {
        let (_, now_us) = self.now()?;
        let expired = self
            .conn
            .prepare_cached(
                "SELECT id FROM conversations
                 WHERE deleted_on IS NULL AND expires_on IS NOT NULL AND expires_on <= ?1",
            )
            .db()?
            .query_map([now_us], |row| codec::conversation_at(row, 0))
            .db()?
            .collect::<rusqlite::Result<Vec<_>>>()
            .db()?;
        for id in &expired {
            self.mark_deleted(*id, now_us, "retention", None)?;
        }
        Ok(expired)
    }

    pub(crate) fn add_participants(
        &mut self,
        conversation: ConversationId,
        participants: &[Participant],
        by: &IdentityId,
        max_participants: usize,
    ) -> StoreResult<()> {
        self.ensure_open(conversation)?;
        let participants = dedupe(participants.to_vec());
        let mut added = Vec::new();
        let mut updated = Vec::new();
        for participant in &participants {
            if self.is_participant(conversation, &participant.identity)? {
                updated.push(participant);
            } else {
                added.push(participant);
            }
        }
        if !added.is_empty() {
            let count: i64 = self
                .conn
                .prepare_cached("SELECT COUNT(*) FROM participants WHERE conversation = ?1")
                .db()?
                .query_row([conv_key(conversation)], |row| row.get(0))
                .db()?;
            let count = usize::try_from(count).unwrap_or(usize::MAX);
            if count.saturating_add(added.len()) > max_participants {
                return Err(StoreError::ParticipantLimit(max_participants));
            }
        }
        let (now, now_us) = self.now()?;
        self.upsert_participants(conversation, &participants, now_us)?;
        // A subscriber made a member is a subscriber no more: an identity is one or the other.
        for participant in &added {
            self.conn
                .prepare_cached("DELETE FROM subscribers WHERE conversation = ?1 AND identity = ?2")
                .db()?
                .execute(params![
                    conv_key(conversation),
                    participant.identity.as_str()
                ])
                .db()?;
        }
        self.event(
            EventKind::ParticipantsAdded,
            Some(conversation),
            None,
            Some(by),
            event_payloads::participants_added(conversation, &added, &updated, &participants, by),
            now_us,
        )?;
        if !added.is_empty() {
            let content = MessageContent {
                participants: added.iter().map(|p| participant_ref(p)).collect(),
                initiator: Some(by.clone()),
                ..MessageContent::default()
            };
            self.system_message(
                conversation,
                MessageType::ParticipantAdded,
                content,
                now,
                now_us,
            )?;
        }
        Ok(())
    }

    pub(crate) fn remove_participant(
        &mut self,
        conversation: ConversationId,
        identity: &IdentityId,
        by: &IdentityId,
    ) -> StoreResult<()> {
        self.ensure_open(conversation)?;
        let (now, now_us) = self.now()?;
        let removed: (Option<String>, Option<i64>) = self
            .conn
            .prepare_cached(
                "DELETE FROM participants WHERE conversation = ?1 AND identity = ?2
                 RETURNING display_name, share_history_time",
            )
            .db()?
            .query_row(params![conv_key(conversation), identity.as_str()], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .optional()
            .db()?
            .ok_or(StoreError::NotFound)?;
        self.event(
            EventKind::ParticipantRemoved,
            Some(conversation),
            None,
            Some(identity),
            event_payloads::participant_removed(conversation, identity, removed.0.as_deref(), by),
            now_us,
        )?;
        let content = MessageContent {
            participants: vec![ParticipantRef {
                identity: identity.clone(),
                display_name: removed.0,
                share_history_time: removed.1.and_then(codec::from_micros),
            }],
            initiator: Some(by.clone()),
            ..MessageContent::default()
        };
        self.system_message(
            conversation,
            MessageType::ParticipantRemoved,
            content,
            now,
            now_us,
        )?;
        Ok(())
    }

    pub(crate) fn append_message(&mut self, message: &NewMessage) -> StoreResult<Message> {
        let (now, now_us) = self.now()?;
        self.insert_message(message, now, now_us)
    }

    pub(crate) fn edit_message(
        &mut self,
        conversation: ConversationId,
        id: MessageId,
        edit: &MessageEdit,
    ) -> StoreResult<Message> {
        self.ensure_open(conversation)?;
        let mut message = self
            .load_message(conversation, id)?
            .ok_or(StoreError::NotFound)?;
        let (now, now_us) = self.now()?;
        if let Some(text) = &edit.text {
            message.content.text = Some(text.clone());
        }
        if let Some(metadata) = &edit.metadata {
            message.metadata = metadata.clone();
        }
        message.version = self.next_version(now_us);
        message.edited_on = Some(now);
        let metadata = encode_metadata(&message.metadata)?;
        let content = self.place_stored_content(&message, metadata.as_deref())?;
        self.conn
            .prepare_cached(
                "UPDATE messages SET content = ?1, metadata = ?2, version = ?3, edited_on = ?4,
                     changed_on = ?4
                 WHERE conversation = ?5 AND id = ?6",
            )
            .db()?
            .execute(params![
                content,
                metadata,
                message.version,
                now_us,
                conv_key(conversation),
                id.0
            ])
            .db()?;
        self.log_message_event(EventKind::MessageEdited, &message, now_us)?;
        Ok(message)
    }

    pub(crate) fn delete_message(
        &mut self,
        conversation: ConversationId,
        id: MessageId,
    ) -> StoreResult<()> {
        self.ensure_open(conversation)?;
        let mut message = self
            .load_message(conversation, id)?
            .ok_or(StoreError::NotFound)?;
        let (now, now_us) = self.now()?;
        message.content.text = None;
        // A delete is a change too: clients that cache by version must see it.
        message.version = self.next_version(now_us);
        message.deleted_on = Some(now);
        let content =
            self.place_stored_content(&message, encode_metadata(&message.metadata)?.as_deref())?;
        self.conn
            .prepare_cached(
                "UPDATE messages SET content = ?1, version = ?2, deleted_on = ?3, changed_on = ?3
                 WHERE conversation = ?4 AND id = ?5",
            )
            .db()?
            .execute(params![
                content,
                message.version,
                now_us,
                conv_key(conversation),
                id.0
            ])
            .db()?;
        self.log_message_event(EventKind::MessageDeleted, &message, now_us)
    }

    pub(crate) fn put_read_receipt(
        &mut self,
        conversation: ConversationId,
        reader: &IdentityId,
        message: MessageId,
    ) -> StoreResult<()> {
        self.ensure_open(conversation)?;
        let key = conv_key(conversation);
        let exists = self
            .conn
            .prepare_cached("SELECT 1 FROM messages WHERE id = ?1 AND conversation = ?2")
            .db()?
            .query_row(params![message.0, key], |_| Ok(()))
            .optional()
            .db()?
            .is_some();
        if !exists {
            return Err(StoreError::NotFound);
        }
        let (_, now_us) = self.now()?;
        // Keeps the newest receipt per reader: an older message id changes nothing.
        let changed = self
            .conn
            .prepare_cached(
                "INSERT INTO read_receipts (conversation, reader, message_id, read_on)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (conversation, reader) DO UPDATE SET
                     message_id = excluded.message_id, read_on = excluded.read_on
                 WHERE excluded.message_id > read_receipts.message_id",
            )
            .db()?
            .execute(params![key, reader.as_str(), message.0, now_us])
            .db()?;
        if changed == 0 {
            return Ok(());
        }
        self.event(
            EventKind::ReadReceipt,
            Some(conversation),
            Some(message.0),
            Some(reader),
            event_payloads::read_receipt(conversation, reader, message),
            now_us,
        )
    }

    pub(crate) fn set_participant_role(
        &mut self,
        conversation: ConversationId,
        identity: &IdentityId,
        role: Role,
        by: &IdentityId,
    ) -> StoreResult<()> {
        self.ensure_open(conversation)?;
        let changed = self
            .conn
            .prepare_cached(
                "UPDATE participants SET role = ?3
                 WHERE conversation = ?1 AND identity = ?2 AND role <> ?3",
            )
            .db()?
            .execute(params![
                conv_key(conversation),
                identity.as_str(),
                role.as_str()
            ])
            .db()?;
        if changed == 0 {
            return if self.is_participant(conversation, identity)? {
                Ok(())
            } else {
                Err(StoreError::NotFound)
            };
        }
        let (_, now_us) = self.now()?;
        self.event(
            EventKind::ParticipantRoleChanged,
            Some(conversation),
            None,
            Some(identity),
            event_payloads::role_changed(conversation, identity, role, by),
            now_us,
        )
    }

    // -----------------------------------------------------------------------------------------
    // Connector applications and credentials.

    pub(crate) fn create_application(&mut self, application: &Application) -> StoreResult<()> {
        let inserted = self
            .conn
            .prepare_cached(
                "INSERT INTO applications (id, name, secret_hash, scopes, created_on)
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (id) DO NOTHING",
            )
            .db()?
            .execute(params![
                application.id,
                application.name,
                application.secret_hash,
                codec::join_scopes(&application.scopes),
                codec::micros(application.created_on)
            ])
            .db()?;
        if inserted == 0 {
            return Err(StoreError::Conflict(format!(
                "application {} already exists",
                application.id
            )));
        }
        Ok(())
    }

    pub(crate) fn delete_application(&mut self, id: &str) -> StoreResult<()> {
        let deleted = self
            .conn
            .prepare_cached("DELETE FROM applications WHERE id = ?1")
            .db()?
            .execute([id])
            .db()?;
        if deleted == 0 {
            return Err(StoreError::NotFound);
        }
        for sql in [
            "DELETE FROM pins WHERE application = ?1",
            "DELETE FROM refresh_tokens WHERE application = ?1",
        ] {
            self.conn.prepare_cached(sql).db()?.execute([id]).db()?;
        }
        Ok(())
    }

    pub(crate) fn put_pin(&mut self, pin: &PinChallenge) -> StoreResult<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO pins (application, identity, pin_hash, expires_on, attempts_left)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (application, identity) DO UPDATE SET
                     pin_hash = excluded.pin_hash,
                     expires_on = excluded.expires_on,
                     attempts_left = excluded.attempts_left",
            )
            .db()?
            .execute(params![
                pin.application,
                pin.identity.as_str(),
                pin.pin_hash,
                codec::micros(pin.expires_on),
                pin.attempts_left
            ])
            .db()?;
        Ok(())
    }

    /// Settles a PIN login; see `ConnectorStore::redeem_pin`. Every outcome is a success of the
    /// job, so that a counted attempt commits.
    pub(crate) fn redeem_pin(&mut self, r: &PinRedemption) -> StoreResult<PinOutcome> {
        let key = params![r.application, r.identity.as_str()];
        let pending: Option<(Vec<u8>, i64, i64)> = self
            .conn
            .prepare_cached(
                "SELECT pin_hash, expires_on, attempts_left FROM pins
                 WHERE application = ?1 AND identity = ?2",
            )
            .db()?
            .query_row(key, |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .optional()
            .db()?;
        let Some((hash, expires_on, attempts_left)) = pending else {
            return Ok(PinOutcome::Missing);
        };
        let delete_pin = |w: &Self| -> StoreResult<()> {
            w.conn
                .prepare_cached("DELETE FROM pins WHERE application = ?1 AND identity = ?2")
                .db()?
                .execute(params![r.application, r.identity.as_str()])
                .db()?;
            Ok(())
        };
        if expires_on <= codec::micros(r.now) {
            delete_pin(self)?;
            return Ok(PinOutcome::Expired);
        }
        if !constant_time_eq(&hash, &r.pin_hash) {
            let left = attempts_left.saturating_sub(1).max(0);
            if left == 0 {
                delete_pin(self)?;
            } else {
                self.conn
                    .prepare_cached(
                        "UPDATE pins SET attempts_left = ?3
                         WHERE application = ?1 AND identity = ?2",
                    )
                    .db()?
                    .execute(params![r.application, r.identity.as_str(), left])
                    .db()?;
            }
            return Ok(PinOutcome::Wrong {
                attempts_left: u32::try_from(left).unwrap_or(0),
            });
        }
        delete_pin(self)?;
        // A new login replaces the earlier refresh tokens of this application and identity.
        self.conn
            .prepare_cached("DELETE FROM refresh_tokens WHERE application = ?1 AND identity = ?2")
            .db()?
            .execute(params![r.application, r.identity.as_str()])
            .db()?;
        self.add_refresh_token(&r.refresh_token)?;
        let created = self
            .conn
            .prepare_cached(
                "INSERT INTO identities (id, created_on, token_generation) VALUES (?1, ?2, 0)
                 ON CONFLICT (id) DO NOTHING",
            )
            .db()?
            .execute(params![r.identity.as_str(), codec::micros(r.now)])
            .db()?;
        Ok(PinOutcome::Redeemed {
            first_login: created == 1,
        })
    }

    pub(crate) fn add_refresh_token(&mut self, token: &RefreshToken) -> StoreResult<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO refresh_tokens (hash, application, identity, scopes, created_on,
                     expires_on)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .db()?
            .execute(params![
                token.hash,
                token.application,
                token.identity.as_str(),
                codec::join_scopes(&token.scopes),
                codec::micros(token.created_on),
                codec::micros(token.expires_on)
            ])
            .db()?;
        Ok(())
    }

    pub(crate) fn purge_expired_credentials(&mut self, now: OffsetDateTime) -> StoreResult<usize> {
        let now_us = codec::micros(now);
        let mut purged = 0;
        for sql in [
            "DELETE FROM pins WHERE expires_on <= ?1",
            "DELETE FROM refresh_tokens WHERE expires_on <= ?1",
        ] {
            purged += self.conn.prepare_cached(sql).db()?.execute([now_us]).db()?;
        }
        Ok(purged)
    }
}

#[cfg(test)]
mod tests {
    use confab_core::ids::{ConversationId, IdentityId, MessageId};
    use confab_core::model::{EventKind, Message, Metadata, Participant, Role};
    use confab_core::ports::{MessageEdit, MessageQuery, NewConversation};
    use rusqlite::OptionalExtension;

    use confab_store_common::creation::Creation;

    use crate::events::events_after;
    use crate::reads;
    use crate::writer::tests::{conversation, run_jobs, text, writer};
    use crate::writer::Writer;

    /// What the message's row holds as its content, and its `message_bodies` row if any.
    fn stored(w: &Writer, id: MessageId) -> (String, Option<String>) {
        let inline = w
            .conn
            .query_row(
                "SELECT content FROM messages WHERE id = ?1",
                [id.0],
                |row| row.get(0),
            )
            .expect("row");
        let body = w
            .conn
            .query_row(
                "SELECT body FROM message_bodies WHERE id = ?1",
                [id.0],
                |row| row.get(0),
            )
            .optional()
            .expect("body");
        (inline, body)
    }

    /// The message's text as each read path gives it: by id, in a page, and in its newest
    /// event.
    fn read_back(w: &Writer, message: &Message) -> [Option<String>; 3] {
        let by_id = reads::get_message(&w.conn, message.conversation, message.id)
            .expect("get")
            .expect("found");
        let page = reads::list_messages(
            &w.conn,
            message.conversation,
            &MessageQuery {
                limit: 10,
                ..MessageQuery::default()
            },
        )
        .expect("list");
        let listed = page
            .items
            .into_iter()
            .find(|m| m.id == message.id)
            .expect("listed");
        let event = events_after(&w.conn, 0, 100)
            .expect("events")
            .into_iter()
            .rev()
            .find(|e| e.message.as_ref().is_some_and(|m| m.id == message.id.0))
            .expect("event");
        let data: serde_json::Value = serde_json::from_str(event.data()).expect("json");
        [
            by_id.content.text,
            listed.content.text,
            data["content"]["text"].as_str().map(str::to_owned),
        ]
    }

    #[test]
    fn a_content_too_big_for_its_row_is_kept_beside_it_and_reads_back_whole() {
        let (mut w, _scratch) = writer("bodies");
        let conversation = conversation(&mut w);
        let big = "x".repeat(3_000);
        let small = "hello".to_string();
        let sent = run_jobs(
            &mut w,
            vec![
                Box::new({
                    let new = text(conversation, &big);
                    move |w: &mut Writer| w.append_message(&new)
                }),
                Box::new({
                    let new = text(conversation, &small);
                    move |w: &mut Writer| w.append_message(&new)
                }),
            ],
        );
        let (big_message, small_message) = match &sent[..] {
            [Ok(a), Ok(b)] => (a.clone(), b.clone()),
            other => panic!("appends failed: {other:?}"),
        };

        // The big one's row holds '' and its content sits in message_bodies; the small one's
        // row holds its content.
        let (inline, body) = stored(&w, big_message.id);
        assert_eq!(inline, "");
        assert!(body.as_deref().is_some_and(|b| b.contains(&big)));
        let (inline, body) = stored(&w, small_message.id);
        assert!(inline.contains(&small));
        assert_eq!(body, None);
        assert_eq!(
            read_back(&w, &big_message),
            [Some(big.clone()), Some(big.clone()), Some(big.clone())]
        );
        assert_eq!(
            read_back(&w, &small_message),
            [
                Some(small.clone()),
                Some(small.clone()),
                Some(small.clone())
            ]
        );

        // Edited small, the content moves back into the row and the body is gone; edited big
        // again, it moves out again.
        let edit = |text: &str| MessageEdit {
            text: Some(text.to_owned()),
            metadata: None,
        };
        let id = big_message.id;
        let (shrink, grow) = (edit("short now"), edit(&big));
        let edited = run_jobs(
            &mut w,
            vec![Box::new(move |w: &mut Writer| {
                w.edit_message(conversation, id, &shrink)
            })],
        );
        let shrunk = edited[0].as_ref().expect("edited").clone();
        let (inline, body) = stored(&w, id);
        assert!(inline.contains("short now"));
        assert_eq!(body, None);
        let short = Some("short now".to_owned());
        assert_eq!(
            read_back(&w, &shrunk),
            [short.clone(), short.clone(), short]
        );
        let edited = run_jobs(
            &mut w,
            vec![Box::new(move |w: &mut Writer| {
                w.edit_message(conversation, id, &grow)
            })],
        );
        let grown = edited[0].as_ref().expect("edited").clone();
        assert_eq!(stored(&w, id).0, "");
        assert_eq!(
            read_back(&w, &grown),
            [Some(big.clone()), Some(big.clone()), Some(big)]
        );

        // Deleted, its text is gone from both places.
        let deleted = run_jobs(
            &mut w,
            vec![Box::new(move |w: &mut Writer| {
                w.delete_message(conversation, id)
            })],
        );
        assert!(deleted[0].is_ok(), "deleted");
        let (inline, body) = stored(&w, id);
        assert!(!inline.is_empty() && !inline.contains("xxx"), "{inline}");
        assert_eq!(body, None);
    }

    #[test]
    fn a_thread_created_with_many_participants_keeps_its_first_message_whole() {
        let (mut w, _scratch) = writer("bodies-system");
        // Ids as long as ACS's: the participantAdded message naming twelve is ~1.3 KB.
        let members: Vec<Participant> = (0..12)
            .map(|n| Participant {
                identity: IdentityId::parse(&format!(
                    "8:acs:f72ffd12-bb73-49d0-8405-4122ad979ed7_00000000-0000-0000-0000-{n:012}"
                ))
                .expect("id"),
                display_name: None,
                share_history_time: None,
                metadata: Metadata::new(),
                role: if n == 0 { Role::Admin } else { Role::Member },
            })
            .collect();
        let new = NewConversation {
            id: ConversationId::generate(),
            topic: "many".into(),
            created_by: members[0].identity.clone(),
            metadata: Metadata::new(),
            retention: None,
            participants: members.clone(),
            repeatability_key: None,
            kind: Default::default(),
            welcome_message: None,
        };
        let conversation = new.id;
        let created = run_jobs(
            &mut w,
            vec![Box::new(move |w: &mut Writer| {
                w.create_conversation(&Creation::new(new.clone()))
            })],
        );
        assert!(created[0].is_ok(), "created");

        let listed = reads::list_messages(
            &w.conn,
            conversation,
            &MessageQuery {
                limit: 10,
                ..MessageQuery::default()
            },
        )
        .expect("list")
        .items;
        let [first] = &listed[..] else {
            panic!("one message: {listed:?}")
        };
        let (inline, body) = stored(&w, first.id);
        assert_eq!(inline, "");
        assert!(body.is_some());
        let named: Vec<&IdentityId> = first
            .content
            .participants
            .iter()
            .map(|p| &p.identity)
            .collect();
        let expected: Vec<&IdentityId> = members.iter().map(|p| &p.identity).collect();
        assert_eq!(named, expected);

        // The creation's event, read back from its shortened row, lists the participants in
        // their order.
        let created = events_after(&w.conn, 0, 100)
            .expect("events")
            .into_iter()
            .find(|e| e.kind == EventKind::ConversationCreated)
            .expect("created");
        let data: serde_json::Value = serde_json::from_str(created.data()).expect("json");
        let ids: Vec<&str> = members.iter().map(|p| p.identity.as_str()).collect();
        assert_eq!(data["participants"], serde_json::json!(ids));
        let row: String = w
            .conn
            .query_row(
                "SELECT payload FROM events WHERE kind = 'conversationCreated'",
                [],
                |row| row.get(0),
            )
            .expect("row");
        assert!(!row.contains("participants") && row.len() < created.data().len());

        // Its event, rebuilt from the row, names them all too.
        let event = events_after(&w.conn, 0, 100)
            .expect("events")
            .into_iter()
            .find(|e| e.message.as_ref().is_some_and(|m| m.id == first.id.0))
            .expect("event");
        let data: serde_json::Value = serde_json::from_str(event.data()).expect("json");
        assert_eq!(
            data["content"]["participants"].as_array().map(Vec::len),
            Some(12),
            "{data}"
        );
    }
}
