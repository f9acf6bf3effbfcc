//! Keeping the primary leases of this controller's region
//! (ARCHITECTURE.md §5): for every database whose primary (as the store
//! records it) is in this region, the region's designated controller holds
//! `leases/primary/<db>` and keeps it alive.
//!
//! It vouches for the primary only while it can reach it itself: once its
//! own reads of the primary have failed for the detection time, it stops
//! renewing, so that the leader's promotion gate opens one TTL later for a
//! primary that really crashed. A primary that only the probes elsewhere
//! cannot see (a partial partition) keeps its lease, and is not replaced.
//!
//! The designated controller of a region is the one with the smallest id
//! among the region's controllers: no race between two keepers, and a
//! dead designated keeper simply lets the lease lapse.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use switchyard_probes::replication::ReplicaSet;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::clock::Clock;
use crate::config::Config;
use crate::fence::lease::{Acquired, LeaseValue, PrimaryLease};
use crate::runtime::control::DatabaseState;
use crate::store::Store;

/// How often leases are reconciled.
const TICK: Duration = Duration::from_secs(1);

/// A lease this controller holds, as the isolation loop needs it: when its
/// last renewal was sent and for how long it lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldLease {
    /// Send time of the last renewal etcd acknowledged.
    pub last_renewed: Instant,
    /// The TTL etcd granted.
    pub ttl: Duration,
}

/// Everything the keeper works with.
pub struct LeaseKeeper {
    /// Shared state.
    pub store: Store,
    /// This controller's id.
    pub self_id: String,
    /// Its region.
    pub region: String,
    /// The TTL to ask for.
    pub ttl: Duration,
    /// Database → member id → region, from the config.
    pub member_regions: BTreeMap<String, BTreeMap<String, String>>,
    /// Database → its adapter over this region's members only.
    pub local_sets: BTreeMap<String, Arc<dyn ReplicaSet>>,
    /// Database → how long the local primary may be unreadable before the
    /// keeper stops vouching for it.
    pub detection: BTreeMap<String, Duration>,
    /// Whether this controller is its region's designated keeper.
    pub designated: bool,
    /// Wall clock for the lease values.
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for LeaseKeeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseKeeper")
            .field("self_id", &self.self_id)
            .field("region", &self.region)
            .field("designated", &self.designated)
            .finish()
    }
}

impl LeaseKeeper {
    /// The keeper of controller `self_id` (in `region`) for `cfg`.
    pub fn from_config(
        cfg: &Config,
        store: Store,
        self_id: &str,
        region: &str,
        local_sets: BTreeMap<String, Arc<dyn ReplicaSet>>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let designated = cfg
            .controllers
            .iter()
            .filter(|c| c.region == region)
            .map(|c| c.id.as_str())
            .min()
            == Some(self_id);
        let fall = cfg.policy.fall.max(1);
        Self {
            store,
            self_id: self_id.to_string(),
            region: region.to_string(),
            ttl: cfg.etcd.primary_lease_ttl(),
            member_regions: cfg
                .databases
                .iter()
                .map(|d| {
                    (
                        d.name.clone(),
                        d.members
                            .iter()
                            .map(|m| (m.id.clone(), m.region.clone()))
                            .collect(),
                    )
                })
                .collect(),
            detection: cfg
                .databases
                .iter()
                .map(|d| (d.name.clone(), d.check.interval * fall))
                .collect(),
            local_sets,
            designated,
            clock,
        }
    }

