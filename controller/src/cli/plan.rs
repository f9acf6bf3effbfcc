//! `switchyard plan`: what the engine would do now and why, as the leader
//! last published it (`state/plan`) — shown whether automation is paused
//! or not, so an operator can see what resuming would do before resuming —
//! with the failovers the promotion gate holds and the standing alarms.

use std::io::Write;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ops::{OpsError, Output, print_alarms, print_json, print_leader};
use crate::engine::{Action, GateHold, PublishedAlarm, PublishedPlan};
use crate::runtime::peers::Registration;
use crate::store::Store;

/// What `plan` shows.
#[derive(Debug, Serialize, Deserialize)]
pub struct PlanView {
    /// The controller leading now (its id; its address when it has not
    /// registered).
    leader: Option<String>,
    /// Whether automation is paused now (the operator's switch).
    paused: bool,
    /// The controller that decided the plan shown.
    decided_by: Option<String>,
    /// Since when the plan has been what it is.
    since: Option<DateTime<Utc>>,
    /// What the engine would do, in order, each with its reasons.
    actions: Vec<Action>,
    /// Failovers the promotion gate holds.
    gate_holds: Vec<GateHold>,
    /// The alarms standing.
    alarms: Vec<PublishedAlarm>,
    /// What to keep in mind reading it (no plan yet, decided by a former
    /// leader).
    note: Option<String>,
}

fn note(leader: Option<&str>, plan: Option<&PublishedPlan>) -> Option<String> {
    match (leader, plan) {
        (_, None) => {
            Some("no plan published yet: the leader publishes one at its first decision".into())
        }
        (None, Some(p)) => Some(format!(
            "no controller leads now: this is the plan {} last decided",
            p.leader
        )),
        (Some(l), Some(p)) if l != p.leader => Some(format!(
            "decided by {}, which no longer leads; {l} publishes its own at its first decision",
            p.leader
        )),
        _ => None,
    }
}

/// One action as a line, then its reasons.
fn print_action(out: &mut dyn Write, a: &Action) -> std::io::Result<()> {
    match a {
        Action::SetWeights {
            record, weights, ..
        } => {
            let w: Vec<String> = weights.iter().map(|(r, w)| format!("{r}={w}")).collect();
            writeln!(out, "  set weights of {record}: {}", w.join(" "))?;
        }
        Action::Failover {
            database,
            from_member,
            ..
        } => writeln!(
            out,
            "  fail over {database}, replacing primary {from_member}"
        )?,
    }
    for r in a.reasons() {
        writeln!(out, "      {r}")?;
    }
    Ok(())
}

/// Reads the plan as the leader published it, with the current leader,
/// the pause switch and the alarms.
pub async fn plan_view(store: &Store) -> Result<PlanView, OpsError> {
    let keys = store.keys();
    // The election holds the leader's address; its registration names it.
    let registered: Vec<(String, Registration)> =
        store.list_json(&keys.controllers_prefix()).await?;
    let leader = store.leader_value().await?.map(|address| {
        registered
            .iter()
            .find(|(_, r)| r.address == address)
            .map_or(address, |(id, _)| id.clone())
    });
    let published: Option<PublishedPlan> = store.get_json(&keys.plan()).await?;
    let view = PlanView {
        note: note(leader.as_deref(), published.as_ref()),
        leader,
        paused: store.exists(&keys.pause()).await?,
        decided_by: published.as_ref().map(|p| p.leader.clone()),
        since: published.as_ref().map(|p| p.since),
        alarms: store.get_json(&keys.alarms()).await?.unwrap_or_default(),
        actions: published
            .as_ref()
            .map(|p| p.actions.clone())
            .unwrap_or_default(),
        gate_holds: published.map(|p| p.gate_holds).unwrap_or_default(),
    };
    Ok(view)
}

/// Prints a [`PlanView`] as a table or one JSON document.
pub fn print_plan(view: &PlanView, output: Output, out: &mut dyn Write) -> Result<(), OpsError> {
    if output == Output::Json {
        return print_json(view, out);
    }
    print_leader(
        out,
        view.leader.as_deref(),
        view.paused,
        "PAUSED: the plan is shown, not executed",
    )?;
    if let Some(n) = &view.note {
        writeln!(out, "note       {n}")?;
    }
    match view.since {
        Some(t) => writeln!(out, "PLAN (since {})", t.format("%Y-%m-%d %H:%M:%S"))?,
        None => writeln!(out, "PLAN")?,
    }
    if view.actions.is_empty() {
        writeln!(out, "  nothing to do")?;
    }
    for a in &view.actions {
        print_action(out, a)?;
    }
    if !view.gate_holds.is_empty() {
        writeln!(out, "WAITING AT THE PROMOTION GATE")?;
        for h in &view.gate_holds {
            writeln!(
                out,
                "  {:<12} since {}: {}",
                h.database,
                h.since.format("%Y-%m-%d %H:%M:%S"),
                h.reason
            )?;
        }
    }
    print_alarms(out, &view.alarms)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn published(leader: &str) -> PublishedPlan {
        PublishedPlan {
            leader: leader.into(),
            since: DateTime::from_timestamp(0, 0).expect("time"),
            paused: false,
            actions: vec![],
            gate_holds: vec![],
        }
    }

    #[test]
    fn a_plan_from_another_leader_or_none_is_said_so() {
        let p = published("ctl-a");
        assert_eq!(note(Some("ctl-a"), Some(&p)), None);
        assert!(note(Some("ctl-b"), Some(&p)).is_some_and(|n| n.contains("no longer leads")));
        assert!(note(None, Some(&p)).is_some_and(|n| n.contains("no controller leads")));
        assert!(note(Some("ctl-a"), None).is_some_and(|n| n.contains("no plan published yet")));
    }
}
