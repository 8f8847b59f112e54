//! Webhook subscriptions and the delivery outbox.
//!
//! The writer keeps the active subscriptions in memory, by object ([`HookCache`]): loaded when
//! it starts and reloaded by every subscription write (which runs on the writer too) and after
//! a rollback that undid one. Where an event row is inserted (`Writer::log_event`), the outbox
//! (`confab_store_common::outbox`, which matches the subscriptions and builds the envelopes)
//! adds one delivery row per matching subscription in the same transaction — with no
//! subscription at all that costs one `is_empty` check. What it reads and writes here is the
//! writer's [`OutboxStore`] implementation, at the end of this file.

use confab_core::ids::{ConversationId, IdentityId, MessageId};
use confab_core::ports::webhooks::{
    DeliveryAttempt, DeliveryStatus, EventSchema, Webhook, WebhookDelivery, WebhookObject,
};
use confab_core::ports::{StoreError, StoreResult};
use confab_store_common::event_grid::Thread;
use confab_store_common::outbox::{hook_cache, Delivery, HookCache, OutboxStore};
use confab_store_common::stored;
use rusqlite::{params, Connection, OptionalExtension, Row};
use time::OffsetDateTime;

use crate::codec::{self, conv_key, DbResult};
use crate::writer::Writer;

const WEBHOOK_COLUMNS: &str = "id, object_type, object_id, event_types, callback_url, \
     callback_token, callback_context, secret, owner, validity, active, created_on, \
     disabled_reason, schema, name, threads";

const DELIVERY_COLUMNS: &str = "id, webhook, event_id, event_type, order_key, payload, status, \
     attempts, round_start, next_attempt_on, last_attempt_on, last_status, last_error, \
     created_on, delivered_on";

fn bad(what: &str) -> rusqlite::Error {
    rusqlite::Error::InvalidColumnType(0, what.to_owned(), rusqlite::types::Type::Text)
}

fn time_of(us: i64) -> rusqlite::Result<OffsetDateTime> {
    codec::from_micros(us).ok_or_else(|| bad("time"))
}

fn webhook_from_row(row: &Row<'_>) -> rusqlite::Result<Webhook> {
    let object: String = row.get(1)?;
    let types: String = row.get(3)?;
    let owner: String = row.get(8)?;
    let schema: String = row.get(13)?;
    let threads: String = row.get(15)?;
    Ok(Webhook {
        id: row.get(0)?,
        object: WebhookObject::parse(&object).ok_or_else(|| bad("object_type"))?,
        object_id: row.get(2)?,
        event_types: stored::parse_event_types(&types).ok_or_else(|| bad("event_types"))?,
        callback_url: row.get(4)?,
        callback_token: row.get(5)?,
        callback_context: row.get(6)?,
        secret: row.get(7)?,
        owner: if owner.is_empty() {
            None
        } else {
            Some(IdentityId::parse(&owner).ok_or_else(|| bad("owner"))?)
        },
        validity: time_of(row.get(9)?)?,
        active: row.get(10)?,
        created_on: time_of(row.get(11)?)?,
        disabled_reason: row.get(12)?,
        schema: EventSchema::parse(&schema).ok_or_else(|| bad("schema"))?,
        name: row.get(14)?,
        threads: stored::parse_threads(&threads).ok_or_else(|| bad("threads"))?,
    })
}

fn delivery_from_row(row: &Row<'_>) -> rusqlite::Result<WebhookDelivery> {
    let status: String = row.get(6)?;
    let attempts: i64 = row.get(7)?;
    let round_start: i64 = row.get(8)?;
    let last_status: Option<i64> = row.get(11)?;
    Ok(WebhookDelivery {
        id: row.get(0)?,
        webhook: row.get(1)?,
        event_id: row.get(2)?,
        event_type: row.get(3)?,
        order_key: row.get(4)?,
        payload: row.get(5)?,
        status: DeliveryStatus::parse(&status).ok_or_else(|| bad("status"))?,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        round_start: u32::try_from(round_start).unwrap_or(u32::MAX),
        next_attempt_on: time_of(row.get(9)?)?,
        last_attempt_on: row.get::<_, Option<i64>>(10)?.and_then(codec::from_micros),
        last_status: last_status.and_then(|s| u16::try_from(s).ok()),
        last_error: row.get(12)?,
        created_on: time_of(row.get(13)?)?,
        delivered_on: row.get::<_, Option<i64>>(14)?.and_then(codec::from_micros),
    })
}

