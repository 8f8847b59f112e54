//! What creating a conversation writes that needs no database: its participants without
//! repeats, its event's text, its first message's content. Shared so that every store logs
//! the same creation and the same first message.

use std::collections::HashMap;

use confab_core::ids::IdentityId;
use confab_core::model::{MessageContent, Participant, ParticipantRef};
use confab_core::ports::NewConversation;
use serde_json::json;

use crate::event_payloads::{self, EventRow};
use crate::stored;

/// A conversation to create, with what its creation writes that needs no database made
/// beforehand. [`Creation::new`] runs on the caller's task, so that a store's writer, the one
/// thread every write waits on, does not spend its time on JSON (a tenth of its time on a
/// thread with ten members).
pub struct Creation {
    pub new: NewConversation,
    /// The participants given, deduplicated ([`dedupe`]).
    pub participants: Vec<Participant>,
    /// The conversationCreated event's data, and what its log row keeps.
    pub event_data: String,
    pub event_row: EventRow,
    /// The content of its first (system) message.
    pub first_message: MessageContent,
}

impl Creation {
    pub fn new(new: NewConversation) -> Self {
        let participants = dedupe(new.participants.clone());
        let (event_data, event_row) = event_payloads::creation_event(json!({
            "conversation": new.id.to_acs(),
            "createdBy": new.created_by.as_str(),
            "topic": new.topic,
            "members": event_payloads::member_details(participants.iter()),
        }));
        let first_message = MessageContent {
            participants: participants.iter().map(participant_ref).collect(),
            initiator: Some(new.created_by.clone()),
            ..MessageContent::default()
        };
        Self {
            new,
            participants,
            event_data,
            event_row,
            first_message,
        }
    }
}

/// Participants with one entry per identity: the last given wins, in the place of the first.
/// Their times are truncated to what the database keeps, so that the system message records
/// exactly what a read gives back.
pub fn dedupe(participants: Vec<Participant>) -> Vec<Participant> {
    let mut out: Vec<Participant> = Vec::with_capacity(participants.len());
    let mut index: HashMap<IdentityId, usize> = HashMap::with_capacity(participants.len());
    for mut participant in participants {
        participant.share_history_time = participant
            .share_history_time
            .and_then(|t| stored::from_micros(stored::micros(t)));
        match index.get(&participant.identity) {
            Some(&at) => out[at] = participant,
            None => {
                index.insert(participant.identity.clone(), out.len());
                out.push(participant);
            }
        }
    }
    out
}

/// A participant as a system message's content names it.
pub fn participant_ref(participant: &Participant) -> ParticipantRef {
    ParticipantRef {
        identity: participant.identity.clone(),
        display_name: participant.display_name.clone(),
        share_history_time: participant.share_history_time,
    }
}
