use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;
use crate::candidate::{NoChoice, choose_candidate, vet_target};
use crate::gtid::MariaDbGtids;
use crate::snapshot::{ContactError, ContactErrorKind};
use crate::spec::{Credentials, MemberSpec, Promotion, Rules};

fn pos(s: &str) -> Position {
    Position::MariaDb(s.parse::<MariaDbGtids>().unwrap())
}

fn member(id: &str, origin: u32) -> MemberState {
    let mut m = MemberState::unread(&MemberSpec::new(
        id,
        "east",
        format!("{id}:3306"),
        Credentials::new("u", "p"),
    ));
    m.origin = Some(origin.to_string());
    m
}

fn primary(alive: bool, at: &str) -> MemberState {
    let mut m = member("p", 1001);
    if alive {
        m.reachable = true;
        m.role = Role::Primary;
        m.read_only = Some(false);
        m.position = Some(pos(at));
    } else {
        m.contact_error = Some(ContactError {
            kind: ContactErrorKind::Unreachable,
            detail: "connection refused".into(),
        });
    }
    m
}

/// A replica of `p` that has applied `applied` and received `received`,
/// reporting `lag` (what `Seconds_Behind_Master` says now).
fn replica(id: &str, applied: &str, received: &str, lag: Option<u64>) -> MemberState {
    let mut m = member(id, 1002);
    m.reachable = true;
    m.role = Role::Replica;
    m.read_only = Some(true);
    m.source = Some("p".into());
    m.io_running = lag.is_some();
    m.sql_running = true;
    m.lag = lag.map(Duration::from_secs);
    m.position = Some(pos(applied));
    m.received = Some(pos(received));
    m
}

fn rules(max_lag: u64) -> Rules {
    Rules {
        max_lag: Duration::from_secs(max_lag),
        ..Rules::default()
    }
}

/// The memory after one observation with the primary alive at `at`, the
/// replicas reporting `lags`, `ago` before now.
fn remembered(at: &str, lags: &[(&str, Option<u64>)], ago: Duration) -> LagHistory {
    let t0 = Instant::now();
    let mut members = vec![primary(true, at)];
    for (id, l) in lags {
        members.push(replica(id, "0-1001-1", at, *l));
    }
    let mut seen = LastSeen::default();
    seen.record(&Snapshot::assemble(members), t0);
    seen.history(t0 + ago)
}

#[test]
fn judged_lag_table() {
    let ago = Duration::from_secs(2);
    let h = remembered("0-1001-100", &[("b", Some(40)), ("c", None)], ago);
    assert_eq!(h.primary.as_deref(), Some("p"));
    assert_eq!(h.primary_age, Some(ago));
    // Primary gone: the servers report no lag any more.
    let dead = |b: MemberState| Snapshot::assemble(vec![primary(false, ""), b]);
    struct Case {
        what: &'static str,
        m: MemberState,
        history: LagHistory,
        judged: Option<u64>,
        seen: Option<u64>,
    }
    let cases = [
        Case {
            what: "the server still reports a lag: it wins",
            m: replica("b", "0-1001-90", "0-1001-100", Some(3)),
            history: h.clone(),
            judged: Some(3),
            seen: Some(3),
        },
        Case {
            what: "NULL now: the lag seen while the primary was alive",
            m: replica("b", "0-1001-90", "0-1001-100", None),
            history: h.clone(),
            judged: Some(40),
            seen: Some(40),
        },
        Case {
            what: "applied all the primary had when last seen: no lag held",
            m: replica("b", "0-1001-100", "0-1001-100", None),
            history: h.clone(),
            judged: Some(0),
            seen: Some(40),
        },
        Case {
            what: "never seen with a lag: unknown",
            m: replica("c", "0-1001-90", "0-1001-100", None),
            history: h.clone(),
            judged: None,
            seen: None,
        },
        Case {
            what: "nothing remembered (a controller that just started)",
            m: replica("b", "0-1001-90", "0-1001-100", None),
            history: LagHistory::default(),
            judged: None,
            seen: None,
        },
    ];
    for c in cases {
        let snap = dead(c.m.clone());
        let j = judge(snap.member(&c.m.id).unwrap(), &snap, &c.history);
        let secs = |d: Option<Duration>| d.map(|d| d.as_secs());
        assert_eq!(secs(j.judged), c.judged, "{}: {j:?}", c.what);
        assert_eq!(secs(j.seen), c.seen, "{}: {j:?}", c.what);
        assert!(!j.note.is_empty());
    }
}

#[test]
fn memory_of_another_primary_is_not_used() {
    let h = remembered("0-1001-100", &[("b", Some(40))], Duration::from_secs(1));
    // The snapshot's primary is "q", not the "p" the memory is about.
    let mut q = primary(false, "");
    q.id = "q".into();
    let mut b = replica("b", "0-1001-90", "0-1001-100", None);
    b.source = Some("q".into());
    let snap = Snapshot::assemble(vec![q, b]);
    assert_eq!(judge(&snap.members[1], &snap, &h).judged, None);
}

