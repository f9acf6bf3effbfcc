//! Loading the engine's memory ([`ControlState`]) from etcd when a node
//! becomes leader, and refreshing the operator's switches while it leads.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::engine::{ControlState, RegionState};
use crate::store::{Store, StoreError};
use crate::traffic::TrafficBackend;

/// Reads everything a new leader needs to continue where the last one
/// stopped. A record with no desired weights in etcd takes what the traffic
/// backend serves now; one the backend does not serve either is left out,
/// so the first decision creates it at its base weights.
pub async fn load(
    store: &Store,
    traffic: &dyn TrafficBackend,
    records: impl Iterator<Item = &String>,
) -> Result<ControlState, StoreError> {
    let keys = store.keys();
    let mut control = ControlState {
        paused: store.exists(&keys.pause()).await?,
        drained: store
            .list_keys(&keys.drains_prefix())
            .await?
            .into_iter()
            .collect(),
        ..ControlState::default()
    };
    let stored: Vec<(String, BTreeMap<String, u32>)> =
        store.list_json(&keys.traffic_prefix()).await?;
    let stored: BTreeMap<String, BTreeMap<String, u32>> = stored.into_iter().collect();
    for record in records {
        if let Some(w) = stored.get(record) {
            control.weights.insert(record.clone(), w.clone());
        } else {
            match traffic.read(record).await {
                Ok(w) if !w.is_empty() => {
                    control.weights.insert(record.clone(), w.weights());
                }
                Ok(_) => {}
                Err(e) => {
                    return Err(StoreError::Unavailable(format!(
                        "reading {record} from the traffic backend: {e}"
                    )));
                }
            }
        }
    }
    let regions: Vec<(String, RegionState)> = store.list_json(&keys.regions_prefix()).await?;
    control.regions = regions.into_iter().collect();
    control.failback_approvals = approvals(store).await?;
    for (db, state) in databases(store).await? {
        if let Some(t) = state.last_failover {
            control.last_failover.insert(db, t);
        }
    }
    Ok(control)
}

/// What the store knows of a database: its primary and failover history.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseState {
    /// The member id of the current primary.
    pub primary: String,
    /// Bumped at every change of primary.
    pub epoch: u64,
    /// When the last automatic failover was done (drives anti-flap).
    pub last_failover: Option<DateTime<Utc>>,
}

/// Every database's stored state, by name.
pub async fn databases(store: &Store) -> Result<BTreeMap<String, DatabaseState>, StoreError> {
    let all: Vec<(String, DatabaseState)> =
        store.list_json(&store.keys().databases_prefix()).await?;
    Ok(all.into_iter().collect())
}

/// Failback approvals by region; an undecodable time counts as no approval.
async fn approvals(store: &Store) -> Result<BTreeMap<String, DateTime<Utc>>, StoreError> {
    let all: Vec<(String, String)> = store.list_json(&store.keys().failbacks_prefix()).await?;
    Ok(all
        .into_iter()
        .filter_map(|(region, at)| {
            DateTime::parse_from_rfc3339(&at)
                .ok()
                .map(|t| (region, t.with_timezone(&Utc)))
        })
        .collect())
}

/// Re-reads the operator's switches (pause, drains) into `control`.
pub async fn refresh_switches(store: &Store, control: &mut ControlState) -> Result<(), StoreError> {
    let keys = store.keys();
    control.paused = store.exists(&keys.pause()).await?;
    control.drained = store
        .list_keys(&keys.drains_prefix())
        .await?
        .into_iter()
        .collect();
    control.failback_approvals = approvals(store).await?;
    Ok(())
}
