//! Replication positions, pure: what a member has applied, how two members
//! compare, and which transactions one has that another lacks.
//!
//! One [`Position`] type covers the three engines so that candidate
//! selection is written once: MariaDB binlog states, MySQL GTID sets and
//! MongoDB optimes. Comparing positions of different engines is never
//! meaningful; such comparisons say "not contained" so that nothing is
//! promoted on their strength.

pub mod mariadb;
pub mod mysql;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use mariadb::{MariaDbGtid, MariaDbGtidRange, MariaDbGtids};
pub use mysql::{MySqlGtidSet, Sid};

/// A MongoDB optime: the election term and the oplog timestamp
/// (`{ts: Timestamp(secs, inc), t: term}`), ordered by term then timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OpTime {
    /// Election term (`t`).
    pub term: i64,
    /// Seconds of the oplog timestamp.
    pub secs: u32,
    /// Increment within that second.
    pub inc: u32,
}

impl fmt::Display for OpTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Timestamp({}, {}) term {}",
            self.secs, self.inc, self.term
        )
    }
}

/// What a member has applied (or received), engine by engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    /// MariaDB: last `seq_no` per `(domain, server_id)`.
    MariaDb(MariaDbGtids),
    /// MySQL: the exact GTID set.
    MySql(MySqlGtidSet),
    /// MongoDB: the last applied optime.
    OpTime(OpTime),
}

/// Transactions one position has that another lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    /// MariaDB ranges (see [`mariadb`] for how to read them).
    MariaDb(Vec<MariaDbGtidRange>),
    /// The exact MySQL GTIDs.
    MySql(MySqlGtidSet),
    /// MongoDB: the optime one side is ahead of the other by, if any.
    OpTime(Option<(OpTime, OpTime)>),
    /// Positions of different engines: nothing sensible can be said.
    Incomparable,
}

impl Missing {
    /// True when nothing is missing.
    pub fn is_empty(&self) -> bool {
        match self {
            Missing::MariaDb(r) => r.is_empty(),
            Missing::MySql(s) => s.is_empty(),
            Missing::OpTime(d) => d.is_none(),
            Missing::Incomparable => false,
        }
    }

    /// One printable item per range / source, for reports.
    pub fn items(&self) -> Vec<String> {
        match self {
            Missing::MariaDb(r) => r.iter().map(ToString::to_string).collect(),
            Missing::MySql(s) => s.items(),
            Missing::OpTime(None) => Vec::new(),
            Missing::OpTime(Some((ahead, behind))) => {
                vec![format!("oplog entries after {behind} up to {ahead}")]
            }
            Missing::Incomparable => vec!["positions of different engines".to_string()],
        }
    }

    /// Only what originated on the server `origin` (MariaDB `server_id`,
    /// MySQL `server_uuid`); MongoDB has no notion of origin and keeps all.
    pub fn originating_from(&self, origin: &str) -> Missing {
        match self {
            Missing::MariaDb(r) => Missing::MariaDb(
                r.iter()
                    .filter(|x| x.server.to_string() == origin)
                    .copied()
                    .collect(),
            ),
            Missing::MySql(s) => Missing::MySql(s.originating_from(origin)),
            other => other.clone(),
        }
    }
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.items().join(","))
    }
}

impl Position {
    /// True when every transaction of `other` is in `self`.
    pub fn contains(&self, other: &Position) -> bool {
        match (self, other) {
            (Position::MariaDb(a), Position::MariaDb(b)) => a.contains(b),
            (Position::MySql(a), Position::MySql(b)) => a.contains(b),
            (Position::OpTime(a), Position::OpTime(b)) => a >= b,
            _ => false,
        }
    }

    /// What `self` has that `other` lacks.
    pub fn missing_from(&self, other: &Position) -> Missing {
        match (self, other) {
            (Position::MariaDb(a), Position::MariaDb(b)) => Missing::MariaDb(a.difference(b)),
            (Position::MySql(a), Position::MySql(b)) => Missing::MySql(a.difference(b)),
            (Position::OpTime(a), Position::OpTime(b)) => {
                Missing::OpTime((a > b).then_some((*a, *b)))
            }
            _ => Missing::Incomparable,
        }
    }

