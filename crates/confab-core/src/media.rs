//! The media rules: what may be uploaded (content types per kind, size limits, albums), how an
//! upload streams into the blob store, who may fetch a file back, and the `mediaResource`
//! string that names uploaded files in later actions.
//!
//! * A file's kind comes from its declared content type (table below); anything else is
//!   refused (415). A declared image type must match the file's magic bytes (415 otherwise).
//! * Each kind has a size limit ([`MediaLimits`]); the upload stops as soon as it passes it
//!   (413).
//! * Several files in one upload are an album: images only, at most
//!   [`MediaLimits::album_images`].
//! * The bytes go to the blob store under `<2 hex>/<id>`, the id 128 random bits; the record
//!   (uploader, kind, type, size, SHA-256) goes to the store only once every file of the upload
//!   is in, so a failed upload leaves no record (and its blobs are deleted).
//! * Access: the uploader, and whoever can read a live message carrying the file in a live
//!   conversation (participants; subscribers the message reaches). Everyone else gets "not
//!   found", exactly as for an unknown id.
//!
//! The actions that post media to a group (`actions.rs`: Image, Album, Audio, Document, Video)
//! call [`Core::media_for_action`] to resolve and check a `mediaResource`; the store links the
//! files to the action's message in the same transaction that writes it
//! (`NewAction::media`). [`Core::attach_media`] links files to a message already committed.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::connector::require_permission;
use crate::error::Error;
use crate::identity::Caller;
use crate::ids::{ConversationId, MessageId};
use crate::ports::{BlobError, BlobReader, BlobWriter, MediaKind, MediaRecord};
use crate::ratelimit::Operation;
use crate::Core;

const MIB: u64 = 1024 * 1024;

/// Size limits of uploads, per kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaLimits {
    pub image: u64,
    pub audio: u64,
    pub video: u64,
    pub document: u64,
    /// Images one album may hold.
    pub album_images: usize,
}

impl Default for MediaLimits {
    fn default() -> Self {
        Self {
            image: 10 * MIB,
            audio: 25 * MIB,
            video: 100 * MIB,
            document: 50 * MIB,
            album_images: 10,
        }
    }
}

impl MediaLimits {
    pub fn for_kind(&self, kind: MediaKind) -> u64 {
        match kind {
            MediaKind::Image => self.image,
            MediaKind::Audio => self.audio,
            MediaKind::Video => self.video,
            MediaKind::Document => self.document,
        }
    }

    /// The most one upload request may carry in files: the largest single file, or a full
    /// album. (The face adds room for the multipart framing.)
    pub fn largest_upload(&self) -> u64 {
        let album = self.image.saturating_mul(self.album_images as u64);
        self.image
            .max(self.audio)
            .max(self.video)
            .max(self.document)
            .max(album)
    }
}

/// Allowed content types: (declared type, normalised type, kind). Aliases clients send map to
/// one normalised type.
const CONTENT_TYPES: &[(&str, &str, MediaKind)] = &[
    ("image/jpeg", "image/jpeg", MediaKind::Image),
    ("image/jpg", "image/jpeg", MediaKind::Image),
    ("image/pjpeg", "image/jpeg", MediaKind::Image),
    ("image/png", "image/png", MediaKind::Image),
    ("image/gif", "image/gif", MediaKind::Image),
    ("image/webp", "image/webp", MediaKind::Image),
    ("image/heic", "image/heic", MediaKind::Image),
    ("image/heif", "image/heif", MediaKind::Image),
    ("audio/mpeg", "audio/mpeg", MediaKind::Audio),
    ("audio/mp3", "audio/mpeg", MediaKind::Audio),
    ("audio/mp4", "audio/mp4", MediaKind::Audio),
    ("audio/x-m4a", "audio/mp4", MediaKind::Audio),
    ("audio/aac", "audio/aac", MediaKind::Audio),
    ("audio/ogg", "audio/ogg", MediaKind::Audio),
    ("audio/wav", "audio/wav", MediaKind::Audio),
    ("audio/x-wav", "audio/wav", MediaKind::Audio),
    ("audio/wave", "audio/wav", MediaKind::Audio),
    ("audio/webm", "audio/webm", MediaKind::Audio),
    ("video/mp4", "video/mp4", MediaKind::Video),
    ("video/quicktime", "video/quicktime", MediaKind::Video),
    ("video/webm", "video/webm", MediaKind::Video),
    ("video/3gpp", "video/3gpp", MediaKind::Video),
    ("application/pdf", "application/pdf", MediaKind::Document),
    (
        "application/msword",
        "application/msword",
        MediaKind::Document,
    ),
    (
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        MediaKind::Document,
    ),
    (
        "application/vnd.ms-excel",
        "application/vnd.ms-excel",
        MediaKind::Document,
    ),
    (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        MediaKind::Document,
    ),
    (
        "application/vnd.ms-powerpoint",
        "application/vnd.ms-powerpoint",
        MediaKind::Document,
    ),
    (
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        MediaKind::Document,
    ),
    ("application/rtf", "application/rtf", MediaKind::Document),
    ("text/plain", "text/plain", MediaKind::Document),
    ("text/csv", "text/csv", MediaKind::Document),
    ("application/zip", "application/zip", MediaKind::Document),
];

