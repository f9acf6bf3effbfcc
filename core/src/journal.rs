//! Journal entries: an intent written before an action, completed by its
//! outcome after. A leader that dies in between leaves the entry `pending`,
//! and the next leader finishes it before deciding anything new.

use std::collections::BTreeMap;

use crate::step::Step;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What the executor can do. Serialised into the journal, so a new leader
/// knows exactly what its predecessor meant to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ActionSpec {
    /// Set every region's weight of one DNS record.
    SetWeights {
        /// The record.
        record: String,
        /// Region → weight after the action.
        weights: BTreeMap<String, u32>,
    },
    /// Set the weights of several records in one atomic change (one Route
    /// 53 `ChangeBatch`): what a plan that changes more than one record
    /// journals, so a region's evacuation moves every name at once.
    SetWeightsBatch {
        /// Record → region → weight after the action.
        records: BTreeMap<String, BTreeMap<String, u32>>,
    },
    /// Fail a database over away from its primary.
    Failover {
        /// The database.
        database: String,
        /// The primary being replaced.
        from_member: String,
        /// The member to promote; `None` lets candidate selection choose.
        to_member: Option<String>,
        /// An operator's forced failover: promote even against the rules.
        #[serde(default)]
        force: bool,
        /// Regions a candidate is taken from only when no other qualifies:
        /// those the engine saw Down and those drained, when the intent was
        /// written (journaled, so a resumed run judges alike).
        #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
        avoid_regions: std::collections::BTreeSet<String>,
    },
    /// A planned switchover to `to_member` (zero loss: waits for it to
    /// reach the old primary's position).
    Switchover {
        /// The database.
        database: String,
        /// The member to promote.
        to_member: String,
        /// The primary on record when the intent was written: the
        /// switchover is refused if the members show another. Empty in
        /// intents written before it was kept (then the members' primary
        /// is taken, as those versions did).
        #[serde(default, skip_serializing_if = "String::is_empty")]
        from_member: String,
    },
    /// Lift the fence its region's controller put on the recorded primary
    /// (an isolation that healed before anyone was promoted): it takes
    /// writes again. Only while no other member is writable.
    Unfence {
        /// The database.
        database: String,
        /// The recorded primary, fenced.
        member: String,
    },
    /// Point the database's writer record at `member` (its recorded
    /// primary): the repair when a failover could not move it, or when the
    /// record drifted.
    MoveWriter {
        /// The database.
        database: String,
        /// The member the record must name.
        member: String,
    },
}

impl ActionSpec {
    /// A short label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ActionSpec::SetWeights { .. } => "set_weights",
            ActionSpec::SetWeightsBatch { .. } => "set_weights_batch",
            ActionSpec::Failover { .. } => "failover",
            ActionSpec::Switchover { .. } => "switchover",
            ActionSpec::Unfence { .. } => "unfence",
            ActionSpec::MoveWriter { .. } => "move_writer",
        }
    }

    /// The action that sets `records`' weights in one change: `SetWeights`
    /// for one record, `SetWeightsBatch` for several; `None` for none.
    pub fn for_weights(records: BTreeMap<String, BTreeMap<String, u32>>) -> Option<ActionSpec> {
        match records.len() {
            0 => None,
            1 => {
                let (record, weights) = records.into_iter().next()?;
                Some(ActionSpec::SetWeights { record, weights })
            }
            _ => Some(ActionSpec::SetWeightsBatch { records }),
        }
    }

    /// Every record whose weights the action sets, with the weights.
    pub fn weight_sets(&self) -> Vec<(&String, &BTreeMap<String, u32>)> {
        match self {
            ActionSpec::SetWeights { record, weights } => vec![(record, weights)],
            ActionSpec::SetWeightsBatch { records } => records.iter().collect(),
            _ => Vec::new(),
        }
    }

    /// The database the action acts on, if any.
    pub fn database(&self) -> Option<&str> {
        match self {
            ActionSpec::SetWeights { .. } | ActionSpec::SetWeightsBatch { .. } => None,
            ActionSpec::Failover { database, .. }
            | ActionSpec::Switchover { database, .. }
            | ActionSpec::Unfence { database, .. }
            | ActionSpec::MoveWriter { database, .. } => Some(database),
        }
    }

    /// What the action acts on (record or database).
    pub fn subject(&self) -> &str {
        match self {
            ActionSpec::SetWeights { record, .. } => record,
            ActionSpec::SetWeightsBatch { .. } => "traffic",
            ActionSpec::Failover { database, .. }
            | ActionSpec::Switchover { database, .. }
            | ActionSpec::Unfence { database, .. }
            | ActionSpec::MoveWriter { database, .. } => database,
        }
    }
}

/// An operator's request, written by the CLI under `control/requests/` and
/// carried out by the leader through the journal (so it is fenced, runs
/// once, and survives a change of leader).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorRequest {
    /// What to do. For a failover, `from_member` may be empty: the leader
    /// fills in the primary it knows.
    pub action: ActionSpec,
    /// Who asked (an operator's name, or user@host).
    pub requested_by: String,
    /// When.
    pub requested_at: DateTime<Utc>,
    /// Why, in the operator's words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Where the request came from (the API client's address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// The primary the operator saw: the leader refuses the request if the
    /// database's primary is another when it would act (never re-aimed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_primary: Option<String>,
    /// The leader drops the request if it has not started it by then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

