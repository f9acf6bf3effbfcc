use std::collections::BTreeSet;
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::gtid::MariaDbGtids;
use crate::snapshot::{ContactError, ContactErrorKind};
use crate::spec::{Credentials, MemberSpec};

const PRIMARY_ID: u32 = 1001;

fn pos(s: &str) -> Position {
    Position::MariaDb(s.parse::<MariaDbGtids>().unwrap())
}

fn spec(id: &str) -> MemberSpec {
    MemberSpec::new(id, "east", format!("{id}:3306"), Credentials::new("u", "p"))
}

/// A healthy replica of `p` whose server id is `origin`.
fn replica(id: &str, origin: u32, at: &str) -> MemberState {
    let mut m = MemberState::unread(&spec(id));
    m.reachable = true;
    m.role = Role::Replica;
    m.origin = Some(origin.to_string());
    m.read_only = Some(true);
    m.source = Some("p".into());
    m.io_running = true;
    m.sql_running = true;
    m.lag = Some(Duration::ZERO);
    m.position = Some(pos(at));
    m.received = Some(pos(at));
    m
}

fn primary(reachable: bool, at: &str) -> MemberState {
    let mut m = MemberState::unread(&spec("p"));
    m.origin = Some(PRIMARY_ID.to_string());
    if reachable {
        m.reachable = true;
        m.role = Role::Primary;
        m.read_only = Some(false);
        m.position = Some(pos(at));
        m.received = Some(pos(at));
    } else {
        m.contact_error = Some(ContactError {
            kind: ContactErrorKind::Unreachable,
            detail: "connection refused".into(),
        });
    }
    m
}

fn none() -> LagHistory {
    LagHistory::default()
}

fn snap(members: Vec<MemberState>) -> Snapshot {
    Snapshot::assemble(members)
}

fn rules() -> Rules {
    Rules {
        max_lag: Duration::from_secs(10),
        ..Rules::default()
    }
}

fn reasons_of<'a>(c: &'a Choice, id: &str) -> &'a [String] {
    &c.excluded.iter().find(|e| e.member == id).unwrap().reasons
}

#[test]
fn the_most_advanced_replica_wins() {
    let s = snap(vec![
        primary(false, ""),
        replica("b", 1002, "0-1001-100"),
        replica("c", 1003, "0-1001-90"),
    ]);
    assert_eq!(s.primary.as_deref(), Some("p"));
    let c = choose_candidate(&s, &rules(), &none()).unwrap();
    assert_eq!(c.member, "b");
    assert!(c.reasons[0].contains("most advanced"), "{:?}", c.reasons);
    assert_eq!(reasons_of(&c, "c"), ["behind b: lacks 0-1001-91..100"]);
    assert_eq!(reasons_of(&c, "p"), ["it is the primary being replaced"]);
    assert_eq!(c.catch_up_to, Some(pos("0-1001-100")));
}

#[test]
fn received_but_unapplied_transactions_count_as_advanced() {
    let mut b = replica("b", 1002, "0-1001-90");
    b.received = Some(pos("0-1001-100"));
    let s = snap(vec![primary(false, ""), b, replica("c", 1003, "0-1001-95")]);
    let c = choose_candidate(&s, &rules(), &none()).unwrap();
    assert_eq!(c.member, "b");
    assert_eq!(c.catch_up_to, Some(pos("0-1001-100")));
}

