//! When may the leader start an external step, and for how long? Pure.
//!
//! etcd's fence guards etcd writes only; a SQL statement or a Route 53 call
//! is outside it. The one protection there is timing: a step starts only
//! while the leader's lease is certain to outlast it by a margin, and is
//! bounded so that it ends (or is abandoned) before the lease can expire.
//! A leader paused past its lease therefore finds, when it wakes, that no
//! step may start, and stops.
//!
//! A new leader that finds an intent pending from an earlier term waits,
//! on its own monotonic clock from the moment it won, for the longest time
//! the earlier leader could still be inside a step: its whole lease (the
//! new leader cannot know when it was last renewed), stretched by the
//! clock drift allowance, plus the longest step bound.

use std::time::Duration;

use tokio::time::Instant;

/// The step timing of one cluster, derived from its leader lease TTL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepTiming {
    /// The lease must outlast the end of a step by at least this much.
    pub margin: Duration,
    /// The longest budget one step is granted.
    pub max_step: Duration,
    /// A step is not started with less budget than this: wait for the next
    /// renewal instead (or give up if none comes before the margin).
    pub min_step: Duration,
    /// The leader lease TTL.
    pub lease_ttl: Duration,
    /// The clock drift rate allowed between two hosts' monotonic clocks,
    /// in parts per million (the lease is stretched by it).
    pub drift_ppm: u32,
}

/// The drift allowance: 1 % of any interval, far above what NTP-disciplined
/// or even free-running quartz clocks show (≈ 10–100 ppm).
pub const DRIFT_PPM: u32 = 10_000;

impl StepTiming {
    /// The timing for a leader lease of `ttl` with `margin`: a step gets at
    /// most half the TTL, never less than 100 ms. The margin grows to a
    /// twentieth of the TTL for long leases, so it always exceeds the drift
    /// two clocks can gather over one lease (2 % of it at 1 % each).
    pub fn for_lease(ttl: Duration, margin: Duration) -> Self {
        StepTiming {
            margin: margin.max(ttl / 20),
            max_step: (ttl / 2).max(Duration::from_millis(200)),
            min_step: Duration::from_millis(100),
            lease_ttl: ttl,
            drift_ppm: DRIFT_PPM,
        }
    }

    /// `d` stretched by the drift allowance (rounded up to the millisecond).
    pub fn stretched(&self, d: Duration) -> Duration {
        let extra = d.as_micros() * u128::from(self.drift_ppm) / 1_000_000;
        d + Duration::from_micros(u64::try_from(extra).unwrap_or(u64::MAX))
            + Duration::from_millis(1)
    }

    /// How long after winning a new leader waits before it runs a step of
    /// an intent an earlier term left pending.
    pub fn takeover_quiet(&self) -> Duration {
        self.stretched(self.lease_ttl) + self.max_step
    }
}

/// May a step start now?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// Start it, and end it within this budget.
    Start(Duration),
    /// Not yet: the lease is due for renewal and the budget left is too
    /// small; ask again after a renewal.
    WaitRenewal,
    /// Never: leadership is lost or the lease is within the margin of its
    /// deadline.
    Refuse(&'static str),
}

/// Decides whether a step may start at `now`, given whether leadership is
/// still held and the lease `deadline` (local monotonic clock, counted from
/// when the last acknowledged renewal was sent).
pub fn permit(timing: &StepTiming, held: bool, deadline: Instant, now: Instant) -> Permit {
    if !held {
        return Permit::Refuse("leadership was given up");
    }
    let left = deadline.saturating_duration_since(now);
    if left <= timing.margin {
        return Permit::Refuse("the lease may expire before any step could end");
    }
    let budget = (left - timing.margin).min(timing.max_step);
    if budget < timing.min_step {
        return Permit::WaitRenewal;
    }
    Permit::Start(budget)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing() -> StepTiming {
        StepTiming::for_lease(Duration::from_secs(2), Duration::from_millis(500))
    }

    #[test]
    fn budget_is_what_the_lease_has_left_beyond_the_margin_capped_at_half_the_ttl() {
        let t = timing();
        let now = switchyard_host::time::now();
        let ms = Duration::from_millis;
        let cases = [
            // (held, deadline - now, expected)
            (true, ms(2000), Permit::Start(ms(1000))),
            (true, ms(1200), Permit::Start(ms(700))),
            (true, ms(650), Permit::Start(ms(150))),
            (true, ms(580), Permit::WaitRenewal),
            (true, ms(500), Permit::Refuse("")),
            (true, ms(0), Permit::Refuse("")),
            (false, ms(2000), Permit::Refuse("")),
        ];
        for (held, left, want) in cases {
            let got = permit(&t, held, now + left, now);
            match (got, want) {
                (Permit::Refuse(_), Permit::Refuse(_)) => {}
                (g, w) => assert_eq!(g, w, "held {held}, {left:?} left"),
            }
        }
    }

    #[test]
    fn the_margin_outgrows_the_drift_of_a_long_lease() {
        for secs in [1u64, 2, 5, 10, 25, 60, 300] {
            let ttl = Duration::from_secs(secs);
            let t = StepTiming::for_lease(ttl, Duration::from_millis(500));
            let drift = ttl * 2 * DRIFT_PPM / 1_000_000;
            assert!(t.margin > drift, "{secs} s lease: margin {:?}", t.margin);
        }
    }

    #[test]
    fn a_deadline_in_the_past_is_refused() {
        let t = timing();
        let now = switchyard_host::time::now() + Duration::from_secs(10);
        assert!(matches!(
            permit(&t, true, now - Duration::from_secs(5), now),
            Permit::Refuse(_)
        ));
    }

    #[test]
    fn every_granted_step_ends_a_margin_before_the_deadline() {
        let t = timing();
        let now = switchyard_host::time::now();
        for left_ms in 0..3000u64 {
            let deadline = now + Duration::from_millis(left_ms);
            if let Permit::Start(b) = permit(&t, true, deadline, now) {
                assert!(
                    now + b + t.margin <= deadline,
                    "{left_ms} ms left, budget {b:?}"
                );
                assert!(b <= t.max_step);
            }
        }
    }

    #[test]
    fn a_new_leader_waits_a_whole_stretched_lease_plus_the_longest_step() {
        let t = timing();
        // 2 s lease + 1 % drift + 1 ms rounding, plus a 1 s step.
        assert_eq!(
            t.takeover_quiet(),
            Duration::from_millis(2000 + 20 + 1 + 1000)
        );
    }
}
