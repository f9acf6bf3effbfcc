//! Following accepted changes to `INSYNC` in the background.
//!
//! Route 53 applies a `ChangeBatch` atomically when it accepts it: the API
//! answers with the new records from then on, and `GetChange` says
//! `PENDING` until every Route 53 name server has it (about a minute on the
//! real service). Nothing Switchyard does next depends on that, so the
//! wait belongs outside any step: a tracker task per change polls with
//! doubling waits (paced with every other call), records how long the
//! change took, and counts one that does not get there in time.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_route53::Client;
use aws_sdk_route53::types::ChangeStatus;
use tokio::time::Instant;

use super::Timing;
use super::retry::{Pacer, classify, with_retries};

/// The longest wait between two polls of one change.
pub const MAX_POLL: Duration = Duration::from_secs(10);

/// Changes accepted and not yet seen `INSYNC`: change id → when accepted.
#[derive(Debug, Clone, Default)]
pub struct Syncing {
    pending: Arc<Mutex<BTreeMap<String, Instant>>>,
}

impl Syncing {
    /// Ids of the changes still being followed.
    pub fn pending(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Instant>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts following change `id` until `INSYNC` or `timing.sync_deadline`.
    pub fn track(&self, client: Client, pacer: Arc<Pacer>, timing: Timing, id: String) {
        let accepted = switchyard_host::time::now();
        self.lock().insert(id.clone(), accepted);
        metrics::gauge!("switchyard_route53_changes_pending").increment(1.0);
        let this = self.clone();
        switchyard_host::spawn(async move {
            let outcome = follow(&client, &pacer, timing, &id).await;
            this.lock().remove(&id);
            metrics::gauge!("switchyard_route53_changes_pending").decrement(1.0);
            match outcome {
                Ok(()) => {
                    let took = switchyard_host::time::since(accepted);
                    metrics::histogram!("switchyard_route53_sync_seconds")
                        .record(took.as_secs_f64());
                    tracing::info!(change = %id, took_ms = took.as_millis() as u64, "Route 53 change INSYNC");
                }
                Err(why) => {
                    metrics::counter!("switchyard_route53_errors_total", "kind" => "sync_timeout")
                        .increment(1);
                    tracing::warn!(change = %id, "Route 53 change not seen INSYNC: {why}; Route 53 still applies it");
                }
            }
        });
    }
}

/// The wait before poll number `n` (0-based): `first`, doubling, capped.
pub fn poll_delay(first: Duration, n: u32) -> Duration {
    first
        .saturating_mul(1 << n.min(16))
        .min(MAX_POLL.max(first))
}

async fn follow(client: &Client, pacer: &Pacer, timing: Timing, id: &str) -> Result<(), String> {
    let deadline = switchyard_host::time::now() + timing.sync_deadline;
    let mut n = 0;
    loop {
        let wait = poll_delay(timing.poll, n);
        if switchyard_host::time::now() + wait >= deadline {
            return Err(format!("still PENDING after {:?}", timing.sync_deadline));
        }
        switchyard_host::time::sleep(wait).await;
        n += 1;
        let got = with_retries(
            format!("GetChange {id}"),
            pacer,
            timing.backoff,
            deadline,
            || {
                let req = client.get_change().id(id);
                async move { req.send().await.map_err(|e| classify("GetChange", e)) }
            },
        )
        .await
        .map_err(|e| e.to_string())?;
        if got
            .change_info()
            .is_some_and(|c| *c.status() == ChangeStatus::Insync)
        {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_back_off_to_the_cap() {
        let first = Duration::from_millis(500);
        let got: Vec<u64> = (0..7)
            .map(|n| poll_delay(first, n).as_millis() as u64)
            .collect();
        assert_eq!(got, [500, 1_000, 2_000, 4_000, 8_000, 10_000, 10_000]);
        // A first wait above the cap is kept.
        assert_eq!(
            poll_delay(Duration::from_secs(20), 3),
            Duration::from_secs(20)
        );
    }
}
