//! etcd: election, fenced writes, the key schema, and reads of shared state.
//!
//! Every write of the leader goes through [`Store::fenced_txn`], an etcd txn
//! whose compare is the leader key's create revision. A refused compare means
//! another node leads now: the caller gets [`StoreError::NotLeader`] and this
//! node steps down before it does anything else.
//!
//! A [`Store`] runs on any [`Kv`]: [`kv::etcd::EtcdKv`] in production
//! ([`Store::connect`]), [`kv::model::MemKv`] in tests and the simulator
//! ([`Store::on`]). Nothing outside this module and [`kv::etcd`] talks to
//! etcd-client, so what a Store does on the model is what it does on etcd.

pub mod access;
mod campaign;
mod connect;
pub mod election;
mod error;
mod fenced;
pub mod keepalive;
pub mod keys;
pub mod kv;
mod leases;
pub mod pages;
mod reads;
mod watch;
mod writes;

use std::sync::Arc;
use std::time::Duration;

use kv::{Kv, KvError};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use access::{AccessError, EtcdAccess};
pub use connect::host_port;
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
    kv: Arc<dyn Kv>,
    keys: Keys,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("keys", &self.keys).finish()
    }
}

impl Store {
    /// A store of `cluster`'s keys on `kv`: how tests and the simulator run
    /// the controller's etcd logic on the in-memory model.
    pub fn on(kv: Arc<dyn Kv>, cluster: &str) -> Self {
        Store {
            kv,
            keys: Keys::new(cluster),
        }
    }

    /// The key schema of this cluster.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }
}

/// Runs one key-value call within [`CALL_TIMEOUT`] (a backstop: `EtcdKv`
/// bounds its own calls the same way), with its error classified.
async fn bounded<T>(call: impl Future<Output = Result<T, KvError>>) -> Result<T, StoreError> {
    Ok(switchyard_host::time::timeout(CALL_TIMEOUT, call).await??)
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
