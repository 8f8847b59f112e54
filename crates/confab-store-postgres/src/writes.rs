//! The conversation writes, one per `Store` method, as run by the writer thread inside a batch
//! transaction: conversations, participants and their roles, messages, read receipts.
//!
//! Each checks what it can before its first write (a failed job costs its batch a replay; see
//! `writer.rs`), stamps times and ids from the writer's clock, and logs its events in the same
//! transaction. Conflicts are found with `ON CONFLICT DO NOTHING` and the rows changed, never
//! by a failed statement, which would abort the transaction.

use confab_core::ids::{ConversationId, IdentityId, MessageId};
use confab_core::model::{
    Audience, EventKind, Message, MessageContent, MessageType, Participant, ParticipantRef, Role,
};
use confab_core::ports::{
    ConversationUpdate, CreatedConversation, MessageEdit, NewMessage, StoreError, StoreResult,
};
use confab_store_common::creation::{dedupe, participant_ref, Creation};
use confab_store_common::event_payloads;
use confab_store_common::message_events::{MessageChangeText, MessageHints};
use confab_store_common::stored::{
    conv_key, encode_audience, encode_content, encode_metadata, event_kind_name, expires_on,
    from_micros, micros, retention_days, ALL_SUBSCRIBERS,
};
use time::OffsetDateTime;

use crate::db::{at_once, conversation_at, get};
use crate::reads;
use crate::rows::{self, newest_message, MESSAGE_COLUMNS};
use crate::writer::Writer;

/// The columns of the messages an `append_messages` statement inserts, one array each.
#[derive(Default)]
struct AppendColumns<'a> {
    ids: Vec<i64>,
    conversations: Vec<Vec<u8>>,
    kinds: Vec<&'static str>,
    contents: Vec<String>,
    senders: Vec<Option<&'a str>>,
    display_names: Vec<Option<&'a str>>,
    metadata: Vec<Option<String>>,
    audiences: Vec<Option<String>>,
    logged: Vec<String>,
    /// The conversation's newest sequence id where the writer remembers it (`None`: read it).
    newest: Vec<Option<i64>>,
}

/// The columns of the creations a `create_conversations` statement inserts, one array each;
/// the participants of them all together, each with its creation's place (from 1).
#[derive(Default)]
struct CreationColumns<'a> {
    ids: Vec<Vec<u8>>,
    topics: Vec<&'a str>,
    creators: Vec<&'a str>,
    metadata: Vec<Option<String>>,
    retention_days: Vec<Option<i64>>,
    expires_on: Vec<Option<i64>>,
    repeatability_keys: Vec<Option<&'a str>>,
    kinds: Vec<&'static str>,
    welcome_messages: Vec<Option<&'a str>>,
    event_identities: Vec<Option<&'a str>>,
    event_payloads: Vec<&'a str>,
    message_ids: Vec<i64>,
    contents: Vec<String>,
    logged: Vec<String>,
    of_creation: Vec<i64>,
    participants: ParticipantColumns<'a>,
}

/// What a `create_conversations` statement answers of one creation: the position of its
/// conversationCreated event row, and its first message's event row's position and sequence id.
/// Neither when the creation inserted nothing.
#[derive(Clone, Copy, Default)]
struct CreationLogged {
    created_at: Option<i64>,
    message_at: Option<(i64, i64)>,
}

/// Participants as the arrays a statement takes them through `unnest`. An identity named twice
/// is kept once, as its last mention says (what one statement a participant did; `ON CONFLICT DO
/// UPDATE` may not touch a row twice).
#[derive(Default)]
struct ParticipantColumns<'a> {
    identities: Vec<&'a str>,
    display_names: Vec<Option<&'a str>>,
    share_history_times: Vec<Option<i64>>,
    metadata: Vec<Option<String>>,
    roles: Vec<&'static str>,
}

impl<'a> ParticipantColumns<'a> {
    /// Appends `other`'s participants after these.
    fn extend(&mut self, other: Self) {
        self.identities.extend(other.identities);
        self.display_names.extend(other.display_names);
        self.share_history_times.extend(other.share_history_times);
        self.metadata.extend(other.metadata);
        self.roles.extend(other.roles);
    }

