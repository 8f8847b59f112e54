//! `POST /v1/media` and `GET /v1/media/{id}`: uploads (one file, albums, documents), content
//! types and size limits (415, 413), serving back to the uploader only (404 to others), and
//! files surviving a restart. Media actions (`POST /groups/{id}/actions` with Image, Album,
//! Audio, Document, Video): checks, members and addressed subscribers fetching the files,
//! the ACS face, deletion; uploads named in survey answers.

use base64::Engine as _;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::support::{
    add_subscribers, enc, number, public_group, thread_of, Acs, Kz, Resp, TestServer,
};

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

// ---- Media actions: posting uploaded files to a group, and who may fetch them then. ----

/// Uploads one file; answers its `mediaResource` and media ids.
async fn uploaded(kz: &Kz, parts: &[Part<'_>]) -> (String, Vec<String>) {
    let resp = upload(kz, parts).await.expect(200);
    let ids = ids(&resp);
    let text = resp.body["mediaResource"]
        .as_str()
        .expect("mediaResource")
        .to_owned();
    (text, ids)
}

async fn post_media(kz: &Kz, group: &str, body: &Value) -> Resp {
    kz.post(&format!("/groups/{group}/actions"), body).await
}

fn media_action(kind: &str, resource: &str, caption: Option<&str>) -> Value {
    let mut body = json!({"actionType": kind, "actionBody": {"mediaResource": resource}});
    if let Some(caption) = caption {
        body["actionBody"]["caption"] = json!(caption);
    }
    body
}

fn status(fetched: &Fetched) -> u16 {
    fetched.status.as_u16()
}

#[tokio::test]
async fn media_actions_of_every_kind_reach_the_members() {
    let server = TestServer::start().await;
    let alice = server.user(&number(1)).await;
    let bob = server.user(&number(2)).await;
    let carol = server.user(&number(3)).await;
    let group = alice.group(&[&number(2)]).await;

    let image = png(3000);
    let (resource, ids) = uploaded(&alice, &[file("cat.png", "image/png", image.clone())]).await;
    // Not posted yet: only the uploader sees it.
    assert_eq!(status(&fetch(&bob, &ids[0]).await), 404);
    let posted = post_media(
        &alice,
        &group,
        &media_action("Image", &resource, Some("A cat")),
    )
    .await
    .expect(200);
    assert!(posted.body["referenceId"].is_string());
    let got = fetch(&bob, &ids[0]).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.bytes, image, "byte-identical");
    // Carol is no member: exactly as for an unknown id.
    assert_eq!(status(&fetch(&carol, &ids[0]).await), 404);

    // Audio, a document and a video, each by the kind of the action (case-insensitive), and
    // by the forms the docs allow (a bare id, the URL).
    let cases: [(&str, &str, &str, Vec<u8>); 3] = [
        (
            "audio",
            "a.mp3",
            "audio/mpeg",
            b"ID3\x03 some audio".to_vec(),
        ),
        (
            "Document",
            "r.pdf",
            "application/pdf",
            b"%PDF-1.4\n%%EOF\n".to_vec(),
        ),
        ("VIDEO", "v.mp4", "video/mp4", vec![7u8; 4096]),
    ];
    for (i, (kind, name, content_type, data)) in cases.into_iter().enumerate() {
        let (resource, ids) = uploaded(&alice, &[file(name, content_type, data.clone())]).await;
        let given = match i {
            0 => resource,
            1 => ids[0].clone(),
            _ => format!("{}/v1/media/{}", alice.base, ids[0]),
        };
        post_media(&alice, &group, &media_action(kind, &given, None))
            .await
            .expect(200);
        let got = fetch(&bob, &ids[0]).await;
        assert_eq!(got.status, StatusCode::OK, "{kind}");
        assert_eq!(got.bytes, data, "{kind}");
        assert_eq!(status(&fetch(&carol, &ids[0]).await), 404, "{kind}");
    }

    // An album of three images.
    let images = [png(300), jpeg(400), png(500)];
    let (album, album_ids) = uploaded(
        &alice,
        &[
            file("a.png", "image/png", images[0].clone()),
            file("b.jpg", "image/jpeg", images[1].clone()),
            file("c.png", "image/png", images[2].clone()),
        ],
    )
    .await;
    // Three files are no Image.
    post_media(&alice, &group, &media_action("Image", &album, None))
        .await
        .error(400);
    post_media(
        &alice,
        &group,
        &media_action("Album", &album, Some("Holiday")),
    )
    .await
    .expect(200);
    for (id, data) in album_ids.iter().zip(&images) {
        let got = fetch(&bob, id).await;
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(&got.bytes, data);
        assert_eq!(status(&fetch(&carol, id).await), 404);
    }

    // The actions list with their captions and URLs.
    let listed = bob
        .get(&format!("/groups/{group}/actions"))
        .await
        .expect(200);
    let actions = listed.body["actions"].as_array().expect("actions");
    let types: Vec<&str> = actions
        .iter()
        .map(|a| a["actionType"].as_str().expect("type"))
        .collect();
    assert_eq!(types, ["Image", "Audio", "Document", "Video", "Album"]);
    assert_eq!(actions[0]["actionBody"]["caption"], "A cat");
    assert_eq!(actions[4]["actionBody"]["mediaCount"], 3);
    let urls = actions[4]["actionBody"]["mediaUrls"]
        .as_array()
        .expect("urls");
    assert!(urls[2]
        .as_str()
        .expect("url")
        .ends_with(&format!("/v1/media/{}", album_ids[2])));
    let albums = bob
        .get(&format!("/groups/{group}/actions?actionType=album"))
        .await
        .expect(200);
    assert_eq!(albums.body["actions"].as_array().expect("a").len(), 1);
    // Media actions take no responses.
    let action = actions[0]["actionId"].as_str().expect("id");
    bob.post(
        &format!("/groups/{group}/actions/{action}/responses"),
        &json!({"actionBody": {"answers": ["x"]}}),
    )
    .await
    .error(400);
}

