//! Lag judged by what was seen while the primary was alive, pure.
//!
//! `Seconds_Behind_Master` (and MongoDB's optime difference) can only be
//! measured while a replica hears from its primary: it reads NULL as soon as
//! the primary is gone, which is exactly when a failover needs it. So the
//! adapter keeps, from every observation in which the primary was reachable
//! and writable, each replica's lag and the primary's position
//! ([`LastSeen::record`]), and candidate selection judges a replica by
//! ([`judge`]), in this order:
//!
//! 1. the lag the server reports now, when it can tell;
//! 2. no lag, when the replica has applied every transaction the primary was
//!    last seen to have (it lacks at most what was written after that last
//!    observation);
//! 3. the lag last seen while the primary was alive;
//! 4. unknown otherwise, which is not held against it.
//!
//! The memory is about one primary: it is forgotten when another member is
//! seen as the live primary.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::gtid::Position;
use crate::snapshot::{MemberState, Role, Snapshot};

/// What the adapter remembers (kept in the adapter, updated by every
/// observation; holds instants, so it is turned into a [`LagHistory`] of
/// ages before it reaches the pure rules).
#[derive(Debug, Clone, Default)]
pub struct LastSeen {
    primary: Option<String>,
    primary_position: Option<Position>,
    primary_at: Option<Instant>,
    replicas: BTreeMap<String, (Option<Duration>, Instant)>,
}

impl LastSeen {
    /// Takes in one observation made at `now`. Only an observation in which
    /// the primary is reachable and writable teaches anything; a new live
    /// primary replaces everything remembered of the previous one.
    pub fn record(&mut self, snap: &Snapshot, now: Instant) {
        let Some(p) = snap.primary_state().filter(|p| p.is_writable_primary()) else {
            return;
        };
        if self.primary.as_deref() != Some(p.id.as_str()) {
            *self = LastSeen {
                primary: Some(p.id.clone()),
                ..LastSeen::default()
            };
        }
        if p.position.is_some() {
            self.primary_position = p.position.clone();
            self.primary_at = Some(now);
        }
        for m in &snap.members {
            if m.reachable && m.role == Role::Replica && m.source.as_deref() == Some(&p.id) {
                self.replicas.insert(m.id.clone(), (m.lag, now));
            }
        }
    }

    /// What is remembered, with ages measured at `now`.
    pub fn history(&self, now: Instant) -> LagHistory {
        LagHistory {
            primary: self.primary.clone(),
            primary_position: self.primary_position.clone(),
            primary_age: self.primary_at.map(|t| now.saturating_duration_since(t)),
            replicas: self
                .replicas
                .iter()
                .map(|(id, (lag, at))| {
                    (
                        id.clone(),
                        Seen {
                            lag: *lag,
                            age: now.saturating_duration_since(*at),
                        },
                    )
                })
                .collect(),
        }
    }
}

/// One replica's lag as last seen while the primary was alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    /// The lag the server reported (`None`: it could not tell).
    pub lag: Option<Duration>,
    /// How long ago.
    pub age: Duration,
}

/// What was seen while the primary was alive, as plain data for the pure
/// rules (empty when nothing was: a controller that just started).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LagHistory {
    /// The primary these observations were made under.
    pub primary: Option<String>,
    /// Its applied position at the last of them.
    pub primary_position: Option<Position>,
    /// How long ago that was.
    pub primary_age: Option<Duration>,
    /// Each replica's last lag (by member id).
    pub replicas: BTreeMap<String, Seen>,
}

/// How a member's lag is judged, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judged {
    /// The lag the rules hold against it (`None`: unknown, not held).
    pub judged: Option<Duration>,
    /// The last lag actually seen (now, or while the primary was alive): how
    /// far behind it was, for the report, even when `judged` cleared it.
    pub seen: Option<Duration>,
    /// In words, for reasons and exclusions.
    pub note: String,
}

/// Judges member `m` of `snapshot` (see the module doc for the order).
pub fn judge(m: &MemberState, snapshot: &Snapshot, history: &LagHistory) -> Judged {
    let same_primary = history.primary.is_some() && history.primary == snapshot.primary;
    let remembered = same_primary
        .then(|| history.replicas.get(&m.id))
        .flatten()
        .copied();
    let seen_then = remembered.and_then(|s| s.lag);
    if let Some(now) = m.lag {
        return Judged {
            judged: Some(now),
            seen: Some(now),
            note: format!("{}s behind now", now.as_secs()),
        };
    }
    if same_primary
        && let (Some(pp), Some(mine)) = (&history.primary_position, &m.position)
        && mine.contains(pp)
    {
        let age = history.primary_age.unwrap_or_default();
        let note = match seen_then {
            Some(l) => format!(
                "was {}s behind while the primary was alive, and has since applied every \
                 transaction the primary had when last seen ({} ago)",
                l.as_secs(),
                human(age)
            ),
            None => format!(
                "has applied every transaction the primary had when last seen ({} ago)",
                human(age)
            ),
        };
        return Judged {
            judged: Some(Duration::ZERO),
            seen: seen_then,
            note,
        };
    }
    match remembered {
        Some(Seen { lag: Some(l), age }) => Judged {
            judged: Some(l),
            seen: Some(l),
            note: format!(
                "{}s behind when last seen while the primary was alive ({} ago)",
                l.as_secs(),
                human(age)
            ),
        },
        _ => Judged {
            judged: None,
            seen: None,
            note: "lag unknown: not seen while the primary was alive".to_string(),
        },
    }
}

fn human(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

#[cfg(test)]
#[path = "lag_tests.rs"]
mod tests;

/// An adapter's lag memory, shared by its clones: every observation goes
/// in, candidate selection reads what it holds, aged to now (tokio's clock,
/// so tests can pause it).
#[derive(Debug, Clone, Default)]
pub struct LagMemory(Arc<Mutex<LastSeen>>);

impl LagMemory {
    /// Takes an observation in.
    pub fn remember(&self, snap: &Snapshot) {
        let now = switchyard_host::time::now().into_std();
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .record(snap, now);
    }

    /// What it holds, aged to now.
    pub fn history(&self) -> LagHistory {
        let now = switchyard_host::time::now().into_std();
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .history(now)
    }
}
