//! The quorum rule over fresh vantages.

use super::*;

/// A vantage's settled view: Up, Down, or Unknown (only one report), and how
/// many seconds before `now` it last reported.
#[derive(Clone, Copy)]
enum V {
    Up(i64),
    Down(i64),
    Undecided(i64),
}

const NOW: i64 = 100;

fn book_of(vantages: &[(&str, V)], policy: &Policy) -> HealthBook {
    let mut book = HealthBook::new();
    for (name, v) in vantages {
        let (ok, age, times) = match *v {
            V::Up(age) => (true, age, policy.rise),
            V::Down(age) => (false, age, policy.fall),
            V::Undecided(age) => (false, age, 1),
        };
        for _ in 0..times {
            book.record(
                &Observation {
                    target: TargetId::from("svc:api@a"),
                    vantage: (*name).to_owned(),
                    ok,
                    observed_at: at(NOW - age),
                },
                policy,
            );
        }
    }
    book
}

/// (name, quorum, vantages, expected verdict)
type Case<'a> = (&'a str, usize, &'a [(&'a str, V)], Verdict);

#[test]
fn verdict_table() {
    use V::{Down, Undecided, Up};
    use Verdict as X;
    let cases: &[Case<'_>] = &[
        ("nobody reported", 2, &[], X::Unknown),
        (
            "one fresh vantage is below quorum",
            2,
            &[("a", Down(0))],
            X::Unknown,
        ),
        (
            "two fresh downs",
            2,
            &[("a", Down(0)), ("b", Down(1))],
            X::Down,
        ),
        (
            "a cut-off probe alone cannot evacuate",
            2,
            &[("a", Down(0)), ("b", Up(0)), ("c", Up(0))],
            X::Up,
        ),
        (
            "quorum of downs wins even against ups",
            2,
            &[("a", Down(0)), ("b", Down(0)), ("c", Up(0))],
            X::Down,
        ),
        (
            "stale downs do not vote",
            2,
            &[("a", Down(4)), ("b", Down(10)), ("c", Up(0))],
            X::Unknown,
        ),
        (
            "exactly stale_after old is still fresh",
            2,
            &[("a", Down(3)), ("b", Down(3))],
            X::Down,
        ),
        ("two ups of two", 2, &[("a", Up(0)), ("b", Up(0))], X::Up),
        (
            "ups without a majority of the fresh are Unknown",
            2,
            &[
                ("a", Up(0)),
                ("b", Up(0)),
                ("c", Undecided(0)),
                ("d", Undecided(0)),
            ],
            X::Unknown,
        ),
        (
            "undecided vantages count as fresh but do not vote",
            2,
            &[("a", Down(0)), ("b", Undecided(0)), ("c", Up(0))],
            X::Unknown,
        ),
        (
            "quorum 3 needs three downs",
            3,
            &[("a", Down(0)), ("b", Down(0)), ("c", Up(0))],
            X::Unknown,
        ),
        ("quorum 0 acts as 1", 0, &[("a", Down(0))], X::Down),
        (
            "a report from the future is fresh",
            2,
            &[("a", Down(-5)), ("b", Down(0))],
            X::Down,
        ),
    ];
    for (name, quorum, vantages, want) in cases {
        let policy = Policy {
            quorum: *quorum,
            ..Policy::default()
        };
        let book = book_of(vantages, &policy);
        let v = verdict(&book, &TargetId::from("svc:api@a"), &policy, at(NOW));
        assert_eq!(v.verdict, *want, "{name}: {:?}", v.reasons);
        if v.verdict != Verdict::Up || v.up != v.fresh || v.stale > 0 {
            assert!(!v.reasons.is_empty(), "{name}: reasons");
        }
    }
}

#[test]
fn reasons_name_the_vantages_on_each_side() {
    let policy = Policy::default();
    let book = book_of(
        &[
            ("eu", V::Down(0)),
            ("ap", V::Down(0)),
            ("us", V::Up(0)),
            ("sa", V::Down(9)),
        ],
        &policy,
    );
    let v = verdict(&book, &TargetId::from("svc:api@a"), &policy, at(NOW));
    assert_eq!(
        (v.verdict, v.fresh, v.up, v.down, v.stale),
        (Verdict::Down, 3, 1, 2, 1)
    );
    let text = v.reasons.join(" ");
    assert!(text.contains("svc:api@a"), "{text}");
    assert!(text.contains("down by ap, eu"), "{text}");
    assert!(text.contains("up by us"), "{text}");
    assert!(text.contains("stale sa"), "{text}");
    assert!(text.contains("quorum 2"), "{text}");
}

#[test]
fn unanimous_up_needs_no_words() {
    let policy = Policy::default();
    let book = book_of(&[("a", V::Up(0)), ("b", V::Up(0))], &policy);
    let v = verdict(&book, &TargetId::from("svc:api@a"), &policy, at(NOW));
    assert_eq!((v.verdict, v.up, v.fresh), (Verdict::Up, 2, 2));
    assert!(v.reasons.is_empty());
}
