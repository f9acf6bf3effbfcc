//! The leader's term state machine, event by event, on instants made up by
//! hand (no clock, no runtime, no etcd).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use proptest::prelude::*;
use tokio::time::Instant;

use super::term::*;
use crate::executor::{ActionSpec, JournalEntry, Status};
use crate::runtime::lanes::Lane;
use crate::runtime::retry;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn wall() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(1_700_000_000, 0).expect("time")
}

fn db(name: &str) -> Lane {
    Lane::Database(name.into())
}

/// The engine's backoff key of weights `c=<c>` on `api`.
fn weights_key(c: u32) -> String {
    format!("weights/api/a=100,c={c}")
}

/// The engine's backoff key of a failover of `database` away from m0.
fn failover_key(database: &str) -> String {
    format!("failover/{database}/m0")
}

/// An action of `lane`'s kind.
fn action_in(lane: &Lane) -> ActionSpec {
    match lane {
        Lane::Traffic => ActionSpec::SetWeights {
            record: "api".into(),
            weights: [("a".to_string(), 100)].into(),
        },
        Lane::Database(database) => ActionSpec::Failover {
            database: database.clone(),
            from_member: "m0".into(),
            to_member: None,
            force: false,
            avoid_regions: BTreeSet::new(),
        },
    }
}

/// A journal entry for an action of `lane`'s kind that ended `status`.
fn entry(lane: &Lane, status: Status, retryable: bool) -> Ended {
    entry_of(action_in(lane), status, retryable)
}

/// A journal entry for `action` that ended `status`.
fn entry_of(action: ActionSpec, status: Status, retryable: bool) -> Ended {
    Ended::Journaled(Box::new(JournalEntry {
        id: "000000000001-1".into(),
        action,
        reasons: vec![],
        status,
        created_by: "c-a".into(),
        created_at: wall(),
        finished_by: Some("c-a".into()),
        finished_at: Some(wall()),
        outcome: Some(if status == Status::Done {
            "applied".into()
        } else {
            "refused".into()
        }),
        request: None,
        steps: vec![],
        retryable: Some(retryable),
        write_unavailable_ms: None,
    }))
}

/// What the engine decided: a plan changing weights to `traffic` (a key)
/// and failing over `failovers`.
fn decided<'a>(
    now: Instant,
    traffic: Option<&'a str>,
    failovers: &'a [(String, Lane)],
) -> Decided<'a> {
    Decided {
        now,
        paused: false,
        traffic,
        failovers,
        desired_weights: true,
        drift_every: Duration::from_secs(10),
    }
}

fn acts(next: Next) -> Acts {
    match next {
        Next::Act(a) => a,
        other => panic!("expected actions, got {other:?}"),
    }
}

#[test]
fn an_interrupted_intent_is_resumed_first_and_alone() {
    let t0 = Instant::now();
    let mut term = Term::new(t0);
    let k = weights_key(0);
    let failovers = [(failover_key("orders"), db("orders"))];
    // A weight change and a failover start in their lanes.
    let first = acts(term.next(&decided(t0, Some(&k), &failovers)));
    assert!(first.traffic);
    assert_eq!(first.failovers, vec![failover_key("orders")]);
    assert!(term.start(Lane::Traffic, Origin::Engine(k.clone())));
    assert!(term.start(db("orders"), Origin::Engine(failover_key("orders"))));
    // The failover is interrupted after some steps.
    let t1 = t0 + ms(1_000);
    assert_eq!(
        term.ended(&db("orders"), &Ended::Interrupted, t1),
        Some(Followup::Resume { interrupted: true })
    );
    assert_eq!(
        term.phase(),
        Phase::Resuming {
            at: t1 + RETRY_AFTER
        }
    );
    // Nothing else starts now: no request, no fence lifted, no writer
    // repaired, nothing of the plan, whatever lane is free.
    let chores = term.chores(t1, false);
    assert!(!chores.requests && !chores.lift_fences && !chores.check_writers);
    assert!(!term.may_start(&db("users"), None, t1));
    assert!(!term.start(db("users"), Origin::Writer));
    assert_eq!(term.next(&decided(t1, None, &failovers)), Next::Hold);
    // Due, but the traffic lane still runs: hold.
    let due = t1 + RETRY_AFTER;
    assert_eq!(term.next(&decided(due, None, &failovers)), Next::Hold);
    assert!(matches!(
        term.ended(
            &Lane::Traffic,
            &entry(&Lane::Traffic, Status::Done, true),
            due
        ),
        Some(Followup::Done { engine: true, .. })
    ));
    // Every lane idle and due: resume.
    assert_eq!(term.next(&decided(due, None, &failovers)), Next::Resume);
    // A resume that fails is tried again after the same wait.
    term.resumed(false, due);
    assert_eq!(
        term.next(&decided(due + ms(4_999), None, &failovers)),
        Next::Hold
    );
    assert_eq!(
        term.next(&decided(due + RETRY_AFTER, None, &failovers)),
        Next::Resume
    );
    // Once it went through, the term leads again, on primaries read
    // again (the resume may have moved one).
    term.resumed(true, due + RETRY_AFTER);
    assert_eq!(term.phase(), Phase::Leading);
    assert!(term.primaries_stale());
    term.primaries_read(true);
    let after = acts(term.next(&decided(due + RETRY_AFTER, None, &failovers)));
    assert_eq!(after.failovers, vec![failover_key("orders")]);
    assert!(term.chores(due + RETRY_AFTER, false).requests);
}

