use std::time::Duration;

use chrono::{TimeZone, Utc};
use tokio::time::Instant;

use super::*;
use crate::fence::lease::{LeaseValue, ObservedLease, Vouch};
use crate::fence::local::FencedUnder;

/// The reader's clock in these tables: `t(s)` is `s` seconds after a fixed
/// origin.
fn t(secs: i64) -> Instant {
    use std::sync::OnceLock;
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    let o = *ORIGIN.get_or_init(|| Instant::now() + Duration::from_secs(3_600));
    if secs >= 0 {
        o + Duration::from_secs(secs as u64)
    } else {
        o - Duration::from_secs((-secs) as u64)
    }
}

const WAIT: Duration = Duration::from_millis(4_500);

fn db(primary: &str, epoch: u64) -> DatabaseState {
    DatabaseState {
        primary: primary.to_string(),
        epoch,
        last_failover: None,
    }
}

fn value(primary: &str, epoch: u64) -> LeaseValue {
    LeaseValue {
        holder: "ctl-east".into(),
        region: "east".into(),
        primary: primary.into(),
        epoch: Some(epoch),
        renewed_at: Utc.timestamp_opt(1_700_000_000, 0).single().expect("valid"),
        ttl_ms: 4_000,
    }
}

fn seen(primary: &str, epoch: u64, lease_id: i64, seen_at: i64, expires_at: i64) -> ObservedLease {
    ObservedLease {
        value: value(primary, epoch),
        lease_id,
        seen_at: t(seen_at),
        expires_at: t(expires_at),
    }
}

fn vouch(primary: &str, epoch: u64, lease_id: i64) -> VouchObservation {
    VouchObservation::Present(Vouch {
        lease: value(primary, epoch),
        lease_id,
    })
}

fn absent(last: Option<ObservedLease>, since: i64) -> LeaseObservation {
    LeaseObservation::Absent {
        last_seen: last,
        since: t(since),
        watching_since: t(-100),
    }
}

fn fenced(m: &str, epoch: u64) -> FenceAttempt {
    FenceAttempt::Fenced {
        member: m.into(),
        epoch,
    }
}

fn failed(m: &str) -> FenceAttempt {
    FenceAttempt::Failed {
        member: m.into(),
        error: "unreachable".into(),
    }
}

fn east() -> Cover {
    Cover::Controlled {
        region: "east".into(),
        controllers: vec!["ctl-east".into()],
    }
}

fn lonely() -> Cover {
    Cover::NoController {
        region: "edge".into(),
    }
}

#[derive(Debug)]
enum Want {
    Open(OpenedBy),
    Wait(Option<i64>),
    WaitMs(u64),
}

struct Case {
    name: &'static str,
    state: DatabaseState,
    cover: Cover,
    lease: LeaseObservation,
    vouch: VouchObservation,
    fence: FenceAttempt,
    life: LeaseLife,
    force: bool,
    now: i64,
    want: Want,
}

fn case(name: &'static str, lease: LeaseObservation, now: i64, want: Want) -> Case {
    Case {
        name,
        state: db("m1", 3),
        cover: east(),
        lease,
        vouch: vouch("m1", 3, 7),
        fence: FenceAttempt::NotAttempted,
        life: LeaseLife::Gone,
        force: false,
        now,
        want,
    }
}

