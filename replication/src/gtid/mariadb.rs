//! MariaDB GTIDs (`domain-server-seq`) and the per-domain comparisons that
//! failover needs.
//!
//! MariaDB does not keep an interval set: it keeps, per replication domain,
//! the last GTID applied (`gtid_slave_pos`, `gtid_current_pos`) and, in the
//! binlog, the last sequence number each server wrote in each domain
//! (`gtid_binlog_state`). [`MariaDbGtids`] is that binlog state: the last
//! `seq_no` per `(domain, server_id)`. With `gtid_strict_mode` sequence
//! numbers only grow within a domain, so "has every transaction of server S
//! in domain D up to N" is a fair reading of an entry, and one member
//! contains another when, for every `(domain, server)`, its `seq_no` is at
//! least the other's.
//!
//! The difference of two states is therefore a list of ranges, not of exact
//! transactions: `0-1003-1..101` reads "server 1003's transactions in domain
//! 0 with `seq_no` up to 101 that the other side has none of", and every
//! missing transaction lies in one of the ranges.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// One MariaDB GTID: `domain_id-server_id-seq_no`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MariaDbGtid {
    /// Replication domain (`gtid_domain_id`).
    pub domain: u32,
    /// The server that wrote the transaction (`server_id`).
    pub server: u32,
    /// Sequence number within the domain.
    pub seq: u64,
}

impl fmt::Display for MariaDbGtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.domain, self.server, self.seq)
    }
}

/// Why a MariaDB GTID list could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid MariaDB GTID list {input:?}: {reason}")]
pub struct ParseMariaDbGtidError {
    /// The text as given.
    pub input: String,
    /// What was wrong with it.
    pub reason: String,
}

impl FromStr for MariaDbGtid {
    type Err = ParseMariaDbGtidError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| ParseMariaDbGtidError {
            input: s.to_string(),
            reason: reason.to_string(),
        };
        let mut it = s.trim().split('-');
        let (Some(d), Some(sv), Some(n), None) = (it.next(), it.next(), it.next(), it.next())
        else {
            return Err(err("expected domain-server-seq"));
        };
        Ok(MariaDbGtid {
            domain: d.parse().map_err(|_| err("bad domain id"))?,
            server: sv.parse().map_err(|_| err("bad server id"))?,
            seq: n.parse().map_err(|_| err("bad sequence number"))?,
        })
    }
}

/// The last `seq_no` per `(domain, server_id)`: what a member has (see the
/// module docs for how to read it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MariaDbGtids {
    last: BTreeMap<(u32, u32), u64>,
}

/// A range of transactions one state has and another lacks: server
/// `server`'s transactions in `domain` with `after < seq_no <= upto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct MariaDbGtidRange {
    /// Replication domain.
    pub domain: u32,
    /// Originating server.
    pub server: u32,
    /// The other side's last `seq_no` from this server in this domain (0: none).
    pub after: u64,
    /// This side's last `seq_no` from this server in this domain.
    pub upto: u64,
}

impl fmt::Display for MariaDbGtidRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.after + 1 == self.upto {
            write!(f, "{}-{}-{}", self.domain, self.server, self.upto)
        } else {
            write!(
                f,
                "{}-{}-{}..{}",
                self.domain,
                self.server,
                self.after + 1,
                self.upto
            )
        }
    }
}

impl MariaDbGtids {
    /// The empty state (a server that never wrote or applied a transaction).
    pub fn new() -> Self {
        Self::default()
    }

    /// True when nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }

    /// Records `gtid`, keeping the highest `seq_no` per `(domain, server)`.
    pub fn insert(&mut self, gtid: MariaDbGtid) {
        let e = self.last.entry((gtid.domain, gtid.server)).or_insert(0);
        *e = (*e).max(gtid.seq);
    }

    /// The entries, ordered by domain then server.
    pub fn gtids(&self) -> impl Iterator<Item = MariaDbGtid> + '_ {
        self.last
            .iter()
            .map(|(&(domain, server), &seq)| MariaDbGtid {
                domain,
                server,
                seq,
            })
    }

    /// What either side has: the higher `seq_no` per `(domain, server)`.
    pub fn union(&self, other: &Self) -> Self {
        let mut out = self.clone();
        for g in other.gtids() {
            out.insert(g);
        }
        out
    }

    /// True when `self` has, for every `(domain, server)` of `other`, at
    /// least the same `seq_no`.
    pub fn contains(&self, other: &Self) -> bool {
        other
            .last
            .iter()
            .all(|(k, &n)| self.last.get(k).is_some_and(|&m| m >= n))
    }

    /// The ranges `self` has that `other` lacks.
    pub fn difference(&self, other: &Self) -> Vec<MariaDbGtidRange> {
        self.last
            .iter()
            .filter_map(|(&(domain, server), &upto)| {
                let after = other.last.get(&(domain, server)).copied().unwrap_or(0);
                (upto > after).then_some(MariaDbGtidRange {
                    domain,
                    server,
                    after,
                    upto,
                })
            })
            .collect()
    }

    /// `self` without `ranges` (each entry cut back to the range's `after`).
    pub fn without(&self, ranges: &[MariaDbGtidRange]) -> Self {
        let mut out = self.clone();
        for r in ranges {
            if let Some(n) = out.last.get_mut(&(r.domain, r.server))
                && *n <= r.upto
                && *n > r.after
            {
                *n = r.after;
            }
        }
        out.last.retain(|_, n| *n > 0);
        out
    }

    /// The position to hand `MASTER_GTID_WAIT`: per domain, the entry with
    /// the highest `seq_no` (MariaDB compares positions per domain).
    pub fn wait_position(&self) -> Vec<MariaDbGtid> {
        let mut per_domain: BTreeMap<u32, MariaDbGtid> = BTreeMap::new();
        for g in self.gtids() {
            let e = per_domain.entry(g.domain).or_insert(g);
            if g.seq > e.seq {
                *e = g;
            }
        }
        per_domain.into_values().collect()
    }
}

impl fmt::Display for MariaDbGtids {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.gtids().map(|g| g.to_string()).collect();
        f.write_str(&parts.join(","))
    }
}

impl FromStr for MariaDbGtids {
    type Err = ParseMariaDbGtidError;

    /// Reads a comma-separated list (`gtid_binlog_state`, `gtid_slave_pos`,
    /// `Gtid_IO_Pos`, …); the empty string is the empty state.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let mut out = MariaDbGtids::new();
        for part in input.split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let g: MariaDbGtid =
                part.parse()
                    .map_err(|e: ParseMariaDbGtidError| ParseMariaDbGtidError {
                        input: input.to_string(),
                        reason: format!("{part:?}: {}", e.reason),
                    })?;
            out.insert(g);
        }
        Ok(out)
    }
}

/// Renders a GTID list as MariaDB accepts it (`0-1-5,1-1-3`).
pub fn render_list(gtids: &[MariaDbGtid]) -> String {
    let parts: Vec<String> = gtids.iter().map(|g| g.to_string()).collect();
    parts.join(",")
}

#[cfg(test)]
#[path = "mariadb_tests.rs"]
mod tests;