#[test]
fn an_outcome_that_may_be_unwritten_is_settled_before_anything_else() {
    let t0 = Instant::now();
    let mut term = Term::new(t0);
    assert!(term.start(db("orders"), Origin::Request("r1".into())));
    assert_eq!(
        term.ended(&db("orders"), &Ended::Unsettled, t0),
        Some(Followup::Resume { interrupted: false })
    );
    assert!(matches!(term.phase(), Phase::Resuming { .. }));
    // A lane that was never started ends nothing.
    assert_eq!(term.ended(&db("users"), &Ended::Aborted, t0), None);
}

#[test]
fn failures_back_off_and_a_success_forgets_what_it_superseded() {
    let t0 = Instant::now();
    let mut term = Term::new(t0);
    let k0 = weights_key(0);
    let at = |n: u64| t0 + ms(n);
    // (time, ended as, retry_in, alarmed): retryable failures double from
    // 1 s and are alarmed at the third.
    let table = [
        (0, true, retry::FIRST, false),
        (1_000, true, retry::FIRST * 2, false),
        (3_000, true, retry::FIRST * 4, true),
    ];
    for (t, retryable, wait, alarmed) in table {
        assert!(
            acts(term.next(&decided(at(t), Some(&k0), &[]))).traffic,
            "at {t} ms"
        );
        assert!(term.start(Lane::Traffic, Origin::Engine(k0.clone())));
        assert_eq!(
            term.ended(
                &Lane::Traffic,
                &entry(&Lane::Traffic, Status::Failed, retryable),
                at(t)
            ),
            Some(Followup::Failed {
                retry_in: Some(wait),
                alarmed
            })
        );
        // Not again before its wait is over.
        assert!(!acts(term.next(&decided(at(t) + wait - ms(1), Some(&k0), &[]))).traffic);
    }
    assert_eq!(term.failing().len(), 1);
    // Another weight change succeeds: the failing one is superseded, its
    // alarm clears.
    let k1 = weights_key(50);
    assert!(acts(term.next(&decided(at(3_500), Some(&k1), &[]))).traffic);
    assert!(term.start(Lane::Traffic, Origin::Engine(k1)));
    assert_eq!(
        term.ended(
            &Lane::Traffic,
            &entry(&Lane::Traffic, Status::Done, true),
            at(3_600)
        ),
        Some(Followup::Done { engine: true })
    );
    assert!(term.failing().is_empty());
    assert!(acts(term.next(&decided(at(3_600), Some(&k0), &[]))).traffic);
    // A failure that cannot pass by itself waits longer and is alarmed
    // at once.
    let fk = failover_key("orders");
    let lanes = [(fk.clone(), db("orders"))];
    assert!(term.start(db("orders"), Origin::Engine(fk.clone())));
    assert_eq!(
        term.ended(
            &db("orders"),
            &entry(&db("orders"), Status::Failed, false),
            at(4_000)
        ),
        Some(Followup::Failed {
            retry_in: Some(retry::FIRST_PERMANENT),
            alarmed: true
        })
    );
    // The driver reads the primaries the failover may have moved.
    assert!(term.primaries_stale());
    term.primaries_read(true);
    let before = at(4_000) + retry::FIRST_PERMANENT - ms(1);
    assert!(
        acts(term.next(&decided(before, None, &lanes)))
            .failovers
            .is_empty()
    );
    // An unfence of the same database that succeeds supersedes it (and
    // reads no primaries: it moved none).
    let unfence = ActionSpec::Unfence {
        database: "orders".into(),
        member: "m0".into(),
    };
    assert!(term.start(db("orders"), Origin::Unfence("unfence:orders".into())));
    assert_eq!(
        term.ended(
            &db("orders"),
            &entry_of(unfence, Status::Done, true),
            at(4_100)
        ),
        Some(Followup::Done { engine: false })
    );
    assert!(term.failing().is_empty());
    assert!(!term.primaries_stale());
    // A failover done (the engine's) reads the primaries again and feeds
    // the engine's memory.
    assert!(term.start(db("orders"), Origin::Engine(fk)));
    assert_eq!(
        term.ended(
            &db("orders"),
            &entry(&db("orders"), Status::Done, true),
            at(4_200)
        ),
        Some(Followup::Done { engine: true })
    );
    assert!(term.primaries_stale());
}

