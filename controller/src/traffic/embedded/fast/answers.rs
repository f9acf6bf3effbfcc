//! The fast path's answers: every managed name's possible answers
//! pre-encoded as wire records (one variant per region, the weighted pick
//! an index into them), the SOA written from pre-encoded pieces, and the
//! rule that decides, per query, between a fast answer and hickory.
//!
//! Built from a [`Snapshot`] of the weight table, so it is rebuilt only
//! when the weights change; answering allocates nothing: it writes the
//! response into the caller's buffer.
//!
//! Compression is as gdnsd does it: the answer's owner is a pointer to the
//! question name, the SOA's owner and the names in its data point into the
//! question too. The answers carry only what was asked (no NS records in
//! the authority section of a positive answer or of the SOA answer).

use std::collections::HashMap;
use std::sync::Arc;

use foldhash::fast::RandomState;
use hickory_server::proto::rr::RData;
use rand::Rng;

use super::facts::{TYPE_SOA, ZoneFacts, wire};
use super::query::{self, HEADER};
use crate::config::AnswerMode;
use crate::traffic::embedded::table::{NameAnswers, Snapshot};

/// The largest response the fast path writes: a UDP answer without EDNS
/// (RFC 1035 §4.2.1). Anything longer is hickory's, which truncates.
pub const MAX_RESPONSE: usize = 512;

/// RCODE NXDOMAIN.
const NXDOMAIN: u8 = 3;

/// What to do with one query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// The response is the first `n` bytes of the output buffer.
    Answer(usize),
    /// Not for the fast path: hickory answers it.
    Slow,
}

/// How the fast path treats one existing name.
#[derive(Debug, Clone)]
enum Node {
    /// The apex: the SOA query is fast, everything else is hickory's.
    Apex,
    /// A managed name answered by weight.
    Managed(Managed),
    /// Anything else that exists (name servers, empty non-terminals,
    /// CNAME and "all records" names, writer records not yet pointed).
    Slow,
}

/// One managed name's pre-encoded answers.
#[derive(Debug, Clone)]
struct Managed {
    /// The type its records have (A or AAAA).
    kind: u16,
    /// One wire record per region, owner a pointer to the question.
    variants: Vec<Box<[u8]>>,
    /// Running sums of the weights (every weight 1 when all are 0).
    cumulative: Vec<u64>,
}

/// Every fast answer of a zone at one generation of its weights.
#[derive(Debug, Clone)]
pub struct Answers {
    facts: Arc<ZoneFacts>,
    generation: u64,
    /// Keyed by the lowercase wire name. foldhash, not SipHash: every
    /// query looks a name up here, and the keys are the zone's own, fixed
    /// between weight changes. A client chooses only what it looks up:
    /// the worst a crafted name can do is compare against the zone's own
    /// names, so the flooding SipHash guards against has nothing to grow.
    names: HashMap<Box<[u8]>, Node, RandomState>,
}

/// One region's record as a wire record whose owner is the question name,
/// or `None` for anything but A and AAAA.
fn variant(rdata: &RData, ttl: u32) -> Option<(u16, Box<[u8]>)> {
    let (kind, data): (u16, Vec<u8>) = match rdata {
        RData::A(a) => (1, a.0.octets().to_vec()),
        RData::AAAA(aaaa) => (28, aaaa.0.octets().to_vec()),
        _ => return None,
    };
    let mut rr = vec![0xC0, HEADER as u8];
    rr.extend_from_slice(&kind.to_be_bytes());
    rr.extend_from_slice(&[0, 1]);
    rr.extend_from_slice(&ttl.to_be_bytes());
    rr.extend_from_slice(&u16::try_from(data.len()).ok()?.to_be_bytes());
    rr.extend_from_slice(&data);
    Some((kind, rr.into_boxed_slice()))
}

/// A managed name's node: fast only for one-answer A/AAAA names with at
/// least one record (hickory's handler does the rest).
fn managed(answers: &NameAnswers) -> Node {
    if answers.mode == AnswerMode::All && answers.entries.len() > 1 {
        return Node::Slow;
    }
    let mut kind = None;
    let mut variants = Vec::with_capacity(answers.entries.len());
    for e in &answers.entries {
        let Some((k, rr)) = variant(&e.record.data, e.record.ttl) else {
            return Node::Slow;
        };
        if kind.is_some_and(|seen| seen != k) {
            return Node::Slow;
        }
        kind = Some(k);
        variants.push(rr);
    }
    let Some(kind) = kind else {
        return Node::Slow;
    };
    let all_zero = answers.entries.iter().all(|e| e.weight == 0);
    let cumulative = answers
        .entries
        .iter()
        .scan(0u64, |sum, e| {
            *sum += if all_zero { 1 } else { u64::from(e.weight) };
            Some(*sum)
        })
        .collect();
    Node::Managed(Managed {
        kind,
        variants,
        cumulative,
    })
}

/// Query types the fast path answers negatively (NXDOMAIN, NODATA): the
/// ordinary data types. OPT, the meta types (ANY, AXFR, IXFR…) and the
/// private range are hickory's.
fn ordinary(qtype: u16) -> bool {
    (1..128).contains(&qtype) && qtype != 41
}

