//! Message routes: send, get, list, update, delete.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use confab_core::chat::SendMessage;
use confab_core::model::MessageType;
use confab_core::ports::MessageEdit;
use serde::Serialize;

use crate::error::{AcsError, AcsResult};
use crate::extract::{message_id, thread_id, thread_path, AcsJson, AcsState, ChatCall};
use crate::wire::{message_page_response, ChatMessage, SendMessageRequest, UpdateMessageRequest};

#[derive(Serialize)]
struct SendMessageResult {
    id: String,
}

pub async fn send(
    State(state): State<AcsState>,
    call: ChatCall,
    Path(thread): Path<String>,
    AcsJson(request): AcsJson<SendMessageRequest>,
) -> AcsResult<Response> {
    let id = thread_id(&thread)?;
    let kind = match request.kind.as_deref() {
        None => MessageType::Text,
        Some(name) => MessageType::parse(name)
            .filter(|kind| !kind.is_system())
            .ok_or_else(|| {
                AcsError::invalid("The message type must be 'text' or 'html'.", "type")
            })?,
    };
    let message = SendMessage {
        kind,
        text: request.content,
        sender_display_name: request.sender_display_name,
        metadata: request.metadata.unwrap_or_default(),
    };
    let sent = state.core.send_message(&call.caller, id, message).await?;
    let mut location = thread_path(id, "/messages/");
    location.push_str(itoa::Buffer::new().format(sent.id.0));
    let body = Json(SendMessageResult {
        id: sent.id.to_string(),
    });
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], body).into_response())
}

pub async fn get(
    State(state): State<AcsState>,
    call: ChatCall,
    Path((thread, message)): Path<(String, String)>,
) -> AcsResult<Response> {
    let message = state
        .core
        .get_message(&call.caller, thread_id(&thread)?, message_id(&message)?)
        .await?;
    ChatMessage(&message).response()
}

pub async fn list(
    State(state): State<AcsState>,
    call: ChatCall,
    Path(thread): Path<String>,
) -> AcsResult<Response> {
    let id = thread_id(&thread)?;
    let since = call.params.time("startTime")?;
    let page = state
        .core
        .list_messages(&call.caller, id, since, call.params.page()?)
        .await?;
    let path = thread_path(id, "/messages");
    let next_link = call.params.next_link(&path, page.next);
    message_page_response(&page.items, next_link.as_deref())
}

pub async fn update(
    State(state): State<AcsState>,
    call: ChatCall,
    Path((thread, message)): Path<(String, String)>,
    AcsJson(request): AcsJson<UpdateMessageRequest>,
) -> AcsResult<StatusCode> {
    let edit = MessageEdit {
        text: request.content,
        metadata: request.metadata,
    };
    state
        .core
        .edit_message(
            &call.caller,
            thread_id(&thread)?,
            message_id(&message)?,
            edit,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn remove(
    State(state): State<AcsState>,
    call: ChatCall,
    Path((thread, message)): Path<(String, String)>,
) -> AcsResult<StatusCode> {
    state
        .core
        .delete_message(&call.caller, thread_id(&thread)?, message_id(&message)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
