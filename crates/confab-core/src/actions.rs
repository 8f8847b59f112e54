//! Actions (Kaizala cards): surveys, jobs, polls, announcements, let's-meet requests and custom
//! action packages. An action is a message of the conversation (type `text` on every face, its
//! title as content, `kaizalaActionId`/`kaizalaActionType` in its metadata) with a structured
//! body kept beside it, and responses.
//!
//! Rules:
//! * Posting: members and admins of a group; only admins in a public group (ConnectGroup), where
//!   an action may be addressed to subscribers like a message. Connector tokens need `action.*`.
//! * Responding: whoever reads the action (members, admins, the subscribers it is addressed to);
//!   a job only by its assignees (everyone who reads it when it has none); announcements take no
//!   responses. Answers are validated against the questions. A second response needs
//!   `acceptMultipleResponses`; otherwise 409 (update the first one by its `responseId`).
//!   Only its responder updates a response (403). Past the due date: 409.
//! * Results: sender-only actions show others' responses to the action's sender only (everyone
//!   sees their own); anonymous actions never name responders but to themselves; subscribers
//!   see only their own responses.
//! * Reminders: the action's sender (or an admin) posts a reminder, which is a text message
//!   `Reminder: <title>` to the action's audience, linked by `kaizalaActionId` metadata.
//! * Media actions (Image, Album, Audio, Document, Video): the `mediaResource` is resolved and
//!   checked by [`Core::media_for_action`]; the message (caption as text, or the type) lists
//!   the files' URLs in `kaizalaMediaUrls` metadata, and the store links the files to it in
//!   the same transaction, so that its readers may fetch them. They take no responses.
//! * An announcement's media resources and a poll's choice images that name uploads here are
//!   checked the same way (any kind) and linked likewise.
//! * Image and AttachmentList answers naming uploads here must name files the responder may
//!   fetch (images for Image); they are not linked.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use crate::chat::{require, require_chat, require_member};
use crate::connector::require_permission;
use crate::error::{Error, Result};
use crate::groups::MAX_MESSAGE_CHARS;
use crate::identity::Caller;
use crate::ids::{ConversationId, IdentityId, MessageId};
use crate::media::parse_media_resource;
use crate::model::{
    Audience, ConversationKind, Message, MessageContent, MessageType, Metadata, Page, Participant,
    Role,
};
use crate::ports::{ActionQuery, MediaKind, NewAction, NewActionResponse, NewMessage, StoreError};
use crate::ratelimit::Operation;
use crate::Core;

/// Metadata key (on the action's message and its reminders) naming the action.
pub const ACTION_ID_KEY: &str = "kaizalaActionId";
/// Metadata key naming the action's type.
pub const ACTION_TYPE_KEY: &str = "kaizalaActionType";
/// Metadata key of a media action's files: a JSON array (as text) of their URLs.
pub const MEDIA_URLS_KEY: &str = "kaizalaMediaUrls";
pub const MAX_QUESTIONS: usize = 100;
pub const MAX_OPTIONS: usize = 100;
pub const MAX_PROPERTIES: usize = 100;
pub const MAX_ASSIGNEES: usize = 100;
pub const MAX_ATTACHMENTS: usize = 20;
/// Characters of a title, question, option, property value or text answer.
pub const MAX_TEXT_CHARS: usize = MAX_MESSAGE_CHARS;
/// Uploaded files one action (an announcement, a poll's choice images) may name.
pub const MAX_LINKED_MEDIA: usize = 100;
/// Characters of one media resource or image answer.
pub const MAX_MEDIA_CHARS: usize = 64 * 1024;
/// Actions in one page of a listing (also the default, as in Kaizala).
pub const DEFAULT_ACTION_PAGE: usize = 30;
pub const MAX_ACTION_PAGE: usize = 100;
/// Responses shown with an action's details.
pub const MAX_RESPONSES_SHOWN: usize = 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ActionKind {
    Survey,
    Job,
    Poll,
    Announcement,
    LetsMeet,
    /// An instance of a custom action package (its id in `ActionBody::package`).
    Custom,
    /// Media attachments (media.md): one uploaded file of the kind, or (`Album`) 1 to
    /// `album_images` images; the caption is the title, the media ids are `ActionBody::media`.
    Image,
    Album,
    Audio,
    Document,
    Video,
}

impl ActionKind {
    pub const ALL: [ActionKind; 11] = [
        ActionKind::Survey,
        ActionKind::Job,
        ActionKind::Poll,
        ActionKind::Announcement,
        ActionKind::LetsMeet,
        ActionKind::Custom,
        ActionKind::Image,
        ActionKind::Album,
        ActionKind::Audio,
        ActionKind::Document,
        ActionKind::Video,
    ];

