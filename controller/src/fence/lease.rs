//! The primary lease: one key per database, `leases/primary/<db>`, attached
//! to an etcd lease that the controller in the primary's region keeps alive.
//!
//! It is how the majority side knows when an unreachable primary is safe to
//! replace: the keeper's controller fences its region's primaries before
//! its own deadline for this lease (see
//! [`FenceDeadline`](crate::fence::isolation::FenceDeadline)), and etcd
//! deletes the key only after that deadline has passed. So once the leader
//! has seen the key gone, or its last observation plus the drift margin has
//! passed, the old primary is either fenced or its controller is dead with
//! it — see [`crate::fence::gate`].
//!
//! Renewals are etcd keep-alives, not writes: the value is written when the
//! lease is granted and when the primary changes, never at renewal rate.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use etcd_client::{Client, Compare, CompareOp, PutOptions, Txn, TxnOp, TxnOpResponse};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::clock::Clock;
use crate::fence::isolation::FenceDeadline;
pub use crate::store::keepalive::Renewal;
use crate::store::keepalive::keep_alive;
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
    /// When the value was last written (grant, or a change of primary);
    /// renewals are keep-alives and do not rewrite it.
    pub renewed_at: DateTime<Utc>,
    /// The TTL etcd granted, in milliseconds.
    pub ttl_ms: u64,
}

