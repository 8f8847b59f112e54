//! Participant routes: add, list, remove.

use axum::extract::{FromRequest, Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use super::participant_inputs;
use crate::error::{AcsError, AcsResult, CommunicationError};
use crate::extract::{thread_id, thread_path, AcsJson, AcsState, ChatCall};
use crate::wire::{AddParticipantsRequest, ChatParticipantOut, Collection, IdentifierModel};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AddParticipantsResult {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    invalid_participants: Vec<CommunicationError>,
}

/// `POST …/participants/:add` and `…/participants/:remove`.
pub async fn action(
    State(state): State<AcsState>,
    call: ChatCall,
    Path((thread, action)): Path<(String, String)>,
    request: Request,
) -> AcsResult<Response> {
    match action.as_str() {
        ":add" => {
            let AcsJson(body) = AcsJson::from_request(request, &state).await?;
            Ok(add(state, call, thread, body).await?.into_response())
        }
        ":remove" => {
            let AcsJson(body) = AcsJson::from_request(request, &state).await?;
            Ok(remove(state, call, thread, body).await?.into_response())
        }
        _ => Err(AcsError::not_found(
            "The requested resource does not exist.",
        )),
    }
}

async fn add(
    state: AcsState,
    call: ChatCall,
    thread: String,
    request: AddParticipantsRequest,
) -> AcsResult<(StatusCode, Json<AddParticipantsResult>)> {
    let id = thread_id(&thread)?;
    let (participants, invalid_participants) = participant_inputs(
        request.participants,
        call.version,
        state.core.limits().max_participants_per_batch,
    )?;
    if !participants.is_empty() {
        state
            .core
            .add_participants(&call.caller, id, participants)
            .await?;
    } else if invalid_participants.is_empty() {
        return Err(AcsError::invalid(
            "At least one participant is required.",
            "participants",
        ));
    }
    Ok((
        StatusCode::CREATED,
        Json(AddParticipantsResult {
            invalid_participants,
        }),
    ))
}

pub async fn list(
    State(state): State<AcsState>,
    call: ChatCall,
    Path(thread): Path<String>,
) -> AcsResult<Response> {
    let id = thread_id(&thread)?;
    let page = state
        .core
        .list_participants(&call.caller, id, call.params.page()?)
        .await?;
    let path = thread_path(id, "/participants");
    Ok(Json(Collection {
        value: page
            .items
            .iter()
            .map(|p| ChatParticipantOut::new(p, call.version))
            .collect(),
        next_link: call.params.next_link(&path, page.next),
    })
    .into_response())
}

/// The body is a bare `CommunicationIdentifierModel` (NOTES.md).
async fn remove(
    state: AcsState,
    call: ChatCall,
    thread: String,
    identifier: IdentifierModel,
) -> AcsResult<StatusCode> {
    let who = identifier
        .to_identity()
        .map_err(|message| AcsError::invalid(message, "participantCommunicationIdentifier"))?;
    state
        .core
        .remove_participant(&call.caller, thread_id(&thread)?, &who)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
