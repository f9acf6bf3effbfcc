//! An in-memory model of etcd's key-value API ([`Kv`]), for the simulator
//! and for tests that need no etcd: one revision counter, keys with their
//! create/mod revisions and versions, transactions, leases that expire on
//! tokio's clock (so a paused clock makes expiry deterministic), and
//! watches with replay from a past revision. The [`conformance`] suite
//! holds it to what a real etcd does.
//!
//! Each [`MemKv`] is one client's link to the shared store: [`MemKv::connect`]
//! gives another, and [`MemKv::set_reachable`] cuts or heals one link alone
//! (a partition between that client and etcd), ending its watches.
//!
//! Not modelled: etcd's minimum lease TTL (a TTL below it is raised by a
//! real etcd; the model grants what is asked), compaction (every past
//! revision can be watched from), authentication, a lost answer (a call
//! on a cut link fails before it takes effect; etcd's can take effect
//! and lose its answer), etcd's lease timing (a real etcd checks expiry
//! about every 500 ms and extends leases on a leader change; the model
//! expires at exactly the TTL), the duplicate-key check of the branch
//! not taken, and a keep-alive stream breaking: the model's fails each
//! renewal while its link is cut and works again once it heals, where
//! etcd's stream ends and a new one must be opened.
//!
//! [`conformance`]: super::conformance

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use switchyard_host::Rate;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{
    CmpOp, Compare, Granted, KeepAlive, KeyValue, Kv, KvError, LeaseId, Op, OpResult, Range,
    RangeQuery, Revision, Target, Txn, TxnOutcome, WATCH_BUFFER, WatchEvent, WatchStream, in_range,
    whole_seconds,
};

/// One client's link to an in-memory etcd.
#[derive(Clone)]
pub struct MemKv {
    store: Arc<Mutex<State>>,
    link: Arc<Link>,
}

impl std::fmt::Debug for MemKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemKv")
            .field("link", &self.link.id)
            .field("reachable", &self.link.up.load(Ordering::SeqCst))
            .finish()
    }
}

/// Whether one client reaches the store.
#[derive(Debug)]
struct Link {
    id: u64,
    up: AtomicBool,
}

/// Links are numbered so a cut can end that link's watches alone.
static NEXT_LINK: AtomicU64 = AtomicU64::new(1);

impl Link {
    fn new() -> Arc<Self> {
        Arc::new(Link {
            id: NEXT_LINK.fetch_add(1, Ordering::Relaxed),
            up: AtomicBool::new(true),
        })
    }
}

#[derive(Debug)]
struct Lease {
    ttl: Duration,
    deadline: Instant,
    keys: BTreeSet<String>,
}

#[derive(Debug)]
struct Watcher {
    prefix: String,
    /// The first revision it delivers (a watch may start in the future).
    from: Revision,
    link: u64,
    tx: mpsc::Sender<Result<WatchEvent, KvError>>,
}

#[derive(Debug, Default)]
struct State {
    revision: Revision,
    keys: BTreeMap<String, KeyValue>,
    /// Ordered, so leases expiring at one instant go in one order on
    /// every run.
    leases: BTreeMap<LeaseId, Lease>,
    granted: i64,
    /// Every change ever made, in revision order, for watches that start
    /// in the past.
    log: Vec<WatchEvent>,
    watchers: Vec<Watcher>,
    /// How fast etcd's clock runs against tokio's: a lease's TTL is
    /// counted on it ([`MemKv::set_clock_rate`]).
    clock: Rate,
}

impl Default for MemKv {
    fn default() -> Self {
        Self::new()
    }
}

impl MemKv {
    /// An empty store at revision 1 (as a fresh etcd), and a link to it.
    pub fn new() -> Self {
        MemKv {
            store: Arc::new(Mutex::new(State {
                revision: 1,
                ..State::default()
            })),
            link: Link::new(),
        }
    }

    /// Another client's link to the same store, reachable.
    pub fn connect(&self) -> Self {
        MemKv {
            store: self.store.clone(),
            link: Link::new(),
        }
    }

    /// Cuts (`false`) or heals (`true`) this link: while cut, every call
    /// fails with [`KvError::Unavailable`] and the link's watches end.
    pub fn set_reachable(&self, up: bool) {
        self.link.up.store(up, Ordering::SeqCst);
        if !up {
            let mut s = self.lock();
            let link = self.link.id;
            s.watchers.retain(|w| {
                if w.link == link {
                    let _ =
                        w.tx.try_send(Err(KvError::Unavailable("link to etcd cut".into())));
                    false
                } else {
                    true
                }
            });
        }
    }