#[test]
fn ties_go_to_healthy_regions_then_priority_then_prefer() {
    let base = || {
        vec![
            primary(false, ""),
            replica("b", 1002, "0-1001-100"),
            replica("c", 1003, "0-1001-100"),
        ]
    };
    // Ids break a complete tie.
    assert_eq!(
        choose_candidate(&snap(base()), &rules(), &none())
            .unwrap()
            .member,
        "b"
    );

    let mut m = base();
    m[1].region_priority = 2;
    m[2].region_priority = 1;
    let c = choose_candidate(&snap(m), &rules(), &none()).unwrap();
    assert_eq!(c.member, "c");
    assert!(reasons_of(&c, "b")[0].contains("lower priority"));

    let mut m = base();
    m[2].region = "west".into();
    m[2].region_priority = 0;
    m[1].region_priority = 5;
    let r = Rules {
        down_regions: BTreeSet::from(["west".to_string()]),
        ..rules()
    };
    let c = choose_candidate(&snap(m), &r, &none()).unwrap();
    assert_eq!(c.member, "b");
    assert!(reasons_of(&c, "c")[0].contains("region west is down"));

    let mut m = base();
    m[2].promotion = Promotion::Prefer;
    let c = choose_candidate(&snap(m), &rules(), &none()).unwrap();
    assert_eq!(c.member, "c");
    assert!(c.reasons.iter().any(|r| r.contains("prefer")));
}

#[test]
fn a_down_region_is_used_when_nothing_else_qualifies() {
    let mut m = vec![primary(false, ""), replica("b", 1002, "0-1001-100")];
    m[1].region = "west".into();
    let r = Rules {
        down_regions: BTreeSet::from(["west".to_string()]),
        ..rules()
    };
    let c = choose_candidate(&snap(m), &r, &none()).unwrap();
    assert_eq!(c.member, "b");
    assert!(c.reasons.iter().any(|r| r.contains("down")));
}

#[test]
fn exclusions_name_their_reason() {
    let mut lagging = replica("lag", 1002, "0-1001-100");
    lagging.lag = Some(Duration::from_secs(30));
    let mut never = replica("never", 1003, "0-1001-100");
    never.promotion = Promotion::MustNot;
    let mut broken = replica("broken", 1004, "0-1001-100");
    broken.sql_error = Some("error 1062: Duplicate entry".into());
    broken.sql_running = false;
    let mut stopped = replica("stopped", 1005, "0-1001-90");
    stopped.sql_running = false;
    stopped.lag = None;
    stopped.received = Some(pos("0-1001-100"));
    let mut gone = MemberState::unread(&spec("gone"));
    gone.contact_error = Some(ContactError {
        kind: ContactErrorKind::Unreachable,
        detail: "timed out".into(),
    });
    let mut fenced = replica("fenced", 1006, "0-1001-100");
    fenced.role = Role::Fenced;
    fenced.source = None;
    let s = snap(vec![
        primary(false, ""),
        lagging,
        never,
        broken,
        stopped,
        gone,
        fenced,
    ]);
    let Err(NoChoice::NoCandidate { excluded }) = choose_candidate(&s, &rules(), &none()) else {
        panic!("expected no candidate");
    };
    let why = |id: &str| {
        excluded
            .iter()
            .find(|e| e.member == id)
            .unwrap()
            .reasons
            .join("; ")
    };
    assert!(
        why("lag").starts_with("lag 30s over the limit of 10s"),
        "{}",
        why("lag")
    );
    assert_eq!(why("never"), "promotion rule must_not");
    assert_eq!(
        why("broken"),
        "replication applier failed: error 1062: Duplicate entry"
    );
    assert!(why("stopped").contains("stopped with received transactions not applied"));
    assert_eq!(why("gone"), "unreachable: timed out");
    assert_eq!(why("fenced"), "not a replica (role fenced)");
    assert_eq!(excluded.len(), 7, "every member is listed, the primary too");
}

#[test]
fn a_stopped_applier_with_nothing_left_to_apply_is_still_a_candidate() {
    let mut b = replica("b", 1002, "0-1001-100");
    b.sql_running = false;
    b.io_running = false;
    b.lag = None;
    let s = snap(vec![primary(false, ""), b]);
    assert_eq!(choose_candidate(&s, &rules(), &none()).unwrap().member, "b");
}

