//! etcd: election, fenced writes, the key schema, and reads of shared state.
//!
//! Every write of the leader goes through [`Store::fenced_txn`], an etcd txn
//! whose compare is the leader key's create revision. A refused compare means
//! another node leads now: the caller gets [`StoreError::NotLeader`] and this
//! node steps down before it does anything else.

pub mod access;
pub mod election;
mod error;
pub mod keepalive;
pub mod keys;
pub mod kv;
pub mod pages;

use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, ConnectOptions, GetOptions, Txn, TxnOp};

use kv::Kv;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use access::{AccessError, EtcdAccess};
pub use election::{ElectionConfig, Leadership, Role};
pub use error::StoreError;
pub use keys::Keys;

/// Timeout of one etcd read or write.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// Safety margin: the lease must outlive an action by this much before the
/// leader starts it.
pub const LEASE_MARGIN: Duration = Duration::from_millis(500);

/// A handle on the cluster's etcd state.
#[derive(Clone)]
pub struct Store {
    client: Client,
    keys: Keys,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("keys", &self.keys).finish()
    }
}

impl Store {
    /// Connects to etcd. Connecting is lazy enough that etcd may be down:
    /// calls fail with [`StoreError::Unavailable`] until it answers.
    pub async fn connect(endpoints: &[String], cluster: &str) -> Result<Self, StoreError> {
        Self::connect_with(endpoints, cluster, &EtcdAccess::plain()).await
    }

