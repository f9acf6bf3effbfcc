use proptest::prelude::*;

use super::*;

const A: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
const B: &str = "4b8e0f12-0000-11e1-9e33-c80aa9429562";

fn set(s: &str) -> MySqlGtidSet {
    s.parse().unwrap()
}

#[test]
fn parses_what_gtid_executed_prints() {
    // MySQL prints multi-source sets with ",\n" between sources.
    let s = set(&format!("{A}:1-5:7-9,\n{B}:1-3"));
    assert_eq!(s.to_string(), format!("{A}:1-5:7-9,{B}:1-3"));
    assert_eq!(s.count(), 11);
}

#[test]
fn empty_string_is_the_empty_set() {
    assert!(set("").is_empty());
    assert!(set("  ").is_empty());
    assert_eq!(set("").to_string(), "");
}

#[test]
fn uuids_are_case_insensitive_and_intervals_merge() {
    let s = set(&format!("{}:1-3,{A}:4-6:8", A.to_uppercase()));
    assert_eq!(s.to_string(), format!("{A}:1-6:8"));
}

#[test]
fn tagged_gtids_are_kept_apart_from_untagged() {
    let s = set(&format!("{A}:1-5:Batch:1-2"));
    assert_eq!(s.to_string(), format!("{A}:1-5:batch:1-2"));
    assert!(!s.contains(&set(&format!("{A}:batch:3"))));
    assert!(s.contains(&set(&format!("{A}:batch:2"))));
}

#[test]
fn rejects_garbage() {
    for bad in [
        "nonsense",
        "3e11fa47:1-5",
        A,
        &format!("{A}:0"),
        &format!("{A}:5-3"),
        &format!("{A}:1-x"),
        &format!("{A}:1-5:-bad"),
    ] {
        assert!(bad.parse::<MySqlGtidSet>().is_err(), "{bad} parsed");
    }
}

#[test]
fn difference_names_exactly_the_missing_transactions() {
    let primary = set(&format!("{A}:1-100"));
    let replica = set(&format!("{A}:1-100,{B}:1-2"));
    assert_eq!(replica.difference(&primary).to_string(), format!("{B}:1-2"));
    assert!(primary.difference(&replica).is_empty());
    let holes = set(&format!("{A}:1-10:20-30"));
    assert_eq!(
        set(&format!("{A}:1-40")).difference(&holes).to_string(),
        format!("{A}:11-19:31-40")
    );
}

#[test]
fn containment() {
    let big = set(&format!("{A}:1-10,{B}:1-5"));
    assert!(big.contains(&set(&format!("{A}:3-4"))));
    assert!(big.contains(&MySqlGtidSet::new()));
    assert!(!big.contains(&set(&format!("{A}:11"))));
    assert!(!set(&format!("{A}:1-10")).contains(&big));
}

#[test]
fn origin_filter_keeps_one_server() {
    let s = set(&format!("{A}:1-10,{B}:1-5"));
    assert_eq!(
        s.originating_from(&B.to_uppercase()).to_string(),
        format!("{B}:1-5")
    );
}

fn arb_set() -> impl Strategy<Value = MySqlGtidSet> {
    prop::collection::vec((0..2usize, 1u64..60, 0u64..8), 0..6).prop_map(|ivs| {
        let mut s = MySqlGtidSet::new();
        for (u, a, len) in ivs {
            let uuid = [A, B][u].to_string();
            s.insert(
                Sid {
                    uuid,
                    tag: String::new(),
                },
                a,
                a + len,
            );
        }
        s
    })
}

proptest! {
    #[test]
    fn display_parse_round_trip(s in arb_set()) {
        prop_assert_eq!(s.to_string().parse::<MySqlGtidSet>().unwrap(), s);
    }

    #[test]
    fn union_contains_both_and_difference_is_disjoint(a in arb_set(), b in arb_set()) {
        let u = a.union(&b);
        prop_assert!(u.contains(&a) && u.contains(&b));
        let d = a.difference(&b);
        prop_assert!(a.contains(&d));
        prop_assert!(d.difference(&b) == d);
        // a = (a - b) ∪ (a ∩ b): adding back what b has covers a.
        prop_assert!(d.union(&b).contains(&a));
        prop_assert_eq!(a.contains(&b), b.difference(&a).is_empty());
        prop_assert_eq!(u.count() , a.count() + b.difference(&a).count());
    }
}
