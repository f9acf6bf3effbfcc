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
//!
//! Each region is held at most `settle_window` past its own *anchor*: when
//! it went Down (for a region not Down, when it started failing). So a
//! dead region is evacuated at most `settle_window` after it went Down even
//! if another region keeps flapping between failing and not (which would
//! restart the window again and again).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeDelta, Utc};

use super::control::{RegionState, RegionStatus};
use super::plan::{Alarm, AlarmKind};
use super::policy::{Policy, delta};

/// How many records the settle alarm names before "and N more".
const NAMED_RECORDS: usize = 5;

/// An open settle window: while it lasts, no region serving traffic is
/// evacuated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Settle {
    /// When the window closes: the second failing region's start plus
    /// `settle_window`.
    pub until: DateTime<Utc>,
    /// `settle_window`: no region is held longer than this past its anchor.
    pub window: TimeDelta,
    /// The failing regions (not drained) and since when, by start time.
    pub failing: Vec<(String, DateTime<Utc>)>,
}

impl Settle {
    /// Until when a region in `state` that would be evacuated keeps its
    /// weight, or `None` if its hold is over: the window's end, or its own
    /// anchor (Down since, else failing since, else now) plus the window,
    /// whichever comes first.
    pub(crate) fn hold_until(
        &self,
        state: Option<&RegionState>,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let anchor = match state {
            Some(s) if s.status == RegionStatus::Down => s.since,
            Some(s) => s.failing_since.unwrap_or(now),
            None => now,
        };
        let end = anchor
            .checked_add_signed(self.window)
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
            .min(self.until);
        (now < end).then_some(end)
    }

    /// Why a region is held, for its weight's reason and the alarm.
    pub(crate) fn why(&self) -> String {
        let names: Vec<String> = self
            .failing
            .iter()
            .map(|(r, t)| format!("{r} since {t}"))
            .collect();
        format!(
            "{} regions failing at once ({}): evacuation waits for the settle window, so a \
             global outage (bad deploy, shared dependency, probes' side) does not move users \
             onto regions that are failing too",
            self.failing.len(),
            names.join(", "),
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
    let window = delta(policy.settle_window);
    let until = failing[1]
        .1
        .checked_add_signed(window)
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    (now < until).then_some(Settle {
        until,
        window,
        failing,
    })
}

/// The one alarm of a decision in which the window held evacuations back:
/// which regions, until when, and which records.
pub(crate) fn settle_alarm(settle: &Settle, held: &[&str]) -> Alarm {
    let mut reasons = vec![
        settle.why(),
        format!(
            "the window closes at {}; no region is held past settle_window after it went Down",
            settle.until
        ),
    ];
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
            "{} regions failing at once: evacuation held until {} at the latest (settle window)",
            settle.failing.len(),
            settle.until
        ),
        reasons,
    }
}
