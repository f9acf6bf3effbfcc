//! The gRPC port's TLS handshakes, done here rather than by tonic so that
//! each one takes the certificates current when it starts
//! ([`crate::tls_reload`]): tonic's own TLS config is fixed at start-up.
//! tonic still reads the client's certificate from the stream
//! (`Request::peer_certs`), which is what binds a probe to its vantage.

use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;

use crate::tls::{GrpcTlsMaterial, HANDSHAKE};

/// Handshakes done but not yet taken by the server.
const QUEUE: usize = 64;

/// Accepts on `listener` and yields the connections whose TLS handshake
/// completes within [`HANDSHAKE`], each with the server config current
/// when it was accepted. A failed or slow handshake is dropped, counted
/// (`switchyard_tls_handshake_failures_total{reason}`) and logged at debug
/// with its cause: scanners and plaintext clients are not news, but a
/// count that climbs after a rotation is. Stops when the stream is
/// dropped.
pub fn incoming(
    listener: TcpListener,
    tls: watch::Receiver<Arc<GrpcTlsMaterial>>,
) -> ReceiverStream<std::io::Result<TlsStream<TcpStream>>> {
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = tx.closed() => return,
            };
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: back off, do not spin.
                    tracing::warn!(error = %e, "gRPC accept failed");
                    switchyard_host::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let acceptor = tokio_rustls::TlsAcceptor::from(tls.borrow().server_config());
            let tx = tx.clone();
            tokio::spawn(async move {
                match switchyard_host::time::timeout(HANDSHAKE, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => {
                        let _ = tx.send(Ok(tls)).await;
                    }
                    Ok(Err(e)) => {
                        metrics::counter!("switchyard_tls_handshake_failures_total", "reason" => "refused")
                            .increment(1);
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    }
                    Err(_) => {
                        metrics::counter!("switchyard_tls_handshake_failures_total", "reason" => "timeout")
                            .increment(1);
                        tracing::debug!(%peer, "TLS handshake timed out");
                    }
                }
            });
        }
    });
    ReceiverStream::new(rx)
}