/// The normalised content type and kind of a declared `Content-Type` (parameters such as
/// `; charset=utf-8` ignored); `None` if it is not allowed.
pub fn classify(content_type: &str) -> Option<(&'static str, MediaKind)> {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    CONTENT_TYPES
        .iter()
        .find(|(declared, _, _)| *declared == essence)
        .map(|(_, normalised, kind)| (*normalised, *kind))
}

/// Bytes of a file's start that image sniffing looks at.
const SNIFF_LEN: usize = 12;

/// Whether `head` (the first bytes of a file, up to [`SNIFF_LEN`]) starts like an image of
/// the normalised type `content_type`.
pub fn sniff_image(content_type: &str, head: &[u8]) -> bool {
    match content_type {
        "image/jpeg" => head.starts_with(&[0xFF, 0xD8, 0xFF]),
        "image/png" => head.starts_with(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]),
        "image/gif" => head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a"),
        "image/webp" => head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP",
        "image/heic" | "image/heif" => {
            head.len() >= 12
                && &head[4..8] == b"ftyp"
                && matches!(
                    &head[8..12],
                    b"heic" | b"heix" | b"hevc" | b"hevx" | b"heim" | b"heis" | b"mif1" | b"msf1"
                )
        }
        _ => false,
    }
}

/// Why an upload was refused.
#[derive(Debug, PartialEq)]
pub enum MediaError {
    /// The content type is missing, not allowed, or not what the bytes are (415).
    Unsupported(String),
    /// Any other failure (`TooLarge` for 413, `Invalid` for 400, ...).
    Core(Error),
}

impl From<Error> for MediaError {
    fn from(err: Error) -> Self {
        MediaError::Core(err)
    }
}

impl From<BlobError> for MediaError {
    fn from(err: BlobError) -> Self {
        MediaError::Core(blob_error(err))
    }
}

fn blob_error(err: BlobError) -> Error {
    Error::Unavailable(format!("media storage failed: {err}"))
}

/// The blob key of a media id: `<first 2 hex>/<id>` (spreads files over 256 directories).
pub fn blob_key(id: &str) -> String {
    format!("{}/{id}", id.get(..2).unwrap_or("00"))
}