#[tokio::test]
async fn media_actions_are_checked() {
    let server = TestServer::start().await;
    let alice = server.user(&number(1)).await;
    let carol = server.user(&number(3)).await;
    let group = alice.group(&[&number(2)]).await;
    let (pdf, _) = uploaded(
        &alice,
        &[file("r.pdf", "application/pdf", b"%PDF-1.4\n".to_vec())],
    )
    .await;
    let (image, _) = uploaded(&alice, &[file("a.png", "image/png", png(100))]).await;
    // A kind that does not fit the action.
    let body = post_media(&alice, &group, &media_action("Image", &pdf, None))
        .await
        .error(400);
    assert_eq!(body["errorCode"], "InvalidParameters");
    post_media(&alice, &group, &media_action("Album", &pdf, None))
        .await
        .error(400);
    post_media(&alice, &group, &media_action("Video", &image, None))
        .await
        .error(400);
    // Missing or malformed resources.
    post_media(
        &alice,
        &group,
        &json!({"actionType": "Image", "actionBody": {"caption": "x"}}),
    )
    .await
    .error(400);
    post_media(
        &alice,
        &group,
        &media_action("Image", "not a resource", None),
    )
    .await
    .error(400);
    // Another user's upload the caller cannot see: as if it did not exist.
    let (carols, carol_ids) = uploaded(&carol, &[file("c.png", "image/png", png(100))]).await;
    post_media(&alice, &group, &media_action("Image", &carols, None))
        .await
        .error(404);
    assert_eq!(status(&fetch(&alice, &carol_ids[0]).await), 404);
    // A non-member posts nothing (403 before the media is looked at).
    post_media(&carol, &group, &media_action("Image", &carols, None))
        .await
        .error(403);
    // Nothing was posted.
    let listed = alice
        .get(&format!("/groups/{group}/actions"))
        .await
        .expect(200);
    assert_eq!(listed.body["actions"].as_array().expect("a").len(), 0);
}

