//! Is this controller cut off? A pure decision from what it can reach.
//!
//! etcd is the authority: while a controller reaches it, it is connected,
//! whatever its peers say. When etcd does not answer, the peers tell an
//! etcd outage (a majority of controllers, this one included, still reach
//! each other: fail static, fence nothing, promote nothing) from an
//! isolation (neither etcd nor a majority: the majority side may promote,
//! so this side must fence its own primaries before their lease expires).
//!
//! [`FenceDeadline`] says by when an isolated controller must have fenced.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

/// Whether this controller reaches etcd, and if not for how long it has not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EtcdReach {
    /// The last etcd call (or keep-alive) succeeded.
    Reachable,
    /// etcd has not answered for this long.
    Unreachable {
        /// Time since the last successful etcd call.
        for_: Duration,
    },
}

/// What the isolation decision looks at.
#[derive(Debug, Clone, Copy)]
pub struct Reach<'a> {
    /// This controller's id.
    pub self_id: &'a str,
    /// Every controller id in the config (this one included or not: it is
    /// always counted).
    pub controllers: &'a BTreeSet<String>,
    /// The other controllers whose last ping succeeded. Ids that are not in
    /// `controllers`, and `self_id`, are ignored.
    pub peers_reachable: &'a BTreeSet<String>,
    /// The reachable peers that say they reach etcd themselves.
    pub peers_with_etcd: &'a BTreeSet<String>,
    /// etcd reachability.
    pub etcd: EtcdReach,
}

/// The three states a controller can be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connectivity {
    /// etcd answers: business as usual (the primary lease is renewed, so
    /// nobody promotes around this region).
    Connected,
    /// etcd is down but a majority of controllers (self included) reach each
    /// other: an etcd outage, not an isolation. Fail static: fence nothing,
    /// promote nothing.
    EtcdOutage,
    /// Neither etcd nor a majority: the rest may promote without us, so the
    /// primaries of this region must be fenced before their lease expires.
    Isolated,
}

impl fmt::Display for Connectivity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Connectivity::Connected => "connected",
            Connectivity::EtcdOutage => "etcd_outage",
            Connectivity::Isolated => "isolated",
        })
    }
}

/// The decision, with the numbers behind it for logs, metrics and history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    /// The state.
    pub connectivity: Connectivity,
    /// Controllers this one reaches, itself included.
    pub reachable: usize,
    /// Controllers in the cluster, this one included.
    pub total: usize,
    /// How long etcd has not answered (`None` while it does).
    pub etcd_unreachable_for: Option<Duration>,
    /// Why, in words.
    pub reason: String,
}

impl Assessment {
    /// True when the controller must fence its own region's primaries.
    pub fn is_isolated(&self) -> bool {
        self.connectivity == Connectivity::Isolated
    }
}

/// Decides the controller's [`Connectivity`]. A majority is strictly more
/// than half of all controllers, this one included, so with an even count a
/// half/half split is isolated on both sides (neither may act alone).
///
/// An etcd outage needs etcd to be gone for the reachable peers too: when
/// a peer this controller reaches still reaches etcd, this controller is
/// cut off from etcd alone, its primary lease will lapse while the rest
/// carry on, and it counts as isolated.
pub fn assess(reach: &Reach<'_>) -> Assessment {
    let mut all: BTreeSet<&str> = reach.controllers.iter().map(String::as_str).collect();
    all.insert(reach.self_id);
    let total = all.len();
    let peers = reach
        .peers_reachable
        .iter()
        .filter(|p| p.as_str() != reach.self_id && all.contains(p.as_str()))
        .count();
    let reachable = peers + 1;
    let majority = reachable * 2 > total;
    let with_etcd: Vec<&str> = reach
        .peers_with_etcd
        .iter()
        .filter(|p| {
            p.as_str() != reach.self_id
                && all.contains(p.as_str())
                && reach.peers_reachable.contains(p.as_str())
        })
        .map(String::as_str)
        .collect();
    let (connectivity, etcd_unreachable_for, reason) = match reach.etcd {
        EtcdReach::Reachable => (
            Connectivity::Connected,
            None,
            format!("etcd reachable; {reachable} of {total} controllers reachable"),
        ),
        EtcdReach::Unreachable { for_ } if !with_etcd.is_empty() => (
            Connectivity::Isolated,
            Some(for_),
            format!(
                "etcd unreachable for {}ms from here while {} reach it: cut off from etcd \
                 alone, the others may promote without us: isolated",
                for_.as_millis(),
                with_etcd.join(", ")
            ),
        ),
        EtcdReach::Unreachable { for_ } if majority => (
            Connectivity::EtcdOutage,
            Some(for_),
            format!(
                "etcd unreachable for {}ms but {reachable} of {total} controllers \
                 (a majority) reachable: etcd outage, fail static",
                for_.as_millis()
            ),
        ),
        EtcdReach::Unreachable { for_ } => (
            Connectivity::Isolated,
            Some(for_),
            format!(
                "etcd unreachable for {}ms and only {reachable} of {total} controllers \
                 reachable (no majority): isolated",
                for_.as_millis()
            ),
        ),
    };
    Assessment {
        connectivity,
        reachable,
        total,
        etcd_unreachable_for,
        reason,
    }
}

/// When an isolated controller must start fencing its region's primaries
/// at the latest: the local deadline of the primary lease it renewed last,
/// minus a safety margin that is the fence's own budget (connect,
/// `SET GLOBAL`, kill sessions). The majority side waits for that lease to
/// expire, so a fence started by this instant and done within the margin
/// makes the old primary read-only before anyone else can be promoted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FenceDeadline {
    /// The latest instant at which the fence must *start* (it then has the
    /// margin to finish before the lease can expire).
    pub fence_by: Instant,
}

impl FenceDeadline {
    /// From the send time of the last renewal etcd acknowledged, the lease
    /// TTL and a margin. A margin larger than the TTL gives `last_renewed`
    /// itself (fence at once).
    pub fn new(last_renewed: Instant, ttl: Duration, margin: Duration) -> Self {
        Self {
            fence_by: last_renewed + ttl.saturating_sub(margin),
        }
    }

    /// How long is left at `now` (zero once passed).
    pub fn remaining(&self, now: Instant) -> Duration {
        self.fence_by.saturating_duration_since(now)
    }

    /// When to start fencing, given when isolation was first seen and how
    /// long a blip may last before it counts (`grace`): after the grace, but
    /// never later than the deadline.
    pub fn act_at(&self, isolated_since: Instant, grace: Duration) -> Instant {
        (isolated_since + grace).min(self.fence_by)
    }

    /// True when an isolated controller must fence now.
    pub fn must_fence(&self, now: Instant, isolated_since: Instant, grace: Duration) -> bool {
        now >= self.act_at(isolated_since, grace)
    }
}

#[cfg(test)]
#[path = "isolation_tests.rs"]
mod tests;
