//! Traffic weights: evacuation and spread (rule 1), never all zero (rule 2),
//! at most `max_evacuated` (rule 3), and plans holding only changes.

use std::time::Duration;

use super::*;

#[test]
fn no_change_means_an_empty_plan() {
    let mut w = World::abc();
    w.all_up(at(0));
    let d = w.decide(at(0));
    assert!(d.plan.is_empty(), "{:?}", d.plan);
    assert!(d.alarms.is_empty(), "{:?}", d.alarms);
    assert_eq!(status(&d, "a"), RegionStatus::Healthy);
}

#[test]
fn first_decision_records_base_weights() {
    let mut w = World::abc();
    w.control.weights.clear();
    w.all_up(at(0));
    let d = w.decide(at(0));
    assert_eq!(planned(&d, "api"), Some(vec![100, 100, 100]));
    assert!(d.plan.actions[0].reasons()[0].contains("no weights recorded yet"));
}

/// (name, regions (name, weight, priority), down regions, drained regions,
///  max_evacuated, expected weights in region-name order)
type WeightCase<'a> = (
    &'a str,
    &'a [(&'a str, u32, u32)],
    &'a [&'a str],
    &'a [&'a str],
    usize,
    &'a [u32],
);

#[test]
fn weight_table() {
    let abc: &[(&str, u32, u32)] = &[("a", 100, 1), ("b", 100, 2), ("c", 100, 3)];
    let uneven: &[(&str, u32, u32)] = &[("a", 50, 1), ("b", 30, 2), ("c", 20, 3)];
    let odd: &[(&str, u32, u32)] = &[("a", 10, 3), ("b", 10, 1), ("c", 10, 2), ("d", 10, 4)];
    let standby: &[(&str, u32, u32)] = &[("a", 100, 1), ("b", 0, 2), ("c", 0, 3)];
    let cases: &[WeightCase<'_>] = &[
        ("all healthy", abc, &[], &[], 1, &[100, 100, 100]),
        (
            "one down, spread evenly",
            abc,
            &["a"],
            &[],
            1,
            &[0, 150, 150],
        ),
        (
            "spread by base weight",
            uneven,
            &["a"],
            &[],
            1,
            &[0, 60, 40],
        ),
        (
            "spread by base weight, other region",
            uneven,
            &["c"],
            &[],
            1,
            &[63, 37, 0],
        ),
        // 10 over b, c, d: 3.33 each; the spare unit goes to b (priority 1).
        (
            "remainder by priority",
            odd,
            &["a"],
            &[],
            1,
            &[0, 14, 13, 13],
        ),
        (
            "drained region to zero",
            abc,
            &[],
            &["b"],
            1,
            &[150, 0, 150],
        ),
        (
            "drain does not count toward max_evacuated",
            abc,
            &["a"],
            &["b"],
            1,
            &[0, 0, 300],
        ),
        (
            "standby takes over by priority",
            standby,
            &["a"],
            &[],
            1,
            &[0, 100, 0],
        ),
        (
            "max_evacuated 2 allows two",
            abc,
            &["a", "b"],
            &[],
            2,
            &[0, 0, 300],
        ),
        // Over the limit a is evacuated (priority 1 first) and b keeps its current 100.
        (
            "max_evacuated holds the extra",
            abc,
            &["a", "b"],
            &[],
            1,
            &[0, 100, 200],
        ),
        (
            "max_evacuated 0 evacuates nothing",
            abc,
            &["a"],
            &[],
            0,
            &[100, 100, 100],
        ),
    ];
    for (name, regions, down, drained, max_evacuated, want) in cases {
        let mut w = World::new(regions, &["api"]);
        w.policy.max_evacuated = *max_evacuated;
        // Weights as they are once any settle window has passed (two
        // regions down at once wait for it first: tests/settle.rs).
        w.policy.settle_window = Duration::ZERO;
        w.all_up(at(0));
        for r in *down {
            let vs: Vec<String> = w.vantages();
            let vs: Vec<&str> = vs.iter().map(String::as_str).collect();
            w.see(&format!("svc:api@{r}"), &vs, false, at(0));
        }
        w.control.drained = drained.iter().map(|r| (*r).to_owned()).collect();
        let d = w.decide(at(0));
        let got = planned(&d, "api").unwrap_or_else(|| w.weights("api"));
        assert_eq!(got, want.to_vec(), "{name}: {:?} {:?}", d.plan, d.alarms);
        let total: u32 = regions.iter().map(|r| r.1).sum();
        assert_eq!(got.iter().sum::<u32>(), total, "{name}: total");
        for a in &d.plan.actions {
            assert!(!a.reasons().is_empty(), "{name}: reasons");
        }
    }
}

