//! What the leader reports when a member it could not see comes back: an
//! old primary that was cut off may hold transactions the new primary
//! lacks (written before its isolated controller fenced it). They are
//! reported once per leadership in history, and counted in a gauge; the
//! member stays fenced and out of replication (the adapters never re-join
//! a diverged member) until an operator decides what to do with them.
//!
//! A member that is writable but is not the recorded primary is reported
//! too, never fenced from here: the record might be the stale side.

pub mod book;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use switchyard_probes::replication::ReplicaSet;

use crate::clock::Clock;
use crate::runtime::control::DatabaseState;
use crate::store::{Leadership, Store, StoreError};
use book::Book;
pub use book::Bypass;

/// How often the leader looks at every member.
pub const INTERVAL: Duration = Duration::from_secs(3);

/// Watches every database while `leader` leads (run it as a task and
/// abort it when leadership ends): every [`INTERVAL`], each database's
/// members are read, and what the [`Book`] finds is news is written to
/// history.
pub async fn watch(
    store: Store,
    databases: BTreeMap<String, Arc<dyn ReplicaSet>>,
    leader: Leadership,
    self_id: String,
    clock: Arc<dyn Clock>,
) {
    let mut book = Book::default();
    loop {
        switchyard_host::time::sleep(INTERVAL).await;
        if !leader.is_held() {
            return;
        }
        for (db, set) in &databases {
            let Ok(Some(state)) = store
                .get_json::<DatabaseState>(&store.keys().database(db))
                .await
            else {
                continue;
            };
            // SQL, even if only reads: only while the lease is certain (a
            // leader woken from a pause must not send any).
            let Some(window) = crate::runtime::leader::read_window(&leader) else {
                return;
            };
            let Ok(Ok(snapshot)) = switchyard_host::time::timeout(window, set.observe()).await
            else {
                continue;
            };
            if let Err(StoreError::NotLeader(_)) =
                record_bypass(&store, &leader, db, &snapshot, &mut book).await
            {
                return;
            }
            for m in snapshot
                .members
                .iter()
                .filter(|m| m.reachable && m.id != state.primary)
            {
                metrics::gauge!("switchyard_errant_transaction_sets", "database" => db.clone(), "member" => m.id.clone())
                    .set(m.errant.len() as f64);
            }
            for f in book.news(db, &state.primary, &snapshot) {
                let (hid, event) = book::report(&f, &self_id, state.epoch, clock.now());
                match store
                    .fenced_put(&leader, store.keys().history(&hid), &event)
                    .await
                {
                    Ok(()) => {
                        tracing::warn!(database = %db, member = %f.member, "{}", f.text);
                        book.reported(&f);
                    }
                    Err(StoreError::NotLeader(_)) => return,
                    Err(e) => {
                        tracing::debug!(error = %e, "cannot report a rejoined member yet");
                    }
                }
            }
        }
    }
}

/// Writes `db`'s accounts that bypass `read_only` (`state/bypass/<db>`)
/// when the book says they changed (reading what etcd holds first, once a
/// leadership).
async fn record_bypass(
    store: &Store,
    leader: &Leadership,
    db: &str,
    snapshot: &switchyard_probes::replication::Snapshot,
    book: &mut Book,
) -> Result<(), StoreError> {
    let key = store.keys().bypass(db);
    if !book.knows_bypass(db) {
        let stored: Option<Bypass> = store.get_json(&key).await?;
        book.stored_bypass(db, stored.unwrap_or_default());
    }
    let Some(now) = book.bypass_change(db, snapshot) else {
        return Ok(());
    };
    store.fenced_put(leader, key, &now).await?;
    for (member, accounts) in &now {
        tracing::warn!(database = %db, member = %member, accounts = ?accounts,
            "accounts that bypass read_only: a fence cannot stop them");
    }
    book.stored_bypass(db, now);
    Ok(())
}
