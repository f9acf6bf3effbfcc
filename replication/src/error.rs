//! What can go wrong, said so that the operator (and the executor deciding
//! whether to retry) knows what to do next.

use std::time::Duration;

use crate::candidate::{Exclusion, NoChoice};

/// An adapter's failure. [`ReplError::retryable`] tells the executor whether
/// trying again later can succeed without a person changing something.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReplError {
    /// The member named is not in the replica set.
    #[error("no member {member:?} in this replica set (members: {})", known.join(", "))]
    UnknownMember {
        /// The name given.
        member: String,
        /// The members there are.
        known: Vec<String>,
    },
    /// The member did not answer (down, partitioned, wrong address).
    #[error("member {member} ({address}) is unreachable: {detail}")]
    Unreachable {
        /// Member id.
        member: String,
        /// Address tried.
        address: String,
        /// The driver's words.
        detail: String,
    },
    /// The member refused the login: wrong user or password, or missing
    /// grants. A person has to fix the credentials.
    #[error(
        "member {member} refused user {user:?}: wrong credentials or missing grants ({detail})"
    )]
    AccessDenied {
        /// Member id.
        member: String,
        /// The user that was refused.
        user: String,
        /// The server's words.
        detail: String,
    },
    /// A statement or command failed on a reachable member.
    #[error("on member {member}, {statement} failed: {detail}")]
    Command {
        /// Member id.
        member: String,
        /// What was run (never with a password in it).
        statement: String,
        /// The server's words.
        detail: String,
    },
    /// The member was expected to be a replica (replicating from another
    /// member) and is not.
    #[error("member {member} is not a replica: {detail}")]
    NotAReplica {
        /// Member id.
        member: String,
        /// What it is instead.
        detail: String,
    },
    /// The primary must be reachable for this (e.g. a planned switchover).
    #[error("the primary {member} is unreachable or unknown: {detail}; use a failover")]
    PrimaryUnreachable {
        /// The primary's id, or "unknown".
        member: String,
        /// Why.
        detail: String,
    },
    /// Failover refused: the primary is reachable and writable from here.
    #[error(
        "the primary {member} is reachable and writable: failover refused (use a switchover, or force it)"
    )]
    PrimaryHealthy {
        /// The primary's id.
        member: String,
    },
    /// No member qualifies for promotion; each member's reasons are listed.
    #[error("no candidate for promotion: {}", excluded.iter().map(ToString::to_string).collect::<Vec<_>>().join(" | "))]
    NoCandidate {
        /// Every member and why it was excluded.
        excluded: Vec<Exclusion>,
    },
    /// No replica has every transaction the others have: automatic promotion
    /// would lose some. Name the member to keep with a forced failover.
    #[error("divergent replicas, no automatic promotion: {}", details.join("; "))]
    DivergentReplicas {
        /// "a lacks X that b has", per differing pair.
        details: Vec<String>,
    },
    /// The named target does not qualify for promotion.
    #[error("{member} cannot be promoted: {}", reasons.join("; "))]
    TargetNotEligible {
        /// The target.
        member: String,
        /// Why.
        reasons: Vec<String>,
    },
    /// The member has transactions the intended source lacks; following it
    /// would fail or silently diverge. It is left as it is.
    #[error(
        "member {member} has transactions {to} lacks ({extra}): not re-joined; rebuild it or remove them"
    )]
    Diverged {
        /// The member that would follow.
        member: String,
        /// The source it would follow.
        to: String,
        /// The transactions only it has.
        extra: String,
    },
    /// The member did not reach the position in time; nothing was promoted
    /// and what had been fenced for the attempt was unfenced.
    #[error("timed out after {waited:?} waiting for {member} to apply {missing}")]
    CatchUpTimeout {
        /// Member waited on.
        member: String,
        /// How long.
        waited: Duration,
        /// What it still lacked.
        missing: String,
    },
    /// MongoDB: no member became primary in time after an election was
    /// due (a majority is up, so one should follow).
    #[error("no primary was elected within {waited:?}")]
    NoPrimaryElected {
        /// How long.
        waited: Duration,
    },
    /// The topology changed under us (another actor promoted someone else).
    #[error("conflict: {detail}")]
    Conflict {
        /// What was found.
        detail: String,
    },
    /// MongoDB: a forced reconfig would be needed and the database's policy
    /// does not allow data loss.
    #[error("refused: {reason}")]
    DataLossNotAllowed {
        /// Why it would be needed and what it risks.
        reason: String,
    },
    /// The adapter was built from unusable data (bad address, no members…).
    #[error("invalid replica set spec: {detail}")]
    InvalidSpec {
        /// What is wrong.
        detail: String,
    },
    /// A step did not finish within the budget its guard granted; what it
    /// did before it was abandoned is not known (the next run re-reads).
    #[error("step {step} not finished within its budget of {budget:?}")]
    StepTimeout {
        /// The step.
        step: String,
        /// The budget granted.
        budget: Duration,
    },
    /// The step guard refused a step: this controller is not (or no longer
    /// certainly) the leader, or could not journal the step. The
    /// orchestration stopped where it was; the next leader resumes it.
    #[error("step {step:?} not taken: {detail}")]
    Deposed {
        /// The step refused.
        step: String,
        /// Why.
        detail: String,
    },
}

