//! The promotion gate: may the executor promote a replacement for the
//! primary now? Pure.
//!
//! Promoting while the old primary still takes writes in a cut-off region is
//! split brain. The gate opens only on evidence that holds:
//!
//! - **a fence record** made by the primary's own region for *this* primary
//!   under *this* database epoch and the lease last taken for it
//!   ([`judge_record`]); a fence that failed is not a fence, and a record
//!   from another primary, epoch or lease is stale and ignored;
//! - **an expired lease**: a lease taken for this primary at this epoch
//!   (its *vouch*, [`crate::fence::lease::Vouch`]) whose key is gone and
//!   which etcd itself no longer has ([`LeaseLife::Gone`]): etcd's clock,
//!   not this reader's, decides when it ran out, and its holder's fence
//!   deadline counts from before the last renewal etcd acknowledged, so by
//!   then the holder has fenced the primary, or was dead with it. Nothing
//!   revokes a vouched lease early (a holder that gives a lease up lets it
//!   run out; only a primary that left the region has its lease released).
//!   One more condition: this reader must have reached etcd without a gap
//!   for a full lease and the drift margin. A gap may be what let the
//!   holder fail static (keep its primary writable past the lease, when no
//!   controller reached etcd); a full lease of this reader answering its
//!   peers "etcd answers" is what turns that holder's fail-static into a
//!   fence.
//!
//! A new primary (after a failover or switchover) whose region has a
//! controller starts with the gate **closed**: until that controller takes
//! its lease, nobody would fence it if its region were cut off, so neither
//! an absent lease nor a lease of an earlier primary says anything about it.
//! The documented exception is a region with no controller configured:
//! nobody there can hold a lease or fence, so an absent lease opens the
//! gate (the config check warns about such regions). A manual forced
//! failover skips the gate; the reason says so, for history.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::Config;
use crate::fence::lease::{LeaseLife, LeaseObservation, VouchObservation};
use crate::fence::local::{FenceOutcome, FenceRecord};
use crate::runtime::control::DatabaseState;

/// The reason recorded when a manual forced failover skips the gate.
pub const FORCED_REASON: &str = "forced: gate skipped";

/// What the old primary's fence record says, judged against the database's
/// current state ([`judge_record`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FenceAttempt {
    /// No record (or not read).
    NotAttempted,
    /// `member` was fenced by its region's controller while it was the
    /// primary at database epoch `epoch`, under the lease last taken for it.
    Fenced {
        /// The member fenced.
        member: String,
        /// The database epoch the fence was made under.
        epoch: u64,
    },
    /// Fencing `member` failed: not a fence.
    Failed {
        /// The member.
        member: String,
        /// Why.
        error: String,
    },
    /// A record of a fence that does not count now: another primary,
    /// another epoch, or superseded by a lease taken after it.
    Stale {
        /// The member the record is about.
        member: String,
        /// Why it does not count.
        why: String,
    },
}

/// What opened the gate, for metrics labels and history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenedBy {
    /// The old primary's fence succeeded.
    Fenced,
    /// The old primary's lease expired.
    LeaseExpired,
    /// The primary's region has no controller: nobody holds a lease for it
    /// or could fence it (the documented exception).
    NoController,
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
        /// When to ask again (this reader's monotonic clock); `None` when
        /// that is not known (etcd unreadable, no lease taken yet, a stale
        /// observation: read again first).
        until: Option<Instant>,
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

/// Which member is in which region, and which regions have a controller
/// configured: whether a primary has anybody to hold its lease and fence it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Coverage {
    members: BTreeMap<String, BTreeMap<String, String>>,
    controllers: BTreeMap<String, Vec<String>>,
}

impl Coverage {
    /// From the config's databases and controllers.
    pub fn from_config(cfg: &Config) -> Self {
        let mut c = Coverage::default();
        for d in &cfg.databases {
            for m in &d.members {
                c.add_member(&d.name, &m.id, &m.region);
            }
        }
        for ctl in &cfg.controllers {
            c.add_controller(&ctl.id, &ctl.region);
        }
        c
    }

    /// Declares member `member` of `db` in `region`.
    pub fn add_member(&mut self, db: &str, member: &str, region: &str) {
        self.members
            .entry(db.to_string())
            .or_default()
            .insert(member.to_string(), region.to_string());
    }

    /// Declares controller `id` in `region`.
    pub fn add_controller(&mut self, id: &str, region: &str) {
        self.controllers
            .entry(region.to_string())
            .or_default()
            .push(id.to_string());
    }