/// A failover or switchover that ended, done or failed, may have moved a
/// primary: until the driver has read the primaries again nothing is
/// planned on the old ones — no request, lift or writer repair, no engine
/// action — and a read that fails keeps it so (docs/SIMULATION.md, seed
/// 9184: etcd out of reach as a forced failover ended left the leader
/// with the replaced primary for good, and the new one's isolation fence
/// was never lifted).
#[test]
fn nothing_is_planned_on_primaries_a_failover_may_have_moved() {
    let t0 = Instant::now();
    let mut term = Term::new(t0);
    let fk = failover_key("orders");
    let lanes = [(fk.clone(), db("orders"))];
    let mut now = t0;
    for status in [Status::Failed, Status::Done] {
        assert!(term.start(db("orders"), Origin::Request("r1".into())));
        term.ended(&db("orders"), &entry(&db("orders"), status, true), now);
        assert!(term.primaries_stale(), "{status:?}");
        for read in [false, true] {
            now += WRITER_CHECK;
            let chores = term.chores(now, false);
            assert!(
                !chores.requests && !chores.lift_fences && !chores.check_writers,
                "{chores:?}"
            );
            assert_eq!(term.next(&decided(now, None, &lanes)), Next::Hold);
            term.primaries_read(read);
            assert_eq!(term.primaries_stale(), !read);
        }
        // The writer check put off while the primaries were unknown comes
        // at once.
        let chores = term.chores(now, false);
        assert!(chores.requests && chores.lift_fences && chores.check_writers);
        assert!(matches!(
            term.next(&decided(now, None, &lanes)),
            Next::Act(_)
        ));
    }
    // An unfence moves no primary.
    let unfence = ActionSpec::Unfence {
        database: "orders".into(),
        member: "m0".into(),
    };
    assert!(term.start(db("orders"), Origin::Unfence("unfence:orders".into())));
    term.ended(&db("orders"), &entry_of(unfence, Status::Failed, true), t0);
    assert!(!term.primaries_stale());
    // Nor does a weight change.
    assert!(term.start(Lane::Traffic, Origin::Engine(weights_key(0))));
    term.ended(
        &Lane::Traffic,
        &entry(&Lane::Traffic, Status::Done, true),
        t0,
    );
    assert!(!term.primaries_stale());
}

#[test]
fn an_operators_request_done_is_not_the_engines_and_a_busy_lane_refuses() {
    let t0 = Instant::now();
    let mut term = Term::new(t0);
    assert!(term.start(db("orders"), Origin::Request("r1".into())));
    // The lane is busy: nothing else starts in it, whoever asks.
    assert!(!term.may_start(&db("orders"), None, t0));
    assert!(!term.start(db("orders"), Origin::Writer));
    assert_eq!(
        term.origin(&db("orders")),
        Some(&Origin::Request("r1".into()))
    );
    // A request carried out moves the primary but is not the engine's
    // decision: its anti-flap memory is left alone.
    assert_eq!(
        term.ended(&db("orders"), &entry(&db("orders"), Status::Done, true), t0),
        Some(Followup::Done { engine: false })
    );
    assert!(term.start(db("orders"), Origin::Writer));
}