impl ReplError {
    /// True when the same call may succeed later with nobody changing
    /// anything: a member may come back, lag may drop, a timeout may not
    /// recur. False when a person must act (credentials, divergence, a bad
    /// target, a policy refusal).
    pub fn retryable(&self) -> bool {
        match self {
            ReplError::Unreachable { .. }
            | ReplError::Command { .. }
            | ReplError::PrimaryUnreachable { .. }
            | ReplError::NoCandidate { .. }
            | ReplError::CatchUpTimeout { .. }
            | ReplError::StepTimeout { .. }
            | ReplError::NoPrimaryElected { .. } => true,
            ReplError::UnknownMember { .. }
            | ReplError::AccessDenied { .. }
            | ReplError::NotAReplica { .. }
            | ReplError::PrimaryHealthy { .. }
            | ReplError::DivergentReplicas { .. }
            | ReplError::TargetNotEligible { .. }
            | ReplError::Diverged { .. }
            | ReplError::Conflict { .. }
            | ReplError::DataLossNotAllowed { .. }
            | ReplError::InvalidSpec { .. }
            | ReplError::Deposed { .. } => false,
        }
    }
}

impl From<NoChoice> for ReplError {
    fn from(n: NoChoice) -> Self {
        match n {
            NoChoice::NoCandidate { excluded } => ReplError::NoCandidate { excluded },
            NoChoice::Divergent { details, .. } => ReplError::DivergentReplicas { details },
            NoChoice::TargetRefused { member, reasons } => {
                ReplError::TargetNotEligible { member, reasons }
            }
            NoChoice::UnknownMember { member, known } => ReplError::UnknownMember { member, known },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_and_divergence_are_not_retried_but_unreachable_is() {
        let denied = ReplError::AccessDenied {
            member: "a".into(),
            user: "switchyard".into(),
            detail: "Access denied".into(),
        };
        assert!(!denied.retryable());
        assert!(denied.to_string().contains("wrong credentials"));
        assert!(
            !ReplError::DivergentReplicas {
                details: vec!["a lacks 0-1-5 that b has".into()]
            }
            .retryable()
        );
        assert!(
            ReplError::Unreachable {
                member: "a".into(),
                address: "h:1".into(),
                detail: "refused".into()
            }
            .retryable()
        );
    }

    #[test]
    fn no_candidate_lists_every_member_and_reason() {
        let e = ReplError::from(NoChoice::NoCandidate {
            excluded: vec![
                Exclusion {
                    member: "b".into(),
                    reasons: vec!["unreachable".into()],
                },
                Exclusion {
                    member: "c".into(),
                    reasons: vec!["promotion rule must_not".into()],
                },
            ],
        });
        assert_eq!(
            e.to_string(),
            "no candidate for promotion: b: unreachable | c: promotion rule must_not"
        );
    }
}
