//! Traffic weights for one record, with the guard rails: evacuate failed
//! regions and endpoints, honour drains, ramp failbacks, never evacuate more
//! than `max_evacuated` regions, and never zero a whole record (fail open).
//!
//! Choices where ARCHITECTURE §4 is silent:
//! - A region at 0 for a failure reason — Down, Recovering before its ramp
//!   starts, or its endpoint for this record Down by quorum — is *evacuated*
//!   and counts toward `max_evacuated`. Operator drains do not count (they are
//!   a decision, not a detection) but do count toward "never all zero".
//! - Over the limit, the evacuation slots go first to real failures (Down
//!   region or endpoint) before Recovering regions, then to regions already
//!   at 0 in the current weights (no flip-flop), then to the longest failed
//!   (earliest `since`), then by priority (lower first), then by name. A
//!   failure left without a slot keeps its current weight (its base weight if
//!   none is recorded); a Recovering region left without a slot whose
//!   endpoint is Up serves again at once (failback forced, said in the
//!   alarm): sending users to a dead region to keep a healthy one waiting
//!   for its failback would be the worse outage.
//! - An endpoint whose verdict is Unknown keeps its disposition: at 0 if its
//!   current weight is 0, serving otherwise — Unknown never causes an action.
//!   An endpoint evacuated in a region that stayed Healthy serves again as
//!   soon as it is Up by quorum (rise-debounced); failback timers and ramps
//!   are region-level.
//! - The freed share goes to regions at full health in proportion to their
//!   base weights (all base weights 0: to the preferred region). If no region
//!   is at full health, the non-zero weights (ramping, held) are scaled up to
//!   keep the record's total.
//! - Every region of the record that is not drained failing by quorum (its
//!   region Down or its endpoint Down) is a global outage, not N independent
//!   ones: the record keeps its current weights, whatever `max_evacuated`
//!   allows, with a fail-open alarm saying so (a region evacuated earlier
//!   stays at 0; nobody else is moved onto regions that fail too).
//! - While the settle window is open (two or more regions failing at once,
//!   see `settle.rs`), a region that would be evacuated but still serves
//!   keeps its current weight, at most `settle_window` past when it went
//!   Down; one already at 0 stays there. The window never opens for a
//!   region failing alone.

use std::cmp::Ordering;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::control::{ControlState, DesiredWeights, RegionState, RegionStatus};
use super::plan::{Action, Alarm, AlarmKind};
use super::policy::Policy;
use super::settle::Settle;
use super::sorted::SortedCursor;
use super::topology::{Record, TargetId};
use super::verdict::{TargetVerdict, Verdict};
use super::weights::apportion;

/// Why a region is evacuated from a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Evacuation {
    RegionDown,
    Recovering,
    EndpointDown,
    EndpointStillOut,
}

/// What a region gets in a record before any weight is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Disposition {
    Drained,
    Evacuated(Evacuation),
    /// Over `max_evacuated`: kept at this (current) weight.
    Held(Evacuation, u32),
    /// Would be evacuated, but the settle window is open: kept at this
    /// (current) weight until the time given.
    Settling(Evacuation, u32, DateTime<Utc>),
    /// Recovering, but over `max_evacuated` and Up: serving again.
    Restored,
    Ramp(usize, u8),
    Full,
}

impl Disposition {
    /// Serves at full health, so takes a share of what others give up.
    fn absorbs(self) -> bool {
        matches!(self, Disposition::Full | Disposition::Restored)
    }
}

/// `RecordInput::region_index` of an endpoint whose region the topology
/// does not list.
pub(crate) const NO_REGION: usize = usize::MAX;

/// What `decide` already knows about a region, indexed like
/// `Topology::regions`, so records do not look regions up by name.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RegionInfo<'a> {
    pub priority: u32,
    pub drained: bool,
    /// The region's new state.
    pub state: Option<&'a RegionState>,
}

/// One region's row while a record is planned.
#[derive(Debug, Clone)]
pub(crate) struct Row<'a> {
    region: &'a str,
    target: &'a TargetId,
    verdict: &'a TargetVerdict,
    state: Option<&'a RegionState>,
    base: u32,
    priority: u32,
    current: Option<u32>,
    disposition: Disposition,
    weight: u64,
}

