use std::time::Duration;

use tokio::time::Instant;

use super::*;

#[test]
fn fence_deadline_ends_the_bounded_fence_a_margin_before_the_lease() {
    let t0 = Instant::now();
    let s = Duration::from_secs;
    // The numbers of record: TTL 4 s, margin 1 s, fence budget 1 s.
    let d = FenceDeadline::new(t0, s(4), s(1), s(1));
    assert_eq!(d.done_by, t0 + s(3), "done a margin before the lease");
    assert_eq!(d.start_by, t0 + s(2), "started a budget before that");
    assert_eq!(
        d.remaining(t0 + Duration::from_millis(1_500)),
        Duration::from_millis(500)
    );
    assert_eq!(d.remaining(t0 + s(30)), Duration::ZERO);
    assert!(!d.overdue(t0 + Duration::from_millis(1_999)));
    assert!(d.overdue(t0 + s(2)));
    // A 10 s lease: margin 2.5 s, budget 2 s.
    let d = FenceDeadline::new(t0, s(10), Duration::from_millis(2_500), s(2));
    assert_eq!(d.done_by, t0 + Duration::from_millis(7_500));
    assert_eq!(d.start_by, t0 + Duration::from_millis(5_500));
    // Margin and budget beyond the TTL: fence at once.
    let now = FenceDeadline::new(t0, s(1), s(5), s(1));
    assert_eq!((now.start_by, now.done_by), (t0, t0));
    let now = FenceDeadline::new(t0, s(2), s(1), s(3));
    assert_eq!((now.start_by, now.done_by), (t0, t0 + s(1)));
}

#[test]
fn fence_deadline_grace_never_passes_the_start_deadline() {
    let t0 = Instant::now();
    let s = Duration::from_secs;
    let d = FenceDeadline::new(t0, s(10), s(2), s(1));
    let grace = s(1);
    // Isolated early: act after the grace.
    let since = t0 + s(3);
    assert_eq!(d.act_at(since, grace), since + grace);
    assert!(!d.must_fence(since, since, grace));
    assert!(d.must_fence(since + grace, since, grace));
    // Isolated late: the start deadline wins over the grace, so the
    // bounded fence still ends by `done_by`.
    let late = t0 + Duration::from_millis(6_500);
    assert_eq!(d.act_at(late, grace), d.start_by);
    assert!(d.must_fence(d.start_by, late, grace));
    assert!(d.start_by + s(1) <= d.done_by);
}
