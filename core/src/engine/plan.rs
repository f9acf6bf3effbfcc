//! What `decide` asks the executor to do, and what it asks people to look at.

use serde::{Deserialize, Serialize};

use super::control::DesiredWeights;

/// The changes against the current desired state, in execution order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Automation is paused: the plan is shown, the executor does not run it.
    pub paused: bool,
    /// Weight changes (by record name), then failovers (by database name).
    pub actions: Vec<Action>,
}

impl Plan {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }
}

/// One change the executor carries out idempotently.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Serve `record` with these weights, in one atomic change.
    SetWeights {
        /// The DNS record.
        record: String,
        /// Region → weight; their sum is the sum of the record's base weights.
        weights: DesiredWeights,
        /// Why each region gets what it gets.
        reasons: Vec<String>,
    },
    /// Promote a replica of `database` in place of `from_member`; the
    /// replication crate chooses the candidate when it executes.
    Failover {
        /// The database.
        database: String,
        /// The primary being replaced.
        from_member: String,
        /// The last automatic failover this one follows (`None`: never), so
        /// the idempotency key of a later incident differs.
        after: Option<chrono::DateTime<chrono::Utc>>,
        /// Which targets, vantages and rule call the primary dead.
        reasons: Vec<String>,
    },
}

impl Action {
    /// A key that is the same for the same change on every leader and every
    /// decide, so the journal can tell a repeated intent from a new one:
    /// weights are keyed by their content, a failover by the primary it
    /// replaces and the failover it follows.
    pub fn key(&self) -> String {
        match self {
            Action::SetWeights {
                record, weights, ..
            } => {
                let mut k = format!("weights/{record}/");
                for (i, (region, w)) in weights.iter().enumerate() {
                    if i > 0 {
                        k.push(',');
                    }
                    k.push_str(region);
                    k.push('=');
                    k.push_str(&w.to_string());
                }
                k
            }
            Action::Failover {
                database,
                from_member,
                after,
                ..
            } => match after {
                Some(t) => format!("failover/{database}/{from_member}/after/{}", t.to_rfc3339()),
                None => format!("failover/{database}/{from_member}"),
            },
        }
    }

    /// Why the action is planned.
    pub fn reasons(&self) -> &[String] {
        match self {
            Action::SetWeights { reasons, .. } | Action::Failover { reasons, .. } => reasons,
        }
    }

    pub(crate) fn reasons_mut(&mut self) -> &mut Vec<String> {
        match self {
            Action::SetWeights { reasons, .. } | Action::Failover { reasons, .. } => reasons,
        }
    }
}

/// Something a person must look at because a guard rail held the engine back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alarm {
    /// Which guard rail fired.
    pub kind: AlarmKind,
    /// The record, region or database it is about.
    pub subject: String,
    /// One line for a pager.
    pub message: String,
    /// The evidence: targets, vantages, rules.
    pub reasons: Vec<String>,
}

/// The guard rails that raise alarms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmKind {
    /// Every region of a record would be at 0, or every region not drained
    /// is failing (a global outage): current weights kept.
    FailOpen,
    /// More than one region is failing at once: evacuations wait for the
    /// settle window.
    SettleWindow,
    /// More regions failed than `max_evacuated`: the extra keep their weights.
    MaxEvacuated,
    /// A database failover is needed but an operator must run it.
    ManualFailover,
    /// A database failover is needed but the last one was within `anti_flap`.
    AntiFlap,
    /// The topology contradicts itself (e.g. a primary that is not a member).
    Topology,
    /// A database failover has waited at the promotion gate for longer
    /// than `policy.gate_alarm_after`.
    GateWait,
}
