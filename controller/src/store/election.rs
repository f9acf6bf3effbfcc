//! Leader election by etcd's election protocol ([`super::campaign`]), with a
//! lease kept alive from before the campaign starts until leadership ends (a
//! lease left alone while the campaign waits expires and loses the seat:
//! etcd-client issue #89).
//!
//! The leader key's create revision is the fencing token: every write of the
//! leader is a txn guarded by it (see [`crate::store::Store::fenced_txn`]).
//! Leadership ends when the lease cannot be renewed before its deadline, when
//! the fence refuses a write, or on shutdown (resign, so a peer takes over at
//! once rather than after the TTL).

use crate::task::AbortOnDrop;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::campaign::Candidacy;
use super::kv::LeaseId;
use crate::store::keepalive::{Renewal, keep_alive};
use crate::store::{Store, StoreError};

/// Timeout of one etcd call made by the election loop (not the campaign).
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// What the elector needs to know.
#[derive(Debug, Clone)]
pub struct ElectionConfig {
    /// The election name (`/switchyard/<cluster>/leader`).
    pub name: String,
    /// This node's value, read by others as the leader's address.
    pub value: String,
    /// Lease TTL; kept alive every TTL/4.
    pub ttl: Duration,
}

/// This node's current role, published on a watch channel.
#[derive(Debug, Clone)]
pub enum Role {
    /// Not leader (campaigning, or etcd unreachable).
    Follower,
    /// Leader until the handle says otherwise.
    Leader(Leadership),
}

/// A held leadership: the fencing token and the lease deadline.
#[derive(Debug, Clone)]
pub struct Leadership {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The leader key and its create revision (the token).
    candidacy: Candidacy,
    lease: LeaseId,
    /// When this node won (local monotonic clock): a new leader counts
    /// from here how long its predecessor may still be inside a step.
    won_at: Instant,
    /// The lease keeper's view: the deadline moves with every renewal.
    renewal: watch::Receiver<Renewal>,
    lost: watch::Sender<bool>,
}

impl Leadership {
    /// The leader key (under the election name).
    pub fn key(&self) -> &str {
        &self.inner.candidacy.key
    }

    /// The fencing token: the leader key's create revision.
    pub fn token(&self) -> i64 {
        self.inner.candidacy.rev
    }

    /// The lease the leader key is attached to.
    pub fn lease(&self) -> i64 {
        self.inner.lease
    }

    /// When this node won the election (local monotonic clock).
    pub fn won_at(&self) -> Instant {
        self.inner.won_at
    }

    /// Resolves at the next acknowledged renewal of the lease (or when the
    /// keeper stops).
    pub async fn renewed(&self) {
        let mut rx = self.inner.renewal.clone();
        rx.mark_unchanged();
        let _ = rx.changed().await;
    }

    /// When the lease expires unless renewed again (local monotonic clock,
    /// counted from when the last successful renewal was *sent*).
    pub fn deadline(&self) -> Instant {
        self.inner.renewal.borrow().deadline
    }

    /// True while leadership has not been given up or lost.
    pub fn is_held(&self) -> bool {
        !*self.inner.lost.borrow()
    }

    /// True when the lease is certain to last `margin` longer: checked before
    /// every external action so a node that slept (SIGSTOP, GC pause) does
    /// not act on leadership it may have lost.
    pub fn safe_for(&self, margin: Duration) -> bool {
        self.is_held() && switchyard_host::time::now() + margin < self.deadline()
    }

    /// Gives up leadership now (the fence refused a write, or the lease is
    /// gone); the elector resigns and campaigns again.
    pub fn step_down(&self, why: &str) {
        if self.is_held() {
            tracing::warn!(reason = why, "stepping down");
        }
        self.inner.lost.send_replace(true);
    }

    /// Resolves when leadership is lost or given up.
    pub async fn lost(&self) {
        flagged(&mut self.inner.lost.subscribe()).await;
    }
}

