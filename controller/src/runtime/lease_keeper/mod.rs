//! Keeping the primary leases of this controller's region
//! (ARCHITECTURE.md §5): for every database whose primary (as the store
//! records it) is in this region, the region's designated controller holds
//! `leases/primary/<db>` and keeps it alive.
//!
//! It stops vouching for the primary only when that is safe: once its own
//! reads of the primary have failed for the detection time, it fences the
//! primary itself (bounded) and gives the lease up if the fence succeeded
//! or the server plainly is not running (connection refused). A primary
//! that is alive but unreadable (sessions exhausted, a hung server) keeps
//! its lease: replacing it could leave two writable primaries, so that is
//! the operator's call (`switchyard failover --force`). A primary that only
//! the probes elsewhere cannot see (a partial partition) keeps its lease,
//! and is not replaced.
//!
//! Every controller of the region tries to hold the lease; etcd's
//! create-if-absent compare lets exactly one win, and any of them takes
//! over when the holder stops renewing.
//!
//! The decisions are a state machine of their own ([`standing`]): this
//! module reads etcd and the primary, feeds what it saw to it, and
//! performs the move it gets back.

pub mod dead_man;
pub mod standing;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use switchyard_probes::replication::ReplicaSet;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::clock::Clock;
use crate::config::Config;
use crate::fence::lease::{Acquired, LeaseValue, PrimaryLease, Renewal};
use crate::fence::local::{FenceLog, FenceOutcome, FenceRecord, FencedUnder};
use crate::runtime::control::DatabaseState;
use crate::store::Store;
use standing::{Holding, Move, Standing};

/// How often leases are reconciled.
const TICK: Duration = Duration::from_secs(1);

/// A lease this controller holds, as the isolation loop needs it: its live
/// renewal state (read at the moment of the decision, never a copy that
/// the keeper's slower loop could leave stale), its TTL, and what it
/// vouches for (which a fence made under it records).
#[derive(Debug, Clone)]
pub struct HeldLease {
    /// The keep-alive's state, updated at every acknowledged renewal.
    pub renewal: watch::Receiver<Renewal>,
    /// The TTL etcd granted.
    pub ttl: Duration,
    /// The etcd lease id.
    pub lease_id: i64,
    /// The primary it vouches for.
    pub primary: String,
    /// The database epoch it vouches for (`None`: a value from before
    /// epochs were kept, not yet rewritten).
    pub epoch: Option<u64>,
}

impl HeldLease {
    /// Send time of the last renewal etcd acknowledged.
    pub fn last_renewed(&self) -> Instant {
        self.renewal.borrow().last_renewed
    }

    /// True once etcd said it is gone or its deadline passed unrenewed.
    pub fn lost(&self) -> bool {
        self.renewal.borrow().lost
    }

    /// What a fence made under this lease records.
    pub fn under(&self) -> Option<FencedUnder> {
        Some(FencedUnder {
            primary: self.primary.clone(),
            epoch: self.epoch?,
            lease_id: Some(self.lease_id),
        })
    }
}

/// How long the keeper's own fence of an unreadable primary may take.
const GIVE_UP_FENCE: Duration = Duration::from_secs(2);

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
    /// Wall clock for the lease values.
    pub clock: Arc<dyn Clock>,
    /// Where a fence done before giving a lease up is recorded (it reaches
    /// history and the promotion gate like an isolation fence).
    pub log: Arc<FenceLog>,
    /// The databases whose primary carries a dead-man switch
    /// ([`dead_man`]); the others' switches are removed.
    pub dead_man: std::collections::BTreeSet<String>,
}