/// Whether `text` is a media id as the core makes them (32 lower-case hex digits).
pub fn is_media_id(text: &str) -> bool {
    text.len() == 32 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// One file of an upload, streaming into the blob store. Feed it with [`MediaUpload::write`],
/// then [`MediaUpload::finish`] (or [`MediaUpload::abort`]).
pub struct MediaUpload {
    record: MediaRecord,
    limit: u64,
    hasher: Sha256,
    head: Vec<u8>,
    sniffed: bool,
    writer: Option<Box<dyn BlobWriter>>,
}

impl MediaUpload {
    pub fn kind(&self) -> MediaKind {
        self.record.kind
    }

    /// Appends a chunk: 413 (`TooLarge`) as soon as the file passes its kind's limit, 415 as
    /// soon as an image's first bytes are not of its declared type.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), MediaError> {
        let size = self.record.size.saturating_add(chunk.len() as u64);
        if size > self.limit {
            return Err(MediaError::Core(Error::TooLarge(format!(
                "The {} is larger than {} bytes.",
                self.record.kind.as_str(),
                self.limit
            ))));
        }
        if !self.sniffed {
            let take = (SNIFF_LEN - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
            if self.head.len() >= SNIFF_LEN {
                self.check_head()?;
            }
        }
        self.record.size = size;
        self.hasher.update(chunk);
        if let Some(writer) = self.writer.as_mut() {
            writer.write(chunk).await?;
        }
        Ok(())
    }

    fn check_head(&mut self) -> Result<(), MediaError> {
        self.sniffed = true;
        if self.record.kind == MediaKind::Image
            && !sniff_image(&self.record.content_type, &self.head)
        {
            return Err(MediaError::Unsupported(format!(
                "The file is not a {} image.",
                self.record.content_type
            )));
        }
        Ok(())
    }

    /// Commits the blob; answers the record to store (see [`Core::record_media`]).
    pub async fn finish(mut self) -> Result<MediaRecord, MediaError> {
        if self.record.size == 0 {
            self.abort_writer().await;
            return Err(MediaError::Core(Error::bad_request("The file is empty.")));
        }
        if !self.sniffed {
            if let Err(err) = self.check_head() {
                self.abort_writer().await;
                return Err(err);
            }
        }
        self.record.sha256 = hex(&self.hasher.finalize_reset());
        if let Some(writer) = self.writer.take() {
            writer.commit().await?;
        }
        Ok(self.record)
    }

    /// Throws the partial file away.
    pub async fn abort(mut self) {
        self.abort_writer().await;
    }

    async fn abort_writer(&mut self) {
        if let Some(writer) = self.writer.take() {
            writer.abort().await;
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xF)] as char);
    }
    out
}

impl Core {
    pub fn media_limits(&self) -> &MediaLimits {
        &self.media_limits
    }