#[test]
fn a_task_that_ended_abnormally_is_settled_by_a_resume() {
    let t0 = Instant::now();
    let mut term = Term::new(t0);
    assert!(term.start(db("orders"), Origin::Engine(failover_key("orders"))));
    assert_eq!(
        term.ended(&db("orders"), &Ended::Aborted, t0),
        Some(Followup::Resume { interrupted: false })
    );
    assert_eq!(
        term.phase(),
        Phase::Resuming {
            at: t0 + RETRY_AFTER
        }
    );
}

#[test]
fn what_the_loop_does_not_retry_fails_without_a_wait() {
    let t0 = Instant::now();
    let mut term = Term::new(t0);
    for origin in [Origin::Writer, Origin::Request("r1".into())] {
        assert!(term.start(db("orders"), origin.clone()));
        assert_eq!(
            term.ended(
                &db("orders"),
                &entry(&db("orders"), Status::Failed, true),
                t0
            ),
            Some(Followup::Failed {
                retry_in: None,
                alarmed: false
            }),
            "{origin:?}"
        );
    }
    assert!(term.failing().is_empty());
}

#[test]
fn a_shut_gate_is_asked_again_after_a_tick_and_logged_every_30_s() {
    let t0 = Instant::now();
    let mut term = Term::new(t0);
    let k = failover_key("orders");
    let lanes = [(k.clone(), db("orders"))];
    let at = |n: u64| t0 + ms(n);
    // (time, asked, gate log)
    let table = [
        (0, true, Some(true)),
        (GATE_RETRY.as_millis() as u64 - 1, false, None),
        (GATE_RETRY.as_millis() as u64, true, Some(false)),
        (29_999, true, Some(false)),
        (30_248, false, None),
        // 30 s since the wait was last logged.
        (30_249, true, Some(true)),
        (30_300, false, None),
    ];
    for (t, asked, log) in table {
        let ready = acts(term.next(&decided(at(t), None, &lanes)));
        assert_eq!(ready.failovers.contains(&k), asked, "at {t} ms");
        if let Some(log) = log {
            assert_eq!(
                term.gate_answered(&k, "orders", Some("lease held"), at(t), wall()),
                GateStep::Wait { log },
                "at {t} ms"
            );
        }
    }
    assert_eq!(term.gate_waits.holds().len(), 1);
    // A primary lease changed: asked at once.
    term.leases_changed();
    assert_eq!(
        acts(term.next(&decided(at(30_300), None, &lanes))).failovers,
        vec![k.clone()]
    );
    assert_eq!(
        term.gate_answered(&k, "orders", None, at(30_300), wall()),
        GateStep::Start
    );
    assert!(term.gate_waits.holds().is_empty());
}

#[test]
fn one_failover_per_lane_per_tick_and_none_into_a_busy_lane() {
    let t0 = Instant::now();
    let mut term = Term::new(t0);
    let lanes = [
        (failover_key("orders"), db("orders")),
        ("failover/orders/m1".to_string(), db("orders")),
        (failover_key("users"), db("users")),
    ];
    let ready = acts(term.next(&decided(t0, None, &lanes)));
    assert_eq!(
        ready.failovers,
        vec![failover_key("orders"), failover_key("users")]
    );
    assert!(term.start(db("users"), Origin::Writer));
    let ready = acts(term.next(&decided(t0, None, &lanes)));
    assert_eq!(ready.failovers, vec![failover_key("orders")]);
}

