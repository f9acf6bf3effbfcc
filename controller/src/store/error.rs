//! Errors of the etcd store, classified so callers know whether to retry.

use super::kv::{KvError, LeaseId, Revision};

/// What can go wrong talking to etcd.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The fence refused a write, or the lease is (about to be) gone: this
    /// node is no longer leader and must stop acting at once.
    #[error("not the leader any more: {0}")]
    NotLeader(String),
    /// etcd did not answer in time or the connection failed; retry later.
    #[error("etcd unavailable: {0}")]
    Unavailable(String),
    /// A value in etcd could not be decoded; a bug or a foreign writer.
    #[error("bad value at {key}: {reason}")]
    BadValue {
        /// The key holding the value.
        key: String,
        /// Why it could not be decoded.
        reason: String,
    },
    /// The lease is gone (expired, revoked, or never granted): it stays
    /// gone, so a keeper stops and a reader counts it over.
    #[error("etcd lease {0:x} not found")]
    LeaseNotFound(LeaseId),
    /// A watch asked for a revision etcd has compacted away: the caller
    /// must read the state again and watch from now, not ask again.
    #[error("etcd revision {requested} compacted (oldest kept {compacted})")]
    Compacted {
        /// The revision asked for.
        requested: Revision,
        /// The compaction revision.
        compacted: Revision,
    },
    /// etcd refused the request as invalid or not permitted (a login it
    /// rejects, a role without the key, a txn too large): the same request
    /// is refused again.
    #[error("etcd refused the request: {0}")]
    Refused(String),
}

impl StoreError {
    /// True when the same call may succeed later (etcd was unreachable);
    /// false when retrying cannot help (lost leadership, bad data, a lease
    /// gone, a revision compacted, a refusal).
    pub fn retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

impl From<KvError> for StoreError {
    fn from(e: KvError) -> Self {
        match e {
            KvError::Unavailable(m) => StoreError::Unavailable(m),
            KvError::LeaseNotFound(id) => StoreError::LeaseNotFound(id),
            KvError::Compacted {
                requested,
                compacted,
            } => StoreError::Compacted {
                requested,
                compacted,
            },
            KvError::Refused(m) => StoreError::Refused(m),
        }
    }
}

impl From<tokio::time::error::Elapsed> for StoreError {
    fn from(_: tokio::time::error::Elapsed) -> Self {
        StoreError::Unavailable("etcd call timed out".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_unavailable_store_is_worth_retrying() {
        let table = [
            (KvError::Unavailable("down".into()), true),
            (KvError::LeaseNotFound(7), false),
            (
                KvError::Compacted {
                    requested: 3,
                    compacted: 9,
                },
                false,
            ),
            (KvError::Refused("permission denied".into()), false),
        ];
        for (kv, retry) in table {
            let e = StoreError::from(kv.clone());
            assert_eq!(e.retryable(), retry, "{kv:?} became {e:?}");
            assert_eq!(e.retryable(), kv.retryable(), "{kv:?}");
        }
        assert!(matches!(
            StoreError::from(KvError::LeaseNotFound(7)),
            StoreError::LeaseNotFound(7)
        ));
    }
}