#[test]
fn fail_open_when_every_region_looks_down() {
    let mut w = World::abc();
    w.policy.max_evacuated = 3;
    w.all_up(at(0));
    for r in ["a", "b", "c"] {
        w.see(&format!("svc:api@{r}"), &["a", "b", "c"], false, at(0));
    }
    let d = w.decide(at(0));
    assert!(d.plan.is_empty(), "{:?}", d.plan);
    let fo = alarms(&d, AlarmKind::FailOpen);
    assert_eq!(fo.len(), 1);
    assert_eq!(
        fo[0].message,
        "fail open: every region of api looks down; keeping current weights"
    );
    assert!(
        fo[0].reasons.iter().any(|r| r.contains("svc:api@b")),
        "{:?}",
        fo[0].reasons
    );
}

#[test]
fn fail_open_when_drains_would_zero_everything() {
    for (drained, down, word) in [
        (&["a", "b", "c"][..], &[][..], "is drained"),
        (&["a", "b"][..], &["c"][..], "is drained or looks down"),
    ] {
        let mut w = World::abc();
        w.all_up(at(0));
        for r in down {
            w.see(&format!("svc:api@{r}"), &["a", "b", "c"], false, at(0));
        }
        w.control.drained = drained.iter().map(|r| (*r).to_owned()).collect();
        let d = w.decide(at(0));
        assert!(d.plan.is_empty(), "{:?}", d.plan);
        let fo = alarms(&d, AlarmKind::FailOpen);
        assert_eq!(fo.len(), 1, "{drained:?}");
        assert!(fo[0].message.contains(word), "{}", fo[0].message);
    }
}

#[test]
fn fail_open_with_a_single_region_down() {
    let mut w = World::new(&[("a", 100, 1)], &["api"]);
    w.see("svc:api@a", &["a", "b"], false, at(0));
    let d = w.decide(at(0));
    assert_eq!(status(&d, "a"), RegionStatus::Down);
    assert!(d.plan.is_empty());
    assert_eq!(alarms(&d, AlarmKind::FailOpen).len(), 1);
}

#[test]
fn max_evacuated_alarm_names_who_is_held_and_why() {
    let mut w = World::abc();
    // Past the settle window two regions down at once wait for.
    w.policy.settle_window = Duration::ZERO;
    w.all_up(at(0));
    w.see("svc:api@a", &["a", "b", "c"], false, at(0));
    w.see("svc:api@b", &["a", "b", "c"], false, at(0));
    let d = w.decide(at(0));
    let me = alarms(&d, AlarmKind::MaxEvacuated);
    assert_eq!(me.len(), 1);
    let text = me[0].reasons.join("\n");
    assert!(text.contains("evacuated: a"), "{text}");
    assert!(text.contains("b: kept at its current weight 100"), "{text}");
    assert!(text.contains("svc:api@b"), "{text}");
}

#[test]
fn max_evacuated_keeps_the_region_already_out() {
    // b failed first and is at 0 already; a fails later: a is the extra
    // (once the settle window a second region failing opens has passed).
    let mut w = World::abc();
    w.policy.settle_window = Duration::ZERO;
    w.region_down("b", at(0));
    w.step(at(0));
    assert_eq!(w.weights("api"), vec![150, 0, 150]);
    w.region_down("b", at(10));
    w.see("svc:api@a", &["a", "b", "c"], false, at(10));
    let d = w.step(at(10));
    assert_eq!(w.weights("api"), vec![150, 0, 150], "{:?}", d.plan);
    assert_eq!(alarms(&d, AlarmKind::MaxEvacuated).len(), 1);
}

#[test]
fn a_recovering_region_gives_its_slot_to_a_real_failure() {
    // a recovered and waits for manual failback; then b dies.
    let mut w = World::abc();
    w.region_down("a", at(0));
    w.step(at(0));
    w.all_up(at(10));
    w.step(at(10));
    assert_eq!(w.control.regions["a"].status, RegionStatus::Recovering);
    assert_eq!(w.weights("api"), vec![0, 150, 150]);
    w.region_down("b", at(20));
    let d = w.step(at(20));
    assert_eq!(w.weights("api"), vec![150, 0, 150], "{:?}", d.plan);
    // a is still Recovering as a region; only this record serves from it.
    assert_eq!(status(&d, "a"), RegionStatus::Recovering);
    let me = alarms(&d, AlarmKind::MaxEvacuated);
    assert_eq!(me.len(), 1);
    assert!(
        me[0].reasons.join("\n").contains("a: failback forced"),
        "{:?}",
        me[0].reasons
    );
    let reasons = d.plan.actions[0].reasons().join("\n");
    assert!(
        reasons.contains("failback forced by max_evacuated"),
        "{reasons}"
    );
}

