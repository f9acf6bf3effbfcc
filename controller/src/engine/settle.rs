//! The evacuation settle window: when more than one region is failing at
//! once, evacuations wait a short while instead of moving the first
//! region's users onto regions that are failing too.
//!
//! Regions trending down together point to a shared cause — a bad deploy, a
//! shared dependency, trouble on the probes' side — more than to independent
//! outages. Within the window the other regions reach Down as well, and a
//! record whose every region is failing keeps its weights (fail open, see
//! `traffic.rs`). A region failing alone is never held: the window opens
//! only once a second region is failing.
//!
//! A region is *failing* when it is Down or one of its service endpoints is
//! Down or failing at a quorum of fresh vantages (`RegionState::
//! failing_since`). Drained regions do not count: an operator took them out
//! already, and maintenance there must not slow the evacuation of a region
//! that fails for real. The window opens when the second region started
//! failing (the second-earliest `failing_since`: from then on at least two
//! regions have failed without a break) and lasts `Policy::settle_window`.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use super::control::RegionState;
use super::plan::{Alarm, AlarmKind};
use super::policy::{Policy, delta};

/// How many records the settle alarm names before "and N more".
const NAMED_RECORDS: usize = 5;

/// An open settle window: while it lasts, no region serving traffic is
/// evacuated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Settle {
    /// When evacuations may go ahead again.
    pub until: DateTime<Utc>,
    /// The failing regions (not drained) and since when, by start time.
    pub failing: Vec<(String, DateTime<Utc>)>,
}

impl Settle {
    /// The line every held region's reason and the alarm carry.
    pub(crate) fn why(&self) -> String {
        let names: Vec<String> = self
            .failing
            .iter()
            .map(|(r, t)| format!("{r} since {t}"))
            .collect();
        format!(
            "{} regions failing at once ({}): evacuation waits for the settle window until {}, \
             so a global outage (bad deploy, shared dependency, probes' side) does not move users \
             onto regions that are failing too",
            self.failing.len(),
            names.join(", "),
            self.until
        )
    }
}

/// The open window at `now`, if any: two or more undrained regions failing
/// and less than `settle_window` since the second of them started.
pub(crate) fn settle_window(
    regions: &BTreeMap<String, RegionState>,
    drained: &BTreeSet<String>,
    policy: &Policy,
    now: DateTime<Utc>,
) -> Option<Settle> {
    let mut failing: Vec<(String, DateTime<Utc>)> = regions
        .iter()
        .filter(|(name, _)| !drained.contains(*name))
        .filter_map(|(name, s)| s.failing_since.map(|t| (name.clone(), t)))
        .collect();
    if failing.len() < 2 {
        return None;
    }
    failing.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    let until = failing[1]
        .1
        .checked_add_signed(delta(policy.settle_window))
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    (now < until).then_some(Settle { until, failing })
}

/// The one alarm of a decision in which the window held evacuations back:
/// which regions, until when, and which records.
pub(crate) fn settle_alarm(settle: &Settle, held: &[&str]) -> Alarm {
    let mut reasons = vec![settle.why()];
    let shown: Vec<&str> = held.iter().take(NAMED_RECORDS).copied().collect();
    let more = held.len().saturating_sub(NAMED_RECORDS);
    reasons.push(format!(
        "held at their current weights in {} record(s): {}{}",
        held.len(),
        shown.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    ));
    reasons.push(
        "if they are all Down when it ends, every record keeps its weights (fail open); \
         otherwise the failed regions are evacuated then, within max_evacuated"
            .to_owned(),
    );
    Alarm {
        kind: AlarmKind::SettleWindow,
        subject: settle
            .failing
            .iter()
            .map(|(r, _)| r.as_str())
            .collect::<Vec<_>>()
            .join(","),
        message: format!(
            "{} regions failing at once: evacuation held until {} (settle window)",
            settle.failing.len(),
            settle.until
        ),
        reasons,
    }
}
