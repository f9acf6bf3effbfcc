//! The weights the embedded server answers from, shared between the
//! server's zone handler (reads on every query) and whoever changes them
//! (the [`super::EmbeddedBackend`], later the controller's etcd watch).
//!
//! A change replaces the answers of every record it names under one write
//! lock, so a query sees either the whole change or none of it, and no
//! query waits for more than that swap: nothing restarts, nothing drops.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use hickory_server::proto::rr::rdata::{A, AAAA, CNAME};
use hickory_server::proto::rr::{LowerName, Name, RData, Record};

use super::pick::Weighted;
use crate::config::{AnswerMode, RecordType};
use crate::traffic::records::{RecordBook, RecordSpec};
use crate::traffic::{Applied, RecordState, Target, TrafficChange, TrafficError};

/// One region's (or a writer's member's) record.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The region it serves.
    pub region: String,
    /// The record data as configured (canonical).
    pub value: String,
    /// Its weight now.
    pub weight: u32,
    /// The DNS record served.
    pub record: Record,
}

impl Weighted for Entry {
    fn weight(&self) -> u32 {
        self.weight
    }
}

/// Everything one name answers with.
#[derive(Debug, Clone)]
pub struct NameAnswers {
    /// One record per answer or all of weight > 0.
    pub mode: AnswerMode,
    /// The records, in region order.
    pub entries: Vec<Entry>,
    /// False until the first change names this record: until then every
    /// region is served at equal weight (fail open) and `read` is empty.
    pub set: bool,
}

/// The shared, run-time-updatable weights of every managed name. Cloning
/// gives another handle to the same table.
#[derive(Debug, Clone)]
pub struct WeightTable {
    names: Arc<RwLock<HashMap<LowerName, Arc<NameAnswers>>>>,
    book: Arc<RecordBook>,
    /// Bumped (under the write lock) by every [`apply`](Self::apply): the
    /// fast path re-encodes its answers only when this moves.
    generation: Arc<AtomicU64>,
}

/// Every managed name's answers at one generation of the table.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The generation these answers belong to.
    pub generation: u64,
    /// The answers of every managed name.
    pub names: Vec<(LowerName, Arc<NameAnswers>)>,
}

/// The DNS name of a canonical record name.
pub fn dns_name(name: &str) -> Result<Name, TrafficError> {
    Name::from_ascii(name)
        .map_err(|e| TrafficError::Refused(format!("{name:?} is not a DNS name: {e}")))
}

/// The DNS record `name ttl IN kind value`.
pub fn make_record(
    name: &Name,
    kind: RecordType,
    value: &str,
    ttl: u32,
) -> Result<Record, TrafficError> {
    let bad =
        |e: String| TrafficError::Refused(format!("{name} {}: {value:?}: {e}", kind.as_str()));
    let rdata = match kind {
        RecordType::A | RecordType::Aaaa => match value.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) if kind == RecordType::A => RData::A(A(ip)),
            Ok(IpAddr::V6(ip)) if kind == RecordType::Aaaa => RData::AAAA(AAAA(ip)),
            Ok(_) => return Err(bad("wrong address family".into())),
            Err(e) => return Err(bad(e.to_string())),
        },
        RecordType::Cname => RData::CNAME(CNAME(
            Name::from_ascii(value).map_err(|e| bad(e.to_string()))?,
        )),
    };
    Ok(Record::from_rdata(name.clone(), ttl, rdata))
}