    /// The name in the store and on the Kaizala wire (`actionType`).
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Survey => "Survey",
            ActionKind::Job => "Job",
            ActionKind::Poll => "Poll",
            ActionKind::Announcement => "Announcement",
            ActionKind::LetsMeet => "LetsMeet",
            ActionKind::Custom => "Custom",
            ActionKind::Image => "Image",
            ActionKind::Album => "Album",
            ActionKind::Audio => "Audio",
            ActionKind::Document => "Document",
            ActionKind::Video => "Video",
        }
    }

    /// A media attachment (Image, Album, Audio, Document, Video): takes no responses.
    pub fn is_media(self) -> bool {
        matches!(
            self,
            ActionKind::Image
                | ActionKind::Album
                | ActionKind::Audio
                | ActionKind::Document
                | ActionKind::Video
        )
    }

    /// Case-insensitive; `Let's Meet` and `QuickPoll` spellings included.
    pub fn parse(text: &str) -> Option<Self> {
        let key: String = text
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        match key.as_str() {
            "quickpoll" => Some(ActionKind::Poll),
            "picture" | "photo" | "pictureattachment" => Some(ActionKind::Image),
            "audioattachment" => Some(ActionKind::Audio),
            "documentattachment" => Some(ActionKind::Document),
            _ => ActionKind::ALL
                .into_iter()
                .find(|k| k.as_str().eq_ignore_ascii_case(&key)),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum QuestionType {
    SingleOption,
    MultiOption,
    Text,
    Numeric,
    Location,
    DateTime,
    Image,
    AttachmentList,
}

impl QuestionType {
    pub const ALL: [QuestionType; 8] = [
        QuestionType::SingleOption,
        QuestionType::MultiOption,
        QuestionType::Text,
        QuestionType::Numeric,
        QuestionType::Location,
        QuestionType::DateTime,
        QuestionType::Image,
        QuestionType::AttachmentList,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            QuestionType::SingleOption => "SingleOption",
            QuestionType::MultiOption => "MultiOption",
            QuestionType::Text => "Text",
            QuestionType::Numeric => "Numeric",
            QuestionType::Location => "Location",
            QuestionType::DateTime => "DateTime",
            QuestionType::Image => "Image",
            QuestionType::AttachmentList => "AttachmentList",
        }
    }

    /// Case-insensitive; `Date` (the docs' spelling) is `DateTime`.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("date") {
            return Some(QuestionType::DateTime);
        }
        QuestionType::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(text))
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Question {
    pub title: String,
    pub kind: QuestionType,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    #[serde(default)]
    pub invisible: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Location {
    pub latitude: f64,
    pub longitude: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A property of a custom action package instance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Property {
    pub name: String,
    /// Text, Numeric, Location, DateTime, StringList, Attachment, StringSet, AttachmentList.
    pub kind: String,
    pub value: String,
}

/// The property types of the docs.
pub const PROPERTY_TYPES: [&str; 8] = [
    "Text",
    "Numeric",
    "Location",
    "DateTime",
    "StringList",
    "Attachment",
    "StringSet",
    "AttachmentList",
];

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Meeting {
    #[serde(with = "time::serde::rfc3339")]
    pub starting_time: OffsetDateTime,
    pub duration_mins: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place: Option<Location>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agenda: Option<String>,
}

/// What an action is: kept as JSON beside its message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActionBody {
    pub kind: ActionKind,
    /// The action package id of a `Custom` action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    /// The title (a poll's question).
    pub title: String,
    /// An announcement's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// A survey's (or package's) questions; a poll's one SingleOption question (its choices);
    /// a let's-meet's one SingleOption question (Yes/No/Maybe).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub questions: Vec<Question>,
    /// A poll's choice images, by choice.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choice_images: Vec<Option<String>>,
    #[serde(default)]
    pub anonymous: bool,
    #[serde(default)]
    pub sender_only: bool,
    #[serde(default)]
    pub multiple_responses: bool,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub due: Option<OffsetDateTime>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assignees: Vec<IdentityId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub properties: Vec<Property>,
    /// An announcement's media resources (as sent); a media action's media ids (resolved and
    /// checked, linked to the message so that its readers may fetch them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub media: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meeting: Option<Meeting>,
}

impl ActionBody {
    /// The type as shown: the package id for custom actions.
    pub fn type_name(&self) -> &str {
        match (&self.kind, &self.package) {
            (ActionKind::Custom, Some(package)) => package,
            (kind, _) => kind.as_str(),
        }
    }
}

/// One answer, validated against its question.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Answer {
    Text(String),
    /// The index of the chosen option.
    Option(usize),
    Options(Vec<usize>),
    Number(f64),
    Location(Location),
    /// Milliseconds since the epoch.
    DateTime(i64),
    Attachment(String),
    Attachments(Vec<String>),
    /// An answer to a custom package without declared questions, kept as sent.
    Raw(Value),
}

/// What a response says (kept as JSON).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ResponseBody {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub answers: Vec<Answer>,
    /// A job response: whether the responder completed the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
}

/// An action as stored, with its response counts.
#[derive(Clone, Debug, PartialEq)]
pub struct Action {
    pub id: MessageId,
    pub conversation: ConversationId,
    pub sender: Option<IdentityId>,
    pub created_on: OffsetDateTime,
    pub audience: Audience,
    pub body: ActionBody,
    /// Responses (every one, updates not counted twice).
    pub response_count: u64,
    /// Distinct responders.
    pub responder_count: u64,
    /// Distinct responders whose latest job response says completed.
    pub completed_count: u64,
}