    /// Who could hold `member`'s lease and fence it.
    pub fn cover(&self, db: &str, member: &str) -> Cover {
        let Some(region) = self.members.get(db).and_then(|m| m.get(member)) else {
            return Cover::UnknownMember;
        };
        match self.controllers.get(region) {
            Some(ids) if !ids.is_empty() => Cover::Controlled {
                region: region.clone(),
                controllers: ids.clone(),
            },
            _ => Cover::NoController {
                region: region.clone(),
            },
        }
    }
}

/// Who could hold a primary's lease and fence it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cover {
    /// Its region has these controllers.
    Controlled {
        /// The region.
        region: String,
        /// Its controllers' ids.
        controllers: Vec<String>,
    },
    /// Its region has no controller configured.
    NoController {
        /// The region.
        region: String,
    },
    /// The member is not in the config (this controller's config differs).
    UnknownMember,
}

/// Everything the gate looks at, read after the fence record.
#[derive(Debug, Clone)]
pub struct Evidence<'a> {
    /// The database's recorded primary and epoch; `None` when unreadable.
    pub state: Option<&'a DatabaseState>,
    /// Who could hold the recorded primary's lease and fence it.
    pub cover: &'a Cover,
    /// The primary lease as read now.
    pub lease: &'a LeaseObservation,
    /// The last lease taken for the database.
    pub vouch: &'a VouchObservation,
    /// The old primary's fence record, judged ([`judge_record`]).
    pub fence: &'a FenceAttempt,
    /// Whether etcd still runs the lease the vouch names.
    pub vouched_lease: &'a LeaseLife,
    /// How long this reader must have reached etcd without a gap before an
    /// expired lease counts (TTL + drift margin).
    pub unseen_wait: Duration,
}

/// Does `record` (the fence record of the recorded primary, if any) count
/// as a fence of the primary now? Only when it fenced successfully the
/// recorded primary, while it was the primary at the current epoch, under
/// the lease last taken for it (`vouch`, when it covers that primary and
/// epoch): a lease taken after the fence means the region vouched for the
/// primary again since, so the fence may have been lifted.
pub fn judge_record(
    record: Option<&FenceRecord>,
    state: &DatabaseState,
    vouch: &VouchObservation,
) -> FenceAttempt {
    let Some(r) = record else {
        return FenceAttempt::NotAttempted;
    };
    let member = r.member.clone();
    let stale = |why: String| FenceAttempt::Stale {
        member: r.member.clone(),
        why,
    };
    if let FenceOutcome::Failed { error } = &r.result {
        return FenceAttempt::Failed {
            member,
            error: error.clone(),
        };
    }
    if r.member != state.primary {
        return stale(format!(
            "it fenced {}, the recorded primary is {}",
            r.member, state.primary
        ));
    }
    let Some(under) = &r.under else {
        return stale("it does not say which primary and epoch it was made under".into());
    };
    if under.primary != state.primary || under.epoch != state.epoch {
        return stale(format!(
            "it was made while {} was primary at epoch {}; now {} is, at epoch {}",
            under.primary, under.epoch, state.primary, state.epoch
        ));
    }
    let Some(lease) = under.lease_id else {
        return stale("it was made without the primary lease it answers for".into());
    };
    // Without a reading of the vouch, a later lease cannot be ruled out:
    // the record does not count (the gate may still open on the lease).
    if let VouchObservation::Unknown { error } = vouch {
        return stale(format!("the vouch cannot be read ({error})"));
    }
    if let VouchObservation::Present(v) = vouch
        && v.covers(&state.primary, state.epoch)
        && v.lease_id != lease
    {
        return stale(format!(
            "lease {:x} was taken for {} after it (made under lease {lease:x})",
            v.lease_id, state.primary
        ));
    }
    FenceAttempt::Fenced {
        member,
        epoch: state.epoch,
    }
}

