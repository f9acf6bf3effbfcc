//! An HTTP endpoint whose answer a test switches at run time: healthy (200),
//! failing (500), hanging (accepts, never answers), or refusing connections
//! (its listener is closed, so connects get RST).
//!
//! It binds port 0 and reports its address; in `Refuse` mode the port is
//! released and bound again when the test switches back.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Mutex;
use tokio::task::JoinSet;

/// What the target does with the next request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMode {
    /// `200 OK` with body `ok`.
    Healthy,
    /// `500 Internal Server Error` with body `failing`.
    Failing,
    /// Accepts the connection and the request, never answers.
    Hang,
    /// Closes the listener: new connections are refused, open ones dropped.
    Refuse,
}

impl HttpMode {
    fn to_u8(self) -> u8 {
        match self {
            HttpMode::Healthy => 0,
            HttpMode::Failing => 1,
            HttpMode::Hang => 2,
            HttpMode::Refuse => 3,
        }
    }
    fn from_u8(v: u8) -> Self {
        match v {
            0 => HttpMode::Healthy,
            1 => HttpMode::Failing,
            2 => HttpMode::Hang,
            _ => HttpMode::Refuse,
        }
    }
}

#[derive(Debug)]
struct Shared {
    mode: AtomicU8,
    requests: AtomicU64,
}

/// A switchable HTTP endpoint served by this test process on loopback.
#[derive(Debug)]
pub struct HttpTarget {
    addr: SocketAddr,
    /// The network namespace its socket lives in (none: this process's).
    netns: Option<String>,
    shared: Arc<Shared>,
    server: Mutex<Option<JoinSet<()>>>,
}

impl HttpTarget {
    /// Starts a healthy target on a free loopback port.
    pub async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        Self::serving(listener, None)
    }

    /// Starts a healthy target on a free port of `net.addr(i)`, its socket
    /// inside namespace `i` (served by this process all the same), so a
    /// partition of that namespace cuts it off like the region's other
    /// servers.
    pub async fn start_in(net: &crate::netns::NetNs, i: usize) -> anyhow::Result<Self> {
        let addr = SocketAddr::from((net.addr(i), 0));
        let listener = TcpListener::from_std(net.bind_tcp(i, addr)?)?;
        Self::serving(listener, Some(net.name(i).to_string()))
    }

    fn serving(listener: TcpListener, netns: Option<String>) -> anyhow::Result<Self> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            mode: AtomicU8::new(HttpMode::Healthy.to_u8()),
            requests: AtomicU64::new(0),
        });
        let set = serve(listener, shared.clone());
        Ok(HttpTarget {
            addr,
            netns,
            shared,
            server: Mutex::new(Some(set)),
        })
    }

    /// The address the target listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://addr/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Requests answered or held so far (all modes but `Refuse`).
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// The current mode.
    pub fn mode(&self) -> HttpMode {
        HttpMode::from_u8(self.shared.mode.load(Ordering::SeqCst))
    }

    /// Switches what the target does from now on.
    pub async fn set_mode(&self, mode: HttpMode) -> anyhow::Result<()> {
        let mut server = self.server.lock().await;
        self.shared.mode.store(mode.to_u8(), Ordering::SeqCst);
        match (mode, server.is_some()) {
            (HttpMode::Refuse, true) => {
                // Dropping the JoinSet aborts the accept loop (closing the
                // listener) and every open connection.
                if let Some(mut set) = server.take() {
                    set.shutdown().await;
                }
            }
            (HttpMode::Refuse, false) => {}
            (_, false) => {
                let bound = match &self.netns {
                    None => TcpListener::bind(self.addr).await,
                    Some(ns) => {
                        crate::netns::bind_tcp_in(ns, self.addr).and_then(TcpListener::from_std)
                    }
                };
                let listener = bound
                    .map_err(|e| anyhow::anyhow!("re-binding HTTP target on {}: {e}", self.addr))?;
                *server = Some(serve(listener, self.shared.clone()));
            }
            (_, true) => {}
        }
        Ok(())
    }
}

fn serve(listener: TcpListener, shared: Arc<Shared>) -> JoinSet<()> {
    let mut set = JoinSet::new();
    let conns = Arc::new(std::sync::Mutex::new(JoinSet::new()));
    let conns_for_accept = conns.clone();
    set.spawn(async move {
        // Keep the connection set alive as long as the accept loop: aborting
        // the loop drops it and with it every open connection.
        let conns = conns_for_accept;
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                // Out of file descriptors or similar: back off, do not spin.
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            };
            let shared = shared.clone();
            let mut guard = conns.lock().unwrap_or_else(|e| e.into_inner());
            // Reap finished connections so the set does not grow.
            while guard.try_join_next().is_some() {}
            guard.spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let shared = shared.clone();
                    async move { answer(req, &shared).await }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    drop(conns);
    set
}

async fn answer(
    _req: Request<Incoming>,
    shared: &Shared,
) -> Result<Response<Full<Bytes>>, Infallible> {
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let (status, body) = match HttpMode::from_u8(shared.mode.load(Ordering::SeqCst)) {
        HttpMode::Healthy => (StatusCode::OK, "ok"),
        HttpMode::Failing => (StatusCode::INTERNAL_SERVER_ERROR, "failing"),
        HttpMode::Hang | HttpMode::Refuse => std::future::pending().await,
    };
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    Ok(resp)
}
