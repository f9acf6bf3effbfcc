//! `decide`: the one entry point from (topology, health, control, policy,
//! now) to region states, verdicts, a plan and alarms.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::control::{ControlState, RegionState};
use super::database::{DatabaseInput, plan_database};
use super::health::HealthBook;
use super::plan::{Alarm, Plan};
use super::policy::{Policy, delta};
use super::region::{RegionEvidence, next_state};
use super::settle::{settle_alarm, settle_window};
use super::sorted::SortedCursor;
use super::topology::{TargetId, Topology};
use super::traffic::{NO_REGION, RecordInput, RegionInfo, Scratch, plan_record};
use super::verdict::{TargetVerdict, fresh_cutoff, verdict_at};

/// Everything one decision produced; the store persists `regions` (on change)
/// and journals `plan`, the CLI shows all of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Every topology region's new state.
    pub regions: BTreeMap<String, RegionState>,
    /// Every topology target's verdict.
    pub verdicts: BTreeMap<TargetId, TargetVerdict>,
    /// Changes against `ControlState::weights`, and failovers.
    pub plan: Plan,
    /// Guard rails that held the engine back and want a person.
    pub alarms: Vec<Alarm>,
}

/// A target with its verdict.
type Judged = (TargetId, TargetVerdict);

/// The reason added to every action while automation is paused.
pub const PAUSED_REASON: &str = "automation paused: plan shown, not executed";

/// Decides what should happen now. Pure: the same inputs give the same
/// decision on every controller, and time only enters through `now`.
pub fn decide(
    topology: &Topology,
    book: &HealthBook,
    control: &ControlState,
    policy: &Policy,
    now: DateTime<Utc>,
) -> Decision {
    let quorum = policy.quorum_count();
    let cutoff = fresh_cutoff(now, delta(policy.stale_after));

    // Verdicts in topology order (endpoints, then database members) so later
    // passes walk them in step. Each carries its own copy of the target id so
    // the vector becomes `Decision::verdicts` in place at the end.
    let judge = |t: &TargetId| (t.clone(), verdict_at(book, t, quorum, cutoff));
    let endpoints = topology.records.values().flat_map(|r| r.endpoints.values());
    let members = topology.databases.values().flat_map(|d| d.members.values());
    let endpoint_count: usize = topology.records.values().map(|r| r.endpoints.len()).sum();
    let member_count: usize = topology.databases.values().map(|d| d.members.len()).sum();
    let mut judged: Vec<Judged> = Vec::with_capacity(endpoint_count + member_count);
    judged.extend(endpoints.map(|ep| judge(&ep.target)));
    judged.extend(members.map(|m| judge(&m.target)));
    let (endpoint_verdicts, member_verdicts) = judged.split_at(endpoint_count);
    let endpoint_regions = endpoint_region_indices(topology);

    let regions = region_states(
        topology,
        endpoint_verdicts,
        &endpoint_regions,
        member_verdicts,
        control,
        policy,
        now,
    );
    let settle = settle_window(&regions, &control.drained, policy, now);
    let infos: Vec<RegionInfo<'_>> = topology
        .regions
        .iter()
        .zip(regions.values())
        .map(|((name, r), state)| RegionInfo {
            priority: r.priority,
            drained: control.drained.contains(name),
            state: Some(state),
        })
        .collect();

    let mut actions = Vec::new();
    let mut alarms = Vec::new();
    let mut scratch = Scratch::default();
    let mut offset = 0;
    // Records and current weights are both sorted by record name.
    let mut current = SortedCursor::new(Some(&control.weights));
    for (name, spec) in &topology.records {
        let n = spec.endpoints.len();
        let input = RecordInput {
            name,
            spec,
            verdicts: &endpoint_verdicts[offset..offset + n],
            region_index: &endpoint_regions[offset..offset + n],
            infos: &infos,
            current: current.seek(name),
            control,
            policy,
            settle: settle.as_ref(),
            now,
        };
        offset += n;
        if let Some(action) = plan_record(&input, &mut scratch, &mut alarms) {
            actions.push(action);
        }
    }
    if let Some(settle) = &settle
        && !scratch.settled.is_empty()
    {
        alarms.push(settle_alarm(settle, &scratch.settled));
    }
    drop(scratch);

    let mut offset = 0;
    for (name, spec) in &topology.databases {
        let primary_verdict = spec
            .members
            .keys()
            .position(|m| *m == spec.primary)
            .map(|i| &member_verdicts[offset + i].1);
        offset += spec.members.len();
        let primary_region = spec
            .members
            .get(&spec.primary)
            .and_then(|m| regions.get(&m.region));
        let input = DatabaseInput {
            name,
            spec,
            primary_verdict,
            primary_region,
            control,
            policy,
            now,
        };
        plan_database(&input, &mut actions, &mut alarms);
    }

    if control.paused {
        for action in &mut actions {
            action.reasons_mut().push(PAUSED_REASON.to_owned());
        }
    }

    // Sorted already when target ids follow record names; a target shared by
    // several records or members appears once (its verdict is the same).
    let verdicts = judged.into_iter().collect();
    Decision {
        regions,
        verdicts,
        plan: Plan {
            paused: control.paused,
            actions,
        },
        alarms,
    }
}

/// For every endpoint (in topology order), the index of its region in
/// `topology.regions`, or `NO_REGION`. Both maps are sorted by region name,
/// so one merge per record replaces a look-up per endpoint.
fn endpoint_region_indices(topology: &Topology) -> Vec<usize> {
    let names: Vec<&str> = topology.regions.keys().map(String::as_str).collect();
    let mut out = Vec::with_capacity(topology.records.values().map(|r| r.endpoints.len()).sum());
    for record in topology.records.values() {
        let mut j = 0;
        for region in record.endpoints.keys() {
            while j < names.len() && names[j] < region.as_str() {
                j += 1;
            }
            out.push(if names.get(j) == Some(&region.as_str()) {
                j
            } else {
                NO_REGION
            });
        }
    }
    out
}

/// Every topology region's next state, from the verdicts of its targets.
fn region_states(
    topology: &Topology,
    endpoint_verdicts: &[Judged],
    endpoint_regions: &[usize],
    member_verdicts: &[Judged],
    control: &ControlState,
    policy: &Policy,
    now: DateTime<Utc>,
) -> BTreeMap<String, RegionState> {
    let names: Vec<&str> = topology.regions.keys().map(String::as_str).collect();
    let quorum = policy.quorum_count();
    let mut evidence: Vec<RegionEvidence<'_>> =
        names.iter().map(|_| RegionEvidence::new(quorum)).collect();
    let endpoints = topology.records.values().flat_map(|r| r.endpoints.values());
    for ((ep, (_, v)), i) in endpoints.zip(endpoint_verdicts).zip(endpoint_regions) {
        if let Some(ev) = evidence.get_mut(*i) {
            ev.add(&ep.target, v, true);
        }
    }
    let members = topology.databases.values().flat_map(|d| d.members.values());
    for (m, (_, v)) in members.zip(member_verdicts) {
        if let Ok(i) = names.binary_search(&m.region.as_str()) {
            evidence[i].add(&m.target, v, false);
        }
    }
    names
        .iter()
        .zip(&evidence)
        .map(|(name, ev)| {
            let fresh;
            let prev = match control.regions.get(*name) {
                Some(p) => p,
                None => {
                    fresh = RegionState::healthy(now);
                    &fresh
                }
            };
            let approval = control.failback_approvals.get(*name).copied();
            let next = next_state(name, prev, ev, policy, approval, now);
            ((*name).to_owned(), next)
        })
        .collect()
}
