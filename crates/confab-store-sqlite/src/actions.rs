//! `ActionStore`: Kaizala actions (a message plus a body row) and their responses. Writes run on
//! the writer thread inside its batch transaction (checks first, then writes, then the event);
//! reads on the read pool.

use confab_core::actions::{Action, ActionBody, ActionResponse, ResponseBody, ACTION_ID_KEY};
use confab_core::ids::{ConversationId, MessageId};
use confab_core::model::{EventKind, Page};
use confab_core::ports::{ActionQuery, NewAction, NewActionResponse, StoreError, StoreResult};
use confab_store_common::event_payloads;
use confab_store_common::stored::encode_json;
use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::codec::{self, conv_key, DbResult, M_MESSAGE_COLUMNS};
use crate::writer::Writer;

fn bad(idx: usize, what: impl std::fmt::Display) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        idx,
        rusqlite::types::Type::Text,
        what.to_string().into(),
    )
}

/// The columns of an action read: the message's (`M_MESSAGE_COLUMNS`, 13), then the body and
/// the counts.
fn action_select() -> String {
    format!(
        "SELECT {M_MESSAGE_COLUMNS}, a.body,
             (SELECT COUNT(*) FROM action_responses r WHERE r.action_id = a.message_id),
             (SELECT COUNT(DISTINCT r.responder) FROM action_responses r
                 WHERE r.action_id = a.message_id),
             (SELECT COUNT(DISTINCT r.responder) FROM action_responses r
                 WHERE r.action_id = a.message_id AND r.completed = 1)
         FROM actions AS a
         JOIN messages AS m ON m.conversation = a.conversation AND m.id = a.message_id"
    )
}

fn action_from_row(row: &Row<'_>) -> rusqlite::Result<Action> {
    let message = codec::message_from_row(row)?;
    let body: String = row.get(13)?;
    let body: ActionBody = serde_json::from_str(&body).map_err(|e| bad(13, e))?;
    let count = |idx: usize| -> rusqlite::Result<u64> {
        let n: i64 = row.get(idx)?;
        Ok(u64::try_from(n).unwrap_or(0))
    };
    Ok(Action {
        id: message.id,
        conversation: message.conversation,
        sender: message.sender,
        created_on: message.created_on,
        audience: message.audience,
        body,
        response_count: count(14)?,
        responder_count: count(15)?,
        completed_count: count(16)?,
    })
}

const RESPONSE_COLUMNS: &str = "id, action_id, responder, body, created_on, updated_on";

fn response_from_row(row: &Row<'_>) -> rusqlite::Result<ActionResponse> {
    let body: String = row.get(3)?;
    let body: ResponseBody = serde_json::from_str(&body).map_err(|e| bad(3, e))?;
    Ok(ActionResponse {
        id: row.get(0)?,
        action: MessageId(row.get(1)?),
        responder: codec::identity_at(row, 2)?,
        body,
        created_on: codec::time_at(row, 4)?,
        updated_on: codec::opt_time_at(row, 5)?,
    })
}

pub(crate) fn get_action(
    conn: &Connection,
    conversation: ConversationId,
    id: MessageId,
) -> StoreResult<Option<Action>> {
    let sql = format!(
        "{} WHERE a.message_id = ?1 AND a.conversation = ?2 AND m.deleted_on IS NULL",
        action_select()
    );
    conn.prepare_cached(&sql)
        .db()?
        .query_row(params![id.0, conv_key(conversation)], action_from_row)
        .optional()
        .db()
}

/// Actions oldest first, keyset-paged on the message id (ids follow creation time).
pub(crate) fn list_actions(
    conn: &Connection,
    conversation: ConversationId,
    query: &ActionQuery,
) -> StoreResult<Page<Action>> {
    let after = match &query.after {
        Some(cursor) => codec::parse_message_cursor(cursor)?,
        None => 0,
    };
    let from = query.created_from.map_or(i64::MIN, codec::micros_ceil);
    let builtin = query
        .kind
        .as_deref()
        .and_then(confab_core::actions::ActionKind::parse);
    let filter = match (&query.kind, builtin) {
        (None, _) => "",
        (Some(_), Some(_)) => "AND a.kind = ?5",
        (Some(_), None) => "AND a.package = ?5",
    };
    let sql = format!(
        "{} WHERE a.conversation = ?1 AND a.message_id > ?2 AND a.created_on >= ?3
             AND m.deleted_on IS NULL {filter}
             AND (?6 IS NULL OR m.audience = '*' OR EXISTS (
                 SELECT 1 FROM message_audience AS ma
                 WHERE ma.conversation = a.conversation AND ma.identity = ?6
                     AND ma.message_id = a.message_id))
         ORDER BY a.message_id LIMIT ?4",
        action_select()
    );
    let kind = match builtin {
        Some(kind) => Some(kind.as_str().to_owned()),
        None => query.kind.clone(),
    };
    let rows = conn
        .prepare_cached(&sql)
        .db()?
        .query_map(
            params![
                conv_key(conversation),
                after,
                from,
                codec::fetch_limit(query.limit),
                kind,
                query.subscriber.as_ref().map(|s| s.as_str()),
            ],
            action_from_row,
        )
        .db()?
        .collect::<rusqlite::Result<Vec<_>>>()
        .db()?;
    Ok(codec::into_page(rows, query.limit, |a| {
        codec::message_cursor(a.id)
    }))
}