/// Buffers reused across records so planning a thousand records allocates
/// only for records that change.
#[derive(Debug, Default)]
pub(crate) struct Scratch<'a> {
    rows: Vec<Row<'a>>,
    shares: Vec<u64>,
    slots: Vec<usize>,
    split: Vec<u64>,
    /// Records in which the settle window held a region at its weight.
    pub settled: Vec<&'a str>,
}

/// Everything one record's planning reads.
pub(crate) struct RecordInput<'a> {
    pub name: &'a str,
    pub spec: &'a Record,
    /// Each endpoint's target and verdict, in `spec.endpoints` order.
    pub verdicts: &'a [(TargetId, TargetVerdict)],
    /// Each endpoint's region as an index into `infos` (or `NO_REGION`).
    pub region_index: &'a [usize],
    pub infos: &'a [RegionInfo<'a>],
    /// The record's current weights (`ControlState::weights`), if any.
    pub current: Option<&'a DesiredWeights>,
    pub control: &'a ControlState,
    pub policy: &'a Policy,
    /// The open settle window, if any.
    pub settle: Option<&'a Settle>,
    pub now: DateTime<Utc>,
}

/// Plans one record: `Some(SetWeights)` when the desired weights differ from
/// the current ones, plus any alarms.
pub(crate) fn plan_record<'a>(
    input: &RecordInput<'a>,
    scratch: &mut Scratch<'a>,
    alarms: &mut Vec<Alarm>,
) -> Option<Action> {
    let current = input.current;
    // The endpoints and the current weights are both sorted by region:
    // walk them together instead of looking each region up.
    let mut cur_weights = SortedCursor::new(current);
    let rows = &mut scratch.rows;
    rows.clear();
    let endpoints = input
        .spec
        .endpoints
        .iter()
        .zip(input.verdicts.iter().zip(input.region_index));
    for ((region, ep), ((_, verdict), &ri)) in endpoints {
        let cur = cur_weights.seek(region).copied();
        let info = match input.infos.get(ri) {
            Some(info) => *info,
            None => RegionInfo {
                priority: u32::MAX,
                drained: input.control.drained.contains(region.as_str()),
                state: None,
            },
        };
        rows.push(Row {
            region,
            target: &ep.target,
            verdict,
            state: info.state,
            base: ep.weight,
            priority: info.priority,
            current: cur,
            disposition: dispose(input.policy, &info, verdict.verdict, cur),
            weight: 0,
        });
    }
    if rows.is_empty() {
        return None;
    }
    // Slot order for remainders and standby takeover: priority, then name.
    rows.sort_by(|a, b| a.priority.cmp(&b.priority).then(a.region.cmp(b.region)));
    let total: u64 = rows.iter().map(|r| u64::from(r.base)).sum();

    if every_region_failing(rows) {
        if total > 0 {
            alarms.push(fail_open(input, rows, true));
        }
        return None;
    }
    if let Some(settle) = input.settle {
        hold_for_settle(input.name, settle, input.now, scratch);
    }
    limit_evacuations(input, scratch, alarms);
    compute_weights(total, scratch);

    if scratch.rows.iter().all(|r| r.weight == 0) {
        if total > 0 {
            alarms.push(fail_open(input, &scratch.rows, false));
        }
        return None;
    }
    if same_as_current(&scratch.rows, current) {
        return None;
    }
    Some(set_weights(input, &scratch.rows, current.is_none()))
}

/// Whether some region is failing by quorum and every region not drained
/// is: a global outage for this record.
fn every_region_failing(rows: &[Row<'_>]) -> bool {
    let failing = |r: &Row<'_>| {
        matches!(
            r.disposition,
            Disposition::Evacuated(Evacuation::RegionDown | Evacuation::EndpointDown)
        )
    };
    rows.iter().any(failing)
        && rows
            .iter()
            .all(|r| r.disposition == Disposition::Drained || failing(r))
}

