//! The static part of the embedded zone: SOA, NS (one name server per
//! region, with glue where the address is known) and every managed record,
//! held by hickory's in-memory zone handler.
//!
//! The managed records are in it too, so that names *around* them answer
//! right (an empty non-terminal such as `svc.example.com.` above
//! `api.svc.example.com.` is NODATA, not NXDOMAIN); their answers come from
//! the weight table, never from here.

use std::net::IpAddr;

use hickory_server::proto::rr::rdata::{A, AAAA, NS, SOA};
use hickory_server::proto::rr::{Name, RData, Record};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, ZoneType};

use super::table::{dns_name, make_record};
use crate::traffic::TrafficError;
use crate::traffic::records::{RecordBook, RecordSpec, canonical_name};

/// TTL of the SOA and NS records, in seconds.
pub const ZONE_TTL: u32 = 3600;

/// Negative-caching TTL (SOA minimum): how long a resolver remembers
/// NXDOMAIN/NODATA. Short, so a name added to the config shows up soon.
pub const NEGATIVE_TTL: u32 = 60;

/// One authoritative name server of the zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameServer {
    /// Its host name (in the zone: glue is served for it).
    pub name: String,
    /// Its address, when known (glue A/AAAA record).
    pub address: Option<IpAddr>,
}

/// The zone's SOA as both servers answer it: the hickory zone below and
/// the fast path's pre-encoded negative answers are built from this one
/// value, so they cannot disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoaFacts {
    /// The zone apex.
    pub origin: Name,
    /// The SOA record (owner `origin`, TTL [`ZONE_TTL`]).
    pub record: Record,
}

/// The SOA of `origin`: MNAME is the first name server, RNAME
/// `hostmaster.<origin>`, negative TTL [`NEGATIVE_TTL`].
pub fn soa(origin: &str, nameservers: &[NameServer]) -> Result<SoaFacts, TrafficError> {
    let origin_name = dns_name(&canonical_name(origin))?;
    let bad = |what: &str| TrafficError::Refused(format!("zone {origin}: {what}"));
    let first_ns = nameservers
        .first()
        .ok_or_else(|| bad("needs at least one name server"))?;
    let mname = dns_name(&canonical_name(&first_ns.name))?;
    let rname = Name::from_ascii("hostmaster")
        .and_then(|h| h.append_domain(&origin_name))
        .map_err(|e| bad(&e.to_string()))?;
    let soa = SOA::new(mname, rname, SERIAL, 3600, 600, 86_400, NEGATIVE_TTL);
    Ok(SoaFacts {
        record: Record::from_rdata(origin_name.clone(), ZONE_TTL, RData::SOA(soa)),
        origin: origin_name,
    })
}

/// The zone's serial (the zone's static part never changes at run time:
/// weights change answers, not the zone).
const SERIAL: u32 = 1;

/// The zone's SOA, NS and glue records, and a record of every managed name.
pub fn build(
    origin: &str,
    nameservers: &[NameServer],
    book: &RecordBook,
) -> Result<InMemoryZoneHandler, TrafficError> {
    let SoaFacts {
        origin: origin_name,
        record: soa_record,
    } = soa(origin, nameservers)?;
    let bad = |what: &str| TrafficError::Refused(format!("zone {origin}: {what}"));
    let serial = SERIAL;
    let mut zone =
        InMemoryZoneHandler::empty(origin_name.clone(), ZoneType::Primary, AxfrPolicy::Deny);
    let mut records = vec![soa_record];
    for ns in nameservers {
        let name = dns_name(&canonical_name(&ns.name))?;
        records.push(Record::from_rdata(
            origin_name.clone(),
            ZONE_TTL,
            RData::NS(NS(name.clone())),
        ));
        match ns.address {
            Some(IpAddr::V4(ip)) => {
                records.push(Record::from_rdata(name, ZONE_TTL, RData::A(A(ip))))
            }
            Some(IpAddr::V6(ip)) => {
                records.push(Record::from_rdata(name, ZONE_TTL, RData::AAAA(AAAA(ip))))
            }
            None => {}
        }
    }
    for (name, spec) in book.iter() {
        let dns = dns_name(name)?;
        if !origin_name.zone_of(&dns) {
            return Err(bad(&format!("{name} is outside the zone")));
        }
        match spec {
            RecordSpec::Weighted(rec) => {
                for value in rec.values.values() {
                    records.push(make_record(&dns, rec.kind, value, rec.ttl)?);
                }
            }
            RecordSpec::Writer(rec) => {
                for t in rec.members.values() {
                    records.push(make_record(&dns, t.kind, &t.value, rec.ttl)?);
                }
            }
        }
    }
    for record in records {
        let what = format!("{} {}", record.name, record.record_type());
        // The in-memory store refuses e.g. a second type beside a CNAME:
        // the placeholder is then absent, which only matters for names
        // below it, so it is not an error.
        if !zone.upsert_mut(record, serial) {
            tracing::debug!(record = %what, "embedded zone: placeholder not stored");
        }
    }
    Ok(zone)
}
