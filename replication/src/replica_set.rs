//! The interface the controller's executor drives, whatever the engine.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::error::ReplError;
use crate::gtid::Position;
use crate::guard::StepGuard;
use crate::report::Report;
use crate::snapshot::Snapshot;

/// What a failover is asked to do: plain data, so the executor can journal
/// it with the intent and a resumed run asks for exactly the same thing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailoverRequest {
    /// The member to promote; `None` lets candidate selection choose.
    pub to: Option<String>,
    /// Promote even against the rules (lag, `must_not`, divergence) or
    /// while the primary is reachable and writable.
    pub force: bool,
    /// The primary being replaced. Naming it is what makes a repeated call
    /// (after a crash or a lost answer) a no-op once another member is the
    /// primary.
    pub expected_old_primary: Option<String>,
    /// Regions whose members are ranked after every healthy region's: the
    /// regions the engine sees Down plus the ones an operator drained.
    /// Merged into the adapter's [`crate::Rules::down_regions`].
    #[serde(default)]
    pub down_regions: BTreeSet<String>,
}

impl FailoverRequest {
    /// A failover of `expected_old_primary` to the best candidate, unforced.
    pub fn replacing(expected_old_primary: impl Into<String>) -> Self {
        FailoverRequest {
            expected_old_primary: Some(expected_old_primary.into()),
            ..FailoverRequest::default()
        }
    }
}

/// What a renewal of a member's dead-man switch found
/// ([`ReplicaSet::hold_dead_man`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadMan {
    /// The server runs its event scheduler: the switch can fire. `false`
    /// means the deadline is kept but nothing acts on it.
    pub scheduler_on: bool,
    /// When the switch last turned the member read-only (the server's
    /// clock, as it prints it), until a lift or promotion clears it.
    pub fired: Option<String>,
    /// The member is read-only, its switch never fired, and it was last
    /// seen writable before the server's latest boot (that time, as the
    /// server prints it): it crashed as a writable primary and restarted
    /// read-only, as its own configuration says. Evidence from its own
    /// region that a lift would only undo the restart.
    pub restarted_read_only: Option<String>,
}

/// One replicated database: read it, and change its primary.
///
/// Every method is **idempotent**: it first reads the world and only acts
/// where the world differs from what is asked, so the executor can call it
/// again after a crash or a lost answer. Promoting the writable primary,
/// fencing a fenced member or repointing a replica that already follows the
/// target succeed and change nothing.
///
/// Every method that changes something takes a [`StepGuard`] and keeps its
/// contract (see [`crate::guard`]): no statement to any member outside a
/// step the guard allowed, each step bounded by the budget it was granted,
/// long waits cut into slices that ask again, and a refusal stops the
/// orchestration at once, undoing nothing. [`ReplicaSet::observe`] and
/// [`ReplicaSet::fence`] are the two unguarded calls: the first only reads,
/// the second is what an isolated controller (which has no lease to ask)
/// runs, bounded by its own deadline.
#[async_trait::async_trait]
pub trait ReplicaSet: Send + Sync {
    /// Reads every member (concurrently, each bounded by a timeout). A member
    /// that cannot be read is in the snapshot as unreachable with the reason;
    /// this fails only when nothing at all could be attempted. Every call
    /// also updates what the adapter remembers of each replica's lag while
    /// the primary was alive (see [`crate::lag`]): call it regularly.
    async fn observe(&self) -> Result<Snapshot, ReplError>;

    /// Stops `member` taking writes, within the adapter's fence budget
    /// (MySQL/MariaDB: [`crate::Timeouts::fence`]): client sessions ended
    /// first (their locks and open transactions go with them), read-only on
    /// with a short lock wait, retried, sessions ended again, read-only read
    /// back (MySQL: `super_read_only`; MongoDB: step down and freeze). An
    /// `Err` means the member is **not** known to be fenced.
    async fn fence(&self, member: &str) -> Result<(), ReplError>;

    /// Lifts a fence: makes the fenced `member` writable again. Refuses
    /// ([`ReplError::Conflict`]) when another reachable member is writable
    /// or when `member` replicates from another member; refuses with the
    /// other member's read error (retryable unless its credentials are
    /// refused) when another member cannot be read, as it may be
    /// writable. `Ok(false)`: it was already writable.
    async fn unfence(&self, member: &str, guard: &dyn StepGuard) -> Result<bool, ReplError>;

    /// Makes `member` the writable primary. MySQL/MariaDB: stop replication,
    /// forget the source, read-only off (last, so that a failure part-way
    /// never leaves it writable); it does **not** wait for the relay log —
    /// call [`ReplicaSet::wait_caught_up`] first (the orchestrations do).
    /// MongoDB, which elects its primaries: a planned handover (raise its
    /// priority, step the primary down, wait for the election).
    async fn promote(&self, member: &str, guard: &dyn StepGuard) -> Result<(), ReplError>;

    /// Makes `member` a read-only replica of `to` with GTID auto-positioning
    /// (MongoDB: `replSetSyncFrom`, a hint MongoDB may later override).
    /// Refuses ([`ReplError::Diverged`]) when `member` has transactions `to`
    /// lacks: a diverged member is never re-joined automatically.
    async fn repoint(&self, member: &str, to: &str, guard: &dyn StepGuard)
    -> Result<(), ReplError>;

    /// Waits until `member` has applied every transaction of `position`, or
    /// fails with [`ReplError::CatchUpTimeout`] after `timeout`; the wait is
    /// cut into guarded slices.
    async fn wait_caught_up(
        &self,
        member: &str,
        position: &Position,
        timeout: Duration,
        guard: &dyn StepGuard,
    ) -> Result<(), ReplError>;