/// Runs the election until `shutdown` fires, publishing the role on `role`.
/// On shutdown it resigns and revokes its lease so a peer takes over at once.
pub async fn run(
    store: Store,
    config: ElectionConfig,
    role: watch::Sender<Role>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        if *shutdown.borrow() {
            return;
        }
        match term(&store, &config, &role, &mut shutdown).await {
            Ok(()) => backoff = Duration::from_millis(100),
            Err(e) => {
                tracing::warn!(error = %e, "election attempt failed; retrying");
                role.send_replace(Role::Follower);
                tokio::select! {
                    _ = switchyard_host::time::sleep(backoff) => {}
                    _ = shutdown.changed() => {}
                }
                backoff = (backoff * 2).min(config.ttl / 2);
            }
        }
    }
}

/// One term: lease, campaign, lead until lost; returns to campaign again.
async fn term(
    store: &Store,
    config: &ElectionConfig,
    role: &watch::Sender<Role>,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), StoreError> {
    // Whole seconds, rounded down (at least one), as always asked of etcd.
    let ttl = Duration::from_secs(config.ttl.as_secs().max(1));
    let sent = switchyard_host::time::now();
    let lease = switchyard_host::time::timeout(CALL_TIMEOUT, store.kv.grant(ttl))
        .await??
        .id;
    let (renewal_tx, renewal) = watch::channel(Renewal {
        last_renewed: sent,
        deadline: sent + config.ttl,
        lost: false,
    });
    let keeper = crate::task::spawn(keep_alive(
        store.clone(),
        lease,
        config.ttl / 4,
        renewal_tx,
        || {},
    ));
    let mut expired_rx = renewal.clone();
    let _keeper_guard = AbortOnDrop(keeper);

    // Campaign while the lease is kept alive; give up if the lease dies
    // first or shutdown is asked for. Either way the candidate key goes
    // with the lease (etcd's API deleted it when its campaign call was
    // dropped).
    let candidacy = tokio::select! {
        r = store.campaign(&config.name, &config.value, lease) => match r {
            Ok(c) => c,
            Err(e) => {
                // The next term campaigns under a new lease: this one's
                // key must not stay queued ahead of it until its TTL.
                revoke(store, lease).await;
                return Err(e);
            }
        },
        _ = lost(&mut expired_rx) => {
            revoke(store, lease).await;
            return Err(StoreError::Unavailable("lease expired while campaigning".into()));
        }
        _ = flagged(shutdown) => {
            revoke(store, lease).await;
            return Ok(());
        }
    };
    let (lost_tx, _) = watch::channel(false);
    let leadership = Leadership {
        inner: Arc::new(Inner {
            candidacy,
            lease,
            won_at: switchyard_host::time::now(),
            renewal: renewal.clone(),
            lost: lost_tx,
        }),
    };
    tracing::info!(token = leadership.token(), lease, "became leader");
    role.send_replace(Role::Leader(leadership.clone()));

    // Lead until the lease expires, someone steps down, or shutdown.
    let mut tick = switchyard_host::time::interval(config.ttl / 10);
    let outcome = loop {
        tokio::select! {
            _ = tick.tick() => {
                if switchyard_host::time::now() >= leadership.deadline() {
                    leadership.step_down("lease deadline passed without renewal");
                }
            }
            _ = lost(&mut expired_rx) => {
                leadership.step_down("etcd reports the lease expired");
            }
            _ = leadership.lost() => break "lost",
            _ = flagged(shutdown) => break "shutdown",
        }
    };
    leadership.step_down(outcome);
    role.send_replace(Role::Follower);
    // Best effort: resign so a peer wins now, and revoke the lease.
    let _ = switchyard_host::time::timeout(CALL_TIMEOUT, store.resign(&leadership.inner.candidacy))
        .await;
    revoke(store, lease).await;
    tracing::info!(reason = outcome, "leadership ended");
    Ok(())
}

async fn revoke(store: &Store, lease: LeaseId) {
    let _ = switchyard_host::time::timeout(CALL_TIMEOUT, store.kv.revoke(lease)).await;
}

/// Resolves once the keeper marks the lease lost (or stops).
async fn lost(rx: &mut watch::Receiver<Renewal>) {
    let _ = rx.wait_for(|r| r.lost).await;
}

/// Resolves once the flag is true (or its sender is gone). Returns no guard,
/// so it can be awaited in `select!` arms that await again.
async fn flagged(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}
