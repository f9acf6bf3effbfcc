//! With the embedded DNS backend every controller serves the zone, and the
//! leader's only write is the desired weights in etcd: each controller
//! follows `state/traffic/` with a watch and feeds its own server, so every
//! server answers the same weights, leader or not (ARCHITECTURE.md §6).
//!
//! While etcd is unreachable a server keeps answering what it last knew
//! (fail static); on reconnection it re-lists everything before watching.

use std::collections::BTreeMap;
use std::time::Duration;

use etcd_client::{EventType, GetOptions, WatchOptions};
use tokio::sync::watch;

use crate::store::{CALL_TIMEOUT, Store};
use crate::traffic::embedded::WeightTable;
use crate::traffic::{RecordChange, TrafficChange};

/// Back-off between attempts while etcd is unreachable.
const RETRY: Duration = Duration::from_secs(1);

/// Keeps `table` equal to the desired weights in etcd until `shutdown`.
pub async fn follow_weights(store: Store, table: WeightTable, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            r = follow_once(&store, &table) => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "weights watch interrupted; re-listing");
                }
            }
            _ = shutdown.wait_for(|s| *s) => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(RETRY) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}

/// Lists the current weights, applies them, then applies every change the
/// watch delivers. Returns when the watch ends or fails.
async fn follow_once(store: &Store, table: &WeightTable) -> Result<(), String> {
    let prefix = store.keys().traffic_prefix();
    let mut client = store.client();
    let listed = tokio::time::timeout(
        CALL_TIMEOUT,
        client.get(prefix.clone(), Some(GetOptions::new().with_prefix())),
    )
    .await
    .map_err(|_| "listing weights timed out".to_string())?
    .map_err(|e| e.to_string())?;
    let revision = listed.header().map_or(0, |h| h.revision());
    for kv in listed.kvs() {
        apply(table, &prefix, kv.key(), kv.value());
    }
    let mut stream = client
        .watch(
            prefix.clone(),
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(revision + 1),
            ),
        )
        .await
        .map_err(|e| e.to_string())?;
    while let Some(resp) = stream.message().await.map_err(|e| e.to_string())? {
        if resp.canceled() {
            return Err("watch canceled".into());
        }
        for event in resp.events() {
            if event.event_type() == EventType::Put
                && let Some(kv) = event.kv()
            {
                apply(table, &prefix, kv.key(), kv.value());
            }
        }
    }
    Ok(())
}

fn apply(table: &WeightTable, prefix: &str, key: &[u8], value: &[u8]) {
    let key = String::from_utf8_lossy(key);
    let record = key.strip_prefix(prefix).unwrap_or(&key).to_string();
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
