//! Region transitions: Healthy → Suspect → Down → Recovering → Healthy, and
//! failback (rule 4): after `failback_after` of steady health, in ramp steps,
//! or by hand.

use std::time::Duration;

use super::*;

fn two_records() -> World {
    World::new(
        &[("a", 100, 1), ("b", 100, 2), ("c", 100, 3)],
        &["api", "web"],
    )
}

fn auto(mut w: World) -> World {
    w.policy.failback = FailbackMode::Auto;
    w.policy.failback_after = Duration::from_secs(600);
    w.policy.ramp_step = Duration::from_secs(60);
    w
}

fn state(w: &World, region: &str) -> RegionState {
    w.control
        .regions
        .get(region)
        .cloned()
        .expect("region state")
}

fn setup_all_up(w: &mut World, t: DateTime<Utc>) {
    w.all_up(t);
}

fn setup_one_endpoint_down(w: &mut World, t: DateTime<Utc>) {
    w.all_up(t);
    w.see("svc:api@a", &["a", "b", "c"], false, t);
}

fn setup_region_down(w: &mut World, t: DateTime<Utc>) {
    w.region_down("a", t);
}

fn setup_half_back(w: &mut World, t: DateTime<Utc>) {
    w.region_down("a", t);
    w.see("svc:web@a", &["a", "b", "c"], true, t);
}

/// Only b and c report, and nothing on a's targets is fresh.
fn setup_a_unknown(w: &mut World, t: DateTime<Utc>) {
    w.all_up(t - TimeDelta::seconds(60));
    for target in ["svc:api@b", "svc:api@c", "svc:web@b", "svc:web@c"] {
        w.see(target, &["b", "c"], true, t);
    }
}

fn setup_one_down_rest_unknown(w: &mut World, t: DateTime<Utc>) {
    setup_a_unknown(w, t);
    w.see("svc:api@a", &["b", "c"], false, t);
}

#[test]
fn transition_table() {
    use RegionStatus::{Down, Healthy, Recovering, Suspect};
    type Setup = fn(&mut World, DateTime<Utc>);
    // (name, from, setup, to, keeps its since)
    let cases: &[(&str, RegionStatus, Setup, RegionStatus, bool)] = &[
        ("all up stays healthy", Healthy, setup_all_up, Healthy, true),
        (
            "one endpoint down is suspect",
            Healthy,
            setup_one_endpoint_down,
            Suspect,
            false,
        ),
        (
            "majority unknown is suspect",
            Healthy,
            setup_a_unknown,
            Suspect,
            false,
        ),
        (
            "every endpoint down goes straight to down",
            Healthy,
            setup_region_down,
            Down,
            false,
        ),
        ("suspect to down", Suspect, setup_region_down, Down, false),
        (
            "suspect stays suspect",
            Suspect,
            setup_one_endpoint_down,
            Suspect,
            true,
        ),
        (
            "suspect back to healthy",
            Suspect,
            setup_all_up,
            Healthy,
            false,
        ),
        (
            "one down, the rest unknown, is down",
            Healthy,
            setup_one_down_rest_unknown,
            Down,
            false,
        ),
        (
            "down stays down while some are down",
            Down,
            setup_half_back,
            Down,
            true,
        ),
        (
            "down stays down while unknown",
            Down,
            setup_a_unknown,
            Down,
            true,
        ),
        (
            "down to recovering when all up",
            Down,
            setup_all_up,
            Recovering,
            false,
        ),
        (
            "recovering back to down",
            Recovering,
            setup_region_down,
            Down,
            false,
        ),
        (
            "recovering restarts on a partial failure",
            Recovering,
            setup_one_endpoint_down,
            Recovering,
            false,
        ),
        (
            "recovering holds while unknown",
            Recovering,
            setup_a_unknown,
            Recovering,
            true,
        ),
    ];
    for (name, from, setup, want, keeps_since) in cases {
        let mut w = two_records();
        w.control.regions.insert(
            "a".to_owned(),
            RegionState {
                status: *from,
                since: at(0),
                reasons: vec![],
                ramp_step: None,
                failing_since: None,
            },
        );
        let t = at(100);
        setup(&mut w, t);
        let d = w.decide(t);
        let s = d.regions.get("a").expect("a");
        assert_eq!(s.status, *want, "{name}: {:?}", s.reasons);
        assert!(!s.reasons.is_empty(), "{name}: reasons");
        let since = if *keeps_since { at(0) } else { t };
        assert_eq!(s.since, since, "{name}: since");
    }
}

