//! A global outage does not evacuate (issue 11, item 7): while more than one
//! region is failing, evacuations wait for the settle window; with every
//! region failing the weights stay as they were and an alarm says why; a
//! region failing alone is never delayed.

use std::time::Duration;

use super::*;

/// Every vantage sees everything up at `t`, except the api endpoints of
/// `down` (seen down `fall` times: Down by quorum) and of `trending` (one
/// failed report from every vantage: failing, not yet Down).
fn observe(w: &mut World, t: DateTime<Utc>, down: &[&str], trending: &[&str]) {
    w.all_up(t);
    let vantages = w.vantages();
    let vs: Vec<&str> = vantages.iter().map(String::as_str).collect();
    for r in down {
        w.see(&format!("svc:api@{r}"), &vs, false, t);
    }
    for r in trending {
        w.report(&format!("svc:api@{r}"), &vs, false, 1, t);
    }
}

fn settled(d: &Decision) -> Vec<&Alarm> {
    alarms(d, AlarmKind::SettleWindow)
}

#[test]
fn a_region_failing_alone_is_evacuated_at_once() {
    // Its primary goes with it, so the replicas elsewhere lose their source
    // and are Down too: database members must not open the window.
    let mut w = World::abc().with_db("orders", &[("o1", "a"), ("o2", "b"), ("o3", "c")], "o1");
    w.all_up(at(0));
    w.step(at(0));
    observe(&mut w, at(10), &["a"], &[]);
    for m in ["db:orders/o1", "db:orders/o2", "db:orders/o3"] {
        w.see(m, &["a", "b", "c"], false, at(10));
    }
    let d = w.step(at(10));
    assert_eq!(status(&d, "b"), RegionStatus::Suspect, "replica o2 is Down");
    assert_eq!(w.weights("api"), vec![0, 150, 150], "{:?}", d.alarms);
    assert!(settled(&d).is_empty(), "{:?}", d.alarms);
    assert_eq!(d.regions["a"].failing_since, Some(at(10)));
    assert_eq!(d.regions["b"].failing_since, None);
}

#[test]
fn a_region_down_while_another_trends_down_waits_and_says_why() {
    let mut w = World::abc();
    w.all_up(at(0));
    w.step(at(0));
    observe(&mut w, at(10), &["a"], &["b"]);
    let d = w.step(at(10));
    assert_eq!(status(&d, "a"), RegionStatus::Down);
    assert_eq!(status(&d, "b"), RegionStatus::Suspect);
    assert!(
        d.regions["b"]
            .reasons
            .join("\n")
            .contains("svc:api@b failing"),
        "{:?}",
        d.regions["b"].reasons
    );
    assert_eq!(planned(&d, "api"), None, "{:?}", d.plan);
    assert_eq!(w.weights("api"), vec![100, 100, 100]);
    let s = settled(&d);
    assert_eq!(s.len(), 1, "{:?}", d.alarms);
    assert_eq!(s[0].subject, "a,b");
    let why = s[0].reasons.join("\n");
    assert!(why.contains("2 regions failing at once"), "{why}");
    assert!(
        why.contains("the window closes at 2025-01-01 00:00:40 UTC"),
        "{why}"
    );
    assert!(
        why.contains("held at their current weights in 1 record(s): api"),
        "{why}"
    );

    // b recovers: a fails alone now, and is evacuated at once.
    observe(&mut w, at(12), &["a"], &[]);
    let d = w.step(at(12));
    assert_eq!(w.weights("api"), vec![0, 150, 150], "{:?}", d.alarms);
    assert!(settled(&d).is_empty());
}