    /// Reconciles every second until `shutdown`, publishing the held leases
    /// on `held`. `etcd_ok` says whether etcd answers (no attempt is made
    /// while it does not; the held leases' keep-alives go on by themselves).
    /// Leases are never revoked on shutdown: a restart must not let the
    /// majority promote around a primary that is still writable.
    pub async fn run(
        self,
        held: watch::Sender<BTreeMap<String, HeldLease>>,
        etcd_ok: watch::Receiver<bool>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut leases: BTreeMap<String, PrimaryLease> = BTreeMap::new();
        let mut unreadable_since: BTreeMap<String, Instant> = BTreeMap::new();
        let mut noted: BTreeMap<String, String> = BTreeMap::new();
        loop {
            if *etcd_ok.borrow() {
                for db in self.local_sets.keys() {
                    self.reconcile(db, &mut leases, &mut unreadable_since, &mut noted)
                        .await;
                }
            }
            leases.retain(|db, l| {
                let keep = !l.renewal().lost;
                if !keep {
                    tracing::warn!(database = %db, "primary lease lost; will take it again when etcd and the primary answer");
                }
                keep
            });
            let now_held: BTreeMap<String, HeldLease> = leases
                .iter()
                .map(|(db, l)| {
                    (
                        db.clone(),
                        HeldLease {
                            last_renewed: l.last_renewed(),
                            ttl: l.ttl(),
                        },
                    )
                })
                .collect();
            metrics::gauge!("switchyard_primary_leases_held").set(now_held.len() as f64);
            held.send_replace(now_held);
            tokio::select! {
                _ = tokio::time::sleep(TICK) => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
        }
    }

    async fn reconcile(
        &self,
        db: &str,
        leases: &mut BTreeMap<String, PrimaryLease>,
        unreadable_since: &mut BTreeMap<String, Instant>,
        noted: &mut BTreeMap<String, String>,
    ) {
        let key = self.store.keys().database(db);
        let state: DatabaseState = match self.store.get_json(&key).await {
            Ok(Some(s)) => s,
            // Not discovered yet, or etcd trouble: leave things as they are.
            _ => return,
        };
        let primary_region = self
            .member_regions
            .get(db)
            .and_then(|m| m.get(&state.primary));
        let ours = self.designated && primary_region == Some(&self.region);
        if !ours {
            if let Some(l) = leases.remove(db) {
                // The primary moved out of this region: nothing here can
                // be a writable primary of it any more.
                tracing::info!(database = %db, primary = %state.primary, "primary left this region; releasing its lease");
                if let Err(e) = l.release().await {
                    tracing::warn!(database = %db, error = %e, "cannot release the primary lease; it will expire");
                }
            }
            return;
        }
        let readable = self.primary_readable(db, &state.primary).await;
        let now = Instant::now();
        if readable {
            unreadable_since.remove(db);
        } else {
            let since = *unreadable_since.entry(db.to_string()).or_insert(now);
            let limit = self
                .detection
                .get(db)
                .copied()
                .unwrap_or(Duration::from_secs(3));
            if now.duration_since(since) >= limit {
                if leases.remove(db).is_some() {
                    tracing::warn!(database = %db, primary = %state.primary,
                        "local primary unreadable for {limit:?}: no longer renewing its lease");
                    metrics::counter!("switchyard_primary_lease_given_up_total", "database" => db.to_string())
                        .increment(1);
                }
                return;
            }
        }
        if let Some(l) = leases.get(db) {
            if l.value().primary != state.primary
                && let Err(e) = l.set_primary(&state.primary, self.clock.now()).await
            {
                tracing::warn!(database = %db, error = %e, "cannot update the primary lease");
            }
            return;
        }
        if !readable {
            // Never take a lease for a primary we cannot see.
            return;
        }
        let value = LeaseValue {
            holder: self.self_id.clone(),
            region: self.region.clone(),
            primary: state.primary.clone(),
            renewed_at: self.clock.now(),
            ttl_ms: 0,
        };
        match PrimaryLease::acquire(
            self.store.client(),
            self.store.keys().primary_lease(db),
            value,
            self.ttl,
            self.clock.now(),
        )
        .await
        {
            Ok(Acquired::Held(l)) => {
                tracing::info!(database = %db, primary = %state.primary, adopted = l.adopted(), ttl = ?l.ttl(), "holding the primary lease");
                noted.remove(db);
                leases.insert(db.to_string(), *l);
            }
            Ok(Acquired::HeldBy(v)) => {
                if noted.get(db) != Some(&v.holder) {
                    tracing::info!(database = %db, holder = %v.holder, "primary lease held by another controller");
                    noted.insert(db.to_string(), v.holder);
                }
            }
            Err(e) => {
                tracing::debug!(database = %db, error = %e, "cannot take the primary lease yet")
            }
        }
    }

    /// True when this controller itself reads `primary` now.
    async fn primary_readable(&self, db: &str, primary: &str) -> bool {
        let Some(set) = self.local_sets.get(db) else {
            return false;
        };
        match set.observe().await {
            Ok(snapshot) => snapshot
                .members
                .iter()
                .any(|m| m.id == primary && m.reachable),
            Err(_) => false,
        }
    }
}
