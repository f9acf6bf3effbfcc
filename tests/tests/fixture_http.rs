//! Self-test of the switchable HTTP target: each mode is what a probe will
//! see from a real failing endpoint.

use std::time::Duration;

use switchyard_tests::{HttpMode, HttpTarget};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One raw HTTP/1.1 GET; returns the status line, or the I/O error.
async fn get(addr: std::net::SocketAddr) -> std::io::Result<String> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    Ok(text.lines().next().unwrap_or_default().to_string())
}

#[tokio::test]
async fn modes_switch_at_run_time() -> anyhow::Result<()> {
    let t = HttpTarget::start().await?;
    assert_eq!(get(t.addr()).await?, "HTTP/1.1 200 OK");

    t.set_mode(HttpMode::Failing).await?;
    assert_eq!(get(t.addr()).await?, "HTTP/1.1 500 Internal Server Error");

    t.set_mode(HttpMode::Hang).await?;
    let hung = tokio::time::timeout(Duration::from_millis(500), get(t.addr())).await;
    assert!(hung.is_err(), "a hanging target answered: {hung:?}");

    t.set_mode(HttpMode::Refuse).await?;
    let refused = get(t.addr()).await;
    let err = refused.expect_err("a refusing target accepted a connection");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);

    t.set_mode(HttpMode::Healthy).await?;
    assert_eq!(get(t.addr()).await?, "HTTP/1.1 200 OK");
    assert!(t.requests() >= 4);
    Ok(())
}