/// Every active subscription, by object.
pub(crate) fn load_cache(conn: &Connection) -> StoreResult<HookCache> {
    let sql = format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE active = 1");
    let hooks = conn
        .prepare(&sql)
        .db()?
        .query_map([], webhook_from_row)
        .db()?
        .collect::<rusqlite::Result<Vec<_>>>()
        .db()?;
    Ok(hook_cache(hooks))
}

pub(crate) fn get_webhook(conn: &Connection, id: &str) -> StoreResult<Option<Webhook>> {
    let sql = format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = ?1");
    conn.prepare_cached(&sql)
        .db()?
        .query_row([id], webhook_from_row)
        .optional()
        .db()
}

pub(crate) fn list_webhooks(
    conn: &Connection,
    object: WebhookObject,
    object_id: &str,
) -> StoreResult<Vec<Webhook>> {
    let sql = format!(
        "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE object_type = ?1 AND object_id = ?2
         ORDER BY created_on, id"
    );
    conn.prepare_cached(&sql)
        .db()?
        .query_map(params![object.as_str(), object_id], webhook_from_row)
        .db()?
        .collect::<rusqlite::Result<Vec<_>>>()
        .db()
}

pub(crate) fn due_deliveries(
    conn: &Connection,
    now_us: i64,
    limit: usize,
) -> StoreResult<Vec<WebhookDelivery>> {
    let sql = format!(
        "SELECT {cols} FROM webhook_deliveries d
         WHERE d.status = 'pending' AND d.next_attempt_on <= ?1
           AND EXISTS (SELECT 1 FROM webhooks w WHERE w.id = d.webhook AND w.active = 1)
           AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e
                           WHERE e.webhook = d.webhook AND e.order_key = d.order_key
                             AND e.status = 'pending' AND e.id < d.id)
         ORDER BY d.next_attempt_on, d.id
         LIMIT ?2",
        cols = DELIVERY_COLUMNS
            .split(", ")
            .map(|c| format!("d.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    conn.prepare_cached(&sql)
        .db()?
        .query_map(
            params![now_us, i64::try_from(limit).unwrap_or(i64::MAX)],
            delivery_from_row,
        )
        .db()?
        .collect::<rusqlite::Result<Vec<_>>>()
        .db()
}

pub(crate) fn next_delivery_due(conn: &Connection) -> StoreResult<Option<OffsetDateTime>> {
    let at: Option<i64> = conn
        .prepare_cached(
            "SELECT MIN(d.next_attempt_on) FROM webhook_deliveries d
             JOIN webhooks w ON w.id = d.webhook
             WHERE d.status = 'pending' AND w.active = 1
               AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e
                               WHERE e.webhook = d.webhook AND e.order_key = d.order_key
                                 AND e.status = 'pending' AND e.id < d.id)",
        )
        .db()?
        .query_row([], |row| row.get(0))
        .db()?;
    Ok(at.and_then(codec::from_micros))
}

pub(crate) fn list_deliveries(
    conn: &Connection,
    webhook: &str,
    before: Option<i64>,
    limit: usize,
) -> StoreResult<Vec<WebhookDelivery>> {
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE webhook = ?1 AND id < ?2
         ORDER BY id DESC LIMIT ?3"
    );
    conn.prepare_cached(&sql)
        .db()?
        .query_map(
            params![
                webhook,
                before.unwrap_or(i64::MAX),
                i64::try_from(limit).unwrap_or(i64::MAX)
            ],
            delivery_from_row,
        )
        .db()?
        .collect::<rusqlite::Result<Vec<_>>>()
        .db()
}

pub(crate) fn action_conversation(
    conn: &Connection,
    action: MessageId,
) -> StoreResult<Option<ConversationId>> {
    let key: Option<Vec<u8>> = conn
        .prepare_cached(
            "SELECT a.conversation FROM actions a JOIN messages m ON m.conversation = a.conversation AND m.id = a.message_id
             WHERE a.message_id = ?1 AND m.deleted_on IS NULL",
        )
        .db()?
        .query_row([action.0], |row| row.get(0))
        .optional()
        .db()?;
    Ok(key.and_then(|k| {
        <[u8; 16]>::try_from(k.as_slice())
            .ok()
            .map(|b| ConversationId(u128::from_be_bytes(b)))
    }))
}

impl Writer {
    /// Reloads the subscription cache (after a subscription write, or a rollback of one).
    pub(crate) fn reload_webhooks(&mut self) -> StoreResult<()> {
        self.webhooks = load_cache(&self.conn)?;
        Ok(())
    }

