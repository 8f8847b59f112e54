//! Participant routes: add, list, remove.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Serialize;

use super::participant_inputs;
use crate::error::{AcsError, AcsResult, CommunicationError};
use crate::extract::{path_segment, thread_id, AcsJson, AcsState, Params};
use crate::wire::{AddParticipantsRequest, ChatParticipantOut, Collection, IdentifierModel};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AddParticipantsResult {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    invalid_participants: Vec<CommunicationError>,
}

pub async fn add(
    State(state): State<AcsState>,
    headers: HeaderMap,
    params: Params,
    Path(thread): Path<String>,
    AcsJson(request): AcsJson<AddParticipantsRequest>,
) -> AcsResult<(StatusCode, Json<AddParticipantsResult>)> {
    let version = state.chat_version(&params)?;
    let caller = state.caller(&headers).await?;
    let id = thread_id(&thread)?;
    let (participants, invalid_participants) = participant_inputs(request.participants, version);
    if !participants.is_empty() {
        state.core.add_participants(&caller, id, participants).await?;
    } else if invalid_participants.is_empty() {
        return Err(AcsError::invalid("At least one participant is required.", "participants"));
    }
    Ok((StatusCode::CREATED, Json(AddParticipantsResult { invalid_participants })))
}

pub async fn list(
    State(state): State<AcsState>,
    headers: HeaderMap,
    params: Params,
    Path(thread): Path<String>,
) -> AcsResult<Json<Collection<ChatParticipantOut>>> {
    let version = state.chat_version(&params)?;
    let caller = state.caller(&headers).await?;
    let id = thread_id(&thread)?;
    let page = state.core.list_participants(&caller, id, params.page()?).await?;
    let path = format!("/chat/threads/{}/participants", path_segment(&id.to_acs()));
    Ok(Json(Collection {
        value: page.items.iter().map(|p| ChatParticipantOut::new(p, version)).collect(),
        next_link: params.next_link(&path, page.next),
    }))
}

/// The body is a bare `CommunicationIdentifierModel` (NOTES.md).
pub async fn remove(
    State(state): State<AcsState>,
    headers: HeaderMap,
    params: Params,
    Path(thread): Path<String>,
    AcsJson(identifier): AcsJson<IdentifierModel>,
) -> AcsResult<StatusCode> {
    state.chat_version(&params)?;
    let caller = state.caller(&headers).await?;
    let who = identifier
        .to_identity()
        .map_err(|message| AcsError::invalid(message, "participantCommunicationIdentifier"))?;
    state.core.remove_participant(&caller, thread_id(&thread)?, &who).await?;
    Ok(StatusCode::NO_CONTENT)
}
