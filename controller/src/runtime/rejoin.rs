//! What the leader reports when a member it could not see comes back: an
//! old primary that was cut off may hold transactions the new primary
//! lacks (written before its isolated controller fenced it). They are
//! reported once per leadership in history, and counted in a gauge; the
//! member stays fenced and out of replication (the adapters never re-join
//! a diverged member) until an operator decides what to do with them.
//!
//! A member that is writable but is not the recorded primary is reported
//! too, never fenced from here: the record might be the stale side.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use switchyard_probes::replication::ReplicaSet;

use crate::clock::Clock;
use crate::executor::{HistoryEvent, history_id};
use crate::runtime::control::DatabaseState;
use crate::store::{Leadership, Store, StoreError};

/// How often the leader looks at every member.
pub const INTERVAL: Duration = Duration::from_secs(3);

/// Watches every database while `leader` leads (run it as a task and
/// abort it when leadership ends).
pub async fn watch(
    store: Store,
    databases: BTreeMap<String, Arc<dyn ReplicaSet>>,
    leader: Leadership,
    self_id: String,
    clock: Arc<dyn Clock>,
) {
    let mut reported: BTreeSet<(String, String, String)> = BTreeSet::new();
    // database → member → accounts, as last written to etcd by this leader.
    let mut bypass_written: BTreeMap<String, Bypass> = BTreeMap::new();
    loop {
        tokio::time::sleep(INTERVAL).await;
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
            let Ok(Ok(snapshot)) = tokio::time::timeout(window, set.observe()).await else {
                continue;
            };
            if let Err(StoreError::NotLeader(_)) =
                record_bypass(&store, &leader, db, &snapshot, &mut bypass_written).await
            {
                return;
            }
            for m in snapshot.members.iter().filter(|m| m.reachable) {
                if m.id == state.primary {
                    continue;
                }
                let mut findings = Vec::new();
                if !m.errant.is_empty() {
                    findings.push((
                        "errant".to_string(),
                        format!(
                            "member {} has transactions the primary {} lacks: {}; it stays fenced \
                             and out of replication until an operator decides (apply them to the \
                             primary, or discard them and rebuild the member)",
                            m.id,
                            state.primary,
                            m.errant.join(",")
                        ),
                    ));
                }
                metrics::gauge!("switchyard_errant_transaction_sets", "database" => db.clone(), "member" => m.id.clone())
                    .set(m.errant.len() as f64);
                if m.read_only == Some(false) {
                    findings.push((
                        "writable".to_string(),
                        format!(
                            "member {} is writable but the recorded primary is {}: two \
                             writable members; fence the wrong one by hand",
                            m.id, state.primary
                        ),
                    ));
                }
                for (what, text) in findings {
                    let key = (db.clone(), m.id.clone(), what);
                    if reported.contains(&key) {
                        continue;
                    }
                    let now = clock.now();
                    let event = HistoryEvent {
                        at: now,
                        by: self_id.clone(),
                        what: format!("rejoin {db}/{}: {text}", m.id),
                        reasons: vec![format!(
                            "seen reachable again by the leader (epoch {})",
                            state.epoch
                        )],
                        journal_id: None,
                        steps: Vec::new(),
                    };
                    let hid = history_id(now, &format!("rejoin-{db}-{}", m.id));
                    match store
                        .fenced_put(&leader, store.keys().history(&hid), &event)
                        .await
                    {
                        Ok(()) => {
                            tracing::warn!(database = %db, member = %m.id, "{text}");
                            reported.insert(key);
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
}

/// Member → the accounts that bypass its `read_only`.
pub type Bypass = BTreeMap<String, Vec<String>>;

/// Writes `db`'s accounts that bypass `read_only` (`state/bypass/<db>`)
/// when they differ from what is stored: a change, not every look, is an
/// etcd write. Members that could not be read keep their last entry.
async fn record_bypass(
    store: &Store,
    leader: &Leadership,
    db: &str,
    snapshot: &switchyard_probes::replication::Snapshot,
    written: &mut BTreeMap<String, Bypass>,
) -> Result<(), StoreError> {
    let key = store.keys().bypass(db);
    if !written.contains_key(db) {
        let stored: Option<Bypass> = store.get_json(&key).await?;
        written.insert(db.to_string(), stored.unwrap_or_default());
    }
    let mut now = written.get(db).cloned().unwrap_or_default();
    for m in snapshot.members.iter().filter(|m| m.reachable) {
        if m.read_only_bypass.is_empty() {
            now.remove(&m.id);
        } else {
            now.insert(m.id.clone(), m.read_only_bypass.clone());
        }
    }
    if written.get(db) == Some(&now) {
        return Ok(());
    }
    store.fenced_put(leader, key, &now).await?;
    for (member, accounts) in &now {
        tracing::warn!(database = %db, member = %member, accounts = ?accounts,
            "accounts that bypass read_only: a fence cannot stop them");
    }
    written.insert(db.to_string(), now);
    Ok(())
}