/// Decides whether a replacement for `replacing` may be promoted at `now`
/// (this reader's monotonic clock).
///
/// While the lease key exists the gate stays shut whichever member the
/// lease names: someone is renewing it and may not be isolated, so its
/// region's primary may still be writable.
pub fn may_promote(replacing: &str, ev: &Evidence<'_>, manual_force: bool, now: Instant) -> Gate {
    if manual_force {
        return Gate::Open {
            by: OpenedBy::Forced,
            reason: FORCED_REASON.to_string(),
        };
    }
    let wait = |until: Option<Instant>, reason: String| Gate::Wait { until, reason };
    let Some(state) = ev.state else {
        return wait(None, "the database's recorded state is unreadable".into());
    };
    let old = state.primary.as_str();
    let epoch = state.epoch;
    if old != replacing {
        return wait(
            None,
            format!(
                "the recorded primary is {old:?} (epoch {epoch}), not {replacing:?}: \
                 this failover no longer applies"
            ),
        );
    }
    let fence_note = match ev.fence {
        FenceAttempt::Fenced { member, epoch: e } if member == old && *e == epoch => {
            return Gate::Open {
                by: OpenedBy::Fenced,
                reason: format!("old primary {old} fenced by its region (epoch {epoch})"),
            };
        }
        FenceAttempt::Fenced { member, epoch: e } => {
            format!("; a fence of {member} at epoch {e} does not count for {old} at epoch {epoch}")
        }
        FenceAttempt::Failed { member, error } => format!("; fencing {member} failed: {error}"),
        FenceAttempt::Stale { member, why } => {
            format!("; the fence record of {member} does not count: {why}")
        }
        FenceAttempt::NotAttempted => String::new(),
    };
    let (last_seen, since, watching_since) = match ev.lease {
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
            return if l.expires_at > now {
                wait(
                    Some(l.expires_at),
                    format!("{holder} for {} more{fence_note}", secs(l.expires_at - now)),
                )
            } else {
                wait(
                    None,
                    format!("{holder}; the observation is stale, read it again{fence_note}"),
                )
            };
        }
        LeaseObservation::Unknown { error } => {
            return wait(
                None,
                format!("primary lease of {old} unreadable: {error}{fence_note}"),
            );
        }
        LeaseObservation::Absent {
            last_seen,
            since,
            watching_since,
        } => (last_seen.as_ref(), *since, *watching_since),
    };
    let region = match ev.cover {
        Cover::NoController { region } => {
            // The documented exception: nobody there holds leases or fences.
            if let Some(l) = last_seen
                && l.expires_at > now
            {
                return wait(
                    Some(l.expires_at),
                    format!(
                        "a primary lease (of {}) vanished {} ago; waiting out its drift \
                         margin{fence_note}",
                        l.value.primary,
                        secs(now.saturating_duration_since(since))
                    ),
                );
            }
            return Gate::Open {
                by: OpenedBy::NoController,
                reason: format!(
                    "region {region} of {old} has no controller: nobody holds a lease for it \
                     or could fence it{fence_note}"
                ),
            };
        }
        Cover::UnknownMember => {
            return wait(
                None,
                format!("{old} is not a member of this database in this controller's config"),
            );
        }
        Cover::Controlled { region, .. } => region,
    };
    let vouch = match ev.vouch {
        VouchObservation::Present(v) if v.covers(old, epoch) => v,
        VouchObservation::Unknown { error } => {
            return wait(
                None,
                format!("the last lease taken for {old} is unreadable: {error}{fence_note}"),
            );
        }
        other => {
            let last = match other {
                VouchObservation::Present(v) => format!(
                    "the last lease was taken by {} for {} at epoch {}",
                    v.lease.holder,
                    v.lease.primary,
                    v.lease
                        .epoch
                        .map_or_else(|| "(unknown)".to_string(), |e| e.to_string())
                ),
                _ => "no lease was ever taken".to_string(),
            };
            return wait(
                None,
                format!(
                    "no controller of region {region} has held the primary lease of {old} \
                     since it became primary at epoch {epoch} ({last}): cut off, nobody would \
                     fence it, so the gate stays shut until one does. If {old} cannot take \
                     writes (it is down, or you fenced it), use --force{fence_note}"
                ),
            );
        }
    };
    let holder = format!(
        "primary lease of {old} (held by {} in {})",
        vouch.lease.holder, vouch.lease.region
    );
    match ev.vouched_lease {
        LeaseLife::Gone => {}
        LeaseLife::Running { left } => {
            return wait(
                Some(now + *left),
                format!(
                    "{holder}: its key is gone but etcd still runs lease {:x} ({} at most); \
                     waiting for etcd to end it{fence_note}",
                    vouch.lease_id,
                    secs(*left)
                ),
            );
        }
        LeaseLife::Unknown { error } => {
            return wait(
                None,
                format!(
                    "{holder}: its key is gone; whether etcd still runs lease {:x} is \
                     unknown: {error}{fence_note}",
                    vouch.lease_id
                ),
            );
        }
    }
    // etcd ended the lease; count it only after a full lease of watching
    // etcd without a gap (a gap may have let the holder fail static).
    let opens = watching_since + ev.unseen_wait;
    if now >= opens {
        Gate::Open {
            by: OpenedBy::LeaseExpired,
            reason: format!("{holder} expired: etcd ended it{fence_note}"),
        }
    } else {
        wait(
            Some(opens),
            format!(
                "{holder} expired in etcd, but this controller has reached etcd without a gap \
                 only for {}: waiting {} more, so that a holder that failed static sees etcd \
                 answer and fences{fence_note}",
                secs(now.saturating_duration_since(watching_since)),
                secs(opens - now)
            ),
        )
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

#[cfg(test)]
#[path = "gate_tests.rs"]
mod tests;