impl std::fmt::Debug for LeaseKeeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseKeeper")
            .field("self_id", &self.self_id)
            .field("region", &self.region)
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
        log: Arc<FenceLog>,
    ) -> Self {
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
            dead_man: cfg
                .databases
                .iter()
                .filter(|d| d.dead_man)
                .map(|d| d.name.clone())
                .collect(),
            local_sets,
            clock,
            log,
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
        let mut standings: BTreeMap<String, Standing> = BTreeMap::new();
        let mut switches = dead_man::DeadManMemory::default();
        loop {
            if *etcd_ok.borrow() {
                for db in self.local_sets.keys() {
                    let standing = standings.entry(db.clone()).or_insert(Standing::NotOurs);
                    self.reconcile(db, &mut leases, standing, &mut switches)
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
                    let value = l.value();
                    (
                        db.clone(),
                        HeldLease {
                            renewal: l.subscribe(),
                            ttl: l.ttl(),
                            lease_id: l.lease_id(),
                            primary: value.primary,
                            epoch: value.epoch,
                        },
                    )
                })
                .collect();
            metrics::gauge!("switchyard_primary_leases_held").set(now_held.len() as f64);
            held.send_replace(now_held);
            tokio::select! {
                _ = switchyard_host::time::sleep(TICK) => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
        }
    }

    /// One tick for `db`: read the store's record, keep the lease, then
    /// the primary's dead-man switch under it.
    async fn reconcile(
        &self,
        db: &str,
        leases: &mut BTreeMap<String, PrimaryLease>,
        standing: &mut Standing,
        switches: &mut dead_man::DeadManMemory,
    ) {
        let key = self.store.keys().database(db);
        let state: DatabaseState = match self.store.get_json(&key).await {
            Ok(Some(s)) => s,
            // Not discovered yet, or etcd trouble: leave things as they are.
            _ => return,
        };
        self.keep_lease(db, &state, leases, standing).await;
        if !self.is_ours(db, &state.primary) {
            return;
        }
        let Some(set) = self.local_sets.get(db) else {
            return;
        };
        let work = dead_man::work(
            self.dead_man.contains(db),
            leases.get(db),
            &state.primary,
            state.epoch,
        );
        if let Some(record) = switches
            .perform(
                db,
                &state.primary,
                work,
                set.as_ref(),
                self.clock.now(),
                &self.self_id,
            )
            .await
            && let Err(e) = self.log.append(std::slice::from_ref(&record)).await
        {
            tracing::error!(error = %e, "cannot record the dead-man switch's fence locally");
            switches.forget_report(db);
        }
    }

    /// Whether `member` of `db` is in this controller's region.
    fn is_ours(&self, db: &str, member: &str) -> bool {
        self.member_regions.get(db).and_then(|m| m.get(member)) == Some(&self.region)
    }

    /// Reads the primary, moves the standing, and performs the move
    /// [`standing::next`] decides.
    async fn keep_lease(
        &self,
        db: &str,
        state: &DatabaseState,
        leases: &mut BTreeMap<String, PrimaryLease>,
        standing: &mut Standing,
    ) {
        let ours = self.is_ours(db, &state.primary);
        let (readable, refused) = if ours {
            self.primary_readable(db, &state.primary).await
        } else {
            (false, false)
        };
        let now = switchyard_host::time::now();
        *standing = standing.after_reading(ours, readable, now);
        let detection = self
            .detection
            .get(db)
            .copied()
            .unwrap_or(Duration::from_secs(3));
        let holding = leases.get(db).map(|l| {
            let v = l.value();
            Holding {
                verified: l.verified(),
                primary: v.primary,
                epoch: v.epoch,
            }
        });
        let mv = standing::next(
            standing,
            holding.as_ref(),
            &state.primary,
            state.epoch,
            refused,
            now,
            detection,
        );
        match mv {
            Move::Wait => {}
            Move::Release => {
                // The primary moved out of this region: nothing here can
                // be a writable primary of it any more.
                if let Some(l) = leases.remove(db) {
                    tracing::info!(database = %db, primary = %state.primary, "primary left this region; releasing its lease");
                    if let Err(e) = l.release().await {
                        tracing::warn!(database = %db, error = %e, "cannot release the primary lease; it will expire");
                    }
                }
            }
            Move::GiveUpIfSafe {
                refused,
                unreadable_for,
            } => {
                let Some(lease_id) = leases.get(db).map(PrimaryLease::lease_id) else {
                    return;
                };
                let under = FencedUnder {
                    primary: state.primary.clone(),
                    epoch: state.epoch,
                    lease_id: Some(lease_id),
                };
                if self
                    .safe_to_give_up(db, &state.primary, refused, unreadable_for, under)
                    .await
                {
                    leases.remove(db);
                    tracing::warn!(database = %db, primary = %state.primary,
                        "local primary unreadable for {unreadable_for:?} and fenced or not running: no longer renewing its lease");
                    metrics::counter!("switchyard_primary_lease_given_up_total", "database" => db.to_string())
                        .increment(1);
                } else if standing.kept_for_an_unreadable_primary() {
                    tracing::error!(database = %db, primary = %state.primary,
                        "local primary unreadable but maybe alive (not refusing connections, and it could not be fenced): \
                         still renewing its lease, so it is not replaced automatically; \
                         `switchyard failover --force` once you know it cannot take writes");
                }
            }
            Move::Verify => {
                // The grant's txn failed or timed out: see whether it applied.
                let Some(l) = leases.get_mut(db) else { return };
                match l.key_names_it().await {
                    Some(true) => {
                        l.confirm();
                        self.rewrite_if_stale(db, l, state).await;
                    }
                    Some(false) => {
                        // Neither the key nor the vouch names it: let it go.
                        if let Some(l) = leases.remove(db)
                            && let Err(e) = l.release().await
                        {
                            tracing::debug!(database = %db, error = %e, "cannot release an unused lease; it will expire");
                        }
                    }
                    None => {}
                }
            }
            Move::Rewrite => {
                if let Some(l) = leases.get(db) {
                    self.rewrite_if_stale(db, l, state).await;
                }
            }
            Move::Acquire => self.acquire(db, leases, standing, state).await,
        }
    }

    /// Rewrites the lease's value when it vouches for another primary or
    /// epoch than the store records.
    async fn rewrite_if_stale(&self, db: &str, l: &PrimaryLease, state: &DatabaseState) {
        let v = l.value();
        if (v.primary != state.primary || v.epoch != Some(state.epoch))
            && let Err(e) = l
                .set_primary(&state.primary, state.epoch, self.clock.now())
                .await
        {
            tracing::warn!(database = %db, error = %e, "cannot update the primary lease");
        }
    }

    /// Takes the lease of a readable primary nobody holds; notes who holds
    /// it otherwise.
    async fn acquire(
        &self,
        db: &str,
        leases: &mut BTreeMap<String, PrimaryLease>,
        standing: &mut Standing,
        state: &DatabaseState,
    ) {
        // Read before granting: while another controller holds the key,
        // trying every second would cost three etcd writes a second.
        let lease_key = self.store.keys().primary_lease(db);
        if let Ok(Some(held)) = self.store.get_json::<LeaseValue>(&lease_key).await
            && held.holder != self.self_id
        {
            if standing.held_by(&held.holder) {
                tracing::info!(database = %db, holder = %held.holder, "primary lease held by another controller");
            }
            return;
        }
        let value = LeaseValue {
            holder: self.self_id.clone(),
            region: self.region.clone(),
            primary: state.primary.clone(),
            epoch: Some(state.epoch),
            renewed_at: self.clock.now(),
            ttl_ms: 0,
        };
        match PrimaryLease::acquire(
            self.store.clone(),
            lease_key,
            value,
            self.ttl,
            self.clock.now(),
        )
        .await
        {
            Ok(Acquired::Held(l)) => {
                tracing::info!(database = %db, primary = %state.primary, adopted = l.adopted(), ttl = ?l.ttl(), "holding the primary lease");
                standing.holding();
                leases.insert(db.to_string(), *l);
            }
            Ok(Acquired::HeldBy(v)) => {
                if standing.held_by(&v.holder) {
                    tracing::info!(database = %db, holder = %v.holder, "primary lease held by another controller");
                }
            }
            Err(e) => {
                tracing::debug!(database = %db, error = %e, "cannot take the primary lease yet")
            }
        }
    }

    /// Whether this controller itself reads `primary` now, and if not,
    /// whether the server refused the connection (nothing listens: not
    /// running).
    async fn primary_readable(&self, db: &str, primary: &str) -> (bool, bool) {
        let Some(set) = self.local_sets.get(db) else {
            return (false, false);
        };
        match set.observe().await {
            Ok(snapshot) => {
                snapshot
                    .members
                    .iter()
                    .find(|m| m.id == primary)
                    .map_or((false, false), |m| {
                        let refused = m
                            .contact_error
                            .as_ref()
                            .is_some_and(|e| e.detail.to_ascii_lowercase().contains("refused"));
                        (m.reachable, refused)
                    })
            }
            Err(_) => (false, false),
        }
    }

    /// May the lease of an unreadable primary be given up? Only when it
    /// cannot take writes: the server refuses connections (not running), or
    /// this controller's own fence of it succeeded now.
    async fn safe_to_give_up(
        &self,
        db: &str,
        primary: &str,
        refused: bool,
        unreadable_for: Duration,
        under: FencedUnder,
    ) -> bool {
        if refused {
            return true;
        }
        let Some(set) = self.local_sets.get(db) else {
            return false;
        };
        let fenced = matches!(
            switchyard_host::time::timeout(GIVE_UP_FENCE, set.fence(primary)).await,
            Ok(Ok(()))
        );
        if fenced {
            let record = FenceRecord {
                at: self.clock.now(),
                database: db.to_string(),
                member: primary.to_string(),
                result: FenceOutcome::Fenced,
                reason: format!(
                    "{} could not read its primary for {unreadable_for:?}; fenced it before \
                     giving its lease up",
                    self.self_id
                ),
                under: Some(under),
            };
            if let Err(e) = self.log.append(std::slice::from_ref(&record)).await {
                tracing::error!(error = %e, "cannot record the fence locally");
            }
        }
        fenced
    }
}
