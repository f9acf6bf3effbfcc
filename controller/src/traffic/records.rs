//! The records a traffic backend manages, taken from the config: each
//! service's weighted record (type, TTL, one value per region) and each
//! database's writer record (one value per member).
//!
//! Route 53 needs the type, TTL and value of every region to UPSERT, and
//! the embedded server needs them to answer, while a [`TrafficChange`] only
//! carries weights and member ids; this book fills in the rest and refuses
//! changes that name something the config does not declare.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use super::{TrafficChange, TrafficError};
use crate::config::{AnswerMode, Config, RecordType};

/// TTL of writer records, in seconds. The config has no field for it: a
/// writer record must follow a failover quickly, and clients that cached
/// the old primary only reach a fenced, read-only server meanwhile.
pub const WRITER_TTL: u32 = 10;

/// A service's weighted record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightedRecord {
    /// Canonical name (lowercase, trailing dot).
    pub name: String,
    /// A, AAAA or CNAME.
    pub kind: RecordType,
    /// TTL from the config.
    pub ttl: u32,
    /// How the embedded server answers (Route 53 always answers one).
    pub answer: AnswerMode,
    /// Region → canonical record data.
    pub values: BTreeMap<String, String>,
}

/// One member a writer record may point at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterTarget {
    /// The member's region.
    pub region: String,
    /// A for an IPv4 host, AAAA for IPv6, CNAME for a host name.
    pub kind: RecordType,
    /// Canonical record data (the host of the member's address).
    pub value: String,
}

/// A database's writer record: always exactly one member's host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterRecord {
    /// Canonical name (lowercase, trailing dot).
    pub name: String,
    /// [`WRITER_TTL`].
    pub ttl: u32,
    /// Member id → target.
    pub members: BTreeMap<String, WriterTarget>,
}

impl WriterRecord {
    /// The member whose kind and value are `kind`/`value`, if any.
    pub fn member_for(&self, kind: RecordType, value: &str) -> Option<(&str, &WriterTarget)> {
        self.members
            .iter()
            .find(|(_, t)| t.kind == kind && t.value == value)
            .map(|(id, t)| (id.as_str(), t))
    }
}

/// A record a backend manages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordSpec {
    /// A service's weighted record.
    Weighted(WeightedRecord),
    /// A database's writer record.
    Writer(WriterRecord),
}

/// Every record a backend manages, by canonical name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordBook {
    records: BTreeMap<String, RecordSpec>,
}

/// A DNS name compared the way DNS does: lowercase, with the trailing dot.
pub fn canonical_name(name: &str) -> String {
    let mut n = name.to_ascii_lowercase();
    if !n.ends_with('.') {
        n.push('.');
    }
    n
}

/// Record data in one spelling, so values from the config, Route 53 and
/// DNS compare equal: IPs as Rust prints them, host names as FQDNs.
pub fn canonical_value(kind: RecordType, value: &str) -> String {
    match kind {
        RecordType::A | RecordType::Aaaa => value
            .parse::<IpAddr>()
            .map(|ip| ip.to_string())
            .unwrap_or_else(|_| value.to_string()),
        RecordType::Cname => canonical_name(value),
    }
}

/// The writer target of a member address (`host:port`).
fn writer_target(region: &str, address: &str) -> WriterTarget {
    let host = match address.parse::<SocketAddr>() {
        Ok(sa) => sa.ip().to_string(),
        Err(_) => address
            .rsplit_once(':')
            .map_or(address, |(h, _)| h)
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
    };
    let kind = match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) => RecordType::A,
        Ok(IpAddr::V6(_)) => RecordType::Aaaa,
        Err(_) => RecordType::Cname,
    };
    WriterTarget {
        region: region.to_string(),
        kind,
        value: canonical_value(kind, &host),
    }
}

/// Database name → its writer record (canonical), for every database of
/// `cfg` that has one: what a failover moves and followers point.
pub fn writer_records(cfg: &Config) -> BTreeMap<String, String> {
    cfg.databases
        .iter()
        .filter_map(|d| {
            d.writer_record
                .as_ref()
                .map(|r| (d.name.clone(), canonical_name(r)))
        })
        .collect()
}

impl RecordBook {
    /// Every service record and database writer record of `cfg`.
    pub fn from_config(cfg: &Config) -> Self {
        let mut book = RecordBook::default();
        for s in &cfg.services {
            book.insert_weighted(WeightedRecord {
                name: canonical_name(&s.record),
                kind: s.record_type,
                ttl: s.ttl,
                answer: s.answer,
                values: s
                    .endpoints
                    .iter()
                    .map(|e| (e.region.clone(), canonical_value(s.record_type, &e.value)))
                    .collect(),
            });
        }
        for d in &cfg.databases {
            if let Some(record) = &d.writer_record {
                book.insert_writer(WriterRecord {
                    name: canonical_name(record),
                    ttl: WRITER_TTL,
                    members: d
                        .members
                        .iter()
                        .map(|m| (m.id.clone(), writer_target(&m.region, &m.address)))
                        .collect(),
                });
            }
        }
        book
    }

