//! A raw DNS-over-UDP client: one query, one answer, no cache — unlike a
//! resolver, which would answer repeated queries from its cache for the
//! TTL and hide the server's weighted choice.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_server::proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_server::proto::rr::{Name, RecordType};
use tokio::net::UdpSocket;

/// A UDP socket that asks one server.
pub struct Client {
    socket: UdpSocket,
    server: SocketAddr,
    id: u16,
}

/// What a query got.
#[derive(Debug)]
pub struct Answer {
    /// The response code.
    pub rcode: ResponseCode,
    /// The AA flag.
    pub authoritative: bool,
    /// Answer records as `type value` (e.g. `A 192.0.2.1`).
    pub answers: Vec<String>,
    /// Authority records' types.
    pub authorities: Vec<RecordType>,
    /// TTLs of the answers.
    pub ttls: Vec<u32>,
}

impl Client {
    /// A client of `server`.
    pub async fn new(server: SocketAddr) -> anyhow::Result<Self> {
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        Ok(Client {
            socket,
            server,
            id: 0,
        })
    }

    /// Asks `name`/`rtype` once.
    pub async fn ask(&mut self, name: &str, rtype: RecordType) -> anyhow::Result<Answer> {
        self.id = self.id.wrapping_add(1);
        let mut q = Message::new(self.id, MessageType::Query, OpCode::Query);
        q.add_query(Query::query(Name::from_ascii(name)?, rtype));
        self.socket.send_to(&q.to_vec()?, self.server).await?;
        let mut buf = vec![0u8; 4096];
        loop {
            let (n, _) =
                tokio::time::timeout(Duration::from_secs(2), self.socket.recv_from(&mut buf))
                    .await??;
            let m = Message::from_vec(&buf[..n])?;
            if m.metadata.id != self.id {
                continue;
            }
            return Ok(Answer {
                rcode: m.metadata.response_code,
                authoritative: m.metadata.authoritative,
                answers: m
                    .answers
                    .iter()
                    .map(|r| format!("{} {}", r.record_type(), r.data))
                    .collect(),
                authorities: m.authorities.iter().map(|r| r.record_type()).collect(),
                ttls: m.answers.iter().map(|r| r.ttl).collect(),
            });
        }
    }
}