    /// `self` plus `other` (for MongoDB, the later optime).
    pub fn union(&self, other: &Position) -> Position {
        match (self, other) {
            (Position::MariaDb(a), Position::MariaDb(b)) => Position::MariaDb(a.union(b)),
            (Position::MySql(a), Position::MySql(b)) => Position::MySql(a.union(b)),
            (Position::OpTime(a), Position::OpTime(b)) => Position::OpTime(*a.max(b)),
            (a, _) => a.clone(),
        }
    }

    /// `self` without the transactions in `missing` (e.g. a member's set
    /// without its errant transactions).
    pub fn without(&self, missing: &Missing) -> Position {
        match (self, missing) {
            (Position::MariaDb(a), Missing::MariaDb(r)) => Position::MariaDb(a.without(r)),
            (Position::MySql(a), Missing::MySql(s)) => Position::MySql(a.difference(s)),
            (p, _) => p.clone(),
        }
    }

    /// The engine's name, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Position::MariaDb(_) => "mariadb",
            Position::MySql(_) => "mysql",
            Position::OpTime(_) => "mongodb",
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::MariaDb(g) => g.fmt(f),
            Position::MySql(g) => g.fmt(f),
            Position::OpTime(o) => o.fmt(f),
        }
    }
}

/// Serialized as `{"kind": "mariadb", "gtids": "0-1-5"}` so that journals
/// and history stay readable.
#[derive(Serialize, Deserialize)]
struct PositionRepr {
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gtids: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    optime: Option<OpTime>,
}

impl Serialize for Position {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let repr = match self {
            Position::OpTime(o) => PositionRepr {
                kind: self.kind().to_string(),
                gtids: None,
                optime: Some(*o),
            },
            _ => PositionRepr {
                kind: self.kind().to_string(),
                gtids: Some(self.to_string()),
                optime: None,
            },
        };
        repr.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Position {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let repr = PositionRepr::deserialize(d)?;
        let gtids = || repr.gtids.clone().unwrap_or_default();
        match repr.kind.as_str() {
            "mariadb" => gtids()
                .parse()
                .map(Position::MariaDb)
                .map_err(D::Error::custom),
            "mysql" => gtids()
                .parse()
                .map(Position::MySql)
                .map_err(D::Error::custom),
            "mongodb" => repr
                .optime
                .map(Position::OpTime)
                .ok_or_else(|| D::Error::custom("mongodb position without optime")),
            k => Err(D::Error::custom(format!("unknown position kind {k:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip_through_json() {
        let ps = [
            Position::MariaDb("0-1-5,1-2-3".parse().unwrap()),
            Position::MySql("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5".parse().unwrap()),
            Position::OpTime(OpTime {
                term: 3,
                secs: 1_700_000_000,
                inc: 2,
            }),
        ];
        for p in ps {
            let json = serde_json::to_string(&p).unwrap();
            let back: Position = serde_json::from_str(&json).unwrap();
            assert_eq!(back, p, "{json}");
        }
    }

    #[test]
    fn different_engines_never_contain_each_other() {
        let a = Position::MariaDb(MariaDbGtids::new());
        let b = Position::MySql(MySqlGtidSet::new());
        assert!(!a.contains(&b));
        assert_eq!(a.missing_from(&b), Missing::Incomparable);
        assert!(!Missing::Incomparable.is_empty());
    }

    #[test]
    fn optimes_order_by_term_then_timestamp() {
        let old_term = OpTime {
            term: 1,
            secs: 200,
            inc: 0,
        };
        let new_term = OpTime {
            term: 2,
            secs: 100,
            inc: 0,
        };
        let a = Position::OpTime(new_term);
        let b = Position::OpTime(old_term);
        assert!(a.contains(&b));
        assert!(!b.contains(&a));
        assert!(b.missing_from(&a).is_empty());
        assert!(!a.missing_from(&b).is_empty());
    }

    #[test]
    fn missing_filters_by_origin() {
        let a = Position::MariaDb("0-1-10,0-7-11".parse().unwrap());
        let b = Position::MariaDb("0-1-10".parse().unwrap());
        let m = a.missing_from(&b);
        assert_eq!(m.items(), vec!["0-7-1..11"]);
        assert!(m.originating_from("1").is_empty());
        assert_eq!(m.originating_from("7").items(), vec!["0-7-1..11"]);
    }
}