#[tokio::test]
async fn a_media_action_is_a_text_message_on_the_acs_face_and_deleting_it_hides_the_file() {
    let server = TestServer::start().await;
    let alice = server.user(&number(1)).await;
    let bob = server.user(&number(2)).await;
    let group = alice.group(&[&number(2)]).await;
    let (resource, ids) = uploaded(&alice, &[file("cat.png", "image/png", png(800))]).await;
    post_media(
        &alice,
        &group,
        &media_action("Image", &resource, Some("Look")),
    )
    .await
    .expect(200);
    let (doc, _) = uploaded(
        &alice,
        &[file("r.pdf", "application/pdf", b"%PDF-1.4\n".to_vec())],
    )
    .await;
    // Without a caption the message text is the type.
    post_media(&alice, &group, &media_action("Document", &doc, None))
        .await
        .expect(200);

    let token = server.acs_token_for(&alice.identity()).await;
    let acs = Acs::with_token(&server.base, &server.http, &alice.identity(), &token);
    let thread = thread_of(&group);
    assert_eq!(acs.texts(&thread).await, ["Look", "Document"]);
    let listed = acs
        .call(
            Method::GET,
            &format!("/chat/threads/{}/messages", enc(&thread)),
            None,
        )
        .await
        .expect(200);
    let message = listed.body["value"]
        .as_array()
        .expect("value")
        .iter()
        .find(|m| m["content"]["message"] == "Look")
        .expect("media message")
        .clone();
    assert_eq!(message["type"], "text");
    assert_eq!(message["metadata"]["kaizalaActionType"], "Image");
    let urls: Vec<String> = serde_json::from_str(
        message["metadata"]["kaizalaMediaUrls"]
            .as_str()
            .expect("kaizalaMediaUrls"),
    )
    .expect("a JSON list");
    assert_eq!(urls, [format!("{}/v1/media/{}", alice.base, ids[0])]);
    let got = fetch_with(&bob, Method::GET, &urls[0], &[("accessToken", &bob.token)]).await;
    assert_eq!(got.status, StatusCode::OK);

    // The sender deletes the message on the ACS face: the members see the file no more; its
    // uploader still does.
    let message_id = message["id"].as_str().expect("id");
    acs.call(
        Method::DELETE,
        &format!("/chat/threads/{}/messages/{message_id}", enc(&thread)),
        None,
    )
    .await
    .expect(204);
    assert_eq!(status(&fetch(&bob, &ids[0]).await), 404);
    assert_eq!(status(&fetch(&alice, &ids[0]).await), 200);
}

#[tokio::test]
async fn media_actions_reach_only_the_addressed_subscribers() {
    let server = TestServer::start().await;
    let alice = server.user(&number(1)).await;
    let bob = server.user(&number(2)).await;
    let sam = server.user(&number(10)).await;
    let sue = server.user(&number(11)).await;
    let group = public_group(&alice, &[&number(2)]).await;
    add_subscribers(&alice, &group, &[number(10), number(11)]).await;
    let (resource, ids) = uploaded(&alice, &[file("a.png", "image/png", png(500))]).await;
    let mut to_sam = media_action("Image", &resource, Some("For Sam"));
    to_sam["subscribers"] = json!([number(10)]);
    post_media(&alice, &group, &to_sam).await.expect(200);
    assert_eq!(status(&fetch(&sam, &ids[0]).await), 200);
    assert_eq!(status(&fetch(&bob, &ids[0]).await), 200);
    assert_eq!(status(&fetch(&sue, &ids[0]).await), 404);
    // Only admins post in a public group.
    let (bobs, _) = uploaded(&bob, &[file("b.png", "image/png", png(500))]).await;
    post_media(&bob, &group, &media_action("Image", &bobs, None))
        .await
        .error(403);
}

