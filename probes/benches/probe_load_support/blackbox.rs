//! prometheus-blackbox-exporter (Debian's package) probing the same
//! targets: the exporter runs as its own process with an `http_2xx`
//! module; a generator here asks it for `/probe?target=…&module=http_2xx`
//! at a fixed rate over keep-alive connections, as a Prometheus scraping
//! every target once a second would.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::time::Instant;

/// The exporter's binary as Debian installs it.
pub const BINARY: &str = "/usr/bin/prometheus-blackbox-exporter";

const CONFIG: &str = "modules:\n  http_2xx:\n    prober: http\n    timeout: 500ms\n    http:\n      preferred_ip_protocol: ip4\n      ip_protocol_fallback: false\n      valid_status_codes: [200]\n";

/// A running exporter; killed on drop.
pub struct Exporter {
    pub child: Child,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the exporter on a free loopback port and waits until it answers.
pub async fn start() -> anyhow::Result<Exporter> {
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("blackbox.yml");
    std::fs::write(&config, CONFIG)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let child = Command::new(BINARY)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--web.listen-address={addr}"))
        .arg("--log.level=error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            anyhow::anyhow!("{BINARY}: {e} (install Debian's prometheus-blackbox-exporter)")
        })?;
    let exporter = Exporter {
        child,
        addr,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        anyhow::ensure!(Instant::now() < deadline, "blackbox_exporter did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(exporter)
}

/// Probes answered, and how many said `probe_success 1`.
#[derive(Debug, Default)]
pub struct Counts {
    pub answered: AtomicU64,
    pub succeeded: AtomicU64,
    pub errors: AtomicU64,
}

/// Asks the exporter to probe `urls` round-robin, `rate` per second in
/// total, from `workers` keep-alive connections, for `secs` seconds.
pub async fn drive(
    exporter: SocketAddr,
    urls: Arc<Vec<String>>,
    rate: u64,
    workers: usize,
    secs: u64,
    counts: Arc<Counts>,
) {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    let step = Duration::from_secs(1) / rate as u32;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let (urls, next, counts) = (urls.clone(), next.clone(), counts.clone());
        tasks.spawn(async move {
            let mut sender = None;
            loop {
                let i = next.fetch_add(1, Relaxed);
                let due = start + step * i as u32;
                if due >= end {
                    return;
                }
                tokio::time::sleep_until(due).await;
                if sender.is_none() {
                    sender = connect(exporter).await;
                }
                let Some(s) = sender.as_mut() else {
                    counts.errors.fetch_add(1, Relaxed);
                    continue;
                };
                let target = &urls[i % urls.len()];
                match probe(s, target).await {
                    Some(ok) => {
                        counts.answered.fetch_add(1, Relaxed);
                        if ok {
                            counts.succeeded.fetch_add(1, Relaxed);
                        }
                    }
                    None => {
                        counts.errors.fetch_add(1, Relaxed);
                        sender = None;
                    }
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

async fn connect(addr: SocketAddr) -> Option<Sender> {
    let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
    let _ = tcp.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .ok()?;
    tokio::spawn(conn);
    Some(sender)
}

/// One `/probe`; `Some(success)` when the exporter answered.
async fn probe(sender: &mut Sender, target: &str) -> Option<bool> {
    sender.ready().await.ok()?;
    let req = hyper::Request::get(format!("/probe?module=http_2xx&target={target}"))
        .header(hyper::header::HOST, "blackbox")
        .body(Empty::new())
        .ok()?;
    let resp = sender.send_request(req).await.ok()?;
    let body = resp.into_body().collect().await.ok()?.to_bytes();
    Some(body.windows(15).any(|w| w == b"probe_success 1"))
}