/// Keeps every region that would be evacuated now, but still serves, at
/// its current weight (its base weight if none is recorded), while its
/// hold lasts.
fn hold_for_settle<'a>(
    record: &'a str,
    settle: &Settle,
    now: DateTime<Utc>,
    scratch: &mut Scratch<'a>,
) {
    let mut held = false;
    for row in &mut scratch.rows {
        if let Disposition::Evacuated(why) = row.disposition
            && row.current != Some(0)
            && let Some(until) = settle.hold_until(row.state, now)
        {
            row.disposition = Disposition::Settling(why, row.current.unwrap_or(row.base), until);
            held = true;
        }
    }
    if held {
        scratch.settled.push(record);
    }
}

fn dispose(
    policy: &Policy,
    info: &RegionInfo<'_>,
    verdict: Verdict,
    current: Option<u32>,
) -> Disposition {
    if info.drained {
        return Disposition::Drained;
    }
    match info.state.map(|s| (s.status, s.ramp_step)) {
        Some((RegionStatus::Down, _)) => Disposition::Evacuated(Evacuation::RegionDown),
        Some((RegionStatus::Recovering, None)) => Disposition::Evacuated(Evacuation::Recovering),
        Some((RegionStatus::Recovering, Some(step))) => {
            match policy.ramp_percent(step).unwrap_or(100) {
                0 => Disposition::Evacuated(Evacuation::Recovering),
                pct => Disposition::Ramp(step, pct),
            }
        }
        _ => match verdict {
            Verdict::Down => Disposition::Evacuated(Evacuation::EndpointDown),
            Verdict::Unknown if current == Some(0) => {
                Disposition::Evacuated(Evacuation::EndpointStillOut)
            }
            _ => Disposition::Full,
        },
    }
}

/// Keeps at most `max_evacuated` evacuations; the rest are held at their
/// current weights, with an alarm.
fn limit_evacuations<'a>(
    input: &RecordInput<'a>,
    scratch: &mut Scratch<'a>,
    alarms: &mut Vec<Alarm>,
) {
    let slots = &mut scratch.slots;
    slots.clear();
    slots.extend(
        scratch
            .rows
            .iter()
            .enumerate()
            .filter(|(_, r)| matches!(r.disposition, Disposition::Evacuated(_)))
            .map(|(i, _)| i),
    );
    if slots.len() <= input.policy.max_evacuated {
        return;
    }
    let rows = &scratch.rows;
    let since = |r: &Row<'_>| match r.disposition {
        Disposition::Evacuated(Evacuation::RegionDown | Evacuation::Recovering) => {
            r.state.map_or(input.now, |s| s.since)
        }
        _ => input.now,
    };
    let soft = |r: &Row<'_>| r.disposition == Disposition::Evacuated(Evacuation::Recovering);
    // Rows are already in (priority, name) order, so a stable sort by
    // (recovering, not at 0 now, since) leaves that as the tie-break.
    slots.sort_by_key(|&i| {
        let r = &rows[i];
        (soft(r), r.current != Some(0), since(r))
    });
    let mut kept = Vec::new();
    let mut extra = Vec::new();
    for (n, &i) in slots.iter().enumerate() {
        let row = &mut scratch.rows[i];
        let Disposition::Evacuated(why) = row.disposition else {
            continue;
        };
        if n < input.policy.max_evacuated {
            kept.push(row.region);
        } else if why == Evacuation::Recovering && row.verdict.verdict == Verdict::Up {
            row.disposition = Disposition::Restored;
            extra.push(format!(
                "{}: failback forced although it is still Recovering: its endpoint {} is Up \
                 and the evacuation slots are needed for failures",
                row.region, row.target
            ));
        } else {
            let w = row.current.unwrap_or(row.base);
            row.disposition = Disposition::Held(why, w);
            let mut line = format!("{}: kept at its current weight {w} although ", row.region);
            describe(&mut line, why, row);
            extra.push(line);
        }
    }
    let mut reasons = vec![format!(
        "max_evacuated is {}; evacuated: {}",
        input.policy.max_evacuated,
        if kept.is_empty() {
            "none".to_owned()
        } else {
            kept.join(", ")
        }
    )];
    reasons.extend(extra);
    alarms.push(Alarm {
        kind: AlarmKind::MaxEvacuated,
        subject: input.name.to_owned(),
        message: format!(
            "{}: more regions out than max_evacuated ({}); the extra keep serving",
            input.name, input.policy.max_evacuated
        ),
        reasons,
    });
}

