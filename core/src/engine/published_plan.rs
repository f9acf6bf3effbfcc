//! The plan as the leader publishes it (`state/plan`) for `switchyard
//! plan`: what the engine would do now and why, whether automation is
//! paused or not, and which failovers wait at the promotion gate.
//!
//! The leader decides every tick, but publishes only when what the plan
//! *does* changes — the paused flag, the actions by their keys, the
//! databases waiting at the gate — not when only a reason's wording does
//! (reasons carry times and counts): a steady cluster costs no write.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::plan::{Action, Plan};

/// A failover the promotion gate holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateHold {
    /// The database.
    pub database: String,
    /// Since when.
    pub since: DateTime<Utc>,
    /// The gate's evidence, as when published.
    pub reason: String,
}

/// `state/plan`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedPlan {
    /// The controller that decided it.
    pub leader: String,
    /// When this plan (by what it does) was first decided.
    pub since: DateTime<Utc>,
    /// Automation is paused: shown, not executed.
    pub paused: bool,
    /// What the engine would do, with the reasons as when published.
    pub actions: Vec<Action>,
    /// Failovers waiting at the promotion gate.
    #[serde(default)]
    pub gate_holds: Vec<GateHold>,
}

/// What identifies a plan across ticks: what it does, not its wording.
pub fn plan_fingerprint(plan: &Plan, holds: &[GateHold]) -> String {
    let mut f = format!("paused={}", plan.paused);
    for a in &plan.actions {
        f.push('|');
        f.push_str(&a.key());
    }
    for h in holds {
        f.push_str("|gate/");
        f.push_str(&h.database);
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weights(record: &str, w: u32, reason: &str) -> Action {
        Action::SetWeights {
            record: record.into(),
            weights: [("a".to_string(), w)].into_iter().collect(),
            reasons: vec![reason.into()],
        }
    }

    fn hold(db: &str, reason: &str) -> GateHold {
        GateHold {
            database: db.into(),
            since: DateTime::from_timestamp(0, 0).expect("time"),
            reason: reason.into(),
        }
    }

    #[test]
    fn the_fingerprint_follows_what_the_plan_does_not_its_wording() {
        let plan = |paused, actions| Plan { paused, actions };
        let base = plan_fingerprint(&plan(false, vec![weights("api", 0, "down 3s")]), &[]);
        // (what changed, whether the fingerprint must change)
        let cases = [
            (
                plan_fingerprint(&plan(false, vec![weights("api", 0, "down 4s")]), &[]),
                false,
            ),
            (
                plan_fingerprint(&plan(true, vec![weights("api", 0, "down 3s")]), &[]),
                true,
            ),
            (
                plan_fingerprint(&plan(false, vec![weights("api", 50, "down 3s")]), &[]),
                true,
            ),
            (
                plan_fingerprint(&plan(false, vec![weights("web", 0, "down 3s")]), &[]),
                true,
            ),
            (plan_fingerprint(&plan(false, vec![]), &[]), true),
            (
                plan_fingerprint(
                    &plan(false, vec![weights("api", 0, "down 3s")]),
                    &[hold("orders", "held")],
                ),
                true,
            ),
        ];
        for (i, (f, changed)) in cases.iter().enumerate() {
            assert_eq!(f != &base, *changed, "case {i}: {f} vs {base}");
        }
        assert_eq!(
            plan_fingerprint(&plan(false, vec![]), &[hold("orders", "held 1s")]),
            plan_fingerprint(&plan(false, vec![]), &[hold("orders", "held 2s")]),
        );
    }
}