/// A held primary lease and the task that keeps it alive. Dropping it stops
/// renewing and leaves the lease to expire on its own (never revoked: a
/// controller restart must not let the majority promote around a primary
/// that is still writable).
pub struct PrimaryLease {
    client: Client,
    key: String,
    lease: i64,
    ttl: Duration,
    value: Mutex<LeaseValue>,
    status: watch::Receiver<Renewal>,
    adopted: bool,
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
    /// a `create_revision == 0` compare, and keeps it alive every TTL/4.
    /// `value.renewed_at` is overwritten with `now`, `value.ttl_ms` with the
    /// TTL etcd granted. When the key is held by
    /// `value.holder` itself (this controller before a restart), the
    /// existing etcd lease is adopted and kept alive, so a restart never
    /// leaves a gap. When another controller holds it, nothing changes and
    /// its value is returned.
    pub async fn acquire(
        client: Client,
        key: String,
        value: LeaseValue,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Acquired, StoreError> {
        let mut value = value;
        let mut c = client.clone();
        let secs = ttl.as_secs_f64().ceil().max(1.0) as i64;
        let sent = Instant::now();
        let grant = tokio::time::timeout(CALL_TIMEOUT, c.lease_grant(secs, None)).await??;
        let lease = grant.id();
        let ttl = Duration::from_secs(grant.ttl().max(1) as u64);
        value.renewed_at = now;
        value.ttl_ms = ttl.as_millis() as u64;
        let json = encode(&key, &value)?;
        let put = TxnOp::put(key.clone(), json, Some(PutOptions::new().with_lease(lease)));
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([put])
            .or_else([TxnOp::get(key.clone(), None)]);
        let revoke = |mut c: Client| async move {
            let _ = tokio::time::timeout(CALL_TIMEOUT, c.lease_revoke(lease)).await;
        };
        let resp = match tokio::time::timeout(CALL_TIMEOUT, c.txn(txn)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                revoke(c).await;
                return Err(e.into());
            }
            Err(e) => {
                revoke(c).await;
                return Err(e.into());
            }
        };
        if resp.succeeded() {
            return Ok(Acquired::Held(Box::new(Self::keep(
                client, key, lease, ttl, value, sent,
            ))));
        }
        // Someone holds the key: give the new lease back, then see who.
        revoke(c).await;
        let existing = resp.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Get(g) => g.kvs().first().map(|kv| (kv.value().to_vec(), kv.lease())),
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
        let mut c = client.clone();
        let remaining =
            match tokio::time::timeout(CALL_TIMEOUT, c.lease_time_to_live(existing_lease, None))
                .await
            {
                Ok(Ok(r)) if r.ttl() > 0 => Duration::from_secs(r.ttl() as u64).min(ttl),
                _ => Duration::ZERO,
            };
        let deadline = sent + remaining;
        let mut adopted = Self::keep(
            client,
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
        client: Client,
        key: String,
        lease: i64,
        ttl: Duration,
        value: LeaseValue,
        sent: Instant,
    ) -> Self {
        let (tx, status) = watch::channel(Renewal {
            last_renewed: sent,
            deadline: sent + ttl,
            lost: false,
        });
        let task = tokio::spawn(keep_alive(client.clone(), lease, ttl, tx, || {
            metrics::counter!("switchyard_primary_lease_renewals_total").increment(1);
        }));
        Self {
            client,
            key,
            lease,
            ttl,
            value: Mutex::new(value),
            status,
            adopted: false,
            _task: AbortOnDrop(task),
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

    /// By when this controller must have fenced if it is isolated now.
    pub fn fence_deadline(&self, margin: Duration) -> FenceDeadline {
        FenceDeadline::new(self.last_renewed(), self.ttl, margin)
    }

    /// Resolves when the lease is lost (or the keeper ended).
    pub async fn lost(&self) {
        let mut rx = self.status.clone();
        let _ = rx.wait_for(|r| r.lost).await;
    }

    /// Rewrites the value for a new primary (same lease), e.g. after a
    /// switchover inside the region.
    pub async fn set_primary(&self, primary: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        let mut value = self.value();
        value.primary = primary.to_string();
        value.renewed_at = now;
        let json = encode(&self.key, &value)?;
        let mut c = self.client.clone();
        tokio::time::timeout(
            CALL_TIMEOUT,
            c.put(
                self.key.clone(),
                json,
                Some(PutOptions::new().with_lease(self.lease)),
            ),
        )
        .await??;
        *self.value.lock().unwrap_or_else(|e| e.into_inner()) = value;
        Ok(())
    }

    /// Revokes the lease at once (the key vanishes). Only for when no member
    /// of this region can be a writable primary of the database any more
    /// (the primary moved to another region): revoking lets the leader
    /// promote without waiting for the TTL.
    pub async fn release(self) -> Result<(), StoreError> {
        let mut c = self.client.clone();
        tokio::time::timeout(CALL_TIMEOUT, c.lease_revoke(self.lease)).await??;
        Ok(())
    }
}

/// One lease as the leader saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedLease {
    /// What the key held.
    pub value: LeaseValue,
    /// The etcd lease id it was attached to.
    pub lease_id: i64,
    /// When the leader last saw it present (its wall clock, after the read).
    pub seen_at: DateTime<Utc>,
    /// The latest moment the holder can still believe it holds the lease:
    /// `seen_at` + the TTL etcd said remained (rounded up a second) + the
    /// drift margin.
    pub expires_at: DateTime<Utc>,
}

/// What the leader knows of a database's primary lease right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseObservation {
    /// The key exists: someone renews it.
    Held(ObservedLease),
    /// The key does not exist; `last_seen` is the last lease this reader
    /// saw for the database, if any (its `expires_at` still counts).
    Absent {
        /// The last lease seen before it vanished.
        last_seen: Option<ObservedLease>,
    },
    /// The key does not exist and this reader has never seen it: the
    /// holder may have renewed it just before this reader started looking
    /// (a new leader). It counts as a lease of a full TTL from the first
    /// time it was seen absent, plus the drift margin: `until`.
    Unseen {
        /// When this reader first saw it absent.
        since: DateTime<Utc>,
        /// When that presumed lease runs out.
        until: DateTime<Utc>,
    },
    /// etcd could not be read; nothing can be concluded.
    Unknown {
        /// Why.
        error: String,
    },
}

/// The leader's view of the primary leases: reads them and remembers the
/// last one seen per database, so a vanished key still counts until the
/// expiry observed for it.
#[derive(Debug)]
pub struct LeaseReader {
    store: Store,
    clock: Arc<dyn Clock>,
    drift: Duration,
    seen: Mutex<BTreeMap<String, ObservedLease>>,
    unseen_wait: Option<Duration>,
    first_absent: Mutex<BTreeMap<String, DateTime<Utc>>>,
}

impl LeaseReader {
    /// A reader adding `drift` (see [`DEFAULT_DRIFT_MARGIN`]) to every
    /// observed expiry.
    pub fn new(store: Store, clock: Arc<dyn Clock>, drift: Duration) -> Self {
        Self {
            store,
            clock,
            drift,
            seen: Mutex::new(BTreeMap::new()),
            unseen_wait: None,
            first_absent: Mutex::new(BTreeMap::new()),
        }
    }