impl Action {
    /// A job is completed when every assignee completed it (one completion when it has none).
    pub fn is_completed(&self) -> bool {
        let needed = self.body.assignees.len().max(1) as u64;
        self.completed_count >= needed
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ActionResponse {
    pub id: String,
    pub action: MessageId,
    pub responder: IdentityId,
    pub body: ResponseBody,
    pub created_on: OffsetDateTime,
    pub updated_on: Option<OffsetDateTime>,
}

/// When an action's responses close.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Due {
    /// This many hours after posting (the docs' `dueDate`, `expiryInHours`, `validity`).
    Hours(f64),
    At(OffsetDateTime),
}

/// An action to post, as a face parsed it (`due` still relative). A media action carries its
/// one `mediaResource` string in `body.media`.
#[derive(Clone, Debug)]
pub struct PostAction {
    pub body: ActionBody,
    pub due: Option<Due>,
    pub audience: Audience,
    /// Where the face serves media (`<endpointUrl>/v1/media`): a media action's message
    /// metadata lists `<media_base>/<id>` under [`MEDIA_URLS_KEY`].
    pub media_base: String,
}

/// A response to post (`response_id`: update that response).
#[derive(Clone, Debug, Default)]
pub struct RespondAction {
    pub response_id: Option<String>,
    /// The type the caller believes it answers (checked when given).
    pub kind: Option<String>,
    pub answers: Option<Vec<Value>>,
    pub completed: Option<bool>,
    pub name: Option<String>,
    pub location: Option<Value>,
}

/// An action with the responses the viewer may see.
#[derive(Clone, Debug)]
pub struct ActionDetails {
    pub action: Action,
    pub responses: Vec<ActionResponse>,
    /// Whether the viewer sees others' responses and the results.
    pub results_visible: bool,
    /// Whether responders are named (not anonymous), for others' responses.
    pub named: bool,
    /// For option questions: per question, the number of responses choosing each option
    /// (latest response per responder; empty when results are hidden).
    pub tallies: Vec<Vec<u64>>,
}

/// A page of actions.
#[derive(Clone, Debug)]
pub struct ActionsQuery {
    pub kind: Option<String>,
    pub from: Option<OffsetDateTime>,
    pub count: Option<i64>,
    pub continuation: Option<String>,
}

impl Core {
    /// Posts an action; answers it (its id is the message's).
    pub async fn post_action(
        &self,
        caller: &Caller,
        id: ConversationId,
        request: PostAction,
    ) -> Result<Action> {
        self.throttle_connector_call(caller, Operation::WriteMessage(id))?;
        require_chat(caller)?;
        require_permission(caller, "action", "posting actions")?;
        let mut body = request.body;
        let now = self.clock.now();
        check_body(&mut body)?;
        body.due = match request.due {
            Some(Due::Hours(hours)) => Some(due_after(now, hours)?),
            Some(Due::At(at)) => Some(at),
            None => default_due(body.kind).map(|hours| now + Duration::hours(hours)),
        };
        if body.due.is_some_and(|due| due <= now) {
            return Err(Error::invalid("The due date is in the past.", "dueDate"));
        }
        let audience = self.check_audience(caller, id, request.audience).await?;
        let (me, kind) = self.membership_in(caller, id).await?;
        require_member(&me)?;
        if kind == ConversationKind::ConnectGroup && me.role != Role::Admin {
            return Err(Error::Forbidden(
                "Only admins post in a public group.".into(),
            ));
        }
        if body.kind == ActionKind::Job {
            self.check_assignees(id, &body.assignees, &audience).await?;
        }
        let mut metadata = Metadata::new();
        metadata.insert(ACTION_TYPE_KEY.into(), body.type_name().to_owned());
        let media = if body.kind.is_media() {
            let resource = body.media.first().map(String::as_str).unwrap_or_default();
            let records = self
                .media_for_action(caller, resource, body.kind.as_str())
                .await?;
            let ids: Vec<String> = records.into_iter().map(|r| r.id).collect();
            body.media = ids.clone();
            ids
        } else {
            // An announcement's media resources and a poll's choice images may name uploads
            // here too: checked like a media action's (any kind) and linked likewise.
            let named = body.media.iter().chain(body.choice_images.iter().flatten());
            self.uploads_named(caller, named).await?
        };
        if !media.is_empty() {
            let urls: Vec<String> = media
                .iter()
                .map(|m| format!("{}/{m}", request.media_base))
                .collect();
            metadata.insert(
                MEDIA_URLS_KEY.into(),
                serde_json::to_string(&urls).unwrap_or_default(),
            );
        }
        let title = summary(&body);
        Ok(self
            .store
            .create_action(NewAction {
                message: NewMessage {
                    conversation: id,
                    kind: MessageType::Text,
                    content: MessageContent {
                        text: Some(title),
                        ..Default::default()
                    },
                    sender: Some(caller.identity.clone()),
                    sender_display_name: None,
                    metadata,
                    audience,
                },
                body,
                media,
            })
            .await?)
    }

    /// Image and AttachmentList answers that name media uploaded here (a `mediaResource` of
    /// `POST /media`, a media URL or id) must name files the responder may use (the uploader,
    /// or a reader of a message carrying them; 404 otherwise), images only for an Image
    /// question (400). Other strings are kept as sent. (The files are not linked to the action:
    /// only their uploader and the readers of messages carrying them fetch them.)
    async fn check_answer_media(
        &self,
        caller: &Caller,
        body: &ActionBody,
        answers: &[Answer],
    ) -> Result<()> {
        for (i, (question, answer)) in body.questions.iter().zip(answers).enumerate() {
            let (resources, images_only) = match (question.kind, answer) {
                (QuestionType::Image, Answer::Attachment(r)) => (std::slice::from_ref(r), true),
                (QuestionType::AttachmentList, Answer::Attachments(list)) => {
                    (list.as_slice(), false)
                }
                _ => continue,
            };
            for resource in resources {
                let Some(ids) = parse_media_resource(resource) else {
                    continue;
                };
                for media in ids {
                    let record = self.media_record(caller, &media).await?;
                    if images_only && record.kind != MediaKind::Image {
                        return Err(answer_error(i, question, "an image"));
                    }
                }
            }
        }
        Ok(())
    }

