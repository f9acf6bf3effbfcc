//! Two regions and a witness (issue 11, item 6): a region lost together with
//! its probe is Down by the other region's and the witness's votes, so it is
//! evacuated and its primary failed over; without the witness the lone
//! surviving vantage is below the quorum of 2 and nothing happens.

use super::*;

/// Regions a (primary o1) and b (replica o2), one record, quorum 2, auto
/// failover; `witness` adds vantage w. At 0 every vantage sees all up.
fn two_regions(witness: bool) -> World {
    let mut w = World::new(&[("a", 100, 1), ("b", 100, 2)], &["api"]).with_db(
        "orders",
        &[("o1", "a"), ("o2", "b")],
        "o1",
    );
    if witness {
        w = w.with_witness("w");
    }
    w.policy.quorum = 2;
    w.policy.db_failover = DbFailoverMode::Auto;
    w.all_up(at(0));
    w
}

/// Region a is gone with its probe: from `t` only b (and w, if there) report,
/// seeing a's endpoint and primary down and b's targets up.
fn lose_region_a(w: &mut World, t: DateTime<Utc>) {
    let survivors: Vec<String> = w.vantages().into_iter().filter(|v| v != "a").collect();
    let vs: Vec<&str> = survivors.iter().map(String::as_str).collect();
    w.see("svc:api@a", &vs, false, t);
    w.see("db:orders/o1", &vs, false, t);
    // b's replica lost its source: its replication check fails too.
    w.see("db:orders/o2", &vs, false, t);
    w.see("svc:api@b", &vs, true, t);
}

fn failover_planned(d: &Decision) -> bool {
    d.plan.actions.iter().any(|a| {
        matches!(a, Action::Failover { database, from_member, .. }
            if database == "orders" && from_member == "o1")
    })
}

#[test]
fn two_regions_fail_over_only_with_a_witness() {
    // (name, witness, when a is lost (a's last reports, all Up, are at 0;
    //  stale_after is 3s), region a's status, evacuated, failover planned)
    let cases: &[(&str, bool, i64, RegionStatus, bool, bool)] = &[
        (
            "witness, a's probe already stale",
            true,
            10,
            RegionStatus::Down,
            true,
            true,
        ),
        // a's probe died a moment ago: its last Up votes are still fresh,
        // but b and w make the quorum of 2 for Down on their own.
        (
            "witness, a's last votes still fresh",
            true,
            1,
            RegionStatus::Down,
            true,
            true,
        ),
        (
            "no witness, a's probe already stale",
            false,
            10,
            RegionStatus::Suspect,
            false,
            false,
        ),
        (
            "no witness, a's last votes still fresh",
            false,
            1,
            RegionStatus::Suspect,
            false,
            false,
        ),
    ];
    for (name, witness, t, want_status, want_evacuated, want_failover) in cases {
        let mut w = two_regions(*witness);
        lose_region_a(&mut w, at(*t));
        let d = w.decide(at(*t));
        assert_eq!(
            status(&d, "a"),
            *want_status,
            "{name}: {:?}",
            d.regions["a"].reasons
        );
        let weights = planned(&d, "api");
        if *want_evacuated {
            assert_eq!(weights, Some(vec![0, 200]), "{name}: {:?}", d.plan);
        } else {
            assert_eq!(weights, None, "{name}: {:?}", d.plan);
        }
        assert_eq!(failover_planned(&d), *want_failover, "{name}: {:?}", d.plan);
        if !*want_failover {
            // Nothing at all: not even a region verdict that could page.
            assert!(d.plan.is_empty(), "{name}: {:?}", d.plan);
            let v = &d.verdicts["svc:api@a"];
            assert_eq!(v.verdict, Verdict::Unknown, "{name}: {v:?}");
        }
        // A region failing alone is never held by the settle window, even
        // though b's replica is Down too (database members do not count).
        assert!(
            alarms(&d, AlarmKind::SettleWindow).is_empty(),
            "{name}: {:?}",
            d.alarms
        );
    }
}

#[test]
fn the_witness_votes_but_is_never_weighted() {
    let mut w = two_regions(true);
    lose_region_a(&mut w, at(10));
    let d = w.step(at(10));
    // The witness is no region: it has no state and no weight.
    assert!(!d.regions.contains_key("w"));
    assert_eq!(
        w.control.weights["api"].keys().collect::<Vec<_>>(),
        ["a", "b"]
    );
    // Its vote is named in the verdict that evacuated a.
    let v = &d.verdicts["svc:api@a"];
    assert_eq!((v.verdict, v.down), (Verdict::Down, 2));
    assert!(v.reasons[0].contains("down by b, w"), "{:?}", v.reasons);
    assert_eq!(
        w.topo.vantages().collect::<Vec<_>>(),
        ["a", "b", "w"],
        "regions then witnesses"
    );
}

#[test]
fn both_regions_down_with_a_witness_keeps_the_weights() {
    // A global outage seen by every vantage: nothing is evacuated.
    let mut w = two_regions(true);
    let vs = ["a", "b", "w"];
    w.see("svc:api@a", &vs, false, at(10));
    w.see("svc:api@b", &vs, false, at(10));
    let d = w.step(at(10));
    assert_eq!(status(&d, "a"), RegionStatus::Down);
    assert_eq!(status(&d, "b"), RegionStatus::Down);
    assert_eq!(planned(&d, "api"), None, "{:?}", d.plan);
    assert_eq!(w.weights("api"), vec![100, 100]);
    assert_eq!(alarms(&d, AlarmKind::FailOpen).len(), 1, "{:?}", d.alarms);
}
