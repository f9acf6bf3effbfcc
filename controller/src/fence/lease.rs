//! The primary lease: one key per database, `leases/primary/<db>`, attached
//! to an etcd lease that the controller in the primary's region keeps alive.
//!
//! It is how the majority side knows when an unreachable primary is safe to
//! replace: the keeper's controller fences its region's primaries before
//! its own deadline for this lease (see
//! [`FenceDeadline`](crate::fence::isolation::FenceDeadline)), and etcd
//! deletes the key only after that deadline has passed (by etcd's clock:
//! the holder's deadline counts from before its last acknowledged renewal
//! was sent, etcd's expiry from when it arrived). So once etcd no longer
//! has the lease, the old primary is either fenced or its controller is
//! dead with it — see [`crate::fence::gate`].
//!
//! Renewals are etcd keep-alives, not writes: the value is written when the
//! lease is granted and when the primary changes, never at renewal rate.
//!
//! Beside the lease key, every grant and every change of primary also
//! writes a *vouch* (`leases/vouched/<db>`, no etcd lease attached, in the
//! same transaction): which controller took a lease for which primary and
//! database epoch. It outlives the lease, so a leader that never saw the
//! lease can still tell "a lease for this primary existed and is gone"
//! (its holder fenced, or it expired) from "nobody ever took one" (a new
//! primary whose region's controller has not taken its lease yet, which
//! nobody would fence): see [`crate::fence::gate`].

use crate::task::AbortOnDrop;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::fence::gate::Coverage;
use crate::fence::isolation::FenceDeadline;
pub use crate::store::keepalive::Renewal;
use crate::store::keepalive::{PRIMARY_RENEWALS_PER_TTL, keep_alive};
use crate::store::kv::{CmpOp, Compare, LeaseId, Op, OpResult, Txn};
use crate::store::{CALL_TIMEOUT, Store, StoreError, encode};

/// The leader may have seen a renewal up to this much "late" relative to the
/// holder's clock; added to every observed expiry.
pub const DEFAULT_DRIFT_MARGIN: Duration = Duration::from_millis(500);

/// The JSON value of `leases/primary/<db>`: who renews it, for which
/// primary, so the leader and an operator can read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseValue {
    /// The controller id that renews it.
    pub holder: String,
    /// That controller's region (the primary's region).
    pub region: String,
    /// The member id of the primary it protects.
    pub primary: String,
    /// The database epoch (`state/databases/<db>`) under which that member
    /// is the primary; `None` in values written before epochs were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
    /// When the value was last written (grant, or a change of primary);
    /// renewals are keep-alives and do not rewrite it.
    pub renewed_at: DateTime<Utc>,
    /// The TTL etcd granted, in milliseconds.
    pub ttl_ms: u64,
}

/// The JSON value of `leases/vouched/<db>`: the last primary lease taken
/// for the database (the lease's value, and its etcd lease id). Written in
/// the same transaction as the lease key at every grant and change of
/// primary, never deleted, so it says which (primary, epoch) a region's
/// controller has vouched for even after the lease itself is gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vouch {
    /// The lease's value when it was written.
    #[serde(flatten)]
    pub lease: LeaseValue,
    /// The etcd lease id it was attached to.
    pub lease_id: i64,
}

impl Vouch {
    /// True when it vouches for `primary` at database epoch `epoch`.
    pub fn covers(&self, primary: &str, epoch: u64) -> bool {
        self.lease.primary == primary && self.lease.epoch == Some(epoch)
    }
}

/// A held primary lease and the task that keeps it alive. Dropping it stops
/// renewing and leaves the lease to expire on its own (never revoked: a
/// controller restart must not let the majority promote around a primary
/// that is still writable).
pub struct PrimaryLease {
    store: Store,
    key: String,
    lease: LeaseId,
    ttl: Duration,
    value: Mutex<LeaseValue>,
    status: watch::Receiver<Renewal>,
    adopted: bool,
    verified: bool,
    _task: AbortOnDrop,
}

/// What [`PrimaryLease::acquire`] got.
#[derive(Debug)]
pub enum Acquired {
    /// This controller holds (or re-adopted) the lease.
    Held(Box<PrimaryLease>),
    /// Another controller holds it; its value.
    HeldBy(LeaseValue),
}

impl std::fmt::Debug for PrimaryLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrimaryLease")
            .field("key", &self.key)
            .field("lease", &self.lease)
            .field("ttl", &self.ttl)
            .field("renewal", &*self.status.borrow())
            .finish()
    }
}