    /// Planned, zero-loss change of primary to `to`: fence the old primary,
    /// wait (up to `timeout`) until `to` has every transaction it had,
    /// promote `to`, and make the old primary and the other replicas follow
    /// it. If it fails before `to` could have become writable, the old
    /// primary is unfenced and `to` replicates again: nothing has changed.
    /// Once `to` may have been writable the old primary is never unfenced;
    /// a repeated call finishes the job. A no-op when `to` is already the
    /// primary and everyone follows it.
    ///
    /// `expected_old_primary` is the primary the caller has on record (the
    /// controller's, when the intent was written). When the members show
    /// another one — writable, or the source the replicas follow while
    /// none is writable — nothing is done ([`ReplError::Conflict`]): the
    /// member holding the latest writes may be the recorded one, fenced,
    /// and a catch-up to the other would promote a target without them.
    /// `None` takes the primary the members show. MongoDB's adapter takes
    /// it always: its members elect their own primary, and an election
    /// keeps every majority-committed write.
    async fn switchover(
        &self,
        to: &str,
        expected_old_primary: Option<&str>,
        timeout: Duration,
        guard: &dyn StepGuard,
    ) -> Result<Report, ReplError>;

    /// Unplanned replacement of the primary `req.expected_old_primary` (or,
    /// when `None`, of the primary as observed now): fence it if reachable,
    /// choose the candidate (or check `req.to`), wait for its relay log to be
    /// applied (bounded by the rules' `catch_up_timeout`), promote it and
    /// repoint the other replicas. The old primary is left fenced and never
    /// re-joined by a failover; the transactions it has that the new primary
    /// lacks are reported.
    ///
    /// Candidates are judged by the lag last seen while the primary was
    /// alive (see [`crate::lag`]); the report says how far behind the
    /// promoted member was. Without `force` a reachable, writable primary is
    /// not failed over ([`ReplError::PrimaryHealthy`]). With `force` a named
    /// target is promoted even if it breaks the rules (lag, `must_not`,
    /// divergence), and an automatic choice ignores `max_lag`.
    ///
    /// **Resuming:** a candidate recorded as chosen by an earlier run of the
    /// same orchestration (the guard's `finished` steps) is kept, never
    /// re-chosen. When another member is already the healthy, writable
    /// primary, the call succeeds, changes nothing (beyond finishing a
    /// repoint an earlier attempt left undone) and says so in the report.
    async fn failover(
        &self,
        req: &FailoverRequest,
        guard: &dyn StepGuard,
    ) -> Result<Report, ReplError>;

    /// Arms `member`'s dead-man switch if needed and renews it, so that the
    /// member makes itself read-only by `until` (this process's clock)
    /// unless renewed again: the fence that needs no live controller
    /// (`docs/SAFETY.md`). Unguarded, like [`ReplicaSet::fence`]: it never
    /// makes a member writable, it only postpones the member's own fence,
    /// and only the holder of the member's primary lease calls it. A
    /// promotion or a lift of a fence on an armed member pushes its
    /// deadline out and clears [`DeadMan::fired`] before read-only goes
    /// off. Engines that elect
    /// their own primaries (MongoDB steps a primary down without a
    /// majority) have no switch: [`ReplError::InvalidSpec`].
    async fn hold_dead_man(&self, member: &str, until: Instant) -> Result<DeadMan, ReplError> {
        let _ = until;
        Err(ReplError::InvalidSpec {
            detail: format!("{member}: this engine has no dead-man switch"),
        })
    }

    /// Removes `member`'s dead-man switch, if it has one (idempotent): what
    /// a controller configured without the switch does, so a switch armed
    /// under an older configuration does not fire once nobody renews it.
    async fn disarm_dead_man(&self, member: &str) -> Result<(), ReplError> {
        let _ = member;
        Ok(())
    }
}

/// What [`ReplicaSet::switchover`] does with its `expected_old_primary`:
/// refuses when the members show another primary (`observed`), so a
/// switchover never catches its target up to, and fences, a member that is
/// not the one the caller's record says holds the latest writes. Nothing
/// observed is left to the adapter's own check (no primary, no switchover).
pub(crate) fn switchover_from(
    expected: Option<&str>,
    observed: Option<&str>,
) -> Result<(), ReplError> {
    match (expected, observed) {
        (Some(e), Some(o)) if e != o => Err(ReplError::Conflict {
            detail: format!(
                "the primary on record is {e}, but the members show {o} as the primary \
                 (writable, or the source its replicas follow): nothing done; the \
                 record and the members must agree before a switchover"
            ),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_switchover_refuses_only_when_the_members_show_another_primary() {
        // (expected, observed, refused)
        let cases = [
            (None, None, false),
            (None, Some("m1"), false),
            (Some("m1"), None, false),
            (Some("m1"), Some("m1"), false),
            (Some("m1"), Some("m2"), true),
        ];
        for (expected, observed, refused) in cases {
            let got = switchover_from(expected, observed);
            assert_eq!(got.is_err(), refused, "{expected:?} {observed:?}: {got:?}");
            if let Err(e) = got {
                assert!(
                    matches!(e, ReplError::Conflict { .. }) && !e.retryable(),
                    "{e}"
                );
                assert!(
                    e.to_string().contains("m1") && e.to_string().contains("m2"),
                    "{e}"
                );
            }
        }
    }
}
