//! Counters a caller can read without a metrics recorder: tests assert on
//! them and the benchmark reports them. They mirror the metrics (which go
//! to Prometheus) at the cost of a few relaxed atomics per run.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Everything the probe counts; shared by the scheduler, the report
/// streams and whoever holds [`crate::Probe::stats`].
#[derive(Debug, Default)]
pub struct ProbeStats {
    checks: Vec<Arc<CheckStats>>,
    controllers: Vec<Arc<ControllerStats>>,
    delays: DelayHistogram,
}

impl ProbeStats {
    pub(crate) fn new(
        checks: Vec<Arc<CheckStats>>,
        controllers: Vec<Arc<ControllerStats>>,
    ) -> Self {
        ProbeStats {
            checks,
            controllers,
            delays: DelayHistogram::default(),
        }
    }

    /// Check runs started so far, all checks together.
    pub fn checks_run(&self) -> u64 {
        self.checks.iter().map(|c| c.runs.load(Relaxed)).sum()
    }

    /// Every check's counters.
    pub fn checks(&self) -> Vec<CheckSnapshot> {
        self.checks.iter().map(|c| c.snapshot()).collect()
    }

    /// One check's counters.
    pub fn check(&self, target: &str, check: &str) -> Option<CheckSnapshot> {
        self.checks
            .iter()
            .find(|c| c.target == target && c.check == check)
            .map(|c| c.snapshot())
    }

    /// Every controller's stream counters, in the order given to the probe.
    pub fn controllers(&self) -> Vec<ControllerSnapshot> {
        self.controllers.iter().map(|c| c.snapshot()).collect()
    }

    /// The scheduling delay below which a fraction `q` of runs started
    /// (to 100 µs below 100 ms, to 10 ms above).
    pub fn scheduling_delay_quantile(&self, q: f64) -> Duration {
        self.delays.quantile(q)
    }

    /// The largest scheduling delay of any run.
    pub fn max_scheduling_delay(&self) -> Duration {
        Duration::from_micros(self.delays.max_us.load(Relaxed))
    }

    pub(crate) fn record_delay(&self, delay: Duration) {
        self.delays.record(delay);
    }
}

/// One check's counters, as they stand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckSnapshot {
    /// Target id.
    pub target: String,
    /// Check name.
    pub check: String,
    /// Runs started.
    pub runs: u64,
    /// Runs that reported down.
    pub failures: u64,
    /// Largest scheduling delay of any run.
    pub max_scheduling_delay: Duration,
    /// Ticks skipped because a run or its wait for a slot overran.
    pub ticks_missed: u64,
}

/// One controller's stream counters, as they stand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerSnapshot {
    /// The controller's URL.
    pub url: String,
    /// Its stream is open now.
    pub connected: bool,
    /// Streams opened so far.
    pub connects: u64,
    /// Reports handed to its streams.
    pub sent: u64,
    /// Reports dropped from its full buffer (oldest first).
    pub dropped: u64,
    /// Streams it ended with `INVALID_ARGUMENT` (config mismatch).
    pub rejected: u64,
}

#[derive(Debug)]
pub(crate) struct CheckStats {
    pub target: String,
    pub check: String,
    pub runs: AtomicU64,
    pub failures: AtomicU64,
    pub max_delay_us: AtomicU64,
    pub missed: AtomicU64,
}

impl CheckStats {
    pub fn new(target: &str, check: &str) -> Self {
        CheckStats {
            target: target.to_string(),
            check: check.to_string(),
            runs: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            max_delay_us: AtomicU64::new(0),
            missed: AtomicU64::new(0),
        }
    }

    fn snapshot(&self) -> CheckSnapshot {
        CheckSnapshot {
            target: self.target.clone(),
            check: self.check.clone(),
            runs: self.runs.load(Relaxed),
            failures: self.failures.load(Relaxed),
            max_scheduling_delay: Duration::from_micros(self.max_delay_us.load(Relaxed)),
            ticks_missed: self.missed.load(Relaxed),
        }
    }
}

#[derive(Debug)]
pub(crate) struct ControllerStats {
    pub url: String,
    pub connected: AtomicBool,
    pub connects: AtomicU64,
    pub sent: AtomicU64,
    pub dropped: AtomicU64,
    pub rejected: AtomicU64,
}

impl ControllerStats {
    pub fn new(url: &str) -> Self {
        ControllerStats {
            url: url.to_string(),
            connected: AtomicBool::new(false),
            connects: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
        }
    }

    fn snapshot(&self) -> ControllerSnapshot {
        ControllerSnapshot {
            url: self.url.clone(),
            connected: self.connected.load(Relaxed),
            connects: self.connects.load(Relaxed),
            sent: self.sent.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            rejected: self.rejected.load(Relaxed),
        }
    }
}

const FINE_US: u64 = 100;
const FINE_BUCKETS: usize = 1000; // 0 – 100 ms
const COARSE_US: u64 = 10_000;
const COARSE_BUCKETS: usize = 990; // 100 ms – 10 s

/// A fixed-bucket histogram of scheduling delays, lock-free.
#[derive(Debug)]
struct DelayHistogram {
    buckets: Vec<AtomicU64>,
    max_us: AtomicU64,
}

impl Default for DelayHistogram {
    fn default() -> Self {
        DelayHistogram {
            buckets: (0..FINE_BUCKETS + COARSE_BUCKETS + 1)
                .map(|_| AtomicU64::new(0))
                .collect(),
            max_us: AtomicU64::new(0),
        }
    }
}

impl DelayHistogram {
    fn record(&self, delay: Duration) {
        let us = delay.as_micros().min(u128::from(u64::MAX)) as u64;
        self.max_us.fetch_max(us, Relaxed);
        let fine_end = FINE_US * FINE_BUCKETS as u64;
        let i = if us < fine_end {
            (us / FINE_US) as usize
        } else {
            (FINE_BUCKETS + ((us - fine_end) / COARSE_US) as usize).min(self.buckets.len() - 1)
        };
        self.buckets[i].fetch_add(1, Relaxed);
    }

    fn upper_bound(i: usize) -> Duration {
        if i < FINE_BUCKETS {
            Duration::from_micros((i as u64 + 1) * FINE_US)
        } else {
            Duration::from_micros(
                FINE_US * FINE_BUCKETS as u64 + (i - FINE_BUCKETS + 1) as u64 * COARSE_US,
            )
        }
    }

    fn quantile(&self, q: f64) -> Duration {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return Duration::ZERO;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let max = Duration::from_micros(self.max_us.load(Relaxed));
                // The last bucket is open-ended: its bound is the maximum.
                if i == counts.len() - 1 {
                    return max;
                }
                return Self::upper_bound(i).min(max);
            }
        }
        Duration::from_micros(self.max_us.load(Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_the_buckets() {
        let h = DelayHistogram::default();
        for ms in 1..=100 {
            h.record(Duration::from_millis(ms));
        }
        assert_eq!(h.quantile(0.5), Duration::from_micros(50_100));
        assert_eq!(h.quantile(0.99), Duration::from_micros(99_100));
        assert_eq!(h.quantile(1.0), Duration::from_millis(100));
    }

    #[test]
    fn long_delays_land_in_coarse_buckets() {
        let h = DelayHistogram::default();
        h.record(Duration::from_millis(250));
        h.record(Duration::from_secs(60));
        assert_eq!(h.quantile(0.5), Duration::from_millis(260));
        assert_eq!(h.quantile(1.0), Duration::from_secs(60));
    }

    #[test]
    fn an_empty_histogram_says_zero() {
        assert_eq!(DelayHistogram::default().quantile(0.99), Duration::ZERO);
    }
}
