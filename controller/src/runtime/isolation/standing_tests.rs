//! The isolation state machine, look by look, on instants made up by hand
//! (no clock, no runtime).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use proptest::prelude::*;
use tokio::time::Instant;

use super::*;
use crate::runtime::isolation::tests::held;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn timing() -> Timing {
    Timing::for_ttl(Duration::from_secs(4))
}

fn names(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

/// Controller `a` of `a`, `b`, `c`, started at `t0`.
fn machine(t0: Instant) -> Isolation {
    Isolation::new("a".into(), names(&["a", "b", "c"]), timing(), t0)
}

/// The three situations a look can find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Net {
    /// etcd answers; both peers answer and reach it.
    Connected,
    /// etcd silent; both peers answer, neither reaches it.
    Outage,
    /// etcd silent; no peer answers.
    Cut,
}

struct Look {
    reachable: BTreeSet<String>,
    with_etcd: BTreeSet<String>,
    silent: Duration,
    held: BTreeMap<String, HeldLease>,
}

impl Look {
    fn new(net: Net, held: BTreeMap<String, HeldLease>) -> Self {
        let peers = names(&["b", "c"]);
        let (reachable, with_etcd, silent) = match net {
            Net::Connected => (peers.clone(), peers, Duration::ZERO),
            Net::Outage => (peers, BTreeSet::new(), Duration::from_secs(1)),
            Net::Cut => (BTreeSet::new(), BTreeSet::new(), Duration::from_secs(1)),
        };
        Look {
            reachable,
            with_etcd,
            silent,
            held,
        }
    }

    fn at(&self, now: Instant) -> Seen<'_> {
        Seen {
            now,
            etcd_silent_for: self.silent,
            reachable: &self.reachable,
            with_etcd: &self.with_etcd,
            held: &self.held,
        }
    }
}

fn look(m: &mut Isolation, net: Net, now: Instant) -> Effects {
    m.step(Look::new(net, BTreeMap::new()).at(now))
}

#[test]
fn an_isolation_before_the_first_round_of_pings_is_not_trusted() {
    let t0 = Instant::now();
    let mut m = machine(t0);
    let e = look(&mut m, Net::Cut, t0 + ms(100));
    assert!(e.changed.is_none() && e.fence.is_none());
    assert_eq!(m.standing(), Standing::Unknown);
    let t1 = t0 + timing().first_round;
    let e = look(&mut m, Net::Cut, t1);
    let (before, a) = e.changed.expect("the isolation is news");
    assert_eq!((before, a.connectivity), (None, Connectivity::Isolated));
    assert_eq!(m.standing(), Standing::Isolated { since: t1 });
    assert!(
        e.fence.is_none(),
        "a blip is not an isolation: the grace first"
    );
}

#[test]
fn an_isolated_controller_fences_after_the_grace_then_rechecks() {
    let t0 = Instant::now();
    let mut m = machine(t0);
    let t1 = t0 + timing().first_round;
    look(&mut m, Net::Cut, t1);
    assert!(
        look(&mut m, Net::Cut, t1 + timing().grace - ms(1))
            .fence
            .is_none()
    );
    let order = look(&mut m, Net::Cut, t1 + timing().grace)
        .fence
        .expect("fence once the grace is over");
    assert_eq!((order.only.clone(), order.first), (None, true));
    // The pass fenced everything: looked at again after RECHECK only.
    let t2 = t1 + timing().grace + ms(300);
    m.fenced(&order, t2, true);
    assert!(look(&mut m, Net::Cut, t2 + RECHECK - ms(1)).fence.is_none());
    let again = look(&mut m, Net::Cut, t2 + RECHECK).fence.expect("recheck");
    assert!(!again.first, "a recheck skips members it cannot read");
    // A pass that failed is tried again sooner.
    let t3 = t2 + RECHECK + ms(200);
    m.fenced(&again, t3, false);
    assert!(
        look(&mut m, Net::Cut, t3 + FENCE_RETRY - ms(1))
            .fence
            .is_none()
    );
    assert!(look(&mut m, Net::Cut, t3 + FENCE_RETRY).fence.is_some());
}

#[test]
fn a_lease_deadline_before_the_grace_ends_starts_the_fence_at_the_deadline() {
    let t0 = Instant::now();
    let mut m = machine(t0);
    // Connected, holding a lease renewed at t: its fence must start by
    // t + 4 s - 1 s margin - 1 s budget = t + 2 s.
    let t = t0 + Duration::from_secs(10);
    let leases: BTreeMap<String, HeldLease> = [("orders".to_string(), held(t))].into();
    let e = m.step(Look::new(Net::Connected, leases).at(t));
    assert!(e.fence.is_none());
    // Cut at t + 1.8 s: the grace would run to t + 2.3 s, the lease's
    // deadline comes first. The lease the loop saw while connected
    // counts, though the keeper (cut from etcd) no longer reports it.
    look(&mut m, Net::Cut, t + ms(1_800));
    assert!(look(&mut m, Net::Cut, t + ms(1_999)).fence.is_none());
    let order = look(&mut m, Net::Cut, t + ms(2_000))
        .fence
        .expect("fence by the lease's start deadline");
    assert_eq!(order.only, None, "an isolated controller fences everything");
}

