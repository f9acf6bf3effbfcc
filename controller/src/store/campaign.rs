//! etcd's election protocol on [`Kv`](super::kv::Kv) calls: the same keys
//! and the same steps as etcd's election API (its `concurrency.Election`,
//! which the server runs for the API), so controllers that campaign
//! through the API and controllers that campaign here can share one
//! election during a rolling upgrade.
//!
//! A candidate's key is `<name>/<lease id in lowercase hex>`, attached to
//! its lease and holding its value. The candidate whose key has the lowest
//! create revision leads; a candidate waits until every key created before
//! its own is deleted (resigned, revoked or expired). Its key's create
//! revision is the fencing token.

use super::kv::{CmpOp, Compare, LeaseId, Op, OpResult, RangeQuery, Revision, Txn, WatchEvent};
use super::{Store, StoreError, bounded};

/// A candidate's key in the election, and its create revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Candidacy {
    /// `<name>/<lease hex>`.
    pub key: String,
    /// The key's create revision: the fencing token once it leads.
    pub rev: Revision,
}

/// The prefix every candidate key of election `name` lies under.
fn candidates(name: &str) -> String {
    format!("{name}/")
}

impl Store {
    /// Stands in election `name` with `value` under `lease`, and returns
    /// once this candidate leads (every key created before its own is
    /// gone). As etcd's `Campaign`: put the key unless it exists (then
    /// take its create revision, and its value if another), then wait.
    pub(super) async fn campaign(
        &self,
        name: &str,
        value: &str,
        lease: LeaseId,
    ) -> Result<Candidacy, StoreError> {
        let key = format!("{}{lease:x}", candidates(name));
        let txn = Txn::when([Compare::create_revision(&key, CmpOp::Equal, 0)])
            .and_then([Op::put_leased(&key, value, lease)])
            .or_else([Op::get(&key)]);
        let outcome = bounded(self.kv.txn(txn)).await?;
        let rev = if outcome.succeeded {
            outcome.revision
        } else {
            let Some(OpResult::Got(Some(existing))) = outcome.results.into_iter().next() else {
                return Err(StoreError::NotLeader(
                    "election: the candidate key vanished during the campaign".into(),
                ));
            };
            if existing.value != value.as_bytes() {
                self.proclaim(&key, existing.create_revision, value, lease)
                    .await?;
            }
            existing.create_revision
        };
        self.wait_deletes(&candidates(name), rev - 1).await?;
        Ok(Candidacy { key, rev })
    }

    /// Writes `value` at the candidate key, only if it is still the one
    /// created at `rev` (etcd's `Proclaim`).
    async fn proclaim(
        &self,
        key: &str,
        rev: Revision,
        value: &str,
        lease: LeaseId,
    ) -> Result<(), StoreError> {
        let txn = Txn::when([Compare::create_revision(key, CmpOp::Equal, rev)])
            .and_then([Op::put_leased(key, value, lease)]);
        if bounded(self.kv.txn(txn)).await?.succeeded {
            Ok(())
        } else {
            Err(StoreError::NotLeader("election: not leader".into()))
        }
    }

    /// Waits until no key under `prefix` has a create revision at or below
    /// `max_rev`: watches the newest such key until it is deleted, then
    /// looks again (etcd's `waitDeletes`).
    async fn wait_deletes(&self, prefix: &str, max_rev: Revision) -> Result<(), StoreError> {
        loop {
            // Every candidate: a handful of small keys.
            let range = bounded(self.kv.range(&RangeQuery::prefix(prefix))).await?;
            let Some(last) = range
                .kvs
                .into_iter()
                .filter(|kv| kv.create_revision <= max_rev)
                .max_by_key(|kv| kv.create_revision)
            else {
                return Ok(());
            };
            self.wait_delete(&last.key, range.revision).await?;
        }
    }

    /// Waits for `key` to be deleted at or after revision `from`.
    async fn wait_delete(&self, key: &str, from: Revision) -> Result<(), StoreError> {
        // A watch is of a prefix: other keys that start with this one are
        // not it.
        let mut events = self.kv.watch(key, Some(from)).await?;
        while let Some(event) = events.recv().await {
            if let WatchEvent::Delete { key: gone, .. } = event?
                && gone == key
            {
                return Ok(());
            }
        }
        Err(StoreError::Unavailable(
            "lost the watch waiting for a delete".into(),
        ))
    }

    /// Deletes `candidacy`'s key if it is still the one it created (etcd's
    /// `Resign`): the next candidate leads at once instead of after the
    /// lease runs out.
    pub(super) async fn resign(&self, candidacy: &Candidacy) -> Result<(), StoreError> {
        let txn = Txn::when([Compare::create_revision(
            &candidacy.key,
            CmpOp::Equal,
            candidacy.rev,
        )])
        .and_then([Op::delete(&candidacy.key)]);
        bounded(self.kv.txn(txn)).await?;
        Ok(())
    }

    /// The current leader's value (its gRPC address), if any leads: the
    /// value of the candidate key created first (etcd's `Leader`).
    pub async fn leader_value(&self) -> Result<Option<String>, StoreError> {
        let prefix = candidates(&self.keys.leader());
        let range = bounded(self.kv.range(&RangeQuery::prefix(prefix))).await?;
        Ok(range
            .kvs
            .into_iter()
            .min_by_key(|kv| kv.create_revision)
            .map(|kv| String::from_utf8_lossy(&kv.value).into_owned()))
    }
}
