//! `[policy]`: the decision engine's thresholds and guard rails.

use std::time::Duration;

use serde::Deserialize;

use crate::config::duration;

/// Every field has a default, so `[policy]` may be omitted entirely.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// Consecutive failures before a vantage calls a target down (default 3).
    pub fall: u32,
    /// Consecutive successes before it calls it up again (default 2).
    pub rise: u32,
    /// Fresh vantages that must agree a target is down; absent: a majority
    /// of regions, at least 2 (see [`Policy::quorum_for`]).
    pub quorum: Option<u32>,
    /// A vantage silent for this long is stale and does not vote. Absent:
    /// three times the longest check interval (see
    /// [`Config::stale_after`](super::Config::stale_after)); it must exceed
    /// every check's interval plus timeout, the longest gap between two
    /// reports of one vantage on one target.
    #[serde(deserialize_with = "duration::deserialize_option")]
    pub stale_after: Option<Duration>,
    /// Whether traffic returns to a recovered region by itself (default manual).
    pub failback: Mode,
    /// Steady health required before failback starts (default 10m).
    #[serde(deserialize_with = "duration::deserialize")]
    pub failback_after: Duration,
    /// Percent of base weight restored at each failback step (default 25, 50, 100).
    pub ramp: Vec<u8>,
    /// Time each ramp step is held before the next (default 1m).
    #[serde(deserialize_with = "duration::deserialize")]
    pub ramp_step: Duration,
    /// Whether database failover runs by itself (default manual).
    pub db_failover: Mode,
    /// Minimum time between two failovers of one database (default 30m).
    #[serde(deserialize_with = "duration::deserialize")]
    pub anti_flap: Duration,
    /// Most regions evacuated at once (default 1); below the region count.
    pub max_evacuated: u32,
    /// How long evacuations wait while more than one region is failing at
    /// once, so a global outage (a bad deploy, a shared dependency, the
    /// probes' side) does not pile the first region's users onto the others
    /// (default 30s; at least (`fall` + 1) × the longest check interval). A region
    /// failing alone is never delayed.
    #[serde(deserialize_with = "duration::deserialize")]
    pub settle_window: Duration,
    /// How often the leader reads every record back from the DNS backend
    /// and corrects one whose live weights differ from the desired ones (an
    /// edit in the console, a lost change); a correction that is refused
    /// raises an alarm (default 1m; each check costs one read per record,
    /// counted against Route 53's request rate).
    #[serde(deserialize_with = "duration::deserialize")]
    pub drift_check: Duration,
    /// How long a database failover may wait at the promotion gate before
    /// an alarm says so, with the gate's evidence and the `--force`
    /// command (default 1m: a few lease TTLs; at least 1s).
    #[serde(deserialize_with = "duration::deserialize")]
    pub gate_alarm_after: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            fall: 3,
            rise: 2,
            quorum: None,
            stale_after: None,
            failback: Mode::Manual,
            failback_after: Duration::from_secs(600),
            ramp: vec![25, 50, 100],
            ramp_step: Duration::from_secs(60),
            db_failover: Mode::Manual,
            anti_flap: Duration::from_secs(1800),
            max_evacuated: 1,
            settle_window: crate::engine::DEFAULT_SETTLE_WINDOW,
            drift_check: Duration::from_secs(60),
            gate_alarm_after: Duration::from_secs(60),
        }
    }
}

impl Policy {
    /// The quorum for `regions` vantages: the configured one, or a majority
    /// that is at least 2 whenever there are 2 or more regions, so a single
    /// cut-off probe can never evacuate a region on its own.
    pub fn quorum_for(&self, regions: usize) -> usize {
        match self.quorum {
            Some(q) => q as usize,
            None => Self::quorum_for_default(regions),
        }
    }

    /// The default quorum for `regions` vantages: a majority, at least 2
    /// when there are 2 or more.
    pub fn quorum_for_default(regions: usize) -> usize {
        (regions / 2 + 1).max(regions.min(2))
    }
}

/// Whether an action runs by itself or waits for an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The leader acts on its own.
    Auto,
    /// The plan is shown; an operator runs it.
    Manual,
}

impl Mode {
    /// The mode as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Auto => "auto",
            Mode::Manual => "manual",
        }
    }
}
