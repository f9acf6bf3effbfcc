//! Capped exponential backoff with jitter, for reopening report streams.

use std::time::Duration;

use rand::Rng;

/// How long to wait before reopening a stream: `initial`, doubling up to
/// `max`, each wait shortened by a random fraction up to `jitter` so that
/// many probes do not reconnect in step.
///
/// The cap also bounds how long after a controller comes back the probe
/// notices: with the default 1 s cap, reports flow again well within 2 s.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// First wait.
    pub initial: Duration,
    /// Longest wait.
    pub max: Duration,
    /// Fraction of a wait that may be cut at random, in `[0, 1)`.
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            jitter: 0.2,
        }
    }
}

/// The state of one stream's backoff.
#[derive(Debug, Clone)]
pub(crate) struct BackoffState {
    policy: Backoff,
    next: Duration,
}

impl BackoffState {
    pub fn new(policy: Backoff) -> Self {
        BackoffState {
            policy,
            next: policy.initial,
        }
    }

    /// The wait before the next attempt (with jitter); doubles the one after.
    pub fn next_wait(&mut self) -> Duration {
        let base = self.next.min(self.policy.max);
        self.next = (self.next * 2).min(self.policy.max);
        let cut = self.policy.jitter.clamp(0.0, 0.99) * rand::rng().random::<f64>();
        base.mul_f64(1.0 - cut)
    }

    /// Back to `initial`, after a stream that stayed up.
    pub fn reset(&mut self) {
        self.next = self.policy.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap() {
        let mut b = BackoffState::new(Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            jitter: 0.0,
        });
        let waits: Vec<u128> = (0..6).map(|_| b.next_wait().as_millis()).collect();
        assert_eq!(waits, vec![100, 200, 400, 800, 1000, 1000]);
        b.reset();
        assert_eq!(b.next_wait(), Duration::from_millis(100));
    }

    #[test]
    fn jitter_only_shortens() {
        let mut b = BackoffState::new(Backoff::default());
        for _ in 0..100 {
            let w = b.next_wait();
            assert!(w <= Duration::from_secs(1));
            assert!(w >= Duration::from_millis(80));
        }
    }
}
