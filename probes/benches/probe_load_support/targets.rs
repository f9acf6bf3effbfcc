//! The bench's HTTP targets: a few loopback listeners answering any GET
//! with `200 ok` and closing, as cheaply as possible, so the machine's CPU
//! goes to the probers being measured. 10,000 distinct URLs are spread
//! over the listeners as `/t/<i>`.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const ANSWER: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";

/// Starts `n` listeners on the current runtime; returns their addresses.
pub async fn start(n: usize) -> std::io::Result<Vec<SocketAddr>> {
    let mut addrs = Vec::with_capacity(n);
    for _ in 0..n {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        addrs.push(listener.local_addr()?);
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    continue;
                };
                tokio::spawn(async move {
                    let mut buf = [0u8; 2048];
                    let mut seen = 0;
                    // Read until the end of the request head.
                    loop {
                        match s.read(&mut buf[seen..]).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen += n,
                        }
                        if buf[..seen].windows(4).any(|w| w == b"\r\n\r\n") || seen == buf.len() {
                            break;
                        }
                    }
                    let _ = s.write_all(ANSWER).await;
                    let _ = s.shutdown().await;
                });
            }
        });
    }
    Ok(addrs)
}

/// The URL of target `i`.
pub fn url(addrs: &[SocketAddr], i: usize) -> String {
    format!("http://{}/t/{i}", addrs[i % addrs.len()])
}