#[test]
fn drift_is_checked_when_no_weight_changes_and_on_schedule() {
    let t0 = Instant::now();
    let mut term = Term::new(t0);
    let every = Duration::from_secs(10);
    let at = |n: u64| t0 + ms(n);
    let k = weights_key(0);
    // (time, plan changes weights, desired weights known, drift checked)
    let table = [
        (9_999, false, true, false),
        // A weight change is wanted: no drift check holds the lane.
        (10_000, true, true, false),
        (10_000, false, true, true),
        (15_000, false, true, false),
        // Nothing desired yet: the check's turn passes without one.
        (20_000, false, false, false),
        (25_000, false, true, false),
        (30_000, false, true, true),
    ];
    for (t, changes, desired, drift) in table {
        let mut d = decided(at(t), changes.then_some(k.as_str()), &[]);
        d.desired_weights = desired;
        d.drift_every = every;
        assert_eq!(acts(term.next(&d)).drift, drift, "at {t} ms");
    }
    // A drift check that fails for good backs off like any action: 30 s,
    // past its next two turns.
    assert!(term.start(Lane::Traffic, Origin::Drift(DRIFT.into())));
    let failed = term.ended(
        &Lane::Traffic,
        &entry(&Lane::Traffic, Status::Failed, false),
        at(30_000),
    );
    assert!(matches!(
        failed,
        Some(Followup::Failed {
            retry_in: Some(_),
            alarmed: true
        })
    ));
    for (t, drift) in [(40_000, false), (50_000, false), (60_000, true)] {
        let mut d = decided(at(t), None, &[]);
        d.drift_every = every;
        assert_eq!(acts(term.next(&d)).drift, drift, "at {t} ms");
    }
    // Found nothing to correct: its failures are forgotten.
    assert!(term.start(Lane::Traffic, Origin::Drift(DRIFT.into())));
    term.ended(&Lane::Traffic, &Ended::NothingToDo, at(60_000));
    assert!(term.failing().is_empty());
}

#[test]
fn chores_come_due_on_their_own_schedules() {
    let t0 = Instant::now();
    let mut term = Term::new(t0);
    let at = |s: u64| t0 + Duration::from_secs(s);
    // (seconds, automation paused, requests, lift fences, compact, writers)
    let table = [
        (0, false, true, true, false, true),
        (1, true, true, false, false, false),
        (5, false, true, true, true, false),
        (30, false, true, true, false, true),
        (59, false, true, true, false, false),
        (65, false, true, true, true, true),
    ];
    for (s, paused, requests, lift_fences, compact, check_writers) in table {
        assert_eq!(
            term.chores(at(s), paused),
            Chores {
                requests,
                lift_fences,
                compact,
                check_writers
            },
            "at {s} s"
        );
    }
    // Automation paused: the engine's plan starts nothing.
    let mut d = decided(at(66), Some("weights/api/a=0"), &[]);
    d.paused = true;
    assert_eq!(term.next(&d), Next::Paused);
}

#[test]
fn an_operator_is_told_once_that_a_request_waits() {
    let t0 = Instant::now();
    let mut term = Term::new(t0);
    let shut = Some("lease held");
    assert_eq!(
        term.request_gate("r1", "orders", shut, wall()),
        RequestStep::Wait { note: true }
    );
    // The note could not be written: told at the next try.
    assert_eq!(
        term.request_gate("r1", "orders", shut, wall()),
        RequestStep::Wait { note: true }
    );
    term.noted("r1");
    assert_eq!(
        term.request_gate("r1", "orders", shut, wall()),
        RequestStep::Wait { note: false }
    );
    // Withdrawn (or dropped): a request of the same id is told again.
    assert!(term.start(db("orders"), Origin::Request("r1".into())));
    assert_eq!(
        term.ended(&db("orders"), &Ended::Withdrawn("r1".into()), t0),
        Some(Followup::Withdrawn)
    );
    assert_eq!(
        term.request_gate("r1", "orders", shut, wall()),
        RequestStep::Wait { note: true }
    );
    term.request_gone("r1");
    assert_eq!(
        term.request_gate("r1", "orders", None, wall()),
        RequestStep::Start
    );
    assert_eq!(
        term.ended(&Lane::Traffic, &Ended::LostLeadership, t0),
        None,
        "nothing ran in the traffic lane"
    );
}

