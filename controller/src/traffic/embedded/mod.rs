//! The embedded authoritative DNS server (hickory-server) and the traffic
//! backend that sets its weights.
//!
//! Per ARCHITECTURE.md §6 every controller runs a server for the zone (one
//! name server per region); the leader's `apply` writes the weights to etcd
//! and every server answers from its watch of them. This module provides
//! the server ([`DnsServer`] over a [`WeightedZone`]), the shared handle its
//! weights change through at run time ([`WeightTable`]: no restart, no
//! dropped query), and [`EmbeddedBackend`], which applies changes to the
//! local table. Feeding the table from the etcd watch on the followers is
//! the controller runtime's job (it calls [`WeightTable::apply`] with the
//! change it observed).

pub mod fast;
pub mod handler;
pub mod pick;
pub mod server;
pub mod slow;
pub mod table;
pub mod udp;
pub mod zone;

use std::net::SocketAddr;
use std::sync::Arc;

pub use handler::WeightedZone;
pub use server::{DnsServer, UdpPath, default_workers};
pub use table::WeightTable;
pub use zone::NameServer;

use super::records::RecordBook;
use super::{Applied, RecordState, TrafficBackend, TrafficChange, TrafficError, validate};
use crate::config::Config;

/// How the embedded server answers over UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Udp {
    /// hickory's own UDP server answers everything (the reference).
    Hickory,
    /// The fast path with this many workers (sockets and threads), hickory
    /// for the queries it declines.
    Fast(usize),
}

/// A traffic backend that is the weights of a local embedded DNS server.
#[derive(Debug)]
pub struct EmbeddedBackend {
    table: WeightTable,
    server: Option<DnsServer>,
}

/// The zone's name servers from the config: `ns-<region>.<zone>` for every
/// region with a controller, with glue from that controller's listen
/// address when it names one (not `0.0.0.0`/`::`).
pub fn nameservers(cfg: &Config, zone: &str) -> Vec<NameServer> {
    let zone = super::records::canonical_name(zone);
    let mut out: Vec<NameServer> = Vec::new();
    for c in &cfg.controllers {
        let name = format!("ns-{}.{zone}", c.region.to_ascii_lowercase());
        if out.iter().any(|n| n.name == name) {
            continue;
        }
        let ip = c.listen.ip();
        out.push(NameServer {
            name,
            address: (!ip.is_unspecified()).then_some(ip),
        });
    }
    if out.is_empty() {
        out.push(NameServer {
            name: format!("ns.{zone}"),
            address: None,
        });
    }
    out
}

impl EmbeddedBackend {
    /// Starts a server for `zone` on `listen` (port 0 picks one; see
    /// [`addr`](Self::addr)) answering `book`'s records, and returns the
    /// backend that sets its weights. UDP goes through the fast path with
    /// [`default_workers`] workers.
    pub async fn serve(
        zone: &str,
        nameservers: &[NameServer],
        book: RecordBook,
        listen: SocketAddr,
    ) -> Result<Self, TrafficError> {
        Self::serve_with(
            zone,
            nameservers,
            book,
            listen,
            Udp::Fast(default_workers()),
        )
        .await
    }

    /// Like [`serve`](Self::serve), with UDP served as `udp` says (the
    /// tests compare the fast path with hickory's own UDP server).
    pub async fn serve_with(
        zone: &str,
        nameservers: &[NameServer],
        book: RecordBook,
        listen: SocketAddr,
        udp: Udp,
    ) -> Result<Self, TrafficError> {
        let inner = zone::build(zone, nameservers, &book)?;
        let facts = Arc::new(fast::ZoneFacts::new(zone, nameservers, &book)?);
        let table = WeightTable::new(book)?;
        let handler = handler::shared(WeightedZone::new(inner, table.clone()));
        let path = match udp {
            Udp::Hickory => UdpPath::Hickory,
            Udp::Fast(workers) => UdpPath::Fast {
                source: udp::FastSource {
                    facts,
                    table: table.clone(),
                },
                workers,
            },
        };
        let server = DnsServer::start_with(listen, handler, path)
            .await
            .map_err(|e| {
                TrafficError::Unavailable(format!("embedded DNS cannot listen on {listen}: {e}"))
            })?;
        Ok(EmbeddedBackend {
            table,
            server: Some(server),
        })
    }

    /// The server `cfg` describes (`[dns] backend = "embedded"`).
    pub async fn from_config(
        cfg: &Config,
        zone: &str,
        listen: SocketAddr,
    ) -> Result<Self, TrafficError> {
        Self::serve(
            zone,
            &nameservers(cfg, zone),
            RecordBook::from_config(cfg),
            listen,
        )
        .await
    }

    /// The handle the server answers from: apply a change observed in etcd
    /// to it and the next query reflects it.
    pub fn table(&self) -> &WeightTable {
        &self.table
    }

    /// With the fast path: how many UDP queries it answered and how many
    /// went to hickory.
    pub fn udp_counts(&self) -> Option<udp::UdpCounts> {
        self.server.as_ref().and_then(DnsServer::udp_counts)
    }

    /// Where the server listens (UDP and TCP), if this backend runs one.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.server.as_ref().map(DnsServer::addr)
    }
}

#[async_trait::async_trait]
impl TrafficBackend for EmbeddedBackend {
    async fn read(&self, record: &str) -> Result<RecordState, TrafficError> {
        self.table.read(record)
    }

    async fn apply_change(&self, change: &TrafficChange) -> Result<Applied, TrafficError> {
        validate(change)?;
        self.table.book().check(change)?;
        self.table.apply(change)
    }
}
