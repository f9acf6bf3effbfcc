//! Wakes the leader's loop the moment something it acts on changes in
//! etcd, instead of at its next tick:
//!
//! - a primary lease key (taken, rewritten, or deleted when etcd ends the
//!   lease), so a failover waiting at the promotion gate asks it again at
//!   once: etcd's expiry of the lease is what opens the gate, and every
//!   250 ms of polling would be added to the failover;
//! - a database's record, so the primaries it holds are read again.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::store::Store;
use crate::task::AbortOnDrop;

/// How long a failed or ended watch waits before it is opened again.
const REWATCH: Duration = Duration::from_millis(500);

/// Watches every primary lease of `store`'s cluster; each change notifies
/// the returned [`Notify`]. The watch ends when the guard is dropped.
pub fn watch_primary_leases(store: &Store) -> (Arc<Notify>, AbortOnDrop) {
    let prefix = store.keys().primary_leases_prefix();
    watch_prefix(store, prefix)
}

/// Watches every database's record (`state/databases/`): a change the
/// leader did not make itself — a hand edit, a record that no longer
/// decodes — must reach the primaries it holds before it plans on them,
/// and the leader reads them only when it knows they moved.
pub fn watch_database_records(store: &Store) -> (Arc<Notify>, AbortOnDrop) {
    let prefix = store.keys().databases_prefix();
    watch_prefix(store, prefix)
}

/// Notifies at every change under `prefix`, and each time the watch is
/// opened, the first time too: a watch starts from now, and what changed
/// before it was open (since the caller's last read, or while an ended
/// watch was down) is not known.
fn watch_prefix(store: &Store, prefix: String) -> (Arc<Notify>, AbortOnDrop) {
    let notify = Arc::new(Notify::new());
    let store = store.clone();
    let tx = notify.clone();
    let task = crate::task::spawn(async move {
        loop {
            if let Ok(mut stream) = store.watch(&prefix, None).await {
                tx.notify_one();
                // An error (etcd ended the watch: compaction, permissions,
                // a lost connection) ends the stream: open a new one.
                while let Some(Ok(_)) = stream.recv().await {
                    tx.notify_one();
                }
            }
            switchyard_host::time::sleep(REWATCH).await;
        }
    });
    (notify, AbortOnDrop(task))
}
