//! Webhook subscriptions and the delivery outbox.
//!
//! The writer keeps the active subscriptions in memory, by object ([`HookCache`]). Several
//! nodes may share the database, so a node's copy is tied to `meta.webhooks_version`: every
//! subscription write here (and a last failed attempt, which disables its webhook) bumps it
//! through [`Writer::webhooks_changed`], and each writer reloads its copy at the start of its
//! next batch when the version moved (`writer.rs`). Within the batch that made the change the
//! writer reloads its copy at once, so that the events logged later in that batch see it.
//!
//! Where an event row is inserted (`Writer::log_event`), the outbox
//! (`confab_store_common::outbox`, which matches the subscriptions and builds the envelopes)
//! adds one delivery row per matching subscription in the same transaction — with no
//! subscription at all that costs one `is_empty` check. What it reads and writes here is the
//! writer's [`OutboxStore`] implementation, at the end of this file.
//!
//! Every node runs a delivery worker; [`Writer::claim_due_deliveries`] is how they share the
//! due deliveries without sending one twice.

use confab_core::ids::{ConversationId, IdentityId, MessageId};
use confab_core::ports::webhooks::{
    DeliveryAttempt, DeliveryStatus, EventSchema, Webhook, WebhookDelivery, WebhookObject,
};
use confab_core::ports::{StoreError, StoreResult};
use confab_store_common::event_grid::Thread;
use confab_store_common::outbox::{hook_cache, Delivery, HookCache, OutboxStore};
use confab_store_common::stored::{self, conv_key, from_micros, micros};
use postgres::Row;
use time::OffsetDateTime;

use crate::db::{get, opt_conversation_at, time_at, Conn, Queries};
use crate::writer::Writer;

/// How long a claimed delivery stays away from the other workers (see
/// [`Writer::claim_due_deliveries`]), in µs: [`crate::DELIVERY_CLAIM_LEASE`].
const CLAIM_LEASE_US: i64 = crate::DELIVERY_CLAIM_LEASE.as_micros() as i64;

const WEBHOOK_COLUMNS: &str = "id, object_type, object_id, event_types, callback_url, \
     callback_token, callback_context, secret, owner, validity, active, created_on, \
     disabled_reason, schema, name, threads";

const DELIVERY_COLUMNS: &str = "id, webhook, event_id, event_type, order_key, payload, status, \
     attempts, round_start, next_attempt_on, last_attempt_on, last_status, last_error, \
     created_on, delivered_on";

fn bad(what: &str, value: &str) -> StoreError {
    StoreError::Unavailable(format!("stored webhook {what} {value:?}"))
}

fn webhook_from_row(row: &Row) -> StoreResult<Webhook> {
    let object: &str = get(row, 1)?;
    let types: &str = get(row, 3)?;
    let owner: &str = get(row, 8)?;
    let schema: &str = get(row, 13)?;
    let threads: &str = get(row, 15)?;
    Ok(Webhook {
        id: get(row, 0)?,
        object: WebhookObject::parse(object).ok_or_else(|| bad("object_type", object))?,
        object_id: get(row, 2)?,
        event_types: stored::parse_event_types(types).ok_or_else(|| bad("event_types", types))?,
        callback_url: get(row, 4)?,
        callback_token: get(row, 5)?,
        callback_context: get(row, 6)?,
        secret: get(row, 7)?,
        owner: if owner.is_empty() {
            None
        } else {
            Some(IdentityId::parse(owner).ok_or_else(|| bad("owner", owner))?)
        },
        validity: time_at(row, 9)?,
        active: get(row, 10)?,
        created_on: time_at(row, 11)?,
        disabled_reason: get(row, 12)?,
        schema: EventSchema::parse(schema).ok_or_else(|| bad("schema", schema))?,
        name: get(row, 14)?,
        threads: stored::parse_threads(threads).ok_or_else(|| bad("threads", threads))?,
    })
}

