//! The isolation loop every controller runs (ARCHITECTURE.md §5): is this
//! controller cut off, and if so, fence its own region's primaries before
//! the primary lease it renewed last can expire.
//!
//! - etcd answers: connected. Fence records kept while isolated are written
//!   to history now. A primary lease held here whose renewals have failed
//!   for so long that only the fence's budget is left before its fence
//!   deadline is fenced for all the same: etcd answering reads does not
//!   keep the lease alive.
//! - etcd silent, every controller answers and none reaches etcd: an etcd
//!   outage. Fail static: nothing is fenced (and, without etcd, nothing is
//!   promoted).
//! - otherwise: isolated. After a short grace (a blip is not an isolation),
//!   and never later than the start deadline of the leases held (so that
//!   the bounded fence ends a margin before the lease can expire), every
//!   local member that may take writes is fenced, and a record of it is
//!   kept on local disk.
//!
//! The decisions are a state machine of their own ([`standing`]); this
//! module's [`IsolationLoop`] feeds it and performs the fences it orders.

pub mod standing;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::clock::Clock;
use crate::executor::{HistoryEvent, history_id};
use crate::fence::isolation::{Assessment, Connectivity, FenceDeadline};
use crate::fence::local::{FenceLog, FenceOutcome, FenceRecord, LocalFencer};
use crate::runtime::lease_keeper::HeldLease;
use crate::store::{Store, StoreError};
use standing::{Isolation, Seen};

/// How often the loop looks.
const TICK: Duration = Duration::from_millis(100);
/// How often etcd is asked whether it answers.
const ETCD_PROBE: Duration = Duration::from_millis(250);
/// How often pending fence records are looked for.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// The longest wait between two attempts to write them while etcd fails.
const FLUSH_MAX_BACKOFF: Duration = Duration::from_secs(16);

/// The timing of the isolation decision, derived from the primary lease TTL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// etcd silent for this long counts as unreachable.
    pub etcd_silence: Duration,
    /// An isolation must last this long before fencing (unless the fence
    /// deadline comes first).
    pub grace: Duration,
    /// The fence is done this long before the held lease's deadline.
    pub margin: Duration,
    /// The bound of one fence (every local database at once).
    pub fence_budget: Duration,
    /// Bound of one etcd reachability probe.
    pub probe_timeout: Duration,
    /// How long after start peers count as unknown rather than gone.
    pub first_round: Duration,
}

impl Timing {
    /// For a primary lease of `ttl`: the fence is done a margin of a quarter
    /// of it (at least 500 ms) before the lease can expire, and bounded by a
    /// budget of a quarter too (250 ms to 2 s), so it starts at the latest
    /// half a TTL after the last renewal (TTL 4 s: start by +2 s, done by
    /// +3 s, lease gone at +4 s at the earliest). etcd silence and grace are
    /// an eighth (300 ms to 1 s each), so a blip of a few hundred
    /// milliseconds never fences anything.
    pub fn for_ttl(ttl: Duration) -> Self {
        let eighth = (ttl / 8).clamp(Duration::from_millis(300), Duration::from_secs(1));
        Self {
            etcd_silence: eighth,
            grace: eighth,
            margin: super::lease_keeper::dead_man::margin(ttl),
            fence_budget: (ttl / 4).clamp(Duration::from_millis(250), Duration::from_secs(2)),
            probe_timeout: eighth,
            first_round: crate::runtime::peers::first_round(ttl),
        }
    }

    /// The fence deadline of `lease` ([`FenceDeadline`]).
    pub fn deadline_of(&self, lease: &HeldLease) -> FenceDeadline {
        FenceDeadline::new(
            lease.last_renewed(),
            lease.ttl,
            self.margin,
            self.fence_budget,
        )
    }
}

/// Everything the loop works with.
pub struct IsolationLoop {
    /// Shared state (reachability probe and history writes).
    pub store: Store,
    /// This controller's id.
    pub self_id: String,
    /// Every controller id in the config.
    pub controllers: BTreeSet<String>,
    /// One fencer per database with members in this region.
    pub fencers: Vec<LocalFencer>,
    /// Timing.
    pub timing: Timing,
    /// Wall clock for records.
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for IsolationLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IsolationLoop")
            .field("self_id", &self.self_id)
            .field("fencers", &self.fencers)
            .field("timing", &self.timing)
            .finish()
    }
}

