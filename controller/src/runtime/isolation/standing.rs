//! The isolation loop's decisions as a state machine with named states
//! and no I/O: where this controller stands with the cluster
//! ([`Standing`]), how one look at its inputs moves it
//! ([`Isolation::step`]), and what the loop must do then ([`Effects`]).
//! The driver ([`super::IsolationLoop`]) reads the inputs, performs the
//! fence pass a step orders and reports how it went
//! ([`Isolation::fenced`]).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::time::Instant;

use super::{Timing, fence_deadline, overdue};
use crate::fence::isolation::{Assessment, Connectivity, EtcdReach, Reach, assess};
use crate::runtime::lease_keeper::HeldLease;

/// How long a failed fence pass waits before it is tried again.
pub const FENCE_RETRY: Duration = Duration::from_secs(1);
/// While a fence stays due and its last pass fenced every target, how
/// often the local members are checked again (a member restarted
/// writable, or unfenced by hand).
pub const RECHECK: Duration = Duration::from_secs(2);

/// Where this controller stands with the rest of the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Nothing assessed yet. An isolation seen before the first round of
    /// pings is in is not trusted (an unanswered peer is unknown, not
    /// gone), so the standing stays here until then.
    Unknown,
    /// etcd answers.
    Connected,
    /// etcd is silent, every controller answers and none reaches it: fail
    /// static (nothing fenced; without etcd nothing is promoted).
    EtcdOutage,
    /// Cut off since `since`.
    Isolated {
        /// When the isolation was first seen.
        since: Instant,
    },
}

impl Standing {
    /// The connectivity this standing is, once one was assessed.
    pub fn connectivity(&self) -> Option<Connectivity> {
        match self {
            Standing::Unknown => None,
            Standing::Connected => Some(Connectivity::Connected),
            Standing::EtcdOutage => Some(Connectivity::EtcdOutage),
            Standing::Isolated { .. } => Some(Connectivity::Isolated),
        }
    }
}

/// The last pass of a fence that is still due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pass {
    /// When it ended.
    pub at: Instant,
    /// Whether it fenced every target.
    pub ok: bool,
    /// What the fence due covers (`None`: every local database), as last
    /// ordered or seen due.
    pub scope: Option<BTreeSet<String>>,
}

/// What one look at the inputs saw.
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    /// When.
    pub now: Instant,
    /// How long since etcd last answered.
    pub etcd_silent_for: Duration,
    /// Peers whose last ping was answered.
    pub reachable: &'a BTreeSet<String>,
    /// Reachable peers that reach etcd themselves.
    pub with_etcd: &'a BTreeSet<String>,
    /// The primary leases the keeper holds now.
    pub held: &'a BTreeMap<String, HeldLease>,
}

/// A fence pass to run now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FenceOrder {
    /// Why, for the records.
    pub reason: String,
    /// The databases to fence (`None`: every local one).
    pub only: Option<BTreeSet<String>>,
    /// A first pass also tries members it cannot read; later passes
    /// re-check the readable ones.
    pub first: bool,
}

/// What the loop must do after a step.
#[derive(Debug, Clone, Default)]
pub struct Effects {
    /// The connectivity changed: the one before (`None`: none yet) and
    /// the new assessment, to log and to show.
    pub changed: Option<(Option<Connectivity>, Assessment)>,
    /// A fence pass to run, then report with [`Isolation::fenced`].
    pub fence: Option<FenceOrder>,
}

/// The isolation loop's state.
#[derive(Debug)]
pub struct Isolation {
    self_id: String,
    controllers: BTreeSet<String>,
    timing: Timing,
    started: Instant,
    standing: Standing,
    /// The last pass of the fence due; `None` while none is due or none
    /// ran yet.
    pass: Option<Pass>,
    /// The leases as last seen while connected: a lease the keeper lost
    /// because etcd is gone still bounds when to fence.
    leases: BTreeMap<String, HeldLease>,
}

impl Isolation {
    /// The state of a loop started at `started` for controller `self_id`
    /// among `controllers`.
    pub fn new(
        self_id: String,
        controllers: BTreeSet<String>,
        timing: Timing,
        started: Instant,
    ) -> Self {
        Isolation {
            self_id,
            controllers,
            timing,
            started,
            standing: Standing::Unknown,
            pass: None,
            leases: BTreeMap::new(),
        }
    }

    /// Where the controller stands.
    pub fn standing(&self) -> Standing {
        self.standing
    }

    /// The leases a fence pass is made under (as last seen connected).
    pub fn leases(&self) -> &BTreeMap<String, HeldLease> {
        &self.leases
    }

    /// One look: the new standing, and the fence pass due now, if any.
    pub fn step(&mut self, seen: Seen<'_>) -> Effects {
        let now = seen.now;
        let etcd = if seen.etcd_silent_for < self.timing.etcd_silence {
            EtcdReach::Reachable
        } else {
            EtcdReach::Unreachable {
                for_: seen.etcd_silent_for,
            }
        };
        let a = assess(&Reach {
            self_id: &self.self_id,
            controllers: &self.controllers,
            peers_reachable: seen.reachable,
            peers_with_etcd: seen.with_etcd,
            etcd,
        });
        if a.is_isolated() && now.saturating_duration_since(self.started) < self.timing.first_round
        {
            return Effects::default();
        }
        let mut effects = Effects::default();
        let before = self.standing.connectivity();
        if before != Some(a.connectivity) {
            effects.changed = Some((before, a.clone()));
        }
        let due = match a.connectivity {
            Connectivity::Connected => {
                self.standing = Standing::Connected;
                self.leases = seen.held.clone();
                overdue(&self.leases, now, &self.timing).map(|(dbs, reason)| (Some(dbs), reason))
            }
            Connectivity::EtcdOutage => {
                self.standing = Standing::EtcdOutage;
                None
            }
            Connectivity::Isolated => {
                let since = match self.standing {
                    Standing::Isolated { since } => since,
                    _ => now,
                };
                self.standing = Standing::Isolated { since };
                fence_deadline(&self.leases, since, &self.timing)
                    .must_fence(now, since, self.timing.grace)
                    .then_some((None, a.reason))
            }
        };
        let Some((only, reason)) = due else {
            self.pass = None;
            return effects;
        };
        // A wider scope than the last pass's makes the next one a first
        // pass.
        if let Some(p) = &self.pass {
            let widened = match (&p.scope, &only) {
                (Some(_), None) => true,
                (Some(last), Some(now)) => !now.is_subset(last),
                (None, _) => false,
            };
            if widened {
                self.pass = None;
            }
        }
        let again = match &mut self.pass {
            Some(p) => {
                p.scope.clone_from(&only);
                let wait = if p.ok { RECHECK } else { FENCE_RETRY };
                now.saturating_duration_since(p.at) >= wait
            }
            None => true,
        };
        if again {
            effects.fence = Some(FenceOrder {
                reason,
                only,
                first: self.pass.is_none(),
            });
        }
        effects
    }

    /// A pass `order` ordered ended at `at`, fencing every target (`ok`)
    /// or not.
    pub fn fenced(&mut self, order: &FenceOrder, at: Instant, ok: bool) {
        self.pass = Some(Pass {
            at,
            ok,
            scope: order.only.clone(),
        });
    }
}

#[cfg(test)]
#[path = "standing_tests.rs"]
mod tests;
