//! When a failed action is tried again: capped exponential backoff per
//! action, longer for errors that cannot pass by themselves. Each attempt
//! writes an intent and its outcome (one history event stays once the
//! intent is compacted), so the backoff is also what bounds the etcd
//! writes of an action that keeps failing.
//!
//! Pure: the leader passes `now` in and asks before each attempt.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

/// First wait after a retryable failure.
pub const FIRST: Duration = Duration::from_secs(1);
/// Longest wait between attempts of a retryable failure.
pub const CAP: Duration = Duration::from_secs(60);
/// First wait after a failure that cannot pass by itself (access denied,
/// a precondition a person must change).
pub const FIRST_PERMANENT: Duration = Duration::from_secs(30);
/// Longest wait between attempts of such a failure.
pub const CAP_PERMANENT: Duration = Duration::from_secs(600);
/// Consecutive retryable failures after which the action is alarmed too.
pub const ALARM_AFTER: u32 = 3;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Failing {
    failures: u32,
    next_at: Instant,
    permanent: bool,
    last_error: String,
}

/// Backoff state of every action that failed last time it ran.
#[derive(Debug, Clone, Default)]
pub struct RetryBook {
    failing: BTreeMap<String, Failing>,
}

/// An action that keeps failing, for the alarm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alarm {
    /// The action's key (kind and subject).
    pub key: String,
    /// Consecutive failures.
    pub failures: u32,
    /// The last error, as journaled.
    pub last_error: String,
}

impl RetryBook {
    /// True when `key` may be tried at `now` (never failed, or its wait
    /// is over).
    pub fn ready(&self, key: &str, now: Instant) -> bool {
        self.failing.get(key).is_none_or(|f| now >= f.next_at)
    }

    /// Records a failure at `now`; returns how long until the next try.
    pub fn failed(&mut self, key: &str, retryable: bool, error: &str, now: Instant) -> Duration {
        let failures = self.failing.get(key).map_or(0, |f| f.failures) + 1;
        let wait = delay(failures, retryable);
        self.failing.insert(
            key.to_string(),
            Failing {
                failures,
                next_at: now + wait,
                permanent: !retryable,
                last_error: error.to_string(),
            },
        );
        wait
    }

    /// Forgets `key`'s failures: it succeeded.
    pub fn succeeded(&mut self, key: &str) {
        self.failing.remove(key);
    }

    /// Forgets the failures of every key `superseded` picks: an action on
    /// the same thing succeeded, so what they tried is no longer wanted
    /// (weights keyed by their values, a failover by the primary it
    /// replaced) and must not stay alarmed.
    pub fn forget_where(&mut self, mut superseded: impl FnMut(&str) -> bool) {
        self.failing.retain(|k, _| !superseded(k));
    }

    /// Actions that need a person: a failure that cannot pass by itself,
    /// or [`ALARM_AFTER`] failures in a row.
    pub fn alarms(&self) -> Vec<Alarm> {
        self.failing
            .iter()
            .filter(|(_, f)| f.permanent || f.failures >= ALARM_AFTER)
            .map(|(k, f)| Alarm {
                key: k.clone(),
                failures: f.failures,
                last_error: f.last_error.clone(),
            })
            .collect()
    }
}

/// The wait after the `failures`-th failure in a row: doubling from the
/// first wait up to the cap.
pub fn delay(failures: u32, retryable: bool) -> Duration {
    let (first, cap) = if retryable {
        (FIRST, CAP)
    } else {
        (FIRST_PERMANENT, CAP_PERMANENT)
    };
    let doublings = failures.saturating_sub(1).min(20);
    first.saturating_mul(1 << doublings).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap() {
        let table = [
            (1, true, 1),
            (2, true, 2),
            (3, true, 4),
            (6, true, 32),
            (7, true, 60),
            (1_000, true, 60),
            (1, false, 30),
            (2, false, 60),
            (5, false, 480),
            (6, false, 600),
            (u32::MAX, false, 600),
        ];
        for (failures, retryable, secs) in table {
            assert_eq!(
                delay(failures, retryable),
                Duration::from_secs(secs),
                "{failures} {retryable}"
            );
        }
    }

    #[test]
    fn an_action_waits_its_turn_and_alarms_when_it_keeps_failing() {
        let t0 = switchyard_host::time::now();
        let mut book = RetryBook::default();
        assert!(book.ready("failover:orders", t0));
        let w = book.failed("failover:orders", true, "no candidate", t0);
        assert_eq!(w, FIRST);
        assert!(!book.ready("failover:orders", t0 + Duration::from_millis(999)));
        assert!(book.ready("failover:orders", t0 + FIRST));
        // Another action is not held back.
        assert!(book.ready("set_weights:api", t0));
        assert!(book.alarms().is_empty());
        book.failed("failover:orders", true, "no candidate", t0);
        book.failed("failover:orders", true, "still none", t0);
        let alarms = book.alarms();
        assert_eq!(alarms.len(), 1);
        assert_eq!(
            (alarms[0].failures, alarms[0].last_error.as_str()),
            (3, "still none")
        );
        book.succeeded("failover:orders");
        assert!(book.alarms().is_empty());
        assert!(book.ready("failover:orders", t0));
        // Forgetting what a success superseded clears its alarm.
        book.failed("weights/api/a=0", true, "e", t0);
        book.failed("weights/api/a=0", true, "e", t0);
        book.failed("weights/api/a=0", true, "e", t0);
        assert_eq!(book.alarms().len(), 1);
        book.forget_where(|k| k.starts_with("weights/"));
        assert!(book.alarms().is_empty());
        // A permanent failure alarms at once and waits longer.
        let w = book.failed("set_weights:api", false, "AccessDenied", t0);
        assert_eq!(w, FIRST_PERMANENT);
        assert_eq!(book.alarms().len(), 1);
    }

    /// Attempts (each one intent, compacted to one history event) of an
    /// action failing for an hour: the backoff bounds the keys written.
    #[test]
    fn an_hour_of_failing_writes_a_bounded_number_of_attempts() {
        for (retryable, most) in [(true, 66), (false, 10)] {
            let mut book = RetryBook::default();
            let mut now = switchyard_host::time::now();
            let end = now + Duration::from_secs(3600);
            let mut attempts = 0;
            while now < end {
                if book.ready("k", now) {
                    attempts += 1;
                    book.failed("k", retryable, "e", now);
                }
                now += Duration::from_millis(250);
            }
            assert!(attempts <= most, "{retryable}: {attempts} attempts");
        }
    }
}
