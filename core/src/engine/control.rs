//! What operators and earlier decisions settled: the engine's memory, kept by
//! the store in etcd and handed back to every `decide`.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Region name → traffic weight for one record: what the plan asks the
/// traffic backend to serve.
pub type DesiredWeights = BTreeMap<String, u32>;

/// The persisted inputs of `decide` that are not observations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlState {
    /// Automation paused by an operator: plans are shown, not executed.
    pub paused: bool,
    /// Regions an operator drained: weight 0 whatever their health.
    pub drained: BTreeSet<String>,
    /// Record → the weights last planned (and recorded by the store); the plan
    /// only contains changes against these.
    pub weights: BTreeMap<String, DesiredWeights>,
    /// Region → its state from the previous decision (absent: Healthy).
    pub regions: BTreeMap<String, RegionState>,
    /// Database → when its last automatic failover was planned and executed;
    /// drives the anti-flap rule.
    pub last_failover: BTreeMap<String, DateTime<Utc>>,
    /// Region → when an operator approved its manual failback. An approval
    /// counts only if given after the region's last failure (at or after its
    /// Recovering `since`), so an old approval never lets a later outage fail
    /// back unattended; the store may drop it once the region is Healthy.
    pub failback_approvals: BTreeMap<String, DateTime<Utc>>,
}

/// Where a region stands in Healthy → Suspect → Down → Recovering → Healthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RegionStatus {
    /// Serving at its base weight.
    Healthy,
    /// Something looks wrong, not enough to act on the region as a whole.
    Suspect,
    /// Its service endpoints are Down by quorum: evacuated.
    Down,
    /// Up again; waiting for steady health, ramping, or an operator.
    Recovering,
}

/// A region's status with when it began and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionState {
    /// The status.
    pub status: RegionStatus,
    /// When the status (for Recovering: the current wait or ramp step) began.
    pub since: DateTime<Utc>,
    /// Human-readable evidence naming targets and vantages.
    pub reasons: Vec<String>,
    /// While Recovering: the index into `Policy::ramp` being served; `None`
    /// while the region is still held at weight 0.
    pub ramp_step: Option<usize>,
    /// Since when the region has been failing without a break: Down, or
    /// one of its service endpoints Down or failing at a quorum of fresh
    /// vantages; `None` while it is not. Two or more regions failing at
    /// once open the evacuation settle window (see `Policy::settle_window`),
    /// which is counted from the second one's start. Database members do
    /// not count: a dead primary takes its replicas' replication down in
    /// every region, and that must not delay evacuating the region that lost it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<DateTime<Utc>>,
}

impl RegionState {
    /// A region with no history: Healthy since `now`.
    pub fn healthy(now: DateTime<Utc>) -> Self {
        Self {
            status: RegionStatus::Healthy,
            since: now,
            reasons: Vec::new(),
            ramp_step: None,
            failing_since: None,
        }
    }
}