fn delivery_from_row(row: &Row) -> StoreResult<WebhookDelivery> {
    let status: &str = get(row, 6)?;
    let attempts: i64 = get(row, 7)?;
    let round_start: i64 = get(row, 8)?;
    let last_status: Option<i64> = get(row, 11)?;
    Ok(WebhookDelivery {
        id: get(row, 0)?,
        webhook: get(row, 1)?,
        event_id: get(row, 2)?,
        event_type: get(row, 3)?,
        order_key: get(row, 4)?,
        payload: get(row, 5)?,
        status: DeliveryStatus::parse(status)
            .ok_or_else(|| StoreError::Unavailable(format!("stored delivery status {status:?}")))?,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        round_start: u32::try_from(round_start).unwrap_or(u32::MAX),
        next_attempt_on: time_at(row, 9)?,
        last_attempt_on: get::<Option<i64>>(row, 10)?.and_then(from_micros),
        last_status: last_status.and_then(|s| u16::try_from(s).ok()),
        last_error: get(row, 12)?,
        created_on: time_at(row, 13)?,
        delivered_on: get::<Option<i64>>(row, 14)?.and_then(from_micros),
    })
}

fn webhooks_from(rows: Vec<Row>) -> StoreResult<Vec<Webhook>> {
    rows.iter().map(webhook_from_row).collect()
}

fn deliveries_from(rows: Vec<Row>) -> StoreResult<Vec<WebhookDelivery>> {
    rows.iter().map(delivery_from_row).collect()
}

fn limit_of(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Every active subscription, by object.
pub(crate) fn load_cache(db: &Conn) -> StoreResult<HookCache> {
    let sql = format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE active");
    Ok(hook_cache(webhooks_from(db.query(&sql, &[])?)?))
}

pub(crate) async fn get_webhook(db: &impl Queries, id: &str) -> StoreResult<Option<Webhook>> {
    let sql = format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = $1");
    db.query_opt(&sql, &[&id])
        .await?
        .as_ref()
        .map(webhook_from_row)
        .transpose()
}

pub(crate) async fn list_webhooks(
    db: &impl Queries,
    object: WebhookObject,
    object_id: &str,
) -> StoreResult<Vec<Webhook>> {
    let sql = format!(
        "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE object_type = $1 AND object_id = $2
         ORDER BY created_on, id"
    );
    webhooks_from(db.query(&sql, &[&object.as_str(), &object_id]).await?)
}

pub(crate) async fn next_delivery_due(db: &impl Queries) -> StoreResult<Option<OffsetDateTime>> {
    let row = db
        .query_one(
            "SELECT MIN(d.next_attempt_on) FROM webhook_deliveries d
         JOIN webhooks w ON w.id = d.webhook
         WHERE d.status = 'pending' AND w.active
           AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e
                           WHERE e.webhook = d.webhook AND e.order_key = d.order_key
                             AND e.status = 'pending' AND e.id < d.id)",
            &[],
        )
        .await?;
    Ok(get::<Option<i64>>(&row, 0)?.and_then(from_micros))
}

pub(crate) async fn list_deliveries(
    db: &impl Queries,
    webhook: &str,
    before: Option<i64>,
    limit: usize,
) -> StoreResult<Vec<WebhookDelivery>> {
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE webhook = $1 AND id < $2
         ORDER BY id DESC LIMIT $3"
    );
    deliveries_from(
        db.query(
            &sql,
            &[&webhook, &before.unwrap_or(i64::MAX), &limit_of(limit)],
        )
        .await?,
    )
}

pub(crate) async fn action_conversation(
    db: &impl Queries,
    action: MessageId,
) -> StoreResult<Option<ConversationId>> {
    match db
        .query_opt(
            "SELECT a.conversation FROM actions a
         JOIN messages m ON m.conversation = a.conversation AND m.id = a.message_id
         WHERE a.message_id = $1 AND m.deleted_on IS NULL",
            &[&action.0],
        )
        .await?
    {
        Some(row) => opt_conversation_at(&row, 0),
        None => Ok(None),
    }
}

