use chrono::{DateTime, TimeZone, Utc};

use super::*;
use crate::fence::lease::{LeaseValue, ObservedLease};

fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + secs, 0)
        .single()
        .expect("valid")
}

fn db(primary: &str) -> DatabaseState {
    DatabaseState {
        primary: primary.to_string(),
        epoch: 3,
        last_failover: None,
    }
}

fn seen(primary: &str, seen_at: i64, expires_at: i64) -> ObservedLease {
    ObservedLease {
        value: LeaseValue {
            holder: "ctl-east".into(),
            region: "east".into(),
            primary: primary.into(),
            renewed_at: t(0),
            ttl_ms: 10_000,
        },
        lease_id: 7,
        seen_at: t(seen_at),
        expires_at: t(expires_at),
    }
}

fn fenced(m: &str) -> FenceAttempt {
    FenceAttempt::Fenced { member: m.into() }
}

fn failed(m: &str) -> FenceAttempt {
    FenceAttempt::Failed {
        member: m.into(),
        error: "unreachable".into(),
    }
}

enum Want {
    Open(OpenedBy),
    Wait(Option<i64>),
}

#[test]
fn table() {
    use FenceAttempt::NotAttempted;
    use LeaseObservation::*;
    let unknown = Unknown {
        error: "etcd down".into(),
    };
    let cases: Vec<(&str, LeaseObservation, FenceAttempt, bool, i64, Want)> = vec![
        (
            "live lease, no fence",
            Held(seen("m1", 5, 16)),
            NotAttempted,
            false,
            6,
            Want::Wait(Some(16)),
        ),
        (
            "live lease, fence failed",
            Held(seen("m1", 5, 16)),
            failed("m1"),
            false,
            6,
            Want::Wait(Some(16)),
        ),
        (
            "live lease, fence ok",
            Held(seen("m1", 5, 16)),
            fenced("m1"),
            false,
            6,
            Want::Open(OpenedBy::Fenced),
        ),
        (
            "fenced another member",
            Held(seen("m1", 5, 16)),
            fenced("m2"),
            false,
            6,
            Want::Wait(Some(16)),
        ),
        (
            "lease for another member still shuts",
            Held(seen("m9", 5, 16)),
            NotAttempted,
            false,
            6,
            Want::Wait(Some(16)),
        ),
        (
            "stale held observation",
            Held(seen("m1", 5, 16)),
            NotAttempted,
            false,
            20,
            Want::Wait(None),
        ),
        (
            "gone, drift margin pending",
            Absent {
                last_seen: Some(seen("m1", 5, 16)),
            },
            NotAttempted,
            false,
            15,
            Want::Wait(Some(16)),
        ),
        (
            "gone and expired",
            Absent {
                last_seen: Some(seen("m1", 5, 16)),
            },
            NotAttempted,
            false,
            16,
            Want::Open(OpenedBy::LeaseExpired),
        ),
        (
            "gone and expired, fence failed",
            Absent {
                last_seen: Some(seen("m1", 5, 16)),
            },
            failed("m1"),
            false,
            17,
            Want::Open(OpenedBy::LeaseExpired),
        ),
        (
            "never seen by this leader, a lease may still run",
            Unseen {
                since: t(3),
                until: t(12),
            },
            NotAttempted,
            false,
            11,
            Want::Wait(Some(12)),
        ),
        (
            "never seen by this leader for a full lease",
            Unseen {
                since: t(3),
                until: t(12),
            },
            failed("m1"),
            false,
            12,
            Want::Open(OpenedBy::NoLease),
        ),
        (
            "never seen, fenced",
            Unseen {
                since: t(3),
                until: t(12),
            },
            fenced("m1"),
            false,
            4,
            Want::Open(OpenedBy::Fenced),
        ),
        (
            "never held",
            Absent { last_seen: None },
            NotAttempted,
            false,
            0,
            Want::Open(OpenedBy::NoLease),
        ),
        (
            "etcd unreadable",
            unknown.clone(),
            NotAttempted,
            false,
            0,
            Want::Wait(None),
        ),
        (
            "etcd unreadable, fenced",
            unknown.clone(),
            fenced("m1"),
            false,
            0,
            Want::Open(OpenedBy::Fenced),
        ),
        (
            "forced over live lease",
            Held(seen("m1", 5, 16)),
            NotAttempted,
            true,
            6,
            Want::Open(OpenedBy::Forced),
        ),
        (
            "forced over unknown",
            unknown,
            failed("m1"),
            true,
            0,
            Want::Open(OpenedBy::Forced),
        ),
    ];
    for (name, lease, fence, force, now, want) in cases {
        let g = may_promote(&db("m1"), &lease, &fence, force, t(now));
        match (want, &g) {
            (Want::Open(by), Gate::Open { by: got, .. }) => assert_eq!(*got, by, "{name}: {g:?}"),
            (Want::Wait(until), Gate::Wait { until: got, .. }) => {
                assert_eq!(*got, until.map(t), "{name}: {g:?}")
            }
            (_, g) => panic!("{name}: unexpected {g:?}"),
        }
        assert_eq!(g.is_open(), matches!(g, Gate::Open { .. }));
    }
}

#[test]
fn forced_reason_is_recorded_for_history() {
    let g = may_promote(
        &db("m1"),
        &LeaseObservation::Held(seen("m1", 5, 16)),
        &FenceAttempt::NotAttempted,
        true,
        t(6),
    );
    assert_eq!(
        g,
        Gate::Open {
            by: OpenedBy::Forced,
            reason: "forced: gate skipped".into()
        }
    );
}

#[test]
fn reasons_say_who_holds_and_why() {
    let g = may_promote(
        &db("m1"),
        &LeaseObservation::Held(seen("m9", 5, 16)),
        &failed("m1"),
        false,
        t(6),
    );
    let Gate::Wait { reason, .. } = g else {
        panic!("expected wait")
    };
    assert!(reason.contains("held by ctl-east in east"), "{reason}");
    assert!(reason.contains("names m9, not m1"), "{reason}");
    assert!(
        reason.contains("fencing m1 failed: unreachable"),
        "{reason}"
    );
}