    /// The media ids that `resources` name among uploads here (other strings are skipped), each
    /// one the caller may use (its uploader, or a reader of a message carrying it; 404
    /// otherwise). Distinct, in order.
    async fn uploads_named<'a>(
        &self,
        caller: &Caller,
        resources: impl Iterator<Item = &'a String>,
    ) -> Result<Vec<String>> {
        let mut ids: Vec<String> = Vec::new();
        for resource in resources {
            for media in parse_media_resource(resource).unwrap_or_default() {
                if !ids.contains(&media) {
                    if ids.len() >= MAX_LINKED_MEDIA {
                        return Err(Error::invalid(
                            format!("An action carries at most {MAX_LINKED_MEDIA} media files."),
                            "mediaResources",
                        ));
                    }
                    self.media_record(caller, &media).await?;
                    ids.push(media);
                }
            }
        }
        Ok(ids)
    }

    /// Job assignees: members of the group, or subscribers the job is addressed to.
    async fn check_assignees(
        &self,
        id: ConversationId,
        assignees: &[IdentityId],
        audience: &Audience,
    ) -> Result<()> {
        for assignee in assignees {
            let ok = match self.store.get_participant(id, assignee).await? {
                Some(p) if p.role == Role::Subscriber => audience.reaches_subscriber(assignee),
                Some(_) => true,
                None => false,
            };
            if !ok {
                return Err(Error::invalid(
                    format!(
                        "The assignee {} does not read this group's job.",
                        assignee.phone_number().unwrap_or(assignee.as_str())
                    ),
                    "assignedTo",
                ));
            }
        }
        Ok(())
    }

    /// An action the caller may read (404 otherwise), with the caller's participant record.
    async fn readable_action(
        &self,
        caller: &Caller,
        id: ConversationId,
        action: MessageId,
    ) -> Result<(Participant, Action)> {
        let me = self.membership(caller, id).await?;
        // The message rule: shared history and (for subscribers) the audience.
        self.visible_message(&me, id, action)
            .await
            .map_err(|_| action_not_found())?;
        let action = self
            .store
            .get_action(id, action)
            .await?
            .ok_or_else(action_not_found)?;
        Ok((me, action))
    }

    /// Posts a response (or, with `response_id`, updates one of the caller's).
    pub async fn respond_action(
        &self,
        caller: &Caller,
        id: ConversationId,
        action_id: MessageId,
        request: RespondAction,
    ) -> Result<ActionResponse> {
        self.throttle_connector_call(caller, Operation::WriteMessage(id))?;
        require_chat(caller)?;
        require_permission(caller, "action", "responding to actions")?;
        let (_me, action) = self.readable_action(caller, id, action_id).await?;
        let body = &action.body;
        if let Some(kind) = request.kind.as_deref().filter(|k| !k.trim().is_empty()) {
            let matches = kind.trim().eq_ignore_ascii_case(body.type_name())
                || ActionKind::parse(kind) == Some(body.kind)
                || body.package.as_deref() == Some(kind.trim());
            if !matches {
                return Err(Error::invalid(
                    format!("The action is a {}, not a {kind}.", body.type_name()),
                    "actionType",
                ));
            }
        }
        if body.kind == ActionKind::Announcement || body.kind.is_media() {
            return Err(Error::invalid(
                format!("{} actions take no responses.", body.kind.as_str()),
                "actionId",
            ));
        }
        if body.kind == ActionKind::Job
            && !body.assignees.is_empty()
            && !body.assignees.contains(&caller.identity)
        {
            return Err(Error::Forbidden(
                "Only the job's assignees respond to it.".into(),
            ));
        }
        let now = self.clock.now();
        if body.due.is_some_and(|due| now > due) {
            return Err(Error::Conflict("The action is past its due date.".into()));
        }
        let answers = match body.kind {
            ActionKind::Job => Vec::new(),
            _ => check_answers(body, request.answers)?,
        };
        self.check_answer_media(caller, body, &answers).await?;
        let response = ResponseBody {
            answers,
            completed: match body.kind {
                ActionKind::Job => Some(request.completed.ok_or_else(|| {
                    Error::invalid("isCompleted is required for a job.", "isCompleted")
                })?),
                _ => None,
            },
            name: check_optional_text(request.name, "responseName")?,
            location: request
                .location
                .filter(|v| !v.is_null())
                .map(|v| location(&v).ok_or_else(|| bad_location("responseLocation")))
                .transpose()?,
        };
        let (response_id, update) = match request.response_id.filter(|r| !r.trim().is_empty()) {
            Some(response_id) => {
                let existing = self
                    .store
                    .get_action_response(action_id, response_id.trim())
                    .await?
                    .ok_or_else(|| Error::NotFound("The response does not exist.".into()))?;
                require(
                    existing.responder == caller.identity,
                    "Only its responder updates a response.",
                )?;
                (existing.id, true)
            }
            None => (uuid::Uuid::new_v4().hyphenated().to_string(), false),
        };
        self.store
            .put_action_response(NewActionResponse {
                conversation: id,
                action: action_id,
                responder: caller.identity.clone(),
                id: response_id,
                update,
                body: response,
                allow_multiple: body.multiple_responses,
                hide_responder: body.anonymous || body.sender_only,
            })
            .await
            .map_err(|err| match err {
                StoreError::Conflict(_) if !body.multiple_responses => Error::Conflict(
                    "The caller has responded already; update that response with its responseId."
                        .into(),
                ),
                StoreError::NotFound => Error::NotFound("The response does not exist.".into()),
                other => other.into(),
            })
    }