#[test]
fn down_reasons_name_targets_and_vantages() {
    let mut w = World::abc();
    w.region_down("a", at(1));
    let d = w.decide(at(1));
    let s = d.regions.get("a").expect("a");
    assert_eq!(s.status, RegionStatus::Down);
    let text = s.reasons.join("\n");
    assert!(text.contains("svc:api@a"), "{text}");
    assert!(text.contains("down by a, b, c"), "{text}");
}

/// (second, region a down?, status, ramp step, weights a/b/c)
type Tick = (i64, bool, RegionStatus, Option<usize>, [u32; 3]);

#[test]
fn auto_failback_waits_then_ramps_one_step_per_ramp_step() {
    let mut w = auto(World::abc());
    // (second, region a down?, expected status, ramp step, weights a/b/c)
    use RegionStatus::{Down, Healthy, Recovering};
    let timeline: &[Tick] = &[
        (0, false, Healthy, None, [100, 100, 100]),
        (10, true, Down, None, [0, 150, 150]),
        (20, false, Recovering, None, [0, 150, 150]),
        (300, false, Recovering, None, [0, 150, 150]),
        (619, false, Recovering, None, [0, 150, 150]),
        (620, false, Recovering, Some(0), [25, 138, 137]),
        (679, false, Recovering, Some(0), [25, 138, 137]),
        (680, false, Recovering, Some(1), [50, 125, 125]),
        (740, false, Healthy, None, [100, 100, 100]),
        (2000, false, Healthy, None, [100, 100, 100]),
    ];
    for (s, down, status, ramp, weights) in timeline {
        let t = at(*s);
        if *down {
            w.region_down("a", t);
        } else {
            w.all_up(t);
        }
        let d = w.step(t);
        let st = state(&w, "a");
        assert_eq!(
            (st.status, st.ramp_step),
            (*status, *ramp),
            "t={s}: {:?}",
            st.reasons
        );
        assert_eq!(w.weights("api"), weights.to_vec(), "t={s}: {:?}", d.plan);
        for a in &d.plan.actions {
            assert!(!a.reasons().is_empty());
        }
    }
}

#[test]
fn any_down_during_recovery_restarts_the_wait() {
    let mut w = auto(two_records());
    w.region_down("a", at(0));
    w.step(at(0));
    w.all_up(at(10));
    w.step(at(10));
    assert_eq!(state(&w, "a").status, RegionStatus::Recovering);
    // One endpoint of a fails at 300 (not the whole region).
    w.all_up(at(300));
    w.see("svc:api@a", &["a", "b", "c"], false, at(300));
    w.step(at(300));
    let st = state(&w, "a");
    assert_eq!((st.status, st.since), (RegionStatus::Recovering, at(300)));
    assert!(
        st.reasons.join(" ").contains("not steady"),
        "{:?}",
        st.reasons
    );
    // Back up: 600 s from 300 is needed, not from 10.
    w.all_up(at(610));
    w.step(at(610));
    assert_eq!(state(&w, "a").ramp_step, None);
    w.all_up(at(900));
    w.step(at(900));
    assert_eq!(state(&w, "a").ramp_step, Some(0));
    // A failure in the middle of the ramp takes a back to 0 and restarts.
    w.all_up(at(905));
    w.see("svc:web@a", &["a", "b", "c"], false, at(905));
    w.step(at(905));
    let st = state(&w, "a");
    assert_eq!(
        (st.status, st.ramp_step, st.since),
        (RegionStatus::Recovering, None, at(905))
    );
    assert_eq!(w.weights("api"), vec![0, 150, 150]);
}

