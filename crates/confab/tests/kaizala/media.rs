//! `POST /v1/media` and `GET /v1/media/{id}`: uploads (one file, albums, documents), content
//! types and size limits (415, 413), serving back to the uploader only (404 to others), and
//! files surviving a restart.

use base64::Engine as _;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::support::{number, Kz, Resp, TestServer};

const BOUNDARY: &str = "confab-test-boundary-7d3a";

/// A PNG as far as sniffing goes: the signature, then filler.
fn png(len: usize) -> Vec<u8> {
    let mut data = b"\x89PNG\r\n\x1a\n".to_vec();
    data.extend((0..len.saturating_sub(8)).map(|i| (i % 251) as u8));
    data
}

fn jpeg(len: usize) -> Vec<u8> {
    let mut data = vec![0xFF, 0xD8, 0xFF, 0xE0];
    data.extend((0..len.saturating_sub(4)).map(|i| (i * 7 % 256) as u8));
    data
}

struct Part<'a> {
    name: &'a str,
    file_name: Option<&'a str>,
    content_type: Option<&'a str>,
    data: Vec<u8>,
}

fn file<'a>(file_name: &'a str, content_type: &'a str, data: Vec<u8>) -> Part<'a> {
    Part {
        name: "files",
        file_name: Some(file_name),
        content_type: Some(content_type),
        data,
    }
}