#[test]
fn table() {
    use LeaseObservation::*;
    let unknown = Unknown {
        error: "etcd down".into(),
    };
    let cases = vec![
        // --- A lease is held: the gate stays shut, whoever it names. ---
        case(
            "live lease",
            Held(seen("m1", 3, 7, 5, 16)),
            6,
            Want::Wait(Some(16)),
        ),
        Case {
            fence: failed("m1"),
            ..case(
                "live lease, fence failed",
                Held(seen("m1", 3, 7, 5, 16)),
                6,
                Want::Wait(Some(16)),
            )
        },
        Case {
            fence: fenced("m1", 3),
            ..case(
                "live lease, fenced under this epoch",
                Held(seen("m1", 3, 7, 5, 16)),
                6,
                Want::Open(OpenedBy::Fenced),
            )
        },
        Case {
            fence: fenced("m1", 2),
            ..case(
                "live lease, fence of an earlier epoch",
                Held(seen("m1", 3, 7, 5, 16)),
                6,
                Want::Wait(Some(16)),
            )
        },
        Case {
            fence: fenced("m2", 3),
            ..case(
                "fenced another member",
                Held(seen("m1", 3, 7, 5, 16)),
                6,
                Want::Wait(Some(16)),
            )
        },
        Case {
            fence: FenceAttempt::Stale {
                member: "m1".into(),
                why: "superseded".into(),
            },
            ..case(
                "stale record",
                Held(seen("m1", 3, 7, 5, 16)),
                6,
                Want::Wait(Some(16)),
            )
        },
        case(
            "lease for another member still shuts",
            Held(seen("m9", 3, 7, 5, 16)),
            6,
            Want::Wait(Some(16)),
        ),
        case(
            "stale held observation",
            Held(seen("m1", 3, 7, 5, 16)),
            20,
            Want::Wait(None),
        ),
        // --- The lease was taken for this primary and epoch, and is gone. ---
        case(
            "gone, and etcd ended it: open before the reader's own estimate",
            absent(Some(seen("m1", 3, 7, 5, 16)), 14),
            14,
            Want::Open(OpenedBy::LeaseExpired),
        ),
        Case {
            life: LeaseLife::Running {
                left: Duration::from_secs(2),
            },
            ..case(
                "key gone but etcd still runs the lease (deleted by hand)",
                absent(Some(seen("m1", 3, 7, 5, 16)), 14),
                15,
                Want::Wait(Some(17)),
            )
        },
        Case {
            life: LeaseLife::Unknown {
                error: "timeout".into(),
            },
            ..case(
                "key gone, whether etcd still runs the lease unknown",
                absent(None, 14),
                100,
                Want::Wait(None),
            )
        },
        Case {
            fence: failed("m1"),
            ..case(
                "etcd ended it, fence failed",
                absent(Some(seen("m1", 3, 7, 5, 16)), 14),
                17,
                Want::Open(OpenedBy::LeaseExpired),
            )
        },
        case(
            "never seen by this reader (a new leader): etcd ended it",
            absent(None, 3),
            3,
            Want::Open(OpenedBy::LeaseExpired),
        ),
        case(
            "the lease seen was an older one; etcd ended the vouched one",
            absent(Some(seen("m1", 3, 6, 1, 2)), 3),
            3,
            Want::Open(OpenedBy::LeaseExpired),
        ),
        Case {
            lease: LeaseObservation::Absent {
                last_seen: Some(seen("m1", 3, 7, 5, 6)),
                since: t(6),
                watching_since: t(5),
            },
            ..case(
                "watching since a gap: no opening before a full lease after it",
                absent(None, 0),
                7,
                Want::WaitMs(9_500),
            )
        },
        // --- Issue 11: a new primary's gate starts closed. ---
        Case {
            vouch: vouch("m0", 2, 5),
            ..case(
                "after a failover to m1: the old primary's expired lease says nothing about m1",
                absent(Some(seen("m0", 2, 5, 1, 5)), 2),
                100,
                Want::Wait(None),
            )
        },
        Case {
            vouch: VouchObservation::Absent,
            ..case(
                "no lease ever taken",
                absent(None, 0),
                100,
                Want::Wait(None),
            )
        },
        Case {
            vouch: vouch("m1", 2, 7),
            ..case(
                "a lease of m1 from an earlier epoch",
                absent(Some(seen("m1", 2, 7, 1, 5)), 2),
                100,
                Want::Wait(None),
            )
        },
        Case {
            vouch: VouchObservation::Unknown {
                error: "timeout".into(),
            },
            ..case("vouch unreadable", absent(None, 0), 100, Want::Wait(None))
        },
        Case {
            vouch: vouch("m0", 2, 5),
            fence: fenced("m1", 3),
            ..case(
                "not vouched yet, but fenced by its region",
                absent(None, 0),
                1,
                Want::Open(OpenedBy::Fenced),
            )
        },
        // --- The documented exception: a region without a controller. ---
        Case {
            cover: lonely(),
            vouch: VouchObservation::Absent,
            ..case(
                "no controller in its region",
                absent(None, 0),
                0,
                Want::Open(OpenedBy::NoController),
            )
        },
        Case {
            cover: lonely(),
            vouch: vouch("m0", 2, 5),
            ..case(
                "no controller, a vanished lease's margin pending",
                absent(Some(seen("m0", 2, 5, 1, 5)), 2),
                4,
                Want::Wait(Some(5)),
            )
        },
        Case {
            cover: lonely(),
            ..case(
                "no controller, a lease is held all the same",
                Held(seen("m1", 3, 7, 5, 16)),
                6,
                Want::Wait(Some(16)),
            )
        },
        Case {
            cover: Cover::UnknownMember,
            ..case(
                "member not in this config",
                absent(None, 0),
                100,
                Want::Wait(None),
            )
        },
        // --- Unreadable things, stale intents, force. ---
        case("etcd unreadable", unknown.clone(), 0, Want::Wait(None)),
        Case {
            fence: fenced("m1", 3),
            ..case(
                "etcd unreadable, fenced",
                unknown.clone(),
                0,
                Want::Open(OpenedBy::Fenced),
            )
        },
        Case {
            state: db("m2", 4),
            ..case(
                "the recorded primary moved on",
                absent(None, 0),
                100,
                Want::Wait(None),
            )
        },
        Case {
            force: true,
            ..case(
                "forced over live lease",
                Held(seen("m1", 3, 7, 5, 16)),
                6,
                Want::Open(OpenedBy::Forced),
            )
        },
        Case {
            force: true,
            vouch: VouchObservation::Absent,
            ..case(
                "forced over a new primary",
                absent(None, 0),
                0,
                Want::Open(OpenedBy::Forced),
            )
        },
    ];
    for c in cases {
        let ev = Evidence {
            state: Some(&c.state),
            cover: &c.cover,
            lease: &c.lease,
            vouch: &c.vouch,
            fence: &c.fence,
            vouched_lease: &c.life,
            unseen_wait: WAIT,
        };
        let g = may_promote("m1", &ev, c.force, t(c.now));
        let name = c.name;
        match (c.want, &g) {
            (Want::Open(by), Gate::Open { by: got, .. }) => assert_eq!(*got, by, "{name}: {g:?}"),
            (Want::Wait(until), Gate::Wait { until: got, .. }) => {
                assert_eq!(*got, until.map(t), "{name}: {g:?}")
            }
            (Want::WaitMs(ms), Gate::Wait { until: got, .. }) => {
                assert_eq!(
                    *got,
                    Some(t(0) + Duration::from_millis(ms)),
                    "{name}: {g:?}"
                )
            }
            (want, g) => panic!("{name}: want {want:?}, got {g:?}"),
        }
        assert_eq!(g.is_open(), matches!(g, Gate::Open { .. }));
    }
}

