//! Read receipts and typing notifications.

use axum::extract::{Path, Request, State};
use axum::Json;

use crate::error::AcsResult;
use crate::extract::{
    body_bytes, message_id, optional_json, thread_id, thread_path, AcsJson, AcsState, ChatCall,
};
use crate::wire::{ChatMessageReadReceipt, Collection, SendReadReceiptRequest, TypingRequest};

pub async fn send(
    State(state): State<AcsState>,
    call: ChatCall,
    Path(thread): Path<String>,
    AcsJson(request): AcsJson<SendReadReceiptRequest>,
) -> AcsResult<()> {
    let message = message_id(&request.chat_message_id)?;
    state
        .core
        .send_read_receipt(&call.caller, thread_id(&thread)?, message)
        .await?;
    Ok(())
}

pub async fn list(
    State(state): State<AcsState>,
    call: ChatCall,
    Path(thread): Path<String>,
) -> AcsResult<Json<Collection<ChatMessageReadReceipt>>> {
    let id = thread_id(&thread)?;
    let page = state
        .core
        .list_read_receipts(&call.caller, id, call.params.page()?)
        .await?;
    let path = thread_path(id, "/readReceipts");
    Ok(Json(Collection {
        value: page
            .items
            .iter()
            .map(ChatMessageReadReceipt::from)
            .collect(),
        next_link: call.params.next_link(&path, page.next),
    }))
}

/// The body is optional: `{}`, `{"senderDisplayName": …}` or nothing.
pub async fn typing(
    State(state): State<AcsState>,
    call: ChatCall,
    Path(thread): Path<String>,
    request: Request,
) -> AcsResult<()> {
    let body = body_bytes(request, &state).await?;
    let typing: TypingRequest = optional_json(&body)?;
    state
        .core
        .send_typing(
            &call.caller,
            thread_id(&thread)?,
            typing.sender_display_name.as_deref(),
        )
        .await?;
    Ok(())
}