#[tokio::test]
async fn survey_image_answers_naming_uploads_are_checked() {
    let server = TestServer::start().await;
    let alice = server.user(&number(1)).await;
    let bob = server.user(&number(2)).await;
    let carol = server.user(&number(3)).await;
    let group = alice.group(&[&number(2)]).await;
    let posted = alice
        .post(
            &format!("/groups/{group}/actions"),
            &json!({"actionType": "Survey", "actionBody": {
                "title": "Photos", "acceptMultipleResponses": true,
                "questions": [{"title": "A photo", "type": "Image"},
                              {"title": "Files", "type": "AttachmentList"}]}}),
        )
        .await
        .expect(200);
    let action = posted.body["actionId"].as_str().expect("id").to_owned();
    let answer = |answers: Value| {
        let bob = &bob;
        let path = format!("/groups/{group}/actions/{action}/responses");
        async move {
            bob.post(&path, &json!({"actionBody": {"answers": answers}}))
                .await
        }
    };
    let (photo, _) = uploaded(&bob, &[file("p.png", "image/png", png(100))]).await;
    let (pdf, _) = uploaded(
        &bob,
        &[file("r.pdf", "application/pdf", b"%PDF-1.4\n".to_vec())],
    )
    .await;
    answer(json!([photo, [pdf]])).await.expect(200);
    // Strings that name no upload here are kept as sent.
    answer(json!(["eyJUaHVtYm5haWwiOiIv", []]))
        .await
        .expect(200);
    // A document is no image.
    answer(json!([pdf, []])).await.error(400);
    // Someone else's upload the responder cannot see.
    let (carols, _) = uploaded(&carol, &[file("c.png", "image/png", png(100))]).await;
    answer(json!([carols, []])).await.error(404);
    answer(json!([photo, [carols]])).await.error(404);
}

#[tokio::test]
async fn announcements_and_poll_images_naming_uploads_link_them() {
    let server = TestServer::start().await;
    let alice = server.user(&number(1)).await;
    let bob = server.user(&number(2)).await;
    let carol = server.user(&number(3)).await;
    let group = alice.group(&[&number(2)]).await;
    let (banner, banner_ids) = uploaded(&alice, &[file("b.png", "image/png", png(400))]).await;
    let (flyer, flyer_ids) = uploaded(
        &alice,
        &[file("f.pdf", "application/pdf", b"%PDF-1.4\n".to_vec())],
    )
    .await;
    let (choice, choice_ids) = uploaded(&alice, &[file("c.png", "image/png", png(300))]).await;
    alice
        .post(
            &format!("/groups/{group}/actions"),
            &json!({"actionType": "Announcement", "actionBody": {
                "title": "News", "message": "Read this",
                "mediaResources": [banner, flyer, "eyJUaHVtYm5haWwi"]}}),
        )
        .await
        .expect(200);
    alice
        .post(
            &format!("/groups/{group}/actions"),
            &json!({"actionType": "Poll", "actionBody": {
                "question": "Which?", "choices": [{"title": "This", "image": choice}, {"title": "No"}]}}),
        )
        .await
        .expect(200);
    for id in [&banner_ids[0], &flyer_ids[0], &choice_ids[0]] {
        assert_eq!(status(&fetch(&bob, id).await), 200);
        assert_eq!(status(&fetch(&carol, id).await), 404);
    }
    // The resources are shown as sent.
    let listed = bob
        .get(&format!("/groups/{group}/actions"))
        .await
        .expect(200);
    assert_eq!(
        listed.body["actions"][0]["actionBody"]["mediaResources"][2],
        "eyJUaHVtYm5haWwi"
    );
    // An upload the poster cannot see.
    let (carols, _) = uploaded(&carol, &[file("x.png", "image/png", png(100))]).await;
    alice
        .post(
            &format!("/groups/{group}/actions"),
            &json!({"actionType": "Announcement", "actionBody": {
                "title": "News", "message": "Read this", "mediaResources": [carols]}}),
        )
        .await
        .error(404);
}