/// The etcd reachability probe: a count-only read of the leader key, every
/// [`ETCD_PROBE`], bounded by `timeout`. Publishes the instant of the last
/// answer. Reads only: it adds no etcd writes.
pub async fn probe_etcd(
    store: Store,
    timeout: Duration,
    last_ok: watch::Sender<Instant>,
    etcd_ok: watch::Sender<bool>,
    silence: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let key = store.keys().leader();
    loop {
        let sent = switchyard_host::time::now();
        let ok = matches!(
            switchyard_host::time::timeout(timeout, store.exists(&key)).await,
            Ok(Ok(_))
        );
        if ok {
            last_ok.send_replace(sent);
        }
        let reachable = ok || switchyard_host::time::since(*last_ok.borrow()) < silence;
        etcd_ok.send_if_modified(|v| {
            let changed = *v != reachable;
            *v = reachable;
            changed
        });
        tokio::select! {
            _ = switchyard_host::time::sleep_until(sent + ETCD_PROBE) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}

/// What the isolation loop watches, each fed by its own task.
#[derive(Debug)]
pub struct Inputs {
    /// When etcd last answered (from [`probe_etcd`]).
    pub last_etcd_ok: watch::Receiver<Instant>,
    /// Peers whose last ping was answered.
    pub peers: watch::Receiver<BTreeSet<String>>,
    /// Reachable peers that reach etcd themselves.
    pub peers_with_etcd: watch::Receiver<BTreeSet<String>>,
    /// The primary leases this controller holds (from the lease keeper).
    pub held: watch::Receiver<BTreeMap<String, HeldLease>>,
}

impl IsolationLoop {
    /// Runs until `shutdown`: every [`TICK`], one look at the inputs
    /// through the state machine, and the fence pass it orders.
    pub async fn run(self, inputs: Inputs, mut shutdown: watch::Receiver<bool>) {
        let mut machine = Isolation::new(
            self.self_id.clone(),
            self.controllers.clone(),
            self.timing,
            switchyard_host::time::now(),
        );
        metrics::gauge!("switchyard_isolated").set(0.0);
        metrics::gauge!("switchyard_peers_reachable").set(0.0);
        let mut shown_peers = 0usize;
        loop {
            let now = switchyard_host::time::now();
            // The inputs are borrowed for the step only (it copies what it
            // keeps), never across the fence's await.
            let effects = {
                let reachable = inputs.peers.borrow();
                let with_etcd = inputs.peers_with_etcd.borrow();
                let held = inputs.held.borrow();
                if reachable.len() != shown_peers {
                    shown_peers = reachable.len();
                    metrics::gauge!("switchyard_peers_reachable").set(shown_peers as f64);
                }
                machine.step(Seen {
                    now,
                    etcd_silent_for: now.saturating_duration_since(*inputs.last_etcd_ok.borrow()),
                    reachable: &reachable,
                    with_etcd: &with_etcd,
                    held: &held,
                })
            };
            if let Some((before, a)) = &effects.changed {
                self.log_change(*before, a);
                metrics::gauge!("switchyard_isolated").set(if a.is_isolated() { 1.0 } else { 0.0 });
            }
            if let Some(order) = effects.fence {
                let ok = self
                    .fence(
                        &order.reason,
                        order.only.as_ref(),
                        machine.leases(),
                        order.first,
                    )
                    .await;
                machine.fenced(&order, switchyard_host::time::now(), ok);
            }
            tokio::select! {
                _ = switchyard_host::time::sleep(TICK) => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
        }
    }

    fn log_change(&self, old: Option<Connectivity>, a: &Assessment) {
        match (old, a.connectivity) {
            (None, Connectivity::Connected) => {
                tracing::info!(reason = %a.reason, "connectivity: connected")
            }
            (_, Connectivity::Isolated) => {
                tracing::error!(reason = %a.reason, "ISOLATED: this region's primaries will be fenced before their lease can expire")
            }
            (_, Connectivity::EtcdOutage) => {
                tracing::warn!(reason = %a.reason, "etcd outage: failing static (nothing fenced, nothing promoted)")
            }
            (_, c) => tracing::info!(reason = %a.reason, "connectivity: {c}"),
        }
    }

    /// Fences every local database (or those in `only`) at once, all
    /// bounded by the fence budget; true when every target was fenced.
    /// Each record says which primary, epoch and lease it was made under.
    async fn fence(
        &self,
        reason: &str,
        only: Option<&BTreeSet<String>>,
        leases: &BTreeMap<String, HeldLease>,
        include_unreachable: bool,
    ) -> bool {
        let started = switchyard_host::time::now();
        let now = self.clock.now();
        let budget = self.timing.fence_budget;
        let all = self
            .fencers
            .iter()
            .filter(|f| only.is_none_or(|o| o.contains(f.database())))
            .map(|fencer| async move {
                let under = leases.get(fencer.database()).and_then(HeldLease::under);
                let fenced = switchyard_host::time::timeout(
                    budget,
                    fencer.fence_targets(now, reason, include_unreachable, under.as_ref()),
                )
                .await;
                match fenced {
                    Ok((records, logged)) => {
                        if let Err(e) = logged {
                            // The fence itself was done; only its local record failed.
                            tracing::error!(database = %fencer.database(), error = %e, "cannot record the fence locally");
                        }
                        records.iter().all(|r| r.result == FenceOutcome::Fenced)
                    }
                    Err(_) => {
                        tracing::error!(database = %fencer.database(), ?budget, "fence not done within its budget; retrying");
                        false
                    }
                }
            });
        let ok = futures_util::future::join_all(all)
            .await
            .into_iter()
            .all(|ok| ok);
        metrics::histogram!("switchyard_isolation_fence_seconds")
            .record(switchyard_host::time::since(started).as_secs_f64());
        ok
    }
}

/// Writes the local fence records to history (and, for members fenced, a
/// fence record the promotion gate trusts) whenever etcd answers, one
/// record at a time, each cleared locally once written. Its own task, so
/// a slow etcd right after a heal never holds up the isolation loop.
pub async fn flush_records(
    store: Store,
    self_id: String,
    log: Arc<FenceLog>,
    etcd_ok: watch::Receiver<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = FLUSH_EVERY;
    loop {
        tokio::select! {
            _ = switchyard_host::time::sleep(backoff) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        if !*etcd_ok.borrow() {
            continue;
        }
        let records = match log.pending().await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the local fence records");
                continue;
            }
        };
        backoff = FLUSH_EVERY;
        for r in &records {
            match write_record(&store, &self_id, r).await {
                Ok(()) => {
                    if let Err(e) = log.acknowledge(std::slice::from_ref(r)).await {
                        tracing::error!(error = %e, "fence record written to history but not cleared locally");
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "cannot write fence records to history yet");
                    backoff = (backoff * 2).min(FLUSH_MAX_BACKOFF);
                    break;
                }
            }
        }
        if !records.is_empty() && backoff == FLUSH_EVERY {
            tracing::info!(
                count = records.len(),
                "fences done while isolated are now in history"
            );
        }
    }
}

async fn write_record(store: &Store, self_id: &str, r: &FenceRecord) -> Result<(), StoreError> {
    let (hid, event) = history_of(self_id, r);
    store.put_json(store.keys().history(&hid), &event).await?;
    if r.result == FenceOutcome::Fenced {
        store
            .put_json(store.keys().fence(&r.database, &r.member), r)
            .await?;
    }
    Ok(())
}

/// The earliest fence deadline of the leases held; with none held, the
/// grace alone decides (start at `since` + grace, done a budget later).
pub fn fence_deadline(
    leases: &BTreeMap<String, HeldLease>,
    since: Instant,
    timing: &Timing,
) -> FenceDeadline {
    leases
        .values()
        .map(|l| timing.deadline_of(l))
        .min_by_key(|d| d.start_by)
        .unwrap_or(FenceDeadline {
            start_by: since + timing.grace,
            done_by: since + timing.grace + timing.fence_budget,
        })
}

/// The databases whose lease this controller still holds (not yet lost)
/// but has not renewed for so long that the fence must start now, and
/// why: a holder that cannot renew fences before its lease can expire,
/// whatever else answers. `None` when no lease is overdue.
pub fn overdue(
    leases: &BTreeMap<String, HeldLease>,
    now: Instant,
    timing: &Timing,
) -> Option<(BTreeSet<String>, String)> {
    let late: BTreeMap<&String, Duration> = leases
        .iter()
        .filter(|(_, l)| !l.lost() && timing.deadline_of(l).overdue(now))
        .map(|(db, l)| (db, now.saturating_duration_since(l.last_renewed())))
        .collect();
    if late.is_empty() {
        return None;
    }
    let words: Vec<String> = late
        .iter()
        .map(|(db, d)| format!("{db} ({}ms)", d.as_millis()))
        .collect();
    Some((
        late.keys().map(|db| (*db).clone()).collect(),
        format!(
            "primary lease not renewed for {}: fenced before it can expire",
            words.join(", ")
        ),
    ))
}

/// The history event for one local fence record, and its id.
pub fn history_of(self_id: &str, r: &FenceRecord) -> (String, HistoryEvent) {
    let outcome = match &r.result {
        FenceOutcome::Fenced => "fenced (read-only, sessions killed)".to_string(),
        FenceOutcome::Failed { error } => format!("fence FAILED: {error}"),
    };
    let event = HistoryEvent {
        at: r.at,
        by: self_id.to_string(),
        what: format!("isolation fence {}/{}: {outcome}", r.database, r.member),
        reasons: vec![r.reason.clone()],
        journal_id: None,
        steps: Vec::new(),
    };
    let hid = history_id(
        r.at,
        &format!("fence-{self_id}-{}-{}", r.database, r.member),
    );
    (hid, event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone as _, Utc};

    #[test]
    fn timing_scales_with_the_primary_lease() {
        let t = Timing::for_ttl(Duration::from_secs(4));
        assert_eq!(t.etcd_silence, Duration::from_millis(500));
        assert_eq!(t.grace, Duration::from_millis(500));
        assert_eq!(t.margin, Duration::from_secs(1));
        assert_eq!(t.fence_budget, Duration::from_secs(1));
        // Long leases: a blip of up to a second never fences; the fence
        // budget stays bounded.
        let t = Timing::for_ttl(Duration::from_secs(30));
        assert_eq!(t.grace, Duration::from_secs(1));
        assert_eq!(t.margin, Duration::from_millis(7500));
        assert_eq!(t.fence_budget, Duration::from_secs(2));
        // The shortest lease the config allows (2 s): fence by +1 s, done
        // by +1.5 s.
        let t = Timing::for_ttl(Duration::from_secs(2));
        assert_eq!(t.etcd_silence, Duration::from_millis(300));
        assert_eq!(t.margin, Duration::from_millis(500));
        assert_eq!(t.fence_budget, Duration::from_millis(500));
        for secs in 2..120 {
            let ttl = Duration::from_secs(secs);
            let t = Timing::for_ttl(ttl);
            // Worst case: the last renewal was acknowledged a renewal
            // period (TTL/8) before the cut. Seeing etcd gone takes the
            // silence and a tick (a peer that still reaches etcd, or
            // answers no more, makes that an isolation at once; a silent
            // peer is dropped within two pings, later, but then it was
            // reaching etcd: see `assess`). The fence must start by then
            // and end, within its budget, a margin before the lease can
            // expire at etcd.
            let period = ttl / crate::store::keepalive::PRIMARY_RENEWALS_PER_TTL;
            let seen = period + t.etcd_silence + TICK;
            let t0 = switchyard_host::time::now();
            let lease = FenceDeadline::new(t0, ttl, t.margin, t.fence_budget);
            let start_after = lease.start_by - t0;
            assert_eq!(lease.done_by - lease.start_by, t.fence_budget, "{secs}s");
            assert_eq!(t0 + ttl - lease.done_by, t.margin, "{secs}s");
            assert!(
                seen <= start_after,
                "{secs}s: seen {seen:?} > start {start_after:?} ({t:?})"
            );
            assert!(t.margin >= Duration::from_millis(500), "{secs}s");
            assert!(
                period + t.etcd_silence + t.grace <= ttl - t.margin,
                "{secs}s"
            );
        }
    }

    pub(super) fn held(last_renewed: Instant) -> HeldLease {
        let ttl = Duration::from_secs(4);
        let (_, renewal) = watch::channel(crate::fence::lease::Renewal {
            last_renewed,
            deadline: last_renewed + ttl,
            lost: false,
        });
        HeldLease {
            renewal,
            ttl,
            lease_id: 7,
            primary: "m0".into(),
            epoch: Some(3),
        }
    }

    #[test]
    fn the_earliest_lease_sets_the_deadline_and_none_means_the_grace() {
        let timing = Timing::for_ttl(Duration::from_secs(4));
        let now = switchyard_host::time::now();
        let since = now;
        assert_eq!(
            fence_deadline(&BTreeMap::new(), since, &timing).start_by,
            since + timing.grace
        );
        let leases: BTreeMap<String, HeldLease> = [
            (
                "orders".to_string(),
                held(now - Duration::from_millis(1000)),
            ),
            ("users".to_string(), held(now - Duration::from_millis(200))),
        ]
        .into();
        let d = fence_deadline(&leases, since, &timing);
        // 4 s after the older renewal, less the 1 s margin: done by +2 s
        // from now, so started by +1 s (the 1 s budget).
        assert_eq!(d.done_by, now + Duration::from_secs(2));
        assert_eq!(d.start_by, now + Duration::from_secs(1));
        // The grace comes first here, so fencing starts after it.
        assert_eq!(d.act_at(since, timing.grace), since + timing.grace);
        assert!(!d.must_fence(since, since, timing.grace));
        assert!(d.must_fence(since + timing.grace, since, timing.grace));
    }

    /// Issue 11: a holder that cannot renew fences before its lease can
    /// expire, counted from its last successful renewal, even while etcd
    /// still answers its reads.
    #[test]
    fn a_lease_not_renewed_for_half_its_ttl_is_overdue() {
        let timing = Timing::for_ttl(Duration::from_secs(4));
        let now = switchyard_host::time::now();
        let leases: BTreeMap<String, HeldLease> = [
            (
                "orders".to_string(),
                held(now - Duration::from_millis(2_000)),
            ),
            (
                "users".to_string(),
                held(now - Duration::from_millis(1_900)),
            ),
        ]
        .into();
        let (dbs, reason) = overdue(&leases, now, &timing).expect("orders is overdue");
        assert_eq!(dbs, BTreeSet::from(["orders".to_string()]));
        assert!(reason.contains("orders (2000ms)"), "{reason}");
        assert!(overdue(&leases, now - Duration::from_millis(1), &timing).is_none());
        // A lease already lost is the keeper's to drop, not overdue.
        let (tx, renewal) = watch::channel(crate::fence::lease::Renewal {
            last_renewed: now - Duration::from_secs(5),
            deadline: now - Duration::from_secs(1),
            lost: true,
        });
        drop(tx);
        let lost: BTreeMap<String, HeldLease> = [(
            "orders".to_string(),
            HeldLease {
                renewal,
                ..held(now)
            },
        )]
        .into();
        assert!(overdue(&lost, now, &timing).is_none());
        // What a fence under it records.
        let under = held(now).under().expect("epoch known");
        assert_eq!(
            (under.primary.as_str(), under.epoch, under.lease_id),
            ("m0", 3, Some(7))
        );
        assert!(
            HeldLease {
                epoch: None,
                ..held(now)
            }
            .under()
            .is_none()
        );
    }

    #[test]
    fn fence_records_become_history_events_naming_who_and_why() {
        let at = Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap();
        let fenced = FenceRecord {
            at,
            database: "orders".into(),
            member: "m0".into(),
            result: FenceOutcome::Fenced,
            reason: "etcd unreachable for 900ms and only 1 of 3 controllers reachable".into(),
            under: None,
        };
        let (id, e) = history_of("ctl-a", &fenced);
        assert_eq!(
            id,
            format!("{:013}-fence-ctl-a-orders-m0", at.timestamp_millis())
        );
        assert_eq!(e.by, "ctl-a");
        assert_eq!(
            e.what,
            "isolation fence orders/m0: fenced (read-only, sessions killed)"
        );
        assert_eq!(e.reasons, vec![fenced.reason.clone()]);
        let failed = FenceRecord {
            result: FenceOutcome::Failed {
                error: "connection refused".into(),
            },
            ..fenced
        };
        assert_eq!(
            history_of("ctl-a", &failed).1.what,
            "isolation fence orders/m0: fence FAILED: connection refused"
        );
    }
}