impl PrimaryLease {
    /// Takes the lease only if nobody holds the key: grants a lease of `ttl`
    /// (whole seconds, at least one), then puts `value` attached to it with
    /// a `create_revision == 0` compare, and keeps it alive every TTL/8.
    /// `value.renewed_at` is overwritten with `now`, `value.ttl_ms` with the
    /// TTL etcd granted. When the key is held by
    /// `value.holder` itself (this controller before a restart), the
    /// existing etcd lease is adopted and kept alive, so a restart never
    /// leaves a gap. When another controller holds it, nothing changes and
    /// its value is returned.
    pub async fn acquire(
        store: Store,
        key: String,
        value: LeaseValue,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Acquired, StoreError> {
        let mut value = value;
        let sent = switchyard_host::time::now();
        let grant = store.grant_lease(ttl).await?;
        let lease = grant.id;
        let ttl = grant.ttl.max(Duration::from_secs(1));
        value.renewed_at = now;
        value.ttl_ms = ttl.as_millis() as u64;
        let json = encode(&key, &value)?;
        let put = Op::put_leased(key.clone(), json, lease);
        let vouch = vouch_op(&key, &value, lease)?;
        let txn = Txn::when([Compare::create_revision(key.clone(), CmpOp::Equal, 0)])
            .and_then([put, vouch])
            .or_else([Op::get(key.clone())]);
        // A failed or timed-out txn may still have been applied: the key
        // and the vouch may name this lease, and the gate takes a vouched
        // lease that etcd no longer has as over, its primary fenced. So the
        // lease is neither revoked nor left to run out unwatched: it is kept
        // alive and handed back as held but *unverified* — the isolation
        // loop fences under it like any other — until the keeper reads the
        // key and either confirms it or lets it go ([`Self::verified`]).
        let resp = match store.txn(txn).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(key = %key, error = %e, "primary lease txn failed or timed out; keeping the lease until the key says whether it was applied");
                return Ok(Acquired::Held(Box::new(
                    Self::keep(store, key, lease, ttl, value, sent).unverified(),
                )));
            }
        };
        if resp.succeeded {
            return Ok(Acquired::Held(Box::new(Self::keep(
                store, key, lease, ttl, value, sent,
            ))));
        }
        // Someone holds the key: give the new lease back, then see who.
        let _ = store.revoke_lease(lease).await;
        let existing = resp.results.into_iter().find_map(|op| match op {
            OpResult::Got(Some(kv)) => Some((kv.value, kv.lease)),
            _ => None,
        });
        let Some((raw, existing_lease)) = existing else {
            // Gone between the compare and the read: the next call takes it.
            return Err(StoreError::BadValue {
                key,
                reason: "held, then released, during the attempt; try again".into(),
            });
        };
        let held: LeaseValue = serde_json::from_slice(&raw).map_err(|e| StoreError::BadValue {
            key: key.clone(),
            reason: e.to_string(),
        })?;
        if held.holder != value.holder {
            return Ok(Acquired::HeldBy(held));
        }
        // Ours from before a restart: keep that lease alive. Until a renewal
        // is acknowledged, its deadline is what etcd says is left
        // (truncated to the second), never a fresh TTL from now.
        let ttl = Duration::from_millis(held.ttl_ms).max(Duration::from_secs(1));
        let remaining = match store.lease_time_to_live(existing_lease).await {
            Ok(left) if !left.is_zero() => left.min(ttl),
            _ => Duration::ZERO,
        };
        let deadline = sent + remaining;
        let mut adopted = Self::keep(
            store,
            key,
            existing_lease,
            ttl,
            held,
            deadline.checked_sub(ttl).unwrap_or(sent),
        );
        adopted.adopted = true;
        Ok(Acquired::Held(Box::new(adopted)))
    }

    fn keep(
        store: Store,
        key: String,
        lease: LeaseId,
        ttl: Duration,
        value: LeaseValue,
        sent: Instant,
    ) -> Self {
        let (tx, status) = watch::channel(Renewal {
            last_renewed: sent,
            deadline: sent + ttl,
            lost: false,
        });
        let period = ttl / PRIMARY_RENEWALS_PER_TTL;
        let task = crate::task::spawn(keep_alive(store.clone(), lease, period, tx, || {
            metrics::counter!("switchyard_primary_lease_renewals_total").increment(1);
        }));
        Self {
            store,
            key,
            lease,
            ttl,
            value: Mutex::new(value),
            status,
            adopted: false,
            verified: true,
            _task: AbortOnDrop(task),
        }
    }

    fn unverified(mut self) -> Self {
        self.verified = false;
        self
    }

    /// False while it is unknown whether the key names this lease (the
    /// grant's txn failed or timed out: it may have been applied). The
    /// keeper then reads the key: [`Self::confirm`] if it names this lease,
    /// else it lets the lease go ([`Self::release`] is safe then: neither
    /// the key nor the vouch, written in the same txn, names it).
    pub fn verified(&self) -> bool {
        self.verified
    }

    /// Records that the key names this lease.
    pub fn confirm(&mut self) {
        self.verified = true;
    }

    /// Reads whether the key names this lease now (`None`: etcd unreadable).
    pub async fn key_names_it(&self) -> Option<bool> {
        match self.store.get(&self.key).await {
            Ok(kv) => Some(kv.is_some_and(|kv| kv.lease == self.lease)),
            Err(_) => None,
        }
    }

    /// True when this handle adopted a lease this controller held before a
    /// restart rather than granting a new one.
    pub fn adopted(&self) -> bool {
        self.adopted
    }

    /// The etcd lease id.
    pub fn lease_id(&self) -> i64 {
        self.lease
    }

    /// The TTL etcd granted.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The key it holds.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The value as last written.
    pub fn value(&self) -> LeaseValue {
        self.value.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The current renewal state.
    pub fn renewal(&self) -> Renewal {
        *self.status.borrow()
    }

    /// When the last acknowledged renewal was sent (local monotonic clock).
    pub fn last_renewed(&self) -> Instant {
        self.renewal().last_renewed
    }

    /// When the lease expires unless renewed again.
    pub fn deadline(&self) -> Instant {
        self.renewal().deadline
    }

    /// A receiver of every renewal, for the isolation loop.
    pub fn subscribe(&self) -> watch::Receiver<Renewal> {
        self.status.clone()
    }

    /// By when this controller must start and finish fencing if it cannot
    /// renew from now on (see [`FenceDeadline`]).
    pub fn fence_deadline(&self, margin: Duration, budget: Duration) -> FenceDeadline {
        FenceDeadline::new(self.last_renewed(), self.ttl, margin, budget)
    }

    /// Resolves when the lease is lost (or the keeper ended).
    pub async fn lost(&self) {
        let mut rx = self.status.clone();
        let _ = rx.wait_for(|r| r.lost).await;
    }

    /// Rewrites the value for a new primary or epoch (same lease), e.g.
    /// after a switchover inside the region, and the vouch with it in one
    /// transaction (which fails as a whole once the lease has expired).
    pub async fn set_primary(
        &self,
        primary: &str,
        epoch: u64,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut value = self.value();
        value.primary = primary.to_string();
        value.epoch = Some(epoch);
        value.renewed_at = now;
        let json = encode(&self.key, &value)?;
        let put = Op::put_leased(self.key.clone(), json, self.lease);
        let vouch = vouch_op(&self.key, &value, self.lease)?;
        self.store
            .txn(Txn::default().and_then([put, vouch]))
            .await?;
        *self.value.lock().unwrap_or_else(|e| e.into_inner()) = value;
        Ok(())
    }

    /// Revokes the lease at once (the key vanishes). Only for when no member
    /// of this region can be a writable primary of the database any more
    /// (the primary moved to another region): revoking lets the leader
    /// promote without waiting for the TTL.
    pub async fn release(self) -> Result<(), StoreError> {
        self.store.revoke_lease(self.lease).await
    }
}

