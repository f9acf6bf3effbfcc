//! The region state machine: Healthy → Suspect → Down → Recovering → Healthy,
//! with failback gated by steady health, ramp steps, or an operator.
//!
//! Definitions (ARCHITECTURE §4 made precise):
//! - *Down evidence*: at least one of the region's service endpoints is Down
//!   and every service endpoint with a non-Unknown verdict is Down.
//! - *Trouble*: any target of the region (service endpoint or database member)
//!   is Down, or a majority of them are Unknown, or a service endpoint is
//!   *failing*: a quorum of fresh vantages' latest reports on it failed,
//!   though not yet `fall` in a row (it is trending down).
//! - *Failing* (the region): it is Down, or one of its service endpoints is
//!   Down or failing. `RegionState::failing_since` keeps since when, for the
//!   evacuation settle window; database members do not count.
//! - *All up*: every service endpoint of the region is Up. Database
//!   members do not gate recovery: a demoted old primary must not keep its
//!   region's traffic away.
//!
//! Healthy/Suspect go straight to Down on Down evidence (the verdicts are
//! already debounced and quorum-backed; waiting another decision would only
//! add to the RTO); otherwise Suspect on trouble, else Healthy. Down becomes
//! Recovering when all is up. Recovering goes back to Down on Down evidence,
//! restarts its wait (and drops its ramp) when any service endpoint is Down,
//! holds still while some are Unknown, and otherwise advances: first ramp step
//! after `failback_after` (Auto) or once approved (Manual), then one step per
//! `ramp_step`; reaching 100 % is Healthy. One transition per call, so a
//! decision never skips a step it has not shown.

use chrono::{DateTime, Utc};

use super::control::{RegionState, RegionStatus};
use super::policy::{FailbackMode, Policy, delta};
use super::topology::TargetId;
use super::verdict::{TargetVerdict, Verdict};

/// How many offending targets a region reason names before "and N more".
const NAMED_TARGETS: usize = 5;

/// The verdicts of one region's targets, counted, with the non-Up ones kept
/// for the reasons.
#[derive(Debug, Default)]
pub(crate) struct RegionEvidence<'a> {
    /// The verdict quorum, which also makes an endpoint *failing*.
    pub quorum: usize,
    pub svc_total: usize,
    pub svc_up: usize,
    pub svc_down: usize,
    /// Service endpoints not Down whose latest reports failed at a quorum
    /// of fresh vantages.
    pub svc_failing: usize,
    pub db_total: usize,
    pub db_down: usize,
    pub unknown: usize,
    /// Service endpoints (true) or database members (false) that are not Up.
    pub problems: Vec<(&'a TargetId, &'a TargetVerdict, bool)>,
}

impl<'a> RegionEvidence<'a> {
    /// No targets yet, judged with `quorum`.
    pub(crate) fn new(quorum: usize) -> Self {
        Self {
            quorum,
            ..Self::default()
        }
    }

    /// Counts one target's verdict.
    pub(crate) fn add(&mut self, target: &'a TargetId, v: &'a TargetVerdict, service: bool) {
        if service {
            self.svc_total += 1;
        } else {
            self.db_total += 1;
        }
        match v.verdict {
            Verdict::Up if service => self.svc_up += 1,
            Verdict::Up => {}
            Verdict::Down if service => self.svc_down += 1,
            Verdict::Down => self.db_down += 1,
            Verdict::Unknown => self.unknown += 1,
        }
        let failing = service && v.verdict != Verdict::Down && v.failing as usize >= self.quorum;
        if failing {
            self.svc_failing += 1;
        }
        if v.verdict != Verdict::Up || failing {
            self.problems.push((target, v, service));
        }
    }

    /// Whether the region's service endpoints show failure by quorum: some
    /// Down, or failing (trending down).
    pub(crate) fn service_failing(&self) -> bool {
        self.svc_down + self.svc_failing > 0
    }

    fn down_evidence(&self) -> bool {
        self.svc_down > 0 && self.svc_up == 0
    }

    fn trouble(&self) -> bool {
        let total = self.svc_total + self.db_total;
        self.svc_down + self.db_down + self.svc_failing > 0
            || (total > 0 && self.unknown * 2 > total)
    }

    /// Every service endpoint Up — vacuously true for a region left with no
    /// endpoints, so a stale Down state cannot outlive its last endpoint.
    fn all_up(&self) -> bool {
        self.svc_up == self.svc_total
    }