#[test]
fn failing_since_survives_suspect_to_down_and_clears_when_healthy() {
    let mut w = World::abc();
    w.all_up(at(0));
    w.step(at(0));
    observe(&mut w, at(10), &[], &["b"]);
    let d = w.step(at(10));
    assert_eq!(d.regions["b"].failing_since, Some(at(10)));
    observe(&mut w, at(12), &["b"], &[]);
    let d = w.step(at(12));
    assert_eq!(status(&d, "b"), RegionStatus::Down);
    assert_eq!(
        d.regions["b"].failing_since,
        Some(at(10)),
        "kept across Suspect → Down"
    );
    observe(&mut w, at(14), &[], &[]);
    let d = w.step(at(14));
    assert_eq!(status(&d, "b"), RegionStatus::Recovering);
    assert_eq!(d.regions["b"].failing_since, None);
}

#[test]
fn two_regions_down_wait_for_the_window_then_are_evacuated() {
    let mut w = World::abc();
    w.policy.max_evacuated = 2;
    w.all_up(at(0));
    w.step(at(0));
    // (time, weights after the step, settle alarm raised)
    let steps: &[(i64, [u32; 3], bool)] = &[
        (10, [100, 100, 100], true),
        (25, [100, 100, 100], true),
        (39, [100, 100, 100], true),
        // 10 + settle_window (30s): the window has passed.
        (40, [0, 0, 300], false),
        (50, [0, 0, 300], false),
    ];
    for (t, want, alarm) in steps {
        observe(&mut w, at(*t), &["a", "b"], &[]);
        let d = w.step(at(*t));
        assert_eq!(w.weights("api"), want.to_vec(), "t={t}: {:?}", d.alarms);
        assert_eq!(!settled(&d).is_empty(), *alarm, "t={t}: {:?}", d.alarms);
    }
}

#[test]
fn a_region_held_by_the_window_is_explained_in_the_weights_reasons() {
    // No weights recorded yet: the first plan holds a and b at their base
    // weights and says why.
    let mut w = World::abc();
    w.policy.max_evacuated = 2;
    w.control.weights.clear();
    observe(&mut w, at(10), &["a", "b"], &[]);
    let d = w.decide(at(10));
    assert_eq!(planned(&d, "api"), Some(vec![100, 100, 100]));
    let reasons = d.plan.actions[0].reasons().join("\n");
    assert!(
        reasons.contains(
            "a: 100 (held at current weight until 2025-01-01 00:00:40 UTC: 2 regions failing at once"
        ),
        "{reasons}"
    );
    assert!(reasons.contains("region a is Down"), "{reasons}");
}

#[test]
fn every_region_down_keeps_the_weights_and_says_why() {
    // A bad deploy everywhere: a is seen Down first while b and c trend
    // down, then all three are Down. Nothing moves, before or after the
    // window, whatever max_evacuated allows.
    let mut w = World::abc();
    w.all_up(at(0));
    w.step(at(0));
    observe(&mut w, at(10), &["a"], &["b", "c"]);
    let d = w.step(at(10));
    assert_eq!(w.weights("api"), vec![100, 100, 100], "{:?}", d.plan);
    assert_eq!(settled(&d).len(), 1);
    for t in [12, 41, 300] {
        observe(&mut w, at(t), &["a", "b", "c"], &[]);
        let d = w.step(at(t));
        assert!(d.plan.is_empty(), "t={t}: {:?}", d.plan);
        assert_eq!(w.weights("api"), vec![100, 100, 100], "t={t}");
        let fo = alarms(&d, AlarmKind::FailOpen);
        assert_eq!(fo.len(), 1, "t={t}: {:?}", d.alarms);
        assert_eq!(
            fo[0].message,
            "fail open: every region of api looks down; keeping current weights"
        );
        let why = &fo[0].reasons[0];
        assert!(why.contains("failing by quorum at once (3)"), "{why}");
        assert!(why.contains("a bad deploy, a shared dependency"), "{why}");
        // The global outage is the fail-open's, not max_evacuated's.
        assert!(alarms(&d, AlarmKind::MaxEvacuated).is_empty(), "t={t}");
    }
}