    fn of(participants: impl IntoIterator<Item = &'a Participant>) -> StoreResult<Self> {
        let mut last_mentions: Vec<&Participant> = Vec::new();
        for participant in participants {
            match last_mentions
                .iter_mut()
                .find(|kept| kept.identity == participant.identity)
            {
                Some(kept) => *kept = participant,
                None => last_mentions.push(participant),
            }
        }
        Ok(Self {
            identities: last_mentions.iter().map(|p| p.identity.as_str()).collect(),
            display_names: last_mentions
                .iter()
                .map(|p| p.display_name.as_deref())
                .collect(),
            share_history_times: last_mentions
                .iter()
                .map(|p| p.share_history_time.map(micros))
                .collect(),
            metadata: last_mentions
                .iter()
                .map(|p| encode_metadata(&p.metadata))
                .collect::<StoreResult<_>>()?,
            roles: last_mentions.iter().map(|p| p.role.as_str()).collect(),
        })
    }
}

/// Retention days as stored.
fn days_column(days: Option<u32>) -> Option<i64> {
    days.map(i64::from)
}

impl Writer {
    // Helpers.

    /// Appends a message: takes the conversation's next sequence id (failing with `NotFound` if
    /// it is missing or deleted), stamps it, and logs `MessageReceived`.
    fn insert_message(
        &mut self,
        new: &NewMessage,
        now: OffsetDateTime,
        now_us: i64,
    ) -> StoreResult<Message> {
        self.append_messages(&[new], now, now_us)?
            .pop()
            .unwrap_or(Err(StoreError::NotFound))
    }

    /// Appends one message, now (an action's message, say; `Store::append_message` goes through
    /// `groups.rs`, which takes waiting appends together).
    pub(crate) fn append_message(&mut self, message: &NewMessage) -> StoreResult<Message> {
        let (now, now_us) = self.now()?;
        self.insert_message(message, now, now_us)
    }

    /// Appends messages, in order, in ONE statement (one round trip to the server: what an
    /// append costs here): each gets the sequence id after its conversation's newest message
    /// (counting the ones before it in `messages`; the newest is read only where the writer
    /// does not remember it, see `SequenceIds`), is inserted with its event row, and its event
    /// is logged. A message whose conversation is missing or deleted is `NotFound` alone.
    /// Under the writers' lock and inside the batch transaction the statement sees every earlier
    /// append, and a rolled-back job's appends take their sequence ids with them. Nothing is
    /// written to the conversation rows.
    ///
    /// What an event row keeps (the message's change) does not depend on the sequence id, so
    /// it is written by the same statement; the published data is rendered afterwards.
    pub(crate) fn append_messages(
        &mut self,
        messages: &[&NewMessage],
        now: OffsetDateTime,
        now_us: i64,
    ) -> StoreResult<Vec<StoreResult<Message>>> {
        let mut made = Vec::with_capacity(messages.len());
        let mut columns = AppendColumns::default();
        for new in messages {
            // Encode first, so that whatever can fail fails before the first write.
            let (message, change) = self.new_message(new, now, now_us)?;
            let key = conv_key(new.conversation);
            columns.ids.push(message.id.0);
            columns.conversations.push(key.to_vec());
            columns.kinds.push(new.kind.as_str());
            columns.contents.push(encode_content(&new.content)?);
            columns
                .senders
                .push(new.sender.as_ref().map(IdentityId::as_str));
            columns
                .display_names
                .push(new.sender_display_name.as_deref());
            columns.metadata.push(encode_metadata(&new.metadata)?);
            columns.audiences.push(encode_audience(&new.audience)?);
            columns.logged.push(change.logged().to_owned());
            columns.newest.push(self.sequence_ids.get(&key));
            made.push((message, change));
        }
        let rows = self.db.query(
            concat!(
                "WITH input AS (
                     SELECT * FROM unnest($1::bigint[], $2::bytea[], $3::text[], $4::text[],
                             $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
                             $12::bigint[])
                         WITH ORDINALITY AS i(id, conversation, kind, content, sender,
                             sender_display_name, metadata, audience, logged, newest, ord)
                 ), appended AS (
                     INSERT INTO messages (id, conversation, sequence_id, kind, content, sender,
                         sender_display_name, metadata, version, created_on, changed_on,
                         audience)
                     -- The newest sequence id is read only where the writer does not
                     -- remember it (COALESCE evaluates no more than it needs).
                     SELECT i.id, c.id, COALESCE(i.newest, ",
                newest_message!("sequence_id"),
                ", 0) + row_number() OVER (PARTITION BY c.id ORDER BY i.ord),
                         i.kind, i.content, i.sender, i.sender_display_name, i.metadata, i.id,
                         $10, $10, i.audience
                     FROM input AS i
                     -- LATERAL with LIMIT: one primary-key lookup a message. (A join is planned
                     -- for the ~100 rows a prepared statement guesses `unnest` gives: a hash
                     -- join over every conversation, a sequential scan.)
                     CROSS JOIN LATERAL (
                         SELECT k.id FROM conversations AS k
                         WHERE k.id = i.conversation AND k.deleted_on IS NULL LIMIT 1
                     ) AS c
                     ORDER BY i.ord
                     RETURNING id, sequence_id
                 ), logged AS (
                     INSERT INTO events (conversation, kind, message_id, identity, payload, at)
                     SELECT i.conversation, $11, i.id, NULL, i.logged, $10
                     FROM appended AS a JOIN input AS i ON i.id = a.id
                     ORDER BY i.ord
                     RETURNING message_id, position
                 )
                 SELECT a.id, a.sequence_id, l.position
                 FROM appended AS a JOIN logged AS l ON l.message_id = a.id"
            ),
            &[
                &columns.ids,
                &columns.conversations,
                &columns.kinds,
                &columns.contents,
                &columns.senders,
                &columns.display_names,
                &columns.metadata,
                &columns.audiences,
                &columns.logged,
                &now_us,
                &event_kind_name(&EventKind::MessageReceived),
                &columns.newest,
            ],
        )?;
        // By message id: the sequence id and the event's position.
        let mut stored = std::collections::HashMap::with_capacity(rows.len());
        for row in &rows {
            let id: i64 = get(row, 0)?;
            stored.insert(id, (get::<i64>(row, 1)?, get::<i64>(row, 2)?));
        }
        let mut answers = Vec::with_capacity(made.len());
        for (mut message, change) in made {
            let Some(&(sequence_id, position)) = stored.get(&message.id.0) else {
                answers.push(Err(StoreError::NotFound));
                continue;
            };
            message.sequence_id = sequence_id;
            // In order: a conversation's later messages overwrite its earlier ones.
            self.sequence_ids
                .set(conv_key(message.conversation), sequence_id);
            self.message_stored(&message, change, position, now_us)?;
            answers.push(Ok(message));
        }
        Ok(answers)
    }

