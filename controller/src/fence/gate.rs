//! The promotion gate: may the executor promote a replacement for the
//! primary now? Pure.
//!
//! Promoting while the old primary still takes writes in a cut-off region is
//! split brain. The gate opens only when that cannot happen: the old
//! primary's fence succeeded, or its primary lease has expired (from the
//! last renewal the leader saw, plus TTL, plus the drift margin), by which
//! time an isolated controller in its region has fenced it itself. A manual
//! forced failover may skip the gate; the reason says so, for history.

use chrono::{DateTime, Utc};

use crate::fence::lease::LeaseObservation;
use crate::runtime::control::DatabaseState;

/// The reason recorded when a manual forced failover skips the gate.
pub const FORCED_REASON: &str = "forced: gate skipped";

/// What the executor's attempt to fence the old primary gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FenceAttempt {
    /// Not tried (yet), e.g. the old primary is unreachable from the leader.
    NotAttempted,
    /// `member` is fenced (read-only, sessions killed).
    Fenced {
        /// The member fenced.
        member: String,
    },
    /// Fencing `member` failed.
    Failed {
        /// The member.
        member: String,
        /// Why.
        error: String,
    },
}

/// What opened the gate, for metrics labels and history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenedBy {
    /// The old primary's fence succeeded.
    Fenced,
    /// The old primary's lease expired.
    LeaseExpired,
    /// No lease was ever seen for the database and none exists: no
    /// controller renews one (e.g. a region without a controller).
    NoLease,
    /// A manual forced failover skipped the gate.
    Forced,
    /// No gate is configured (an executor built for the journal alone).
    Ungated,
}

/// The gate's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// Promote.
    Open {
        /// What opened it.
        by: OpenedBy,
        /// Why, in words, for history.
        reason: String,
    },
    /// Do not promote yet.
    Wait {
        /// When to ask again: the lease's observed expiry; `None` when that
        /// is not known (etcd unreadable, or a stale observation: read the
        /// lease again first).
        until: Option<DateTime<Utc>>,
        /// Why, in words, for logs and metrics.
        reason: String,
    },
}

impl Gate {
    /// True when promotion may go ahead.
    pub fn is_open(&self) -> bool {
        matches!(self, Gate::Open { .. })
    }
}

/// Decides whether a replacement for `db.primary` may be promoted at `now`.
///
/// `lease` must be the latest observation, read after `fence` was tried.
/// While the lease key exists the gate stays shut whichever member the lease
/// names: someone is renewing it and may not be isolated, so its region's
/// primary may still be writable.
pub fn may_promote(
    db: &DatabaseState,
    lease: &LeaseObservation,
    fence: &FenceAttempt,
    manual_force: bool,
    now: DateTime<Utc>,
) -> Gate {
    if manual_force {
        return Gate::Open {
            by: OpenedBy::Forced,
            reason: FORCED_REASON.to_string(),
        };
    }
    let old = db.primary.as_str();
    let fence_note = match fence {
        FenceAttempt::Fenced { member } if member == old => {
            return Gate::Open {
                by: OpenedBy::Fenced,
                reason: format!("old primary {old} fenced"),
            };
        }
        FenceAttempt::Fenced { member } => {
            format!("; {member} was fenced, but the primary is {old}")
        }
        FenceAttempt::Failed { member, error } => format!("; fencing {member} failed: {error}"),
        FenceAttempt::NotAttempted => String::new(),
    };
    match lease {
        LeaseObservation::Held(l) => {
            let names = if l.value.primary == old {
                String::new()
            } else {
                format!(" (it names {}, not {old})", l.value.primary)
            };
            let holder = format!(
                "primary lease of {old} held by {} in {}{names}",
                l.value.holder, l.value.region
            );
            if l.expires_at > now {
                Gate::Wait {
                    until: Some(l.expires_at),
                    reason: format!("{holder} until {}{fence_note}", l.expires_at.to_rfc3339()),
                }
            } else {
                Gate::Wait {
                    until: None,
                    reason: format!(
                        "{holder}; observation from {} is stale, read it again{fence_note}",
                        l.seen_at.to_rfc3339()
                    ),
                }
            }
        }
        LeaseObservation::Absent { last_seen: Some(l) } if l.expires_at > now => Gate::Wait {
            until: Some(l.expires_at),
            reason: format!(
                "primary lease of {old} gone from etcd; waiting out the drift margin until {}{fence_note}",
                l.expires_at.to_rfc3339()
            ),
        },
        LeaseObservation::Absent { last_seen: Some(l) } => Gate::Open {
            by: OpenedBy::LeaseExpired,
            reason: format!(
                "primary lease of {old} (held by {} in {}) expired at {}{fence_note}",
                l.value.holder,
                l.value.region,
                l.expires_at.to_rfc3339()
            ),
        },
        LeaseObservation::Unseen { since, until } if *until > now => Gate::Wait {
            until: Some(*until),
            reason: format!(
                "primary lease of {old} absent since {} but never seen by this leader; \
                 waiting a full lease until {}{fence_note}",
                since.to_rfc3339(),
                until.to_rfc3339()
            ),
        },
        LeaseObservation::Unseen { since, .. } => Gate::Open {
            by: OpenedBy::NoLease,
            reason: format!(
                "no primary lease held for {old} for a full lease since {}{fence_note}",
                since.to_rfc3339()
            ),
        },
        LeaseObservation::Absent { last_seen: None } => Gate::Open {
            by: OpenedBy::NoLease,
            reason: format!("no primary lease held for {old}{fence_note}"),
        },
        LeaseObservation::Unknown { error } => Gate::Wait {
            until: None,
            reason: format!("primary lease of {old} unreadable: {error}{fence_note}"),
        },
    }
}

#[cfg(test)]
#[path = "gate_tests.rs"]
mod tests;