#[test]
fn a_region_out_before_the_outage_stays_out_and_the_rest_keep_theirs() {
    // a failed alone and was evacuated; later b and c fail too. The
    // weights stay as they were: a at 0, b and c serving.
    let mut w = World::abc();
    w.all_up(at(0));
    w.step(at(0));
    observe(&mut w, at(10), &["a"], &[]);
    w.step(at(10));
    assert_eq!(w.weights("api"), vec![0, 150, 150]);
    for t in [100, 200] {
        observe(&mut w, at(t), &["a", "b", "c"], &[]);
        let d = w.step(at(t));
        assert!(d.plan.is_empty(), "t={t}: {:?}", d.plan);
        assert_eq!(w.weights("api"), vec![0, 150, 150], "t={t}");
        assert_eq!(alarms(&d, AlarmKind::FailOpen).len(), 1);
    }
}

#[test]
fn a_drained_region_does_not_open_the_window() {
    // c is drained for maintenance and its api is down; then a dies.
    let mut w = World::abc();
    w.control.drained.insert("c".to_owned());
    w.all_up(at(0));
    w.step(at(0));
    assert_eq!(w.weights("api"), vec![150, 150, 0]);
    observe(&mut w, at(10), &["a", "c"], &[]);
    let d = w.step(at(10));
    assert_eq!(w.weights("api"), vec![0, 300, 0], "{:?}", d.alarms);
    assert!(settled(&d).is_empty());
}

#[test]
fn a_second_region_failing_later_waits_from_its_own_start() {
    // a has been out since 10; b fails at 100: the window runs from 100.
    let mut w = World::abc();
    w.policy.max_evacuated = 2;
    w.all_up(at(0));
    w.step(at(0));
    observe(&mut w, at(10), &["a"], &[]);
    w.step(at(10));
    assert_eq!(w.weights("api"), vec![0, 150, 150]);
    for (t, want) in [
        (100, [0, 150, 150]),
        (129, [0, 150, 150]),
        (130, [0, 0, 300]),
    ] {
        observe(&mut w, at(t), &["a", "b"], &[]);
        let d = w.step(at(t));
        assert_eq!(w.weights("api"), want.to_vec(), "t={t}: {:?}", d.alarms);
    }
}

#[test]
fn no_region_is_held_past_the_window_after_it_went_down() {
    // a goes Down at 10 while b trends down; b's trouble keeps restarting
    // (Down, then failing again from 30): the window of the pair would
    // reopen, but a is held at most settle_window (30s) past 10.
    let mut w = World::abc();
    w.all_up(at(0));
    w.step(at(0));
    observe(&mut w, at(10), &["a"], &["b"]);
    w.step(at(10));
    assert_eq!(w.weights("api"), vec![100, 100, 100]);
    // b's failure starts over at 30 (a fresh failing streak after a pass
    // that no decision saw as healthy): its failing_since moves to 30.
    w.control.regions.get_mut("b").expect("b").failing_since = Some(at(30));
    observe(&mut w, at(30), &["a"], &["b"]);
    let d = w.step(at(30));
    assert_eq!(w.weights("api"), vec![100, 100, 100], "{:?}", d.alarms);
    observe(&mut w, at(40), &["a"], &["b"]);
    let d = w.step(at(40));
    assert_eq!(w.weights("api"), vec![0, 150, 150], "{:?}", d.alarms);
    // The window of the pair (30 + 30s) is still open, but it holds no one.
    assert!(settled(&d).is_empty(), "{:?}", d.alarms);
}

#[test]
fn a_zero_window_does_not_hold() {
    let mut w = World::abc();
    w.policy.max_evacuated = 2;
    w.policy.settle_window = Duration::ZERO;
    w.all_up(at(0));
    w.step(at(0));
    observe(&mut w, at(10), &["a", "b"], &[]);
    let d = w.step(at(10));
    assert_eq!(w.weights("api"), vec![0, 0, 300], "{:?}", d.alarms);
}
