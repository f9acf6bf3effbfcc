//! Rise/fall debounce per (target, vantage).

use super::*;

fn obs(ok: bool, s: i64) -> Observation {
    Observation {
        target: TargetId::from("svc:api@a"),
        vantage: "b".to_owned(),
        ok,
        observed_at: at(s),
    }
}

/// Feeds `reports` (ok, second) and returns (status after each, changed flags).
fn run(reports: &[(bool, i64)]) -> (Vec<VantageStatus>, Vec<bool>) {
    let policy = Policy::default(); // fall 3, rise 2
    let mut book = HealthBook::new();
    let mut statuses = Vec::new();
    let mut changes = Vec::new();
    for (ok, s) in reports {
        changes.push(book.record(&obs(*ok, *s), &policy));
        statuses.push(book.get("svc:api@a", "b").expect("recorded").status);
    }
    (statuses, changes)
}

/// (name, reports (ok, second), statuses after each, changed flags)
type Case<'a> = (&'a str, &'a [(bool, i64)], &'a [VantageStatus], &'a [bool]);

#[test]
fn rise_and_fall_table() {
    use VantageStatus::{Down, Unknown, Up};
    let cases: &[Case<'_>] = &[
        (
            "unknown until rise oks",
            &[(true, 0), (true, 1)],
            &[Unknown, Up],
            &[false, true],
        ),
        (
            "unknown until fall fails",
            &[(false, 0), (false, 1), (false, 2)],
            &[Unknown, Unknown, Down],
            &[false, false, true],
        ),
        (
            "one lost packet is not an outage",
            &[(true, 0), (true, 1), (false, 2), (false, 3), (true, 4)],
            &[Unknown, Up, Up, Up, Up],
            &[false, true, false, false, false],
        ),
        (
            "fall consecutive fails take it down, rise oks bring it back",
            &[
                (true, 0),
                (true, 1),
                (false, 2),
                (false, 3),
                (false, 4),
                (true, 5),
                (true, 6),
            ],
            &[Unknown, Up, Up, Up, Down, Down, Up],
            &[false, true, false, false, true, false, true],
        ),
        (
            "a pass resets the fail streak",
            &[(false, 0), (false, 1), (true, 2), (false, 3), (false, 4)],
            &[Unknown, Unknown, Unknown, Unknown, Unknown],
            &[false; 5],
        ),
        (
            "older reports are ignored",
            &[(true, 10), (true, 11), (false, 5), (false, 6), (false, 7)],
            &[Unknown, Up, Up, Up, Up],
            &[false, true, false, false, false],
        ),
        (
            "a report at the same instant counts",
            &[(true, 3), (true, 3)],
            &[Unknown, Up],
            &[false, true],
        ),
    ];
    for (name, reports, want_status, want_changed) in cases {
        let (statuses, changes) = run(reports);
        assert_eq!(&statuses, want_status, "{name}: statuses");
        assert_eq!(&changes, want_changed, "{name}: changed flags");
    }
}

#[test]
fn record_keeps_last_seen_and_streaks() {
    let policy = Policy::default();
    let mut book = HealthBook::new();
    book.record(&obs(false, 1), &policy);
    book.record(&obs(false, 2), &policy);
    let h = book.get("svc:api@a", "b").expect("recorded");
    assert_eq!((h.fails, h.oks, h.last_seen), (2, 0, at(2)));
    book.record(&obs(true, 1), &policy); // older: ignored
    let h = book.get("svc:api@a", "b").expect("recorded");
    assert_eq!((h.fails, h.oks, h.last_seen), (2, 0, at(2)));
}

#[test]
fn zero_rise_and_fall_act_like_one() {
    let policy = Policy {
        rise: 0,
        fall: 0,
        ..Policy::default()
    };
    let mut book = HealthBook::new();
    assert!(book.record(&obs(true, 0), &policy));
    assert!(book.record(&obs(false, 1), &policy));
    assert_eq!(
        book.get("svc:api@a", "b").map(|h| h.status),
        Some(VantageStatus::Down)
    );
}

#[test]
fn vantages_are_listed_in_name_order_and_forget_drops_a_target() {
    let policy = Policy::default();
    let mut book = HealthBook::new();
    for v in ["c", "a", "b"] {
        let mut o = obs(true, 0);
        o.vantage = v.to_owned();
        book.record(&o, &policy);
    }
    let names: Vec<&str> = book.vantages("svc:api@a").map(|(n, _)| n).collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert!(book.forget("svc:api@a"));
    assert!(!book.forget("svc:api@a"));
    assert_eq!(book.vantages("svc:api@a").count(), 0);
}
