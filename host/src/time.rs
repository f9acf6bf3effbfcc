//! The host's monotonic clock: tokio's clock, run at the rate of the
//! calling task's [`crate::Host`]. Every timer of a controller and of the
//! replication adapters it drives reads this clock, so a host whose
//! crystal runs fast fires all its timers early and counts its leases
//! short, as a real one does; instants from [`now`] are this host's and
//! are compared only with each other. Outside a host (a shipping
//! process) each function is its tokio namesake.

use std::future::IntoFuture;
use std::time::Duration;

use tokio::time::{Instant, Interval, Sleep, Timeout};

use crate::host::{HOST, Pace};

fn pace() -> Option<Pace> {
    HOST.try_with(|h| h.pace()).ok().flatten()
}

fn span(d: Duration) -> Duration {
    pace().map_or(d, |p| p.tokio_span(d))
}

fn at(deadline: Instant) -> Instant {
    pace().map_or(deadline, |p| p.tokio(deadline))
}

/// This host's clock now.
pub fn now() -> Instant {
    let t = Instant::now();
    pace().map_or(t, |p| p.local(t))
}

/// How long this host's clock has counted since `earlier` (one of its
/// own instants; zero if it is later): what `earlier.elapsed()` would
/// say, were that not read on tokio's clock.
pub fn since(earlier: Instant) -> Duration {
    now().saturating_duration_since(earlier)
}

/// Waits until this host's clock has counted `d`.
pub fn sleep(d: Duration) -> Sleep {
    tokio::time::sleep(span(d))
}

/// Waits until this host's clock reads `deadline`.
pub fn sleep_until(deadline: Instant) -> Sleep {
    tokio::time::sleep_until(at(deadline))
}

/// `f`, given up once this host's clock has counted `d`.
pub fn timeout<F: IntoFuture>(d: Duration, f: F) -> Timeout<F::IntoFuture> {
    tokio::time::timeout(span(d), f)
}

/// `f`, given up once this host's clock reads `deadline`.
pub fn timeout_at<F: IntoFuture>(deadline: Instant, f: F) -> Timeout<F::IntoFuture> {
    tokio::time::timeout_at(at(deadline), f)
}

/// Ticks every `period` of this host's clock, the first at once. The
/// instants its ticks return are tokio's: compare none of them with
/// [`now`].
pub fn interval(period: Duration) -> Interval {
    tokio::time::interval(span(period))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Host, spawn};

    #[tokio::test(start_paused = true)]
    async fn a_fast_host_counts_more_and_fires_sooner() {
        let host = Host::with_rate_ppm(10_000); // 1 % fast
        let t0 = Instant::now();
        let (local0, woke, local1, timed_out_after) = host
            .enter(|| {
                spawn(async move {
                    let local0 = now();
                    sleep(Duration::from_secs(10)).await;
                    let woke = Instant::now();
                    let local1 = now();
                    let began = Instant::now();
                    let r = timeout(Duration::from_secs(1), std::future::pending::<()>()).await;
                    assert!(r.is_err());
                    (local0, woke, local1, Instant::now() - began)
                })
            })
            .await
            .expect("ran");
        assert_eq!(local0, t0, "the clocks agree at the host's start");
        // 10 s on the host is 10/1.01 s of tokio's.
        let real = woke - t0;
        assert!(
            real > Duration::from_millis(9_900) && real < Duration::from_millis(9_902),
            "{real:?}"
        );
        let counted = local1 - local0;
        assert!(
            counted >= Duration::from_secs(10) && counted < Duration::from_millis(10_002),
            "{counted:?}"
        );
        assert!(
            timed_out_after <= Duration::from_millis(991),
            "{timed_out_after:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_read_on_a_slow_host_is_met_on_its_clock() {
        let host = Host::with_rate_ppm(-10_000); // 1 % slow
        let (asked, woke_local, real) = host
            .enter(|| {
                spawn(async move {
                    let start = Instant::now();
                    let deadline = now() + Duration::from_secs(5);
                    sleep_until(deadline).await;
                    (deadline, now(), Instant::now() - start)
                })
            })
            .await
            .expect("ran");
        assert!(woke_local >= asked && woke_local - asked < Duration::from_millis(2));
        // 5 s on a clock 1 % slow is 5/0.99 s of tokio's.
        assert!(
            real > Duration::from_millis(5_050) && real < Duration::from_millis(5_052),
            "{real:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn outside_a_host_the_clock_is_tokios() {
        let t = Instant::now();
        assert_eq!(now(), t);
        sleep(Duration::from_secs(3)).await;
        assert_eq!(Instant::now() - t, Duration::from_secs(3));
    }
}
