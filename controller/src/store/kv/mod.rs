//! The key-value contract the control plane relies on, as a trait with two
//! implementations: [`etcd::EtcdKv`] (the real thing) and
//! [`model::MemKv`] (an in-memory model for the simulator and for tests
//! that need no etcd). Both pass one [`conformance`] suite, which also
//! runs against a real etcd, so the model cannot drift from what etcd
//! does.
//!
//! The contract is the part of etcd's v3 API the controller's safety
//! argument stands on (`docs/SAFETY.md`): one store-wide revision that
//! every write advances by one, per-key create/mod revisions and versions,
//! transactions whose compares and writes are atomic, leases whose keys
//! vanish when they expire or are revoked, and watches that deliver every
//! change under a prefix in revision order, from a past revision if asked.

pub mod conformance;
pub mod etcd;
pub mod model;

use std::time::Duration;

use tokio::sync::mpsc;

/// A store revision: etcd's logical clock, advanced by one per write.
pub type Revision = i64;

/// A lease id. 0 is never a granted lease.
pub type LeaseId = i64;

/// One key as stored, with the metadata fences and compares read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: String,
    /// The value, as bytes.
    pub value: Vec<u8>,
    /// The revision that created the key (since it last did not exist):
    /// the leader's fencing token.
    pub create_revision: Revision,
    /// The revision of the last write to the key.
    pub mod_revision: Revision,
    /// Writes since creation, 1 for a new key.
    pub version: i64,
    /// The lease the key is attached to, 0 for none.
    pub lease: LeaseId,
}

/// What a compare looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The key's version (0 when it does not exist).
    Version(i64),
    /// The key's create revision (0 when it does not exist).
    CreateRevision(Revision),
    /// The key's mod revision (0 when it does not exist).
    ModRevision(Revision),
    /// The key's value. A compare of a value never holds for a key that
    /// does not exist, whatever the operator: etcd cannot tell a missing
    /// value from an empty one, so it refuses both.
    Value(Vec<u8>),
}

/// How a compare relates the key's field to its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// Equal to the target.
    Equal,
    /// Not equal to the target.
    NotEqual,
    /// Greater than the target.
    Greater,
    /// Less than the target.
    Less,
}

/// One condition of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compare {
    /// The key compared.
    pub key: String,
    /// The relation.
    pub op: CmpOp,
    /// The field and the value it is compared with.
    pub target: Target,
}

impl Compare {
    /// `key`'s version `op` `v` (version 0: the key does not exist).
    pub fn version(key: impl Into<String>, op: CmpOp, v: i64) -> Self {
        Compare {
            key: key.into(),
            op,
            target: Target::Version(v),
        }
    }

    /// `key`'s create revision `op` `rev` (the leader fence).
    pub fn create_revision(key: impl Into<String>, op: CmpOp, rev: Revision) -> Self {
        Compare {
            key: key.into(),
            op,
            target: Target::CreateRevision(rev),
        }
    }

    /// `key`'s mod revision `op` `rev` (compare-and-swap on a read).
    pub fn mod_revision(key: impl Into<String>, op: CmpOp, rev: Revision) -> Self {
        Compare {
            key: key.into(),
            op,
            target: Target::ModRevision(rev),
        }
    }

    /// `key`'s value `op` `value`.
    pub fn value(key: impl Into<String>, op: CmpOp, value: impl Into<Vec<u8>>) -> Self {
        Compare {
            key: key.into(),
            op,
            target: Target::Value(value.into()),
        }
    }
}

/// One operation of a transaction branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Writes `value` at `key`, attached to `lease` if given.
    Put {
        /// The key.
        key: String,
        /// The value.
        value: Vec<u8>,
        /// The lease to attach the key to.
        lease: Option<LeaseId>,
    },
    /// Deletes `key` if it exists.
    Delete {
        /// The key.
        key: String,
    },
    /// Reads `key`.
    Get {
        /// The key.
        key: String,
    },
    /// Deletes every key from `from` (inclusive) to `to` (exclusive) at
    /// one revision: trimming a prefix that grew large costs one operation
    /// whatever it holds.
    DeleteRange {
        /// The first key deleted, if it exists.
        from: String,
        /// The first key after the range.
        to: String,
    },
}

impl Op {
    /// A put without a lease.
    pub fn put(key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        Op::Put {
            key: key.into(),
            value: value.into(),
            lease: None,
        }
    }

    /// A delete.
    pub fn delete(key: impl Into<String>) -> Self {
        Op::Delete { key: key.into() }
    }

