//! Opening TCP connections for checks: resolve, bind the probe's source
//! address if it has one, connect, and say why it failed in the terms of
//! [`FailureKind`].

use std::io;
use std::net::{IpAddr, SocketAddr};

use tokio::net::{TcpSocket, TcpStream};

use super::{Failure, FailureKind};

/// Resolves `host:port` to one address; IP literals skip the resolver.
pub async fn resolve(host: &str, port: u16) -> Result<SocketAddr, Failure> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let mut addrs = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| Failure::new(FailureKind::Resolve, format!("{host}: {e}")))?;
    addrs
        .next()
        .ok_or_else(|| Failure::new(FailureKind::Resolve, format!("{host}: no address")))
}

/// Connects to `addr`, from `source` when given (port chosen by the kernel).
pub async fn connect(addr: SocketAddr, source: Option<IpAddr>) -> Result<TcpStream, Failure> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|e| connect_failure(addr, &e))?;
    if let Some(ip) = source {
        socket
            .bind(SocketAddr::new(ip, 0))
            .map_err(|e| Failure::new(FailureKind::Connect, format!("bind {ip}: {e}")))?;
    }
    let stream = socket
        .connect(addr)
        .await
        .map_err(|e| connect_failure(addr, &e))?;
    // Checks send one small request: don't let Nagle hold it back.
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Classifies a connect error: refused (nothing listens) apart from the rest.
pub fn connect_failure(addr: SocketAddr, e: &io::Error) -> Failure {
    let kind = match e.kind() {
        io::ErrorKind::ConnectionRefused => FailureKind::Refused,
        _ => FailureKind::Connect,
    };
    Failure::new(kind, format!("{addr}: {e}"))
}

/// Classifies an error met after connecting (reading, writing).
pub fn io_failure(what: &str, e: &io::Error) -> Failure {
    let kind = match e.kind() {
        io::ErrorKind::ConnectionRefused => FailureKind::Refused,
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => FailureKind::Connect,
        _ => FailureKind::Protocol,
    };
    Failure::new(kind, format!("{what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_closed_port_is_refused() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let err = connect(addr, None).await.expect_err("nothing listens");
        assert_eq!(err.kind, FailureKind::Refused, "{err}");
    }

    #[tokio::test]
    async fn the_source_address_is_bound() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let source: IpAddr = "127.0.0.2".parse().expect("ip");
        let (client, accepted) = tokio::join!(connect(addr, Some(source)), listener.accept());
        let client = client.expect("connect");
        let (_, peer) = accepted.expect("accept");
        assert_eq!(peer.ip(), source);
        drop(client);
    }

    #[tokio::test]
    async fn ip_literals_resolve_without_dns() {
        let a = resolve("::1", 80).await.expect("literal");
        assert_eq!(a, "[::1]:80".parse().expect("addr"));
    }
}
