use std::collections::BTreeSet;
use std::time::Duration;

use proptest::prelude::*;

use super::*;

fn ids(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

const DOWN: EtcdReach = EtcdReach::Unreachable {
    for_: Duration::from_secs(3),
};

/// Name, controllers, reachable peers, etcd, expected state, expected
/// reachable count (self included).
type Case<'a> = (
    &'a str,
    &'a BTreeSet<String>,
    &'a [&'a str],
    EtcdReach,
    Connectivity,
    usize,
);

#[test]
fn table() {
    let three = ids(&["a", "b", "c"]);
    let four = ids(&["a", "b", "c", "d"]);
    let one = ids(&["a"]);
    let cases: &[Case] = &[
        (
            "etcd up, alone",
            &three,
            &[],
            EtcdReach::Reachable,
            Connectivity::Connected,
            1,
        ),
        (
            "etcd up, all",
            &three,
            &["b", "c"],
            EtcdReach::Reachable,
            Connectivity::Connected,
            3,
        ),
        (
            // A and B reach each other, C is silent and may lead with
            // etcd: a majority is not enough to fail static.
            "2 of 3 answer: isolated",
            &three,
            &["b"],
            DOWN,
            Connectivity::Isolated,
            2,
        ),
        (
            "outage, 3 of 3",
            &three,
            &["b", "c"],
            DOWN,
            Connectivity::EtcdOutage,
            3,
        ),
        (
            "cut off, 1 of 3",
            &three,
            &[],
            DOWN,
            Connectivity::Isolated,
            1,
        ),
        (
            "half of 4 is no majority",
            &four,
            &["b"],
            DOWN,
            Connectivity::Isolated,
            2,
        ),
        (
            "3 of 4 answer: isolated",
            &four,
            &["b", "c"],
            DOWN,
            Connectivity::Isolated,
            3,
        ),
        (
            "4 of 4 answer, none with etcd: outage",
            &four,
            &["b", "c", "d"],
            DOWN,
            Connectivity::EtcdOutage,
            4,
        ),
        (
            "single controller: outage",
            &one,
            &[],
            DOWN,
            Connectivity::EtcdOutage,
            1,
        ),
        (
            "self in peers not counted twice",
            &three,
            &["a"],
            DOWN,
            Connectivity::Isolated,
            1,
        ),
        (
            "unknown peers ignored",
            &three,
            &["x", "y"],
            DOWN,
            Connectivity::Isolated,
            1,
        ),
    ];
    for (name, all, peers, etcd, want, reachable) in cases {
        let peers = ids(peers);
        let a = assess(&Reach {
            self_id: "a",
            controllers: all,
            peers_reachable: &peers,
            peers_with_etcd: &BTreeSet::new(),
            etcd: *etcd,
        });
        assert_eq!(a.connectivity, *want, "{name}: {}", a.reason);
        assert_eq!(a.reachable, *reachable, "{name}");
        assert_eq!(a.total, all.len(), "{name}");
        assert_eq!(a.is_isolated(), *want == Connectivity::Isolated, "{name}");
    }
}

#[test]
fn self_missing_from_config_is_counted() {
    let others = ids(&["b", "c"]);
    let a = assess(&Reach {
        self_id: "a",
        controllers: &others,
        peers_reachable: &ids(&["b", "c"]),
        peers_with_etcd: &BTreeSet::new(),
        etcd: DOWN,
    });
    assert_eq!(a.total, 3);
    assert_eq!(a.reachable, 3);
    assert_eq!(a.connectivity, Connectivity::EtcdOutage);
}

