//! The engine's plan as the executor's actions: pure.

use std::collections::{BTreeMap, BTreeSet};

use crate::engine::{Action, ControlState, Database, RegionStatus};
use crate::executor::ActionSpec;

/// The plan's weight changes as one intent: `SetWeights` for one record,
/// `SetWeightsBatch` for several (one atomic change, one Route 53
/// `ChangeBatch`), with the key its backoff is counted under and the
/// reasons of every record. `None` when the plan changes no weights.
pub fn traffic_intent(actions: &[Action]) -> Option<(ActionSpec, String, Vec<String>)> {
    let mut records = BTreeMap::new();
    let mut keys = Vec::new();
    let mut reasons = Vec::new();
    for a in actions {
        if let Action::SetWeights {
            record,
            weights,
            reasons: why,
        } = a
        {
            records.insert(record.clone(), weights.clone());
            keys.push(a.key());
            reasons.extend(why.iter().cloned());
        }
    }
    let spec = ActionSpec::for_weights(records)?;
    Some((spec, keys.join(" + "), reasons))
}

/// Regions a failover takes a candidate from only when no other
/// qualifies: those the engine sees Down, and those an operator drained.
pub fn avoid_regions(control: &ControlState) -> BTreeSet<String> {
    control
        .regions
        .iter()
        .filter(|(_, r)| r.status == RegionStatus::Down)
        .map(|(name, _)| name.clone())
        .chain(control.drained.iter().cloned())
        .collect()
}

/// The executor's form of an engine action; a failover avoids `avoid`.
pub fn spec_of(action: &Action, avoid: &BTreeSet<String>) -> ActionSpec {
    match action {
        Action::SetWeights {
            record, weights, ..
        } => ActionSpec::SetWeights {
            record: record.clone(),
            weights: weights.clone(),
        },
        Action::Failover {
            database,
            from_member,
            ..
        } => ActionSpec::Failover {
            database: database.clone(),
            from_member: from_member.clone(),
            to_member: None,
            force: false,
            avoid_regions: avoid.clone(),
        },
    }
}

/// True when the region of `db`'s recorded primary is Healthy or
/// Recovering (its service endpoints up again), so a fence its region's
/// controller put on it may be lifted. Recovering counts: with manual
/// failback a region stays Recovering until an operator acts, and its
/// recorded primary would stay read-only meanwhile, with nobody to replace
/// it (the simulator found this).
pub fn primary_region_back(db: &Database, control: &ControlState) -> bool {
    db.members
        .get(&db.primary)
        .and_then(|m| control.regions.get(&m.region))
        .is_some_and(|r| matches!(r.status, RegionStatus::Healthy | RegionStatus::Recovering))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::lanes::Lane;

    fn weights(record: &str, c: u32) -> Action {
        Action::SetWeights {
            record: record.into(),
            weights: [("a".to_string(), 100), ("c".to_string(), c)].into(),
            reasons: vec![format!("{record}: c is {c}")],
        }
    }

    #[test]
    fn a_plans_weight_changes_become_one_intent() {
        let failover = Action::Failover {
            database: "orders".into(),
            from_member: "m0".into(),
            after: None,
            reasons: vec![],
        };
        assert_eq!(traffic_intent(std::slice::from_ref(&failover)), None);
        let Some((one, key, _)) = traffic_intent(&[weights("api.", 0), failover.clone()]) else {
            panic!("one record");
        };
        assert!(matches!(one, ActionSpec::SetWeights { .. }), "{one:?}");
        assert_eq!(key, weights("api.", 0).key());
        let Some((batch, key, reasons)) =
            traffic_intent(&[weights("api.", 0), failover, weights("web.", 0)])
        else {
            panic!("two records");
        };
        let ActionSpec::SetWeightsBatch { records } = &batch else {
            panic!("{batch:?}");
        };
        assert_eq!(
            records.keys().collect::<Vec<_>>(),
            ["api.", "web."],
            "both records in one change"
        );
        assert_eq!(batch.weight_sets().len(), 2);
        assert!(key.contains("api.") && key.contains("web."), "{key}");
        assert_eq!(reasons.len(), 2);
        assert_eq!(Lane::of(&batch), Lane::Traffic);
    }
}
