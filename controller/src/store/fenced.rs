//! The leader's writes: transactions fenced by the leader key's create
//! revision. A refused fence means another node leads; this one steps
//! down before it does anything else.

use std::time::Duration;

use serde::Serialize;

use super::kv::{CmpOp, Compare, Op, OpResult, Txn};
use super::{Leadership, Store, StoreError, bounded, encode};

impl Store {
    /// Runs `ops` only if `leader` still holds the leader key with the same
    /// create revision. Refused → steps down and returns `NotLeader`.
    pub async fn fenced_txn(&self, leader: &Leadership, ops: Vec<Op>) -> Result<(), StoreError> {
        may_write(leader)?;
        let txn = Txn::when([fence(leader)]).and_then(ops);
        let outcome = bounded(self.kv.txn(txn)).await?;
        if outcome.succeeded {
            metrics::counter!("switchyard_etcd_writes_total", "kind" => "fenced").increment(1);
            Ok(())
        } else {
            Err(fence_refused(leader))
        }
    }

    /// Like [`fenced_txn`](Self::fenced_txn), only while `must_exist` still
    /// exists: `Ok(false)` (nothing written) when it is gone, with
    /// leadership still held — an operator request cancelled between the
    /// leader reading it and starting it is then not started.
    pub async fn fenced_txn_while(
        &self,
        leader: &Leadership,
        must_exist: &str,
        ops: Vec<Op>,
    ) -> Result<bool, StoreError> {
        let exists = Compare::version(must_exist, CmpOp::Greater, 0);
        self.fenced_txn_if(leader, exists, ops).await
    }

    /// A fenced put of a JSON value at `key` only if nothing is there:
    /// `Ok(false)` (nothing written, leadership still held) when a value
    /// is. For records the leader creates from what it observes (a
    /// discovered primary): whatever is already there — a record it could
    /// not decode, one a newer version wrote, one written since it looked
    /// — was written by someone who knew more, and is not overwritten.
    pub async fn fenced_create<T: Serialize>(
        &self,
        leader: &Leadership,
        key: String,
        value: &T,
    ) -> Result<bool, StoreError> {
        let json = encode(&key, value)?;
        let absent = Compare::version(&key, CmpOp::Equal, 0);
        self.fenced_txn_if(leader, absent, vec![Op::put(key, json)])
            .await
    }

    /// `ops` under the fence and `condition`: `Ok(false)` when only the
    /// condition failed. Which compare failed is read from the same
    /// transaction (its else branch reads the leader key), so a deposed
    /// leader is still told so.
    async fn fenced_txn_if(
        &self,
        leader: &Leadership,
        condition: Compare,
        ops: Vec<Op>,
    ) -> Result<bool, StoreError> {
        may_write(leader)?;
        let txn = Txn::when([fence(leader), condition])
            .and_then(ops)
            .or_else([Op::get(leader.key())]);
        let outcome = bounded(self.kv.txn(txn)).await?;
        if outcome.succeeded {
            metrics::counter!("switchyard_etcd_writes_total", "kind" => "fenced").increment(1);
            return Ok(true);
        }
        let still_leader = outcome
            .results
            .iter()
            .any(|r| matches!(r, OpResult::Got(Some(kv)) if kv.create_revision == leader.token()));
        if still_leader {
            return Ok(false);
        }
        Err(fence_refused(leader))
    }

    /// A fenced put of several JSON values at once: all or none.
    pub async fn fenced_put_all<T: Serialize>(
        &self,
        leader: &Leadership,
        values: Vec<(String, T)>,
    ) -> Result<(), StoreError> {
        let mut ops = Vec::with_capacity(values.len());
        for (key, value) in values {
            let json = encode(&key, &value)?;
            ops.push(Op::put(key, json));
        }
        self.fenced_txn(leader, ops).await
    }

    /// A fenced put of a JSON value.
    pub async fn fenced_put<T: Serialize>(
        &self,
        leader: &Leadership,
        key: String,
        value: &T,
    ) -> Result<(), StoreError> {
        let json = encode(&key, value)?;
        self.fenced_txn(leader, vec![Op::put(key, json)]).await
    }
}

/// The fence: the leader key still has the create revision it won with.
fn fence(leader: &Leadership) -> Compare {
    Compare::create_revision(leader.key(), CmpOp::Equal, leader.token())
}

/// Whether `leader` may still write: held, and its lease not past.
fn may_write(leader: &Leadership) -> Result<(), StoreError> {
    if !leader.is_held() {
        return Err(StoreError::NotLeader("leadership already given up".into()));
    }
    if !leader.safe_for(Duration::ZERO) {
        leader.step_down("lease deadline passed before a write");
        return Err(StoreError::NotLeader("lease deadline passed".into()));
    }
    Ok(())
}

/// etcd refused a write fenced by `leader`'s key: another node leads, so
/// this one steps down.
fn fence_refused(leader: &Leadership) -> StoreError {
    metrics::counter!("switchyard_fence_refusals_total").increment(1);
    leader.step_down("the fence refused a write: another node leads");
    StoreError::NotLeader("the fence refused the write: another node holds leadership".into())
}