    /// Starts one file of an upload. `files_before` is how many files of the same request came
    /// before it: a second file makes the upload an album (images only, at most
    /// `album_images`), and `first_kind` is the first file's kind.
    pub async fn start_upload(
        &self,
        caller: &Caller,
        content_type: Option<&str>,
        file_name: Option<&str>,
        files_before: usize,
        first_kind: Option<MediaKind>,
    ) -> Result<MediaUpload, MediaError> {
        let declared = content_type.map(str::trim).filter(|t| !t.is_empty());
        let Some(declared) = declared else {
            return Err(MediaError::Unsupported(
                "The file part has no Content-Type.".into(),
            ));
        };
        let Some((content_type, kind)) = classify(declared) else {
            return Err(MediaError::Unsupported(format!(
                "Files of type {declared:?} are not accepted."
            )));
        };
        if files_before == 0 {
            self.throttle_connector_call(caller, Operation::Other)?;
            require_permission(caller, "media", "uploading media")?;
        } else {
            if kind != MediaKind::Image || first_kind.is_some_and(|k| k != MediaKind::Image) {
                return Err(MediaError::Unsupported(
                    "An album (several files in one upload) holds images only.".into(),
                ));
            }
            if files_before >= self.media_limits.album_images {
                return Err(MediaError::Core(Error::bad_request(format!(
                    "An album holds at most {} images.",
                    self.media_limits.album_images
                ))));
            }
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        let writer = self.blobs.put(&blob_key(&id), content_type).await?;
        let file_name = file_name
            .map(|n| n.chars().filter(|c| !c.is_control()).take(255).collect())
            .filter(|n: &String| !n.is_empty());
        Ok(MediaUpload {
            record: MediaRecord {
                id,
                uploader: caller.identity.clone(),
                kind,
                content_type: content_type.to_owned(),
                file_name,
                size: 0,
                sha256: String::new(),
                created_on: self.clock.now(),
            },
            limit: self.media_limits.for_kind(kind),
            hasher: Sha256::new(),
            head: Vec::with_capacity(SNIFF_LEN),
            sniffed: false,
            writer: Some(writer),
        })
    }

    /// Stores the records of a finished upload (every file's blob is committed already), all
    /// in one transaction. On a failure the blobs are deleted.
    pub async fn record_media(&self, records: &[MediaRecord]) -> Result<(), Error> {
        if let Err(err) = self.store.put_media(records.to_vec()).await {
            self.discard_media(records).await;
            return Err(err.into());
        }
        Ok(())
    }

    /// Deletes the blobs of files whose upload failed (best effort: a failure is logged).
    pub async fn discard_media(&self, records: &[MediaRecord]) {
        for record in records {
            if let Err(err) = self.blobs.delete(&blob_key(&record.id)).await {
                tracing::warn!(media = %record.id, error = %err, "deleting an orphaned blob failed");
            }
        }
    }

    /// A media record, if `caller` may see it: the uploader, or someone a message carrying it
    /// reaches. `NotFound` otherwise, unknown ids alike.
    pub async fn media_record(&self, caller: &Caller, id: &str) -> Result<MediaRecord, Error> {
        let not_found = || Error::NotFound("The media resource does not exist.".into());
        if !is_media_id(id) {
            return Err(not_found());
        }
        let record = self.store.get_media(id).await?.ok_or_else(not_found)?;
        if record.uploader == caller.identity
            || self.store.media_visible_to(id, &caller.identity).await?
        {
            Ok(record)
        } else {
            Err(not_found())
        }
    }

    /// A file's record and bytes, if `caller` may see it (see [`Core::media_record`]).
    pub async fn fetch_media(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<(MediaRecord, Box<dyn BlobReader>), Error> {
        let record = self.media_record(caller, id).await?;
        match self.blobs.get(&blob_key(id)).await.map_err(blob_error)? {
            Some(reader) => Ok((record, reader)),
            None => {
                tracing::error!(media = %id, "a media record has no blob");
                Err(Error::NotFound("The media resource does not exist.".into()))
            }
        }
    }

    /// For the actions that post media: resolves a `mediaResource` (as `POST /media` answered
    /// it, or a bare media id or URL) to its records, checking that `caller` may use each one
    /// (uploader or already visible to it) and that the kinds fit `action` (`Image`, `Album`,
    /// `Audio`, `Video`, `Document`, case-insensitive). 400 for a malformed resource or a
    /// kind that does not fit; 404 for files the caller cannot see.
    pub async fn media_for_action(
        &self,
        caller: &Caller,
        resource: &str,
        action: &str,
    ) -> Result<Vec<MediaRecord>, Error> {
        let ids = parse_media_resource(resource)
            .ok_or_else(|| Error::invalid("The mediaResource is not valid.", "mediaResource"))?;
        let mut records = Vec::with_capacity(ids.len());
        for id in &ids {
            records.push(self.media_record(caller, id).await?);
        }
        let action = action.to_ascii_lowercase();
        let fits = match action.as_str() {
            "album" => {
                !records.is_empty()
                    && records.len() <= self.media_limits.album_images
                    && records.iter().all(|r| r.kind == MediaKind::Image)
            }
            kind => {
                records.len() == 1 && MediaKind::parse(kind).is_some_and(|k| records[0].kind == k)
            }
        };
        if !fits {
            return Err(Error::invalid(
                "The media does not fit the action type.",
                "mediaResource",
            ));
        }
        Ok(records)
    }

    /// Records that `message` (committed) carries `media`, so that its readers may fetch them.
    /// (Media actions do not need it: their links are written with the message.)
    pub async fn attach_media(
        &self,
        conversation: ConversationId,
        message: MessageId,
        media: &[MediaRecord],
    ) -> Result<(), Error> {
        let ids = media.iter().map(|m| m.id.clone()).collect();
        self.store
            .link_message_media(conversation, message, ids)
            .await?;
        Ok(())
    }
}

/// The JSON inside a `mediaResource` (base64): after Kaizala's own (`ActionType`, `Files` with
/// `Id`, `Name`, `Size`, `Url`), plus `ContentType`.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ResourceJson {
    action_type: String,
    files: Vec<ResourceFile>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ResourceFile {
    id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    url: String,
    #[serde(default)]
    content_type: String,
}

/// The `mediaResource` string for uploaded files: base64 of `{ActionType, Files: [{Id, Name,
/// Size, Url, ContentType}]}`, `Url` being `<media_base>/<id>` (where the file is served).
/// `ActionType` is `Album` for several files, else the kind (`Image`, `Audio`, ...).
pub fn media_resource(records: &[MediaRecord], media_base: &str) -> String {
    let action_type = if records.len() > 1 {
        "Album".to_owned()
    } else {
        records
            .first()
            .map_or("Document", |r| match r.kind {
                MediaKind::Image => "Image",
                MediaKind::Audio => "Audio",
                MediaKind::Video => "Video",
                MediaKind::Document => "Document",
            })
            .to_owned()
    };
    let json = ResourceJson {
        action_type,
        files: records
            .iter()
            .map(|r| ResourceFile {
                id: r.id.clone(),
                name: r.file_name.clone(),
                size: r.size,
                url: format!("{media_base}/{}", r.id),
                content_type: r.content_type.clone(),
            })
            .collect(),
    };
    let text = serde_json::to_string(&json).unwrap_or_default();
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// The media ids a `mediaResource` names: the base64 JSON [`media_resource`] makes, a media
/// URL (`.../media/<id>`) or a bare id. `None` if it is none of these.
pub fn parse_media_resource(resource: &str) -> Option<Vec<String>> {
    let text = resource.trim();
    let last = text.rsplit('/').next().unwrap_or(text);
    if is_media_id(last) {
        return Some(vec![last.to_owned()]);
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(text))
        .ok()?;
    let json: ResourceJson = serde_json::from_slice(&bytes).ok()?;
    let ids: Vec<String> = json.files.into_iter().map(|f| f.id).collect();
    (!ids.is_empty() && ids.iter().all(|id| is_media_id(id))).then_some(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_classify_with_aliases_and_parameters() {
        assert_eq!(
            classify("Image/JPG"),
            Some(("image/jpeg", MediaKind::Image))
        );
        assert_eq!(
            classify("text/plain; charset=utf-8"),
            Some(("text/plain", MediaKind::Document))
        );
        assert_eq!(
            classify("video/3gpp"),
            Some(("video/3gpp", MediaKind::Video))
        );
        assert_eq!(classify("application/x-msdownload"), None);
        assert_eq!(classify(""), None);
    }

    #[test]
    fn images_are_sniffed() {
        assert!(sniff_image("image/png", b"\x89PNG\r\n\x1a\n\0\0\0\r"));
        assert!(!sniff_image("image/png", b"GIF89a......"));
        assert!(sniff_image("image/jpeg", b"\xff\xd8\xff\xe0"));
        assert!(sniff_image("image/webp", b"RIFF\0\0\0\0WEBP"));
        assert!(sniff_image("image/heic", b"\0\0\0\x18ftypheic"));
        assert!(!sniff_image("image/gif", b"GIF"));
    }

    #[test]
    fn resources_round_trip() {
        let record = MediaRecord {
            id: "0123456789abcdef0123456789abcdef".into(),
            uploader: crate::ids::IdentityId::phone("+14255550100").expect("phone"),
            kind: MediaKind::Image,
            content_type: "image/png".into(),
            file_name: Some("a.png".into()),
            size: 4,
            sha256: String::new(),
            created_on: time::OffsetDateTime::UNIX_EPOCH,
        };
        let resource = media_resource(std::slice::from_ref(&record), "https://h/v1/media");
        assert_eq!(
            parse_media_resource(&resource),
            Some(vec![record.id.clone()])
        );
        assert_eq!(
            parse_media_resource(&format!("https://h/v1/media/{}", record.id)),
            Some(vec![record.id.clone()])
        );
        assert_eq!(parse_media_resource("nonsense"), None);
        assert_eq!(blob_key(&record.id), format!("01/{}", record.id));
    }
}