    /// [`connect`](Self::connect) with TLS and a login (`access`, from the
    /// config's `[etcd.tls]` and `etcd.credentials`).
    pub async fn connect_with(
        endpoints: &[String],
        cluster: &str,
        access: &EtcdAccess,
    ) -> Result<Self, StoreError> {
        let opts = access.apply(
            ConnectOptions::new()
                .with_connect_timeout(Duration::from_secs(2))
                .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2))
                .with_require_leader(true),
        );
        let client = Client::connect(endpoints, Some(opts)).await?;
        Ok(Store {
            client,
            keys: Keys::new(cluster),
        })
    }

    /// Like [`connect`](Self::connect), for one-shot calls (the operator
    /// API's, [`crate::api::operator::reach`]): only the endpoints that
    /// answer within `probe`, know a leader and have caught up are used
    /// (those that accept a TCP connection if none knows one, all of them
    /// if none does, so the error names the outage). etcd's balanced
    /// channel sends calls to a dead member as readily as to a live one,
    /// and an operator's call is not retried next tick: with one member of
    /// three down, operators would lose the CLI when they need it most. A
    /// member back from a partition answers before it has heard from the
    /// leader, and refuses every call meanwhile (`etcdserver: no leader`):
    /// the others are asked.
    pub async fn connect_reachable(
        endpoints: &[String],
        cluster: &str,
        access: &EtcdAccess,
        probe: Duration,
    ) -> Result<Self, StoreError> {
        // Every member asked at once: a CLI call waits for the slowest
        // answer or `probe`, not their sum.
        let reachable: Vec<String> =
            futures_util::future::join_all(endpoints.iter().map(|e| async move {
                let addr = host_port(e)?;
                matches!(
                    tokio::time::timeout(probe, tokio::net::TcpStream::connect(&addr)).await,
                    Ok(Ok(_))
                )
                .then(|| e.clone())
            }))
            .await
            .into_iter()
            .flatten()
            .collect();
        // (endpoint, raft index, applied index) of each member that knows
        // a leader.
        let led: Vec<(String, u64, u64)> =
            futures_util::future::join_all(reachable.iter().map(|e| async move {
                let status = async {
                    let mut c = Self::connect_with(std::slice::from_ref(e), cluster, access)
                        .await
                        .ok()?
                        .client();
                    c.status().await.ok()
                };
                match tokio::time::timeout(probe, status).await {
                    Ok(Some(s)) if s.leader() != 0 => {
                        Some((e.clone(), s.raft_index(), s.raft_applied_index()))
                    }
                    _ => None,
                }
            }))
            .await
            .into_iter()
            .flatten()
            .collect();
        let chosen = if !led.is_empty() {
            caught_up(&led)
        } else if !reachable.is_empty() {
            reachable
        } else {
            endpoints.to_vec()
        };
        Self::connect_with(&chosen, cluster, access).await
    }

    /// The key schema of this cluster.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// A clone of the etcd client, for the election loop.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// Runs `ops` only if `leader` still holds the leader key with the same
    /// create revision. Refused → steps down and returns `NotLeader`.
    pub async fn fenced_txn(&self, leader: &Leadership, ops: Vec<TxnOp>) -> Result<(), StoreError> {
        may_write(leader)?;
        let txn = Txn::new()
            .when([Compare::create_revision(
                leader.key().to_vec(),
                CompareOp::Equal,
                leader.token(),
            )])
            .and_then(ops);
        let mut c = self.client.clone();
        let resp = tokio::time::timeout(CALL_TIMEOUT, c.txn(txn)).await??;
        if resp.succeeded() {
            metrics::counter!("switchyard_etcd_writes_total", "kind" => "fenced").increment(1);
            Ok(())
        } else {
            Err(fence_refused(leader))
        }
    }

    /// Like [`fenced_txn`](Self::fenced_txn), only while `must_exist` still
    /// exists: `Ok(false)` (nothing written) when it is gone, with
    /// leadership still held — an operator request cancelled between the
    /// leader reading it and starting it is then not started. Which
    /// compare failed is read from the same transaction (its else branch
    /// reads the leader key), so a deposed leader is still told so.
    pub async fn fenced_txn_while(
        &self,
        leader: &Leadership,
        must_exist: &str,
        ops: Vec<TxnOp>,
    ) -> Result<bool, StoreError> {
        may_write(leader)?;
        let txn = Txn::new()
            .when([
                Compare::create_revision(leader.key().to_vec(), CompareOp::Equal, leader.token()),
                Compare::version(must_exist, CompareOp::Greater, 0),
            ])
            .and_then(ops)
            .or_else([TxnOp::get(leader.key().to_vec(), None)]);
        let mut c = self.client.clone();
        let resp = tokio::time::timeout(CALL_TIMEOUT, c.txn(txn)).await??;
        if resp.succeeded() {
            metrics::counter!("switchyard_etcd_writes_total", "kind" => "fenced").increment(1);
            return Ok(true);
        }
        let still_leader = resp.op_responses().into_iter().any(|r| match r {
            etcd_client::TxnOpResponse::Get(g) => g
                .kvs()
                .first()
                .is_some_and(|kv| kv.create_revision() == leader.token()),
            _ => false,
        });
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
            ops.push(TxnOp::put(key, json, None));
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
        self.fenced_txn(leader, vec![TxnOp::put(key, json, None)])
            .await
    }

    /// Reads and decodes one JSON value.
    pub async fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        let mut c = self.client.clone();
        let resp = tokio::time::timeout(CALL_TIMEOUT, c.get(key, None)).await??;
        match resp.kvs().first() {
            None => Ok(None),
            Some(kv) => decode(key, kv.value()).map(Some),
        }
    }

    /// Reads and decodes every JSON value under `prefix`, with its key
    /// (prefix removed), in key order, page by page. Strict: one value
    /// that cannot be decoded fails the read (for state whose every entry
    /// matters; the journal and history use [`Store::scan_json`]).
    pub async fn list_json<T: DeserializeOwned>(
        &self,
        prefix: &str,
    ) -> Result<Vec<(String, T)>, StoreError> {
        let raw = self.scan(prefix).await?;
        let mut out = Vec::with_capacity(raw.len());
        for (key, bytes) in raw {
            let value = decode(&format!("{prefix}{key}"), &bytes)?;
            out.push((key, value));
        }
        Ok(out)
    }

    /// The keys under `prefix` (prefix removed), e.g. drained regions.
    pub async fn list_keys(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        // etcd reads a limit of 0 as "no limit".
        self.page_keys(prefix, 0).await
    }

    /// True when `key` exists.
    pub async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        let mut c = self.client.clone();
        let resp = tokio::time::timeout(
            CALL_TIMEOUT,
            c.get(key, Some(GetOptions::new().with_count_only())),
        )
        .await??;
        Ok(resp.count() > 0)
    }

    /// An unfenced put, for operator commands (pause, drain): they are the
    /// operator's will, valid whoever leads.
    pub async fn put_control(&self, key: String, value: &str) -> Result<(), StoreError> {
        let mut c = self.client.clone();
        tokio::time::timeout(CALL_TIMEOUT, c.put(key, value, None)).await??;
        metrics::counter!("switchyard_etcd_writes_total", "kind" => "control").increment(1);
        Ok(())
    }

    /// An unfenced put of a JSON value, for what a controller says of
    /// itself whoever leads: its registration, the fences it did while
    /// isolated, why an operator's request waits.
    pub async fn put_json<T: Serialize>(&self, key: String, value: &T) -> Result<(), StoreError> {
        let json = encode(&key, value)?;
        let mut c = self.client.clone();
        tokio::time::timeout(CALL_TIMEOUT, c.put(key, json, None)).await??;
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
            Some(v) => (TxnOp::put(key.clone(), v, None), CompareOp::Equal),
            None => (TxnOp::delete(key.clone(), None), CompareOp::Greater),
        };
        let txn = Txn::new()
            .when([Compare::version(key, absent_now, 0)])
            .and_then([op, TxnOp::put(history.0, history.1, None)]);
        let mut c = self.client.clone();
        let resp = tokio::time::timeout(CALL_TIMEOUT, c.txn(txn)).await??;
        metrics::counter!("switchyard_etcd_writes_total", "kind" => "control").increment(1);
        Ok(resp.succeeded())
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
        let ops: Vec<TxnOp> = deletes
            .into_iter()
            .map(|k| TxnOp::delete(k, None))
            .chain(puts.into_iter().map(|(k, v)| TxnOp::put(k, v, None)))
            .collect();
        let mut txn = Txn::new();
        if let Some(g) = guard {
            txn = txn.when([Compare::version(g, CompareOp::Greater, 0)]);
        }
        let txn = txn.and_then(ops);
        let mut c = self.client.clone();
        let resp = tokio::time::timeout(CALL_TIMEOUT, c.txn(txn)).await??;
        metrics::counter!("switchyard_etcd_writes_total", "kind" => "control").increment(1);
        Ok(resp.succeeded())
    }

    /// Deletes a control key (tests take away a fence or a lease with it).
    pub async fn delete_control(&self, key: String) -> Result<(), StoreError> {
        let mut c = self.client.clone();
        tokio::time::timeout(CALL_TIMEOUT, c.delete(key, None)).await??;
        metrics::counter!("switchyard_etcd_writes_total", "kind" => "control").increment(1);
        Ok(())
    }

    /// Every value put under `prefix` from now on, in order, as (key,
    /// value), until etcd ends the watch (then an error) or the receiver
    /// is dropped. For the operator API's Watch. Deletes are left out.
    pub async fn watch_puts(
        &self,
        prefix: &str,
    ) -> Result<tokio::sync::mpsc::Receiver<Result<(String, Vec<u8>), StoreError>>, StoreError>
    {
        let mut events = kv::etcd::EtcdKv::new(self.client.clone())
            .watch(prefix, None)
            .await?;
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            // Dropping `events` with this task ends the watch.
            loop {
                let event = tokio::select! {
                    e = events.recv() => e,
                    () = tx.closed() => return,
                };
                let item = match event {
                    Some(Ok(kv::WatchEvent::Put(kv))) => Ok((kv.key, kv.value)),
                    Some(Ok(kv::WatchEvent::Delete { .. })) => continue,
                    Some(Err(e)) => Err(e.into()),
                    None => Err(StoreError::Unavailable("etcd ended the watch".into())),
                };
                let last = item.is_err();
                if tx.send(item).await.is_err() || last {
                    return;
                }
            }
        });
        Ok(rx)
    }

    /// The current leader's value (its gRPC address), if any leads.
    pub async fn leader_value(&self) -> Result<Option<String>, StoreError> {
        let mut c = self.client.clone();
        match tokio::time::timeout(CALL_TIMEOUT, c.leader(self.keys.leader())).await? {
            Ok(resp) => Ok(resp
                .kv()
                .map(|kv| String::from_utf8_lossy(kv.value()).into_owned())),
            // etcd answers "election: no leader" as an error.
            Err(e) if e.to_string().contains("no leader") => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// How far behind the most advanced member a member's applied index may
/// be and still serve the CLI: one back from a partition can be far
/// behind, and every read it serves waits until it has caught up.
const CAUGHT_UP: u64 = 1000;

/// Of the members that know a leader, those that have applied nearly all
/// the log the most advanced one has: a CLI call sent to a member still
/// catching up after a partition would time out. All of them when none
/// qualifies.
fn caught_up(members: &[(String, u64, u64)]) -> Vec<String> {
    let newest = members
        .iter()
        .map(|(_, index, _)| *index)
        .max()
        .unwrap_or(0);
    let close: Vec<String> = members
        .iter()
        .filter(|(_, _, applied)| applied + CAUGHT_UP >= newest)
        .map(|(e, _, _)| e.clone())
        .collect();
    if close.is_empty() {
        members.iter().map(|(e, _, _)| e.clone()).collect()
    } else {
        close
    }
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

/// `host:port` of an etcd endpoint URL (`http://h:p`, `https://h:p/`, or
/// bare `h:p`).
pub fn host_port(endpoint: &str) -> Option<String> {
    let rest = endpoint
        .split_once("://")
        .map_or(endpoint, |(_, r)| r)
        .trim_end_matches('/');
    (!rest.is_empty() && rest.contains(':')).then(|| rest.to_string())
}

/// Encodes a value as JSON for etcd.
pub fn encode<T: Serialize>(key: &str, value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::BadValue {
        key: key.to_string(),
        reason: e.to_string(),
    })
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::BadValue {
        key: key.to_string(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::{caught_up, host_port};

    #[test]
    fn the_cli_keeps_to_members_that_have_caught_up() {
        let m = |e: &str, index: u64, applied: u64| (e.to_string(), index, applied);
        // A member back from a partition, far behind: left out.
        assert_eq!(
            caught_up(&[m("a", 5000, 5000), m("b", 5000, 4990), m("c", 5000, 1200)]),
            vec!["a".to_string(), "b".to_string()]
        );
        // Within the bound: kept.
        assert_eq!(
            caught_up(&[m("a", 5000, 5000), m("c", 5000, 4000)]).len(),
            2
        );
        // Never an empty list.
        assert_eq!(caught_up(&[m("a", 9000, 10)]), vec!["a".to_string()]);
    }

    #[test]
    fn endpoints_give_their_host_and_port() {
        let table = [
            ("http://127.0.0.1:2379", Some("127.0.0.1:2379")),
            (
                "https://etcd-1.internal:2379/",
                Some("etcd-1.internal:2379"),
            ),
            ("10.0.0.1:2379", Some("10.0.0.1:2379")),
            ("http://", None),
            ("etcd", None),
        ];
        for (e, want) in table {
            assert_eq!(host_port(e).as_deref(), want, "{e}");
        }
    }
}