#[test]
fn a_new_live_primary_replaces_the_memory() {
    let t0 = Instant::now();
    let mut seen = LastSeen::default();
    seen.record(
        &Snapshot::assemble(vec![
            primary(true, "0-1001-5"),
            replica("b", "0-1001-5", "0-1001-5", Some(9)),
        ]),
        t0,
    );
    // Primary dead: nothing learnt, nothing forgotten.
    seen.record(
        &Snapshot::assemble(vec![
            primary(false, ""),
            replica("b", "0-1001-5", "0-1001-5", None),
        ]),
        t0,
    );
    assert_eq!(
        seen.history(t0).replicas["b"].lag,
        Some(Duration::from_secs(9))
    );
    // b is now the live primary: the memory of p is gone.
    let mut b = replica("b", "0-1001-6", "0-1001-6", None);
    b.role = Role::Primary;
    b.read_only = Some(false);
    b.source = None;
    seen.record(&Snapshot::assemble(vec![primary(false, ""), b]), t0);
    let h = seen.history(t0);
    assert_eq!(h.primary.as_deref(), Some("b"));
    assert!(h.replicas.is_empty());
}

#[test]
fn a_replica_lagging_while_the_primary_lived_is_refused_unless_forced() {
    let h = remembered(
        "0-1001-100",
        &[("b", Some(40)), ("c", Some(1))],
        Duration::from_secs(1),
    );
    // Both have received everything: equally advanced. b is preferred, so
    // it would win on rank; its remembered lag excludes it.
    let mut b = replica("b", "0-1001-60", "0-1001-100", None);
    b.promotion = Promotion::Prefer;
    let c = replica("c", "0-1001-99", "0-1001-100", None);
    let snap = Snapshot::assemble(vec![primary(false, ""), b.clone(), c]);
    let choice = choose_candidate(&snap, &rules(10), &h).unwrap();
    assert_eq!(choice.member, "c");
    let b_why = &choice
        .excluded
        .iter()
        .find(|e| e.member == "b")
        .unwrap()
        .reasons;
    assert!(
        b_why[0].starts_with("lag 40s over the limit of 10s"),
        "{b_why:?}"
    );
    // Without the memory (the old behaviour) b would have won.
    let choice = choose_candidate(&snap, &rules(10), &LagHistory::default()).unwrap();
    assert_eq!(choice.member, "b");

    // b alone: refused, and forced it is promoted, saying how far behind.
    let snap = Snapshot::assemble(vec![primary(false, ""), b]);
    let Err(NoChoice::NoCandidate { excluded }) = choose_candidate(&snap, &rules(10), &h) else {
        panic!("a replica 40 s behind must be refused");
    };
    assert!(excluded.iter().any(|e| e.member == "b"));
    let forced = vet_target(&snap, &rules(10), &h, "b", true).unwrap();
    assert_eq!(forced.lag, Some(Duration::from_secs(40)));
    assert!(
        forced.reasons.iter().any(|r| r.contains("40s behind")),
        "{:?}",
        forced.reasons
    );
}

proptest! {
    /// Whatever the remembered and current lags: a replica whose judged lag
    /// is over the limit is never chosen automatically, and a replica that
    /// has applied everything the primary was last seen with is never
    /// refused for lag.
    #[test]
    fn judged_lag_bounds_the_choice(
        lags in proptest::collection::vec((0u64..60, proptest::option::of(0u64..60), any::<bool>(), any::<bool>()), 1..5),
        max in 1u64..30,
    ) {
        let history_lags: Vec<(String, Option<u64>)> = lags
            .iter()
            .enumerate()
            .map(|(i, (then, _, _, _))| (format!("r{i}"), Some(*then)))
            .collect();
        let refs: Vec<(&str, Option<u64>)> =
            history_lags.iter().map(|(id, l)| (id.as_str(), *l)).collect();
        let h = remembered("0-1001-100", &refs, Duration::from_secs(1));
        let mut members = vec![primary(false, "")];
        for (i, (_, now, caught_up, _)) in lags.iter().enumerate() {
            let applied = if *caught_up { "0-1001-100" } else { "0-1001-50" };
            members.push(replica(&format!("r{i}"), applied, "0-1001-100", *now));
        }
        let snap = Snapshot::assemble(members);
        let r = rules(max);
        for m in snap.members.iter().skip(1) {
            let j = judge(m, &snap, &h);
            if m.lag.is_none() && m.position.as_ref().unwrap().contains(&pos("0-1001-100")) {
                prop_assert_eq!(j.judged, Some(Duration::ZERO));
            }
        }
        match choose_candidate(&snap, &r, &h) {
            Ok(c) => {
                let m = snap.member(&c.member).unwrap();
                let j = judge(m, &snap, &h);
                prop_assert!(j.judged.is_none_or(|l| l <= r.max_lag), "{:?}", j);
            }
            Err(NoChoice::NoCandidate { excluded }) => {
                for e in excluded.iter().filter(|e| e.member != "p") {
                    let m = snap.member(&e.member).unwrap();
                    let j = judge(m, &snap, &h);
                    prop_assert!(j.judged.is_some_and(|l| l > r.max_lag), "{:?} {:?}", e, j);
                }
            }
            Err(other) => prop_assert!(false, "{other:?}"),
        }
    }
}