#[test]
fn unreadable_state_shuts_the_gate() {
    let lease = absent(None, 0);
    let ev = Evidence {
        state: None,
        cover: &east(),
        lease: &lease,
        vouch: &vouch("m1", 3, 7),
        fence: &FenceAttempt::NotAttempted,
        vouched_lease: &LeaseLife::Gone,
        unseen_wait: WAIT,
    };
    let g = may_promote("m1", &ev, false, t(100));
    assert!(!g.is_open(), "{g:?}");
}

#[test]
fn forced_reason_is_recorded_for_history() {
    let lease = LeaseObservation::Held(seen("m1", 3, 7, 5, 16));
    let ev = Evidence {
        state: Some(&db("m1", 3)),
        cover: &east(),
        lease: &lease,
        vouch: &vouch("m1", 3, 7),
        fence: &FenceAttempt::NotAttempted,
        vouched_lease: &LeaseLife::Gone,
        unseen_wait: WAIT,
    };
    assert_eq!(
        may_promote("m1", &ev, true, t(6)),
        Gate::Open {
            by: OpenedBy::Forced,
            reason: "forced: gate skipped".into()
        }
    );
}

#[test]
fn reasons_say_who_holds_and_why() {
    let state = db("m1", 3);
    let lease = LeaseObservation::Held(seen("m9", 3, 7, 5, 16));
    let ev = Evidence {
        state: Some(&state),
        cover: &east(),
        lease: &lease,
        vouch: &vouch("m1", 3, 7),
        fence: &failed("m1"),
        vouched_lease: &LeaseLife::Gone,
        unseen_wait: WAIT,
    };
    let Gate::Wait { reason, .. } = may_promote("m1", &ev, false, t(6)) else {
        panic!("expected wait")
    };
    assert!(reason.contains("held by ctl-east in east"), "{reason}");
    assert!(reason.contains("names m9, not m1"), "{reason}");
    assert!(
        reason.contains("fencing m1 failed: unreachable"),
        "{reason}"
    );
    // The wording the split-brain tests and the runbook look for.
    let lease = absent(Some(seen("m1", 3, 7, 5, 16)), 14);
    let ev = Evidence {
        lease: &lease,
        fence: &FenceAttempt::NotAttempted,
        ..ev
    };
    let Gate::Open { reason, .. } = may_promote("m1", &ev, false, t(17)) else {
        panic!("expected open")
    };
    assert!(
        reason.starts_with("primary lease of m1 (held by ctl-east in east) expired"),
        "{reason}"
    );
    // A new primary nobody vouched for: the reason says what to do.
    let v = vouch("m0", 2, 5);
    let ev = Evidence { vouch: &v, ..ev };
    let Gate::Wait { reason, .. } = may_promote("m1", &ev, false, t(100)) else {
        panic!("expected wait")
    };
    assert!(
        reason.contains("no controller of region east has held the primary lease of m1"),
        "{reason}"
    );
    assert!(
        reason.contains("taken by ctl-east for m0 at epoch 2"),
        "{reason}"
    );
    assert!(reason.contains("--force"), "{reason}");
}

