//! etcd leases as the primary lease uses them: granted, asked how long
//! they have left, revoked. Renewals go through [`super::keepalive`].

use std::time::Duration;

use super::kv::{Granted, LeaseId};
use super::{Store, StoreError, bounded};

impl Store {
    /// Grants a lease of `ttl` (whole seconds, at least one); the id and
    /// the TTL etcd granted (it raises one below its minimum).
    pub async fn grant_lease(&self, ttl: Duration) -> Result<Granted, StoreError> {
        bounded(self.kv.grant(ttl)).await
    }

    /// How long `lease` has left unless renewed, in whole seconds rounded
    /// down; [`StoreError::LeaseNotFound`] once etcd no longer has it (by
    /// etcd's own clock, the one that decides).
    pub async fn lease_time_to_live(&self, lease: LeaseId) -> Result<Duration, StoreError> {
        bounded(self.kv.time_to_live(lease)).await
    }

    /// Revokes `lease`: every key attached to it goes at once.
    pub async fn revoke_lease(&self, lease: LeaseId) -> Result<(), StoreError> {
        bounded(self.kv.revoke(lease)).await
    }
}
