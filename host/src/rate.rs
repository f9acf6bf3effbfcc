//! A clock's rate against tokio's, `1 + ppm/10⁶`: the one conversion
//! every simulated clock shares — a controller's host, etcd's lease clock
//! (`MemKv`), a simulated database server's — so a ppm means the same on
//! each.

use std::time::Duration;

/// How fast a clock runs against tokio's; fixed for the clock's life (a
/// crystal's error does not come and go).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate(f64);

impl Rate {
    /// Tokio's own rate.
    pub const TOKIO: Rate = Rate(1.0);

    /// A clock that gains `ppm` microseconds a second on tokio's (loses
    /// them, negative).
    ///
    /// # Panics
    ///
    /// If the clock would stand still or run backwards (`ppm ≤ −10⁶`).
    pub fn from_ppm(ppm: i64) -> Rate {
        assert!(ppm > -1_000_000, "a clock must run forwards: {ppm} ppm");
        Rate(1.0 + ppm as f64 / 1e6)
    }

    /// How long on tokio's clock this clock takes to count `d`.
    pub fn tokio_span(self, d: Duration) -> Duration {
        d.div_f64(self.0)
    }

    /// How much this clock counts while tokio's counts `d`.
    pub fn local_span(self, d: Duration) -> Duration {
        d.mul_f64(self.0)
    }
}

impl Default for Rate {
    fn default() -> Self {
        Rate::TOKIO
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_percent_fast_clock_counts_a_percent_more() {
        let fast = Rate::from_ppm(10_000);
        assert_eq!(
            fast.local_span(Duration::from_secs(100)),
            Duration::from_secs(101)
        );
        assert_eq!(
            fast.tokio_span(Duration::from_secs(101)),
            Duration::from_secs(100)
        );
        assert_eq!(
            Rate::TOKIO.tokio_span(Duration::from_secs(7)),
            Duration::from_secs(7)
        );
    }

    #[test]
    #[should_panic(expected = "a clock must run forwards")]
    fn a_clock_that_stands_still_is_refused() {
        let _ = Rate::from_ppm(-1_000_000);
    }
}
