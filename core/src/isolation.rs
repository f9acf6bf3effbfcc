//! Is this controller cut off? A pure decision from what it can reach.
//!
//! etcd is the authority: while a controller reaches it, it is connected,
//! whatever its peers say. When etcd does not answer, the peers tell an
//! etcd outage from an isolation. It is an etcd outage (fail static: fence
//! nothing, promote nothing) only when **every** configured controller
//! answers and none of them reaches etcd: then nobody can be leader, so
//! nobody can promote. Anything less is an isolation. A mere majority is
//! not enough: with A and B cut off from etcd and from C, while C still
//! reaches etcd, A and B reach each other (a majority) yet C leads and
//! promotes once A's primary lease expires. This is the rule Patroni's
//! failsafe mode adopted for the same reason.
//!
//! The controller's `fence::isolation::FenceDeadline` says by when a
//! primary-lease holder that cannot renew must start, and finish, fencing.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

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
    /// etcd is down for everybody: every configured controller answers and
    /// none of them reaches etcd. An etcd outage, not an isolation. Fail
    /// static: fence nothing, promote nothing (no leader can exist).
    EtcdOutage,
    /// etcd does not answer and some controller either does not answer or
    /// still reaches etcd: somebody may lead and promote without us, so the
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

/// Decides the controller's [`Connectivity`].
///
/// etcd reachable: connected. etcd unreachable: an etcd outage only when
/// every configured controller (this one included) answers and none of
/// those answering reaches etcd; otherwise isolated. A peer this
/// controller reaches that still reaches etcd makes it isolated at once
/// (cut off from etcd alone: its primary lease will lapse while the rest
/// carry on); a peer that does not answer may reach etcd for all we know.
pub fn assess(reach: &Reach<'_>) -> Assessment {
    let mut all: BTreeSet<&str> = reach.controllers.iter().map(String::as_str).collect();
    all.insert(reach.self_id);
    let total = all.len();
    let answering: BTreeSet<&str> = reach
        .peers_reachable
        .iter()
        .map(String::as_str)
        .filter(|p| *p != reach.self_id && all.contains(p))
        .collect();
    let reachable = answering.len() + 1;
    let silent: Vec<&str> = all
        .iter()
        .copied()
        .filter(|c| *c != reach.self_id && !answering.contains(c))
        .collect();
    let with_etcd: Vec<&str> = reach
        .peers_with_etcd
        .iter()
        .map(String::as_str)
        .filter(|p| answering.contains(p))
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
        EtcdReach::Unreachable { for_ } if silent.is_empty() => (
            Connectivity::EtcdOutage,
            Some(for_),
            format!(
                "etcd unreachable for {}ms and all {total} controllers answer, none \
                 reaching etcd: etcd outage, fail static",
                for_.as_millis()
            ),
        ),
        EtcdReach::Unreachable { for_ } => (
            Connectivity::Isolated,
            Some(for_),
            format!(
                "etcd unreachable for {}ms and only {reachable} of {total} controllers \
                 answer ({} silent, and may reach etcd and promote): failing static needs \
                 every controller: isolated",
                for_.as_millis(),
                silent.join(", ")
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

#[cfg(test)]
#[path = "isolation_tests.rs"]
mod tests;
