//! A topology snapshot: what every member looked like at one moment, with
//! the primary and each member's errant transactions worked out — pure, so
//! that both adapters and every test read topologies the same way.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::gtid::{Missing, Position};
use crate::spec::{MemberSpec, Promotion};

/// What a member is doing in the replica set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Writable and not replicating from anyone.
    Primary,
    /// Replicating from another server (MongoDB: a secondary).
    Replica,
    /// Read-only and not replicating: a fenced or demoted primary, or a
    /// restarted one that was kept out of the topology.
    Fenced,
    /// MongoDB arbiter: votes, holds no data, never promoted.
    Arbiter,
    /// Not known: the member could not be read, or is in a transitional
    /// state (MongoDB `STARTUP2`, `RECOVERING`, `ROLLBACK`, …).
    Unknown,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Primary => "primary",
            Role::Replica => "replica",
            Role::Fenced => "fenced",
            Role::Arbiter => "arbiter",
            Role::Unknown => "unknown",
        })
    }
}

/// Why the controller could not talk to a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContactErrorKind {
    /// Nothing answered in time (down, partitioned, wrong address).
    Unreachable,
    /// It answered and refused the login: wrong user or password, or
    /// missing grants. Retrying will not help.
    AccessDenied,
    /// It answered, but a query the adapter needs failed.
    Failed,
}

/// A failed attempt to read a member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactError {
    /// What kind of failure.
    pub kind: ContactErrorKind,
    /// The driver's or server's words.
    pub detail: String,
}

impl ContactError {
    /// True when the connection was refused: nothing listens at the
    /// address (the server is not running), as opposed to a timeout, where
    /// it may be alive behind a cut or hung. The drivers say it only in
    /// words, so this is the one place that reads them.
    pub fn is_refused(&self) -> bool {
        self.kind == ContactErrorKind::Unreachable
            && self.detail.to_ascii_lowercase().contains("refused")
    }
}

/// One member at the moment of observation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberState {
    /// Member id from its [`MemberSpec`].
    pub id: String,
    /// Region from its spec.
    pub region: String,
    /// Address the controller used.
    pub address: String,
    /// Promotion rule from its spec.
    pub promotion: Promotion,
    /// Region priority from its spec (lower is preferred).
    pub region_priority: u32,
    /// What it is doing.
    pub role: Role,
    /// Whether the controller could read it just now.
    pub reachable: bool,
    /// Why it could not be read, when it could not.
    pub contact_error: Option<ContactError>,
    /// The server's own id: MariaDB `server_id`, MySQL `server_uuid`; it
    /// tells which transactions were written on this member.
    pub origin: Option<String>,
    /// `read_only` (MySQL: `super_read_only` too) is on; MongoDB: not primary.
    pub read_only: Option<bool>,
    /// Which member it replicates from (its id; the raw `host:port` when
    /// no member has that address).
    pub source: Option<String>,
    /// The replication receiver (IO thread) is connected and running.
    pub io_running: bool,
    /// The replication applier (SQL thread) is running.
    pub sql_running: bool,
    /// How far behind its source it is, as the server reports it; `None`
    /// when the server cannot tell (threads stopped, source gone).
    pub lag: Option<Duration>,
    /// What it has applied: MariaDB binlog state, MySQL `gtid_executed`,
    /// MongoDB last applied optime.
    pub position: Option<Position>,
    /// What it has applied plus what it has received and not yet applied
    /// (its relay log): what it will have once caught up.
    pub received: Option<Position>,
    /// The applier's last error, if it stopped on one.
    pub sql_error: Option<String>,
    /// The receiver's last error (e.g. cannot connect to the source).
    pub io_error: Option<String>,
    /// Engine-specific state text, for people: MongoDB `stateStr`; on a
    /// MySQL/MariaDB replica the receiver's state (`Yes`, `Connecting`, `No`).
    pub state: Option<String>,
    /// Transactions it has that the primary lacks (see [`errant`]): errant
    /// transactions on a replica, or the lost ones of a crashed old primary.
    pub errant: Vec<String>,
    /// Accounts that `read_only` does not stop (MariaDB: `READ_ONLY ADMIN`,
    /// or `SUPER` before 10.11), as `'user'@'host' (PRIVILEGE)`, the
    /// adapter's own login left out: fencing ends their sessions but cannot
    /// stop them reconnecting and writing, so `status` names them. Empty
    /// for MySQL (`super_read_only` stops everyone) and MongoDB, and when
    /// the grants could not be read (see `read_only_bypass_unknown`).
    #[serde(default)]
    pub read_only_bypass: Vec<String>,
    /// Why `read_only_bypass` could not be read, if it could not.
    #[serde(default)]
    pub read_only_bypass_unknown: Option<String>,
}

impl MemberState {
    /// A member as known before reading it: unreachable, role unknown.
    pub fn unread(spec: &MemberSpec) -> Self {
        Self {
            id: spec.id.clone(),
            region: spec.region.clone(),
            address: spec.address.clone(),
            promotion: spec.promotion,
            region_priority: spec.region_priority,
            role: Role::Unknown,
            reachable: false,
            contact_error: None,
            origin: None,
            read_only: None,
            source: None,
            io_running: false,
            sql_running: false,
            lag: None,
            position: None,
            received: None,
            sql_error: None,
            io_error: None,
            state: None,
            errant: Vec::new(),
            read_only_bypass: Vec::new(),
            read_only_bypass_unknown: None,
        }
    }

    /// The most telling error: contact, then applier, then receiver.
    pub fn last_error(&self) -> Option<String> {
        self.contact_error
            .as_ref()
            .map(|c| c.detail.clone())
            .or_else(|| self.sql_error.clone())
            .or_else(|| self.io_error.clone())
    }