/// The due deliveries first in line, claimed: see [`Writer::claim_due_deliveries`]. The
/// selection is SQLite's (pending, due at `$1`, of an active webhook, the oldest pending one of
/// its webhook and order key; most overdue first); the rows answered are as they were before
/// the claim moved their next attempt to `$3`.
const CLAIM_DUE: &str = "WITH due AS (
         SELECT d.id, d.webhook, d.event_id, d.event_type, d.order_key, d.payload, d.status,
             d.attempts, d.round_start, d.next_attempt_on, d.last_attempt_on, d.last_status,
             d.last_error, d.created_on, d.delivered_on
         FROM webhook_deliveries d
         WHERE d.status = 'pending' AND d.next_attempt_on <= $1
           AND EXISTS (SELECT 1 FROM webhooks w WHERE w.id = d.webhook AND w.active)
           AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e
                           WHERE e.webhook = d.webhook AND e.order_key = d.order_key
                             AND e.status = 'pending' AND e.id < d.id)
         ORDER BY d.next_attempt_on, d.id
         LIMIT $2
         FOR UPDATE OF d SKIP LOCKED
     ), claimed AS (
         UPDATE webhook_deliveries c SET next_attempt_on = $3 FROM due WHERE c.id = due.id
     )
     SELECT id, webhook, event_id, event_type, order_key, payload, status, attempts,
         round_start, next_attempt_on, last_attempt_on, last_status, last_error, created_on,
         delivered_on
     FROM due ORDER BY next_attempt_on, id";

impl Writer {
    /// Reloads this writer's copy of the subscriptions, after a write to them in this batch.
    /// (`webhooks_changed` has the other nodes — and this writer, after a rollback — reload
    /// theirs.) Called after the job's last statement that can fail, so that a job that fails
    /// leaves the copy as it was.
    fn reload_webhooks(&mut self) -> StoreResult<()> {
        self.webhooks = load_cache(&self.db)?;
        Ok(())
    }

