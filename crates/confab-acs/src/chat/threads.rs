//! Thread routes: create, get, update, delete, list.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use confab_core::chat::CreateConversation;
use confab_core::ports::ConversationUpdate;
use serde::Serialize;

use super::participant_inputs;
use crate::error::{AcsResult, CommunicationError};
use crate::extract::{thread_id, thread_path, AcsJson, AcsState, ChatCall};
use crate::wire::{
    retention_from_wire, ChatThreadItem, ChatThreadProperties, Collection, CreateThreadRequest,
    UpdateThreadRequest,
};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CreateThreadResult {
    chat_thread: ChatThreadProperties,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    invalid_participants: Vec<CommunicationError>,
}

pub async fn create(
    State(state): State<AcsState>,
    call: ChatCall,
    headers: HeaderMap,
    AcsJson(request): AcsJson<CreateThreadRequest>,
) -> AcsResult<Response> {
    let (participants, invalid_participants) = participant_inputs(
        request.participants,
        call.version,
        state.core.limits().max_participants_per_batch,
    )?;
    let (metadata, retention) = if call.version.has_metadata() {
        let retention = request
            .retention_policy
            .as_ref()
            .map(retention_from_wire)
            .transpose()?;
        (request.metadata.unwrap_or_default(), retention.flatten())
    } else {
        Default::default()
    };
    let repeatability_key = headers
        .get("repeatability-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let conversation = state
        .core
        .create_conversation(
            &call.caller,
            CreateConversation {
                topic: request.topic,
                participants,
                metadata,
                retention,
                repeatability_key,
            },
        )
        .await?;
    let location = thread_path(conversation.id, "");
    let result = CreateThreadResult {
        chat_thread: ChatThreadProperties::new(&conversation, call.version),
        invalid_participants,
    };
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(result),
    )
        .into_response())
}

pub async fn get(
    State(state): State<AcsState>,
    call: ChatCall,
    Path(thread): Path<String>,
) -> AcsResult<Json<ChatThreadProperties>> {
    let conversation = state
        .core
        .get_conversation(&call.caller, thread_id(&thread)?)
        .await?;
    Ok(Json(ChatThreadProperties::new(&conversation, call.version)))
}

pub async fn update(
    State(state): State<AcsState>,
    call: ChatCall,
    Path(thread): Path<String>,
    AcsJson(request): AcsJson<UpdateThreadRequest>,
) -> AcsResult<StatusCode> {
    let mut update = ConversationUpdate {
        topic: request.topic,
        ..Default::default()
    };
    if call.version.has_metadata() {
        update.metadata = request.metadata;
        update.retention = request
            .retention_policy
            .as_ref()
            .map(retention_from_wire)
            .transpose()?;
    }
    state
        .core
        .update_conversation(&call.caller, thread_id(&thread)?, update)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn remove(
    State(state): State<AcsState>,
    call: ChatCall,
    Path(thread): Path<String>,
) -> AcsResult<StatusCode> {
    state
        .core
        .delete_conversation(&call.caller, thread_id(&thread)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list(
    State(state): State<AcsState>,
    call: ChatCall,
) -> AcsResult<Json<Collection<ChatThreadItem>>> {
    let since = call.params.time("startTime")?;
    let page = state
        .core
        .list_conversations(&call.caller, since, call.params.page()?)
        .await?;
    Ok(Json(Collection {
        value: page.items.iter().map(ChatThreadItem::from).collect(),
        next_link: call.params.next_link("/chat/threads", page.next),
    }))
}
