//! The Chat API: threads, messages, participants, read receipts and typing notifications.

mod messages;
mod participants;
mod receipts;
mod threads;

use axum::routing::{get, post};
use axum::Router;
use confab_core::chat::ParticipantInput;

use crate::api_version::ChatVersion;
use crate::error::{AcsError, AcsResult, CommunicationError};
use crate::extract::AcsState;
use crate::wire::ChatParticipantIn;

pub fn routes() -> Router<AcsState> {
    Router::new()
        .route("/chat/threads", post(threads::create).get(threads::list))
        .route(
            "/chat/threads/{thread}",
            get(threads::get)
                .patch(threads::update)
                .delete(threads::remove),
        )
        .route(
            "/chat/threads/{thread}/messages",
            post(messages::send).get(messages::list),
        )
        .route(
            "/chat/threads/{thread}/messages/{message}",
            get(messages::get)
                .patch(messages::update)
                .delete(messages::remove),
        )
        .route(
            "/chat/threads/{thread}/participants",
            get(participants::list),
        )
        // `/:add` and `/:remove` are literal on the ACS wire; axum reserves a leading `:`.
        .route(
            "/chat/threads/{thread}/participants/{action}",
            post(participants::action),
        )
        .route(
            "/chat/threads/{thread}/readReceipts",
            post(receipts::send).get(receipts::list),
        )
        .route("/chat/threads/{thread}/typing", post(receipts::typing))
}

/// Splits wire participants into valid inputs and `invalidParticipants` errors (a participant
/// that cannot be parsed is reported, the others are still added — NOTES.md).
fn participant_inputs(
    participants: Vec<ChatParticipantIn>,
    version: ChatVersion,
    max_batch: usize,
) -> AcsResult<(Vec<ParticipantInput>, Vec<CommunicationError>)> {
    // The batch limit counts what was sent, valid or not.
    if participants.len() > max_batch {
        return Err(AcsError::invalid(
            format!("At most {max_batch} participants can be added in one request."),
            "participants",
        ));
    }
    let mut valid = Vec::with_capacity(participants.len());
    let mut invalid = Vec::new();
    for participant in participants {
        match participant.communication_identifier.to_identity() {
            Ok(identity) => valid.push(ParticipantInput {
                identity,
                display_name: participant.display_name,
                share_history_time: participant.share_history_time,
                metadata: if version.has_metadata() {
                    participant.metadata.unwrap_or_default()
                } else {
                    Default::default()
                },
            }),
            Err(message) => invalid.push(CommunicationError {
                code: "400".into(),
                message,
                target: Some(participant.communication_identifier.describe()),
            }),
        }
    }
    Ok((valid, invalid))
}
