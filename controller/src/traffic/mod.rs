//! Traffic backends: where DNS weights live. The executor only talks to the
//! [`TrafficBackend`] trait; Route 53 and the embedded DNS server implement
//! it in their own files, and [`file::FileBackend`] keeps weights in a JSON
//! file for dry runs, the lab and tests.

pub mod file;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The weights of one record: region → weight.
pub type Weights = BTreeMap<String, u32>;

/// One record's desired weights, as one part of an atomic change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordChange {
    /// The DNS record, e.g. `api.example.com.`.
    pub record: String,
    /// The weight of every region of the record after the change.
    pub weights: Weights,
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
    /// The current weights of `record` (empty when the record has none).
    async fn read(&self, record: &str) -> Result<Weights, TrafficError>;

    /// Applies every change at once, or none. Refuses a change that leaves
    /// every region of a record at weight 0 (fail open is the engine's rule;
    /// the backend is the last line).
    async fn apply(&self, changes: &[RecordChange]) -> Result<(), TrafficError>;
}

/// Checks a change the way every backend must before applying it.
pub fn validate(changes: &[RecordChange]) -> Result<(), TrafficError> {
    for c in changes {
        if c.weights.is_empty() {
            return Err(TrafficError::Refused(format!(
                "{}: a change must name at least one region",
                c.record
            )));
        }
        if c.weights.values().all(|w| *w == 0) {
            return Err(TrafficError::Refused(format!(
                "{}: every region at weight 0 would take the name out of DNS",
                c.record
            )));
        }
    }
    Ok(())
}
