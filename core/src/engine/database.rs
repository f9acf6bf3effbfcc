//! Database failover decisions: when the primary is dead by quorum, fail over
//! (auto) or page (manual), and never twice within `anti_flap`.
//!
//! The primary counts as failed when its own verdict is Down, or when its
//! region is Down and the primary is not seen Up: region Down is already
//! quorum evidence, and a region cut off from the probes often leaves its
//! primary Unknown rather than Down. A primary that is Unknown in a region
//! that is not Down causes nothing, and a primary seen Up is never failed
//! over because its region's services died — that is a switchover for a
//! person to choose. Which replica to promote is the replication crate's
//! choice at execution time; fencing the old primary is the executor's.
//! An empty `primary` means "not known yet" and is skipped silently.

use chrono::{DateTime, Utc};

use super::control::{ControlState, RegionState, RegionStatus};
use super::plan::{Action, Alarm, AlarmKind};
use super::policy::{DbFailoverMode, Policy, delta};
use super::topology::Database;
use super::verdict::{TargetVerdict, Verdict};

/// Everything one database's planning reads.
pub(crate) struct DatabaseInput<'a> {
    pub name: &'a str,
    pub spec: &'a Database,
    /// The verdict of the primary's target, if the primary is a member.
    pub primary_verdict: Option<&'a TargetVerdict>,
    /// The new state of the primary's region, if known.
    pub primary_region: Option<&'a RegionState>,
    pub control: &'a ControlState,
    pub policy: &'a Policy,
    pub now: DateTime<Utc>,
}

/// Plans one database: at most one `Failover`, or alarms.
pub(crate) fn plan_database(
    input: &DatabaseInput<'_>,
    actions: &mut Vec<Action>,
    alarms: &mut Vec<Alarm>,
) {
    let (name, primary) = (input.name, input.spec.primary.as_str());
    if primary.is_empty() {
        // The primary is not known yet (the store or a probe will say):
        // nothing to fail over, and nothing worth paging about every tick.
        return;
    }
    let (Some(member), Some(verdict)) = (input.spec.members.get(primary), input.primary_verdict)
    else {
        alarms.push(Alarm {
            kind: AlarmKind::Topology,
            subject: name.to_owned(),
            message: format!("{name}: primary {primary} is not one of its members"),
            reasons: vec![format!(
                "members of {name}: {}",
                input
                    .spec
                    .members
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )],
        });
        return;
    };
    let region_down = input
        .primary_region
        .is_some_and(|s| s.status == RegionStatus::Down);
    let failed = match verdict.verdict {
        Verdict::Down => true,
        Verdict::Unknown => region_down,
        Verdict::Up => false,
    };
    if !failed {
        return;
    }

    let mut reasons = vec![format!(
        "primary {primary} of {name} ({}, region {}) is {:?}{}",
        member.target,
        member.region,
        verdict.verdict,
        if region_down {
            " and its region is Down"
        } else {
            ""
        }
    )];
    reasons.extend(verdict.reasons.iter().cloned());
    if region_down && let Some(state) = input.primary_region {
        reasons.extend(state.reasons.iter().take(3).cloned());
    }
    if input.spec.members.len() < 2 {
        reasons.push(format!("{name} has no other member to promote"));
        alarms.push(Alarm {
            kind: AlarmKind::Topology,
            subject: name.to_owned(),
            message: format!("{name}: primary {primary} is down and there is no replica"),
            reasons,
        });
        return;
    }

    match input.policy.db_failover {
        DbFailoverMode::Manual => {
            reasons.push("db_failover is manual".to_owned());
            alarms.push(Alarm {
                kind: AlarmKind::ManualFailover,
                subject: name.to_owned(),
                message: format!(
                    "manual failover required: primary {primary} of {name} is down; \
                     run `switchyard failover --database {name}`"
                ),
                reasons,
            });
        }
        DbFailoverMode::Auto => {
            let last = input.control.last_failover.get(name).copied();
            let next = last.map(|t| {
                t.checked_add_signed(delta(input.policy.anti_flap))
                    .unwrap_or(DateTime::<Utc>::MAX_UTC)
            });
            match (last, next) {
                (Some(last), Some(next)) if input.now < next => {
                    reasons.push(format!(
                        "anti_flap: last automatic failover of {name} at {last}; \
                         the next is allowed at {next}"
                    ));
                    alarms.push(Alarm {
                        kind: AlarmKind::AntiFlap,
                        subject: name.to_owned(),
                        message: format!(
                            "{name}: primary {primary} is down but failed over at {last}; \
                             next automatic failover allowed at {next}"
                        ),
                        reasons,
                    });
                }
                _ => {
                    reasons.push("db_failover is auto".to_owned());
                    actions.push(Action::Failover {
                        database: name.to_owned(),
                        from_member: primary.to_owned(),
                        after: last,
                        reasons,
                    });
                }
            }
        }
    }
}
