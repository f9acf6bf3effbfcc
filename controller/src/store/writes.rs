//! Unfenced writes: the operator's commands (valid whoever leads), what a
//! controller says of itself, and transactions that carry their own
//! compares. The leader's writes go through [`Store::fenced_txn`].

use serde::Serialize;

use super::kv::{CmpOp, Compare, Op, Txn, TxnOutcome};
use super::{Store, StoreError, bounded, encode};

impl Store {
    /// An unfenced transaction, for writes whose safety is their own
    /// compares (the primary lease's "only if nobody holds the key"), not
    /// the leader's fence.
    pub async fn txn(&self, txn: Txn) -> Result<TxnOutcome, StoreError> {
        bounded(self.kv.txn(txn)).await
    }

    /// An unfenced put, for operator commands (pause, drain): they are the
    /// operator's will, valid whoever leads.
    pub async fn put_control(&self, key: String, value: &str) -> Result<(), StoreError> {
        bounded(self.kv.put(&key, value.as_bytes().to_vec(), None)).await?;
        metrics::counter!("switchyard_etcd_writes_total", "kind" => "control").increment(1);
        Ok(())
    }

    /// An unfenced put of a JSON value, for what a controller says of
    /// itself whoever leads: its registration, the fences it did while
    /// isolated, why an operator's request waits.
    pub async fn put_json<T: Serialize>(&self, key: String, value: &T) -> Result<(), StoreError> {
        let json = encode(&key, value)?;
        bounded(self.kv.put(&key, json, None)).await?;
        metrics::counter!("switchyard_etcd_writes_total", "kind" => "self").increment(1);
        Ok(())
    }

    /// Sets (`Some(value)`) or clears (`None`) a control key and writes
    /// `history` (key, value) with it, in one transaction that goes through
    /// only if it changes something: whether it did. A switch and its
    /// history event land together or not at all, so an operator's retry
    /// after an unclear error can neither lose the event nor write it twice.
    pub async fn switch_control(
        &self,
        key: String,
        value: Option<&str>,
        history: (String, String),
    ) -> Result<bool, StoreError> {
        let (op, absent_now) = match value {
            Some(v) => (Op::put(key.clone(), v), CmpOp::Equal),
            None => (Op::delete(key.clone()), CmpOp::Greater),
        };
        let txn = Txn::when([Compare::version(key, absent_now, 0)])
            .and_then([op, Op::put(history.0, history.1)]);
        let outcome = bounded(self.kv.txn(txn)).await?;
        metrics::counter!("switchyard_etcd_writes_total", "kind" => "control").increment(1);
        Ok(outcome.succeeded)
    }

    /// Puts every (key, value) of `puts` and deletes every key of
    /// `deletes` in one transaction, if `guard` is set (a key that must
    /// exist); whether it went through. For operator changes and the
    /// history event that records them.
    pub async fn control_txn(
        &self,
        guard: Option<String>,
        deletes: Vec<String>,
        puts: Vec<(String, String)>,
    ) -> Result<bool, StoreError> {
        let ops: Vec<Op> = deletes
            .into_iter()
            .map(Op::delete)
            .chain(puts.into_iter().map(|(k, v)| Op::put(k, v)))
            .collect();
        let guard = guard.map(|g| Compare::version(g, CmpOp::Greater, 0));
        let txn = Txn::when(guard).and_then(ops);
        let outcome = bounded(self.kv.txn(txn)).await?;
        metrics::counter!("switchyard_etcd_writes_total", "kind" => "control").increment(1);
        Ok(outcome.succeeded)
    }

    /// Deletes a control key (tests take away a fence or a lease with it).
    pub async fn delete_control(&self, key: String) -> Result<(), StoreError> {
        bounded(self.kv.delete(&key)).await?;
        metrics::counter!("switchyard_etcd_writes_total", "kind" => "control").increment(1);
        Ok(())
    }
}
