//! Wakes the leader's loop the moment a primary lease key changes (taken,
//! rewritten, or deleted when etcd ends the lease), so a failover waiting
//! at the promotion gate asks it again at once instead of at its next
//! tick: etcd's expiry of the lease is what opens the gate, and every
//! 250 ms of polling would be added to the failover.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::WatchOptions;
use tokio::sync::Notify;

use crate::store::Store;
use crate::task::AbortOnDrop;

/// How long a failed or ended watch waits before it is opened again.
const REWATCH: Duration = Duration::from_millis(500);

/// Watches every primary lease of `store`'s cluster; each change notifies
/// the returned [`Notify`]. The watch ends when the guard is dropped.
pub fn watch_primary_leases(store: &Store) -> (Arc<Notify>, AbortOnDrop) {
    let notify = Arc::new(Notify::new());
    let prefix = store.keys().primary_leases_prefix();
    let client = store.client();
    let tx = notify.clone();
    let task = tokio::spawn(async move {
        loop {
            let mut c = client.clone();
            if let Ok(mut stream) = c
                .watch(prefix.clone(), Some(WatchOptions::new().with_prefix()))
                .await
            {
                while let Ok(Some(resp)) = stream.message().await {
                    if !resp.events().is_empty() {
                        tx.notify_one();
                    }
                    if resp.canceled() {
                        // etcd ended the watch (compaction, permissions):
                        // open a new one.
                        break;
                    }
                }
            }
            tokio::time::sleep(REWATCH).await;
        }
    });
    (notify, AbortOnDrop(task))
}