impl WeightTable {
    /// A table for every record of `book`: weighted records at equal
    /// weights (not yet `set`), writer records empty until first moved.
    pub fn new(book: RecordBook) -> Result<Self, TrafficError> {
        let mut names = HashMap::new();
        for (name, spec) in book.iter() {
            let dns = dns_name(name)?;
            let answers = match spec {
                RecordSpec::Weighted(rec) => NameAnswers {
                    mode: rec.answer,
                    entries: rec
                        .values
                        .iter()
                        .map(|(region, value)| {
                            Ok(Entry {
                                region: region.clone(),
                                value: value.clone(),
                                weight: 1,
                                record: make_record(&dns, rec.kind, value, rec.ttl)?,
                            })
                        })
                        .collect::<Result<_, TrafficError>>()?,
                    set: false,
                },
                RecordSpec::Writer(_) => NameAnswers {
                    mode: AnswerMode::One,
                    entries: Vec::new(),
                    set: false,
                },
            };
            names.insert(LowerName::new(&dns), Arc::new(answers));
        }
        Ok(WeightTable {
            names: Arc::new(RwLock::new(names)),
            book: Arc::new(book),
            generation: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The records this table was built from.
    pub fn book(&self) -> &RecordBook {
        &self.book
    }

    /// The answers of `name`, if it is a managed name: the hot path of
    /// every query (one read lock, one hash lookup, one `Arc` clone).
    pub fn get(&self, name: &LowerName) -> Option<Arc<NameAnswers>> {
        self.names
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    /// The current generation: a cheap check (one atomic load) of whether
    /// the answers changed since a [`snapshot`](Self::snapshot).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Every managed name's answers and the generation they belong to,
    /// read under one lock so the two agree.
    pub fn snapshot(&self) -> Snapshot {
        let names = self.names.read().unwrap_or_else(PoisonError::into_inner);
        Snapshot {
            generation: self.generation.load(Ordering::Acquire),
            names: names.iter().map(|(n, a)| (n.clone(), a.clone())).collect(),
        }
    }

    /// What `record` holds now (empty until a change has set it).
    pub fn read(&self, record: &str) -> Result<RecordState, TrafficError> {
        let dns = dns_name(&crate::traffic::records::canonical_name(record))?;
        let Some(answers) = self.get(&LowerName::new(&dns)) else {
            return Err(TrafficError::Refused(format!(
                "{record} is not a record of the embedded zone"
            )));
        };
        if !answers.set {
            return Ok(RecordState::default());
        }
        Ok(RecordState(
            answers
                .entries
                .iter()
                .map(|e| {
                    (
                        e.region.clone(),
                        Target {
                            value: Some(e.value.clone()),
                            weight: e.weight,
                        },
                    )
                })
                .collect(),
        ))
    }

    /// Applies a change checked by the caller (`validate`, `book.check`):
    /// builds every new answer first, then swaps them all in at once.
    pub fn apply(&self, change: &TrafficChange) -> Result<Applied, TrafficError> {
        let mut next: Vec<(LowerName, NameAnswers)> = Vec::new();
        for c in &change.records {
            let rec = self.book.weighted(&c.record)?;
            let dns = dns_name(&rec.name)?;
            let entries = rec
                .values
                .iter()
                .map(|(region, value)| {
                    Ok(Entry {
                        region: region.clone(),
                        value: value.clone(),
                        weight: c.weights.get(region).copied().unwrap_or(0),
                        record: make_record(&dns, rec.kind, value, rec.ttl)?,
                    })
                })
                .collect::<Result<_, TrafficError>>()?;
            next.push((
                LowerName::new(&dns),
                NameAnswers {
                    mode: rec.answer,
                    entries,
                    set: true,
                },
            ));
        }
        for w in &change.writers {
            let rec = self.book.writer(&w.record)?;
            let target = rec.members.get(&w.member).ok_or_else(|| {
                TrafficError::Refused(format!("{}: unknown member {:?}", w.record, w.member))
            })?;
            let dns = dns_name(&rec.name)?;
            next.push((
                LowerName::new(&dns),
                NameAnswers {
                    mode: AnswerMode::One,
                    entries: vec![Entry {
                        region: target.region.clone(),
                        value: target.value.clone(),
                        weight: 1,
                        record: make_record(&dns, target.kind, &target.value, rec.ttl)?,
                    }],
                    set: true,
                },
            ));
        }
        let mut names = self.names.write().unwrap_or_else(PoisonError::into_inner);
        let mut changed = 0;
        for (name, answers) in next {
            let same = names.get(&name).is_some_and(|old| {
                old.set
                    && old.entries.len() == answers.entries.len()
                    && old
                        .entries
                        .iter()
                        .zip(&answers.entries)
                        .all(|(a, b)| a.weight == b.weight && a.record == b.record)
            });
            if !same {
                changed += 1;
            }
            names.insert(name, Arc::new(answers));
        }
        self.generation.fetch_add(1, Ordering::Release);
        Ok(Applied { changed })
    }
}
