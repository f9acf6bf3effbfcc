//! The embedded authoritative server's sockets: UDP and TCP on the same
//! address, served by hickory's `Server` over a one-zone catalog, stopped
//! when the [`DnsServer`] is dropped.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_server::Server;
use hickory_server::proto::rr::LowerName;
use hickory_server::zone_handler::{Catalog, ZoneHandler};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::oneshot;

/// A TCP client that sends nothing for this long is disconnected.
const TCP_IDLE: Duration = Duration::from_secs(5);

/// Per-connection buffer of TCP responses.
const TCP_RESPONSE_BUFFER: usize = 64;

/// Tries for a port free for both UDP and TCP when asked for port 0.
const BIND_TRIES: usize = 16;

/// A running DNS server; dropping it stops it.
#[derive(Debug)]
pub struct DnsServer {
    addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

impl DnsServer {
    /// Binds UDP and TCP on `listen` (port 0: one free port for both) and
    /// serves `zone`: REFUSED for every name outside it. Must run inside a
    /// Tokio runtime, which the server's tasks then live in.
    pub async fn start(listen: SocketAddr, zone: Arc<dyn ZoneHandler>) -> io::Result<Self> {
        let (udp, tcp) = bind(listen).await?;
        let addr = udp.local_addr()?;
        let mut catalog = Catalog::new();
        let origin: LowerName = zone.origin().clone();
        catalog.upsert(origin, vec![zone]);
        let mut server = Server::new(catalog);
        server.register_socket(udp);
        server.register_listener(tcp, TCP_IDLE, TCP_RESPONSE_BUFFER);
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
        tracing::info!(%addr, "embedded DNS server listening (UDP and TCP)");
        Ok(DnsServer { addr, _stop: stop })
    }

    /// The bound address (UDP and TCP share it).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

async fn bind(listen: SocketAddr) -> io::Result<(UdpSocket, TcpListener)> {
    if listen.port() != 0 {
        let udp = UdpSocket::bind(listen).await?;
        let tcp = TcpListener::bind(listen).await?;
        return Ok((udp, tcp));
    }
    let mut last = None;
    for _ in 0..BIND_TRIES {
        let udp = UdpSocket::bind(listen).await?;
        let port = udp.local_addr()?.port();
        match TcpListener::bind(SocketAddr::new(listen.ip(), port)).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no port free for both UDP and TCP")))
}