    pub(crate) fn create_webhook(&mut self, webhook: &Webhook) -> StoreResult<()> {
        let types = stored::event_types_text(&webhook.event_types)?;
        let inserted = self.db.execute(
            "INSERT INTO webhooks (id, object_type, object_id, event_types, callback_url,
                 callback_token, callback_context, secret, owner, validity, active,
                 created_on, disabled_reason, schema, name, threads)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
             ON CONFLICT (id) DO NOTHING",
            &[
                &webhook.id,
                &webhook.object.as_str(),
                &webhook.object_id,
                &types,
                &webhook.callback_url,
                &webhook.callback_token,
                &webhook.callback_context,
                &webhook.secret,
                &webhook.owner.as_ref().map_or("", IdentityId::as_str),
                &micros(webhook.validity),
                &webhook.active,
                &micros(webhook.created_on),
                &webhook.disabled_reason,
                &webhook.schema.as_str(),
                &webhook.name,
                &stored::threads_text(&webhook.threads),
            ],
        )?;
        if inserted == 0 {
            // As the SQLite store answers its constraint violation.
            return Err(StoreError::Unavailable(format!(
                "a webhook {:?} exists",
                webhook.id
            )));
        }
        self.webhooks_changed()?;
        self.reload_webhooks()
    }

    pub(crate) fn update_webhook(&mut self, webhook: &Webhook, resume: bool) -> StoreResult<()> {
        let types = stored::event_types_text(&webhook.event_types)?;
        let (_, now_us) = self.now()?;
        let changed = self.db.execute(
            "UPDATE webhooks SET object_type = $2, object_id = $3, event_types = $4,
                 callback_url = $5, callback_token = $6, callback_context = $7,
                 validity = $8, active = $9, disabled_reason = $10, name = $11,
                 threads = $12
             WHERE id = $1",
            &[
                &webhook.id,
                &webhook.object.as_str(),
                &webhook.object_id,
                &types,
                &webhook.callback_url,
                &webhook.callback_token,
                &webhook.callback_context,
                &micros(webhook.validity),
                &webhook.active,
                &webhook.disabled_reason,
                &webhook.name,
                &stored::threads_text(&webhook.threads),
            ],
        )?;
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        if resume {
            self.db.execute(
                "UPDATE webhook_deliveries
                 SET status = 'pending', round_start = attempts, next_attempt_on = $2
                 WHERE webhook = $1 AND status IN ('pending', 'failed')",
                &[&webhook.id, &now_us],
            )?;
            self.deliveries_recorded.set(true);
        }
        self.webhooks_changed()?;
        self.reload_webhooks()
    }

    pub(crate) fn delete_webhook(&mut self, id: &str) -> StoreResult<()> {
        if self
            .db
            .execute("DELETE FROM webhooks WHERE id = $1", &[&id])?
            == 0
        {
            return Err(StoreError::NotFound);
        }
        self.db
            .execute("DELETE FROM webhook_deliveries WHERE webhook = $1", &[&id])?;
        self.webhooks_changed()?;
        self.reload_webhooks()
    }

    /// The pending deliveries due at `now_us` that are first in line (the oldest pending one
    /// of their webhook and order key), of active webhooks, most overdue first, at most
    /// `limit` — and claimed for the worker that asked.
    ///
    /// Every node runs a delivery worker over the same table. So that two of them do not
    /// send one delivery at once, this runs on the writer and moves the next attempt of the
    /// rows it answers a lease ([`CLAIM_LEASE_US`]) past `now_us`: until the worker records
    /// its attempt (which sets the next attempt anew, or ends the delivery), no worker finds
    /// the row due, this node's included. The rows are taken `FOR UPDATE SKIP LOCKED`; as
    /// writers take turns under the advisory lock that never has to skip anything today,
    /// but a claim by some other transaction would be skipped rather than waited for.
    ///
    /// The order within a line is kept: the claimed row stays pending, so the rows behind it
    /// in its line are not first in line until its attempt is recorded. What the claim
    /// changes against the SQLite store, which answers the same rows without claiming them:
    /// - the rows answered show their next attempt as it was before the claim, but
    ///   `list_deliveries` and `next_delivery_due` see the lease until the attempt is
    ///   recorded;
    /// - a row answered but not attempted (the worker was stopping; it asks for no more rows
    ///   than it can start, as `claims_due_deliveries` tells it) waits for the lease to end,
    ///   where the SQLite store would answer it again at the next poll; so does the attempt of
    ///   a node that stopped or died mid-way.
    pub(crate) fn claim_due_deliveries(
        &mut self,
        now_us: i64,
        limit: usize,
    ) -> StoreResult<Vec<WebhookDelivery>> {
        let until = now_us.saturating_add(CLAIM_LEASE_US);
        deliveries_from(
            self.db
                .query(CLAIM_DUE, &[&now_us, &limit_of(limit), &until])?,
        )
    }

    pub(crate) fn record_delivery_attempt(&mut self, a: &DeliveryAttempt) -> StoreResult<()> {
        let at = micros(a.at);
        let status = if a.delivered {
            DeliveryStatus::Delivered
        } else if a.retry_at.is_some() {
            DeliveryStatus::Pending
        } else {
            DeliveryStatus::Failed
        };
        let next = a.retry_at.map(micros).unwrap_or(at);
        let changed = self.db.execute(
            "UPDATE webhook_deliveries
             SET attempts = attempts + 1, status = $2, next_attempt_on = $3,
                 last_attempt_on = $4, last_status = $5, last_error = $6,
                 delivered_on = CASE WHEN $7 THEN $4 ELSE delivered_on END
             WHERE id = $1 AND webhook = $8",
            &[
                &a.delivery,
                &status.as_str(),
                &next,
                &at,
                &a.status.map(i64::from),
                &a.error,
                &a.delivered,
                &a.webhook,
            ],
        )?;
        if changed == 0 {
            // Deleted meanwhile (with its webhook): nothing to record.
            return Ok(());
        }
        if status == DeliveryStatus::Failed {
            self.db.execute(
                "UPDATE webhooks SET active = FALSE,
                     disabled_reason = $2 || CASE WHEN schema = 'Kaizala'
                         THEN 're-enable with PUT /v1/webhook/{id}'
                         ELSE 're-enable with PATCH /admin/eventSubscriptions/{id} \
                               {\"enabled\": true}' END
                 WHERE id = $1",
                &[
                    &a.webhook,
                    &format!(
                        "deliveries kept failing ({}); ",
                        a.error.as_deref().unwrap_or("no answer")
                    ),
                ],
            )?;
            self.webhooks_changed()?;
            self.reload_webhooks()?;
        }
        Ok(())
    }

    pub(crate) fn purge_deliveries(
        &mut self,
        older_than_us: i64,
        max_rows: usize,
    ) -> StoreResult<usize> {
        let purged = self.db.execute(
            "DELETE FROM webhook_deliveries WHERE id IN (
                 SELECT id FROM webhook_deliveries
                 WHERE status = 'delivered' AND created_on < $1 LIMIT $2)",
            &[&older_than_us, &limit_of(max_rows)],
        )?;
        Ok(usize::try_from(purged).unwrap_or(usize::MAX))
    }

    pub(crate) fn redeliver(
        &mut self,
        webhook: &str,
        delivery: i64,
    ) -> StoreResult<WebhookDelivery> {
        let (_, now_us) = self.now()?;
        let sql = format!(
            "UPDATE webhook_deliveries
             SET status = 'pending', round_start = attempts, next_attempt_on = $3
             WHERE id = $1 AND webhook = $2
             RETURNING {DELIVERY_COLUMNS}"
        );
        let row = self
            .db
            .query_opt(&sql, &[&delivery, &webhook, &now_us])?
            .ok_or(StoreError::NotFound)?;
        self.deliveries_recorded.set(true);
        delivery_from_row(&row)
    }
}