#[test]
fn a_single_endpoint_down_evacuates_that_record_in_that_region_only() {
    let mut w = World::new(
        &[("a", 100, 1), ("b", 100, 2), ("c", 100, 3)],
        &["api", "web"],
    );
    w.all_up(at(0));
    w.see("svc:api@a", &["b", "c"], false, at(0));
    let d = w.decide(at(0));
    assert_eq!(status(&d, "a"), RegionStatus::Suspect);
    assert_eq!(planned(&d, "api"), Some(vec![0, 150, 150]));
    assert_eq!(planned(&d, "web"), None);
    let reasons = d.plan.actions[0].reasons().join("\n");
    assert!(
        reasons.contains("endpoint svc:api@a is Down by quorum"),
        "{reasons}"
    );
    assert!(reasons.contains("down by b, c"), "{reasons}");
}

#[test]
fn an_endpoint_seen_down_by_one_vantage_is_not_evacuated() {
    let mut w = World::abc();
    w.all_up(at(0));
    w.see("svc:api@a", &["c"], false, at(0));
    let d = w.decide(at(0));
    assert!(d.plan.is_empty(), "{:?}", d.plan);
}

#[test]
fn unknown_endpoints_keep_their_disposition() {
    let mut w = World::new(
        &[("a", 100, 1), ("b", 100, 2), ("c", 100, 3)],
        &["api", "web"],
    );
    w.all_up(at(0));
    w.see("svc:api@a", &["a", "b", "c"], false, at(0));
    w.step(at(0));
    assert_eq!(w.weights("api"), vec![0, 150, 150]);
    // Probes go quiet on api@a: it stays out, nothing changes.
    for t in [
        "svc:web@a",
        "svc:api@b",
        "svc:api@c",
        "svc:web@b",
        "svc:web@c",
    ] {
        w.see(t, &["a", "b", "c"], true, at(60));
    }
    let d = w.step(at(60));
    assert!(d.plan.is_empty(), "{:?}", d.plan);
    assert_eq!(w.weights("api"), vec![0, 150, 150]);
    // Seen up by quorum again: it serves again.
    w.all_up(at(61));
    let d = w.step(at(61));
    assert_eq!(planned(&d, "api"), Some(vec![100, 100, 100]));
}

#[test]
fn unknown_region_does_not_move_traffic() {
    let mut w = World::abc();
    w.all_up(at(0));
    // Only a reports about a; b and c cannot reach it (no reports).
    w.see("svc:api@b", &["b", "c"], true, at(30));
    w.see("svc:api@c", &["b", "c"], true, at(30));
    w.see("svc:api@a", &["a"], false, at(30));
    let d = w.decide(at(30));
    assert_eq!(
        d.verdicts.get("svc:api@a").map(|v| v.verdict),
        Some(Verdict::Unknown)
    );
    assert!(d.plan.is_empty(), "{:?}", d.plan);
}

#[test]
fn undrain_restores_the_region() {
    let mut w = World::abc();
    w.all_up(at(0));
    w.control.drained.insert("a".to_owned());
    w.step(at(0));
    assert_eq!(w.weights("api"), vec![0, 150, 150]);
    w.control.drained.clear();
    w.all_up(at(1));
    let d = w.step(at(1));
    assert_eq!(planned(&d, "api"), Some(vec![100, 100, 100]));
    assert!(
        d.plan.actions[0]
            .reasons()
            .iter()
            .any(|r| r.contains("base weight"))
    );
}

#[test]
fn set_weights_key_is_stable_and_content_addressed() {
    let mut w = World::abc();
    w.region_down("a", at(0));
    let d1 = w.decide(at(0));
    let d2 = w.decide(at(1));
    assert_eq!(d1.plan.actions[0].key(), "weights/api/a=0,b=150,c=150");
    assert_eq!(d1.plan.actions[0].key(), d2.plan.actions[0].key());
}

#[test]
fn an_empty_topology_decides_nothing() {
    let d = decide(
        &Topology::default(),
        &HealthBook::new(),
        &ControlState::default(),
        &Policy::default(),
        at(0),
    );
    assert!(d.plan.is_empty() && d.alarms.is_empty() && d.regions.is_empty());
    assert!(d.verdicts.is_empty());
}

#[test]
fn an_endpoint_in_an_unlisted_region_is_still_weighted() {
    let mut w = World::abc();
    if let Some(r) = w.topo.records.get_mut("api") {
        r.endpoints.insert(
            "z".to_owned(),
            Endpoint {
                target: TargetId::service("api", "z"),
                weight: 100,
            },
        );
    }
    w.control.weights = w.base_weights();
    w.all_up(at(0));
    w.see("svc:api@z", &["a", "b", "c"], true, at(0));
    assert!(w.decide(at(0)).plan.is_empty());
    w.see("svc:api@z", &["a", "b", "c"], false, at(0));
    let d = w.decide(at(0));
    assert_eq!(planned(&d, "api"), Some(vec![134, 133, 133, 0]));
}