    /// A page of the group's actions, oldest first from `from`.
    pub async fn list_actions(
        &self,
        caller: &Caller,
        id: ConversationId,
        query: ActionsQuery,
    ) -> Result<Page<Action>> {
        self.throttle_connector_call(caller, Operation::ListMessages(id))?;
        require_chat(caller)?;
        require_permission(caller, "action", "reading actions")?;
        let limit = match query.count {
            None => DEFAULT_ACTION_PAGE,
            Some(n) if n >= 1 => usize::try_from(n)
                .unwrap_or(usize::MAX)
                .min(MAX_ACTION_PAGE),
            Some(_) => return Err(Error::invalid("count must be at least 1.", "count")),
        };
        let me = self.membership(caller, id).await?;
        let from = match (query.from, me.share_history_time) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let kind = query
            .kind
            .map(|k| k.trim().to_owned())
            .filter(|k| !k.is_empty());
        let page = self
            .store
            .list_actions(
                id,
                ActionQuery {
                    kind: kind.map(|k| match ActionKind::parse(&k) {
                        Some(kind) => kind.as_str().to_owned(),
                        None => k,
                    }),
                    created_from: from,
                    after: query.continuation,
                    limit,
                    subscriber: (me.role == Role::Subscriber).then(|| me.identity.clone()),
                },
            )
            .await
            .map_err(|err| match err {
                StoreError::InvalidCursor => {
                    Error::invalid("The continuation token is not valid.", "continuationToken")
                }
                other => other.into(),
            })?;
        Ok(page)
    }

    /// An action with the responses the caller may see.
    pub async fn action_details(
        &self,
        caller: &Caller,
        id: ConversationId,
        action_id: MessageId,
    ) -> Result<ActionDetails> {
        self.throttle_connector_call(caller, Operation::Other)?;
        require_chat(caller)?;
        require_permission(caller, "action", "reading actions")?;
        let (me, action) = self.readable_action(caller, id, action_id).await?;
        let is_sender = action.sender.as_ref() == Some(&caller.identity);
        let results_visible =
            me.role != Role::Subscriber && (is_sender || !action.body.sender_only);
        let all = self
            .store
            .list_action_responses(action_id, MAX_RESPONSES_SHOWN)
            .await?;
        let tallies = if results_visible {
            tally(&action.body, &all)
        } else {
            Vec::new()
        };
        let responses = all
            .into_iter()
            .filter(|r| results_visible || r.responder == caller.identity)
            .collect();
        Ok(ActionDetails {
            named: !action.body.anonymous,
            action,
            responses,
            results_visible,
            tallies,
        })
    }

    /// Posts a reminder of an action (its sender or an admin): a text message to the action's
    /// audience. Answers the reminder message.
    pub async fn remind_action(
        &self,
        caller: &Caller,
        id: ConversationId,
        action_id: MessageId,
    ) -> Result<Message> {
        self.throttle_connector_call(caller, Operation::WriteMessage(id))?;
        require_chat(caller)?;
        require_permission(caller, "action", "sending reminders")?;
        let (me, action) = self.readable_action(caller, id, action_id).await?;
        require_member(&me)?;
        require(
            action.sender.as_ref() == Some(&caller.identity) || me.role == Role::Admin,
            "Only the action's sender or an admin sends reminders.",
        )?;
        if action.body.due.is_some_and(|due| self.clock.now() > due) {
            return Err(Error::Conflict("The action is past its due date.".into()));
        }
        let mut metadata = Metadata::new();
        metadata.insert(ACTION_ID_KEY.into(), action_id.to_string());
        metadata.insert(ACTION_TYPE_KEY.into(), action.body.type_name().to_owned());
        metadata.insert("kaizalaReminder".into(), "true".into());
        Ok(self
            .store
            .append_message(NewMessage {
                conversation: id,
                kind: MessageType::Text,
                content: MessageContent {
                    text: Some(format!("Reminder: {}", action.body.title)),
                    ..Default::default()
                },
                sender: Some(caller.identity.clone()),
                sender_display_name: None,
                metadata,
                audience: action.audience.clone(),
            })
            .await?)
    }
}

fn action_not_found() -> Error {
    Error::NotFound("The action does not exist.".into())
}

/// Hours a survey or job stays open by default (docs: 24 h); polls 720 h.
fn default_due(kind: ActionKind) -> Option<i64> {
    match kind {
        ActionKind::Survey | ActionKind::Job => Some(24),
        ActionKind::Poll => Some(720),
        _ => None,
    }
}

fn due_after(now: OffsetDateTime, hours: f64) -> Result<OffsetDateTime> {
    // Ten years at most; not a number or not positive is refused.
    if !hours.is_finite() || hours <= 0.0 || hours > 87_600.0 {
        return Err(Error::invalid(
            "dueDate must be a positive number of hours (at most 87600).",
            "dueDate",
        ));
    }
    Ok(now + Duration::seconds_f64(hours * 3600.0))
}