    /// A read.
    pub fn get(key: impl Into<String>) -> Self {
        Op::Get { key: key.into() }
    }

    /// A put attached to `lease`: the key goes when the lease does.
    pub fn put_leased(key: impl Into<String>, value: impl Into<Vec<u8>>, lease: LeaseId) -> Self {
        Op::Put {
            key: key.into(),
            value: value.into(),
            lease: Some(lease),
        }
    }

    /// A delete of every key in `[from, to)`.
    pub fn delete_range(from: impl Into<String>, to: impl Into<String>) -> Self {
        Op::DeleteRange {
            from: from.into(),
            to: to.into(),
        }
    }
}

/// What one operation of the branch taken gave back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpResult {
    /// A put went through.
    Put,
    /// How many keys a delete removed (0 or 1; any number for a range).
    Deleted(i64),
    /// What a get read: the key, if it existed.
    Got(Option<KeyValue>),
}

/// A transaction: if every compare holds, `success` runs, else `failure`;
/// either way atomically, at one revision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Txn {
    /// Conditions, all of which must hold.
    pub compares: Vec<Compare>,
    /// Operations run when they do.
    pub success: Vec<Op>,
    /// Operations run when one does not.
    pub failure: Vec<Op>,
}

impl Txn {
    /// A transaction with these conditions and no operations yet.
    pub fn when(compares: impl IntoIterator<Item = Compare>) -> Self {
        Txn {
            compares: compares.into_iter().collect(),
            ..Txn::default()
        }
    }

    /// Sets the operations run when the compares hold.
    pub fn and_then(mut self, ops: impl IntoIterator<Item = Op>) -> Self {
        self.success = ops.into_iter().collect();
        self
    }

    /// Sets the operations run when a compare fails.
    pub fn or_else(mut self, ops: impl IntoIterator<Item = Op>) -> Self {
        self.failure = ops.into_iter().collect();
        self
    }
}

/// What a transaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnOutcome {
    /// Whether the compares held (`success` ran).
    pub succeeded: bool,
    /// The store's revision after it.
    pub revision: Revision,
    /// One result per operation of the branch that ran.
    pub results: Vec<OpResult>,
}

/// A read of a range of keys under a prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeQuery {
    /// Only keys starting with this.
    pub prefix: String,
    /// Only keys at or after this one.
    pub from: Option<String>,
    /// Only keys strictly before this one.
    pub to: Option<String>,
    /// At most this many keys (0: no limit).
    pub limit: usize,
    /// Last key first.
    pub descending: bool,
    /// Keys and metadata only, values left empty: a read of many keys
    /// (to count or trim them) stays far under gRPC's message cap.
    pub keys_only: bool,
}

impl RangeQuery {
    /// Every key under `prefix`, in key order.
    pub fn prefix(prefix: impl Into<String>) -> Self {
        RangeQuery {
            prefix: prefix.into(),
            ..RangeQuery::default()
        }
    }
}

/// What a range read gave back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    /// The keys, in the query's order.
    pub kvs: Vec<KeyValue>,
    /// True when the limit left matching keys out.
    pub more: bool,
    /// How many keys the query selects, the limit aside: a count costs a
    /// read of one key.
    pub count: i64,
    /// The store's revision the read saw.
    pub revision: Revision,
}

/// One change a watch delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// A key was written; its state after the write.
    Put(KeyValue),
    /// A key was deleted (by a delete, a revoke or an expired lease).
    Delete {
        /// The key.
        key: String,
        /// The revision of the delete.
        mod_revision: Revision,
    },
}

impl WatchEvent {
    /// The revision of the change.
    pub fn revision(&self) -> Revision {
        match self {
            WatchEvent::Put(kv) => kv.mod_revision,
            WatchEvent::Delete { mod_revision, .. } => *mod_revision,
        }
    }

    /// The key changed.
    pub fn key(&self) -> &str {
        match self {
            WatchEvent::Put(kv) => &kv.key,
            WatchEvent::Delete { key, .. } => key,
        }
    }
}

/// The changes of a watch, in revision order; an `Err` ends it. Bounded
/// ([`WATCH_BUFFER`]): a consumer that stops reading holds etcd's stream
/// back instead of growing memory.
pub type WatchStream = mpsc::Receiver<Result<WatchEvent, KvError>>;

/// Changes a watch buffers ahead of its consumer.
pub const WATCH_BUFFER: usize = 64;

/// A lease as granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Granted {
    /// Its id.
    pub id: LeaseId,
    /// The TTL granted: etcd raises one below its minimum (which grows
    /// with its election timeout), and a holder must count with the TTL
    /// the lease really has.
    pub ttl: Duration,
}

