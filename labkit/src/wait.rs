//! Polling with a deadline: how fixtures and tests wait for a condition.
//!
//! Never a fixed sleep: the condition is checked every `POLL` until it holds
//! or the deadline passes, and the error says what was awaited and the last
//! reason it was not yet true.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// How often a condition is re-checked.
pub const POLL: Duration = Duration::from_millis(50);

/// Polls `check` until it returns `Ok`, or fails after `timeout` with the
/// last error it returned.
pub async fn wait_for<T, E, F, Fut>(
    what: &str,
    timeout: Duration,
    mut check: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(v) => return Ok(v),
            Err(e) => {
                if Instant::now() >= deadline {
                    anyhow::bail!("timed out after {timeout:?} waiting for {what}: {e}");
                }
            }
        }
        tokio::time::sleep(POLL).await;
    }
}
