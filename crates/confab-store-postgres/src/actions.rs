//! `ActionStore`: Kaizala actions (a message plus a body row) and their responses. Writes run on
//! the writer thread inside its batch transaction (checks first, then writes, then the event);
//! reads on the read pool.

use confab_core::actions::{
    Action, ActionBody, ActionKind, ActionResponse, ResponseBody, ACTION_ID_KEY,
};
use confab_core::ids::{ConversationId, IdentityId, MessageId};
use confab_core::model::{EventKind, Page};
use confab_core::ports::{ActionQuery, NewAction, NewActionResponse, StoreError, StoreResult};
use confab_store_common::cursors::{fetch_limit, into_page, message_cursor, parse_message_cursor};
use confab_store_common::event_payloads;
use confab_store_common::stored::{
    conv_key, decode_audience, encode_json, encode_metadata, micros, micros_ceil,
};
use postgres::types::ToSql;
use postgres::Row;

use crate::db::{at_once, conversation_at, get, identity_at, time_at, Queries};
use crate::rows::{opt_identity_at, opt_time_at};
use crate::writer::Writer;

/// A stored JSON column that does not decode.
fn bad_json(what: &str, err: serde_json::Error) -> StoreError {
    StoreError::Unavailable(format!("stored {what}: {err}"))
}

/// An action read, followed by the rest of the statement (its `WHERE`...): the columns
/// [`action_from_row`] reads, those of the message (id, conversation, sender, created_on,
/// audience), then the body and the counts (responses, responders, responders who completed).
macro_rules! action_select {
    ($($rest:tt)*) => {
        concat!(
            "SELECT m.id, m.conversation, m.sender, m.created_on, m.audience, a.body,
                 (SELECT COUNT(*) FROM action_responses r WHERE r.action_id = a.message_id),
                 (SELECT COUNT(DISTINCT r.responder) FROM action_responses r
                     WHERE r.action_id = a.message_id),
                 (SELECT COUNT(DISTINCT r.responder) FROM action_responses r
                     WHERE r.action_id = a.message_id AND r.completed = 1)
             FROM actions AS a
             JOIN messages AS m ON m.conversation = a.conversation AND m.id = a.message_id ",
            $($rest)*
        )
    };
}

/// The statement of a page of actions, with the kind's filter (`$6`) if there is one.
macro_rules! list_actions_sql {
    ($filter:literal) => {
        action_select!(concat!(
            "WHERE a.conversation = $1 AND a.message_id > $2 AND a.created_on >= $3
                 AND m.deleted_on IS NULL ",
            $filter,
            " AND ($5::text IS NULL OR m.audience = '*' OR EXISTS (
                     SELECT 1 FROM message_audience AS ma
                     WHERE ma.conversation = a.conversation AND ma.identity = $5
                         AND ma.message_id = a.message_id))
             ORDER BY a.message_id LIMIT $4"
        ))
    };
}

fn action_from_row(row: &Row) -> StoreResult<Action> {
    let body: &str = get(row, 5)?;
    let body: ActionBody = serde_json::from_str(body).map_err(|e| bad_json("action body", e))?;
    let count = |idx: usize| -> StoreResult<u64> {
        let n: i64 = get(row, idx)?;
        Ok(u64::try_from(n).unwrap_or(0))
    };
    Ok(Action {
        id: MessageId(get(row, 0)?),
        conversation: conversation_at(row, 1)?,
        sender: opt_identity_at(row, 2)?,
        created_on: time_at(row, 3)?,
        audience: decode_audience(get(row, 4)?).map_err(|e| bad_json("audience", e))?,
        body,
        response_count: count(6)?,
        responder_count: count(7)?,
        completed_count: count(8)?,
    })
}

/// The columns [`response_from_row`] reads.
macro_rules! response_select {
    ($rest:literal) => {
        concat!(
            "SELECT id, action_id, responder, body, created_on, updated_on FROM action_responses ",
            $rest
        )
    };
}

fn response_from_row(row: &Row) -> StoreResult<ActionResponse> {
    let body: &str = get(row, 3)?;
    let body: ResponseBody =
        serde_json::from_str(body).map_err(|e| bad_json("response body", e))?;
    Ok(ActionResponse {
        id: get(row, 0)?,
        action: MessageId(get(row, 1)?),
        responder: identity_at(row, 2)?,
        body,
        created_on: time_at(row, 4)?,
        updated_on: opt_time_at(row, 5)?,
    })
}

pub(crate) async fn get_action(
    db: &impl Queries,
    conversation: ConversationId,
    id: MessageId,
) -> StoreResult<Option<Action>> {
    db.query_opt(
        action_select!("WHERE a.message_id = $1 AND a.conversation = $2 AND m.deleted_on IS NULL"),
        &[&id.0, &conv_key(conversation).as_slice()],
    )
    .await?
    .as_ref()
    .map(action_from_row)
    .transpose()
}