/// One lease as the leader saw it. Times are on the leader's monotonic
/// clock: no wall clock enters the gate's arithmetic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedLease {
    /// What the key held.
    pub value: LeaseValue,
    /// The etcd lease id it was attached to.
    pub lease_id: i64,
    /// When the leader last saw it present (after the read).
    pub seen_at: Instant,
    /// The latest moment the holder can still believe it holds the lease:
    /// `seen_at` + the TTL etcd said remained (rounded up a second) + the
    /// drift margin.
    pub expires_at: Instant,
}

/// What the leader knows of a database's primary lease right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseObservation {
    /// The key exists: someone renews it.
    Held(ObservedLease),
    /// The key does not exist.
    Absent {
        /// The last lease this reader saw for the database since its
        /// memory was last cleared, if any (its `expires_at` still counts).
        last_seen: Option<ObservedLease>,
        /// The first read of the current run of reads that found the key
        /// absent (no gap in between).
        since: Instant,
        /// Since when this reader has watched etcd without a gap (its own
        /// failed reads, or this controller losing etcd, clear its memory).
        watching_since: Instant,
    },
    /// etcd could not be read; nothing can be concluded.
    Unknown {
        /// Why.
        error: String,
    },
}

/// The vouch of a database as read now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VouchObservation {
    /// The last lease taken for the database.
    Present(Vouch),
    /// No lease was ever taken for it (with this key schema).
    Absent,
    /// etcd could not be read.
    Unknown {
        /// Why.
        error: String,
    },
}

