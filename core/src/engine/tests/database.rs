//! Database failover (rule 5): auto fails over a primary Down by quorum (or
//! in a Down region), never twice within `anti_flap`; manual pages instead;
//! Unknown does nothing.

use std::time::Duration;

use super::*;

fn world(mode: DbFailoverMode) -> World {
    let mut w = World::abc().with_db("orders", &[("o1", "a"), ("o2", "b"), ("o3", "c")], "o1");
    w.policy.db_failover = mode;
    w.policy.anti_flap = Duration::from_secs(1800);
    w
}

#[derive(Debug, PartialEq)]
enum Want {
    Nothing,
    Failover,
    Alarm(AlarmKind),
}

#[test]
fn failover_table() {
    use DbFailoverMode::{Auto, Manual};
    type Setup = fn(&mut World);
    fn primary_down(w: &mut World) {
        w.all_up(at(100));
        w.see("db:orders/o1", &["a", "b", "c"], false, at(100));
    }
    fn primary_down_by_one(w: &mut World) {
        w.all_up(at(100));
        w.see("db:orders/o1", &["c"], false, at(100));
    }
    fn primary_unknown(w: &mut World) {
        w.all_up(at(0));
        for t in w.targets() {
            if t != "db:orders/o1" {
                w.see(&t, &["a", "b", "c"], true, at(100));
            }
        }
    }
    fn region_down_primary_unknown(w: &mut World) {
        primary_unknown(w);
        w.see("svc:api@a", &["a", "b", "c"], false, at(100));
    }
    fn region_down_primary_up(w: &mut World) {
        w.region_down("a", at(100));
    }
    fn replica_down(w: &mut World) {
        w.all_up(at(100));
        w.see("db:orders/o2", &["a", "b", "c"], false, at(100));
    }
    fn recent_failover(w: &mut World) {
        primary_down(w);
        w.control.last_failover.insert("orders".to_owned(), at(0));
    }
    fn old_failover(w: &mut World) {
        primary_down(w);
        w.control
            .last_failover
            .insert("orders".to_owned(), at(100) - TimeDelta::seconds(1800));
    }
    let cases: &[(&str, DbFailoverMode, Setup, Want)] = &[
        (
            "auto fails over a dead primary",
            Auto,
            primary_down,
            Want::Failover,
        ),
        (
            "manual pages",
            Manual,
            primary_down,
            Want::Alarm(AlarmKind::ManualFailover),
        ),
        (
            "one vantage is not a quorum",
            Auto,
            primary_down_by_one,
            Want::Nothing,
        ),
        (
            "unknown primary does nothing",
            Auto,
            primary_unknown,
            Want::Nothing,
        ),
        (
            "unknown primary in a down region",
            Auto,
            region_down_primary_unknown,
            Want::Failover,
        ),
        (
            "primary up in a down region is left alone",
            Auto,
            region_down_primary_up,
            Want::Nothing,
        ),
        (
            "a replica down is not a failover",
            Auto,
            replica_down,
            Want::Nothing,
        ),
        (
            "anti_flap holds a second failover",
            Auto,
            recent_failover,
            Want::Alarm(AlarmKind::AntiFlap),
        ),
        (
            "anti_flap elapsed allows it",
            Auto,
            old_failover,
            Want::Failover,
        ),
    ];
    for (name, mode, setup, want) in cases {
        let mut w = world(*mode);
        setup(&mut w);
        let d = w.decide(at(100));
        let failovers: Vec<&Action> = d
            .plan
            .actions
            .iter()
            .filter(|a| matches!(a, Action::Failover { .. }))
            .collect();
        let db_alarms: Vec<&Alarm> = d.alarms.iter().filter(|a| a.subject == "orders").collect();
        let got = match (failovers.as_slice(), db_alarms.as_slice()) {
            ([], []) => Want::Nothing,
            ([_], []) => Want::Failover,
            ([], [a]) => Want::Alarm(a.kind),
            _ => panic!("{name}: {failovers:?} {db_alarms:?}"),
        };
        assert_eq!(&got, want, "{name}: {:?}", d.regions.get("a"));
        for a in failovers {
            assert!(
                a.reasons().iter().any(|r| r.contains("db:orders/o1")),
                "{name}"
            );
        }
        for a in db_alarms {
            assert!(!a.reasons.is_empty(), "{name}");
        }
    }
}

#[test]
fn failover_names_the_primary_and_keys_by_incident() {
    let mut w = world(DbFailoverMode::Auto);
    w.all_up(at(5000));
    w.see("db:orders/o1", &["a", "b", "c"], false, at(5000));
    let d = w.decide(at(5000));
    let Some(Action::Failover {
        database,
        from_member,
        reasons,
        ..
    }) = d.plan.actions.first()
    else {
        panic!("no failover: {:?}", d.plan);
    };
    assert_eq!((database.as_str(), from_member.as_str()), ("orders", "o1"));
    assert!(
        reasons.iter().any(|r| r.contains("down by a, b, c")),
        "{reasons:?}"
    );
    assert_eq!(d.plan.actions[0].key(), "failover/orders/o1");
    w.control.last_failover.insert("orders".to_owned(), at(0));
    let d = w.decide(at(5000));
    assert_eq!(
        d.plan.actions[0].key(),
        "failover/orders/o1/after/2025-01-01T00:00:00+00:00"
    );
}

#[test]
fn anti_flap_alarm_says_when_the_next_is_allowed() {
    let mut w = world(DbFailoverMode::Auto);
    w.all_up(at(100));
    w.see("db:orders/o1", &["a", "b", "c"], false, at(100));
    w.control.last_failover.insert("orders".to_owned(), at(0));
    let d = w.decide(at(100));
    let a = alarms(&d, AlarmKind::AntiFlap);
    assert_eq!(a.len(), 1);
    assert!(
        a[0].message.contains("2025-01-01 00:30:00 UTC"),
        "{}",
        a[0].message
    );
}

#[test]
fn a_primary_that_is_not_a_member_raises_a_topology_alarm() {
    let mut w = world(DbFailoverMode::Auto);
    if let Some(db) = w.topo.databases.get_mut("orders") {
        db.primary = "o9".to_owned();
    }
    w.all_up(at(0));
    let d = w.decide(at(0));
    assert_eq!(alarms(&d, AlarmKind::Topology).len(), 1);
    assert!(d.plan.is_empty());
    // Not known yet (empty) is silence.
    if let Some(db) = w.topo.databases.get_mut("orders") {
        db.primary = String::new();
    }
    assert!(w.decide(at(0)).alarms.is_empty());
}

#[test]
fn a_lone_primary_cannot_fail_over() {
    let mut w = World::abc().with_db("solo", &[("s1", "a")], "s1");
    w.policy.db_failover = DbFailoverMode::Auto;
    w.all_up(at(0));
    w.see("db:solo/s1", &["a", "b", "c"], false, at(0));
    let d = w.decide(at(0));
    assert!(d.plan.is_empty());
    assert_eq!(alarms(&d, AlarmKind::Topology).len(), 1);
}
