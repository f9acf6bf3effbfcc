//! Keeping an etcd lease alive: one loop shared by the leader election and
//! the primary leases. It renews every `period` (TTL/4 for the leader
//! lease, TTL/8 for primary leases: see [`PRIMARY_RENEWALS_PER_TTL`]), publishes each acknowledged
//! renewal (the deadline counts from when the renewal was *sent*, so it is
//! never optimistic), and marks the lease lost — and stops — when etcd says
//! it is gone or the deadline passes unrenewed.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::kv::{KeepAlive, KvError, LeaseId};
use crate::store::{CALL_TIMEOUT, Store};

/// Where the keeper stands, published on a watch channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Renewal {
    /// Local monotonic instant at which the last renewal that etcd
    /// acknowledged was *sent* (so the lease surely lasts TTL from here).
    pub last_renewed: Instant,
    /// When the lease expires unless renewed again: `last_renewed` + TTL.
    pub deadline: Instant,
    /// etcd said the lease is gone, or the deadline passed unrenewed. The
    /// keeper has stopped; start a new one after re-reading the state.
    pub lost: bool,
}

/// How many renewals a primary lease gets per TTL. Its holder starts
/// fencing half a TTL after the last acknowledged renewal
/// ([`crate::runtime::isolation::Timing`]), so with eight a primary is
/// fenced only after three renewals in a row went unanswered, even with the
/// shortest TTL (2 s: a renewal every 250 ms).
pub const PRIMARY_RENEWALS_PER_TTL: u32 = 8;

/// Renews `lease` every `period` (at least 100 ms; at worst a `period` has
/// passed since the last renewal when trouble starts) through one
/// keep-alive stream (a new one after a failure), and publishes each
/// acknowledged renewal; marks it lost and stops when etcd says it is gone
/// or the deadline passes.
pub async fn keep_alive(
    store: Store,
    lease: LeaseId,
    period: Duration,
    status: watch::Sender<Renewal>,
    on_renewal: impl Fn() + Send,
) {
    let period = period.max(Duration::from_millis(100));
    let lose = |status: &watch::Sender<Renewal>| {
        status.send_modify(|r| r.lost = true);
    };
    let mut stream: Option<Box<dyn KeepAlive>> = None;
    loop {
        let current = *status.borrow();
        if switchyard_host::time::now() >= current.deadline {
            lose(&status);
            return;
        }
        if stream.is_none() {
            let budget = current
                .deadline
                .saturating_duration_since(switchyard_host::time::now());
            match switchyard_host::time::timeout(
                budget.min(CALL_TIMEOUT),
                store.kv.keep_alive_stream(lease),
            )
            .await
            {
                Ok(Ok(opened)) => stream = Some(opened),
                // etcd no longer knows the lease: it will not come back.
                Ok(Err(KvError::LeaseNotFound(_))) => {
                    lose(&status);
                    return;
                }
                _ => {
                    switchyard_host::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            }
        }
        let Some(renewals) = stream.as_mut() else {
            continue;
        };
        let sent = switchyard_host::time::now();
        // A reply may take longer than the period (a far or busy etcd
        // leader): only one slower than two periods (at least 500 ms)
        // drops the stream, so frequent renewals do not make a slow etcd
        // look like a lost one.
        let budget = current
            .deadline
            .saturating_duration_since(sent)
            .min((period * 2).max(Duration::from_millis(500)));
        match switchyard_host::time::timeout(budget, renewals.renew()).await {
            Ok(Ok(ttl)) => {
                let deadline = sent + ttl;
                status.send_modify(|r| {
                    if deadline > r.deadline {
                        r.last_renewed = sent;
                        r.deadline = deadline;
                    }
                });
                on_renewal();
            }
            Ok(Err(KvError::LeaseNotFound(_))) => {
                lose(&status);
                return;
            }
            _ => {
                stream = None;
                continue;
            }
        }
        switchyard_host::time::sleep_until(sent + period).await;
    }
}
