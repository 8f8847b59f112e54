//! `POST /media` (upload: one file, or several images for an album) and `GET /media/{id}`
//! (serving a file back to those allowed to see it). The rules are the core's (`media.rs`);
//! here: multipart parsing, streaming parts into the core, and the HTTP of serving.

use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use confab_acs::declares_more_than;
use confab_core::media::{media_resource, MediaError, MediaUpload};
use confab_core::ports::{BlobReader, MediaKind, MediaRecord};
use confab_core::Error;
use serde_json::json;

use crate::error::{KaizalaError, KzResult};
use crate::extract::{KzCall, KzState};
use crate::media_body_limit;

fn media_error(err: MediaError) -> KaizalaError {
    match err {
        MediaError::Unsupported(message) => KaizalaError::UnsupportedMedia(message),
        MediaError::Core(err) => KaizalaError::Core(err),
    }
}

fn upload_too_large() -> KaizalaError {
    KaizalaError::Core(Error::TooLarge("The upload is too large.".into()))
}

fn multipart_error(err: axum::extract::multipart::MultipartError) -> KaizalaError {
    if err.status() == StatusCode::PAYLOAD_TOO_LARGE {
        upload_too_large()
    } else {
        KaizalaError::bad_request(format!(
            "The multipart body is malformed: {}",
            err.body_text()
        ))
    }
}

/// `POST /media`: `multipart/form-data`, each part with a file name or a Content-Type is a
/// file (the field name does not matter; parts without either are ignored). Answers
/// `{"mediaResource": "..."}`: one string naming every file of the upload.
pub async fn upload(
    State(state): State<KzState>,
    call: KzCall,
    request: Request,
) -> KzResult<Response> {
    let is_multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/form-data")
        });
    if !is_multipart {
        return Err(KaizalaError::UnsupportedMedia(
            "Upload media as multipart/form-data.".into(),
        ));
    }
    if declares_more_than(request.headers(), media_body_limit(&state.core)) {
        return Err(upload_too_large());
    }
    let mut multipart = Multipart::from_request(request, &state)
        .await
        .map_err(|rejection| KaizalaError::bad_request(rejection.body_text()))?;
    let core = &state.core;
    let mut records: Vec<MediaRecord> = Vec::new();
    let outcome = read_parts(&state, &call, &mut multipart, &mut records).await;
    if let Err(err) = outcome {
        core.discard_media(&records).await;
        return Err(err);
    }
    if records.is_empty() {
        return Err(KaizalaError::bad_request(
            "The request has no file part (a part with a filename and a Content-Type).",
        ));
    }
    core.record_media(&records).await?;
    let base = format!("{}/v1/media", state.config.endpoint_url);
    Ok(Json(json!({ "mediaResource": media_resource(&records, &base) })).into_response())
}

/// Streams every file part into the core; the finished ones go to `records` (so that the
/// caller can discard them if a later part fails).
async fn read_parts(
    state: &KzState,
    call: &KzCall,
    multipart: &mut Multipart,
    records: &mut Vec<MediaRecord>,
) -> KzResult<()> {
    let mut first_kind: Option<MediaKind> = None;
    while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
        if field.file_name().is_none() && field.content_type().is_none() {
            continue;
        }
        let content_type = field.content_type().map(str::to_owned);
        let file_name = field.file_name().map(str::to_owned);
        let mut upload = state
            .core
            .start_upload(
                &call.caller,
                content_type.as_deref(),
                file_name.as_deref(),
                records.len(),
                first_kind,
            )
            .await
            .map_err(media_error)?;
        if let Err(err) = copy_field(&mut field, &mut upload).await {
            upload.abort().await;
            return Err(err);
        }
        let record = upload.finish().await.map_err(media_error)?;
        first_kind.get_or_insert(record.kind);
        records.push(record);
    }
    Ok(())
}

async fn copy_field(
    field: &mut axum::extract::multipart::Field<'_>,
    upload: &mut MediaUpload,
) -> KzResult<()> {
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        upload.write(&chunk).await.map_err(media_error)?;
    }
    Ok(())
}

/// `GET /media/{id}` (and HEAD): the file, to its uploader and to those a message carrying it
/// reaches; 404 for everyone else, as for an unknown id. `If-None-Match` with the ETag answers
/// 304.
pub async fn serve(
    State(state): State<KzState>,
    call: KzCall,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> KzResult<Response> {
    let etag = |record: &MediaRecord| format!("\"{}\"", record.sha256);
    let if_none_match = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(tags) = &if_none_match {
        let record = state.core.media_record(&call.caller, &id).await?;
        let tag = etag(&record);
        if tags.split(',').any(|t| t.trim() == tag || t.trim() == "*") {
            let mut response = StatusCode::NOT_MODIFIED.into_response();
            set_headers(response.headers_mut(), &record, &tag, None);
            return Ok(response);
        }
    }
    let (record, reader) = state.core.fetch_media(&call.caller, &id).await?;
    let tag = etag(&record);
    let size = reader.size();
    let mut response = Response::new(Body::from_stream(chunks(reader)));
    set_headers(response.headers_mut(), &record, &tag, Some(size));
    Ok(response)
}

fn set_headers(headers: &mut HeaderMap, record: &MediaRecord, etag: &str, size: Option<u64>) {
    if let Ok(value) = HeaderValue::from_str(&record.content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    if let Some(size) = size {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    }
    if let Ok(value) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

/// A blob's chunks as a body stream. A read error mid-way ends the body early (the client sees
/// a short body against the Content-Length).
fn chunks(
    reader: Box<dyn BlobReader>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    futures_util::stream::unfold(Some(reader), |reader| async move {
        let mut reader = reader?;
        match reader.next_chunk().await {
            Ok(Some(chunk)) => Some((Ok(chunk), Some(reader))),
            Ok(None) => None,
            Err(err) => {
                tracing::error!(error = %err, "reading a media blob failed");
                Some((Err(std::io::Error::other(err.to_string())), None))
            }
        }
    })
}
