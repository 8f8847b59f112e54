//! The port of actions (Kaizala cards): an action is a message plus its body, and responses.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{NewMessage, StoreResult};
use crate::actions::{Action, ActionBody, ActionResponse, ResponseBody};
use crate::ids::{ConversationId, IdentityId, MessageId};
use crate::model::Page;

/// An action to post: its message (type `text`, the title as content) and its body.
#[derive(Clone, Debug)]
pub struct NewAction {
    pub message: NewMessage,
    pub body: ActionBody,
    /// Media ids the message carries (a media action's files; uploads an announcement or a
    /// poll's choices name), checked by the core: linked to the message in the same
    /// transaction, so that its readers may fetch them.
    pub media: Vec<String>,
}

/// A response to record.
#[derive(Clone, Debug)]
pub struct NewActionResponse {
    pub conversation: ConversationId,
    pub action: MessageId,
    pub responder: IdentityId,
    /// The response's GUID: a fresh one for a new response, or the one to replace.
    pub id: String,
    /// Replace response `id` (`NotFound` unless it is the responder's response to this
    /// action) rather than add one.
    pub update: bool,
    pub body: ResponseBody,
    /// Unless set, a new response from a responder who has one fails with `Conflict`.
    pub allow_multiple: bool,
    /// Leave the responder out of the event (anonymous or sender-only actions).
    pub hide_responder: bool,
}

/// Which actions of a conversation to list, oldest first.
#[derive(Clone, Debug, Default)]
pub struct ActionQuery {
    /// A built-in kind (`ActionKind::as_str`) or a custom package id (case-insensitive).
    pub kind: Option<String>,
    /// Only actions created at or after this time.
    pub created_from: Option<OffsetDateTime>,
    /// Continue after this cursor (from a previous page's `next`).
    pub after: Option<String>,
    pub limit: usize,
    /// Set when the reader is this subscriber: only actions whose audience reaches it.
    pub subscriber: Option<IdentityId>,
}

/// Storage of actions and their responses.
#[async_trait]
pub trait ActionStore: Send + Sync + 'static {
    /// Appends the action's message (like `Store::append_message`, adding `kaizalaActionId`
    /// to its metadata), its body and its media links, in one transaction; logs
    /// `MessageReceived` and `ActionCreated` (with `isAttachment` and `media` when it carries
    /// media).
    async fn create_action(&self, new: NewAction) -> StoreResult<Action>;
    /// An action whose message is not deleted, with its counts.
    async fn get_action(
        &self,
        conversation: ConversationId,
        id: MessageId,
    ) -> StoreResult<Option<Action>>;
    /// Actions (messages not deleted), oldest first, keyset-paged.
    async fn list_actions(
        &self,
        conversation: ConversationId,
        query: ActionQuery,
    ) -> StoreResult<Page<Action>>;
    /// Records a response; logs `ActionResponse`. `NotFound` if
    /// the action is gone.
    async fn put_action_response(&self, response: NewActionResponse)
        -> StoreResult<ActionResponse>;
    async fn get_action_response(
        &self,
        action: MessageId,
        id: &str,
    ) -> StoreResult<Option<ActionResponse>>;
    /// The action's responses, oldest first, at most `limit`.
    async fn list_action_responses(
        &self,
        action: MessageId,
        limit: usize,
    ) -> StoreResult<Vec<ActionResponse>>;
}