impl Answers {
    /// The answers of `facts`' zone with the weights of `snapshot`.
    pub fn build(facts: Arc<ZoneFacts>, snapshot: &Snapshot) -> Self {
        let mut names: HashMap<Box<[u8]>, Node, RandomState> = facts
            .names()
            .map(|n| {
                let node = if n == facts.origin() {
                    Node::Apex
                } else {
                    Node::Slow
                };
                (Box::<[u8]>::from(n), node)
            })
            .collect();
        for (name, answers) in &snapshot.names {
            let key = wire(&name.clone().into());
            if &*key == facts.origin() {
                // A managed apex would mix SOA and weights: hickory's.
                names.insert(key, Node::Slow);
                continue;
            }
            names.insert(key, managed(answers));
        }
        Answers {
            facts,
            generation: snapshot.generation,
            names,
        }
    }

    /// The weight table's generation these answers were built from.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Answers `packet` into `out` (at least [`MAX_RESPONSE`] bytes), or
    /// says it is hickory's. `rng` picks among a weighted name's records.
    pub fn respond<R: Rng + ?Sized>(&self, packet: &[u8], rng: &mut R, out: &mut [u8]) -> Reply {
        self.try_respond(packet, rng, out)
            .map_or(Reply::Slow, Reply::Answer)
    }

    fn try_respond<R: Rng + ?Sized>(
        &self,
        packet: &[u8],
        rng: &mut R,
        out: &mut [u8],
    ) -> Option<usize> {
        let q = query::parse(packet)?;
        if !ordinary(q.qtype) {
            return None;
        }
        // Outside the zone: hickory answers REFUSED.
        let apex = HEADER + q.zone_offset(self.facts.origin())?;
        let out = out.get_mut(..MAX_RESPONSE)?;
        match self.names.get(q.lower()) {
            None => self.negative(packet, &q, apex, NXDOMAIN, out),
            Some(Node::Apex) if q.qtype == TYPE_SOA => {
                let at = header(packet, &q, 0, 1, 0, out)?;
                let at = self.facts.write_soa(out, at, apex, q.lower())?;
                opt(&q, out, at)
            }
            Some(Node::Managed(m)) if q.qtype == m.kind => {
                let total = *m.cumulative.last()?;
                let ticket = rng.random_range(0..total);
                let pick = m.cumulative.iter().position(|c| ticket < *c)?;
                let rr = m.variants.get(pick)?;
                let at = header(packet, &q, 0, 1, 0, out)?;
                let end = at + rr.len();
                out.get_mut(at..end)?.copy_from_slice(rr);
                opt(&q, out, end)
            }
            // Another type of a managed name: the name exists, no data.
            Some(Node::Managed(_)) => self.negative(packet, &q, apex, 0, out),
            Some(Node::Apex | Node::Slow) => None,
        }
    }

    /// NXDOMAIN or NODATA: the question and the SOA in the authority
    /// section.
    fn negative(
        &self,
        packet: &[u8],
        q: &query::Question,
        apex: usize,
        rcode: u8,
        out: &mut [u8],
    ) -> Option<usize> {
        let at = header(packet, q, rcode, 0, 1, out)?;
        let at = self.facts.write_soa(out, at, apex, q.lower())?;
        opt(q, out, at)
    }
}

/// With EDNS, appends the response's OPT record at `at` as hickory
/// writes it (the client's payload size, at least 512; version 0; no
/// flags — this build does no DNSSEC, so DO is not echoed — no options).
fn opt(q: &query::Question, out: &mut [u8], at: usize) -> Option<usize> {
    let Some(payload) = q.edns else {
        return Some(at);
    };
    let end = at + 11;
    let rr = out.get_mut(at..end)?;
    rr[..3].copy_from_slice(&[0, 0, 41]);
    rr[3..5].copy_from_slice(&payload.max(512).to_be_bytes());
    rr[5..].fill(0);
    Some(end)
}

/// Writes the response header (one additional record, the OPT, when the
/// query had EDNS) and the question (copied as asked, its case kept) into
/// `out`; returns where the answer section starts.
fn header(
    packet: &[u8],
    q: &query::Question,
    rcode: u8,
    answers: u16,
    authorities: u16,
    out: &mut [u8],
) -> Option<usize> {
    let question = packet.get(HEADER..q.end)?;
    let end = HEADER + question.len();
    let h = out.get_mut(..end)?;
    h[0] = packet[0];
    h[1] = packet[1];
    // QR, OPCODE 0, AA, RD as asked.
    h[2] = 0x84 | u8::from(q.rd);
    // CD as asked, the RCODE.
    h[3] = if q.cd { 0x10 } else { 0 } | rcode;
    h[4..6].copy_from_slice(&1u16.to_be_bytes());
    h[6..8].copy_from_slice(&answers.to_be_bytes());
    h[8..10].copy_from_slice(&authorities.to_be_bytes());
    h[10..12].copy_from_slice(&u16::from(q.edns.is_some()).to_be_bytes());
    h[HEADER..end].copy_from_slice(question);
    Some(end)
}
