//! Shared by the fast-path tests: the same zone served twice — once with
//! the fast path (hickory for what it declines), once by hickory's own UDP
//! server — and the comparison of their answers to one packet.

#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use hickory_server::proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_server::proto::rr::{Name, RecordType};
use switchyard_controller::config::{AnswerMode, RecordType as ConfigType};
use switchyard_controller::traffic::conformance::Subject;
use switchyard_controller::traffic::embedded::udp::UdpCounts;
use switchyard_controller::traffic::embedded::{EmbeddedBackend, NameServer, Udp};
use switchyard_controller::traffic::records::{RecordBook, WeightedRecord};
use switchyard_controller::traffic::{RecordChange, TrafficBackend, TrafficChange, WriterChange};
use tokio::net::UdpSocket;

/// The zone both servers serve.
pub const ZONE: &str = "example.com.";

/// How long a server may take before "no answer" is concluded.
pub const SILENCE: Duration = Duration::from_millis(300);

/// The subject's records plus an "all records" name, an AAAA name, a
/// name two labels down (so `svc.` is an empty non-terminal) and a
/// writer record.
pub fn book() -> RecordBook {
    let s = Subject::new(ZONE);
    let mut book = s.book();
    book.insert_weighted(WeightedRecord {
        name: format!("all.{ZONE}"),
        kind: ConfigType::A,
        ttl: 45,
        answer: AnswerMode::All,
        values: s
            .regions
            .iter()
            .enumerate()
            .map(|(i, r)| (r.clone(), format!("198.51.100.{}", i + 1)))
            .collect(),
    });
    book.insert_weighted(WeightedRecord {
        name: format!("v6.{ZONE}"),
        kind: ConfigType::Aaaa,
        ttl: 20,
        answer: AnswerMode::One,
        values: s
            .regions
            .iter()
            .enumerate()
            .map(|(i, r)| (r.clone(), format!("2001:db8::{}", i + 1)))
            .collect(),
    });
    book.insert_weighted(WeightedRecord {
        name: format!("api.svc.{ZONE}"),
        kind: ConfigType::A,
        ttl: 30,
        answer: AnswerMode::One,
        values: [(s.regions[0].clone(), "203.0.113.1".to_string())].into(),
    });
    book
}

/// The same zone served with the fast path and by hickory alone.
pub struct Pair {
    /// Fast path (2 workers), hickory for what it declines.
    pub fast: EmbeddedBackend,
    /// hickory's own UDP server.
    pub slow: EmbeddedBackend,
}

impl Pair {
    /// Both servers on free loopback ports, with `weights` for `api`, `web`, `v6`
    /// and `all`, and the writer record pointed at `m1` (an A record), unless
    /// `writer` is false.
    pub async fn start(weights: [u32; 3], writer: bool) -> anyhow::Result<Self> {
        let ns = [
            NameServer {
                name: format!("ns1.{ZONE}"),
                address: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            },
            NameServer {
                name: "ns2.example.net.".into(),
                address: None,
            },
        ];
        let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let fast = EmbeddedBackend::serve_with(ZONE, &ns, book(), listen, Udp::Fast(2)).await?;
        let slow = EmbeddedBackend::serve_with(ZONE, &ns, book(), listen, Udp::Hickory).await?;
        let pair = Pair { fast, slow };
        pair.set(weights, writer).await?;
        Ok(pair)
    }

    /// Applies the same weights (and writer) to both.
    pub async fn set(&self, weights: [u32; 3], writer: bool) -> anyhow::Result<()> {
        let s = Subject::new(ZONE);
        let change = TrafficChange {
            records: [
                s.record(),
                s.other(),
                format!("v6.{ZONE}"),
                format!("all.{ZONE}"),
            ]
            .into_iter()
            .map(|record| RecordChange {
                record,
                weights: s.regions.iter().cloned().zip(weights).collect(),
            })
            .collect(),
            writers: if writer {
                vec![WriterChange {
                    record: s.writer(),
                    member: "m1".into(),
                }]
            } else {
                vec![]
            },
            force: true,
        };
        self.fast.apply_change(&change).await?;
        self.slow.apply_change(&change).await?;
        Ok(())
    }

    /// The fast server's address.
    pub fn fast_addr(&self) -> SocketAddr {
        self.fast.addr().expect("fast server address")
    }

    /// The hickory server's address.
    pub fn slow_addr(&self) -> SocketAddr {
        self.slow.addr().expect("hickory server address")
    }

    /// The fast server's counts.
    pub fn counts(&self) -> UdpCounts {
        self.fast.udp_counts().expect("the fast server has workers")
    }