pub(crate) fn get_action_response(
    conn: &Connection,
    action: MessageId,
    id: &str,
) -> StoreResult<Option<ActionResponse>> {
    let sql =
        format!("SELECT {RESPONSE_COLUMNS} FROM action_responses WHERE id = ?1 AND action_id = ?2");
    conn.prepare_cached(&sql)
        .db()?
        .query_row(params![id, action.0], response_from_row)
        .optional()
        .db()
}

pub(crate) fn list_action_responses(
    conn: &Connection,
    action: MessageId,
    limit: usize,
) -> StoreResult<Vec<ActionResponse>> {
    let sql = format!(
        "SELECT {RESPONSE_COLUMNS} FROM action_responses WHERE action_id = ?1 ORDER BY seq LIMIT ?2"
    );
    conn.prepare_cached(&sql)
        .db()?
        .query_map(
            params![action.0, i64::try_from(limit).unwrap_or(i64::MAX)],
            response_from_row,
        )
        .db()?
        .collect::<rusqlite::Result<Vec<_>>>()
        .db()
}

impl Writer {
    pub(crate) fn create_action(&mut self, new: &NewAction) -> StoreResult<Action> {
        let body = encode_json(&new.body, "action body")?;
        let mut message = self.append_message(&new.message)?;
        // The action id is the message id, known only now.
        message
            .metadata
            .insert(ACTION_ID_KEY.into(), message.id.to_string());
        self.conn
            .prepare_cached("UPDATE messages SET metadata = ?1 WHERE conversation = ?2 AND id = ?3")
            .db()?
            .execute(params![
                codec::encode_metadata(&message.metadata)?,
                codec::conv_key(message.conversation),
                message.id.0
            ])
            .db()?;
        let created_us = codec::micros(message.created_on);
        self.conn
            .prepare_cached(
                "INSERT INTO actions (message_id, conversation, kind, package, created_on, due_on,
                     body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .db()?
            .execute(params![
                message.id.0,
                conv_key(message.conversation),
                new.body.kind.as_str(),
                new.body.package,
                created_us,
                new.body.due.map(codec::micros),
                body
            ])
            .db()?;
        if !new.media.is_empty() {
            self.link_message_media(message.conversation, message.id, &new.media)?;
        }
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
        if get_action(&self.conn, new.conversation, new.action)?.is_none() {
            return Err(StoreError::NotFound);
        }
        let body = encode_json(&new.body, "response body")?;
        let (now, now_us) = self.now()?;
        let completed = new.body.completed.map(i64::from);
        let response = if new.update {
            let existing = get_action_response(&self.conn, new.action, &new.id)?
                .filter(|r| r.responder == new.responder)
                .ok_or(StoreError::NotFound)?;
            self.conn
                .prepare_cached(
                    "UPDATE action_responses SET body = ?1, completed = ?2, updated_on = ?3
                     WHERE id = ?4",
                )
                .db()?
                .execute(params![body, completed, now_us, new.id])
                .db()?;
            ActionResponse {
                body: new.body.clone(),
                updated_on: Some(now),
                ..existing
            }
        } else {
            if !new.allow_multiple {
                let exists = self
                    .conn
                    .prepare_cached(
                        "SELECT 1 FROM action_responses WHERE action_id = ?1 AND responder = ?2
                         LIMIT 1",
                    )
                    .db()?
                    .query_row(params![new.action.0, new.responder.as_str()], |_| Ok(()))
                    .optional()
                    .db()?
                    .is_some();
                if exists {
                    return Err(StoreError::Conflict("already responded".into()));
                }
            }
            let inserted = self
                .conn
                .prepare_cached(
                    "INSERT INTO action_responses (id, action_id, responder, completed,
                         created_on, body)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (id) DO NOTHING",
                )
                .db()?
                .execute(params![
                    new.id,
                    new.action.0,
                    new.responder.as_str(),
                    completed,
                    now_us,
                    body
                ])
                .db()?;
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