    pub(crate) fn create_webhook(&mut self, webhook: &Webhook) -> StoreResult<()> {
        let types = stored::event_types_text(&webhook.event_types)?;
        self.webhooks_touched = true;
        self.conn
            .prepare_cached(
                "INSERT INTO webhooks (id, object_type, object_id, event_types, callback_url,
                     callback_token, callback_context, secret, owner, validity, active,
                     created_on, disabled_reason, schema, name, threads)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,
                         ?16)",
            )
            .db()?
            .execute(params![
                webhook.id,
                webhook.object.as_str(),
                webhook.object_id,
                types,
                webhook.callback_url,
                webhook.callback_token,
                webhook.callback_context,
                webhook.secret,
                webhook.owner.as_ref().map_or("", IdentityId::as_str),
                codec::micros(webhook.validity),
                webhook.active,
                codec::micros(webhook.created_on),
                webhook.disabled_reason,
                webhook.schema.as_str(),
                webhook.name,
                stored::threads_text(&webhook.threads),
            ])
            .db()?;
        self.reload_webhooks()
    }

    pub(crate) fn update_webhook(&mut self, webhook: &Webhook, resume: bool) -> StoreResult<()> {
        let types = stored::event_types_text(&webhook.event_types)?;
        if get_webhook(&self.conn, &webhook.id)?.is_none() {
            return Err(StoreError::NotFound);
        }
        let (_, now_us) = self.now()?;
        self.webhooks_touched = true;
        self.conn
            .prepare_cached(
                "UPDATE webhooks SET object_type = ?2, object_id = ?3, event_types = ?4,
                     callback_url = ?5, callback_token = ?6, callback_context = ?7,
                     validity = ?8, active = ?9, disabled_reason = ?10, name = ?11,
                     threads = ?12
                 WHERE id = ?1",
            )
            .db()?
            .execute(params![
                webhook.id,
                webhook.object.as_str(),
                webhook.object_id,
                types,
                webhook.callback_url,
                webhook.callback_token,
                webhook.callback_context,
                codec::micros(webhook.validity),
                webhook.active,
                webhook.disabled_reason,
                webhook.name,
                stored::threads_text(&webhook.threads),
            ])
            .db()?;
        if resume {
            self.conn
                .prepare_cached(
                    "UPDATE webhook_deliveries
                     SET status = 'pending', round_start = attempts, next_attempt_on = ?2
                     WHERE webhook = ?1 AND status IN ('pending', 'failed')",
                )
                .db()?
                .execute(params![webhook.id, now_us])
                .db()?;
            self.deliveries_recorded.set(true);
        }
        self.reload_webhooks()
    }

    pub(crate) fn delete_webhook(&mut self, id: &str) -> StoreResult<()> {
        if get_webhook(&self.conn, id)?.is_none() {
            return Err(StoreError::NotFound);
        }
        self.webhooks_touched = true;
        self.conn
            .prepare_cached("DELETE FROM webhook_deliveries WHERE webhook = ?1")
            .db()?
            .execute([id])
            .db()?;
        self.conn
            .prepare_cached("DELETE FROM webhooks WHERE id = ?1")
            .db()?
            .execute([id])
            .db()?;
        self.reload_webhooks()
    }

    pub(crate) fn record_delivery_attempt(&mut self, a: &DeliveryAttempt) -> StoreResult<()> {
        let at = codec::micros(a.at);
        let status = if a.delivered {
            DeliveryStatus::Delivered
        } else if a.retry_at.is_some() {
            DeliveryStatus::Pending
        } else {
            DeliveryStatus::Failed
        };
        let next = a.retry_at.map(codec::micros).unwrap_or(at);
        let changed = self
            .conn
            .prepare_cached(
                "UPDATE webhook_deliveries
                 SET attempts = attempts + 1, status = ?2, next_attempt_on = ?3,
                     last_attempt_on = ?4, last_status = ?5, last_error = ?6,
                     delivered_on = CASE WHEN ?7 THEN ?4 ELSE delivered_on END
                 WHERE id = ?1 AND webhook = ?8",
            )
            .db()?
            .execute(params![
                a.delivery,
                status.as_str(),
                next,
                at,
                a.status,
                a.error,
                a.delivered,
                a.webhook,
            ])
            .db()?;
        if changed == 0 {
            // Deleted meanwhile (with its webhook): nothing to record.
            return Ok(());
        }
        if status == DeliveryStatus::Failed {
            self.webhooks_touched = true;
            self.conn
                .prepare_cached(
                    "UPDATE webhooks SET active = 0,
                         disabled_reason = ?2 || CASE WHEN schema = 'Kaizala'
                             THEN 're-enable with PUT /v1/webhook/{id}'
                             ELSE 're-enable with PATCH /admin/eventSubscriptions/{id} \
                                   {\"enabled\": true}' END
                     WHERE id = ?1",
                )
                .db()?
                .execute(params![
                    a.webhook,
                    format!(
                        "deliveries kept failing ({}); ",
                        a.error.as_deref().unwrap_or("no answer")
                    )
                ])
                .db()?;
            self.reload_webhooks()?;
        }
        Ok(())
    }

    pub(crate) fn purge_deliveries(
        &mut self,
        older_than_us: i64,
        max_rows: usize,
    ) -> StoreResult<usize> {
        self.conn
            .prepare_cached(
                "DELETE FROM webhook_deliveries WHERE id IN (
                     SELECT id FROM webhook_deliveries
                     WHERE status = 'delivered' AND created_on < ?1 LIMIT ?2)",
            )
            .db()?
            .execute(params![
                older_than_us,
                i64::try_from(max_rows).unwrap_or(i64::MAX)
            ])
            .db()
    }

    pub(crate) fn redeliver(
        &mut self,
        webhook: &str,
        delivery: i64,
    ) -> StoreResult<WebhookDelivery> {
        let (_, now_us) = self.now()?;
        let changed = self
            .conn
            .prepare_cached(
                "UPDATE webhook_deliveries
                 SET status = 'pending', round_start = attempts, next_attempt_on = ?3
                 WHERE id = ?1 AND webhook = ?2",
            )
            .db()?
            .execute(params![delivery, webhook, now_us])
            .db()?;
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        self.deliveries_recorded.set(true);
        let sql = format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = ?1");
        self.conn
            .prepare_cached(&sql)
            .db()?
            .query_row([delivery], delivery_from_row)
            .db()
    }
}