/// Fills `weight` of every row so that they add up to `total` whenever any
/// row can carry traffic.
fn compute_weights(total: u64, scratch: &mut Scratch<'_>) {
    let rows = &mut scratch.rows;
    if rows.iter().all(|r| r.disposition.absorbs()) {
        // The common case: everyone at base weight.
        for r in rows.iter_mut() {
            r.weight = u64::from(r.base);
        }
        return;
    }
    let mut fixed: u64 = 0;
    let mut any_full = false;
    for r in rows.iter_mut() {
        r.weight = match r.disposition {
            Disposition::Drained | Disposition::Evacuated(_) => 0,
            Disposition::Held(_, w) | Disposition::Settling(_, w, _) => u64::from(w),
            Disposition::Ramp(_, pct) => u64::from(r.base) * u64::from(pct) / 100,
            Disposition::Full | Disposition::Restored => {
                any_full = true;
                0
            }
        };
        fixed += r.weight;
    }
    if any_full && fixed <= total {
        // Full regions share what the others do not take, by base weight.
        scratch.shares.clear();
        scratch.shares.extend(
            rows.iter()
                .filter(|r| r.disposition.absorbs())
                .map(|r| u64::from(r.base)),
        );
        apportion(total - fixed, &scratch.shares, &mut scratch.split);
        let full = rows.iter_mut().filter(|r| r.disposition.absorbs());
        for (r, w) in full.zip(&scratch.split) {
            r.weight = *w;
        }
        return;
    }
    // No region at full health (or held weights exceed the total): scale
    // whatever carries traffic up or down to the total.
    if any_full {
        for r in rows.iter_mut().filter(|r| r.disposition.absorbs()) {
            r.weight = u64::from(r.base);
        }
    }
    if rows.iter().all(|r| r.weight == 0) {
        return;
    }
    scratch.shares.clear();
    scratch.shares.extend(rows.iter().map(|r| r.weight));
    apportion(total, &scratch.shares, &mut scratch.split);
    for (r, w) in rows.iter_mut().zip(&scratch.split) {
        r.weight = *w;
    }
}

/// Whether the rows' weights are exactly `current`: every row found a
/// current weight equal to its own, and `current` has no other region.
fn same_as_current(rows: &[Row<'_>], current: Option<&DesiredWeights>) -> bool {
    current.is_some_and(|c| c.len() == rows.len())
        && rows
            .iter()
            .all(|r| r.current.is_some_and(|w| u64::from(w) == r.weight))
}

/// Appends why `row` is evacuated, naming its target and vantages. (Writing
/// to a `String` cannot fail, hence the ignored `fmt::Result`s.)
fn describe(out: &mut String, why: Evacuation, row: &Row<'_>) {
    let reasons = |out: &mut String, list: &[String]| {
        for (i, r) in list.iter().enumerate() {
            if i > 0 {
                out.push_str("; ");
            }
            out.push_str(r);
        }
    };
    match why {
        Evacuation::RegionDown => {
            // The region's own reasons (and since when) are in its state;
            // name this record's endpoint and its vantages here.
            let _ = write!(out, "region {} is Down; ", row.region);
            if row.verdict.reasons.is_empty() {
                let _ = write!(out, "{} is {:?}", row.target, row.verdict.verdict);
            } else {
                reasons(out, &row.verdict.reasons);
            }
        }
        Evacuation::Recovering => {
            let _ = write!(
                out,
                "region {} is Recovering, not failed back yet",
                row.region
            );
            if let Some(s) = row.state {
                out.push_str(": ");
                reasons(out, &s.reasons);
            }
        }
        Evacuation::EndpointDown => {
            let _ = write!(out, "endpoint {} is Down by quorum: ", row.target);
            reasons(out, &row.verdict.reasons);
        }
        Evacuation::EndpointStillOut => {
            let _ = write!(
                out,
                "endpoint {} stays out until seen Up by quorum: ",
                row.target
            );
            reasons(out, &row.verdict.reasons);
        }
    }
}

/// The fail-open alarm: `global` when every region not drained is failing
/// (the weights are kept as they are, evacuations included), otherwise
/// every computed weight was 0.
fn fail_open(input: &RecordInput<'_>, rows: &[Row<'_>], global: bool) -> Alarm {
    let drained = rows
        .iter()
        .filter(|r| r.disposition == Disposition::Drained)
        .count();
    let message = if drained == rows.len() {
        format!(
            "fail open: every region of {} is drained; keeping current weights",
            input.name
        )
    } else if drained > 0 {
        format!(
            "fail open: every region of {} is drained or looks down; keeping current weights",
            input.name
        )
    } else {
        format!(
            "fail open: every region of {} looks down; keeping current weights",
            input.name
        )
    };
    let mut reasons = Vec::with_capacity(rows.len() + 1);
    let failing = rows
        .iter()
        .filter(|r| r.disposition != Disposition::Drained)
        .count();
    if global && failing > 1 {
        reasons.push(format!(
            "every region of {} that is not drained is failing by quorum at once ({failing}): \
             a shared cause (a bad deploy, a shared dependency, trouble on the probes' side) is \
             likelier than {failing} independent outages, and evacuating any region would only \
             move its users onto regions that fail too; weights stay as they were until a region \
             is seen Up again",
            input.name
        ));
    } else if global {
        reasons.push(format!(
            "the only region of {} that is not drained is failing: there is nowhere to move its \
             users; weights stay as they were",
            input.name
        ));
    }
    reasons.extend(rows.iter().map(|r| row_reason(r, None)));
    Alarm {
        kind: AlarmKind::FailOpen,
        subject: input.name.to_owned(),
        message,
        reasons,
    }
}