/// Issue 11, item 2: A and B lose etcd but reach each other; C reaches
/// etcd but neither A nor B. Seen from A (and B) this must be an
/// isolation: C leads and will promote once A's primary lease expires.
#[test]
fn asymmetric_partition_is_an_isolation_not_an_outage() {
    let three = ids(&["a", "b", "c"]);
    for me in ["a", "b"] {
        let other = if me == "a" { "b" } else { "a" };
        let a = assess(&Reach {
            self_id: me,
            controllers: &three,
            peers_reachable: &ids(&[other]),
            peers_with_etcd: &BTreeSet::new(),
            etcd: DOWN,
        });
        assert_eq!(a.connectivity, Connectivity::Isolated, "{me}: {}", a.reason);
        assert_eq!(a.reachable, 2);
        assert!(a.reason.contains("c silent"), "{}", a.reason);
    }
    // The same cut with C answering A through another path but still on
    // etcd: isolated too (cut off from etcd alone).
    let a = assess(&Reach {
        self_id: "a",
        controllers: &three,
        peers_reachable: &ids(&["b", "c"]),
        peers_with_etcd: &ids(&["c"]),
        etcd: DOWN,
    });
    assert_eq!(a.connectivity, Connectivity::Isolated, "{}", a.reason);
    // etcd fully down and everybody answers: fail static.
    let a = assess(&Reach {
        self_id: "a",
        controllers: &three,
        peers_reachable: &ids(&["b", "c"]),
        peers_with_etcd: &BTreeSet::new(),
        etcd: DOWN,
    });
    assert_eq!(a.connectivity, Connectivity::EtcdOutage, "{}", a.reason);
    assert!(
        a.reason.contains("all 3 controllers answer"),
        "{}",
        a.reason
    );
}

#[test]
fn reasons_name_the_numbers() {
    let three = ids(&["a", "b", "c"]);
    let a = assess(&Reach {
        self_id: "a",
        controllers: &three,
        peers_reachable: &BTreeSet::new(),
        peers_with_etcd: &BTreeSet::new(),
        etcd: DOWN,
    });
    assert_eq!(a.etcd_unreachable_for, Some(Duration::from_secs(3)));
    assert!(a.reason.contains("1 of 3"), "{}", a.reason);
    assert!(a.reason.contains("3000ms"), "{}", a.reason);
    assert_eq!(a.connectivity.to_string(), "isolated");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn isolated_iff_no_etcd_and_someone_silent(
        n in 1usize..12,
        reach_mask in any::<u16>(),
        etcd_up in any::<bool>(),
        down_ms in 0u64..100_000,
    ) {
        let all: BTreeSet<String> = (0..n).map(|i| format!("c{i}")).collect();
        let peers: BTreeSet<String> = (1..n)
            .filter(|i| reach_mask & (1 << i) != 0)
            .map(|i| format!("c{i}"))
            .collect();
        let etcd = if etcd_up {
            EtcdReach::Reachable
        } else {
            EtcdReach::Unreachable { for_: Duration::from_millis(down_ms) }
        };
        let a = assess(&Reach {
            self_id: "c0",
            controllers: &all,
            peers_reachable: &peers,
            peers_with_etcd: &BTreeSet::new(),
            etcd,
        });
        // Issue 11: fail static only when every controller answers (and
        // none reaches etcd); anything less without etcd is an isolation.
        let with_self = peers.len() + 1;
        prop_assert_eq!(a.is_isolated(), !etcd_up && with_self < n);
        prop_assert_eq!(
            a.connectivity == Connectivity::EtcdOutage,
            !etcd_up && with_self == n
        );
        prop_assert_eq!(a.connectivity == Connectivity::Connected, etcd_up);
    }
}

#[test]
fn losing_etcd_alone_while_peers_reach_it_is_an_isolation() {
    let three = ids(&["a", "b", "c"]);
    let peers = ids(&["b", "c"]);
    // b still reaches etcd: a is cut off from etcd alone.
    let a = assess(&Reach {
        self_id: "a",
        controllers: &three,
        peers_reachable: &peers,
        peers_with_etcd: &ids(&["b"]),
        etcd: DOWN,
    });
    assert_eq!(a.connectivity, Connectivity::Isolated, "{}", a.reason);
    assert!(a.reason.contains("while b reach it"), "{}", a.reason);
    // A peer that says it reaches etcd but does not answer us any more
    // is silent: isolated all the same (it may lead and promote).
    let a = assess(&Reach {
        self_id: "a",
        controllers: &three,
        peers_reachable: &ids(&["c"]),
        peers_with_etcd: &ids(&["b"]),
        etcd: DOWN,
    });
    assert_eq!(a.connectivity, Connectivity::Isolated, "{}", a.reason);
    assert!(a.reason.contains("b silent"), "{}", a.reason);
    // While etcd answers us, what peers say about it does not matter.
    let a = assess(&Reach {
        self_id: "a",
        controllers: &three,
        peers_reachable: &peers,
        peers_with_etcd: &ids(&["b", "c"]),
        etcd: EtcdReach::Reachable,
    });
    assert_eq!(a.connectivity, Connectivity::Connected);
}