/// What the outbox (`confab_store_common::outbox`) reads and writes: in the writer's
/// transaction, the one that logged the event.
impl OutboxStore for Writer {
    fn thread_facts(&self, conversation: ConversationId) -> StoreResult<Option<Thread>> {
        self.conn
            .prepare_cached("SELECT created_on, topic, metadata FROM conversations WHERE id = ?1")
            .db()?
            .query_row([conv_key(conversation)], |row| {
                Ok(Thread::from_stored(row.get(0)?, row.get(1)?, row.get(2)?))
            })
            .optional()
            .db()
    }

    fn participant_ids(&self, conversation: ConversationId) -> StoreResult<Vec<IdentityId>> {
        let ids = self
            .conn
            .prepare_cached("SELECT identity FROM participants WHERE conversation = ?1")
            .db()?
            .query_map([conv_key(conversation)], |row| row.get::<_, String>(0))
            .db()?
            .collect::<rusqlite::Result<Vec<String>>>()
            .db()?;
        Ok(ids.iter().filter_map(|id| IdentityId::parse(id)).collect())
    }

    fn is_participant(
        &self,
        conversation: ConversationId,
        identity: &IdentityId,
    ) -> StoreResult<bool> {
        Writer::is_participant(self, conversation, identity)
    }

    fn display_name(
        &self,
        conversation: ConversationId,
        identity: &IdentityId,
    ) -> StoreResult<Option<String>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT display_name FROM participants WHERE conversation = ?1 AND identity = ?2",
            )
            .db()?
            .query_row(params![conv_key(conversation), identity.as_str()], |row| {
                row.get::<_, Option<String>>(0)
            })
            .optional()
            .db()?
            .flatten())
    }

    fn action_row(&self, action: i64) -> StoreResult<Option<(String, Option<String>)>> {
        self.conn
            .prepare_cached("SELECT body, package FROM actions WHERE message_id = ?1")
            .db()?
            .query_row([action], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()
            .db()
    }

    fn action_response_body(&self, action: i64, response_id: &str) -> StoreResult<Option<String>> {
        self.conn
            .prepare_cached("SELECT body FROM action_responses WHERE id = ?1 AND action_id = ?2")
            .db()?
            .query_row(params![response_id, action], |row| row.get(0))
            .optional()
            .db()
    }

    fn insert_delivery(&self, delivery: &Delivery<'_>) -> StoreResult<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO webhook_deliveries (webhook, event_position, event_id, event_type,
                     order_key, payload, status, next_attempt_on, created_on)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7, ?7)",
            )
            .db()?
            .execute(params![
                delivery.webhook,
                delivery.event_position,
                delivery.event_id,
                delivery.event_type,
                delivery.order_key,
                delivery.envelope.to_string(),
                delivery.at
            ])
            .db()?;
        self.deliveries_recorded.set(true);
        Ok(())
    }
}
