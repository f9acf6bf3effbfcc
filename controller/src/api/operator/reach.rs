//! The etcd connection the operator API answers from. The controller's
//! own client balances over every configured member, a dead one included,
//! and its loops simply try again next tick; an operator's call is one
//! shot, and with one member of three down most `status` calls would fail
//! on their first unlucky read. So the API keeps a client of the members
//! that answer, know a leader and have caught up
//! ([`Store::connect_reachable`]), made again after any etcd error and at
//! least every [`REACH_FOR`].

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::store::{EtcdAccess, Store};

/// How long a chosen set of members is kept without an error.
pub const REACH_FOR: Duration = Duration::from_secs(10);

/// How long each member may take to answer when the set is chosen.
const PROBE: Duration = Duration::from_millis(500);

/// The API's etcd client, chosen among the members that answer.
pub struct EtcdReach {
    endpoints: Vec<String>,
    cluster: String,
    access: EtcdAccess,
    cached: Mutex<Option<(Instant, Store)>>,
}

impl std::fmt::Debug for EtcdReach {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdReach")
            .field("endpoints", &self.endpoints)
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

impl EtcdReach {
    /// A reach of `endpoints` for `cluster`, with `access` (TLS, login).
    pub fn new(endpoints: Vec<String>, cluster: String, access: EtcdAccess) -> Self {
        EtcdReach {
            endpoints,
            cluster,
            access,
            cached: Mutex::new(None),
        }
    }

    /// The client to answer with: the one chosen less than [`REACH_FOR`]
    /// ago, else a newly chosen one.
    pub async fn store(&self) -> Result<Store, crate::store::StoreError> {
        let mut cached = self.cached.lock().await;
        if let Some((at, store)) = cached.as_ref()
            && switchyard_host::time::since(*at) < REACH_FOR
        {
            return Ok(store.clone());
        }
        let store =
            Store::connect_reachable(&self.endpoints, &self.cluster, &self.access, PROBE).await?;
        *cached = Some((switchyard_host::time::now(), store.clone()));
        Ok(store)
    }

    /// Drops the chosen client after an etcd error: the next call chooses
    /// again.
    pub async fn forget(&self) {
        *self.cached.lock().await = None;
    }
}