#[test]
fn unknown_during_recovery_holds_without_reset() {
    let mut w = auto(World::abc());
    w.region_down("a", at(0));
    w.step(at(0));
    w.all_up(at(10));
    w.step(at(10));
    // Nothing fresh on a at 500: hold, keep since.
    w.see("svc:api@b", &["b", "c"], true, at(500));
    w.see("svc:api@c", &["b", "c"], true, at(500));
    w.step(at(500));
    let st = state(&w, "a");
    assert_eq!(
        (st.status, st.since, st.ramp_step),
        (RegionStatus::Recovering, at(10), None)
    );
    assert!(st.reasons.join(" ").contains("Unknown"), "{:?}", st.reasons);
    // Unknown past failback_after does not start the ramp either.
    w.see("svc:api@b", &["b", "c"], true, at(700));
    w.see("svc:api@c", &["b", "c"], true, at(700));
    w.step(at(700));
    assert_eq!(state(&w, "a").ramp_step, None);
    w.all_up(at(701));
    w.step(at(701));
    assert_eq!(state(&w, "a").ramp_step, Some(0));
}

#[test]
fn manual_failback_waits_for_an_approval_given_after_the_recovery() {
    let mut w = World::abc(); // failback manual by default
    w.region_down("a", at(0));
    w.step(at(0));
    // An approval from before this recovery does not count.
    w.control.failback_approvals.insert("a".to_owned(), at(5));
    w.all_up(at(10));
    w.step(at(10));
    w.all_up(at(50_000));
    let d = w.step(at(50_000));
    let st = state(&w, "a");
    assert_eq!((st.status, st.ramp_step), (RegionStatus::Recovering, None));
    let text = st.reasons.join(" ");
    assert!(text.contains("waiting for manual failback"), "{text}");
    assert!(text.contains("approve again"), "{text}");
    assert!(d.plan.is_empty());
    assert_eq!(w.weights("api"), vec![0, 150, 150]);

    w.control
        .failback_approvals
        .insert("a".to_owned(), at(50_001));
    w.all_up(at(50_002));
    w.step(at(50_002));
    assert_eq!(state(&w, "a").ramp_step, Some(0));
    assert_eq!(w.weights("api"), vec![25, 138, 137]);
    w.all_up(at(50_062));
    w.step(at(50_062));
    w.all_up(at(50_122));
    w.step(at(50_122));
    assert_eq!(state(&w, "a").status, RegionStatus::Healthy);
    assert_eq!(w.weights("api"), vec![100, 100, 100]);
}

#[test]
fn manual_failback_without_approval_never_ramps() {
    let mut w = World::abc();
    w.region_down("a", at(0));
    w.step(at(0));
    for s in [10, 700, 5_000, 100_000] {
        w.all_up(at(s));
        w.step(at(s));
        assert_eq!(state(&w, "a").status, RegionStatus::Recovering);
        assert_eq!(w.weights("api")[0], 0);
    }
}

#[test]
fn an_empty_ramp_fails_back_in_one_step() {
    let mut w = auto(World::abc());
    w.policy.ramp = vec![];
    w.region_down("a", at(0));
    w.step(at(0));
    w.all_up(at(10));
    w.step(at(10));
    w.all_up(at(610));
    w.step(at(610));
    assert_eq!(state(&w, "a").status, RegionStatus::Healthy);
    assert_eq!(w.weights("api"), vec![100, 100, 100]);
}

#[test]
fn a_database_member_down_makes_its_region_suspect_but_not_down() {
    let mut w = World::abc().with_db("orders", &[("o1", "a"), ("o2", "b")], "o2");
    w.all_up(at(0));
    w.see("db:orders/o1", &["a", "b", "c"], false, at(0));
    let d = w.decide(at(0));
    assert_eq!(status(&d, "a"), RegionStatus::Suspect);
    assert!(d.plan.is_empty(), "{:?}", d.plan);
}
