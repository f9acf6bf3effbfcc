//! MySQL GTID sets (`uuid:1-5:7-9,uuid2:1-3`, and MySQL 8.3+ tagged
//! `uuid:1-5:tag:1-3`) with the set operations failover needs: union,
//! difference and containment.
//!
//! MySQL keeps every transaction's GTID as an interval set per source UUID,
//! so, unlike MariaDB, the difference between two servers is exact: it names
//! the very transactions one has and the other lacks.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Where a transaction originated: the source server's UUID and, since MySQL
/// 8.3, an optional tag (empty when untagged). Both are kept lowercase, as
/// MySQL compares them case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sid {
    /// The originating server's `server_uuid`, lowercase.
    pub uuid: String,
    /// The GTID tag, lowercase; empty for untagged GTIDs.
    pub tag: String,
}

/// A set of MySQL GTIDs, as `gtid_executed` and `Retrieved_Gtid_Set` show it.
///
/// Intervals are inclusive, sorted, disjoint and never adjacent, so two equal
/// sets always compare and print the same.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MySqlGtidSet {
    sets: BTreeMap<Sid, Vec<(u64, u64)>>,
}

/// Why a GTID set string could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid MySQL GTID set {input:?}: {reason}")]
pub struct ParseMySqlGtidError {
    /// The text as given.
    pub input: String,
    /// What was wrong with it.
    pub reason: String,
}

impl MySqlGtidSet {
    /// The empty set (a server that never executed a transaction).
    pub fn new() -> Self {
        Self::default()
    }

    /// True when the set holds no GTID.
    pub fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }

    /// Adds the inclusive range `first..=last` of `sid`'s transactions.
    pub fn insert(&mut self, sid: Sid, first: u64, last: u64) {
        if first == 0 || last < first {
            return;
        }
        let v = self.sets.entry(sid).or_default();
        v.push((first, last));
        normalize(v);
    }

    /// Every GTID in `self` or `other`.
    pub fn union(&self, other: &Self) -> Self {
        let mut out = self.clone();
        for (sid, ivs) in &other.sets {
            let v = out.sets.entry(sid.clone()).or_default();
            v.extend(ivs.iter().copied());
            normalize(v);
        }
        out
    }

    /// The GTIDs in `self` that `other` lacks.
    pub fn difference(&self, other: &Self) -> Self {
        let mut out = MySqlGtidSet::new();
        for (sid, ivs) in &self.sets {
            let rest = match other.sets.get(sid) {
                None => ivs.clone(),
                Some(sub) => subtract(ivs, sub),
            };
            if !rest.is_empty() {
                out.sets.insert(sid.clone(), rest);
            }
        }
        out
    }

    /// True when every GTID of `other` is in `self`.
    pub fn contains(&self, other: &Self) -> bool {
        other.difference(self).is_empty()
    }

    /// Only the GTIDs that originated on the server with this UUID (any tag).
    pub fn originating_from(&self, uuid: &str) -> Self {
        let uuid = uuid.to_ascii_lowercase();
        MySqlGtidSet {
            sets: self
                .sets
                .iter()
                .filter(|(sid, _)| sid.uuid == uuid)
                .map(|(s, v)| (s.clone(), v.clone()))
                .collect(),
        }
    }

    /// Number of transactions in the set (saturating).
    pub fn count(&self) -> u64 {
        self.sets
            .values()
            .flatten()
            .fold(0u64, |n, (a, b)| n.saturating_add(b - a + 1))
    }

    /// One printable item per source (`uuid:1-5:7`), for reports.
    pub fn items(&self) -> Vec<String> {
        let mut by_uuid: BTreeMap<&str, String> = BTreeMap::new();
        for (sid, ivs) in &self.sets {
            let s = by_uuid.entry(&sid.uuid).or_insert_with(|| sid.uuid.clone());
            if !sid.tag.is_empty() {
                s.push(':');
                s.push_str(&sid.tag);
            }
            for (a, b) in ivs {
                if a == b {
                    s.push_str(&format!(":{a}"));
                } else {
                    s.push_str(&format!(":{a}-{b}"));
                }
            }
        }
        by_uuid.into_values().collect()
    }
}

impl fmt::Display for MySqlGtidSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.items().join(","))
    }
}

impl FromStr for MySqlGtidSet {
    type Err = ParseMySqlGtidError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| ParseMySqlGtidError {
            input: input.to_string(),
            reason,
        };
        let mut set = MySqlGtidSet::new();
        for part in input.split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let mut tokens = part.split(':').map(str::trim);
            let uuid = tokens.next().unwrap_or_default();
            if !is_uuid(uuid) {
                return Err(err(format!("{uuid:?} is not a server UUID")));
            }
            let mut tag = String::new();
            let mut any = false;
            for tok in tokens {
                if tok.starts_with(|c: char| c.is_ascii_digit()) {
                    let (a, b) = parse_interval(tok).map_err(err)?;
                    set.insert(
                        Sid {
                            uuid: uuid.to_ascii_lowercase(),
                            tag: tag.clone(),
                        },
                        a,
                        b,
                    );
                    any = true;
                } else if is_tag(tok) {
                    tag = tok.to_ascii_lowercase();
                } else {
                    return Err(err(format!("{tok:?} is neither an interval nor a tag")));
                }
            }
            if !any {
                return Err(err(format!("{part:?} has no interval")));
            }
        }
        Ok(set)
    }
}

fn parse_interval(tok: &str) -> Result<(u64, u64), String> {
    let num = |s: &str| {
        s.parse::<u64>()
            .map_err(|_| format!("{s:?} is not a transaction number"))
    };
    let (a, b) = match tok.split_once('-') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => {
            let a = num(tok)?;
            (a, a)
        }
    };
    if a == 0 || b < a {
        return Err(format!("{tok:?} is not an interval (numbers start at 1)"));
    }
    Ok((a, b))
}

fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

/// MySQL tags: a letter or underscore, then up to 31 letters, digits or underscores.
fn is_tag(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && s.len() <= 32
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Sorts and merges overlapping or adjacent intervals.
fn normalize(v: &mut Vec<(u64, u64)>) {
    v.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(v.len());
    for &(a, b) in v.iter() {
        match out.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    *v = out;
}

/// `ivs` minus `sub`, both normalized.
fn subtract(ivs: &[(u64, u64)], sub: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for &(a, b) in ivs {
        let mut start = Some(a);
        for &(c, d) in sub {
            let Some(s) = start else { break };
            if d < s || c > b {
                continue;
            }
            if c > s {
                out.push((s, c - 1));
            }
            start = d.checked_add(1).filter(|&n| n <= b);
        }
        if let Some(s) = start {
            out.push((s, b));
        }
    }
    out
}

#[cfg(test)]
#[path = "mysql_tests.rs"]
mod tests;
