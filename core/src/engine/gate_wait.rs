//! How long each database's failover has waited at the promotion gate, and
//! the alarm a long wait raises.
//!
//! A shut gate is the safety argument working (the old primary's lease
//! may still be alive, so promoting could make two writers), but a gate
//! that stays shut is also how a failover silently never happens: the old
//! primary's region is cut off yet its controller keeps renewing, or its
//! lease is unreadable. Past `after`, the on-call person is told, with the
//! evidence the gate gave and the one command that overrides it once they
//! know the old primary cannot take writes.
//!
//! The leader asks the gate every tick while a failover is wanted; a wait
//! no longer asked about for `stale` (the failover is no longer wanted, or
//! automation was paused) is forgotten, and its alarm clears.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::plan::{Alarm, AlarmKind};
use super::published_plan::GateHold;

/// One database's wait.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Wait {
    since: DateTime<Utc>,
    seen: DateTime<Utc>,
    reason: String,
}

/// The failovers waiting at the gate, per database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GateWaits {
    waits: BTreeMap<String, Wait>,
}

fn older_than(then: DateTime<Utc>, now: DateTime<Utc>, d: Duration) -> bool {
    (now - then).to_std().is_ok_and(|age| age >= d)
}

impl GateWaits {
    /// The gate was shut for `database` at `now`, with `reason`: a wait
    /// starts, or goes on (its start kept, its reason the latest).
    pub fn shut(&mut self, database: &str, reason: &str, now: DateTime<Utc>) {
        let w = self.waits.entry(database.to_string()).or_insert(Wait {
            since: now,
            seen: now,
            reason: String::new(),
        });
        w.seen = now;
        reason.clone_into(&mut w.reason);
    }

    /// Takes over waits a previous leader published (their start kept),
    /// as if asked about at `now`: ones no longer asked about are then
    /// forgotten after the stale time like any other.
    pub fn inherit(&mut self, holds: &[GateHold], now: DateTime<Utc>) {
        for h in holds {
            self.waits.entry(h.database.clone()).or_insert(Wait {
                since: h.since,
                seen: now,
                reason: h.reason.clone(),
            });
        }
    }

    /// The gate opened for `database` (or it was forced): no wait.
    pub fn opened(&mut self, database: &str) {
        self.waits.remove(database);
    }

    /// The waits standing, by database (for the published plan).
    pub fn holds(&self) -> Vec<GateHold> {
        self.waits
            .iter()
            .map(|(db, w)| GateHold {
                database: db.clone(),
                since: w.since,
                reason: w.reason.clone(),
            })
            .collect()
    }

    /// Forgets waits not asked about for `stale`, and returns an alarm for
    /// each that has lasted `after` or more.
    pub fn alarms(&mut self, now: DateTime<Utc>, after: Duration, stale: Duration) -> Vec<Alarm> {
        self.waits.retain(|_, w| !older_than(w.seen, now, stale));
        self.waits
            .iter()
            .filter(|(_, w)| older_than(w.since, now, after))
            .map(|(db, w)| Alarm {
                kind: AlarmKind::GateWait,
                subject: db.clone(),
                message: format!(
                    "the failover of {db} has waited at the promotion gate since {} (longer than {}): {}. \
                     If you know the old primary cannot take writes (powered off, fenced by hand): \
                     switchyard failover --database {db} --force",
                    w.since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    humantime::format_duration(after),
                    w.reason
                ),
                reasons: vec![w.reason.clone()],
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).expect("time")
    }

    const AFTER: Duration = Duration::from_secs(60);
    const STALE: Duration = Duration::from_secs(5);

    #[test]
    fn a_wait_alarms_only_once_it_has_lasted_long_enough() {
        let mut w = GateWaits::default();
        // (time of the ask, alarms expected after it)
        for (t, expected) in [(0, 0), (30, 0), (59, 0), (60, 1), (120, 1)] {
            w.shut("orders", "lease held by ctl-a", at(t));
            assert_eq!(w.alarms(at(t), AFTER, STALE).len(), expected, "at {t}s");
        }
        let a = w.alarms(at(120), AFTER, STALE);
        assert_eq!(a[0].kind, AlarmKind::GateWait);
        assert_eq!(a[0].subject, "orders");
        assert!(
            a[0].message.contains("since 1970-01-01T00:00:00Z"),
            "{}",
            a[0].message
        );
        assert!(
            a[0].message
                .contains("switchyard failover --database orders --force"),
            "{}",
            a[0].message
        );
        assert_eq!(a[0].reasons, vec!["lease held by ctl-a".to_string()]);
    }

    #[test]
    fn an_open_gate_ends_the_wait_and_a_new_wait_starts_from_zero() {
        let mut w = GateWaits::default();
        w.shut("orders", "held", at(0));
        w.shut("orders", "held", at(70));
        assert_eq!(w.alarms(at(70), AFTER, STALE).len(), 1);
        w.opened("orders");
        assert!(w.alarms(at(71), AFTER, STALE).is_empty());
        w.shut("orders", "held", at(72));
        assert!(w.alarms(at(72), AFTER, STALE).is_empty());
    }

    #[test]
    fn a_wait_nobody_asks_about_any_more_is_forgotten() {
        let mut w = GateWaits::default();
        w.shut("orders", "held", at(0));
        w.shut("orders", "held", at(61));
        assert_eq!(w.alarms(at(61), AFTER, STALE).len(), 1);
        // Not asked since 61 (paused, or no longer wanted): gone at 66.
        assert_eq!(w.alarms(at(65), AFTER, STALE).len(), 1);
        assert!(w.alarms(at(66), AFTER, STALE).is_empty());
        w.shut("orders", "held", at(67));
        assert!(
            w.alarms(at(67), AFTER, STALE).is_empty(),
            "restarted from 0"
        );
    }

    #[test]
    fn a_new_leader_keeps_the_start_of_an_inherited_wait() {
        let mut old = GateWaits::default();
        old.shut("orders", "held", at(0));
        old.shut("orders", "held", at(70));
        assert_eq!(old.alarms(at(70), AFTER, STALE).len(), 1);
        let mut new = GateWaits::default();
        new.inherit(&old.holds(), at(72));
        new.shut("orders", "held", at(73));
        let a = new.alarms(at(73), AFTER, STALE);
        assert_eq!(a.len(), 1, "still standing, not restarted");
        assert!(
            a[0].message.contains("since 1970-01-01T00:00:00Z"),
            "{}",
            a[0].message
        );
        // Inherited but no longer asked about: forgotten like any other.
        let mut idle = GateWaits::default();
        idle.inherit(&old.holds(), at(72));
        assert!(idle.alarms(at(72 + 5), AFTER, STALE).is_empty());
    }

    #[test]
    fn each_database_waits_on_its_own() {
        let mut w = GateWaits::default();
        w.shut("orders", "a", at(0));
        w.shut("users", "b", at(30));
        w.shut("orders", "a", at(60));
        w.shut("users", "b", at(60));
        let a = w.alarms(at(60), AFTER, STALE);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].subject, "orders");
        w.shut("orders", "a", at(90));
        w.shut("users", "b", at(90));
        assert_eq!(w.alarms(at(90), AFTER, STALE).len(), 2);
        let holds = w.holds();
        assert_eq!(holds.len(), 2);
        assert_eq!(
            (holds[1].database.as_str(), holds[1].since),
            ("users", at(30))
        );
    }
}