/// One event of a term, as the proptest draws them.
#[derive(Debug, Clone)]
enum Event {
    /// Time passes.
    Advance(u64),
    /// A tick: the plan changes weights (`traffic`) and fails over the
    /// databases of `failovers` (bits: orders, users); the gate opens
    /// for those of `open`; a resume the term orders goes through when
    /// `resume_ok`; automation is `paused` or not; the driver's read of
    /// the primaries, when the term asks for one, succeeds when
    /// `read_ok`.
    Tick {
        traffic: bool,
        failovers: u8,
        open: u8,
        resume_ok: bool,
        paused: bool,
        read_ok: bool,
    },
    /// The action in lane `lane` (0 traffic, 1 orders, 2 users) ends as
    /// `how` (0 done, 1 failed, 2 failed for good, 3 interrupted, 4
    /// unsettled, 5 nothing to do, 6 ended abnormally).
    End { lane: u8, how: u8 },
    /// A database's record changed in etcd (the watch said so).
    RecordsChanged,
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        (0u64..8_000).prop_map(Event::Advance),
        (
            any::<bool>(),
            0u8..4,
            0u8..4,
            any::<bool>(),
            proptest::bool::weighted(0.2),
            proptest::bool::weighted(0.7)
        )
            .prop_map(|(traffic, failovers, open, resume_ok, paused, read_ok)| {
                Event::Tick {
                    traffic,
                    failovers,
                    open,
                    resume_ok,
                    paused,
                    read_ok,
                }
            }),
        (0u8..3, 0u8..7).prop_map(|(lane, how)| Event::End { lane, how }),
        Just(Event::RecordsChanged),
    ]
}

const DATABASES: [&str; 2] = ["orders", "users"];

fn lane_of(i: u8) -> Lane {
    match i {
        0 => Lane::Traffic,
        i => db(DATABASES[usize::from(i) - 1]),
    }
}

