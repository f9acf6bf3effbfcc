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

impl Step {
    /// Whether performing the step again is in its nature, or the safe
    /// side: reading the members, one slice of waiting for a candidate,
    /// and a fence. A resumed run fences the old primary again even when
    /// an earlier run did and it is still read-only: the fence ends the
    /// sessions of accounts that write past `read_only` (`SUPER`,
    /// `READ_ONLY ADMIN`) and reads the position the catch-up needs after
    /// that, which a read taken before it cannot promise; it only ever
    /// takes writes away.
    pub fn repeatable(&self) -> bool {
        matches!(
            self,
            Step::Observe | Step::CatchUp { .. } | Step::Fence { .. }
        )
    }

    /// Whether `self` undoes what `earlier` did to its member, so that
    /// performing `earlier` again after it is no blind repeat: a fence
    /// lifted (an aborted switchover undone), a promotion fenced away or
    /// turned back into a replica, a repoint overtaken by a promotion or by
    /// a repoint to another source.
    pub fn undoes(&self, earlier: &Step) -> bool {
        if self.member() != earlier.member() {
            return false;
        }
        match (earlier, self) {
            (Step::Fence { .. }, Step::Unfence { .. } | Step::Promote { .. }) => true,
            (Step::Unfence { .. } | Step::Promote { .. }, Step::Fence { .. }) => true,
            (Step::Unfence { .. } | Step::Promote { .. }, Step::Repoint { .. }) => true,
            (Step::Repoint { .. }, Step::Promote { .. }) => true,
            // Pointed elsewhere since: following the first source again
            // is a redo.
            (Step::Repoint { to: first, .. }, Step::Repoint { to: then, .. }) => first != then,
            _ => false,
        }
    }
}

/// The first step of a cursor performed again with nothing between that
/// undid it: what a resumed run must never do (it continues from the
/// cursor). `None` when every repeat is a read, a wait or a redo after an
/// undo.
pub fn blind_repeat(steps: &[Step]) -> Option<&Step> {
    steps.iter().enumerate().find_map(|(i, s)| {
        if s.repeatable() {
            return None;
        }
        let j = steps[..i].iter().rposition(|e| e == s)?;
        (!steps[j + 1..i].iter().any(|b| b.undoes(s))).then_some(s)
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn fence(m: &str) -> Step {
        Step::Fence { member: m.into() }
    }
    fn unfence(m: &str) -> Step {
        Step::Unfence { member: m.into() }
    }
    fn promote(m: &str) -> Step {
        Step::Promote { member: m.into() }
    }

    #[test]
    fn a_step_done_twice_with_nothing_between_is_a_blind_repeat() {
        let s = [fence("a"), Step::Observe, promote("b"), promote("b")];
        assert_eq!(blind_repeat(&s), Some(&promote("b")));
        let repoint = |to: &str| Step::Repoint {
            member: "c".into(),
            to: to.into(),
        };
        let s = [repoint("b"), Step::Observe, repoint("b")];
        assert_eq!(blind_repeat(&s), Some(&repoint("b")));
        // Pointed elsewhere between: a redo.
        let s = [repoint("b"), repoint("a"), repoint("b")];
        assert_eq!(blind_repeat(&s), None);
    }

    #[test]
    fn reads_waits_and_redos_after_an_undo_are_not() {
        let wait = Step::CatchUp { member: "b".into() };
        let s = [
            Step::Observe,
            wait.clone(),
            fence("a"),
            unfence("a"),
            Step::Observe,
            wait.clone(),
            fence("a"),
            wait,
            promote("b"),
        ];
        assert_eq!(blind_repeat(&s), None);
        // A fence again, even with nothing between, is the safe side.
        let s = [fence("a"), Step::Observe, fence("a")];
        assert_eq!(blind_repeat(&s), None);
        // An undo of another member does not count.
        let s = [unfence("a"), fence("c"), unfence("a")];
        assert_eq!(blind_repeat(&s), Some(&unfence("a")));
    }
}