/// Whether etcd still runs the lease a vouch names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseLife {
    /// etcd no longer has it: it expired by etcd's clock (or was released
    /// because its primary left the region; nothing else revokes one).
    Gone,
    /// etcd still counts it down: at most `left` more unless renewed.
    Running {
        /// The most it may still run.
        left: Duration,
    },
    /// etcd could not be asked (or it was not asked: no vouch).
    Unknown {
        /// Why.
        error: String,
    },
}

#[derive(Debug, Default)]
struct Memory {
    last_seen: Option<ObservedLease>,
    absent_since: Option<Instant>,
}

/// The leader's view of the primary leases: reads them, asks etcd whether
/// a vouched lease still runs ([`LeaseReader::lease_life`]), and remembers
/// the last lease seen per database (for a region without a controller,
/// whose vanished lease counts until the expiry observed for it) and since
/// when it has watched etcd without a gap.
///
/// Its memory is only as good as its watch was continuous. While this
/// controller does not reach etcd it answers its peers "no etcd", which
/// may be what lets a lease holder fail static (keep its primary writable
/// past the lease). So a failed read, or this controller's etcd probe
/// having failed since the last look, clears everything it remembers: a
/// lease that vanished across such a gap counts only a full lease after it
/// was first seen absent again.
#[derive(Debug)]
pub struct LeaseReader {
    store: Store,
    drift: Duration,
    ttl: Duration,
    memory: Mutex<BTreeMap<String, Memory>>,
    watching_since: Mutex<Instant>,
    etcd_reach: Option<Mutex<watch::Receiver<bool>>>,
    coverage: Coverage,
}

impl LeaseReader {
    /// A reader adding `drift` (see [`DEFAULT_DRIFT_MARGIN`]) to every
    /// observed expiry.
    pub fn new(store: Store, drift: Duration) -> Self {
        Self {
            store,
            drift,
            ttl: Duration::ZERO,
            memory: Mutex::new(BTreeMap::new()),
            watching_since: Mutex::new(switchyard_host::time::now()),
            etcd_reach: None,
            coverage: Coverage::default(),
        }
    }

    /// The primary lease TTL of the config: a lease this reader has not
    /// seen vanish counts as running for at least this long (plus the drift
    /// margin) from the first read that found it absent.
    pub fn with_lease_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// This controller's etcd reachability (what it tells its peers): any
    /// moment without etcd clears the reader's memory.
    pub fn with_etcd_reach(mut self, reach: watch::Receiver<bool>) -> Self {
        self.etcd_reach = Some(Mutex::new(reach));
        self
    }

    /// Which member is in which region and which regions have a controller.
    pub fn with_coverage(mut self, coverage: Coverage) -> Self {
        self.coverage = coverage;
        self
    }

    /// Which member is in which region and which regions have a controller.
    pub fn coverage(&self) -> &Coverage {
        &self.coverage
    }

    /// How long a lease of `ttl` (the config's if longer) may still run after
    /// a reader first saw its key absent: the TTL plus the drift margin.
    pub fn unseen_wait(&self, ttl: Duration) -> Duration {
        ttl.max(self.ttl) + self.drift
    }

    /// Reads `db`'s lease now. Never fails: an unreadable etcd is
    /// [`LeaseObservation::Unknown`].
    pub async fn observe(&self, db: &str) -> LeaseObservation {
        self.check_gap();
        let read = self.read(db).await;
        if self.check_gap() {
            return LeaseObservation::Unknown {
                error: "this controller lost etcd during the read".into(),
            };
        }
        match read {
            Ok(Some(seen)) => {
                let mut memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
                let m = memory.entry(db.to_string()).or_default();
                // An observation never moves an expiry backwards (etcd's
                // rounding can make a later read look a little shorter).
                let expires_at = match &m.last_seen {
                    Some(old) if old.lease_id == seen.lease_id => {
                        old.expires_at.max(seen.expires_at)
                    }
                    _ => seen.expires_at,
                };
                let seen = ObservedLease { expires_at, ..seen };
                m.last_seen = Some(seen.clone());
                m.absent_since = None;
                LeaseObservation::Held(seen)
            }
            Ok(None) => {
                let watching_since = *self
                    .watching_since
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                let mut memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
                let m = memory.entry(db.to_string()).or_default();
                let since = *m
                    .absent_since
                    .get_or_insert_with(switchyard_host::time::now);
                LeaseObservation::Absent {
                    last_seen: m.last_seen.clone(),
                    since,
                    watching_since,
                }
            }
            Err(e) => {
                self.forget("a read failed");
                LeaseObservation::Unknown {
                    error: e.to_string(),
                }
            }
        }
    }