    /// Its receiver runs, or is `Connecting` (its source out of reach for
    /// now): it retries by itself, and a new `CHANGE MASTER` would reach
    /// the source no sooner, so a resumed run does not repoint it again.
    pub fn receiving(&self) -> bool {
        self.io_running || self.state.as_deref() == Some("Connecting")
    }

    /// Writable primary the controller can reach.
    pub fn is_writable_primary(&self) -> bool {
        self.reachable && self.role == Role::Primary && self.read_only == Some(false)
    }

    /// `received`, falling back to `position`.
    pub fn best_position(&self) -> Option<&Position> {
        self.received.as_ref().or(self.position.as_ref())
    }
}

/// The whole replica set at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Every member, in spec order.
    pub members: Vec<MemberState>,
    /// The primary: the one writable member; when none is writable, the
    /// member the replicas replicate from (unreachable or fenced); `None`
    /// when neither tells (or two members are writable — see `warnings`).
    pub primary: Option<String>,
    /// Anything a person should look at: several writable members, replicas
    /// following different sources, a primary that is not writable.
    pub warnings: Vec<String>,
}

impl Snapshot {
    /// Works out the primary, the warnings and every member's errant
    /// transactions from the members as read.
    pub fn assemble(mut members: Vec<MemberState>) -> Snapshot {
        let mut warnings = Vec::new();
        let writable: Vec<&str> = members
            .iter()
            .filter(|m| m.is_writable_primary())
            .map(|m| m.id.as_str())
            .collect();
        let primary = match writable.as_slice() {
            [one] => Some(one.to_string()),
            [] => followed_source(&members, &mut warnings),
            many => {
                warnings.push(format!(
                    "several writable primaries: {} (split brain: fence all but one)",
                    many.join(", ")
                ));
                None
            }
        };
        for m in &members {
            if m.reachable && m.role == Role::Replica && m.read_only == Some(false) {
                warnings.push(format!("replica {} is writable (read_only is off)", m.id));
            }
        }
        let errant: Vec<Vec<String>> = (0..members.len())
            .map(|i| errant(&members, primary.as_deref(), i).items())
            .collect();
        for (m, e) in members.iter_mut().zip(errant) {
            m.errant = e;
        }
        Snapshot {
            members,
            primary,
            warnings,
        }
    }

    /// The member with this id.
    pub fn member(&self, id: &str) -> Option<&MemberState> {
        self.members.iter().find(|m| m.id == id)
    }

    /// The primary's state, if the primary is known.
    pub fn primary_state(&self) -> Option<&MemberState> {
        self.primary.as_deref().and_then(|p| self.member(p))
    }

    /// Every reachable, writable primary (more than one is split brain).
    pub fn writable(&self) -> Vec<&MemberState> {
        self.members
            .iter()
            .filter(|m| m.is_writable_primary())
            .collect()
    }

    /// Member ids, for error messages.
    pub fn ids(&self) -> Vec<String> {
        self.members.iter().map(|m| m.id.clone()).collect()
    }
}

/// With no writable member: the member most reachable replicas follow.
fn followed_source(members: &[MemberState], warnings: &mut Vec<String>) -> Option<String> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for m in members
        .iter()
        .filter(|m| m.reachable && m.role == Role::Replica)
    {
        if let Some(s) = m.source.as_deref()
            && members.iter().any(|o| o.id == s)
        {
            *counts.entry(s).or_default() += 1;
        }
    }
    let best = counts
        .iter()
        .max_by_key(|(id, n)| (**n, std::cmp::Reverse(**id)))
        .map(|(id, _)| id.to_string())?;
    if counts.len() > 1 {
        warnings.push(format!(
            "replicas follow different sources: {}",
            counts
                .iter()
                .map(|(id, n)| format!("{id} ({n})"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let state = members.iter().find(|m| m.id == best);
    let why = match state {
        Some(s) if !s.reachable => "unreachable",
        _ => "not writable (fenced?)",
    };
    warnings.push(format!("primary {best} is {why}"));
    Some(best)
}

/// The transactions member `i` has that the primary lacks and that were
/// written on the member itself (its own `server_id` / `server_uuid`):
/// errant transactions on a replica, or the unreplicated ones of a crashed
/// old primary that came back.
///
/// Compared with the primary's applied position when the primary can be
/// read, else with everything the other reachable members have received.
/// Only the member's own transactions count, so that a replica observed a
/// moment after the primary (and thus a few transactions ahead of it) is
/// never called errant. Empty for the primary itself, for members that
/// could not be read, and for MongoDB, whose rollback handles divergence.
pub fn errant(members: &[MemberState], primary: Option<&str>, i: usize) -> Missing {
    let none = Missing::MariaDb(Vec::new());
    let m = &members[i];
    let (Some(pos), Some(origin)) = (
        m.position.as_ref().filter(|_| m.reachable),
        m.origin.as_deref(),
    ) else {
        return none;
    };
    if matches!(pos, Position::OpTime(_)) || primary == Some(m.id.as_str()) {
        return none;
    }
    let primary_pos = primary
        .and_then(|p| members.iter().find(|o| o.id == p))
        .filter(|p| p.reachable)
        .and_then(|p| p.position.clone());
    let reference = primary_pos.or_else(|| {
        members
            .iter()
            .enumerate()
            .filter(|(j, o)| *j != i && o.reachable)
            .filter_map(|(_, o)| o.best_position())
            .fold(None::<Position>, |acc, p| {
                Some(match acc {
                    None => p.clone(),
                    Some(a) => a.union(p),
                })
            })
    });
    match reference {
        Some(r) => pos.missing_from(&r).originating_from(origin),
        // Alone: nothing to compare with, so nothing can be called errant.
        None => none,
    }
}

#[cfg(test)]
#[path = "snapshot_tests.rs"]
mod tests;
