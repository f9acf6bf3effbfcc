//! The UDP slow path: every query the fast path declines (EDNS, ANY,
//! malformed, outside the zone, names it does not pre-encode…) is answered
//! by hickory's catalog exactly as hickory's own UDP server would — the
//! same header check, FORMERR for an unreadable message, no answer to a
//! response, `ResponseHandle` encoding (truncation at 512 bytes or the
//! EDNS size) — and sent from the socket it came in on.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use futures_util::StreamExt;
use hickory_server::net::BufDnsStreamHandle;
use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{Header, MessageType, ResponseCode};
use hickory_server::proto::serialize::binary::{BinDecodable, BinDecoder};
use hickory_server::server::{Request, RequestHandler, ResponseHandle, ResponseHandler};
use hickory_server::zone_handler::{Catalog, MessageResponseBuilder, Queries};
use nix::sys::socket::{MsgFlags, SockaddrStorage, sendto};
use tokio::runtime::Handle;

/// Responses waiting to be sent, per worker socket (hickory's UDP server
/// uses the same kind of queue).
const QUEUE: usize = 1024;

/// Hands declined queries of one worker socket to hickory.
#[derive(Clone)]
pub struct SlowPath {
    catalog: Arc<Catalog>,
    runtime: Handle,
    stream: BufDnsStreamHandle,
}

impl std::fmt::Debug for SlowPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlowPath").finish_non_exhaustive()
    }
}

impl SlowPath {
    /// A slow path answering with `catalog` on `runtime`, its responses
    /// sent from `socket` (a clone of the worker's socket). The sending
    /// task ends when the last handle is dropped.
    pub fn start(catalog: Arc<Catalog>, socket: OwnedFd, runtime: Handle) -> Self {
        let placeholder = SocketAddr::from(([127, 255, 255, 254], 0));
        let (stream, mut queue) = BufDnsStreamHandle::with_buffer_size(placeholder, QUEUE);
        runtime.spawn(async move {
            while let Some(message) = queue.next().await {
                let (bytes, dst) = message.into_parts();
                // Never blocks the runtime: a full socket buffer drops the
                // response, as a full network would (the client retries).
                if let Err(error) = sendto(
                    socket.as_raw_fd(),
                    &bytes,
                    &SockaddrStorage::from(dst),
                    MsgFlags::MSG_DONTWAIT,
                ) {
                    tracing::debug!(%error, %dst, "embedded DNS: response not sent");
                }
            }
        });
        SlowPath {
            catalog,
            runtime,
            stream,
        }
    }

    /// Answers `packet` from `src` with hickory, in a task of its own.
    pub fn submit(&self, packet: Vec<u8>, src: SocketAddr) {
        let stream = self.stream.with_remote_addr(src);
        let catalog = self.catalog.clone();
        self.runtime.spawn(async move {
            answer(&catalog, packet, src, stream).await;
        });
    }
}

/// What hickory's UDP server does with one datagram.
async fn answer(catalog: &Catalog, packet: Vec<u8>, src: SocketAddr, stream: BufDnsStreamHandle) {
    // Shorter than a header: not DNS, no answer.
    let Ok(header) = Header::read(&mut BinDecoder::new(&packet)) else {
        return;
    };
    let mut response = ResponseHandle::new(src, stream, Protocol::Udp);
    match Request::from_bytes(packet, src, Protocol::Udp) {
        Ok(request) => {
            // Never answer a response: that is how reflection loops start.
            if request.metadata.message_type == MessageType::Response {
                return;
            }
            catalog
                .handle_request::<_, TokioTime>(&request, response)
                .await;
        }
        Err(error) => {
            tracing::debug!(%error, %src, "embedded DNS: malformed query, FORMERR");
            let Ok(queries) = Queries::read(&mut BinDecoder::new(&[]), 0) else {
                return;
            };
            let message = MessageResponseBuilder::new(&queries, None)
                .error_msg(&header.metadata, ResponseCode::FormErr);
            if let Err(error) = response.send_response(message).await {
                tracing::debug!(%error, %src, "embedded DNS: FORMERR not sent");
            }
        }
    }
}
