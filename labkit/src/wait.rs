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
    wait_for_or_fail(what, timeout, || {
        let answer = check();
        async move { answer.await.map_err(NotReady::Yet) }
    })
    .await
}

/// What a check of [`wait_for_or_fail`] found when its condition does not
/// hold.
#[derive(Debug)]
pub enum NotReady<E> {
    /// Not yet: check again.
    Yet(E),
    /// Never will (the server exited): stop waiting.
    Never(E),
}

/// Like [`wait_for`], but a check that answers [`NotReady::Never`] ends
/// the wait at once: a server that exited (a port taken before it bound
/// it, say) is retried at once rather than after the whole timeout.
pub async fn wait_for_or_fail<T, E, F, Fut>(
    what: &str,
    timeout: Duration,
    mut check: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, NotReady<E>>>,
    E: std::fmt::Display,
{
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(v) => return Ok(v),
            Err(NotReady::Never(e)) => anyhow::bail!("gave up waiting for {what}: {e}"),
            Err(NotReady::Yet(e)) => {
                if Instant::now() >= deadline {
                    anyhow::bail!("timed out after {timeout:?} waiting for {what}: {e}");
                }
            }
        }
        tokio::time::sleep(POLL).await;
    }
}
