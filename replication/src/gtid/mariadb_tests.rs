use proptest::prelude::*;

use super::*;

fn g(s: &str) -> MariaDbGtids {
    s.parse().unwrap()
}

#[test]
fn parses_binlog_state_and_positions() {
    let s = g("0-1001-100, 0-1002-7,\n1-1001-3");
    assert_eq!(s.to_string(), "0-1001-100,0-1002-7,1-1001-3");
    assert!(g("").is_empty());
    assert_eq!(
        "0-1-5".parse::<MariaDbGtid>().unwrap(),
        MariaDbGtid {
            domain: 0,
            server: 1,
            seq: 5
        }
    );
}

#[test]
fn rejects_garbage() {
    for bad in ["0-1", "0-1-2-3", "a-1-2", "0-1-x", "0--5"] {
        assert!(bad.parse::<MariaDbGtids>().is_err(), "{bad} parsed");
    }
}

#[test]
fn containment_is_per_domain_and_server() {
    let primary = g("0-1001-100");
    let behind = g("0-1001-90");
    let errant = g("0-1001-100,0-1003-101");
    assert!(primary.contains(&behind));
    assert!(!behind.contains(&primary));
    assert!(errant.contains(&primary));
    assert!(!primary.contains(&errant));
    // Other domains are independent.
    let a = g("0-1001-100,1-1001-5");
    let b = g("0-1001-100,2-1001-7");
    assert!(!a.contains(&b) && !b.contains(&a));
}

#[test]
fn difference_is_a_list_of_ranges() {
    let old_primary = g("0-1001-152");
    let new_primary = g("0-1001-150,0-1002-160");
    let lost = old_primary.difference(&new_primary);
    assert_eq!(
        lost,
        vec![MariaDbGtidRange {
            domain: 0,
            server: 1001,
            after: 150,
            upto: 152
        }]
    );
    assert_eq!(lost[0].to_string(), "0-1001-151..152");
    let errant = g("0-1001-100,0-1003-101").difference(&g("0-1001-100"));
    assert_eq!(errant[0].to_string(), "0-1003-1..101");
    let one = g("0-1001-101").difference(&g("0-1001-100"));
    assert_eq!(one[0].to_string(), "0-1001-101");
}

#[test]
fn without_cuts_back_to_the_other_side() {
    let r = g("0-1001-100,0-1003-101");
    let errant = r.difference(&g("0-1001-100"));
    assert_eq!(r.without(&errant), g("0-1001-100"));
    let lost = g("0-1001-152").difference(&g("0-1001-150"));
    assert_eq!(g("0-1001-152").without(&lost), g("0-1001-150"));
}

#[test]
fn wait_position_takes_the_highest_seq_per_domain() {
    let s = g("0-1001-100,0-1002-160,1-1001-3");
    assert_eq!(render_list(&s.wait_position()), "0-1002-160,1-1001-3");
}

fn arb_state() -> impl Strategy<Value = MariaDbGtids> {
    prop::collection::vec((0u32..2, 1u32..4, 1u64..50), 0..6).prop_map(|v| {
        let mut s = MariaDbGtids::new();
        for (domain, server, seq) in v {
            s.insert(MariaDbGtid {
                domain,
                server,
                seq,
            });
        }
        s
    })
}

proptest! {
    #[test]
    fn display_parse_round_trip(s in arb_state()) {
        prop_assert_eq!(s.to_string().parse::<MariaDbGtids>().unwrap(), s);
    }

    #[test]
    fn set_laws(a in arb_state(), b in arb_state()) {
        let u = a.union(&b);
        prop_assert!(u.contains(&a) && u.contains(&b));
        prop_assert_eq!(a.contains(&b), b.difference(&a).is_empty());
        // Removing what a has beyond b leaves something b contains.
        prop_assert!(b.contains(&a.without(&a.difference(&b))));
        prop_assert!(a.contains(&a.without(&a.difference(&b))));
    }
}