/// An open keep-alive stream of one lease: renewals without a new stream
/// per renewal, as etcd's keep-alive is meant to be used (a renewal every
/// 250 ms must not cost a stream setup each).
#[async_trait::async_trait]
pub trait KeepAlive: Send {
    /// Renews the lease for its whole TTL; the TTL granted.
    /// [`KvError::LeaseNotFound`] when the lease is gone; after any other
    /// error the stream is spent and a new one must be opened.
    async fn renew(&mut self) -> Result<Duration, KvError>;
}

/// What can go wrong with a key-value call, classified for retries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// The store did not answer, or not in time: the call may or may not
    /// have taken effect. Retry later, after re-reading.
    #[error("key-value store unavailable: {0}")]
    Unavailable(String),
    /// The lease does not exist (expired, revoked, or never granted).
    #[error("lease {0:x} not found")]
    LeaseNotFound(LeaseId),
    /// A watch asked for a revision the store has compacted away.
    #[error("revision {requested} compacted (oldest kept {compacted})")]
    Compacted {
        /// The revision asked for.
        requested: Revision,
        /// The compaction revision.
        compacted: Revision,
    },
    /// The store refused the request as invalid or not permitted.
    #[error("key-value store refused the request: {0}")]
    Refused(String),
}

impl KvError {
    /// True when the same call may succeed later; false when retrying
    /// cannot help (a lease that is gone stays gone).
    pub fn retryable(&self) -> bool {
        matches!(self, KvError::Unavailable(_))
    }
}

/// etcd's v3 key-value API, the part the controller relies on. Every call
/// either takes effect whole or not at all; on `Unavailable` the caller
/// cannot know which, exactly as with a real network.
#[async_trait::async_trait]
pub trait Kv: Send + Sync {
    /// Reads one key.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, KvError>;

    /// Reads the keys `query` selects.
    async fn range(&self, query: &RangeQuery) -> Result<Range, KvError>;

    /// Writes `value` at `key` (attached to `lease` if given); the
    /// revision of the write.
    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    ) -> Result<Revision, KvError>;

    /// Deletes `key`; how many keys went (0 or 1).
    async fn delete(&self, key: &str) -> Result<i64, KvError>;

    /// Runs a transaction.
    async fn txn(&self, txn: Txn) -> Result<TxnOutcome, KvError>;

    /// Grants a lease of `ttl` (rounded up to whole seconds, at least
    /// one; the store may raise it further).
    async fn grant(&self, ttl: Duration) -> Result<Granted, KvError>;

    /// Opens a keep-alive stream of `lease`; opening renews it once.
    /// [`KvError::LeaseNotFound`] when the lease is gone.
    async fn keep_alive_stream(&self, lease: LeaseId) -> Result<Box<dyn KeepAlive>, KvError>;

    /// Renews `lease` for its whole TTL; the TTL granted. A one-off: a
    /// lease renewed over and over is renewed through
    /// [`keep_alive_stream`](Kv::keep_alive_stream).
    async fn keep_alive(&self, lease: LeaseId) -> Result<Duration, KvError> {
        self.keep_alive_stream(lease).await?.renew().await
    }

    /// How long `lease` has left unless renewed, in whole seconds rounded
    /// down (as etcd answers). [`KvError::LeaseNotFound`] when it is gone:
    /// what a leader asks to learn that a lease is over by etcd's clock.
    async fn time_to_live(&self, lease: LeaseId) -> Result<Duration, KvError>;

    /// Revokes `lease`, deleting every key attached to it.
    async fn revoke(&self, lease: LeaseId) -> Result<(), KvError>;

    /// Every change under `prefix` after the watch starts, or from
    /// revision `from` on (inclusive) when given, in revision order.
    /// Without `from`, "starts" is the serving member's revision: a
    /// follower that has not applied a write acknowledged a moment ago
    /// delivers it too. Pass `from` whenever the first event matters.
    async fn watch(&self, prefix: &str, from: Option<Revision>) -> Result<WatchStream, KvError>;
}

/// A lease TTL as etcd grants it: whole seconds, at least one.
pub fn whole_seconds(ttl: Duration) -> Duration {
    Duration::from_secs(ttl.as_secs_f64().ceil().max(1.0) as u64)
}

/// Whether `key` lies in the range `query` selects.
pub fn in_range(query: &RangeQuery, key: &str) -> bool {
    key.starts_with(&query.prefix)
        && query.from.as_deref().is_none_or(|f| key >= f)
        && query.to.as_deref().is_none_or(|t| key < t)
}
