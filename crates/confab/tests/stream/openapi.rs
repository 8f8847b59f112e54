//! The OpenAPI document of confab's own endpoints (`GET /openapi.json`, the file
//! `crates/confab/openapi.json`): served as is, OpenAPI 3.0, every reference resolving inside it,
//! and every operation it documents routed on a running server.

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::*;

/// The document as the crate ships it.
const DOCUMENT: &str = include_str!("../../openapi.json");

/// A path parameter's stand-in: a number for numeric ids (delivery ids), a GUID otherwise.
const DUMMY_ID: &str = "00000000-0000-4000-8000-00000000c0de";
const DUMMY_NUMBER: &str = "1";

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

async fn fetch(server: &TestServer) -> Value {
    let response = server
        .http
        .get(format!("{}/openapi.json", server.base))
        .send()
        .await
        .expect("send");
    let resp = Resp::read(response).await.expect(200);
    assert!(
        resp.header("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        "content type: {:?}",
        resp.header("content-type")
    );
    assert_eq!(resp.text, DOCUMENT, "the served document is the file");
    resp.body
}

/// Every `$ref` (and discriminator mapping) in `value`, with where it was found.
fn references(value: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                let here = format!("{at}/{key}");
                match (key.as_str(), item) {
                    ("$ref", Value::String(target)) => out.push((here, target.clone())),
                    ("mapping", Value::Object(mapping)) if at.ends_with("/discriminator") => {
                        for (name, target) in mapping {
                            let target = target.as_str().unwrap_or_default().to_owned();
                            out.push((format!("{here}/{name}"), target));
                        }
                    }
                    _ => references(item, &here, out),
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                references(item, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// The documented operations: (path template, method, operation).
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let paths = doc["paths"].as_object().expect("paths");
    let mut out = Vec::new();
    for (path, item) in paths {
        for method in METHODS {
            if let Some(operation) = item.get(method) {
                out.push((path.clone(), method.to_owned(), operation.clone()));
            }
        }
    }
    out
}

#[tokio::test]
async fn document_is_openapi_3_and_its_references_resolve() {
    let server = TestServer::start().await;
    let doc = fetch(&server).await;

    let version = doc["openapi"].as_str().expect("openapi");
    assert!(version.starts_with("3.0."), "OpenAPI {version}");
    assert_eq!(doc["info"]["title"], "confab");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(doc["servers"][0]["url"], "/");

    let mut refs = Vec::new();
    references(&doc, "#", &mut refs);
    assert!(refs.len() > 50, "only {} references", refs.len());
    let dangling: Vec<String> = refs
        .iter()
        .filter(|(_, target)| {
            target
                .strip_prefix('#')
                .and_then(|pointer| doc.pointer(pointer))
                .is_none()
        })
        .map(|(at, target)| format!("{at} -> {target}"))
        .collect();
    assert!(dangling.is_empty(), "unresolved references: {dangling:#?}");

    // Operation ids are unique; every path template parameter is declared, and every security
    // requirement names a declared scheme.
    let schemes = doc["components"]["securitySchemes"]
        .as_object()
        .expect("security schemes");
    let mut ids = std::collections::HashSet::new();
    for (path, method, operation) in operations(&doc) {
        let id = operation["operationId"].as_str().expect("operationId");
        assert!(ids.insert(id.to_owned()), "operationId {id} twice");
        let declared: Vec<String> = operation["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| match p["$ref"].as_str() {
                Some(target) => doc.pointer(&target[1..]).cloned().unwrap_or(Value::Null),
                None => p.clone(),
            })
            .filter(|p| p["in"] == "path")
            .filter_map(|p| p["name"].as_str().map(str::to_owned))
            .collect();
        for name in path_parameters(&path) {
            assert!(
                declared.contains(&name),
                "{method} {path}: path parameter {name} not declared"
            );
        }
        for requirement in operation["security"].as_array().into_iter().flatten() {
            for scheme in requirement.as_object().expect("requirement").keys() {
                assert!(
                    schemes.contains_key(scheme),
                    "{method} {path}: unknown scheme {scheme}"
                );
            }
        }
        assert!(
            operation["responses"]
                .as_object()
                .is_some_and(|r| !r.is_empty()),
            "{method} {path}: no responses"
        );
    }
}

fn path_parameters(template: &str) -> Vec<String> {
    template
        .split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .map(str::to_owned)
        .collect()
}

/// A path template with its parameters filled in.
fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|segment| match segment.strip_prefix('{') {
            Some(name) if name.to_ascii_lowercase().starts_with("delivery") => DUMMY_NUMBER,
            Some(_) => DUMMY_ID,
            None => segment,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Sends `method path` as the operation's caller would: HMAC-signed for the admin API (with
/// `{}` as the body where a body is documented), without credentials otherwise.
async fn probe(
    server: &TestServer,
    method: &Method,
    path: &str,
    signed: bool,
    body: Option<&Value>,
) -> Resp {
    if signed {
        server.admin().call(method.clone(), path, body).await
    } else {
        server
            .client_with_auth(None)
            .send(method.clone(), path, body)
            .await
    }
}

fn is_signed(doc: &Value, operation: &Value) -> bool {
    operation["security"]
        .as_array()
        .or(doc["security"].as_array())
        .into_iter()
        .flatten()
        .any(|requirement| requirement.get("adminHmac").is_some())
}

/// Whether an answer is one of the documented error shapes (ACS or Kaizala).
fn api_error_shape(body: &Value) -> bool {
    body["error"]["code"].is_string() && body["error"]["message"].is_string()
        || body["errorCode"].is_string() && body["message"].is_string()
}

#[tokio::test]
async fn every_documented_operation_is_routed() {
    let server = TestServer::start().await;
    let doc = fetch(&server).await;
    let operations = operations(&doc);
    assert!(operations.len() >= 10, "{} operations", operations.len());

    let mut failures = Vec::new();
    for (template, method, operation) in &operations {
        let http_method =
            Method::from_bytes(method.to_ascii_uppercase().as_bytes()).expect("method");
        let path = concrete(template);
        let signed = is_signed(&doc, operation);
        let body = operation.get("requestBody").map(|_| json!({}));
        let resp = probe(&server, &http_method, &path, signed, body.as_ref()).await;
        // What the server answers for a path it does not route, asked the same way.
        let unrouted = format!("/no-such-route-{DUMMY_ID}{path}");
        let fallback = probe(&server, &http_method, &unrouted, signed, body.as_ref()).await;
        assert_eq!(
            fallback.status.as_u16(),
            404,
            "the fallback: {}",
            fallback.text
        );

        let status = resp.status.as_u16();
        let like_fallback = status == 404 && resp.text == fallback.text;
        let mut routed = status != 405 && !like_fallback;
        if like_fallback && signed {
            // An unknown id may be worded like the fallback; an unsigned call to a routed admin
            // operation is refused (401) where the fallback still answers 404.
            let unsigned = probe(&server, &http_method, &path, false, body.as_ref()).await;
            routed = unsigned.status.as_u16() == 401;
        }
        let what = format!("{} {template} ({path})", method.to_ascii_uppercase());
        if !routed {
            failures.push(format!("{what}: not routed: {status} {}", resp.text));
            continue;
        }
        if status == 404 && !api_error_shape(&resp.body) {
            failures.push(format!(
                "{what}: 404 not in an API error shape: {}",
                resp.text
            ));
        }
        let documented = &operation["responses"];
        if documented.get(status.to_string()).is_none() && documented.get("default").is_none() {
            failures.push(format!(
                "{what}: answered {status}, which is not documented: {}",
                resp.text
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "documented operations the server does not serve as documented:\n{}",
        failures.join("\n")
    );
}