#[test]
fn the_receiver_matters_only_while_the_primary_is_reachable() {
    let mut b = replica("b", 1002, "0-1001-100");
    b.io_running = false;
    b.io_error = Some("error 2003: Can't connect".into());
    let s = snap(vec![primary(false, ""), b.clone()]);
    assert_eq!(choose_candidate(&s, &rules(), &none()).unwrap().member, "b");
    let s = snap(vec![primary(true, "0-1001-100"), b]);
    let Err(NoChoice::NoCandidate { excluded }) = choose_candidate(&s, &rules(), &none()) else {
        panic!("expected no candidate");
    };
    assert!(excluded[1].reasons[0].contains("cannot receive from the reachable primary"));
}

#[test]
fn errant_replicas_lose_to_clean_ones() {
    // With the primary reachable: exact comparison with it.
    let s = snap(vec![
        primary(true, "0-1001-100"),
        replica("b", 1002, "0-1001-100,0-1002-101"),
        replica("c", 1003, "0-1001-100"),
    ]);
    assert_eq!(s.member("b").unwrap().errant, ["0-1002-1..101"]);
    let c = choose_candidate(&s, &rules(), &none()).unwrap();
    assert_eq!(c.member, "c");
    assert!(reasons_of(&c, "b")[0].contains("errant transactions 0-1002-1..101"));
    assert_eq!(
        c.errant,
        vec![("b".to_string(), vec!["0-1002-1..101".to_string()])]
    );
    // Errant transactions are reported as errant, not as lost by the choice.
    assert!(c.lacking.is_empty());

    // With the primary gone: b's own transactions nobody else has.
    let s = snap(vec![
        primary(false, ""),
        replica("b", 1002, "0-1001-100,0-1002-101"),
        replica("c", 1003, "0-1001-100"),
    ]);
    assert_eq!(s.member("b").unwrap().errant, ["0-1002-1..101"]);
    assert_eq!(choose_candidate(&s, &rules(), &none()).unwrap().member, "c");
}

#[test]
fn an_errant_replica_is_chosen_when_no_clean_one_exists() {
    let mut c = replica("c", 1003, "0-1001-100");
    c.promotion = Promotion::MustNot;
    let s = snap(vec![
        primary(false, ""),
        replica("b", 1002, "0-1001-100,0-1002-101"),
        c,
    ]);
    let ch = choose_candidate(&s, &rules(), &none()).unwrap();
    assert_eq!(ch.member, "b");
    assert_eq!(ch.errant[0].0, "b");
}

#[test]
fn transactions_from_the_primary_are_never_errant() {
    // A replica read a moment after the primary is ahead of it: not errant.
    let s = snap(vec![
        primary(true, "0-1001-100"),
        replica("b", 1002, "0-1001-103"),
    ]);
    assert!(s.member("b").unwrap().errant.is_empty());
}

#[test]
fn divergent_replicas_are_not_promoted_automatically() {
    let s = snap(vec![
        primary(false, ""),
        replica("b", 1002, "0-1001-100,1-1001-5"),
        replica("c", 1003, "0-1001-100,2-1001-7"),
    ]);
    let Err(NoChoice::Divergent {
        candidates,
        details,
    }) = choose_candidate(&s, &rules(), &none())
    else {
        panic!("expected divergence");
    };
    assert_eq!(candidates, ["b", "c"]);
    assert_eq!(
        details,
        [
            "b lacks 2-1001-1..7 that c has",
            "c lacks 1-1001-1..5 that b has"
        ]
    );
    // Named and forced: promoted, with what it lacks reported.
    let ch = vet_target(&s, &rules(), &none(), "b", true).unwrap();
    assert_eq!(ch.member, "b");
    assert_eq!(
        ch.lacking,
        vec![("c".to_string(), vec!["2-1001-1..7".to_string()])]
    );
    assert!(ch.reasons[0].contains("forced"));
    // Named, not forced: refused.
    assert!(matches!(
        vet_target(&s, &rules(), &none(), "b", false),
        Err(NoChoice::Divergent { .. })
    ));
}

