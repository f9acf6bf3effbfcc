//! Errors of the etcd store, classified so callers know whether to retry.

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
}

impl StoreError {
    /// True when the same call may succeed later (etcd was unreachable);
    /// false when retrying cannot help (lost leadership, bad data).
    pub fn retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

impl From<etcd_client::Error> for StoreError {
    fn from(e: etcd_client::Error) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

impl From<super::kv::KvError> for StoreError {
    fn from(e: super::kv::KvError) -> Self {
        match e {
            super::kv::KvError::Unavailable(m) => StoreError::Unavailable(m),
            // StoreError has no class of its own for a lease gone, a
            // compacted watch or a refusal yet: as with etcd-client's
            // errors (above), they read as Unavailable, with their words.
            other => StoreError::Unavailable(other.to_string()),
        }
    }
}

impl From<tokio::time::error::Elapsed> for StoreError {
    fn from(_: tokio::time::error::Elapsed) -> Self {
        StoreError::Unavailable("etcd call timed out".into())
    }
}