fn record(member: &str, under: Option<FencedUnder>, ok: bool) -> FenceRecord {
    FenceRecord {
        at: Utc.timestamp_opt(1_700_000_000, 0).single().expect("valid"),
        database: "orders".into(),
        member: member.into(),
        result: if ok {
            FenceOutcome::Fenced
        } else {
            FenceOutcome::Failed {
                error: "timeout".into(),
            }
        },
        reason: "isolated".into(),
        under,
    }
}

fn under(primary: &str, epoch: u64, lease: Option<i64>) -> Option<FencedUnder> {
    Some(FencedUnder {
        primary: primary.into(),
        epoch,
        lease_id: lease,
    })
}

#[derive(Debug, PartialEq)]
enum Judged {
    None,
    Counts,
    Failed,
    Stale(&'static str),
}

/// Issue 11: a fence record counts only for the primary and epoch (and the
/// lease) it was made under; a failed fence is not a fence.
#[test]
fn fence_records_count_only_for_their_primary_epoch_and_lease() {
    let now = db("m1", 3);
    let v = vouch("m1", 3, 7);
    let cases: Vec<(
        &str,
        Option<FenceRecord>,
        DatabaseState,
        VouchObservation,
        Judged,
    )> = vec![
        ("no record", None, now.clone(), v.clone(), Judged::None),
        (
            "fenced under this primary, epoch and lease",
            Some(record("m1", under("m1", 3, Some(7)), true)),
            now.clone(),
            v.clone(),
            Judged::Counts,
        ),
        (
            "failed fence",
            Some(record("m1", under("m1", 3, Some(7)), false)),
            now.clone(),
            v.clone(),
            Judged::Failed,
        ),
        (
            "previous epoch: m1 was primary before, fenced, then failed over away and back",
            Some(record("m1", under("m1", 1, Some(4)), true)),
            now.clone(),
            v.clone(),
            Judged::Stale("made while m1 was primary at epoch 1"),
        ),
        (
            "made while another member was primary",
            Some(record("m1", under("m0", 3, Some(7)), true)),
            now.clone(),
            v.clone(),
            Judged::Stale("made while m0 was primary"),
        ),
        (
            "a replica's record read for the primary",
            Some(record("m2", under("m1", 3, Some(7)), true)),
            now.clone(),
            v.clone(),
            Judged::Stale("it fenced m2"),
        ),
        (
            "legacy record without what it was made under",
            Some(record("m1", None, true)),
            now.clone(),
            v.clone(),
            Judged::Stale("does not say"),
        ),
        (
            "made holding no lease",
            Some(record("m1", under("m1", 3, None), true)),
            now.clone(),
            v.clone(),
            Judged::Stale("without the primary lease"),
        ),
        (
            "a lease was taken for m1 after the fence",
            Some(record("m1", under("m1", 3, Some(6)), true)),
            now.clone(),
            v.clone(),
            Judged::Stale("lease 7 was taken for m1 after it"),
        ),
        (
            "vouch unreadable: a later lease cannot be ruled out",
            Some(record("m1", under("m1", 3, Some(6)), true)),
            now.clone(),
            VouchObservation::Unknown { error: "x".into() },
            Judged::Stale("the vouch cannot be read"),
        ),
    ];
    for (name, r, state, vouch, want) in cases {
        let got = judge_record(r.as_ref(), &state, &vouch);
        match (&want, &got) {
            (Judged::None, FenceAttempt::NotAttempted) => {}
            (Judged::Counts, FenceAttempt::Fenced { member, epoch }) => {
                assert_eq!((member.as_str(), *epoch), ("m1", 3), "{name}")
            }
            (Judged::Failed, FenceAttempt::Failed { .. }) => {}
            (Judged::Stale(words), FenceAttempt::Stale { why, .. }) => {
                assert!(why.contains(words), "{name}: {why}")
            }
            _ => panic!("{name}: want {want:?}, got {got:?}"),
        }
    }
}

/// The record judged stale never opens the gate, whatever else holds.
#[test]
fn a_record_of_the_previous_epoch_never_opens_the_gate_for_the_new_primary() {
    // m1 was primary at epoch 1 and fenced; m0 took over (epoch 2); now m1
    // is primary again at epoch 3 and its region still renews its lease.
    let state = db("m1", 3);
    let v = vouch("m1", 3, 9);
    let old = record("m1", under("m1", 1, Some(4)), true);
    let fence = judge_record(Some(&old), &state, &v);
    let lease = LeaseObservation::Held(seen("m1", 3, 9, 5, 16));
    let ev = Evidence {
        state: Some(&state),
        cover: &east(),
        lease: &lease,
        vouch: &v,
        fence: &fence,
        vouched_lease: &LeaseLife::Gone,
        unseen_wait: WAIT,
    };
    let g = may_promote("m1", &ev, false, t(6));
    let Gate::Wait { reason, .. } = &g else {
        panic!("a stale record opened the gate: {g:?}")
    };
    assert!(reason.contains("does not count"), "{reason}");
}

#[test]
fn coverage_from_members_and_controllers() {
    let mut c = Coverage::default();
    c.add_member("orders", "m0", "a");
    c.add_member("orders", "m1", "b");
    c.add_controller("ctl-a", "a");
    assert_eq!(
        c.cover("orders", "m0"),
        Cover::Controlled {
            region: "a".into(),
            controllers: vec!["ctl-a".into()]
        }
    );
    assert_eq!(
        c.cover("orders", "m1"),
        Cover::NoController { region: "b".into() }
    );
    assert_eq!(c.cover("orders", "m9"), Cover::UnknownMember);
    assert_eq!(c.cover("users", "m0"), Cover::UnknownMember);
}