#[test]
fn named_targets_follow_the_rules_unless_forced() {
    let mut lagging = replica("c", 1003, "0-1001-100");
    lagging.lag = Some(Duration::from_secs(60));
    let s = snap(vec![
        primary(false, ""),
        replica("b", 1002, "0-1001-100"),
        lagging,
        replica("d", 1004, "0-1001-50"),
    ]);
    assert_eq!(
        vet_target(&s, &rules(), &none(), "b", false)
            .unwrap()
            .member,
        "b"
    );
    let Err(NoChoice::TargetRefused { member, reasons }) =
        vet_target(&s, &rules(), &none(), "c", false)
    else {
        panic!("expected refusal");
    };
    assert_eq!(member, "c");
    assert_eq!(reasons.len(), 1);
    assert!(
        reasons[0].starts_with("lag 60s over the limit of 10s"),
        "{reasons:?}"
    );
    assert_eq!(
        vet_target(&s, &rules(), &none(), "c", true).unwrap().member,
        "c"
    );
    let Err(NoChoice::TargetRefused { reasons, .. }) =
        vet_target(&s, &rules(), &none(), "d", false)
    else {
        panic!("expected refusal");
    };
    assert_eq!(reasons, ["behind b: lacks 0-1001-51..100"]);
    assert!(matches!(
        vet_target(&s, &rules(), &none(), "zz", true),
        Err(NoChoice::UnknownMember { .. })
    ));
    let Err(NoChoice::TargetRefused { reasons, .. }) = vet_target(&s, &rules(), &none(), "p", true)
    else {
        panic!("expected refusal");
    };
    assert!(reasons.iter().any(|r| r.contains("primary being replaced")));
}

#[test]
fn a_must_not_replica_ahead_is_reported_as_unable_to_follow() {
    let mut never = replica("never", 1003, "0-1001-101");
    never.promotion = Promotion::MustNot;
    let s = snap(vec![
        primary(false, ""),
        replica("b", 1002, "0-1001-100"),
        never,
    ]);
    let c = choose_candidate(&s, &rules(), &none()).unwrap();
    assert_eq!(c.member, "b");
    assert_eq!(
        c.lacking,
        vec![("never".to_string(), vec!["0-1001-101".to_string()])]
    );
    assert!(c.reasons.iter().any(|r| r.contains("cannot follow")));
}

#[test]
fn mysql_sets_are_compared_exactly() {
    let a = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
    let mut b = replica("b", 0, "");
    b.origin = Some("4b8e0f12-0000-11e1-9e33-c80aa9429562".into());
    let mysql = |s: &str| Some(Position::MySql(s.parse().unwrap()));
    b.position = mysql(&format!("{a}:1-100"));
    b.received = mysql(&format!("{a}:1-100"));
    let mut c = b.clone();
    c.id = "c".into();
    c.position = mysql(&format!("{a}:1-90"));
    c.received = mysql(&format!("{a}:1-99"));
    let ch = choose_candidate(&snap(vec![primary(false, ""), b, c]), &rules(), &none()).unwrap();
    assert_eq!(ch.member, "b");
    assert_eq!(reasons_of(&ch, "c"), [format!("behind b: lacks {a}:100")]);
}

// ---- properties -------------------------------------------------------

#[derive(Debug, Clone)]
struct Gen {
    seq: u64,
    extra_domain: Option<(u32, u64)>,
    reachable: bool,
    sql_error: bool,
    lag: u64,
    must_not: bool,
    prefer: bool,
    region_priority: u32,
    down_region: bool,
}

fn arb_member() -> impl Strategy<Value = Gen> {
    (
        1u64..20,
        prop::option::weighted(0.2, (1u32..3, 1u64..5)),
        prop::bool::weighted(0.85),
        prop::bool::weighted(0.1),
        0u64..20,
        prop::bool::weighted(0.15),
        prop::bool::weighted(0.2),
        0u32..3,
        prop::bool::weighted(0.2),
    )
        .prop_map(
            |(seq, extra_domain, reachable, sql_error, lag, must_not, prefer, rp, down)| Gen {
                seq,
                extra_domain,
                reachable,
                sql_error,
                lag,
                must_not,
                prefer,
                region_priority: rp,
                down_region: down,
            },
        )
}

