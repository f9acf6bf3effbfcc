//! What a backend that stores weights itself (the JSON file, memory)
//! holds, and how a change and a read map onto it: one weight per region
//! (or, for a writer record, `1` at its member), per record. One
//! implementation, so the file backend and the simulator's memory backend
//! cannot drift apart.

use std::collections::BTreeMap;

use super::records::{RecordBook, RecordSpec};
use super::{RecordState, Target, TrafficChange, Weights};

/// The content after `change`: each named record's complete weight set
/// (regions it held and the change leaves out go to 0), each writer record
/// pointing at its one member. Returns how many records differ.
pub fn merge(all: &mut BTreeMap<String, Weights>, change: &TrafficChange) -> usize {
    let mut changed = 0;
    for c in &change.records {
        let mut next: Weights = all
            .get(&c.record)
            .map(|old| old.keys().map(|r| (r.clone(), 0)).collect())
            .unwrap_or_default();
        next.extend(c.weights.iter().map(|(r, w)| (r.clone(), *w)));
        if all.get(&c.record) != Some(&next) {
            changed += 1;
        }
        all.insert(c.record.clone(), next);
    }
    for w in &change.writers {
        let next: Weights = [(w.member.clone(), 1)].into();
        if all.get(&w.record) != Some(&next) {
            changed += 1;
        }
        all.insert(w.record.clone(), next);
    }
    changed
}

/// `record` as read back from what is stored for it: with `book`, each
/// region's value (a writer record: its member's region and value);
/// without, weights only.
pub fn stored_state(book: Option<&RecordBook>, record: &str, stored: Weights) -> RecordState {
    let targets = match book.and_then(|b| b.get(record)) {
        None => stored
            .into_iter()
            .map(|(region, weight)| {
                (
                    region,
                    Target {
                        value: None,
                        weight,
                    },
                )
            })
            .collect(),
        Some(RecordSpec::Weighted(rec)) => stored
            .into_iter()
            .map(|(region, weight)| {
                let value = rec.values.get(&region).cloned();
                (region, Target { value, weight })
            })
            .collect(),
        Some(RecordSpec::Writer(rec)) => stored
            .into_iter()
            .filter(|(_, w)| *w > 0)
            .filter_map(|(member, _)| rec.members.get(&member))
            .map(|t| {
                (
                    t.region.clone(),
                    Target {
                        value: Some(t.value.clone()),
                        weight: 1,
                    },
                )
            })
            .collect(),
    };
    RecordState(targets)
}