/// The message text of an action (ACS shows it as a text message): its title; a media action
/// without a caption shows its type (`Image`, `Album`, ...).
fn summary(body: &ActionBody) -> String {
    if body.title.trim().is_empty() {
        body.kind.as_str().to_owned()
    } else {
        body.title.clone()
    }
}

fn check_text(text: &str, max: usize, field: &str) -> Result<()> {
    if text.trim().is_empty() {
        return Err(Error::invalid(format!("{field} must not be empty."), field));
    }
    if text.chars().count() > max {
        return Err(Error::invalid(
            format!("{field} is longer than {max} characters."),
            field,
        ));
    }
    Ok(())
}

fn check_optional_text(text: Option<String>, field: &str) -> Result<Option<String>> {
    match text {
        Some(t) if !t.trim().is_empty() => {
            check_text(&t, MAX_TEXT_CHARS, field)?;
            Ok(Some(t))
        }
        _ => Ok(None),
    }
}

/// Validates (and completes) an action body.
fn check_body(body: &mut ActionBody) -> Result<()> {
    match body.kind {
        ActionKind::Custom => {
            let package = body
                .package
                .as_deref()
                .unwrap_or_default()
                .trim()
                .to_owned();
            check_text(&package, 256, "id")?;
            if body.title.trim().is_empty() {
                body.title = package.clone();
            }
            body.package = Some(package);
        }
        _ => body.package = None,
    }
    let title_field = if body.kind == ActionKind::Poll {
        "question"
    } else {
        "title"
    };
    if body.kind.is_media() {
        // The caption is optional; the one mediaResource is required (resolved by the caller).
        if body.title.chars().count() > MAX_TEXT_CHARS {
            return Err(Error::invalid(
                format!("caption is longer than {MAX_TEXT_CHARS} characters."),
                "caption",
            ));
        }
        body.title = body.title.trim().to_owned();
        if body.media.len() != 1 || body.media[0].trim().is_empty() {
            return Err(Error::invalid(
                "mediaResource (from POST /media) is required.",
                "mediaResource",
            ));
        }
    } else {
        check_text(&body.title, MAX_TEXT_CHARS, title_field)?;
    }
    match body.kind {
        ActionKind::Announcement => {
            let message = body.message.as_deref().unwrap_or_default();
            check_text(message, MAX_TEXT_CHARS, "message")?;
        }
        ActionKind::Poll => {
            let choices = body.questions.first().map_or(0, |q| q.options.len());
            if body.questions.len() != 1 || choices < 2 {
                return Err(Error::invalid(
                    "A poll needs at least two choices.",
                    "choices",
                ));
            }
        }
        ActionKind::Survey => {
            if body.questions.is_empty() {
                return Err(Error::invalid(
                    "A survey needs at least one question.",
                    "questions",
                ));
            }
        }
        ActionKind::Job => {
            if body.assignees.is_empty() {
                return Err(Error::invalid(
                    "A job needs at least one assignee.",
                    "assignedTo",
                ));
            }
            if body.assignees.len() > MAX_ASSIGNEES {
                return Err(Error::invalid(
                    format!("A job has at most {MAX_ASSIGNEES} assignees."),
                    "assignedTo",
                ));
            }
            let mut seen = HashSet::new();
            body.assignees.retain(|a| seen.insert(a.clone()));
        }
        ActionKind::LetsMeet => {
            let meeting = body.meeting.as_ref().ok_or_else(|| {
                Error::invalid("startingTime is required for a meeting.", "startingTime")
            })?;
            if meeting.duration_mins == 0 || meeting.duration_mins > 24 * 60 * 7 {
                return Err(Error::invalid(
                    "duration must be between 1 and 10080 minutes.",
                    "duration",
                ));
            }
            if let Some(place) = &meeting.place {
                check_location(place).ok_or_else(|| bad_location("place"))?;
            }
            if let Some(agenda) = &meeting.agenda {
                if agenda.chars().count() > MAX_TEXT_CHARS {
                    return Err(Error::invalid("agenda is too long.", "agenda"));
                }
            }
            body.questions = vec![Question {
                title: "Attending?".into(),
                kind: QuestionType::SingleOption,
                options: vec!["Yes".into(), "No".into(), "Maybe".into()],
                invisible: false,
            }];
        }
        ActionKind::Custom => {}
        ActionKind::Image
        | ActionKind::Album
        | ActionKind::Audio
        | ActionKind::Document
        | ActionKind::Video => {
            body.questions.clear();
            body.properties.clear();
            body.choice_images.clear();
            body.meeting = None;
            body.message = None;
        }
    }
    if body.kind != ActionKind::Job {
        body.assignees.clear();
    }
    if body.questions.len() > MAX_QUESTIONS {
        return Err(Error::invalid(
            format!("At most {MAX_QUESTIONS} questions."),
            "questions",
        ));
    }
    for question in &body.questions {
        check_text(&question.title, MAX_TEXT_CHARS, "questions.title")?;
        match question.kind {
            QuestionType::SingleOption | QuestionType::MultiOption => {
                if question.options.is_empty() || question.options.len() > MAX_OPTIONS {
                    return Err(Error::invalid(
                        format!(
                            "An option question needs between 1 and {MAX_OPTIONS} options ({}).",
                            question.title
                        ),
                        "questions.options",
                    ));
                }
                for option in &question.options {
                    check_text(option, MAX_TEXT_CHARS, "options.title")?;
                }
            }
            _ => {
                if !question.options.is_empty() {
                    return Err(Error::invalid(
                        format!("Only option questions have options ({}).", question.title),
                        "questions.options",
                    ));
                }
            }
        }
    }
    if body.properties.len() > MAX_PROPERTIES {
        return Err(Error::invalid(
            format!("At most {MAX_PROPERTIES} properties."),
            "properties",
        ));
    }
    for property in &mut body.properties {
        check_text(&property.name, 256, "properties.name")?;
        let kind = PROPERTY_TYPES
            .iter()
            .find(|t| t.eq_ignore_ascii_case(property.kind.trim()))
            .ok_or_else(|| {
                Error::invalid(
                    format!(
                        "The property type must be one of {}.",
                        PROPERTY_TYPES.join(", ")
                    ),
                    "properties.type",
                )
            })?;
        property.kind = (*kind).to_owned();
        if property.value.chars().count() > MAX_MEDIA_CHARS {
            return Err(Error::invalid(
                "A property value is too long.",
                "properties.value",
            ));
        }
    }
    if body.media.len() > MAX_ATTACHMENTS
        || body
            .media
            .iter()
            .any(|m| m.chars().count() > MAX_MEDIA_CHARS)
    {
        return Err(Error::invalid(
            format!("At most {MAX_ATTACHMENTS} media resources of at most {MAX_MEDIA_CHARS} characters."),
            "mediaResources",
        ));
    }
    Ok(())
}

