//! Staying under Route 53's API limits: a pacer that spaces every call at
//! least 1/rate apart (the account limit is shared by every caller, so
//! bursting and then backing off wastes it), and capped, jittered
//! exponential backoff for the answers that mean "later": `Throttling`,
//! `PriorRequestNotComplete` (the zone is still applying an earlier
//! change), 5xx and transport failures — until a deadline.

use std::fmt::Display;
use std::time::Duration;

use aws_sdk_route53::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use rand::Rng;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::traffic::TrafficError;

/// Error codes that mean "the same call may succeed later".
const RETRY_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "PriorRequestNotComplete",
    "RequestLimitExceeded",
    "ServiceUnavailable",
];

/// How one failed call should be handled.
#[derive(Debug)]
pub enum Failure {
    /// Back off and try again (until the deadline).
    Retry(String),
    /// The request is wrong; retrying cannot help.
    Refused(String),
    /// Route 53 cannot be used now, and retrying here would not help.
    Unavailable(String),
}

impl Failure {
    /// A short label for `switchyard_route53_errors_total{kind}`.
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::Retry(_) => "retried",
            Failure::Refused(_) => "refused",
            Failure::Unavailable(_) => "unavailable",
        }
    }
}

/// Classifies an SDK error of any Route 53 operation.
pub fn classify<E, R>(op: &str, err: SdkError<E, R>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    let text = format!("{op}: {}", DisplayErrorContext(&err));
    match &err {
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or_default();
            if RETRY_CODES.contains(&code) {
                Failure::Retry(text)
            } else if code.is_empty() {
                // No parseable error body: a proxy or server failure.
                Failure::Retry(text)
            } else if code.starts_with("Invalid") || code.starts_with("NoSuch") {
                Failure::Refused(text)
            } else {
                Failure::Unavailable(text)
            }
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            Failure::Retry(text)
        }
        _ => Failure::Unavailable(text),
    }
}

/// Spaces calls at least `interval` apart, across every task sharing it.
#[derive(Debug)]
pub struct Pacer {
    interval: Duration,
    next: Mutex<Option<Instant>>,
}

impl Pacer {
    /// A pacer for at most `per_second` calls a second (0 means 1).
    pub fn new(per_second: u32) -> Self {
        Pacer {
            interval: Duration::from_secs(1) / per_second.max(1),
            next: Mutex::new(None),
        }
    }

    /// Waits for this call's slot.
    pub async fn wait(&self) {
        let mut next = self.next.lock().await;
        let now = switchyard_host::time::now();
        let at = next.map_or(now, |n| n.max(now));
        if at > now {
            switchyard_host::time::sleep_until(at).await;
        }
        *next = Some(at + self.interval);
    }
}

/// Capped exponential backoff with jitter: attempt n waits a random time
/// in [d/2, d] where d = min(cap, base · 2ⁿ), so retrying callers spread
/// out instead of throttling each other again in step.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// The first delay.
    pub base: Duration,
    /// The largest delay.
    pub cap: Duration,
}

impl Backoff {
    /// The delay before retry number `attempt` (0-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let d = self
            .base
            .saturating_mul(2u32.saturating_pow(attempt.min(20)))
            .min(self.cap);
        let half = d / 2;
        let jitter = rand::rng().random_range(0..=half.as_millis().max(1) as u64);
        half + Duration::from_millis(jitter)
    }
}

/// Calls `f` (paced) until it succeeds, fails for good, or the next retry
/// would pass `deadline`.
pub async fn with_retries<T, F, Fut>(
    what: impl Display,
    pacer: &Pacer,
    backoff: Backoff,
    deadline: Instant,
    mut f: F,
) -> Result<T, TrafficError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Failure>>,
{
    let started = switchyard_host::time::now();
    let mut attempt = 0u32;
    loop {
        pacer.wait().await;
        let result = f().await;
        if let Err(failure) = &result {
            metrics::counter!("switchyard_route53_errors_total", "kind" => failure.kind())
                .increment(1);
        }
        match result {
            Ok(v) => return Ok(v),
            Err(Failure::Refused(m)) => return Err(TrafficError::Refused(m)),
            Err(Failure::Unavailable(m)) => return Err(TrafficError::Unavailable(m)),
            Err(Failure::Retry(m)) => {
                let delay = backoff.delay(attempt);
                if switchyard_host::time::now() + delay >= deadline {
                    return Err(TrafficError::Unavailable(format!(
                        "{what}: gave up after {} attempts in {:.1?} (deadline reached); last error: {m}",
                        attempt + 1,
                        switchyard_host::time::since(started)
                    )));
                }
                tracing::warn!(%what, attempt, delay_ms = delay.as_millis() as u64, error = %m, "Route 53 call failed; retrying");
                switchyard_host::time::sleep(delay).await;
                attempt += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_the_cap_with_jitter() {
        let b = Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(2),
        };
        for _ in 0..100 {
            let d0 = b.delay(0);
            assert!(d0 >= Duration::from_millis(50) && d0 <= Duration::from_millis(101));
            let d9 = b.delay(9);
            assert!(d9 >= Duration::from_secs(1) && d9 <= Duration::from_millis(2001));
        }
    }

    #[tokio::test]
    async fn pacer_spaces_calls() {
        let p = Pacer::new(10);
        let t0 = switchyard_host::time::now();
        for _ in 0..5 {
            p.wait().await;
        }
        assert!(t0.elapsed() >= Duration::from_millis(400));
    }
}
