//! One external step of an orchestration (failover, switchover, unfence)
//! as the action journal records it: shared by the replication adapters,
//! which perform steps, and the controller's executor, which journals them.

use serde::{Deserialize, Serialize};

/// One external step of an orchestration, as the journal records it. A step
/// names everything a resumed run needs to continue with the same decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// Read the members (no change). Guarded like every other step: a
    /// deposed leader sends no SQL at all.
    Observe,
    /// `member` made read-only and its client sessions ended.
    Fence {
        /// The member fenced.
        member: String,
    },
    /// The candidate chosen, and the GTID position (its text form) it must
    /// reach before promotion. Recorded so a resumed run promotes the same
    /// member. No external effect of its own.
    Chosen {
        /// The member to promote.
        member: String,
        /// The position it must have applied first, if any.
        catch_up_to: Option<String>,
    },
    /// One bounded slice of waiting for `member` to apply `catch_up_to`;
    /// recorded done once the position is reached.
    CatchUp {
        /// The member waited for.
        member: String,
    },
    /// `member` made the writable primary (replication stopped and reset,
    /// read-only off).
    Promote {
        /// The member promoted.
        member: String,
    },
    /// `member` made a read-only replica of `to`.
    Repoint {
        /// The member repointed.
        member: String,
        /// Its new source.
        to: String,
    },
    /// `member` made writable again (a fence lifted, or an aborted switchover
    /// undone).
    Unfence {
        /// The member unfenced.
        member: String,
    },
}

impl Step {
    /// The member the step changes, if it changes one.
    pub fn member(&self) -> Option<&str> {
        match self {
            Step::Observe => None,
            Step::Fence { member }
            | Step::Chosen { member, .. }
            | Step::CatchUp { member }
            | Step::Promote { member }
            | Step::Repoint { member, .. }
            | Step::Unfence { member } => Some(member),
        }
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Observe => f.write_str("observe"),
            Step::Fence { member } => write!(f, "fence {member}"),
            Step::Chosen {
                member,
                catch_up_to: Some(p),
            } => write!(f, "chose {member} (catch up to {p})"),
            Step::Chosen { member, .. } => write!(f, "chose {member}"),
            Step::CatchUp { member } => write!(f, "catch up {member}"),
            Step::Promote { member } => write!(f, "promote {member}"),
            Step::Repoint { member, to } => write!(f, "repoint {member} to {to}"),
            Step::Unfence { member } => write!(f, "unfence {member}"),
        }
    }
}
