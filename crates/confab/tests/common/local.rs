//! Small HTTP servers the tests run beside confab (webhook receivers), and requests written by
//! hand on a raw connection; on loopback only.

/// Serves `app` on 127.0.0.1 at a free port until the test ends; answers `http://127.0.0.1:<port>`.
pub async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://127.0.0.1:{port}")
}

/// Sends `request` on a plain TCP connection and answers what the server sends back until it
/// closes the connection (at most 10 s).
pub async fn raw_exchange(host: &str, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(host).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut answer),
    )
    .await
    .expect("the server closes the connection in time")
    .expect("read");
    String::from_utf8_lossy(&answer).into_owned()
}
