//! What a switchover or failover did, for the journal, history and the CLI.

use std::time::Duration;

use tokio::time::Instant;

use serde::{Deserialize, Serialize};

/// Which orchestration produced a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// Planned, zero-loss change of primary.
    Switchover,
    /// Unplanned replacement of a failed primary.
    Failover,
}

/// The outcome of a switchover or failover.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Which orchestration.
    pub operation: Operation,
    /// The primary before (if one was known).
    pub old_primary: Option<String>,
    /// The primary after.
    pub new_primary: String,
    /// False when the replica set was already as requested and nothing was
    /// changed (a repeated call, e.g. after the executor restarted).
    pub changed: bool,
    /// What was done, in order, in words (for history).
    pub steps: Vec<String>,
    /// Why this member was chosen (candidate selection's reasons).
    pub reasons: Vec<String>,
    /// Transactions the old primary has that the new one lacks: lost to
    /// clients unless recovered by hand. `None` when the old primary could
    /// not be read (they are listed when it comes back: see
    /// [`crate::MemberState::errant`]).
    pub lost_transactions: Option<Vec<String>>,
    /// Errant transactions found on replicas (member, GTIDs).
    pub errant: Vec<(String, Vec<String>)>,
    /// Members left as they were instead of following the new primary, and
    /// why (unreachable, diverged, …).
    pub not_repointed: Vec<(String, String)>,
    /// How long no member took writes: from this call's fence of the old
    /// primary to the new one's read-only off, as measured by the adapter.
    /// `None` when this call did not make the old primary read-only (it
    /// was unreachable, or already read-only, so the window began before
    /// the call and its length is unknown here), and on a repeated call.
    pub read_only_window: Option<Duration>,
    /// How far behind the promoted member was, as last seen (now, or while
    /// the primary was alive; see [`crate::lag`]): `None` when unknown. A
    /// line in `reasons` says the same in words.
    #[serde(default)]
    pub promoted_lag: Option<Duration>,
}

impl Report {
    /// An empty report, filled in as an orchestration goes.
    pub fn new(operation: Operation, old_primary: Option<String>, new_primary: &str) -> Self {
        Self {
            operation,
            old_primary,
            new_primary: new_primary.to_string(),
            changed: false,
            steps: Vec::new(),
            reasons: Vec::new(),
            lost_transactions: None,
            errant: Vec::new(),
            not_repointed: Vec::new(),
            read_only_window: None,
            promoted_lag: None,
        }
    }

    /// Records a step that changed something.
    pub fn did(&mut self, step: impl Into<String>) {
        self.changed = true;
        let step = step.into();
        tracing::info!(step = %step, "replication");
        self.steps.push(step);
    }

    /// Records a finding that changed nothing.
    pub fn noted(&mut self, note: impl Into<String>) {
        self.steps.push(note.into());
    }
}

/// Measures the write-unavailability window from the fence on.
#[derive(Debug, Default)]
pub(crate) struct WindowClock {
    fenced_at: Option<Instant>,
}

impl WindowClock {
    pub(crate) fn fenced(&mut self) {
        self.fenced_at
            .get_or_insert_with(switchyard_host::time::now);
    }

    /// The member fenced was read-only already: the window began before
    /// this call, at a time it does not know.
    pub(crate) fn forget(&mut self) {
        self.fenced_at = None;
    }

    pub(crate) fn writable(&self) -> Option<Duration> {
        self.fenced_at
            .map(|t| switchyard_host::time::now().saturating_duration_since(t))
    }
}