    /// The verdict reasons of the first few failing (trending down, not yet
    /// Down) service endpoints.
    fn named_failing(&self) -> Vec<String> {
        let quorum = self.quorum;
        let mut hits = self.problems.iter().filter(|(_, v, svc)| {
            *svc && v.verdict != Verdict::Down && v.failing as usize >= quorum
        });
        let mut out: Vec<String> = hits
            .by_ref()
            .take(NAMED_TARGETS)
            .map(|(t, v, _)| {
                format!(
                    "{t} failing: latest report failed at {} of {} fresh vantages (quorum {quorum}), not yet Down; {}",
                    v.failing,
                    v.fresh,
                    v.reasons.first().map_or("", String::as_str)
                )
            })
            .collect();
        let more = hits.count();
        if more > 0 {
            out.push(format!("and {more} more failing service endpoint(s)"));
        }
        out
    }

    /// The verdict reasons of the first few targets with `verdict`.
    fn named(&self, verdict: Verdict, services_only: bool) -> Vec<String> {
        let mut hits = self
            .problems
            .iter()
            .filter(|(_, v, svc)| v.verdict == verdict && (*svc || !services_only));
        let mut out: Vec<String> = hits
            .by_ref()
            .take(NAMED_TARGETS)
            .map(|(t, v, _)| v.reasons.first().cloned().unwrap_or_else(|| t.to_string()))
            .collect();
        let more = hits.count();
        if more > 0 {
            out.push(format!("and {more} more {verdict:?} target(s)"));
        }
        out
    }
}

