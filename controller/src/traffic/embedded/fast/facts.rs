//! The static part of the zone as the fast path needs it, in wire form:
//! the apex, the SOA record's pieces (written into every negative answer
//! and the SOA answer, its names compressed against the question), and
//! every name that exists (so that any other name in the zone is
//! NXDOMAIN without asking hickory). Built once per server from the same
//! inputs as hickory's zone ([`super::super::zone`]).

use std::collections::HashSet;

use hickory_server::proto::rr::{Name, RData};

use super::super::table::dns_name;
use super::super::zone::{self, NameServer, SoaFacts};
use crate::traffic::TrafficError;
use crate::traffic::records::{RecordBook, canonical_name};

/// RR type SOA.
pub const TYPE_SOA: u16 = 6;

/// The zone facts the fast path answers from.
#[derive(Debug, Clone)]
pub struct ZoneFacts {
    origin: Box<[u8]>,
    soa_ttl: u32,
    mname: Box<[u8]>,
    rname: Box<[u8]>,
    soa_numbers: [u8; 20],
    existing: HashSet<Box<[u8]>>,
}

/// `name` in wire form, ASCII-lowercased.
pub fn wire(name: &Name) -> Box<[u8]> {
    let mut out = Vec::with_capacity(name.len() + 2);
    for label in name.iter() {
        // A Name's labels are at most 63 bytes.
        out.push(u8::try_from(label.len()).unwrap_or(63));
        out.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    out.push(0);
    out.into_boxed_slice()
}

/// The label-boundary suffixes of wire name `name`, longest first, with
/// their offsets (the root, `[0]`, last).
pub fn suffixes(name: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let mut at = Some(0usize);
    std::iter::from_fn(move || {
        let here = at?;
        let label = usize::from(*name.get(here)?);
        at = (label != 0).then_some(here + 1 + label);
        name.get(here..).map(|s| (here, s))
    })
}

impl ZoneFacts {
    /// The facts of `origin`'s zone with these name servers and records.
    pub fn new(
        origin: &str,
        nameservers: &[NameServer],
        book: &RecordBook,
    ) -> Result<Self, TrafficError> {
        let SoaFacts {
            origin: apex,
            record,
        } = zone::soa(origin, nameservers)?;
        let RData::SOA(soa) = &record.data else {
            return Err(TrafficError::Refused(format!("zone {origin}: no SOA")));
        };
        let mut numbers = [0u8; 20];
        for (chunk, n) in numbers.chunks_exact_mut(4).zip([
            soa.serial,
            u32::try_from(soa.refresh).unwrap_or(0),
            u32::try_from(soa.retry).unwrap_or(0),
            u32::try_from(soa.expire).unwrap_or(0),
            soa.minimum,
        ]) {
            chunk.copy_from_slice(&n.to_be_bytes());
        }
        let origin_wire = wire(&apex);
        let mut existing = HashSet::new();
        let mut add = |name: &Name| {
            let w = wire(name);
            // The name and every name between it and the apex (empty
            // non-terminals exist too).
            for (_, suffix) in suffixes(&w) {
                if suffix.len() < origin_wire.len() {
                    break;
                }
                if suffix.ends_with(&origin_wire) {
                    existing.insert(Box::<[u8]>::from(suffix));
                }
            }
        };
        add(&apex);
        for ns in nameservers {
            let name = dns_name(&canonical_name(&ns.name))?;
            if apex.zone_of(&name) {
                add(&name);
            }
        }
        for (name, _) in book.iter() {
            add(&dns_name(name)?);
        }
        Ok(ZoneFacts {
            soa_ttl: record.ttl,
            mname: wire(&soa.mname),
            rname: wire(&soa.rname),
            soa_numbers: numbers,
            origin: origin_wire,
            existing,
        })
    }

    /// The apex in wire form, lowercase.
    pub fn origin(&self) -> &[u8] {
        &self.origin
    }

    /// Whether `name` (wire, lowercase) exists in the zone: the apex, a
    /// name server, a managed name, or a name between one and the apex.
    pub fn exists(&self, name: &[u8]) -> bool {
        self.existing.contains(name)
    }

    /// Every name that exists (wire, lowercase).
    pub fn names(&self) -> impl Iterator<Item = &[u8]> {
        self.existing.iter().map(|n| &n[..])
    }

    /// The largest SOA record [`write_soa`](Self::write_soa) can write.
    pub fn soa_max_len(&self) -> usize {
        2 + 10 + self.mname.len() + self.rname.len() + 20
    }

    /// Writes the SOA record at `out[at..]`: owner a pointer to the apex
    /// at `apex` in the message, MNAME and RNAME compressed against the
    /// question name `question` (lowercase, at offset 12). Returns the end,
    /// or `None` when it does not fit.
    pub fn write_soa(
        &self,
        out: &mut [u8],
        at: usize,
        apex: usize,
        question: &[u8],
    ) -> Option<usize> {
        let mut w = Writer { out, at };
        w.put(&pointer(apex)?)?;
        w.put(&TYPE_SOA.to_be_bytes())?;
        w.put(&[0, 1])?;
        w.put(&self.soa_ttl.to_be_bytes())?;
        let rdlen_at = w.at;
        w.put(&[0, 0])?;
        w.name(&self.mname, question)?;
        w.name(&self.rname, question)?;
        w.put(&self.soa_numbers)?;
        let rdlen = u16::try_from(w.at - rdlen_at - 2).ok()?;
        w.out[rdlen_at..rdlen_at + 2].copy_from_slice(&rdlen.to_be_bytes());
        Some(w.at)
    }
}

/// A compression pointer to `offset`.
fn pointer(offset: usize) -> Option<[u8; 2]> {
    let offset = u16::try_from(offset).ok().filter(|o| *o < 0x4000)?;
    Some((0xC000 | offset).to_be_bytes())
}

struct Writer<'a> {
    out: &'a mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) -> Option<()> {
        self.out
            .get_mut(self.at..self.at + bytes.len())?
            .copy_from_slice(bytes);
        self.at += bytes.len();
        Some(())
    }

    /// `name`, its longest suffix that is also a suffix of the question
    /// name replaced by a pointer into the question.
    fn name(&mut self, name: &[u8], question: &[u8]) -> Option<()> {
        for (at, suffix) in suffixes(name) {
            if suffix == [0] {
                break;
            }
            if let Some((q_at, _)) = suffixes(question).find(|(_, s)| *s == suffix) {
                self.put(&name[..at])?;
                return self.put(&pointer(super::query::HEADER + q_at)?);
            }
        }
        self.put(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_walk_label_boundaries() {
        let name = b"\x03api\x05bench\x07example\x00";
        let got: Vec<usize> = suffixes(name).map(|(at, _)| at).collect();
        assert_eq!(got, vec![0, 4, 10, 18]);
        assert_eq!(suffixes(b"\x00").count(), 1);
    }

    #[test]
    fn the_soa_compresses_against_the_question() {
        let ns = [NameServer {
            name: "ns1.bench.example.".into(),
            address: None,
        }];
        let facts = ZoneFacts::new("bench.example.", &ns, &RecordBook::default()).expect("facts");
        let question = b"\x02nx\x05bench\x07example\x00";
        let mut out = [0u8; 512];
        let end = facts
            .write_soa(&mut out, 100, 12 + 3, question)
            .expect("fits");
        // owner ptr, type, class, ttl, rdlen; "ns1"+ptr; "hostmaster"+ptr; 5 numbers
        assert_eq!(end - 100, 2 + 10 + (4 + 2) + (11 + 2) + 20);
        assert_eq!(&out[100..102], &[0xC0, 15]);
        assert_eq!(&out[112..118], b"\x03ns1\xC0\x0F");
        assert!(facts.exists(b"\x05bench\x07example\x00"));
        assert!(facts.exists(b"\x03ns1\x05bench\x07example\x00"));
        assert!(!facts.exists(b"\x02nx\x05bench\x07example\x00"));
        let mut small = [0u8; 40];
        assert!(facts.write_soa(&mut small, 0, 12, question).is_none());
    }
}
