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

pub mod handler;
pub mod pick;
pub mod server;
pub mod table;
pub mod zone;

use std::net::SocketAddr;

pub use handler::WeightedZone;
pub use server::DnsServer;
pub use table::WeightTable;
pub use zone::NameServer;

use super::records::RecordBook;
use super::{Applied, RecordState, TrafficBackend, TrafficChange, TrafficError, validate};
use crate::config::Config;

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
    /// backend that sets its weights.
    pub async fn serve(
        zone: &str,
        nameservers: &[NameServer],
        book: RecordBook,
        listen: SocketAddr,
    ) -> Result<Self, TrafficError> {
        let inner = zone::build(zone, nameservers, &book)?;
        let table = WeightTable::new(book)?;
        let handler = handler::shared(WeightedZone::new(inner, table.clone()));
        let server = DnsServer::start(listen, handler).await.map_err(|e| {
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