    /// A key this reader has never seen counts as a lease of `ttl` from the
    /// first time it was seen absent ([`LeaseObservation::Unseen`]), instead
    /// of none at all: a leader that just took over cannot know that the
    /// holder did not renew a moment before.
    pub fn with_unseen_wait(mut self, ttl: Duration) -> Self {
        self.unseen_wait = Some(ttl);
        self
    }

    /// Reads `db`'s lease now. Never fails: an unreadable etcd is
    /// [`LeaseObservation::Unknown`].
    pub async fn observe(&self, db: &str) -> LeaseObservation {
        match self.read(db).await {
            Ok(Some(seen)) => {
                self.remember(db, seen.clone());
                LeaseObservation::Held(seen)
            }
            Ok(None) => match (self.last_seen(db), self.unseen_wait) {
                (None, Some(ttl)) => {
                    let now = self.clock.now();
                    let since = *self
                        .first_absent
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .entry(db.to_string())
                        .or_insert(now);
                    LeaseObservation::Unseen {
                        since,
                        until: since + to_chrono(ttl + self.drift),
                    }
                }
                (last_seen, _) => LeaseObservation::Absent { last_seen },
            },
            Err(e) => LeaseObservation::Unknown {
                error: e.to_string(),
            },
        }
    }

    /// The expiry of the last lease seen for `db` (`None` if none was seen).
    pub fn observed_expiry(&self, db: &str) -> Option<DateTime<Utc>> {
        self.last_seen(db).map(|s| s.expires_at)
    }

    /// The last lease seen for `db`.
    pub fn last_seen(&self, db: &str) -> Option<ObservedLease> {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(db)
            .cloned()
    }

    fn remember(&self, db: &str, seen: ObservedLease) {
        let mut map = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        // An observation never moves an expiry backwards (etcd's rounding
        // can make a later read look a little shorter).
        let expires_at = match map.get(db) {
            Some(old) if old.lease_id == seen.lease_id => old.expires_at.max(seen.expires_at),
            _ => seen.expires_at,
        };
        map.insert(db.to_string(), ObservedLease { expires_at, ..seen });
    }

    async fn read(&self, db: &str) -> Result<Option<ObservedLease>, StoreError> {
        let key = self.store.keys().primary_lease(db);
        let mut c = self.store.client();
        let resp = tokio::time::timeout(CALL_TIMEOUT, c.get(key.clone(), None)).await??;
        let Some(kv) = resp.kvs().first() else {
            return Ok(None);
        };
        let value: LeaseValue =
            serde_json::from_slice(kv.value()).map_err(|e| StoreError::BadValue {
                key: key.clone(),
                reason: e.to_string(),
            })?;
        let lease_id = kv.lease();
        let full = Duration::from_millis(value.ttl_ms);
        // etcd reports the remaining TTL in whole seconds, truncated.
        let remaining =
            match tokio::time::timeout(CALL_TIMEOUT, c.lease_time_to_live(lease_id, None)).await {
                Ok(Ok(r)) if r.ttl() >= 0 => Duration::from_secs(r.ttl() as u64 + 1).min(full),
                _ => full,
            };
        let seen_at = self.clock.now();
        Ok(Some(ObservedLease {
            value,
            lease_id,
            seen_at,
            expires_at: seen_at + to_chrono(remaining + self.drift),
        }))
    }
}

/// A std duration as chrono's (saturating at chrono's range).
pub fn to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

#[derive(Debug)]
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