/// What the outbox (`confab_store_common::outbox`) reads and writes: in the writer's
/// transaction, the one that logged the event.
impl OutboxStore for Writer {
    fn thread_facts(&self, conversation: ConversationId) -> StoreResult<Option<Thread>> {
        match self.db.query_opt(
            "SELECT created_on, topic, metadata FROM conversations WHERE id = $1",
            &[&conv_key(conversation).as_slice()],
        )? {
            Some(row) => Ok(Some(Thread::from_stored(
                get(&row, 0)?,
                get(&row, 1)?,
                get(&row, 2)?,
            ))),
            None => Ok(None),
        }
    }

    fn participant_ids(&self, conversation: ConversationId) -> StoreResult<Vec<IdentityId>> {
        let rows = self.db.query(
            "SELECT identity FROM participants WHERE conversation = $1",
            &[&conv_key(conversation).as_slice()],
        )?;
        let mut ids = Vec::with_capacity(rows.len());
        for row in &rows {
            if let Some(id) = IdentityId::parse(get::<&str>(row, 0)?) {
                ids.push(id);
            }
        }
        Ok(ids)
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
        match self.db.query_opt(
            "SELECT display_name FROM participants WHERE conversation = $1 AND identity = $2",
            &[&conv_key(conversation).as_slice(), &identity.as_str()],
        )? {
            Some(row) => get(&row, 0),
            None => Ok(None),
        }
    }

    fn action_row(&self, action: i64) -> StoreResult<Option<(String, Option<String>)>> {
        match self.db.query_opt(
            "SELECT body, package FROM actions WHERE message_id = $1",
            &[&action],
        )? {
            Some(row) => Ok(Some((get(&row, 0)?, get(&row, 1)?))),
            None => Ok(None),
        }
    }

    fn action_response_body(&self, action: i64, response_id: &str) -> StoreResult<Option<String>> {
        match self.db.query_opt(
            "SELECT body FROM action_responses WHERE id = $1 AND action_id = $2",
            &[&response_id, &action],
        )? {
            Some(row) => get(&row, 0).map(Some),
            None => Ok(None),
        }
    }

    fn insert_delivery(&self, delivery: &Delivery<'_>) -> StoreResult<()> {
        self.db.execute(
            "INSERT INTO webhook_deliveries (webhook, event_position, event_id, event_type,
                 order_key, payload, status, next_attempt_on, created_on)
             VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $7)",
            &[
                &delivery.webhook,
                &delivery.event_position,
                &delivery.event_id,
                &delivery.event_type,
                &delivery.order_key,
                &delivery.envelope.to_string(),
                &delivery.at,
            ],
        )?;
        self.deliveries_recorded.set(true);
        Ok(())
    }
}
