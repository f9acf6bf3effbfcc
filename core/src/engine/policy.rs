//! The thresholds and guard rails the engine decides by.
//!
//! The engine owns this type instead of borrowing `config::Policy` so that it
//! stays a pure function of its own inputs; the controller converts the
//! validated config into it.

use std::time::Duration;

use chrono::TimeDelta;
use serde::{Deserialize, Serialize};

/// Every threshold `decide` needs, with the defaults of ARCHITECTURE §4.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Consecutive failed reports before a vantage calls a target Down, so one
    /// lost packet is not an outage (0 is treated as 1).
    pub fall: u32,
    /// Consecutive good reports before a vantage calls a target Up again
    /// (0 is treated as 1).
    pub rise: u32,
    /// Fresh vantages that must agree before a target is Down (or Up); fewer
    /// fresh vantages than this make the target Unknown (0 is treated as 1).
    pub quorum: usize,
    /// A vantage whose last report is older than this does not vote.
    pub stale_after: Duration,
    /// Whether traffic returns to a recovered region by itself.
    pub failback: FailbackMode,
    /// Steady health a recovered region needs before its ramp starts.
    pub failback_after: Duration,
    /// Percent of a region's base weight at each failback step, ending at 100.
    pub ramp: Vec<u8>,
    /// Time between two ramp steps.
    pub ramp_step: Duration,
    /// Whether a dead primary is failed over without an operator.
    pub db_failover: DbFailoverMode,
    /// Minimum time between two automatic failovers of one database.
    pub anti_flap: Duration,
    /// Most regions one record may have evacuated for failures at once.
    pub max_evacuated: usize,
    /// How long evacuations wait once more than one region is failing at
    /// once (Down, or its service endpoints failing by quorum). Regions
    /// trending down together point to a shared cause (a bad deploy, a
    /// shared dependency, trouble on the probes' side) rather than
    /// independent outages, and moving the first region's users onto the
    /// others would only overload them; within the window the others reach
    /// Down too and every region down keeps the weights as they were (fail
    /// open). A region failing alone is never delayed. Zero: no window.
    #[serde(default = "default_settle_window")]
    pub settle_window: Duration,
}

/// The default of [`Policy::settle_window`]: long enough for regions that
/// fail together to be seen Down with the usual checks ((fall + 1) ×
/// interval: fall 3 at intervals up to 7.5 s; `config check` enforces it),
/// short enough to be an acceptable extra RTO when two regions really fail
/// independently within seconds of each other.
pub const DEFAULT_SETTLE_WINDOW: Duration = Duration::from_secs(30);

fn default_settle_window() -> Duration {
    DEFAULT_SETTLE_WINDOW
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            fall: 3,
            rise: 2,
            quorum: 2,
            stale_after: Duration::from_secs(3),
            failback: FailbackMode::Manual,
            failback_after: Duration::from_secs(600),
            ramp: vec![25, 50, 100],
            ramp_step: Duration::from_secs(60),
            db_failover: DbFailoverMode::Manual,
            anti_flap: Duration::from_secs(1800),
            max_evacuated: 1,
            settle_window: DEFAULT_SETTLE_WINDOW,
        }
    }
}

/// How traffic comes back to a region that has recovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailbackMode {
    /// After `failback_after` of steady health, ramp by itself.
    Auto,
    /// Hold the region at weight 0 until an operator approves the failback.
    Manual,
}

/// Who fails a dead primary over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DbFailoverMode {
    /// The plan carries a `Failover` action.
    Auto,
    /// The plan raises a "manual failover required" alarm instead.
    Manual,
}

impl Policy {
    /// `fall`, never below 1, so a single report can always decide.
    pub(crate) fn fall_count(&self) -> u32 {
        self.fall.max(1)
    }

    /// `rise`, never below 1.
    pub(crate) fn rise_count(&self) -> u32 {
        self.rise.max(1)
    }

    /// `quorum`, never below 1: a quorum of nobody would make every target
    /// Down at once.
    pub(crate) fn quorum_count(&self) -> usize {
        self.quorum.max(1)
    }

    /// The ramp percent at `step`, or `None` once past the last step.
    pub(crate) fn ramp_percent(&self, step: usize) -> Option<u8> {
        self.ramp.get(step).map(|p| (*p).min(100))
    }
}

/// A std duration as a chrono delta, saturating instead of failing so an
/// absurd config value means "never" rather than a panic.
pub(crate) fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}
