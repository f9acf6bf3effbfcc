//! [`Kv`] on a real etcd, through `etcd-client`. Each call is bounded by
//! [`CALL_TIMEOUT`]: a call that times out is [`KvError::Unavailable`],
//! and may still have taken effect.

use std::time::Duration;

use etcd_client::{
    Client, Compare as EtcdCompare, CompareOp, ConnectOptions, DeleteOptions, EventType,
    GetOptions, LeaseKeepAliveStream, LeaseKeeper, PutOptions, SortOrder, SortTarget,
    Txn as EtcdTxn, TxnOp, TxnOpResponse, WatchOptions,
};
use tokio::sync::mpsc;

use super::{
    CmpOp, Compare, Granted, KeepAlive, KeyValue, Kv, KvError, LeaseId, Op, OpResult, Range,
    RangeQuery, Revision, Target, Txn, TxnOutcome, WATCH_BUFFER, WatchEvent, WatchStream,
    whole_seconds,
};
use crate::store::CALL_TIMEOUT;
use crate::store::pages::prefix_end;

/// A [`Kv`] backed by an etcd cluster.
#[derive(Clone)]
pub struct EtcdKv {
    client: Client,
}

impl std::fmt::Debug for EtcdKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdKv").finish_non_exhaustive()
    }
}

impl EtcdKv {
    /// Wraps a connected client.
    pub fn new(client: Client) -> Self {
        EtcdKv { client }
    }

    /// Connects to `endpoints` in plaintext, without a login (tests; the
    /// controller connects through [`crate::store::Store::connect_with`]).
    pub async fn connect(endpoints: &[String]) -> Result<Self, KvError> {
        Self::connect_with(endpoints, None).await
    }

    /// Connects to `endpoints` with `options` (timeouts, TLS, a login:
    /// what [`crate::store::Store::connect_with`] sets). A login that etcd
    /// refuses is [`KvError::Refused`]: trying again cannot help.
    pub async fn connect_with(
        endpoints: &[String],
        options: Option<ConnectOptions>,
    ) -> Result<Self, KvError> {
        let client = Client::connect(endpoints, options)
            .await
            .map_err(|e| classify(e, 0))?;
        Ok(EtcdKv { client })
    }

    fn client(&self) -> Client {
        self.client.clone()
    }
}