    /// A new message as it will be stored (its sequence id still 0: the statement that inserts
    /// it gives it), and the change its event row keeps.
    fn new_message(
        &mut self,
        new: &NewMessage,
        now: OffsetDateTime,
        now_us: i64,
    ) -> StoreResult<(Message, MessageChangeText)> {
        let id = self.next_id(now_us);
        let message = new.stored(id, 0, now);
        let change = MessageChangeText::of(&message)?;
        Ok((message, change))
    }

    /// What follows the insert of a new message and of its event row (at `position`): its
    /// audience rows, and the event logged with the published data.
    fn message_stored(
        &self,
        message: &Message,
        change: MessageChangeText,
        position: i64,
        now_us: i64,
    ) -> StoreResult<()> {
        self.add_audience(message)?;
        let data = change.data(message)?;
        let hints = MessageHints::new(message, change.into_logged());
        self.event_logged(
            position,
            EventKind::MessageReceived,
            Some(message.conversation),
            Some(message.id.0),
            message.sender.as_ref(),
            Some(hints),
            data,
            now_us,
        )
    }

    /// Who besides the members may read `message`, row by row (subscribers' reads join them).
    fn add_audience(&self, message: &Message) -> StoreResult<()> {
        let readers: Vec<&str> = match &message.audience {
            Audience::Members => Vec::new(),
            Audience::AllSubscribers => vec![ALL_SUBSCRIBERS],
            Audience::Subscribers(list) => list.iter().map(IdentityId::as_str).collect(),
        };
        let key = conv_key(message.conversation);
        for reader in readers {
            self.db.execute(
                "INSERT INTO message_audience (conversation, identity, message_id)
                 VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                &[&key.as_slice(), &reader, &message.id.0],
            )?;
        }
        Ok(())
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
            .db
            .query_opt(
                "SELECT 1 FROM participants WHERE conversation = $1 AND identity = $2",
                &[&conv_key(conversation).as_slice(), &identity.as_str()],
            )?
            .is_some())
    }

    /// Adds the participants to the conversation, or updates those already in it (which keep
    /// their `added_on`), in one statement: the participants go as arrays through `unnest`.
    fn upsert_participants<'p>(
        &self,
        conversation: ConversationId,
        participants: impl IntoIterator<Item = &'p Participant>,
        now_us: i64,
    ) -> StoreResult<()> {
        let columns = ParticipantColumns::of(participants)?;
        if columns.identities.is_empty() {
            return Ok(());
        }
        self.db.execute(
            "INSERT INTO participants (conversation, identity, display_name,
                 share_history_time, metadata, role, added_on)
             SELECT $1, p.identity, p.display_name, p.share_history_time, p.metadata, p.role, $7
             FROM unnest($2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[])
                 AS p(identity, display_name, share_history_time, metadata, role)
             ON CONFLICT (conversation, identity) DO UPDATE SET
                 display_name = excluded.display_name,
                 share_history_time = excluded.share_history_time,
                 metadata = excluded.metadata,
                 role = excluded.role",
            &[
                &conv_key(conversation).as_slice(),
                &columns.identities,
                &columns.display_names,
                &columns.share_history_times,
                &columns.metadata,
                &columns.roles,
                &now_us,
            ],
        )?;
        Ok(())
    }

    /// A live message of the conversation, as stored.
    fn load_message(
        &self,
        conversation: ConversationId,
        id: MessageId,
    ) -> StoreResult<Option<Message>> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages
             WHERE id = $1 AND conversation = $2 AND deleted_on IS NULL"
        );
        self.db
            .query_opt(&sql, &[&id.0, &conv_key(conversation).as_slice()])?
            .as_ref()
            .map(rows::message_from_row)
            .transpose()
    }

    // -----------------------------------------------------------------------------------------
    // The writes, one per `Store` method.

    /// Creates one conversation (a subgroup's, say; `Store::create_conversation` goes through
    /// `groups.rs`, which takes waiting creations together).
    pub(crate) fn create_conversation(
        &mut self,
        creation: &Creation,
    ) -> StoreResult<CreatedConversation> {
        self.create_conversations(&[creation])?
            .pop()
            .unwrap_or(Err(StoreError::Unavailable("no creation answered".into())))
    }

    /// Creates conversations, in order, in ONE statement (one round trip): each one's row, its
    /// participants, its first message (the participants added) and its two event rows, the
    /// creation's first, all in the order given. A creation whose id or repeatability key is
    /// taken (by an earlier creation, or one before it in `creations`) inserts no conversation,
    /// and so nothing else, and returns no row: only then is the key looked up, and such a
    /// creation answers the conversation it repeats, or a conflict. The participants need no `ON
    /// CONFLICT`: each conversation is new and each identity named once in it.
    pub(crate) fn create_conversations(
        &mut self,
        creations: &[&Creation],
    ) -> StoreResult<Vec<StoreResult<CreatedConversation>>> {
        let (now, now_us) = self.now()?;
        let mut columns = CreationColumns::default();
        let mut firsts = Vec::with_capacity(creations.len());
        for (index, creation) in creations.iter().enumerate() {
            // Encode first, so that whatever can fail fails before the first write.
            let new = &creation.new;
            let days = retention_days(new.retention);
            let (event_identity, event_payload) = creation
                .event_row
                .columns(Some(&new.created_by), &creation.event_data);
            let first = NewMessage::system(
                new.id,
                MessageType::ParticipantAdded,
                creation.first_message.clone(),
            );
            let (message, change) = self.new_message(&first, now, now_us)?;
            columns.ids.push(conv_key(new.id).to_vec());
            columns.topics.push(&new.topic);
            columns.creators.push(new.created_by.as_str());
            columns.metadata.push(encode_metadata(&new.metadata)?);
            columns.retention_days.push(days_column(days));
            columns.expires_on.push(expires_on(now_us, days));
            columns
                .repeatability_keys
                .push(new.repeatability_key.as_deref());
            columns.kinds.push(new.kind.as_str());
            columns
                .welcome_messages
                .push(new.welcome_message.as_deref());
            columns.event_identities.push(event_identity);
            columns.event_payloads.push(event_payload);
            columns.message_ids.push(message.id.0);
            columns.contents.push(encode_content(&first.content)?);
            columns.logged.push(change.logged().to_owned());
            let participants = ParticipantColumns::of(&creation.participants)?;
            let index = i64::try_from(index + 1).unwrap_or(i64::MAX);
            columns
                .of_creation
                .extend(std::iter::repeat_n(index, participants.identities.len()));
            columns.participants.extend(participants);
            firsts.push((message, change));
        }
        let rows = self.db.query(
            concat!(
                "WITH input AS (
                     SELECT * FROM unnest($1::bytea[], $2::text[], $3::text[], $4::text[],
                             $5::bigint[], $6::bigint[], $7::text[], $8::text[], $9::text[],
                             $10::text[], $11::text[], $12::bigint[], $13::text[], $14::text[])
                         WITH ORDINALITY AS i(id, topic, created_by, metadata, retention_days,
                             expires_on, repeatability_key, kind, welcome_message,
                             event_identity, event_payload, message_id, content, logged, ord)
                 ), created AS (
                     INSERT INTO conversations (id, topic, created_by, created_on, metadata,
                         retention_days, expires_on, repeatability_key, kind, welcome_message)
                     SELECT i.id, i.topic, i.created_by, $15, i.metadata, i.retention_days,
                         i.expires_on, i.repeatability_key, i.kind, i.welcome_message
                     FROM input AS i ORDER BY i.ord
                     ON CONFLICT DO NOTHING
                     RETURNING id, repeatability_key
                 ), made AS (
                     -- The input rows inserted: of several with one id and key, the first.
                     SELECT DISTINCT ON (i.id) i.*
                     FROM input AS i JOIN created AS c
                         ON c.id = i.id
                         AND c.repeatability_key IS NOT DISTINCT FROM i.repeatability_key
                     ORDER BY i.id, i.ord
                 ), joined AS (
                     INSERT INTO participants (conversation, identity, display_name,
                         share_history_time, metadata, role, added_on)
                     SELECT m.id, p.identity, p.display_name, p.share_history_time, p.metadata,
                         p.role, $15
                     FROM unnest($16::bigint[], $17::text[], $18::text[], $19::bigint[],
                             $20::text[], $21::text[])
                         AS p(creation, identity, display_name, share_history_time, metadata,
                             role)
                     JOIN made AS m ON m.ord = p.creation
                 ), first_message AS (
                     INSERT INTO messages (id, conversation, sequence_id, kind, content, sender,
                         sender_display_name, metadata, version, created_on, changed_on,
                         audience)
                     SELECT c.message_id, c.id, COALESCE(",
                newest_message!("sequence_id"),
                ", 0) + 1, $22, c.content, NULL, NULL, NULL, c.message_id, $15, $15, NULL
                     FROM made AS c
                     RETURNING id, sequence_id
                 ), logged AS (
                     INSERT INTO events (conversation, kind, message_id, identity, payload, at)
                     SELECT m.id, e.kind, e.message_id, e.identity, e.payload, $15
                     FROM made AS m CROSS JOIN LATERAL (VALUES
                         (1, $23::text, NULL::bigint, m.event_identity, m.event_payload),
                         (2, $24::text, m.message_id, NULL::text, m.logged)
                     ) AS e(sub, kind, message_id, identity, payload)
                     ORDER BY m.ord, e.sub
                     RETURNING conversation, message_id, position
                 )
                 SELECT m.ord, l.position, f.sequence_id
                 FROM logged AS l JOIN made AS m ON m.id = l.conversation
                     LEFT JOIN first_message AS f ON f.id = l.message_id"
            ),
            &[
                &columns.ids,
                &columns.topics,
                &columns.creators,
                &columns.metadata,
                &columns.retention_days,
                &columns.expires_on,
                &columns.repeatability_keys,
                &columns.kinds,
                &columns.welcome_messages,
                &columns.event_identities,
                &columns.event_payloads,
                &columns.message_ids,
                &columns.contents,
                &columns.logged,
                &now_us,
                &columns.of_creation,
                &columns.participants.identities,
                &columns.participants.display_names,
                &columns.participants.share_history_times,
                &columns.participants.metadata,
                &columns.participants.roles,
                &MessageType::ParticipantAdded.as_str(),
                &event_kind_name(&EventKind::ConversationCreated),
                &event_kind_name(&EventKind::MessageReceived),
            ],
        )?;
        // By creation (its place in `creations`): its two event rows' positions, the message's
        // with its sequence id.
        let mut logged = vec![CreationLogged::default(); creations.len()];
        for row in &rows {
            let place: i64 = get(row, 0)?;
            let position: i64 = get(row, 1)?;
            let entry = usize::try_from(place - 1)
                .ok()
                .and_then(|i| logged.get_mut(i))
                .ok_or_else(|| StoreError::Unavailable(format!("creation {place} of none")))?;
            match get::<Option<i64>>(row, 2)? {
                None => entry.created_at = Some(position),
                Some(sequence_id) => entry.message_at = Some((position, sequence_id)),
            }
        }
        let mut answers = Vec::with_capacity(creations.len());
        for ((creation, (mut message, change)), events) in creations.iter().zip(firsts).zip(logged)
        {
            let new = &creation.new;
            let CreationLogged {
                created_at: Some(created_at),
                message_at: Some((message_at, sequence_id)),
            } = events
            else {
                answers.push(self.creation_refused(creation));
                continue;
            };
            self.event_logged(
                created_at,
                EventKind::ConversationCreated,
                Some(new.id),
                None,
                Some(&new.created_by),
                // Hints are for message events only.
                None,
                creation.event_data.clone(),
                now_us,
            )?;
            message.sequence_id = sequence_id;
            // The thread's first append then need not read its newest message.
            self.sequence_ids.set(conv_key(new.id), sequence_id);
            self.message_stored(&message, change, message_at, now_us)?;
            answers.push(Ok(CreatedConversation {
                conversation: new.created(now),
                created: true,
            }));
        }
        Ok(answers)
    }

    /// The answer to a creation whose conversation was not inserted: the conversation an
    /// earlier creation with its repeatability key made, or a conflict over its id.
    fn creation_refused(&self, creation: &Creation) -> StoreResult<CreatedConversation> {
        let new = &creation.new;
        if let Some(key) = &new.repeatability_key {
            let earlier = self.db.query_opt(
                "SELECT id FROM conversations WHERE repeatability_key = $1",
                &[key],
            )?;
            if let Some(earlier) = earlier {
                let id = conversation_at(&earlier, 0)?;
                let conversation =
                    at_once(reads::get_conversation(&self.db, id))?.ok_or(StoreError::NotFound)?;
                return Ok(CreatedConversation {
                    conversation,
                    created: false,
                });
            }
        }
        Err(StoreError::Conflict(format!(
            "conversation {} already exists",
            new.id.to_acs()
        )))
    }

    pub(crate) fn update_conversation(
        &mut self,
        id: ConversationId,
        update: &ConversationUpdate,
        by: &IdentityId,
    ) -> StoreResult<()> {
        let key = conv_key(id);
        let row = self
            .db
            .query_opt(
                "SELECT topic, created_on FROM conversations WHERE id = $1 AND deleted_on IS NULL",
                &[&key.as_slice()],
            )?
            .ok_or(StoreError::NotFound)?;
        let topic: String = get(&row, 0)?;
        let created_on: i64 = get(&row, 1)?;
        let (now, now_us) = self.now()?;
        let mut changed = Vec::new();
        let new_topic = update.topic.as_ref().filter(|t| **t != topic);
        let metadata = update.metadata.as_ref().map(encode_metadata).transpose()?;
        if let Some(topic) = new_topic {
            self.db.execute(
                "UPDATE conversations SET topic = $1 WHERE id = $2",
                &[topic, &key.as_slice()],
            )?;
            changed.push("topic");
        }
        if let Some(metadata) = metadata {
            self.db.execute(
                "UPDATE conversations SET metadata = $1 WHERE id = $2",
                &[&metadata, &key.as_slice()],
            )?;
            changed.push("metadata");
        }
        if let Some(retention) = update.retention {
            let days = retention_days(retention);
            self.db.execute(
                "UPDATE conversations SET retention_days = $1, expires_on = $2 WHERE id = $3",
                &[
                    &days_column(days),
                    &expires_on(created_on, days),
                    &key.as_slice(),
                ],
            )?;
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
        let updated = self.db.execute(
            "UPDATE conversations SET deleted_on = $1 WHERE id = $2 AND deleted_on IS NULL",
            &[&now_us, &conv_key(id).as_slice()],
        )?;
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
            .db
            .query(
                "SELECT id FROM conversations
                 WHERE deleted_on IS NULL AND expires_on IS NOT NULL AND expires_on <= $1",
                &[&now_us],
            )?
            .iter()
            .map(|row| conversation_at(row, 0))
            .collect::<StoreResult<Vec<_>>>()?;
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
        let key = conv_key(conversation);
        if !added.is_empty() {
            let row = self.db.query_one(
                "SELECT COUNT(*) FROM participants WHERE conversation = $1",
                &[&key.as_slice()],
            )?;
            let count: i64 = get(&row, 0)?;
            let count = usize::try_from(count).unwrap_or(usize::MAX);
            if count.saturating_add(added.len()) > max_participants {
                return Err(StoreError::ParticipantLimit(max_participants));
            }
        }
        let (now, now_us) = self.now()?;
        self.upsert_participants(conversation, &participants, now_us)?;
        // A subscriber made a member is a subscriber no more: an identity is one or the other.
        for participant in &added {
            self.db.execute(
                "DELETE FROM subscribers WHERE conversation = $1 AND identity = $2",
                &[&key.as_slice(), &participant.identity.as_str()],
            )?;
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
        let row = self
            .db
            .query_opt(
                "DELETE FROM participants WHERE conversation = $1 AND identity = $2
                 RETURNING display_name, share_history_time",
                &[&conv_key(conversation).as_slice(), &identity.as_str()],
            )?
            .ok_or(StoreError::NotFound)?;
        let display_name: Option<String> = get(&row, 0)?;
        let share_history_time: Option<i64> = get(&row, 1)?;
        self.event(
            EventKind::ParticipantRemoved,
            Some(conversation),
            None,
            Some(identity),
            event_payloads::participant_removed(
                conversation,
                identity,
                display_name.as_deref(),
                by,
            ),
            now_us,
        )?;
        let content = MessageContent {
            participants: vec![ParticipantRef {
                identity: identity.clone(),
                display_name,
                share_history_time: share_history_time.and_then(from_micros),
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
        let content = encode_content(&message.content)?;
        let metadata = encode_metadata(&message.metadata)?;
        message.version = self.next_id(now_us);
        message.edited_on = Some(now);
        self.db.execute(
            "UPDATE messages SET content = $1, metadata = $2, version = $3, edited_on = $4,
                 changed_on = $4
             WHERE conversation = $5 AND id = $6",
            &[
                &content,
                &metadata,
                &message.version,
                &now_us,
                &conv_key(conversation).as_slice(),
                &id.0,
            ],
        )?;
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
        let content = encode_content(&message.content)?;
        // A delete is a change too: clients that cache by version must see it.
        message.version = self.next_id(now_us);
        message.deleted_on = Some(now);
        self.db.execute(
            "UPDATE messages SET content = $1, version = $2, deleted_on = $3, changed_on = $3
             WHERE conversation = $4 AND id = $5",
            &[
                &content,
                &message.version,
                &now_us,
                &conv_key(conversation).as_slice(),
                &id.0,
            ],
        )?;
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
            .db
            .query_opt(
                "SELECT 1 FROM messages WHERE id = $1 AND conversation = $2",
                &[&message.0, &key.as_slice()],
            )?
            .is_some();
        if !exists {
            return Err(StoreError::NotFound);
        }
        let (_, now_us) = self.now()?;
        // Keeps the newest receipt per reader: an older message id changes nothing.
        let changed = self.db.execute(
            "INSERT INTO read_receipts (conversation, reader, message_id, read_on)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (conversation, reader) DO UPDATE SET
                 message_id = excluded.message_id, read_on = excluded.read_on
             WHERE excluded.message_id > read_receipts.message_id",
            &[&key.as_slice(), &reader.as_str(), &message.0, &now_us],
        )?;
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
        let changed = self.db.execute(
            "UPDATE participants SET role = $3
             WHERE conversation = $1 AND identity = $2 AND role <> $3",
            &[
                &conv_key(conversation).as_slice(),
                &identity.as_str(),
                &role.as_str(),
            ],
        )?;
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
}