fn set_weights(input: &RecordInput<'_>, rows: &[Row<'_>], first: bool) -> Action {
    let mut reasons = Vec::with_capacity(rows.len() + 1);
    if first {
        reasons.push(format!("no weights recorded yet for {}", input.name));
    }
    let settle_why = input.settle.map(Settle::why);
    reasons.extend(rows.iter().map(|r| row_reason(r, settle_why.as_deref())));
    let weights = rows
        .iter()
        .map(|r| {
            // Every weight is at most the record's total of u32 base weights
            // or a u32 held weight; saturate rather than wrap on absurd input.
            (
                r.region.to_owned(),
                u32::try_from(r.weight).unwrap_or(u32::MAX),
            )
        })
        .collect();
    Action::SetWeights {
        record: input.name.to_owned(),
        weights,
        reasons,
    }
}

/// "region: weight (why)", one line per region; `settle_why` explains a
/// region held by the settle window.
fn row_reason(r: &Row<'_>, settle_why: Option<&str>) -> String {
    let mut out = String::with_capacity(192);
    let _ = write!(out, "{}: {} (", r.region, r.weight);
    match r.disposition {
        Disposition::Drained => out.push_str("drained by operator"),
        Disposition::Evacuated(why) => {
            out.push_str("evacuated: ");
            describe(&mut out, why, r);
        }
        Disposition::Held(why, _) => {
            out.push_str("held at current weight, max_evacuated reached, although ");
            describe(&mut out, why, r);
        }
        Disposition::Settling(why, _, until) => {
            let _ = write!(out, "held at current weight until {until}: ");
            out.push_str(settle_why.unwrap_or("settle window open"));
            out.push_str("; although ");
            describe(&mut out, why, r);
        }
        Disposition::Ramp(step, pct) => {
            let _ = write!(
                out,
                "failback ramp step {step}: {pct}% of base weight {}",
                r.base
            );
        }
        Disposition::Full | Disposition::Restored => {
            if r.disposition == Disposition::Restored {
                out.push_str("failback forced by max_evacuated; ");
            }
            let _ = write!(out, "base weight {}", r.base);
            match r.weight.cmp(&u64::from(r.base)) {
                Ordering::Greater => out.push_str(" plus its share of evacuated traffic"),
                Ordering::Less => out.push_str(" scaled down to keep the record's total"),
                Ordering::Equal => {}
            }
        }
    }
    out.push(')');
    out
}