    /// Asks etcd whether lease `lease_id` (the one a vouch names) still
    /// runs. etcd's own clock decides when a lease expires, so a vouched
    /// lease that etcd no longer has is over for its holder too.
    pub async fn lease_life(&self, lease_id: LeaseId) -> LeaseLife {
        match switchyard_host::time::timeout(CALL_TIMEOUT, self.store.lease_time_to_live(lease_id))
            .await
        {
            Ok(Err(StoreError::LeaseNotFound(_))) => LeaseLife::Gone,
            // Whole seconds, truncated: the lease may run up to a second more.
            Ok(Ok(left)) => LeaseLife::Running {
                left: left + Duration::from_secs(1),
            },
            Ok(Err(e)) => LeaseLife::Unknown {
                error: e.to_string(),
            },
            Err(_) => LeaseLife::Unknown {
                error: format!("no answer within {CALL_TIMEOUT:?}"),
            },
        }
    }

    /// Reads `db`'s vouch now.
    pub async fn vouch(&self, db: &str) -> VouchObservation {
        let key = self.store.keys().vouched(db);
        match self.store.get_json::<Vouch>(&key).await {
            Ok(Some(v)) => VouchObservation::Present(v),
            Ok(None) => VouchObservation::Absent,
            Err(e) => VouchObservation::Unknown {
                error: e.to_string(),
            },
        }
    }

    /// The expiry of the last lease seen for `db` (`None` if none was seen
    /// since the memory was last cleared).
    pub fn observed_expiry(&self, db: &str) -> Option<Instant> {
        self.last_seen(db).map(|s| s.expires_at)
    }

    /// The last lease seen for `db`.
    pub fn last_seen(&self, db: &str) -> Option<ObservedLease> {
        self.memory
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(db)
            .and_then(|m| m.last_seen.clone())
    }

    /// Since when this reader has watched etcd without a gap.
    pub fn watching_since(&self) -> Instant {
        *self
            .watching_since
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// True (and the memory cleared) when this controller's etcd probe
    /// failed since the last look or fails now.
    fn check_gap(&self) -> bool {
        let Some(reach) = &self.etcd_reach else {
            return false;
        };
        let gap = {
            let mut rx = reach.lock().unwrap_or_else(|e| e.into_inner());
            let changed = rx.has_changed().unwrap_or(true);
            let ok = *rx.borrow_and_update();
            changed || !ok
        };
        if gap {
            self.forget("this controller lost etcd");
        }
        gap
    }

    fn forget(&self, why: &str) {
        let mut memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        if memory
            .values()
            .any(|m| m.last_seen.is_some() || m.absent_since.is_some())
        {
            tracing::info!("primary lease reader forgets what it saw: {why}");
        }
        memory.clear();
        *self
            .watching_since
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = switchyard_host::time::now();
    }

    async fn read(&self, db: &str) -> Result<Option<ObservedLease>, StoreError> {
        let key = self.store.keys().primary_lease(db);
        let Some(kv) = self.store.get(&key).await? else {
            return Ok(None);
        };
        let value: LeaseValue =
            serde_json::from_slice(&kv.value).map_err(|e| StoreError::BadValue {
                key: key.clone(),
                reason: e.to_string(),
            })?;
        let lease_id = kv.lease;
        let full = Duration::from_millis(value.ttl_ms);
        // etcd reports the remaining TTL in whole seconds, truncated.
        let remaining = match self.store.lease_time_to_live(lease_id).await {
            Ok(left) => (left + Duration::from_secs(1)).min(full),
            Err(_) => full,
        };
        let seen_at = switchyard_host::time::now();
        Ok(Some(ObservedLease {
            value,
            lease_id,
            seen_at,
            expires_at: seen_at + remaining + self.drift,
        }))
    }
}

/// The put of `value`'s vouch (for lease key `key`, attached to `lease`).
fn vouch_op(key: &str, value: &LeaseValue, lease: LeaseId) -> Result<Op, StoreError> {
    let vouch = Vouch {
        lease: value.clone(),
        lease_id: lease,
    };
    // The vouch key sits beside the lease key: …/leases/vouched/<db>.
    let vkey = match key.rsplit_once("/primary/") {
        Some((base, db)) => format!("{base}/vouched/{db}"),
        None => format!("{key}.vouch"),
    };
    Ok(Op::put(vkey.clone(), encode(&vkey, &vouch)?))
}
