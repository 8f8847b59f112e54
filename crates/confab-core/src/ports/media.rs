//! The port of media metadata: one record per uploaded file (the bytes are in the blob store,
//! under a key derived from the record's random id), and the links from messages to the media
//! they carry, which decide who besides the uploader may fetch a file.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreResult;
use crate::ids::{ConversationId, IdentityId, MessageId};

/// What kind of file an upload is, decided by its declared content type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MediaKind {
    Image,
    Audio,
    Video,
    Document,
}

impl MediaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
            MediaKind::Document => "document",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "image" => Some(MediaKind::Image),
            "audio" => Some(MediaKind::Audio),
            "video" => Some(MediaKind::Video),
            "document" => Some(MediaKind::Document),
            _ => None,
        }
    }
}

/// An uploaded file.
#[derive(Clone, Debug, PartialEq)]
pub struct MediaRecord {
    /// 32 lower-case hex digits, random (128 bits): knowing one id tells nothing of another.
    pub id: String,
    pub uploader: IdentityId,
    pub kind: MediaKind,
    /// Normalised (lower case, no parameters), one of the allowed types of `kind`.
    pub content_type: String,
    /// The file name the client gave, if any (kept for display only).
    pub file_name: Option<String>,
    pub size: u64,
    /// SHA-256 of the bytes, lower-case hex.
    pub sha256: String,
    pub created_on: OffsetDateTime,
}

/// Storage of media records and message–media links.
#[async_trait]
pub trait MediaStore: Send + Sync + 'static {
    /// Records the files of one upload, all or none (`Conflict` if an id exists).
    async fn put_media(&self, records: Vec<MediaRecord>) -> StoreResult<()>;
    async fn get_media(&self, id: &str) -> StoreResult<Option<MediaRecord>>;
    /// Links media to a message (the actions that post media call this once the message is
    /// committed). Linking again is a no-op.
    async fn link_message_media(
        &self,
        conversation: ConversationId,
        message: MessageId,
        media: Vec<String>,
    ) -> StoreResult<()>;
    /// Whether `identity` is a participant or subscriber of a live conversation in which a
    /// message (not deleted) carries the media `id`.
    async fn media_visible_to(&self, id: &str, identity: &IdentityId) -> StoreResult<bool>;
}