/// The region's next state from its previous one and the current evidence,
/// with `failing_since` carried on while it keeps failing.
pub(crate) fn next_state(
    region: &str,
    prev: &RegionState,
    ev: &RegionEvidence<'_>,
    policy: &Policy,
    approval: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> RegionState {
    let mut next = next_status(region, prev, ev, policy, approval, now);
    next.failing_since = if next.status == RegionStatus::Down || ev.service_failing() {
        // A Down state persisted before `failing_since` existed has been
        // failing at least since it went Down.
        let before = prev.failing_since.or(match prev.status {
            RegionStatus::Down => Some(prev.since),
            _ => None,
        });
        Some(before.map_or(now, |t| t.min(now)))
    } else {
        None
    };
    next
}

fn next_status(
    region: &str,
    prev: &RegionState,
    ev: &RegionEvidence<'_>,
    policy: &Policy,
    approval: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> RegionState {
    match prev.status {
        RegionStatus::Healthy | RegionStatus::Suspect => {
            if ev.down_evidence() {
                went_down(region, prev, ev, now)
            } else if ev.trouble() {
                let mut reasons = vec![format!(
                    "region {region} Suspect: {} target(s) Down, {} service endpoint(s) failing \
                     (trending down), {} of {} Unknown",
                    ev.svc_down + ev.db_down,
                    ev.svc_failing,
                    ev.unknown,
                    ev.svc_total + ev.db_total
                )];
                reasons.extend(ev.named(Verdict::Down, false));
                reasons.extend(ev.named_failing());
                reasons.extend(ev.named(Verdict::Unknown, false));
                keep_or_enter(prev, RegionStatus::Suspect, None, reasons, now)
            } else {
                let reasons = vec![healthy_reason(region, ev)];
                keep_or_enter(prev, RegionStatus::Healthy, None, reasons, now)
            }
        }
        RegionStatus::Down => {
            if ev.all_up() {
                let reasons = vec![format!(
                    "region {region} Recovering: all {} service endpoint(s) Up again",
                    ev.svc_total
                )];
                enter(RegionStatus::Recovering, None, reasons, now)
            } else {
                went_down(region, prev, ev, now)
            }
        }
        RegionStatus::Recovering => recovering(region, prev, ev, policy, approval, now),
    }
}

fn healthy_reason(region: &str, ev: &RegionEvidence<'_>) -> String {
    if ev.unknown == 0 {
        format!("region {region} Healthy: no target Down")
    } else {
        format!(
            "region {region} Healthy: no target Down ({} of {} Unknown, a minority)",
            ev.unknown,
            ev.svc_total + ev.db_total
        )
    }
}

/// Down (entered now, or kept with its `since`), with the Down targets named.
fn went_down(
    region: &str,
    prev: &RegionState,
    ev: &RegionEvidence<'_>,
    now: DateTime<Utc>,
) -> RegionState {
    let mut reasons = if ev.down_evidence() {
        vec![format!(
            "region {region} Down: every service endpoint with a verdict is Down \
             ({} Down, {} Unknown, {} Up of {})",
            ev.svc_down,
            ev.svc_total - ev.svc_down - ev.svc_up,
            ev.svc_up,
            ev.svc_total
        )]
    } else {
        vec![format!(
            "region {region} still Down: {} of {} service endpoint(s) Up; all must be Up to recover",
            ev.svc_up, ev.svc_total
        )]
    };
    reasons.extend(ev.named(Verdict::Down, true));
    reasons.extend(ev.named(Verdict::Unknown, true));
    keep_or_enter(prev, RegionStatus::Down, None, reasons, now)
}

fn recovering(
    region: &str,
    prev: &RegionState,
    ev: &RegionEvidence<'_>,
    policy: &Policy,
    approval: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> RegionState {
    if ev.down_evidence() {
        return went_down(region, prev, ev, now);
    }
    if ev.svc_down > 0 {
        let mut reasons = vec![format!(
            "region {region} Recovering: health not steady, failback wait restarts"
        )];
        reasons.extend(ev.named(Verdict::Down, true));
        return enter(RegionStatus::Recovering, None, reasons, now);
    }
    let hold = |reasons: Vec<String>| RegionState {
        status: RegionStatus::Recovering,
        since: prev.since,
        reasons,
        ramp_step: prev.ramp_step,
        failing_since: None,
    };
    if !ev.all_up() {
        let mut reasons = vec![format!(
            "region {region} Recovering: holding, {} service endpoint(s) Unknown",
            ev.svc_total - ev.svc_up
        )];
        reasons.extend(ev.named(Verdict::Unknown, true));
        return hold(reasons);
    }
    match prev.ramp_step {
        None => {
            let since = prev.since;
            match policy.failback {
                FailbackMode::Auto => {
                    let at = since
                        .checked_add_signed(delta(policy.failback_after))
                        .unwrap_or(DateTime::<Utc>::MAX_UTC);
                    if now >= at {
                        let why = format!(
                            "region {region}: steady health since {since}, failback_after elapsed"
                        );
                        ramp_to(region, 0, why, policy, now)
                    } else {
                        hold(vec![format!(
                            "region {region} Recovering: all service endpoints Up since {since}; \
                             failback ramp starts at {at}"
                        )])
                    }
                }
                FailbackMode::Manual => match approval {
                    Some(t) if t >= since => {
                        let why = format!("region {region}: failback approved by operator at {t}");
                        ramp_to(region, 0, why, policy, now)
                    }
                    Some(t) => hold(vec![format!(
                        "region {region} Recovering: waiting for manual failback \
                         (approval at {t} predates the recovery at {since}; approve again)"
                    )]),
                    None => hold(vec![format!(
                        "region {region} Recovering: waiting for manual failback; \
                         all service endpoints Up since {since}"
                    )]),
                },
            }
        }
        Some(step) => {
            let at = prev
                .since
                .checked_add_signed(delta(policy.ramp_step))
                .unwrap_or(DateTime::<Utc>::MAX_UTC);
            if now >= at {
                let why = format!("region {region}: ramp step {step} held for ramp_step");
                ramp_to(region, step + 1, why, policy, now)
            } else {
                let pct = policy.ramp_percent(step).unwrap_or(100);
                hold(vec![format!(
                    "region {region} Recovering: ramp step {step} at {pct}% of base weight; \
                     next step at {at}"
                )])
            }
        }
    }
}

/// Serve ramp step `step`, or Healthy once the ramp reaches 100 %.
fn ramp_to(
    region: &str,
    step: usize,
    why: String,
    policy: &Policy,
    now: DateTime<Utc>,
) -> RegionState {
    match policy.ramp_percent(step) {
        Some(pct) if pct < 100 => {
            let reasons = vec![
                why,
                format!("region {region} Recovering: ramp step {step}: {pct}% of base weight"),
            ];
            enter(RegionStatus::Recovering, Some(step), reasons, now)
        }
        _ => {
            let reasons = vec![
                why,
                format!("region {region} Healthy: failback complete, 100% of base weight"),
            ];
            enter(RegionStatus::Healthy, None, reasons, now)
        }
    }
}

fn enter(
    status: RegionStatus,
    ramp_step: Option<usize>,
    reasons: Vec<String>,
    now: DateTime<Utc>,
) -> RegionState {
    RegionState {
        status,
        since: now,
        reasons,
        ramp_step,
        failing_since: None,
    }
}

/// Keeps `since` when the status does not change, so it means "since when".
fn keep_or_enter(
    prev: &RegionState,
    status: RegionStatus,
    ramp_step: Option<usize>,
    reasons: Vec<String>,
    now: DateTime<Utc>,
) -> RegionState {
    let since = if prev.status == status {
        prev.since
    } else {
        now
    };
    RegionState {
        status,
        since,
        reasons,
        ramp_step,
        failing_since: None,
    }
}