    /// Makes etcd's clock, which counts every lease's TTL, gain `ppm`
    /// microseconds a second on tokio's (lose them, negative), from the
    /// next grant or renewal on.
    ///
    /// # Panics
    ///
    /// If the clock would stand still or run backwards (`ppm ≤ −10⁶`).
    pub fn set_clock_rate(&self, ppm: i64) {
        self.lock().clock = Rate::from_ppm(ppm);
    }

    /// The store's current revision, without going through the link (for
    /// invariant checks).
    pub fn revision(&self) -> Revision {
        self.lock().revision
    }

    /// Every key and its state, without going through the link (for
    /// invariant checks).
    pub fn snapshot(&self) -> Vec<KeyValue> {
        self.lock().keys.values().cloned().collect()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves no half-applied change
        // (every change is computed before it is applied), so a poisoned
        // lock's state is still whole.
        let mut s = self
            .store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        s.expire(Instant::now());
        s
    }

    /// The state, if this link reaches it.
    fn reach(&self) -> Result<MutexGuard<'_, State>, KvError> {
        if !self.link.up.load(Ordering::SeqCst) {
            return Err(KvError::Unavailable("link to etcd cut".into()));
        }
        Ok(self.lock())
    }

    /// Renews `lease` for its TTL; the TTL.
    fn renew(&self, lease: LeaseId) -> Result<Duration, KvError> {
        let (ttl, deadline) = {
            let mut s = self.reach()?;
            let clock = s.clock;
            let l = s
                .leases
                .get_mut(&lease)
                .ok_or(KvError::LeaseNotFound(lease))?;
            l.deadline = Instant::now() + clock.tokio_span(l.ttl);
            (l.ttl, l.deadline)
        };
        self.reap_at(deadline);
        Ok(ttl)
    }

    /// Expires `lease` when its deadline comes, even if nobody calls.
    fn reap_at(&self, deadline: Instant) {
        let store: Weak<Mutex<State>> = Arc::downgrade(&self.store);
        tokio::spawn(async move {
            tokio::time::sleep_until(deadline).await;
            if let Some(store) = store.upgrade() {
                store
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .expire(Instant::now());
            }
        });
    }
}

impl State {
    /// Revokes every lease whose deadline has come.
    fn expire(&mut self, now: Instant) {
        let due: Vec<LeaseId> = self
            .leases
            .iter()
            .filter(|(_, l)| l.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.revoke(id);
        }
    }

    /// Drops `id` and deletes its keys at one revision (none if it had no
    /// keys), as etcd's revoke does.
    fn revoke(&mut self, id: LeaseId) -> bool {
        let Some(lease) = self.leases.remove(&id) else {
            return false;
        };
        if lease.keys.is_empty() {
            return true;
        }
        self.revision += 1;
        let rev = self.revision;
        let mut events = Vec::new();
        for key in lease.keys {
            if self.keys.remove(&key).is_some() {
                events.push(WatchEvent::Delete {
                    key,
                    mod_revision: rev,
                });
            }
        }
        self.publish(events);
        true
    }

    /// Records `events` and sends them to every watcher whose prefix they
    /// fall under. A watcher whose receiver is gone, or whose consumer is
    /// [`WATCH_BUFFER`] changes behind, is dropped: its stream ends (etcd
    /// would hold a slow watcher back instead; a consumer must keep up).
    fn publish(&mut self, events: Vec<WatchEvent>) {
        for event in events {
            self.watchers.retain(|w| {
                !event.key().starts_with(&w.prefix)
                    || event.revision() < w.from
                    || w.tx.try_send(Ok(event.clone())).is_ok()
            });
            self.log.push(event);
        }
    }

    fn holds(&self, c: &Compare) -> bool {
        let Some(kv) = self.keys.get(&c.key) else {
            // A missing key compares as all zeros, except by value.
            return match &c.target {
                Target::Value(_) => false,
                Target::Version(v) | Target::CreateRevision(v) | Target::ModRevision(v) => {
                    relate(&0, c.op, v)
                }
            };
        };
        match &c.target {
            Target::Version(v) => relate(&kv.version, c.op, v),
            Target::CreateRevision(v) => relate(&kv.create_revision, c.op, v),
            Target::ModRevision(v) => relate(&kv.mod_revision, c.op, v),
            Target::Value(v) => relate(&kv.value, c.op, v),
        }
    }

