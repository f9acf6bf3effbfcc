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
    let mut control = ControlState::default();
    ControlSnapshot::read(store)
        .await?
        .apply_switches(&mut control)?;
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
    for (db, state) in databases(store).await?.states {
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
    /// Bumped at every change of primary and every lift of its fence: each
    /// time a member starts taking writes under the controllers' say.
    pub epoch: u64,
    /// When the last automatic failover was done (drives anti-flap).
    pub last_failover: Option<DateTime<Utc>>,
}

/// The databases' records as one read saw them.
#[derive(Debug, Default)]
pub struct DatabaseRecords {
    /// Those that decode, by database.
    pub states: BTreeMap<String, DatabaseState>,
    /// Those that do not (a newer version's, a hand edit), by database,
    /// with why. Kept apart rather than failing the read: one bad record
    /// must not stop the leader from acting on every other database (nor
    /// from taking over at all), and must not be mistaken for no record —
    /// the leader would then discover a primary and write over it.
    pub undecodable: BTreeMap<String, String>,
}

/// Every database's stored record, by name; those that cannot be decoded
/// are returned apart (and counted in
/// `switchyard_undecodable_entries_total`) instead of failing the read.
pub async fn databases(store: &Store) -> Result<DatabaseRecords, StoreError> {
    let read = store
        .scan_json::<DatabaseState>(&store.keys().databases_prefix())
        .await?;
    Ok(DatabaseRecords {
        states: read.values.into_iter().collect(),
        undecodable: read.undecodable.into_iter().collect(),
    })
}

/// Everything under `control/` as one range read saw it: the operator's
/// switches and pending requests. The leader reads it once a tick (one
/// etcd call where there were four: an idle leader's etcd traffic is
/// mostly these reads).
#[derive(Debug, Default)]
pub struct ControlSnapshot {
    /// The control prefix, for naming keys in errors.
    prefix: String,
    /// Entries by key below the prefix (`pause`, `drain/<region>`, …).
    entries: Vec<(String, Vec<u8>)>,
}

impl ControlSnapshot {
    /// Reads the whole `control/` prefix.
    pub async fn read(store: &Store) -> Result<Self, StoreError> {
        let prefix = store.keys().control_prefix();
        let entries = store.scan(&prefix).await?;
        Ok(Self { prefix, entries })
    }

    /// The entries below `section/`, with that part of the key removed.
    fn section<'a>(&'a self, section: &'a str) -> impl Iterator<Item = (&'a str, &'a [u8])> {
        self.entries.iter().filter_map(move |(k, v)| {
            k.strip_prefix(section)
                .and_then(|rest| rest.strip_prefix('/'))
                .map(|rest| (rest, v.as_slice()))
        })
    }

    fn decode<T: serde::de::DeserializeOwned>(
        &self,
        section: &str,
        key: &str,
        bytes: &[u8],
    ) -> Result<T, StoreError> {
        serde_json::from_slice(bytes).map_err(|e| StoreError::BadValue {
            key: format!("{}{section}/{key}", self.prefix),
            reason: e.to_string(),
        })
    }

    /// Sets the operator's switches (pause, drains, failback approvals) in
    /// `control`; when an approval cannot be decoded, the approvals are
    /// left as they were (pause and drains are set all the same).
    pub fn apply_switches(&self, control: &mut ControlState) -> Result<(), StoreError> {
        control.paused = self.entries.iter().any(|(k, _)| k == "pause");
        control.drained = self.section("drain").map(|(r, _)| r.to_string()).collect();
        let mut approvals = BTreeMap::new();
        for (region, bytes) in self.section("failback") {
            let at: String = self.decode("failback", region, bytes)?;
            // An undecodable time counts as no approval.
            if let Ok(t) = DateTime::parse_from_rfc3339(&at) {
                approvals.insert(region.to_string(), t.with_timezone(&Utc));
            }
        }
        control.failback_approvals = approvals;
        Ok(())
    }

    /// The pending operator requests, by id; fails when one cannot be
    /// decoded (no request is served past one the leader cannot read).
    pub fn requests<T: serde::de::DeserializeOwned>(&self) -> Result<Vec<(String, T)>, StoreError> {
        self.section("requests")
            .map(|(id, bytes)| Ok((id.to_string(), self.decode("requests", id, bytes)?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(entries: &[(&str, &str)]) -> ControlSnapshot {
        ControlSnapshot {
            prefix: "/switchyard/t/control/".into(),
            entries: entries
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect(),
        }
    }

    #[test]
    fn one_read_gives_every_switch_and_request() {
        let s = snapshot(&[
            ("drain/eu-west", ""),
            ("failback/us-east", "\"2026-12-04T03:00:00Z\""),
            ("failback/ap-south", "\"not a time\""),
            ("pause", ""),
            ("requests/r1", "{\"n\": 1}"),
            ("waiting/r1", "\"gate\""),
        ]);
        let mut control = ControlState::default();
        s.apply_switches(&mut control).unwrap();
        assert!(control.paused);
        assert_eq!(control.drained, ["eu-west".to_string()].into());
        assert_eq!(
            control.failback_approvals.keys().collect::<Vec<_>>(),
            ["us-east"],
            "an undecodable time is no approval"
        );
        let requests: Vec<(String, serde_json::Value)> = s.requests().unwrap();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].0, "r1");
    }

    #[test]
    fn nothing_set_reads_as_nothing_set() {
        let mut control = ControlState {
            paused: true,
            drained: ["eu-west".to_string()].into(),
            ..ControlState::default()
        };
        snapshot(&[]).apply_switches(&mut control).unwrap();
        assert!(!control.paused && control.drained.is_empty());
        assert!(
            snapshot(&[])
                .requests::<serde_json::Value>()
                .unwrap()
                .is_empty()
        );
        // A key that merely starts like a section is not in it.
        let s = snapshot(&[("pauses", ""), ("drainage/x", "")]);
        s.apply_switches(&mut control).unwrap();
        assert!(!control.paused && control.drained.is_empty());
    }

    #[test]
    fn an_undecodable_request_or_approval_is_an_error_naming_its_key() {
        let s = snapshot(&[("requests/r9", "{")]);
        let e = s.requests::<serde_json::Value>().unwrap_err();
        assert!(
            e.to_string().contains("/switchyard/t/control/requests/r9"),
            "{e}"
        );
        // An undecodable approval does not hide a pause or a drain.
        let s = snapshot(&[
            ("drain/eu-west", ""),
            ("failback/us-east", "{"),
            ("pause", ""),
        ]);
        let mut control = ControlState::default();
        assert!(s.apply_switches(&mut control).is_err());
        assert!(control.paused && control.drained.contains("eu-west"));
    }
}