fn bad_location(field: &str) -> Error {
    Error::invalid(
        format!("{field} must be a location {{latitude, longitude, name}} within range."),
        field,
    )
}

fn check_location(location: &Location) -> Option<()> {
    ((-90.0..=90.0).contains(&location.latitude) && (-180.0..=180.0).contains(&location.longitude))
        .then_some(())
}

/// A number given as a JSON number or a numeric string.
fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .filter(|n| n.is_finite())
}

/// A location answer: `{latitude, longitude, name}` or the docs' short `{lt, lg, n}`.
pub fn location(value: &Value) -> Option<Location> {
    let map = value.as_object()?;
    let get = |long: &str, short: &str| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(long) || k.eq_ignore_ascii_case(short))
            .map(|(_, v)| v)
    };
    let location = Location {
        latitude: number(get("latitude", "lt")?)?,
        longitude: number(get("longitude", "lg")?)?,
        name: get("name", "n").and_then(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        }),
    };
    check_location(&location)?;
    Some(location)
}

/// A date: epoch seconds (or milliseconds past 1e11) as a number, or RFC 3339 text.
/// Answers milliseconds since the epoch; `None` for anything else, or a date outside the
/// years 0 to 9999 in UTC (see `model::EARLIEST_UNIX_SECOND`).
pub fn date_millis(value: &Value) -> Option<i64> {
    let rfc3339 = match value {
        Value::String(text) => OffsetDateTime::parse(text.trim(), &Rfc3339).ok(),
        _ => None,
    };
    let millis = match rfc3339 {
        Some(t) => i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()?,
        None => {
            let n = number(value)?;
            // `as` saturates a number far out of range, which the check below then refuses.
            (if n.abs() >= 1e11 { n } else { n * 1000.0 }) as i64
        }
    };
    let earliest = crate::model::EARLIEST_UNIX_SECOND * 1000;
    let latest = crate::model::LATEST_UNIX_SECOND * 1000 + 999;
    (earliest..=latest).contains(&millis).then_some(millis)
}

/// The option chosen by title (case-insensitive) or by index.
fn option_index(question: &Question, value: &Value) -> Option<usize> {
    match value {
        Value::String(text) => question
            .options
            .iter()
            .position(|o| o.trim().eq_ignore_ascii_case(text.trim()))
            .or_else(|| {
                text.trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|i| *i < question.options.len())
            }),
        Value::Number(n) => n
            .as_u64()
            .and_then(|i| usize::try_from(i).ok())
            .filter(|i| *i < question.options.len()),
        _ => None,
    }
}

fn answer_error(index: usize, question: &Question, what: &str) -> Error {
    Error::invalid(
        format!(
            "Answer {} ({}: {}) must be {what}.",
            index + 1,
            question.kind.as_str(),
            question.title
        ),
        "answers",
    )
}