    /// Checks what etcd checks before a branch runs: no key written twice
    /// (a put inside a deleted range counts), every lease named exists.
    /// Nothing is applied when this fails.
    fn check(&self, ops: &[Op]) -> Result<(), KvError> {
        let mut written = BTreeSet::new();
        let deleted_ranges: Vec<(&str, &str)> = ops
            .iter()
            .filter_map(|op| match op {
                Op::DeleteRange { from, to } => Some((from.as_str(), to.as_str())),
                _ => None,
            })
            .collect();
        for op in ops {
            match op {
                Op::Put { key, lease, .. } => {
                    if !written.insert(key.as_str())
                        || deleted_ranges
                            .iter()
                            .any(|(from, to)| (*from..*to).contains(&key.as_str()))
                    {
                        return Err(KvError::Refused(
                            "etcdserver: duplicate key given in txn request".into(),
                        ));
                    }
                    if let Some(id) = lease.filter(|id| *id != 0)
                        && !self.leases.contains_key(&id)
                    {
                        return Err(KvError::LeaseNotFound(id));
                    }
                }
                Op::Delete { key } => {
                    if !written.insert(key.as_str()) {
                        return Err(KvError::Refused(
                            "etcdserver: duplicate key given in txn request".into(),
                        ));
                    }
                }
                Op::Get { .. } | Op::DeleteRange { .. } => {}
            }
        }
        Ok(())
    }

    /// Applies checked `ops` at one new revision (only if one of them
    /// changes something).
    fn apply(&mut self, ops: Vec<Op>) -> Vec<OpResult> {
        let rev = self.revision + 1;
        let mut changed = false;
        let mut events = Vec::new();
        let mut results = Vec::with_capacity(ops.len());
        for op in ops {
            match op {
                Op::Put { key, value, lease } => {
                    let lease = lease.unwrap_or(0);
                    let kv = match self.keys.get(&key) {
                        Some(old) => {
                            if old.lease != 0
                                && old.lease != lease
                                && let Some(l) = self.leases.get_mut(&old.lease)
                            {
                                l.keys.remove(&key);
                            }
                            KeyValue {
                                value,
                                mod_revision: rev,
                                version: old.version + 1,
                                lease,
                                ..old.clone()
                            }
                        }
                        None => KeyValue {
                            key: key.clone(),
                            value,
                            create_revision: rev,
                            mod_revision: rev,
                            version: 1,
                            lease,
                        },
                    };
                    if let Some(l) = self.leases.get_mut(&lease) {
                        l.keys.insert(key.clone());
                    }
                    events.push(WatchEvent::Put(kv.clone()));
                    self.keys.insert(key, kv);
                    changed = true;
                    results.push(OpResult::Put);
                }
                Op::Delete { key } => match self.keys.remove(&key) {
                    Some(old) => {
                        if let Some(l) = self.leases.get_mut(&old.lease) {
                            l.keys.remove(&key);
                        }
                        events.push(WatchEvent::Delete {
                            key,
                            mod_revision: rev,
                        });
                        changed = true;
                        results.push(OpResult::Deleted(1));
                    }
                    None => results.push(OpResult::Deleted(0)),
                },
                Op::Get { key } => results.push(OpResult::Got(self.keys.get(&key).cloned())),
                Op::DeleteRange { from, to } => {
                    let doomed: Vec<String> = if from < to {
                        self.keys
                            .range::<str, _>((
                                std::ops::Bound::Included(from.as_str()),
                                std::ops::Bound::Excluded(to.as_str()),
                            ))
                            .map(|(k, _)| k.clone())
                            .collect()
                    } else {
                        Vec::new()
                    };
                    for key in &doomed {
                        if let Some(old) = self.keys.remove(key)
                            && let Some(l) = self.leases.get_mut(&old.lease)
                        {
                            l.keys.remove(key);
                        }
                        events.push(WatchEvent::Delete {
                            key: key.clone(),
                            mod_revision: rev,
                        });
                    }
                    changed |= !doomed.is_empty();
                    results.push(OpResult::Deleted(doomed.len() as i64));
                }
            }
        }
        if changed {
            self.revision = rev;
            self.publish(events);
        }
        results
    }
}

/// A keep-alive stream on the model: each renewal goes through the link,
/// so a cut link fails it as a broken stream would.
struct MemKeepAlive {
    kv: MemKv,
    lease: LeaseId,
}

#[async_trait::async_trait]
impl KeepAlive for MemKeepAlive {
    async fn renew(&mut self) -> Result<Duration, KvError> {
        self.kv.renew(self.lease)
    }
}