// The model's own timings, written out rather than taken from the code
// under test.
/// How long an interrupted intent waits before it is resumed.
const MODEL_RESUME: Duration = Duration::from_secs(5);
/// The first backoff of a failure that may pass by itself.
const MODEL_FIRST: Duration = Duration::from_secs(1);
/// The first backoff of a failure that cannot.
const MODEL_FIRST_PERMANENT: Duration = Duration::from_secs(30);

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Over any run of ticks (automation paused or not), action ends and
    /// resumes, counted by a model of its own: once an intent was
    /// interrupted, left unsettled or its task ended abnormally, nothing
    /// starts until a resume went through, and pause does not hold the
    /// resume off; a resume is ordered exactly when one is pending, due,
    /// and every lane is idle; only what the plan holds is ordered, never
    /// into a busy lane, never past a shut gate, and a failed action is not
    /// tried again before its first backoff; once a failover ended or a
    /// resume went through, nothing is planned until the primaries were
    /// read again.
    #[test]
    fn nothing_starts_before_an_interrupted_intent_is_resumed(
        events in proptest::collection::vec(event(), 1..80)
    ) {
        let t0 = Instant::now();
        let mut now = t0;
        let mut term = Term::new(t0);
        // The model.
        let mut running: BTreeMap<Lane, String> = BTreeMap::new();
        let mut resume_due: Option<Instant> = None;
        let mut not_before: BTreeMap<String, Instant> = BTreeMap::new();
        // The primaries may have moved and were not read since.
        let mut stale = false;
        let tk = weights_key(0);
        for e in events {
            match e {
                Event::Advance(n) => now += ms(n),
                // Whatever the phase: the next tick reads them first.
                Event::RecordsChanged => {
                    term.records_changed();
                    stale = true;
                }
                Event::Tick { traffic, failovers, open, resume_ok, paused, read_ok } => {
                    // The driver reads the primaries when the term asks.
                    prop_assert_eq!(term.primaries_stale(), stale);
                    if stale {
                        term.primaries_read(read_ok);
                        stale = !read_ok;
                    }
                    let chores = term.chores(now, paused);
                    let pending = resume_due.is_some();
                    prop_assert_eq!(chores.requests, !pending && !stale);
                    prop_assert_eq!(chores.lift_fences, !pending && !paused && !stale);
                    prop_assert!(!((pending || stale) && chores.check_writers));
                    let planned: Vec<&str> = DATABASES
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| failovers & (1 << i) != 0)
                        .map(|(_, d)| *d)
                        .collect();
                    let lanes: Vec<(String, Lane)> =
                        planned.iter().map(|d| (failover_key(d), db(d))).collect();
                    let mut d = decided(now, traffic.then_some(tk.as_str()), &lanes);
                    d.paused = paused;
                    let next = term.next(&d);
                    let idle = running.is_empty();
                    match resume_due {
                        Some(at) => {
                            let want = if now >= at && idle { Next::Resume } else { Next::Hold };
                            prop_assert_eq!(&next, &want);
                        }
                        None if stale => prop_assert_eq!(&next, &Next::Hold),
                        None if paused => prop_assert_eq!(&next, &Next::Paused),
                        None => prop_assert!(matches!(next, Next::Act(_)), "{:?}", next),
                    }
                    match next {
                        Next::Resume => {
                            term.resumed(resume_ok, now);
                            resume_due = (!resume_ok).then_some(now + MODEL_RESUME);
                            stale |= resume_ok;
                        }
                        Next::Act(acts) => {
                            prop_assert!(!acts.traffic || traffic, "weights nobody planned");
                            prop_assert!(!(acts.traffic && acts.drift));
                            prop_assert!(!acts.drift || !traffic, "a drift check while weights change");
                            let mut ordered: Vec<(Lane, Origin, String)> = Vec::new();
                            if acts.traffic {
                                ordered.push((Lane::Traffic, Origin::Engine(tk.clone()), tk.clone()));
                            }
                            if acts.drift {
                                ordered.push((Lane::Traffic, Origin::Drift(DRIFT.into()), DRIFT.into()));
                            }
                            for k in &acts.failovers {
                                let Some(i) = DATABASES.iter().position(|d| failover_key(d) == *k) else {
                                    return Err(TestCaseError::fail(format!("unknown failover {k}")));
                                };
                                let d = DATABASES[i];
                                prop_assert!(planned.contains(&d), "a failover nobody planned: {}", k);
                                let shut = (open & (1 << i) == 0).then_some("lease held");
                                let step = term.gate_answered(k, d, shut, now, wall());
                                prop_assert_eq!(step == GateStep::Start, shut.is_none());
                                if step == GateStep::Start {
                                    ordered.push((db(d), Origin::Engine(k.clone()), k.clone()));
                                }
                            }
                            for (lane, origin, key) in ordered {
                                prop_assert!(!running.contains_key(&lane), "ordered into busy {:?}", lane);
                                prop_assert!(not_before.get(&key).is_none_or(|t| now >= *t), "{} before its backoff", key);
                                prop_assert!(term.start(lane.clone(), origin), "refused what it ordered");
                                running.insert(lane, key);
                            }
                        }
                        Next::Hold | Next::Paused => {}
                    }
                }
                Event::End { lane, how } => {
                    let lane = lane_of(lane);
                    let Some(key) = running.remove(&lane) else {
                        prop_assert_eq!(term.ended(&lane, &Ended::Aborted, now), None);
                        continue;
                    };
                    let ended = match how {
                        0 => entry(&lane, Status::Done, true),
                        1 => entry(&lane, Status::Failed, true),
                        2 => entry(&lane, Status::Failed, false),
                        3 => Ended::Interrupted,
                        4 => Ended::Unsettled,
                        5 => Ended::NothingToDo,
                        _ => Ended::Aborted,
                    };
                    let followup = term.ended(&lane, &ended, now);
                    prop_assert!(followup.is_some());
                    // A failover that ran to an outcome may have moved a
                    // primary, whatever the outcome.
                    stale |= matches!(lane, Lane::Database(_)) && how <= 2;
                    match how {
                        // Done: its own failures and those of what it
                        // superseded (any weight change and the drift
                        // check, or the database's failovers) are over.
                        0 => match &lane {
                            Lane::Traffic => not_before.retain(|k, _| !k.starts_with("weights/") && k != DRIFT),
                            Lane::Database(d) => {
                                let failover = format!("failover/{d}/");
                                not_before.retain(|k, _| !k.starts_with(&failover));
                            }
                        },
                        1 => { not_before.insert(key, now + MODEL_FIRST); }
                        2 => { not_before.insert(key, now + MODEL_FIRST_PERMANENT); }
                        3 | 4 | 6 => resume_due = Some(now + MODEL_RESUME),
                        _ => { not_before.remove(&key); }
                    }
                    // While a resume is pending nothing may start, in any
                    // lane.
                    if resume_due.is_some() {
                        prop_assert!(!term.start(db("elsewhere"), Origin::Writer));
                    }
                }
            }
        }
    }
}
