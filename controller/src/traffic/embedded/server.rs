//! The embedded authoritative server's sockets: UDP and TCP on the same
//! address, stopped when the [`DnsServer`] is dropped.
//!
//! TCP is always hickory's `Server` over a one-zone catalog. UDP is either
//! hickory's too ([`UdpPath::Hickory`], the reference the fast path is
//! tested against) or, by default, the fast path's workers
//! ([`UdpPath::Fast`]): one `SO_REUSEPORT` socket per worker, pre-encoded
//! answers, hickory for every query they decline.

use std::io;
use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::Arc;
use std::time::Duration;

use hickory_server::Server;
use hickory_server::proto::rr::LowerName;
use hickory_server::zone_handler::{Catalog, ZoneHandler};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::oneshot;

use super::slow::SlowPath;
use super::udp::{self, FastSource, UdpCounts, UdpWorkers};

/// A TCP client that sends nothing for this long is disconnected.
const TCP_IDLE: Duration = Duration::from_secs(5);

/// Per-connection buffer of TCP responses.
const TCP_RESPONSE_BUFFER: usize = 64;

/// Tries for a port free for both UDP and TCP when asked for port 0.
const BIND_TRIES: usize = 16;

/// How UDP queries are answered.
#[derive(Debug, Clone)]
pub enum UdpPath {
    /// hickory's own UDP server for every query.
    Hickory,
    /// The fast path's workers, hickory for what they decline.
    Fast {
        /// What the fast path answers from.
        source: FastSource,
        /// Worker threads, each with its own socket (at least 1).
        workers: usize,
    },
}

/// Fast-path workers by default: one per CPU this process may run on
/// (a process pinned to one core gets one), at most 4.
pub fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 4)
}

/// A running DNS server; dropping it stops it.
#[derive(Debug)]
pub struct DnsServer {
    addr: SocketAddr,
    _stop: oneshot::Sender<()>,
    workers: Option<UdpWorkers>,
}

/// The sockets of one server, bound.
enum Udp {
    Hickory(UdpSocket),
    Fast(Vec<StdUdpSocket>),
}

fn catalog(zone: &Arc<dyn ZoneHandler>) -> Catalog {
    let mut catalog = Catalog::new();
    let origin: LowerName = zone.origin().clone();
    catalog.upsert(origin, vec![zone.clone()]);
    catalog
}

impl DnsServer {
    /// Binds UDP and TCP on `listen` (port 0: one free port for both) and
    /// serves `zone` with hickory alone: REFUSED for every name outside
    /// it. Must run inside a Tokio runtime, which the server's tasks then
    /// live in.
    pub async fn start(listen: SocketAddr, zone: Arc<dyn ZoneHandler>) -> io::Result<Self> {
        Self::start_with(listen, zone, UdpPath::Hickory).await
    }

    /// Like [`start`](Self::start), with UDP served as `udp` says.
    pub async fn start_with(
        listen: SocketAddr,
        zone: Arc<dyn ZoneHandler>,
        udp: UdpPath,
    ) -> io::Result<Self> {
        let workers = match &udp {
            UdpPath::Hickory => 0,
            UdpPath::Fast { workers, .. } => (*workers).max(1),
        };
        let (sockets, tcp) = bind(listen, workers).await?;
        let addr = tcp.local_addr()?;
        let mut server = Server::new(catalog(&zone));
        server.register_listener(tcp, TCP_IDLE, TCP_RESPONSE_BUFFER);
        let workers = match (sockets, udp) {
            (Udp::Hickory(socket), _) => {
                server.register_socket(socket);
                None
            }
            (Udp::Fast(sockets), UdpPath::Fast { source, .. }) => {
                let shared = Arc::new(catalog(&zone));
                let runtime = tokio::runtime::Handle::current();
                Some(udp::spawn(sockets, source, |socket| {
                    SlowPath::start(shared.clone(), socket, runtime.clone())
                })?)
            }
            (Udp::Fast(_), UdpPath::Hickory) => {
                return Err(io::Error::other("fast sockets without a fast path"));
            }
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let token = server.shutdown_token().clone();
        tokio::spawn(async move {
            // Dropping the sender (the DnsServer) also ends the wait.
            let _ = stopped.await;
            token.cancel();
        });
        tokio::spawn(async move {
            if let Err(error) = server.block_until_done().await {
                tracing::error!(%error, %addr, "embedded DNS server stopped");
            }
        });
        tracing::info!(
            %addr,
            udp = if workers.is_some() { "fast path" } else { "hickory" },
            "embedded DNS server listening (UDP and TCP)"
        );
        Ok(DnsServer {
            addr,
            _stop: stop,
            workers,
        })
    }

    /// The bound address (UDP and TCP share it).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// With the fast path: how many UDP queries it answered and how many
    /// went to hickory.
    pub fn udp_counts(&self) -> Option<UdpCounts> {
        self.workers.as_ref().map(UdpWorkers::counts)
    }
}

/// Binds `workers` UDP sockets sharing one port (`SO_REUSEPORT`), or one
/// hickory socket when `workers` is 0, and TCP on the same port.
async fn bind(listen: SocketAddr, workers: usize) -> io::Result<(Udp, TcpListener)> {
    let mut last = None;
    let tries = if listen.port() == 0 { BIND_TRIES } else { 1 };
    for _ in 0..tries {
        match bind_once(listen, workers).await {
            Ok(bound) => return Ok(bound),
            // Port 0: the kernel's UDP port may be taken for TCP; again.
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no port free for both UDP and TCP")))
}

async fn bind_once(listen: SocketAddr, workers: usize) -> io::Result<(Udp, TcpListener)> {
    if workers == 0 {
        let udp = UdpSocket::bind(listen).await?;
        let port = udp.local_addr()?.port();
        let tcp = TcpListener::bind(SocketAddr::new(listen.ip(), port)).await?;
        return Ok((Udp::Hickory(udp), tcp));
    }
    let first = udp::reuseport_socket(listen)?;
    let bound = SocketAddr::new(listen.ip(), first.local_addr()?.port());
    let mut sockets = vec![first];
    for _ in 1..workers {
        sockets.push(udp::reuseport_socket(bound)?);
    }
    let tcp = TcpListener::bind(bound).await?;
    Ok((Udp::Fast(sockets), tcp))
}
