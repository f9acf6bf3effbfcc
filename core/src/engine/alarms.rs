//! Which alarms a decision raised and which it cleared, against the set
//! last published: the leader publishes alarms (etcd, history, metrics)
//! only when that set changes, so a standing alarm costs nothing per tick
//! and each one is raised and cleared in history exactly once.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::plan::{Alarm, AlarmKind};

/// What identifies an alarm across ticks: its guard rail and its subject.
/// Its message may change while it stands (times, evidence); that is not
/// a new alarm.
pub type AlarmKey = (AlarmKind, String);

/// An alarm as published (`state/alarms`, `switchyard status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedAlarm {
    /// Which guard rail fired.
    pub kind: AlarmKind,
    /// The record, region or database it is about.
    pub subject: String,
    /// One line for a pager, as when it was raised.
    pub message: String,
    /// The evidence, as when it was raised.
    pub reasons: Vec<String>,
    /// When it was raised.
    pub since: DateTime<Utc>,
}

/// The change from the published alarms to a decision's.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AlarmChanges {
    /// Alarms the decision has that were not published.
    pub raised: Vec<PublishedAlarm>,
    /// Published alarms the decision no longer has.
    pub cleared: Vec<PublishedAlarm>,
    /// What to publish now (unchanged ones keep their `since`).
    pub now: BTreeMap<AlarmKey, PublishedAlarm>,
}

impl AlarmChanges {
    /// True when nothing was raised or cleared.
    pub fn is_empty(&self) -> bool {
        self.raised.is_empty() && self.cleared.is_empty()
    }
}

/// Compares a decision's `alarms` (at `now`) with the `published` ones.
pub fn alarm_changes(
    published: &BTreeMap<AlarmKey, PublishedAlarm>,
    alarms: &[Alarm],
    now: DateTime<Utc>,
) -> AlarmChanges {
    let mut next = BTreeMap::new();
    let mut raised = Vec::new();
    for a in alarms {
        let key = (a.kind, a.subject.clone());
        if next.contains_key(&key) {
            continue;
        }
        let entry = match published.get(&key) {
            Some(p) => p.clone(),
            None => {
                let p = PublishedAlarm {
                    kind: a.kind,
                    subject: a.subject.clone(),
                    message: a.message.clone(),
                    reasons: a.reasons.clone(),
                    since: now,
                };
                raised.push(p.clone());
                p
            }
        };
        next.insert(key, entry);
    }
    let standing: BTreeSet<&AlarmKey> = next.keys().collect();
    let cleared = published
        .iter()
        .filter(|(k, _)| !standing.contains(k))
        .map(|(_, p)| p.clone())
        .collect();
    AlarmChanges {
        raised,
        cleared,
        now: next,
    }
}

/// The label an alarm kind carries in metrics and history (`fail_open`…).
pub fn kind_label(kind: AlarmKind) -> &'static str {
    match kind {
        AlarmKind::FailOpen => "fail_open",
        AlarmKind::SettleWindow => "settle_window",
        AlarmKind::MaxEvacuated => "max_evacuated",
        AlarmKind::ManualFailover => "manual_failover",
        AlarmKind::AntiFlap => "anti_flap",
        AlarmKind::Topology => "topology",
        AlarmKind::GateWait => "gate_wait",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alarm(kind: AlarmKind, subject: &str, message: &str) -> Alarm {
        Alarm {
            kind,
            subject: subject.into(),
            message: message.into(),
            reasons: vec![],
        }
    }

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).expect("time")
    }

    #[test]
    fn an_alarm_is_raised_once_stands_without_change_and_clears_once() {
        let none = BTreeMap::new();
        let a = [alarm(AlarmKind::AntiFlap, "orders", "held back at 1")];
        let first = alarm_changes(&none, &a, at(1));
        assert_eq!(first.raised.len(), 1);
        assert!(first.cleared.is_empty());
        assert_eq!(first.raised[0].since, at(1));

        // Still there with another message: no change, the first kept.
        let b = [alarm(AlarmKind::AntiFlap, "orders", "held back at 2")];
        let second = alarm_changes(&first.now, &b, at(2));
        assert!(second.is_empty(), "{second:?}");
        assert_eq!(second.now, first.now);
        assert_eq!(second.now.values().next().map(|p| p.since), Some(at(1)));

        // Another subject of the same kind is a second alarm.
        let c = [
            alarm(AlarmKind::AntiFlap, "orders", "x"),
            alarm(AlarmKind::AntiFlap, "users", "y"),
        ];
        let third = alarm_changes(&second.now, &c, at(3));
        assert_eq!(third.raised.len(), 1);
        assert_eq!(third.raised[0].subject, "users");

        // Gone: cleared once, then nothing.
        let fourth = alarm_changes(&third.now, &[], at(4));
        assert_eq!(fourth.cleared.len(), 2);
        assert!(fourth.now.is_empty());
        assert!(alarm_changes(&fourth.now, &[], at(5)).is_empty());
    }

    #[test]
    fn the_same_alarm_twice_in_one_decision_counts_once() {
        let a = [
            alarm(AlarmKind::FailOpen, "api.", "one"),
            alarm(AlarmKind::FailOpen, "api.", "two"),
        ];
        let c = alarm_changes(&BTreeMap::new(), &a, at(1));
        assert_eq!(c.raised.len(), 1);
        assert_eq!(c.now.len(), 1);
    }
}