    /// Adds (or replaces) a weighted record; for tests and tools that build
    /// a book without a config file.
    pub fn insert_weighted(&mut self, record: WeightedRecord) {
        let mut record = record;
        record.name = canonical_name(&record.name);
        let kind = record.kind;
        for v in record.values.values_mut() {
            *v = canonical_value(kind, v);
        }
        self.records
            .insert(record.name.clone(), RecordSpec::Weighted(record));
    }

    /// Adds (or replaces) a writer record whose members are
    /// `(id, region, host:port)`.
    pub fn insert_writer_members(&mut self, name: &str, members: &[(&str, &str, &str)]) {
        self.insert_writer(WriterRecord {
            name: canonical_name(name),
            ttl: WRITER_TTL,
            members: members
                .iter()
                .map(|(id, region, addr)| (id.to_string(), writer_target(region, addr)))
                .collect(),
        });
    }

    fn insert_writer(&mut self, record: WriterRecord) {
        self.records
            .insert(record.name.clone(), RecordSpec::Writer(record));
    }

    /// The record called `name` (any case, with or without the final dot).
    pub fn get(&self, name: &str) -> Option<&RecordSpec> {
        self.records.get(&canonical_name(name))
    }

    /// Every record, by canonical name.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &RecordSpec)> {
        self.records.iter()
    }

    /// The weighted record `name`, or why a change may not name it.
    pub fn weighted(&self, name: &str) -> Result<&WeightedRecord, TrafficError> {
        match self.get(name) {
            Some(RecordSpec::Weighted(w)) => Ok(w),
            Some(RecordSpec::Writer(_)) => Err(TrafficError::Refused(format!(
                "{name} is a writer record: move it with a writer change, not weights"
            ))),
            None => Err(unknown(name)),
        }
    }

    /// The writer record `name`, or why a change may not name it.
    pub fn writer(&self, name: &str) -> Result<&WriterRecord, TrafficError> {
        match self.get(name) {
            Some(RecordSpec::Writer(w)) => Ok(w),
            Some(RecordSpec::Weighted(_)) => Err(TrafficError::Refused(format!(
                "{name} is a service's weighted record, not a writer record"
            ))),
            None => Err(unknown(name)),
        }
    }

    /// Refuses a change naming a record, region or member the config does
    /// not declare (a backend could not know what value to publish).
    pub fn check(&self, change: &TrafficChange) -> Result<(), TrafficError> {
        for c in &change.records {
            let rec = self.weighted(&c.record)?;
            if let Some(region) = c.weights.keys().find(|r| !rec.values.contains_key(*r)) {
                return Err(TrafficError::Refused(format!(
                    "{}: region {region:?} has no endpoint in the config (known: {})",
                    c.record,
                    rec.values.keys().cloned().collect::<Vec<_>>().join(", ")
                )));
            }
        }
        for w in &change.writers {
            let rec = self.writer(&w.record)?;
            if !rec.members.contains_key(&w.member) {
                return Err(TrafficError::Refused(format!(
                    "{}: {:?} is not a member of its database (known: {})",
                    w.record,
                    w.member,
                    rec.members.keys().cloned().collect::<Vec<_>>().join(", ")
                )));
            }
        }
        Ok(())
    }
}

fn unknown(name: &str) -> TrafficError {
    TrafficError::Refused(format!(
        "{name} is not a service record or writer record of the config"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_targets_follow_the_member_address() {
        let t = writer_target("a", "192.0.2.1:3306");
        assert_eq!((t.kind, t.value.as_str()), (RecordType::A, "192.0.2.1"));
        let t = writer_target("a", "[2001:db8::1]:3306");
        assert_eq!(
            (t.kind, t.value.as_str()),
            (RecordType::Aaaa, "2001:db8::1")
        );
        let t = writer_target("a", "DB1.Example.com:3306");
        assert_eq!(
            (t.kind, t.value.as_str()),
            (RecordType::Cname, "db1.example.com.")
        );
    }

    #[test]
    fn check_refuses_unknown_records_regions_and_members() {
        let mut book = RecordBook::default();
        book.insert_weighted(WeightedRecord {
            name: "API.example.com".into(),
            kind: RecordType::A,
            ttl: 30,
            answer: AnswerMode::One,
            values: [("a".to_string(), "192.0.2.1".to_string())].into(),
        });
        book.insert_writer_members("db.example.com.", &[("m1", "a", "192.0.2.9:3306")]);
        let ok = TrafficChange {
            records: vec![super::super::RecordChange {
                record: "api.example.com.".into(),
                weights: [("a".to_string(), 1)].into(),
            }],
            writers: vec![super::super::WriterChange {
                record: "db.example.com.".into(),
                member: "m1".into(),
            }],
            force: false,
        };
        assert!(book.check(&ok).is_ok());
        let mut bad = ok.clone();
        bad.records[0].weights.insert("zz".into(), 1);
        assert!(book.check(&bad).is_err());
        let mut bad = ok.clone();
        bad.writers[0].member = "m9".into();
        assert!(book.check(&bad).is_err());
        let mut bad = ok;
        bad.records[0].record = "db.example.com.".into();
        assert!(book.check(&bad).is_err());
    }
}
