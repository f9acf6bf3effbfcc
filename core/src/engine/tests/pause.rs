//! Paused automation (rule 6) and reasons everywhere (rule 7).

use super::*;

fn failing_world() -> World {
    let mut w = World::abc().with_db("orders", &[("o1", "a"), ("o2", "b")], "o1");
    w.policy.db_failover = DbFailoverMode::Auto;
    w.region_down("a", at(0));
    w.see("db:orders/o1", &["a", "b", "c"], false, at(0));
    w
}

#[test]
fn paused_plans_are_computed_as_usual_and_marked() {
    let mut w = failing_world();
    let running = w.decide(at(0));
    w.control.paused = true;
    let paused = w.decide(at(0));
    assert!(!running.plan.paused);
    assert!(paused.plan.paused);
    assert_eq!(paused.plan.actions.len(), running.plan.actions.len());
    assert_eq!(paused.plan.actions.len(), 2, "{:?}", paused.plan);
    for (p, r) in paused.plan.actions.iter().zip(&running.plan.actions) {
        assert_eq!(p.key(), r.key());
        assert_eq!(p.reasons().last().map(String::as_str), Some(PAUSED_REASON));
        assert!(!r.reasons().iter().any(|x| x == PAUSED_REASON));
    }
    assert_eq!(paused.regions, running.regions);
    assert_eq!(paused.alarms, running.alarms);
}

#[test]
fn paused_with_nothing_to_do_is_an_empty_plan() {
    let mut w = World::abc();
    w.control.paused = true;
    w.all_up(at(0));
    let d = w.decide(at(0));
    assert!(d.plan.paused && d.plan.is_empty());
}

#[test]
fn every_action_and_alarm_carries_readable_reasons() {
    let mut w = failing_world();
    w.see("svc:api@b", &["a", "b", "c"], false, at(0)); // over max_evacuated
    let d = w.decide(at(0));
    assert!(!d.plan.actions.is_empty());
    assert!(!d.alarms.is_empty());
    for a in &d.plan.actions {
        assert!(!a.reasons().is_empty(), "{a:?}");
        assert!(a.reasons().iter().all(|r| !r.trim().is_empty()));
    }
    for a in &d.alarms {
        assert!(!a.message.is_empty() && !a.reasons.is_empty(), "{a:?}");
    }
    let text = format!("{:?}", d.plan);
    assert!(
        text.contains("svc:api@a") && text.contains("down by a, b, c"),
        "{text}"
    );
}

#[test]
fn decisions_serialize_for_the_store_and_the_cli() {
    let d = failing_world().decide(at(0));
    let json = serde_json::to_string(&d).expect("serializable");
    let back: Decision = serde_json::from_str(&json).expect("round trip");
    assert_eq!(back, d);
    assert!(json.contains("\"action\":\"set_weights\""), "{json}");
}