/// `a op b`.
fn relate<T: Ord + ?Sized>(a: &T, op: CmpOp, b: &T) -> bool {
    match op {
        CmpOp::Equal => a == b,
        CmpOp::NotEqual => a != b,
        CmpOp::Greater => a > b,
        CmpOp::Less => a < b,
    }
}

#[async_trait::async_trait]
impl Kv for MemKv {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, KvError> {
        Ok(self.reach()?.keys.get(key).cloned())
    }

    async fn range(&self, query: &RangeQuery) -> Result<Range, KvError> {
        let s = self.reach()?;
        let matching = s.keys.values().filter(|kv| in_range(query, &kv.key));
        let mut kvs: Vec<KeyValue> = if query.descending {
            matching.rev().cloned().collect()
        } else {
            matching.cloned().collect()
        };
        let count = kvs.len() as i64;
        let more = query.limit > 0 && kvs.len() > query.limit;
        if more {
            kvs.truncate(query.limit);
        }
        if query.keys_only {
            for kv in &mut kvs {
                kv.value.clear();
            }
        }
        Ok(Range {
            kvs,
            more,
            count,
            revision: s.revision,
        })
    }

    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    ) -> Result<Revision, KvError> {
        let mut s = self.reach()?;
        let ops = vec![Op::Put {
            key: key.to_string(),
            value,
            lease,
        }];
        s.check(&ops)?;
        s.apply(ops);
        Ok(s.revision)
    }

    async fn delete(&self, key: &str) -> Result<i64, KvError> {
        let mut s = self.reach()?;
        match s.apply(vec![Op::delete(key)]).first() {
            Some(OpResult::Deleted(n)) => Ok(*n),
            _ => Ok(0),
        }
    }

    async fn txn(&self, txn: Txn) -> Result<TxnOutcome, KvError> {
        let mut s = self.reach()?;
        let succeeded = txn.compares.iter().all(|c| s.holds(c));
        let ops = if succeeded { txn.success } else { txn.failure };
        s.check(&ops)?;
        let results = s.apply(ops);
        Ok(TxnOutcome {
            succeeded,
            revision: s.revision,
            results,
        })
    }

    async fn grant(&self, ttl: Duration) -> Result<Granted, KvError> {
        let ttl = whole_seconds(ttl);
        let (id, deadline) = {
            let mut s = self.reach()?;
            let deadline = Instant::now() + s.clock.tokio_span(ttl);
            s.granted += 1;
            // Ids look like etcd's (large, not small counters), so a test
            // cannot pass by confusing a lease id with a revision.
            let id = 0x7E57_0000_0000 + s.granted;
            s.leases.insert(
                id,
                Lease {
                    ttl,
                    deadline,
                    keys: BTreeSet::new(),
                },
            );
            (id, deadline)
        };
        self.reap_at(deadline);
        Ok(Granted { id, ttl })
    }

    async fn keep_alive_stream(&self, lease: LeaseId) -> Result<Box<dyn KeepAlive>, KvError> {
        // Opening renews once, as etcd's does.
        self.renew(lease)?;
        Ok(Box::new(MemKeepAlive {
            kv: self.clone(),
            lease,
        }))
    }

    async fn time_to_live(&self, lease: LeaseId) -> Result<Duration, KvError> {
        let s = self.reach()?;
        let l = s.leases.get(&lease).ok_or(KvError::LeaseNotFound(lease))?;
        let left = l.deadline.saturating_duration_since(Instant::now());
        // Counted on etcd's clock.
        let left = s.clock.local_span(left);
        Ok(Duration::from_secs(left.as_secs()))
    }

    async fn revoke(&self, lease: LeaseId) -> Result<(), KvError> {
        if self.reach()?.revoke(lease) {
            Ok(())
        } else {
            Err(KvError::LeaseNotFound(lease))
        }
    }

    async fn watch(&self, prefix: &str, from: Option<Revision>) -> Result<WatchStream, KvError> {
        let mut s = self.reach()?;
        let replay: Vec<WatchEvent> = match from.filter(|r| *r > 0) {
            Some(from) => s
                .log
                .iter()
                .filter(|e| e.revision() >= from && e.key().starts_with(prefix))
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        let (tx, rx) = mpsc::channel(replay.len() + WATCH_BUFFER);
        for event in replay {
            let _ = tx.try_send(Ok(event));
        }
        s.watchers.push(Watcher {
            prefix: prefix.to_string(),
            from: from.unwrap_or(0),
            link: self.link.id,
            tx,
        });
        Ok(rx)
    }
}