fn build(gens: &[Gen]) -> Snapshot {
    let mut members = vec![primary(false, "")];
    for (i, g) in gens.iter().enumerate() {
        let mut at = format!("0-{PRIMARY_ID}-{}", g.seq);
        if let Some((d, n)) = g.extra_domain {
            at.push_str(&format!(",{d}-{PRIMARY_ID}-{n}"));
        }
        let mut m = replica(&format!("r{i}"), 2000 + i as u32, &at);
        if !g.reachable {
            m = MemberState::unread(&spec(&format!("r{i}")));
        }
        if g.sql_error {
            m.sql_error = Some("error".into());
        }
        m.lag = Some(Duration::from_secs(g.lag));
        m.promotion = if g.must_not {
            Promotion::MustNot
        } else if g.prefer {
            Promotion::Prefer
        } else {
            Promotion::Neutral
        };
        m.region_priority = g.region_priority;
        m.region = if g.down_region { "down" } else { "up" }.into();
        members.push(m);
    }
    snap(members)
}

fn eligible(m: &MemberState, r: &Rules) -> bool {
    m.reachable
        && m.role == Role::Replica
        && m.sql_error.is_none()
        && m.lag.is_none_or(|l| l <= r.max_lag)
        && m.promotion != Promotion::MustNot
}

fn prop_rules() -> Rules {
    Rules {
        down_regions: BTreeSet::from(["down".to_string()]),
        ..rules()
    }
}

proptest! {
    #[test]
    fn the_choice_obeys_every_rule(gens in prop::collection::vec(arb_member(), 1..6)) {
        let s = build(&gens);
        let r = prop_rules();
        let elig: Vec<&MemberState> = s.members.iter().filter(|m| eligible(m, &r)).collect();
        match choose_candidate(&s, &r, &none()) {
            Ok(c) => {
                let w = s.member(&c.member).unwrap();
                prop_assert!(eligible(w, &r));
                let wp = w.best_position().unwrap();
                for o in &elig {
                    prop_assert!(wp.contains(o.best_position().unwrap()), "{} lacks what {} has", w.id, o.id);
                }
                // Among the equally advanced, none ranks better.
                for o in elig.iter().filter(|o| o.best_position() == Some(wp)) {
                    let key = |m: &MemberState| (r.down_regions.contains(&m.region), m.region_priority, m.promotion != Promotion::Prefer);
                    prop_assert!(key(w) <= key(o));
                }
                prop_assert_eq!(c.excluded.len(), s.members.len() - 1);
            }
            Err(NoChoice::NoCandidate { excluded }) => {
                prop_assert!(elig.is_empty());
                prop_assert_eq!(excluded.len(), s.members.len());
            }
            Err(NoChoice::Divergent { .. }) => {
                let any_top = elig.iter().any(|a| elig.iter().all(|b| a.best_position().unwrap().contains(b.best_position().unwrap())));
                prop_assert!(!any_top);
            }
            Err(other) => prop_assert!(false, "unexpected {:?}", other),
        }
    }

    #[test]
    fn member_order_does_not_change_the_choice(gens in prop::collection::vec(arb_member(), 1..6)) {
        let s = build(&gens);
        let mut rev = s.clone();
        rev.members.reverse();
        let r = prop_rules();
        let a = choose_candidate(&s, &r, &none()).map(|c| c.member);
        let b = choose_candidate(&rev, &r, &none()).map(|c| c.member);
        match (a, b) {
            (Ok(x), Ok(y)) => prop_assert_eq!(x, y),
            (Err(_), Err(_)) => {}
            (x, y) => prop_assert!(false, "{:?} vs {:?}", x, y),
        }
    }
}
