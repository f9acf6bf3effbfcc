//! A small HTTP proxy in front of moto that counts the Route 53 calls it
//! forwards and can answer `ChangeResourceRecordSets` with Route 53's own
//! throttling errors (`Throttling`, `PriorRequestNotComplete`) instead, and
//! make every change look `PENDING` for a while as the real service does —
//! moto never throttles and is `INSYNC` at once, so the retry and
//! propagation tests need one. Counting at the server side proves "no API
//! write" claims.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Route 53's answer when the account's request rate is exceeded (HTTP 400).
pub const THROTTLING: &str = "<?xml version=\"1.0\"?>\n<ErrorResponse xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>";

/// Route 53's answer while the zone still applies an earlier change
/// (HTTP 400).
pub const PRIOR_REQUEST: &str = "<?xml version=\"1.0\"?>\n<ErrorResponse xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><Error><Type>Sender</Type><Code>PriorRequestNotComplete</Code><Message>The request was rejected because Route 53 was still processing a prior request.</Message></Error><RequestId>00000000-0000-0000-0000-000000000001</RequestId></ErrorResponse>";

#[derive(Default)]
struct Counters {
    changes: AtomicU64,
    throttled: AtomicU64,
    requests: AtomicU64,
    get_changes: AtomicU64,
    throttle_next: AtomicU64,
    throttle_all: AtomicBool,
    prior_request: AtomicBool,
    pending_until: std::sync::Mutex<Option<std::time::Instant>>,
}

/// The proxy; stopped on drop.
pub struct Proxy {
    addr: SocketAddr,
    counters: Arc<Counters>,
    task: JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> anyhow::Result<Self> {
        Self::start_on(std::net::Ipv4Addr::LOCALHOST.into(), upstream).await
    }

    /// Like [`start`](Self::start), listening on `host` (every address of
    /// the host, for controllers in network namespaces).
    pub async fn start_on(host: std::net::IpAddr, upstream: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(SocketAddr::new(host, 0)).await?;
        let addr = listener.local_addr()?;
        let counters = Arc::new(Counters::default());
        let c = counters.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                };
                let c = c.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let c = c.clone();
                        async move { Ok::<_, Infallible>(handle(req, upstream, &c).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Ok(Proxy {
            addr,
            counters,
            task,
        })
    }

    /// The endpoint URL for the backend's `endpoint` override.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `ChangeResourceRecordSets` requests received (throttled ones too).
    pub fn changes(&self) -> u64 {
        self.counters.changes.load(Ordering::SeqCst)
    }

    /// Requests answered with the throttling error.
    pub fn throttled(&self) -> u64 {
        self.counters.throttled.load(Ordering::SeqCst)
    }

    /// Every request received.
    pub fn requests(&self) -> u64 {
        self.counters.requests.load(Ordering::SeqCst)
    }

    /// `GetChange` requests received.
    pub fn get_changes(&self) -> u64 {
        self.counters.get_changes.load(Ordering::SeqCst)
    }

    /// Every change (and every `GetChange` about it) answers `PENDING`
    /// for `d` from now, as the real service does while it propagates.
    pub fn pending_for(&self, d: std::time::Duration) {
        *self
            .counters
            .pending_until
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(std::time::Instant::now() + d);
    }

    /// Throttled changes answer `PriorRequestNotComplete` instead of
    /// `Throttling` while `on`.
    pub fn throttle_as_prior_request(&self, on: bool) {
        self.counters.prior_request.store(on, Ordering::SeqCst);
    }

    /// Throttles the next `n` change requests.
    pub fn throttle_next_changes(&self, n: u64) {
        self.counters.throttle_next.store(n, Ordering::SeqCst);
    }

    /// Throttles every change request while `on`.
    pub fn throttle_all_changes(&self, on: bool) {
        self.counters.throttle_all.store(on, Ordering::SeqCst);
    }
}

fn is_change(req: &Request<Incoming>) -> bool {
    req.method() == hyper::Method::POST
        && req.uri().path().trim_end_matches('/').ends_with("/rrset")
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r
}

async fn handle(
    req: Request<Incoming>,
    upstream: SocketAddr,
    c: &Counters,
) -> Response<Full<Bytes>> {
    c.requests.fetch_add(1, Ordering::SeqCst);
    if is_change(&req) {
        c.changes.fetch_add(1, Ordering::SeqCst);
        let take_one = c
            .throttle_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if take_one || c.throttle_all.load(Ordering::SeqCst) {
            c.throttled.fetch_add(1, Ordering::SeqCst);
            let body = if c.prior_request.load(Ordering::SeqCst) {
                PRIOR_REQUEST
            } else {
                THROTTLING
            };
            let mut r = text(StatusCode::BAD_REQUEST, body.to_string());
            r.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/xml"),
            );
            return r;
        }
    }
    if is_get_change(&req) {
        c.get_changes.fetch_add(1, Ordering::SeqCst);
    }
    let pending = c
        .pending_until
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .is_some_and(|until| std::time::Instant::now() < until);
    match forward(req, upstream).await {
        Ok(r) if pending => still_pending(r),
        Ok(r) => r,
        Err(e) => text(StatusCode::BAD_GATEWAY, format!("proxy: {e}")),
    }
}

fn is_get_change(req: &Request<Incoming>) -> bool {
    req.method() == hyper::Method::GET && req.uri().path().contains("/change/")
}

/// The answer with every `ChangeInfo` status `PENDING` (its length header
/// dropped: the body changed).
fn still_pending(r: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    let (mut parts, body) = r.into_parts();
    let bytes = futures_util::FutureExt::now_or_never(body.collect())
        .and_then(Result::ok)
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes)
        .replace("<Status>INSYNC</Status>", "<Status>PENDING</Status>");
    parts.headers.remove(hyper::header::CONTENT_LENGTH);
    Response::from_parts(parts, Full::new(Bytes::from(text)))
}

async fn forward(
    req: Request<Incoming>,
    upstream: SocketAddr,
) -> anyhow::Result<Response<Full<Bytes>>> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await?.to_bytes();
    let stream = TcpStream::connect(upstream).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let out = sender
        .send_request(Request::from_parts(parts, Full::new(body)))
        .await?;
    let (parts, body) = out.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Response::from_parts(parts, Full::new(body)))
}
