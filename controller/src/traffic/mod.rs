//! Traffic backends: where DNS weights live. The executor only talks to the
//! [`TrafficBackend`] trait; Route 53 ([`route53`]) and the embedded DNS
//! server ([`embedded`]) implement it in their own modules, and
//! [`file::FileBackend`] keeps weights in a JSON file for dry runs, the lab
//! and tests. Every backend passes the same [`conformance`] suite.
//!
//! The contract, shared by every backend:
//!
//! - a [`TrafficChange`] names the *complete* weight set of each record it
//!   touches: a region the backend holds but the change leaves out is set to
//!   weight 0 (never deleted, so a mistake is one change away from undone);
//! - a change is applied whole or not at all;
//! - a change leaving every region of a record at weight 0 is refused unless
//!   it is `force`d (the engine fails open; the backend is the last line);
//! - weights are relative: a backend with a narrower range (Route 53: 0–255)
//!   scales them proportionally ([`scale::fit`]) and reports the stored
//!   weights through [`TrafficBackend::stored_weights`], so "already applied"
//!   is decided on what the backend really holds.

pub mod conformance;
pub mod embedded;
pub mod file;
pub mod memory;
pub mod records;
pub mod route53;
pub mod scale;
mod stored;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// The weights of one record: region → weight.
pub type Weights = BTreeMap<String, u32>;

/// One record's desired weights, as one part of an atomic change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordChange {
    /// The DNS record, e.g. `api.example.com.`.
    pub record: String,
    /// The weight of every region of the record after the change; a region
    /// left out is set to 0.
    pub weights: Weights,
}

/// A database's writer record pointed at one member, so a failover moves
/// the name in the same atomic change as the service weights it implies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriterChange {
    /// The writer record (`databases.writer_record`).
    pub record: String,
    /// The member id (`databases.members.id`) it must point at.
    pub member: String,
}

/// Everything one plan changes in DNS, applied as one atomic change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrafficChange {
    /// Weighted records and their complete new weight sets.
    pub records: Vec<RecordChange>,
    /// Writer records moved to another member.
    pub writers: Vec<WriterChange>,
    /// The operator's override: allows a record to end with every region at
    /// weight 0 (taking the name out of DNS on purpose).
    pub force: bool,
}

impl TrafficChange {
    /// A change of weights only, not forced: what the executor sends.
    pub fn weights(records: Vec<RecordChange>) -> Self {
        TrafficChange {
            records,
            ..TrafficChange::default()
        }
    }
}

/// What one region of a record holds now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// The record data (IP or host name); `None` when the backend does not
    /// know it (the file backend without a config).
    pub value: Option<String>,
    /// The weight as stored (a writer record's member has weight 1).
    pub weight: u32,
}

/// The current weighted set of one record: region → target. Empty when
/// the backend holds nothing for the record yet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordState(pub BTreeMap<String, Target>);

impl RecordState {
    /// Region → weight, as the engine and etcd keep them.
    pub fn weights(&self) -> Weights {
        self.0
            .iter()
            .map(|(region, t)| (region.clone(), t.weight))
            .collect()
    }

    /// True when the record holds nothing.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when the stored weights equal `desired`, a region missing on
    /// either side counting as 0 (the contract's "left out is 0").
    pub fn matches(&self, desired: &Weights) -> bool {
        let regions: BTreeSet<&String> = self.0.keys().chain(desired.keys()).collect();
        regions.into_iter().all(|r| {
            let have = self.0.get(r).map_or(0, |t| t.weight);
            let want = desired.get(r).copied().unwrap_or(0);
            have == want
        })
    }
}

/// What an apply did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// Records whose content differed and were written; 0 means the backend
    /// already held the change and (where it can tell) nothing was written.
    pub changed: usize,
}

/// What can go wrong applying traffic changes.
#[derive(Debug, thiserror::Error)]
pub enum TrafficError {
    /// The backend did not answer or was throttled past the deadline; retry.
    #[error("traffic backend unavailable: {0}")]
    Unavailable(String),
    /// The change itself is wrong (bad weight, unknown record, would zero a
    /// record); retrying the same change cannot help.
    #[error("traffic change refused: {0}")]
    Refused(String),
}

impl TrafficError {
    /// True when the same call may succeed later.
    pub fn retryable(&self) -> bool {
        matches!(self, TrafficError::Unavailable(_))
    }
}

/// A place that holds weighted DNS records.
#[async_trait::async_trait]
pub trait TrafficBackend: Send + Sync {
    /// The current weighted set of `record` (empty when it holds none).
    async fn read(&self, record: &str) -> Result<RecordState, TrafficError>;

    /// Applies the whole change at once, or none of it (see the module doc
    /// for the contract).
    async fn apply_change(&self, change: &TrafficChange) -> Result<Applied, TrafficError>;

    /// Applies weight changes, unforced: the executor's everyday call.
    async fn apply(&self, changes: &[RecordChange]) -> Result<(), TrafficError> {
        self.apply_change(&TrafficChange::weights(changes.to_vec()))
            .await
            .map(|_| ())
    }

    /// The weights this backend stores for `weights` (Route 53 scales them
    /// into 0–255); compare [`RecordState::matches`] against this, not the
    /// engine's numbers, to tell whether a change is already applied.
    fn stored_weights(&self, weights: &Weights) -> Weights {
        weights.clone()
    }
}

/// Checks a change the way every backend must before applying it: each
/// record named once with at least one region, each writer once, and no
/// record left with every region at 0 unless forced.
pub fn validate(change: &TrafficChange) -> Result<(), TrafficError> {
    let mut seen = BTreeSet::new();
    for c in &change.records {
        if !seen.insert(c.record.to_ascii_lowercase()) {
            return Err(TrafficError::Refused(format!(
                "{}: named twice in one change",
                c.record
            )));
        }
        if c.weights.is_empty() {
            return Err(TrafficError::Refused(format!(
                "{}: a change must name at least one region",
                c.record
            )));
        }
        if !change.force && c.weights.values().all(|w| *w == 0) {
            return Err(TrafficError::Refused(format!(
                "{}: every region at weight 0 would take the name out of DNS \
                 (force the change if that is what you want)",
                c.record
            )));
        }
    }
    for w in &change.writers {
        if !seen.insert(w.record.to_ascii_lowercase()) {
            return Err(TrafficError::Refused(format!(
                "{}: named twice in one change",
                w.record
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(pairs: &[(&str, u32)]) -> Weights {
        pairs.iter().map(|(r, w)| (r.to_string(), *w)).collect()
    }

    #[test]
    fn matches_counts_a_missing_region_as_zero() {
        let state = RecordState(
            [
                (
                    "a".to_string(),
                    Target {
                        value: None,
                        weight: 5,
                    },
                ),
                (
                    "b".to_string(),
                    Target {
                        value: None,
                        weight: 0,
                    },
                ),
            ]
            .into(),
        );
        assert!(state.matches(&w(&[("a", 5)])));
        assert!(state.matches(&w(&[("a", 5), ("b", 0), ("c", 0)])));
        assert!(!state.matches(&w(&[("a", 5), ("c", 1)])));
    }

    #[test]
    fn validate_refuses_all_zero_unless_forced_and_duplicates() {
        let zero = RecordChange {
            record: "api.".into(),
            weights: w(&[("a", 0), ("b", 0)]),
        };
        let mut change = TrafficChange::weights(vec![zero.clone()]);
        assert!(matches!(validate(&change), Err(TrafficError::Refused(_))));
        change.force = true;
        assert!(validate(&change).is_ok());
        change.records.push(zero);
        assert!(validate(&change).is_err());
    }
}