/// Where an intent stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Written before the action; the action may or may not have run.
    Pending,
    /// The action is done (or was found already done).
    Done,
    /// The action failed; `outcome` says why.
    Failed,
}

/// One journal entry (`/switchyard/<cluster>/journal/<id>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// Unique, sortable: `<fencing token>-<sequence in that term>`.
    pub id: String,
    /// What is to be done.
    pub action: ActionSpec,
    /// Why: the engine's reasons, shown by `switchyard history`.
    pub reasons: Vec<String>,
    /// Where it stands.
    pub status: Status,
    /// The controller that wrote the intent.
    pub created_by: String,
    /// When the intent was written.
    pub created_at: DateTime<Utc>,
    /// The controller that wrote the outcome (a later leader, after a crash).
    pub finished_by: Option<String>,
    /// When the outcome was written.
    pub finished_at: Option<DateTime<Utc>>,
    /// What happened: "applied", "already applied", or the error.
    pub outcome: Option<String>,
    /// The operator request this entry carries out, if any.
    #[serde(default)]
    pub request: Option<String>,
    /// The external steps already finished, oldest first (the step
    /// cursor): a leader that resumes the intent continues from here with
    /// the same decisions instead of starting over.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<Step>,
    /// For a failed intent: whether the error may pass if tried again
    /// (etcd or a member unreachable) or not (access denied, a refused
    /// precondition). The leader's retry backoff follows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
    /// For a failover or switchover that moved the primary and itself
    /// made the old primary read-only: how long no member took writes,
    /// from that fence to the new one's read-only off, in milliseconds, as
    /// the adapter measured it (the cost of the move, shown by the CLI and
    /// in history). Absent when the old primary was unreachable or already
    /// read-only: the window then began before the action, unmeasured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_unavailable_ms: Option<u64>,
}

impl JournalEntry {
    /// True when the intent was written in the term fenced by `token`.
    pub fn written_in_term(&self, token: i64) -> bool {
        self.id.starts_with(&format!("{token:012}-"))
    }
}

/// A history event (`/switchyard/<cluster>/history/<ts>-<id>`): who did
/// what and why, for `switchyard history` and the post-mortem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEvent {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// Which controller.
    pub by: String,
    /// What happened, in one line.
    pub what: String,
    /// Why.
    pub reasons: Vec<String>,
    /// The journal entry it concerns, if any.
    pub journal_id: Option<String>,
    /// The external steps the intent performed (its final cursor): kept
    /// here so the record outlives the intent's compaction.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<Step>,
}

/// The id of the `seq`-th intent of the term fenced by `token`. Zero-padded
/// so ids sort by term, then order.
pub fn entry_id(token: i64, seq: u64) -> String {
    format!("{token:012}-{seq:06}")
}

/// The history key suffix for an event at `at` about `id`.
pub fn history_id(at: DateTime<Utc>, id: &str) -> String {
    format!("{:013}-{id}", at.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_knows_its_term() {
        let e: JournalEntry = serde_json::from_value(serde_json::json!({
            "id": entry_id(42, 7),
            "action": {"kind": "unfence", "database": "d", "member": "m"},
            "reasons": [], "status": "pending", "created_by": "c",
            "created_at": "2026-01-01T00:00:00Z", "finished_by": null,
            "finished_at": null, "outcome": null
        }))
        .expect("an entry written before step cursors decodes");
        assert!(e.steps.is_empty());
        assert!(e.written_in_term(42));
        assert!(!e.written_in_term(4));
    }

    #[test]
    fn ids_sort_by_term_then_sequence() {
        let mut ids = [entry_id(12, 2), entry_id(9, 100), entry_id(12, 1)];
        ids.sort();
        assert_eq!(ids, [entry_id(9, 100), entry_id(12, 1), entry_id(12, 2)]);
    }

    #[test]
    fn an_entry_round_trips_through_json() {
        let e = JournalEntry {
            id: entry_id(1, 1),
            action: ActionSpec::SetWeights {
                record: "api.example.com.".into(),
                weights: [("a".to_string(), 0), ("b".to_string(), 200)].into(),
            },
            reasons: vec!["region a down".into()],
            status: Status::Pending,
            created_by: "ctl-a".into(),
            created_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default(),
            finished_by: None,
            finished_at: None,
            outcome: None,
            request: None,
            steps: vec![Step::Fence {
                member: "m0".into(),
            }],
            retryable: None,
            write_unavailable_ms: Some(412),
        };
        let json = serde_json::to_string(&e).expect("encode");
        assert!(json.contains("\"kind\":\"set_weights\""));
        assert!(json.contains("\"step\":\"fence\""));
        assert_eq!(
            serde_json::from_str::<JournalEntry>(&json).expect("decode"),
            e
        );
    }
}