/// Runs one etcd call within [`CALL_TIMEOUT`].
async fn bounded<T>(
    lease: LeaseId,
    call: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, KvError> {
    match switchyard_host::time::timeout(CALL_TIMEOUT, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(classify(e, lease)),
        Err(_) => Err(KvError::Unavailable("etcd call timed out".into())),
    }
}

/// Sorts an etcd error into the contract's classes; `lease` names the
/// lease a "not found" is about.
fn classify(e: etcd_client::Error, lease: LeaseId) -> KvError {
    // Opening a keep-alive stream renews once and says so when etcd
    // answers TTL 0.
    if let etcd_client::Error::LeaseKeepAliveError(m) = &e
        && m.contains("lease not found")
    {
        return KvError::LeaseNotFound(lease);
    }
    if let etcd_client::Error::GRpcStatus(status) = &e {
        let msg = status.message();
        if msg.contains("requested lease not found") {
            return KvError::LeaseNotFound(lease);
        }
        if msg.contains("required revision has been compacted") {
            return KvError::Compacted {
                requested: 0,
                compacted: 0,
            };
        }
        match status.code() {
            tonic::Code::InvalidArgument
            | tonic::Code::PermissionDenied
            | tonic::Code::Unauthenticated
            | tonic::Code::FailedPrecondition
            | tonic::Code::OutOfRange => return KvError::Refused(msg.to_string()),
            _ => {}
        }
    }
    KvError::Unavailable(e.to_string())
}

fn key_value(kv: &etcd_client::KeyValue) -> KeyValue {
    KeyValue {
        key: String::from_utf8_lossy(kv.key()).into_owned(),
        value: kv.value().to_vec(),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
        version: kv.version(),
        lease: kv.lease(),
    }
}

fn revision_of(header: Option<&etcd_client::ResponseHeader>) -> Revision {
    header.map_or(0, etcd_client::ResponseHeader::revision)
}

fn compare(c: Compare) -> EtcdCompare {
    let op = match c.op {
        CmpOp::Equal => CompareOp::Equal,
        CmpOp::NotEqual => CompareOp::NotEqual,
        CmpOp::Greater => CompareOp::Greater,
        CmpOp::Less => CompareOp::Less,
    };
    match c.target {
        Target::Version(v) => EtcdCompare::version(c.key, op, v),
        Target::CreateRevision(v) => EtcdCompare::create_revision(c.key, op, v),
        Target::ModRevision(v) => EtcdCompare::mod_revision(c.key, op, v),
        Target::Value(v) => EtcdCompare::value(c.key, op, v),
    }
}

fn txn_op(op: Op) -> TxnOp {
    match op {
        Op::Put { key, value, lease } => {
            TxnOp::put(key, value, lease.map(|id| PutOptions::new().with_lease(id)))
        }
        Op::Delete { key } => TxnOp::delete(key, None::<DeleteOptions>),
        Op::Get { key } => TxnOp::get(key, None::<GetOptions>),
        Op::DeleteRange { from, to } => {
            TxnOp::delete(from, Some(DeleteOptions::new().with_range(to)))
        }
    }
}

/// The lease a branch attaches keys to, to name it in a "not found".
fn lease_in(ops: &[Op]) -> LeaseId {
    ops.iter()
        .find_map(|op| match op {
            Op::Put { lease: Some(l), .. } => Some(*l),
            _ => None,
        })
        .unwrap_or(0)
}

/// One lease's keep-alive stream on etcd.
struct EtcdKeepAlive {
    lease: LeaseId,
    keeper: LeaseKeeper,
    stream: LeaseKeepAliveStream,
}

#[async_trait::async_trait]
impl KeepAlive for EtcdKeepAlive {
    async fn renew(&mut self) -> Result<Duration, KvError> {
        let (keeper, stream) = (&mut self.keeper, &mut self.stream);
        let answer = bounded(self.lease, async move {
            keeper.keep_alive().await?;
            stream.message().await
        })
        .await?;
        match answer {
            // TTL 0: etcd no longer knows the lease.
            Some(r) if r.ttl() <= 0 => Err(KvError::LeaseNotFound(self.lease)),
            Some(r) => Ok(Duration::from_secs(r.ttl() as u64)),
            None => Err(KvError::Unavailable("etcd ended the keep-alive".into())),
        }
    }
}

#[async_trait::async_trait]
impl Kv for EtcdKv {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, KvError> {
        let mut c = self.client();
        let resp = bounded(0, c.get(key, None)).await?;
        Ok(resp.kvs().first().map(key_value))
    }

    async fn range(&self, query: &RangeQuery) -> Result<Range, KvError> {
        let start = match &query.from {
            Some(f) if f.as_str() > query.prefix.as_str() => f.clone(),
            _ => query.prefix.clone(),
        };
        let mut end = prefix_end(&query.prefix);
        if let Some(to) = &query.to
            && (end == [0] || to.as_bytes() < end.as_slice())
        {
            end = to.as_bytes().to_vec();
        }
        let mut opts = GetOptions::new()
            .with_range(end)
            .with_limit(query.limit as i64);
        if query.keys_only {
            opts = opts.with_keys_only();
        }
        if query.descending {
            opts = opts.with_sort(SortTarget::Key, SortOrder::Descend);
        }
        let mut c = self.client();
        let resp = bounded(0, c.get(start, Some(opts))).await?;
        Ok(Range {
            kvs: resp.kvs().iter().map(key_value).collect(),
            more: resp.more(),
            count: resp.count(),
            revision: revision_of(resp.header()),
        })
    }

    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    ) -> Result<Revision, KvError> {
        let mut c = self.client();
        let opts = lease.map(|id| PutOptions::new().with_lease(id));
        let resp = bounded(lease.unwrap_or(0), c.put(key, value, opts)).await?;
        Ok(revision_of(resp.header()))
    }

    async fn delete(&self, key: &str) -> Result<i64, KvError> {
        let mut c = self.client();
        let resp = bounded(0, c.delete(key, None)).await?;
        Ok(resp.deleted())
    }

    async fn txn(&self, txn: Txn) -> Result<TxnOutcome, KvError> {
        let lease = lease_in(&txn.success).max(lease_in(&txn.failure));
        let etcd_txn = EtcdTxn::new()
            .when(txn.compares.into_iter().map(compare).collect::<Vec<_>>())
            .and_then(txn.success.into_iter().map(txn_op).collect::<Vec<_>>())
            .or_else(txn.failure.into_iter().map(txn_op).collect::<Vec<_>>());
        let mut c = self.client();
        let resp = bounded(lease, c.txn(etcd_txn)).await?;
        let results = resp
            .op_responses()
            .into_iter()
            .map(|r| match r {
                TxnOpResponse::Put(_) => OpResult::Put,
                TxnOpResponse::Delete(d) => OpResult::Deleted(d.deleted()),
                TxnOpResponse::Get(g) => OpResult::Got(g.kvs().first().map(key_value)),
                // Nested transactions are never sent.
                TxnOpResponse::Txn(_) => OpResult::Put,
            })
            .collect();
        Ok(TxnOutcome {
            succeeded: resp.succeeded(),
            revision: revision_of(resp.header()),
            results,
        })
    }

    async fn grant(&self, ttl: Duration) -> Result<Granted, KvError> {
        let secs = whole_seconds(ttl).as_secs() as i64;
        let mut c = self.client();
        let resp = bounded(0, c.lease_grant(secs, None)).await?;
        Ok(Granted {
            id: resp.id(),
            ttl: Duration::from_secs(resp.ttl().max(1) as u64),
        })
    }

    async fn keep_alive_stream(&self, lease: LeaseId) -> Result<Box<dyn KeepAlive>, KvError> {
        let mut c = self.client();
        // Opening the stream renews once already (and fails if the lease
        // is gone); etcd-client keeps that answer to itself.
        let (keeper, stream) = bounded(lease, c.lease_keep_alive(lease)).await?;
        Ok(Box::new(EtcdKeepAlive {
            lease,
            keeper,
            stream,
        }))
    }

    async fn time_to_live(&self, lease: LeaseId) -> Result<Duration, KvError> {
        let mut c = self.client();
        let resp = bounded(lease, c.lease_time_to_live(lease, None)).await?;
        // etcd answers -1 for a lease it does not have.
        if resp.ttl() < 0 {
            return Err(KvError::LeaseNotFound(lease));
        }
        Ok(Duration::from_secs(resp.ttl() as u64))
    }

    async fn revoke(&self, lease: LeaseId) -> Result<(), KvError> {
        let mut c = self.client();
        bounded(lease, c.lease_revoke(lease)).await?;
        Ok(())
    }

    async fn watch(&self, prefix: &str, from: Option<Revision>) -> Result<WatchStream, KvError> {
        let mut opts = WatchOptions::new().with_prefix();
        if let Some(rev) = from.filter(|r| *r > 0) {
            opts = opts.with_start_revision(rev);
        }
        let mut c = self.client();
        let mut stream = bounded(0, c.watch(prefix, Some(opts))).await?;
        // etcd-client returns once the stream is open, before etcd has
        // created the watch: wait for etcd's first answer, so that every
        // change after this call returns is seen (and, on a follower that
        // lags, a few just before it too).
        let first = match bounded(0, stream.message()).await? {
            Some(resp) => resp,
            None => return Err(KvError::Unavailable("etcd ended the watch".into())),
        };
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        let requested = from.unwrap_or(0);
        crate::task::spawn(async move {
            // The stream is the watch: dropped with this task, it ends.
            let mut pending = Some(first);
            loop {
                let msg = match pending.take() {
                    Some(resp) => Ok(Some(resp)),
                    None => tokio::select! {
                        m = stream.message() => m,
                        () = tx.closed() => return,
                    },
                };
                let resp = match msg {
                    Ok(Some(resp)) => resp,
                    Ok(None) => {
                        let _ = tx
                            .send(Err(KvError::Unavailable("etcd ended the watch".into())))
                            .await;
                        return;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(classify(e, 0))).await;
                        return;
                    }
                };
                if resp.compact_revision() > 0 {
                    let _ = tx
                        .send(Err(KvError::Compacted {
                            requested,
                            compacted: resp.compact_revision(),
                        }))
                        .await;
                    return;
                }
                for event in resp.events() {
                    let Some(kv) = event.kv() else { continue };
                    let item = match event.event_type() {
                        EventType::Put => WatchEvent::Put(key_value(kv)),
                        EventType::Delete => WatchEvent::Delete {
                            key: String::from_utf8_lossy(kv.key()).into_owned(),
                            mod_revision: kv.mod_revision(),
                        },
                    };
                    if tx.send(Ok(item)).await.is_err() {
                        return;
                    }
                }
                if resp.canceled() {
                    let _ = tx
                        .send(Err(KvError::Unavailable(format!(
                            "etcd ended the watch: {}",
                            resp.cancel_reason()
                        ))))
                        .await;
                    return;
                }
            }
        });
        Ok(rx)
    }
}