fn multipart(parts: &[Part<'_>]) -> Vec<u8> {
    let mut body = Vec::new();
    for part in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        let mut disposition = format!("Content-Disposition: form-data; name=\"{}\"", part.name);
        if let Some(name) = part.file_name {
            disposition.push_str(&format!("; filename=\"{name}\""));
        }
        body.extend_from_slice(disposition.as_bytes());
        body.extend_from_slice(b"\r\n");
        if let Some(content_type) = part.content_type {
            body.extend_from_slice(format!("Content-Type: {content_type}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(&part.data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

async fn upload_raw(kz: &Kz, token: Option<&str>, content_type: &str, body: Vec<u8>) -> Resp {
    let mut request = kz
        .http
        .request(Method::POST, format!("{}/v1/media", kz.base))
        .header("content-type", content_type)
        .body(body);
    if let Some(token) = token {
        request = request.header("accessToken", token);
    }
    Resp::read(request.send().await.expect("send")).await
}

async fn upload(kz: &Kz, parts: &[Part<'_>]) -> Resp {
    upload_raw(
        kz,
        Some(&kz.token),
        &format!("multipart/form-data; boundary={BOUNDARY}"),
        multipart(parts),
    )
    .await
}

/// The JSON inside a `mediaResource`.
fn resource(resp: &Resp) -> Value {
    let text = resp.body["mediaResource"]
        .as_str()
        .unwrap_or_else(|| panic!("no mediaResource: {}", resp.text));
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("base64");
    serde_json::from_slice(&bytes).expect("JSON")
}

fn ids(resp: &Resp) -> Vec<String> {
    resource(resp)["Files"]
        .as_array()
        .expect("Files")
        .iter()
        .map(|f| f["Id"].as_str().expect("Id").to_owned())
        .collect()
}

struct Fetched {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    bytes: Vec<u8>,
}

impl Fetched {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no {name} header"))
    }
}

async fn fetch_with(kz: &Kz, method: Method, url: &str, headers: &[(&str, &str)]) -> Fetched {
    let mut request = kz.http.request(method, url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("send");
    Fetched {
        status: response.status(),
        headers: response.headers().clone(),
        bytes: response.bytes().await.expect("body").to_vec(),
    }
}

async fn fetch(kz: &Kz, id: &str) -> Fetched {
    fetch_with(
        kz,
        Method::GET,
        &format!("{}/v1/media/{id}", kz.base),
        &[("accessToken", &kz.token)],
    )
    .await
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn an_image_is_uploaded_and_served_back_to_its_uploader() {
    let server = TestServer::start().await;
    let kz = server.user(&number(1)).await;
    let data = png(5000);
    let resp = upload(&kz, &[file("cat.png", "image/png", data.clone())])
        .await
        .expect(200);
    let json = resource(&resp);
    assert_eq!(json["ActionType"], "Image");
    let files = json["Files"].as_array().expect("Files");
    assert_eq!(files.len(), 1);
    assert_eq!(files[0]["Name"], "cat.png");
    assert_eq!(files[0]["Size"], 5000);
    assert_eq!(files[0]["ContentType"], "image/png");
    let id = files[0]["Id"].as_str().expect("id");
    assert_eq!(id.len(), 32);
    // The Url is where the file is served.
    let url = files[0]["Url"].as_str().expect("Url");
    assert!(url.ends_with(&format!("/v1/media/{id}")), "{url}");

    let got = fetch(&kz, id).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.bytes, data, "byte-identical");
    assert_eq!(got.header("content-type"), "image/png");
    assert_eq!(got.header("content-length"), "5000");
    assert_eq!(got.header("cache-control"), "private");
    let etag = format!("\"{}\"", sha256_hex(&data));
    assert_eq!(got.header("etag"), etag);

    // HEAD: the headers, no body.
    let head = fetch_with(&kz, Method::HEAD, url, &[("accessToken", &kz.token)]).await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.header("content-length"), "5000");
    assert!(head.bytes.is_empty());

    // A revalidation with the ETag answers 304.
    let again = fetch_with(
        &kz,
        Method::GET,
        url,
        &[("accessToken", &kz.token), ("if-none-match", &etag)],
    )
    .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert!(again.bytes.is_empty());
}

#[tokio::test]
async fn an_album_of_three_images_is_one_resource() {
    let server = TestServer::start().await;
    let kz = server.user(&number(1)).await;
    let images = [png(300), jpeg(400), png(500)];
    let resp = upload(
        &kz,
        &[
            file("a.png", "image/png", images[0].clone()),
            file("b.jpg", "image/jpg", images[1].clone()),
            file("c.png", "image/png", images[2].clone()),
        ],
    )
    .await
    .expect(200);
    assert_eq!(resource(&resp)["ActionType"], "Album");
    let ids = ids(&resp);
    assert_eq!(ids.len(), 3);
    for (id, data) in ids.iter().zip(&images) {
        let got = fetch(&kz, id).await;
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(&got.bytes, data);
    }
    assert_eq!(
        fetch(&kz, &ids[1]).await.header("content-type"),
        "image/jpeg"
    );
}

#[tokio::test]
async fn documents_are_uploaded_with_their_type() {
    let server = TestServer::start().await;
    let kz = server.user(&number(1)).await;
    let pdf = b"%PDF-1.4\n% a tiny document\n%%EOF\n".to_vec();
    let resp = upload(&kz, &[file("report.pdf", "application/pdf", pdf.clone())])
        .await
        .expect(200);
    assert_eq!(resource(&resp)["ActionType"], "Document");
    let got = fetch(&kz, &ids(&resp)[0]).await;
    assert_eq!(got.bytes, pdf);
    assert_eq!(got.header("content-type"), "application/pdf");

    // Parameters of the type are dropped; the field name does not matter.
    let text = b"hello, world\n".to_vec();
    let resp = upload(
        &kz,
        &[Part {
            name: "FileName",
            file_name: Some("notes.txt"),
            content_type: Some("text/plain; charset=utf-8"),
            data: text.clone(),
        }],
    )
    .await
    .expect(200);
    let got = fetch(&kz, &ids(&resp)[0]).await;
    assert_eq!(got.bytes, text);
    assert_eq!(got.header("content-type"), "text/plain");
}

#[tokio::test]
async fn types_that_are_not_accepted_are_415() {
    let server = TestServer::start().await;
    let kz = server.user(&number(1)).await;
    let exe = b"MZ\x90\0 not a document".to_vec();
    let body = upload(
        &kz,
        &[file("x.exe", "application/x-msdownload", exe.clone())],
    )
    .await
    .error(415);
    assert_eq!(body["errorCode"], "UnsupportedMediaType");
    // No Content-Type on the file part.
    upload(
        &kz,
        &[Part {
            name: "files",
            file_name: Some("x.bin"),
            content_type: None,
            data: exe,
        }],
    )
    .await
    .error(415);
    // Not multipart at all.
    upload_raw(&kz, Some(&kz.token), "application/json", b"{}".to_vec())
        .await
        .error(415);
    upload_raw(&kz, Some(&kz.token), "image/png", png(100))
        .await
        .error(415);
    // An album holds images only.
    upload(
        &kz,
        &[
            file("a.png", "image/png", png(100)),
            file("b.pdf", "application/pdf", b"%PDF-1.4".to_vec()),
        ],
    )
    .await
    .error(415);
}

#[tokio::test]
async fn an_image_whose_bytes_are_not_its_type_is_415() {
    let server = TestServer::start().await;
    let kz = server.user(&number(1)).await;
    // A JPEG declared as PNG, a text file declared as PNG, and a file too short to be one.
    upload(&kz, &[file("a.png", "image/png", jpeg(1000))])
        .await
        .error(415);
    upload(
        &kz,
        &[file(
            "a.png",
            "image/png",
            b"<html>not an image</html>".to_vec(),
        )],
    )
    .await
    .error(415);
    upload(&kz, &[file("a.png", "image/png", b"\x89PN".to_vec())])
        .await
        .error(415);
    upload(&kz, &[file("a.gif", "image/gif", png(100))])
        .await
        .error(415);
    // One spoofed image spoils the whole album.
    upload(
        &kz,
        &[
            file("a.png", "image/png", png(100)),
            file("b.png", "image/png", jpeg(100)),
        ],
    )
    .await
    .error(415);
}

#[tokio::test]
async fn uploads_past_the_limits_are_413() {
    let server = TestServer::start_with(|s| {
        s.media_max_image_bytes = 1000;
        s.media_max_document_bytes = 2000;
        s.media_max_album_images = 2;
        s.media_max_audio_bytes = 1000;
        s.media_max_video_bytes = 1000;
    })
    .await;
    let kz = server.user(&number(1)).await;
    upload(&kz, &[file("a.png", "image/png", png(1000))])
        .await
        .expect(200);
    let body = upload(&kz, &[file("a.png", "image/png", png(1001))])
        .await
        .error(413);
    assert_eq!(body["errorCode"], "RequestTooLarge");
    // The limit is per kind: 1500 bytes is too large an image but a fine document.
    upload(&kz, &[file("a.pdf", "application/pdf", vec![b'%'; 1500])])
        .await
        .expect(200);
    upload(&kz, &[file("a.pdf", "application/pdf", vec![b'%'; 2001])])
        .await
        .error(413);
    // An album past its image count.
    upload(
        &kz,
        &[
            file("a.png", "image/png", png(100)),
            file("b.png", "image/png", png(100)),
            file("c.png", "image/png", png(100)),
        ],
    )
    .await
    .error(400);
    // A body far past every limit (and past the route's body limit: the largest upload plus
    // 1 MiB of framing) is 413 as well.
    upload(
        &kz,
        &[file(
            "a.pdf",
            "application/pdf",
            vec![b'%'; 3 * 1024 * 1024],
        )],
    )
    .await
    .error(413);
}

#[tokio::test]
async fn an_upload_without_a_file_part_is_400() {
    let server = TestServer::start().await;
    let kz = server.user(&number(1)).await;
    upload(
        &kz,
        &[Part {
            name: "caption",
            file_name: None,
            content_type: None,
            data: b"just text".to_vec(),
        }],
    )
    .await
    .error(400);
    upload(&kz, &[]).await.error(400);
    // An empty file is no file either.
    upload(&kz, &[file("a.pdf", "application/pdf", Vec::new())])
        .await
        .error(400);
    // A malformed body.
    upload_raw(
        &kz,
        Some(&kz.token),
        &format!("multipart/form-data; boundary={BOUNDARY}"),
        b"garbage without boundaries".to_vec(),
    )
    .await
    .error(400);
}

#[tokio::test]
async fn media_is_not_found_for_others_and_unknown_ids() {
    let server = TestServer::start().await;
    let owner = server.user(&number(1)).await;
    let other = server.user(&number(2)).await;
    let resp = upload(&owner, &[file("a.png", "image/png", png(200))])
        .await
        .expect(200);
    let id = &ids(&resp)[0];
    assert_eq!(fetch(&owner, id).await.status, StatusCode::OK);
    // Another user: exactly as for an id that does not exist.
    let denied = other.get(&format!("/media/{id}")).await.error(404);
    let unknown = other
        .get("/media/0123456789abcdef0123456789abcdef")
        .await
        .error(404);
    assert_eq!(denied, unknown);
    owner.get("/media/not-an-id").await.error(404);
    owner
        .get("/media/0123456789abcdef0123456789abcdef")
        .await
        .error(404);
}

#[tokio::test]
async fn uploading_needs_the_media_permission() {
    let server = TestServer::start().await;
    let no_media = server
        .app_with(Some(&[
            "groupinfo.read".to_owned(),
            "action.write".to_owned(),
        ]))
        .await;
    let kz = server.login(&no_media, &number(1)).await;
    upload(&kz, &[file("a.png", "image/png", png(200))])
        .await
        .error(403);
    let with_media = server.app_with(Some(&["media.write".to_owned()])).await;
    let kz = server.login(&with_media, &number(2)).await;
    upload(&kz, &[file("a.png", "image/png", png(200))])
        .await
        .expect(200);
}

#[tokio::test]
async fn media_needs_a_token() {
    let server = TestServer::start().await;
    let kz = server.user(&number(1)).await;
    let resp = upload(&kz, &[file("a.png", "image/png", png(200))])
        .await
        .expect(200);
    let id = &ids(&resp)[0];
    upload_raw(
        &kz,
        None,
        &format!("multipart/form-data; boundary={BOUNDARY}"),
        multipart(&[file("a.png", "image/png", png(200))]),
    )
    .await
    .error(401);
    upload_raw(
        &kz,
        Some("not-a-token"),
        &format!("multipart/form-data; boundary={BOUNDARY}"),
        multipart(&[file("a.png", "image/png", png(200))]),
    )
    .await
    .error(401);
    let got = fetch_with(&kz, Method::GET, &format!("{}/v1/media/{id}", kz.base), &[]).await;
    assert_eq!(got.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn media_survives_a_restart_with_a_data_dir() {
    let dir = std::env::temp_dir().join(format!(
        "confab-media-restart-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    let configure = |s: &mut confab::Settings| {
        s.in_memory = false;
        s.data_dir = dir.clone();
    };
    let server = TestServer::start_with(configure).await;
    let kz = server.user(&number(1)).await;
    let data = png(70_000);
    let resp = upload(&kz, &[file("a.png", "image/png", data.clone())])
        .await
        .expect(200);
    let id = ids(&resp)[0].clone();
    let path = dir.join("media").join(&id[..2]).join(&id);
    assert!(path.is_file(), "{}", path.display());
    server.running.shutdown().await;

    let server = TestServer::start_with(configure).await;
    // The server's secrets persist, so the token still holds.
    let kz = Kz {
        base: server.base.clone(),
        http: server.http.clone(),
        ..kz
    };
    let got = fetch(&kz, &id).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.bytes, data);
    server.running.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_large_video_streams_to_disk_and_back() {
    let dir = std::env::temp_dir().join(format!(
        "confab-media-large-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    let server = TestServer::start_with(|s| {
        s.in_memory = false;
        s.data_dir = dir.clone();
    })
    .await;
    let kz = server.user(&number(1)).await;
    let data: Vec<u8> = (0..24 * 1024 * 1024u32).map(|i| (i % 253) as u8).collect();
    let resp = upload(&kz, &[file("clip.mp4", "video/mp4", data.clone())])
        .await
        .expect(200);
    assert_eq!(resource(&resp)["ActionType"], "Video");
    let got = fetch(&kz, &ids(&resp)[0]).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.header("content-length"), data.len().to_string());
    assert!(got.bytes == data, "byte-identical");
    assert_eq!(got.header("etag"), format!("\"{}\"", sha256_hex(&data)));
    server.running.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