/// Actions oldest first, keyset-paged on the message id (ids follow creation time). A kind
/// that is not a built-in one is a custom action's package, matched without case.
pub(crate) async fn list_actions(
    db: &impl Queries,
    conversation: ConversationId,
    query: &ActionQuery,
) -> StoreResult<Page<Action>> {
    let after = match &query.after {
        Some(cursor) => parse_message_cursor(cursor)?,
        None => 0,
    };
    let from = query.created_from.map_or(i64::MIN, micros_ceil);
    let builtin = query.kind.as_deref().and_then(ActionKind::parse);
    // The kind's filter, and its value ($6; a statement names only the parameters it uses).
    let (sql, kind) = match (&query.kind, builtin) {
        (None, _) => (list_actions_sql!(""), None),
        (Some(_), Some(kind)) => (
            list_actions_sql!("AND a.kind = $6"),
            Some(kind.as_str().to_owned()),
        ),
        (Some(package), None) => (
            list_actions_sql!("AND lower(a.package) = lower($6)"),
            Some(package.clone()),
        ),
    };
    let key = conv_key(conversation);
    let key = key.as_slice();
    let limit = fetch_limit(query.limit);
    let subscriber = query.subscriber.as_ref().map(IdentityId::as_str);
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&key, &after, &from, &limit, &subscriber];
    if let Some(kind) = &kind {
        params.push(kind);
    }
    let rows = db
        .query(sql, &params)
        .await?
        .iter()
        .map(action_from_row)
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(into_page(rows, query.limit, |a| message_cursor(a.id)))
}

pub(crate) async fn get_action_response(
    db: &impl Queries,
    action: MessageId,
    id: &str,
) -> StoreResult<Option<ActionResponse>> {
    db.query_opt(
        response_select!("WHERE id = $1 AND action_id = $2"),
        &[&id, &action.0],
    )
    .await?
    .as_ref()
    .map(response_from_row)
    .transpose()
}

/// An action's responses, oldest first.
pub(crate) async fn list_action_responses(
    db: &impl Queries,
    action: MessageId,
    limit: usize,
) -> StoreResult<Vec<ActionResponse>> {
    db.query(
        response_select!("WHERE action_id = $1 ORDER BY seq LIMIT $2"),
        &[&action.0, &i64::try_from(limit).unwrap_or(i64::MAX)],
    )
    .await?
    .iter()
    .map(response_from_row)
    .collect()
}

impl Writer {
    pub(crate) fn create_action(&mut self, new: &NewAction) -> StoreResult<Action> {
        let body = encode_json(&new.body, "action body")?;
        let mut message = self.append_message(&new.message)?;
        // The action id is the message id, known only now.
        message
            .metadata
            .insert(ACTION_ID_KEY.into(), message.id.to_string());
        let key = conv_key(message.conversation);
        let key = key.as_slice();
        self.db.execute(
            "UPDATE messages SET metadata = $1 WHERE conversation = $2 AND id = $3",
            &[&encode_metadata(&message.metadata)?, &key, &message.id.0],
        )?;
        let created_us = micros(message.created_on);
        self.db.execute(
            "INSERT INTO actions (message_id, conversation, kind, package, created_on, due_on,
                 body)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &message.id.0,
                &key,
                &new.body.kind.as_str(),
                &new.body.package,
                &created_us,
                &new.body.due.map(micros),
                &body,
            ],
        )?;
        self.link_message_media(message.conversation, message.id, &new.media)?;
        let payload =
            event_payloads::action_created(message.conversation, message.id, &new.body, &new.media);
        self.event(
            EventKind::ActionCreated,
            Some(message.conversation),
            Some(message.id.0),
            message.sender.as_ref(),
            payload,
            created_us,
        )?;
        Ok(Action {
            id: message.id,
            conversation: message.conversation,
            sender: message.sender,
            created_on: message.created_on,
            audience: message.audience,
            body: new.body.clone(),
            response_count: 0,
            responder_count: 0,
            completed_count: 0,
        })
    }

    pub(crate) fn put_action_response(
        &mut self,
        new: &NewActionResponse,
    ) -> StoreResult<ActionResponse> {
        self.ensure_open(new.conversation)?;
        if at_once(get_action(&self.db, new.conversation, new.action))?.is_none() {
            return Err(StoreError::NotFound);
        }
        let body = encode_json(&new.body, "response body")?;
        let (now, now_us) = self.now()?;
        let completed = new.body.completed.map(i64::from);
        let response = if new.update {
            let existing = at_once(get_action_response(&self.db, new.action, &new.id))?
                .filter(|r| r.responder == new.responder)
                .ok_or(StoreError::NotFound)?;
            self.db.execute(
                "UPDATE action_responses SET body = $1, completed = $2, updated_on = $3
                 WHERE id = $4",
                &[&body, &completed, &now_us, &new.id],
            )?;
            ActionResponse {
                body: new.body.clone(),
                updated_on: Some(now),
                ..existing
            }
        } else {
            if !new.allow_multiple {
                let exists = self
                    .db
                    .query_opt(
                        "SELECT 1 FROM action_responses WHERE action_id = $1 AND responder = $2
                         LIMIT 1",
                        &[&new.action.0, &new.responder.as_str()],
                    )?
                    .is_some();
                if exists {
                    return Err(StoreError::Conflict("already responded".into()));
                }
            }
            let inserted = self.db.execute(
                "INSERT INTO action_responses (id, action_id, responder, completed, created_on,
                     body)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
                &[
                    &new.id,
                    &new.action.0,
                    &new.responder.as_str(),
                    &completed,
                    &now_us,
                    &body,
                ],
            )?;
            if inserted == 0 {
                return Err(StoreError::Conflict(format!(
                    "response {} already exists",
                    new.id
                )));
            }
            ActionResponse {
                id: new.id.clone(),
                action: new.action,
                responder: new.responder.clone(),
                body: new.body.clone(),
                created_on: now,
                updated_on: None,
            }
        };
        let responder = (!new.hide_responder).then_some(&new.responder);
        self.event(
            EventKind::ActionResponse,
            Some(new.conversation),
            Some(new.action.0),
            responder,
            event_payloads::action_response(
                new.conversation,
                new.action,
                &response.id,
                new.update,
                responder,
            ),
            now_us,
        )?;
        Ok(response)
    }
}