fn text_value(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Validates the answers against the questions, one answer per question in order.
fn check_answers(body: &ActionBody, answers: Option<Vec<Value>>) -> Result<Vec<Answer>> {
    let answers = answers.ok_or_else(|| Error::invalid("answers is required.", "answers"))?;
    if body.questions.is_empty() {
        // A custom package whose questions this server does not know: kept as sent.
        return Ok(answers.into_iter().map(Answer::Raw).collect());
    }
    if answers.len() != body.questions.len() {
        return Err(Error::invalid(
            format!(
                "answers must have one answer per question ({} questions, {} answers).",
                body.questions.len(),
                answers.len()
            ),
            "answers",
        ));
    }
    body.questions
        .iter()
        .zip(answers)
        .enumerate()
        .map(|(i, (question, value))| {
            let err = |what: &str| answer_error(i, question, what);
            Ok(match question.kind {
                QuestionType::SingleOption => Answer::Option(
                    option_index(question, &value).ok_or_else(|| err("one of the options"))?,
                ),
                QuestionType::MultiOption => {
                    let list = match &value {
                        Value::Array(list) => list.clone(),
                        single @ (Value::String(_) | Value::Number(_)) => vec![single.clone()],
                        _ => return Err(err("a list of options")),
                    };
                    let mut chosen = Vec::with_capacity(list.len());
                    for item in &list {
                        let index = option_index(question, item)
                            .ok_or_else(|| err("a list of the options"))?;
                        if chosen.contains(&index) {
                            return Err(err("a list of distinct options"));
                        }
                        chosen.push(index);
                    }
                    if chosen.is_empty() {
                        return Err(err("a non-empty list of options"));
                    }
                    Answer::Options(chosen)
                }
                QuestionType::Text => {
                    let text = text_value(&value).ok_or_else(|| err("text"))?;
                    if text.chars().count() > MAX_TEXT_CHARS {
                        return Err(err(&format!("at most {MAX_TEXT_CHARS} characters")));
                    }
                    Answer::Text(text)
                }
                QuestionType::Numeric => {
                    Answer::Number(number(&value).ok_or_else(|| err("a number"))?)
                }
                QuestionType::Location => Answer::Location(
                    location(&value)
                        .ok_or_else(|| err("a location {latitude, longitude, name}"))?,
                ),
                QuestionType::DateTime => Answer::DateTime(
                    date_millis(&value).ok_or_else(|| err("a date (epoch time or RFC 3339)"))?,
                ),
                QuestionType::Image => match &value {
                    Value::String(s)
                        if !s.trim().is_empty() && s.chars().count() <= MAX_MEDIA_CHARS =>
                    {
                        Answer::Attachment(s.clone())
                    }
                    _ => return Err(err("a media resource")),
                },
                QuestionType::AttachmentList => {
                    let list = value
                        .as_array()
                        .filter(|l| l.len() <= MAX_ATTACHMENTS)
                        .ok_or_else(|| err("a list of media resources"))?;
                    let items = list
                        .iter()
                        .map(|v| match v {
                            Value::String(s)
                                if !s.trim().is_empty() && s.chars().count() <= MAX_MEDIA_CHARS =>
                            {
                                Ok(s.clone())
                            }
                            _ => Err(err("a list of media resources")),
                        })
                        .collect::<Result<Vec<_>>>()?;
                    Answer::Attachments(items)
                }
            })
        })
        .collect()
}

/// Counts per option of each option question, over each responder's latest response.
fn tally(body: &ActionBody, responses: &[ActionResponse]) -> Vec<Vec<u64>> {
    let mut latest: Vec<&ActionResponse> = Vec::new();
    for response in responses {
        if body.multiple_responses {
            latest.push(response);
        } else if let Some(slot) = latest
            .iter_mut()
            .find(|r| r.responder == response.responder)
        {
            *slot = response;
        } else {
            latest.push(response);
        }
    }
    body.questions
        .iter()
        .enumerate()
        .map(|(i, question)| {
            let mut counts = vec![0u64; question.options.len()];
            for response in &latest {
                match response.body.answers.get(i) {
                    Some(Answer::Option(o)) => {
                        if let Some(c) = counts.get_mut(*o) {
                            *c += 1;
                        }
                    }
                    Some(Answer::Options(list)) => {
                        for o in list {
                            if let Some(c) = counts.get_mut(*o) {
                                *c += 1;
                            }
                        }
                    }
                    _ => {}
                }
            }
            counts
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn survey() -> ActionBody {
        ActionBody {
            kind: ActionKind::Survey,
            package: None,
            title: "t".into(),
            message: None,
            questions: vec![
                Question {
                    title: "s".into(),
                    kind: QuestionType::SingleOption,
                    options: vec!["A".into(), "B".into()],
                    invisible: false,
                },
                Question {
                    title: "m".into(),
                    kind: QuestionType::MultiOption,
                    options: vec!["X".into(), "Y".into(), "Z".into()],
                    invisible: false,
                },
                Question {
                    title: "d".into(),
                    kind: QuestionType::DateTime,
                    options: vec![],
                    invisible: false,
                },
            ],
            choice_images: vec![],
            anonymous: false,
            sender_only: false,
            multiple_responses: false,
            due: None,
            assignees: vec![],
            properties: vec![],
            media: vec![],
            meeting: None,
        }
    }

    #[test]
    fn answers_are_checked_against_questions() {
        let body = survey();
        let ok = check_answers(
            &body,
            Some(vec![json!("b"), json!(["X", 2]), json!(1500377471)]),
        )
        .expect("valid");
        assert_eq!(
            ok,
            vec![
                Answer::Option(1),
                Answer::Options(vec![0, 2]),
                Answer::DateTime(1_500_377_471_000)
            ]
        );
        for bad in [
            vec![json!("C"), json!(["X"]), json!(1)],
            vec![json!(2), json!(["X"]), json!(1)],
            vec![json!("A"), json!(["X", "X"]), json!(1)],
            vec![json!("A"), json!([]), json!(1)],
            vec![json!("A"), json!(["X"]), json!("yesterday")],
            vec![json!("A"), json!(["X"])],
        ] {
            assert!(check_answers(&body, Some(bad.clone())).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn kinds_parse() {
        assert_eq!(ActionKind::parse("let's meet"), Some(ActionKind::LetsMeet));
        assert_eq!(ActionKind::parse("SURVEY"), Some(ActionKind::Survey));
        assert_eq!(QuestionType::parse("Date"), Some(QuestionType::DateTime));
        assert!(location(&json!({"lt": 1, "lg": 2, "n": "x"})).is_some());
        assert!(location(&json!({"latitude": 100, "longitude": 2})).is_none());
    }
}