    /// Sends `packet` to both (from fresh sockets, at the same time);
    /// their responses, `None` for silence.
    pub async fn ask(&self, packet: &[u8]) -> anyhow::Result<(Option<Vec<u8>>, Option<Vec<u8>>)> {
        let (f, s) = tokio::join!(
            exchange(self.fast_addr(), packet),
            exchange(self.slow_addr(), packet)
        );
        Ok((f?, s?))
    }
}

/// Sends `packet` to `addr` from a fresh socket; the first datagram back
/// within [`SILENCE`], or `None`.
pub async fn exchange(addr: SocketAddr, packet: &[u8]) -> anyhow::Result<Option<Vec<u8>>> {
    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    socket.send_to(packet, addr).await?;
    let mut buf = vec![0u8; 65_536];
    match tokio::time::timeout(SILENCE, socket.recv_from(&mut buf)).await {
        Ok(r) => {
            let (n, _) = r?;
            Ok(Some(buf[..n].to_vec()))
        }
        Err(_) => Ok(None),
    }
}

/// A query for `name`/`qtype` (RD set, no EDNS) as a resolver sends it,
/// changed by `edit` first.
pub fn query(name: &str, qtype: RecordType, edit: impl FnOnce(&mut Message)) -> Vec<u8> {
    let mut m = Message::new(0x4a4a, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).expect("name"), qtype));
    edit(&mut m);
    m.to_vec().expect("encodable query")
}

/// EDNS with a 1232-byte buffer, as resolvers send it today.
pub fn edns(m: &mut Message) {
    let mut e = Edns::new();
    e.set_max_payload(1232);
    m.set_edns(e);
}

/// How two responses must agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Match {
    /// Byte for byte (also: both silent).
    Bytes,
    /// Same header, question, answer and additional records and the same
    /// authority records (less the NS records hickory adds to a positive
    /// answer), and no longer: the fast path compresses names against the
    /// question, hickory does not.
    Content,
}

/// Why `fast` and `slow` differ, if they do.
pub fn differ(fast: &Option<Vec<u8>>, slow: &Option<Vec<u8>>, how: Match) -> Option<String> {
    match (fast, slow, how) {
        (None, None, _) => None,
        (Some(f), Some(s), Match::Bytes) if f == s => None,
        (Some(f), Some(s), Match::Bytes) => Some(format!(
            "bytes differ:\n fast {f:02x?}\n slow {s:02x?}\n fast {}\n slow {}",
            show(f),
            show(s)
        )),
        (Some(f), Some(s), Match::Content) => {
            let (Ok(fm), Ok(sm)) = (Message::from_vec(f), Message::from_vec(s)) else {
                return Some(format!("unparsable: fast {f:02x?} slow {s:02x?}"));
            };
            let mut problems = Vec::new();
            if fm.metadata != sm.metadata {
                problems.push(format!("header {:?} vs {:?}", fm.metadata, sm.metadata));
            }
            if fm.queries != sm.queries {
                problems.push(format!("question {:?} vs {:?}", fm.queries, sm.queries));
            }
            if fm.answers != sm.answers {
                problems.push(format!("answers {:?} vs {:?}", fm.answers, sm.answers));
            }
            // hickory adds the zone's NS records to a SOA answer; the
            // fast path answers only what was asked, as gdnsd does.
            let hickory_authority: Vec<_> = sm
                .authorities
                .iter()
                .filter(|r| r.record_type() != RecordType::NS || sm.answers.is_empty())
                .cloned()
                .collect();
            if fm.authorities != hickory_authority {
                problems.push(format!(
                    "authority {:?} vs {:?}",
                    fm.authorities, sm.authorities
                ));
            }
            if fm.additionals != sm.additionals || fm.edns != sm.edns {
                problems.push("additional section".to_string());
            }
            if f.len() > s.len() {
                problems.push(format!("fast {} bytes > hickory {}", f.len(), s.len()));
            }
            (!problems.is_empty()).then(|| problems.join("; "))
        }
        (f, s, _) => Some(format!(
            "one silent: fast {:?} slow {:?}",
            f.as_deref().map(show),
            s.as_deref().map(show)
        )),
    }
}

/// A response as hickory reads it (for failure messages).
pub fn show(bytes: &[u8]) -> String {
    match Message::from_vec(bytes) {
        Ok(m) => format!(
            "{:?} q={:?} an={:?} ns={:?} ar={:?}",
            m.metadata, m.queries, m.answers, m.authorities, m.additionals
        ),
        Err(e) => format!("unparsable ({e})"),
    }
}
