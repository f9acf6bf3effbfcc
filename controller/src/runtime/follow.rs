//! With the embedded DNS backend every controller serves the zone, and the
//! leader's only write is the desired weights in etcd: each controller
//! follows `state/traffic/` with a watch and feeds its own server, so every
//! server answers the same weights, leader or not (ARCHITECTURE.md §6).
//! Writer records follow `state/databases/` the same way: each points at
//! its database's recorded primary.
//!
//! While etcd is unreachable a server keeps answering what it last knew
//! (fail static); on reconnection it re-lists everything before watching.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::watch;

use crate::runtime::control::DatabaseState;
use crate::store::Store;
use crate::store::kv::{RangeQuery, WatchEvent};
use crate::traffic::embedded::WeightTable;
use crate::traffic::{RecordChange, TrafficChange, WriterChange};

/// Back-off between attempts while etcd is unreachable.
const RETRY: Duration = Duration::from_secs(1);

/// Keeps `table` equal to the desired weights in etcd, and each writer
/// record of `writers` (database → record) pointed at its database's
/// recorded primary, until `shutdown`.
pub async fn follow_weights(
    store: Store,
    table: WeightTable,
    writers: BTreeMap<String, String>,
    shutdown: watch::Receiver<bool>,
) {
    let weights_prefix = store.keys().traffic_prefix();
    let databases_prefix = store.keys().databases_prefix();
    let weights = follow_prefix(
        &store,
        &weights_prefix,
        |record, value| apply(&table, record, value),
        shutdown.clone(),
    );
    let primaries = follow_prefix(
        &store,
        &databases_prefix,
        |db, value| point_writer(&table, &writers, db, value),
        shutdown,
    );
    tokio::join!(weights, primaries);
}

/// Feeds every value under `prefix` (then every change of one) to `on`,
/// with the key's part after the prefix, until `shutdown`.
async fn follow_prefix(
    store: &Store,
    prefix: &str,
    on: impl Fn(&str, &[u8]),
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            r = follow_once(store, prefix, &on) => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "weights watch interrupted; re-listing");
                }
            }
            _ = shutdown.wait_for(|s| *s) => return,
        }
        tokio::select! {
            _ = switchyard_host::time::sleep(RETRY) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}

/// Lists the current values, feeds them, then feeds every change the watch
/// delivers. Returns when the watch ends or fails.
async fn follow_once(store: &Store, prefix: &str, on: &impl Fn(&str, &[u8])) -> Result<(), String> {
    let listed = store
        .range(&RangeQuery::prefix(prefix))
        .await
        .map_err(|e| format!("listing {prefix}: {e}"))?;
    let suffix = |key: &str| key.strip_prefix(prefix).unwrap_or(key).to_string();
    for kv in &listed.kvs {
        on(&suffix(&kv.key), &kv.value);
    }
    let mut stream = store
        .watch(prefix, Some(listed.revision + 1))
        .await
        .map_err(|e| e.to_string())?;
    while let Some(event) = stream.recv().await {
        if let WatchEvent::Put(kv) = event.map_err(|e| e.to_string())? {
            on(&suffix(&kv.key), &kv.value);
        }
    }
    Ok(())
}

/// Points `db`'s writer record (if it has one) at the primary `value`
/// (a database state) records.
fn point_writer(table: &WeightTable, writers: &BTreeMap<String, String>, db: &str, value: &[u8]) {
    let Some(record) = writers.get(db) else {
        return;
    };
    let state: DatabaseState = match serde_json::from_slice(value) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(database = %db, error = %e, "undecodable database state in etcd");
            return;
        }
    };
    let change = TrafficChange {
        writers: vec![WriterChange {
            record: record.clone(),
            member: state.primary.clone(),
        }],
        ..TrafficChange::default()
    };
    match table.apply(&change) {
        Ok(_) => {
            tracing::debug!(record = %record, primary = %state.primary, "writer record followed from etcd")
        }
        Err(e) => tracing::warn!(record = %record, error = %e, "cannot point the writer record"),
    }
}

fn apply(table: &WeightTable, record: &str, value: &[u8]) {
    let record = record.to_string();
    let weights: BTreeMap<String, u32> = match serde_json::from_slice(value) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(record = %record, error = %e, "undecodable desired weights in etcd");
            return;
        }
    };
    let change = TrafficChange {
        records: vec![RecordChange {
            record: record.clone(),
            weights,
        }],
        writers: vec![],
        // The leader already applied the guard rails; a follower mirrors.
        force: true,
    };
    match table.apply(&change) {
        Ok(_) => tracing::debug!(record = %record, "weights followed from etcd"),
        Err(e) => tracing::warn!(record = %record, error = %e, "cannot serve followed weights"),
    }
}