#[test]
fn a_lease_not_renewed_in_time_fences_its_database_while_connected() {
    let t0 = Instant::now();
    let mut m = machine(t0);
    let leases: BTreeMap<String, HeldLease> = [("orders".to_string(), held(t0))].into();
    let l = Look::new(Net::Connected, leases);
    assert!(m.step(l.at(t0 + ms(1_999))).fence.is_none());
    let order = m.step(l.at(t0 + ms(2_000))).fence.expect("overdue");
    assert_eq!(order.only, Some(names(&["orders"])));
    assert!(order.first);
    assert!(
        order.reason.contains("primary lease not renewed"),
        "{order:?}"
    );
}

#[test]
fn a_wider_scope_than_the_last_pass_is_a_first_pass_at_once() {
    let t0 = Instant::now();
    let mut m = machine(t0);
    let leases: BTreeMap<String, HeldLease> = [("orders".to_string(), held(t0))].into();
    let t = t0 + Duration::from_secs(3);
    let order = m
        .step(Look::new(Net::Connected, leases).at(t))
        .fence
        .expect("overdue");
    m.fenced(&order, t, true);
    // Then cut off, with the saved lease long past its deadline: every
    // database now, at once, though RECHECK has not passed.
    let e = look(&mut m, Net::Cut, t + ms(100));
    let wider = e.fence.expect("a wider fence at once");
    assert_eq!((wider.only, wider.first), (None, true));
}

#[test]
fn an_etcd_outage_fences_nothing_and_ends_the_fence_due() {
    let t0 = Instant::now();
    let mut m = machine(t0);
    let t1 = t0 + timing().first_round;
    look(&mut m, Net::Cut, t1);
    let order = look(&mut m, Net::Cut, t1 + timing().grace)
        .fence
        .expect("fence");
    m.fenced(&order, t1 + timing().grace, true);
    let e = look(&mut m, Net::Outage, t1 + Duration::from_secs(1));
    assert_eq!(
        e.changed.map(|(b, a)| (b, a.connectivity)),
        Some((Some(Connectivity::Isolated), Connectivity::EtcdOutage))
    );
    assert!(e.fence.is_none());
    // Cut off again later: a new isolation, with a grace of its own and
    // a first pass.
    let t2 = t1 + Duration::from_secs(5);
    assert!(look(&mut m, Net::Cut, t2).fence.is_none());
    assert_eq!(m.standing(), Standing::Isolated { since: t2 });
    let order = look(&mut m, Net::Cut, t2 + timing().grace)
        .fence
        .expect("fence");
    assert!(order.first);
}

proptest! {
    /// Over any run of looks (each after 0-3 s, connected, in an etcd
    /// outage or cut off), with or without a lease on `orders` renewed
    /// last at some moment, each fence pass ordered reported fenced or
    /// not, a fence is ordered exactly when one is due, counted here
    /// independently of the machine: while connected, when the lease's
    /// fence must start (4 s TTL - 1 s margin - 1 s budget after its
    /// renewal), for `orders` alone; while cut off, after the grace or,
    /// sooner, the lease's start as last seen connected, for everything;
    /// never in an outage. And while one is due there is always a pass
    /// ordered or one within the last RECHECK.
    #[test]
    fn a_fence_is_ordered_exactly_when_due_and_kept_up(
        renewed in proptest::option::of(0u64..20_000),
        looks in proptest::collection::vec((0u64..3_000, 0u8..3, any::<bool>()), 1..60)
    ) {
        let t0 = Instant::now();
        let mut m = machine(t0);
        let held: BTreeMap<String, HeldLease> = renewed
            .map(|at| ("orders".to_string(), held(t0 + ms(at))))
            .into_iter()
            .collect();
        let lease_start = renewed.map(|at| t0 + ms(at) + ms(2_000));
        let mut now = t0;
        let mut seen_connected = false;
        let mut last_pass: Option<Instant> = None;
        for (gap, net, ok) in looks {
            now += ms(gap);
            let net = [Net::Connected, Net::Outage, Net::Cut][net as usize];
            let e = m.step(Look::new(net, held.clone()).at(now));
            if net == Net::Cut && now < t0 + timing().first_round {
                prop_assert!(e.changed.is_none() && e.fence.is_none(), "first round");
                continue;
            }
            seen_connected |= net == Net::Connected;
            let due = match net {
                Net::Connected => lease_start.is_some_and(|s| now >= s),
                Net::Outage => false,
                Net::Cut => match m.standing() {
                    Standing::Isolated { since } => {
                        let mut act = since + timing().grace;
                        if let (true, Some(s)) = (seen_connected, lease_start) {
                            act = act.min(s);
                        }
                        now >= act
                    }
                    _ => false,
                },
            };
            match &e.fence {
                Some(o) => {
                    prop_assert!(due, "fenced while {net:?} with nothing due: {o:?}");
                    let scope = (net == Net::Connected).then(|| names(&["orders"]));
                    prop_assert_eq!(&o.only, &scope);
                }
                None if due => {
                    prop_assert!(
                        last_pass.is_some_and(|p| now < p + RECHECK),
                        "{net:?}, a fence due and none ordered or recent"
                    );
                }
                None => {}
            }
            if !due {
                last_pass = None;
            }
            if let Some(order) = &e.fence {
                m.fenced(order, now, ok);
                last_pass = Some(now);
            }
        }
    }
}
