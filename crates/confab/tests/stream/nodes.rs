//! Two nodes on one PostgreSQL database (`CONFAB_TEST_POSTGRES_URL`, as `scripts/test` sets it;
//! skipped without): a stream on one node carries what is committed through the other.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::clients::{Client, Sse};
use crate::support::*;

/// A schema of its own in the test database, dropped on drop.
struct Scratch {
    url: String,
    schema: String,
}

impl Scratch {
    fn new(url: String) -> Scratch {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let schema = format!("confab_nodes_{}_{millis}", std::process::id());
        run_sql(&url, format!("CREATE SCHEMA {schema}"));
        Scratch { url, schema }
    }

    /// The database URL of a node keeping its tables in this schema.
    fn node_url(&self) -> String {
        let separator = if self.url.contains('?') { '&' } else { '?' };
        format!(
            "{}{separator}options=-c%20search_path%3D{}",
            self.url, self.schema
        )
    }
}

impl Scratch {
    /// The nodes' shared data dir (their one `server.json`), removed with the schema.
    fn data_dir(&self) -> std::path::PathBuf {
        std::env::temp_dir().join(&self.schema)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.data_dir());
        run_sql(
            &self.url,
            format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema),
        );
    }
}

/// Runs SQL on a connection of its own, on a thread of its own (the synchronous client must
/// not run on an async worker).
fn run_sql(url: &str, sql: String) {
    let url = url.to_owned();
    std::thread::spawn(move || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
        client.batch_execute(&sql).expect("sql");
    })
    .join()
    .expect("sql thread");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_on_one_node_carries_what_another_node_commits() {
    let Ok(url) = std::env::var("CONFAB_TEST_POSTGRES_URL") else {
        eprintln!("CONFAB_TEST_POSTGRES_URL is not set: two-node stream test skipped");
        return;
    };
    let scratch = Scratch::new(url);
    // Nodes share the database and the secrets (one `server.json`: the same data dir here).
    let data_dir = scratch.data_dir();
    std::fs::create_dir_all(&data_dir).expect("data dir");
    let node = |dir: std::path::PathBuf, url: String| {
        move |settings: &mut confab::Settings| {
            settings.in_memory = false;
            settings.data_dir = dir;
            settings.database_url = Some(url);
            settings.credentials_staleness_ms = 200;
        }
    };
    let a = TestServer::start_with(node(data_dir.clone(), scratch.node_url())).await;
    let b = TestServer::start_with(node(data_dir.clone(), scratch.node_url())).await;

    let alice = a.user().await;
    let bob = a.user().await;
    let thread = alice.create_thread("two nodes", &[&bob]).await;
    // Bob streams from B, with the token A issued.
    let bob_on_b = b.user_from(bob.id.clone(), bob.token.clone());
    let mut stream = Client::Sse(Sse::bearer(&b, &bob_on_b.token, "").await);
    let (head, _) = stream.until_ready().await;

    let sent = alice.send(&thread, "through A").await;
    let event = stream.next_of("messageReceived").await;
    assert_eq!(event["conversation"], thread.as_str());
    assert_eq!(event["data"]["messageId"], sent.as_str());
    assert_eq!(event["data"]["content"]["text"], "through A");
    let first = event["position"].as_i64().expect("position");
    assert!(first > head);

    // And B's own, after it, in order.
    let replied = bob_on_b.send(&thread, "through B").await;
    let event = stream.next_of("messageReceived").await;
    assert_eq!(event["data"]["messageId"], replied.as_str());
    assert!(event["position"].as_i64().expect("position") > first);

    // Bob's tokens revoked through A stop working on B, which remembered his token generation,
    // once it reads it again (within the staleness).
    a.admin().revoke(&bob.id).await.expect(204);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let status = bob_on_b.get("/chat/threads").await.status.as_u16();
        if status == 401 {
            break;
        }
        assert_eq!(status, 200, "before the revocation is seen");
        assert!(
            std::time::Instant::now() < deadline,
            "B still takes the revoked token"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    drop(stream);
    a.running.shutdown().await;
    b.running.shutdown().await;
}
