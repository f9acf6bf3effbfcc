//! What failover and switchover share: the guarded wait, repointing the
//! others, lifting a fence, and the undo of an attempt that failed.
//!
//! **The undo and the one-writer rule.** An attempt keeps an [`Attempt`]:
//! whether it fenced the old primary from writable, and how far the
//! promotion got ([`Promoting`]). A failed attempt is undone only while
//! the candidate is certainly not writable (read-only off, the last
//! statement of a promotion, was never sent): the candidate is re-fenced
//! first (made certain it is read-only), the others are checked (no
//! reachable member but the old primary may be writable), the candidate's
//! replication is restored and only then is the old primary unfenced. Once
//! read-only off may have been sent, nothing is undone: the old primary
//! stays fenced and a repeated call finishes the job. When the guard
//! refused a step, nothing is undone either (undoing is a step too).

use std::time::Duration;

use super::MySqlReplicaSet;
use super::steps::Promoting;
use crate::error::ReplError;
use crate::gtid::Position;
use crate::guard::{Step, StepGuard};
use crate::report::{Operation, Report};
use crate::snapshot::{ContactErrorKind, MemberState, Role, Snapshot};
use crate::stepper::{Steps, bounded, failpoint};

/// What an attempt changed so far: what its undo may touch.
#[derive(Debug, Clone, Default)]
pub(super) struct Attempt {
    /// The primary being replaced.
    pub old: Option<String>,
    /// This attempt found it writable and fenced it.
    pub fenced_from_writable: bool,
    /// The member being promoted.
    pub candidate: String,
    /// How far its promotion got.
    pub promoting: Promoting,
}

impl MySqlReplicaSet {
    /// Waits, up to `timeout`, for `id` to apply `position`, in guarded
    /// slices (`Step::CatchUp`), each within its budget; the step is
    /// recorded done once the position is reached.
    pub(super) async fn catch_up(
        &self,
        steps: &Steps<'_>,
        id: &str,
        position: &Position,
        timeout: Duration,
    ) -> Result<(), ReplError> {
        let started = switchyard_host::time::now();
        let end = started + timeout;
        let step = Step::CatchUp {
            member: id.to_string(),
        };
        loop {
            let (deadline, budget) = steps.begin(&step).await?;
            let slice = bounded(
                &step,
                budget,
                self.wait_slice(id, position, end.min(deadline), deadline),
            )
            .await?;
            let Some(missing) = slice else {
                steps.done(&step).await?;
                return Ok(());
            };
            let now = switchyard_host::time::now();
            if now >= end {
                return Err(ReplError::CatchUpTimeout {
                    member: id.to_string(),
                    waited: now - started,
                    missing,
                });
            }
        }
    }

    /// Repoints every reachable member but `to` and `skip` that does not
    /// follow `to` yet (only replicas in a failover, which keeps fenced
    /// members fenced), each a guarded step. A member that cannot follow is
    /// recorded in the report; a refused step stops everything.
    pub(super) async fn follow(
        &self,
        steps: &Steps<'_>,
        snap: &Snapshot,
        to: &str,
        skip: &[&str],
        report: &mut Report,
    ) -> Result<(), ReplError> {
        let only_replicas = report.operation == Operation::Failover;
        let op = match report.operation {
            Operation::Failover => "failover",
            Operation::Switchover => "switchover",
        };
        let _ = op;
        for m in &snap.members {
            if m.id == to || skip.contains(&m.id.as_str()) {
                continue;
            }
            if !m.reachable {
                report.not_repointed.push((
                    m.id.clone(),
                    format!(
                        "unreachable ({}); repoint it when it is back",
                        m.last_error().unwrap_or_default()
                    ),
                ));
                continue;
            }
            if only_replicas && m.role != Role::Replica {
                report.noted(format!("{} is {}: left as it is", m.id, m.role));
                continue;
            }
            let step = Step::Repoint {
                member: m.id.clone(),
                to: to.to_string(),
            };
            // Repointed by an earlier run of this orchestration and still
            // following: performing it again would run that step twice. A
            // receiver that is `Connecting` (its source out of reach for
            // now) follows too: it retries by itself, and a new `CHANGE
            // MASTER` would reach the source no sooner (docs/SIMULATION.md,
            // seed 24709).
            if steps.finished_before(&step)
                && m.source.as_deref() == Some(to)
                && m.receiving()
                && m.sql_running
            {
                continue;
            }
            match steps.run(step, |d| self.do_repoint(&m.id, to, d)).await {
                Ok(true) => report.did(format!("{} now replicates from {to}", m.id)),
                Ok(false) => {}
                Err(e) if steps.refused() => return Err(e),
                Err(e) => report.not_repointed.push((m.id.clone(), e.to_string())),
            }
            failpoint!(&format!("{op}::after_repoint"));
        }
        Ok(())
    }

    /// Undoes a failed attempt where that cannot make two writers (see the
    /// module doc) and returns `cause`, or an error saying what could not
    /// be undone.
    pub(super) async fn undo(&self, steps: &Steps<'_>, a: &Attempt, cause: ReplError) -> ReplError {
        if steps.refused() {
            return cause;
        }
        if a.promoting.maybe_writable {
            tracing::error!(candidate = %a.candidate, error = %cause,
                "failed after read-only off may have been sent: the old primary stays fenced; \
                 repeat the call to finish");
            return cause;
        }
        if a.promoting.touched {
            let step = Step::Fence {
                member: a.candidate.clone(),
            };
            if let Err(e) = steps.run(step, |d| self.do_fence(&a.candidate, d)).await {
                if steps.refused() {
                    return e;
                }
                return self.undo_failed(&a.candidate, "re-fence the candidate", e, cause);
            }
        }
        let Some(old) = a.old.as_deref().filter(|_| a.fenced_from_writable) else {
            return cause;
        };
        let snap = match self.observe_step(steps).await {
            Ok(s) => s,
            Err(e) if steps.refused() => return e,
            Err(e) => return self.undo_failed(old, "check before unfencing", e, cause),
        };
        // A candidate this attempt touched must be seen read-only; one it
        // never began to promote cannot have been made writable by it.
        let candidate_ok = !a.promoting.touched
            || snap
                .member(&a.candidate)
                .is_some_and(|m| m.reachable && m.read_only == Some(true));
        if let Some(w) = snap
            .members
            .iter()
            .find(|m| m.id != old && m.read_only != Some(true) && m.reachable)
            .map(|m| m.id.clone())
            .or_else(|| (!candidate_ok).then(|| a.candidate.clone()))
        {
            return self.undo_failed(
                old,
                "unfence the old primary",
                ReplError::Conflict {
                    detail: format!("{w} is (or may be) writable: {old} stays fenced"),
                },
                cause,
            );
        }
        if a.promoting.touched {
            let step = Step::Repoint {
                member: a.candidate.clone(),
                to: old.to_string(),
            };
            if let Err(e) = steps
                .run(step, |d| self.do_repoint(&a.candidate, old, d))
                .await
            {
                if steps.refused() {
                    return e;
                }
                tracing::error!(candidate = %a.candidate, error = %e,
                    "could not restore the candidate's replication after a failed attempt");
            }
        }
        let step = Step::Unfence {
            member: old.to_string(),
        };
        let grace = self.timeouts.dead_man_grace;
        if let Err(e) = steps.run(step, |d| self.do_unfence(old, d, grace)).await {
            if steps.refused() {
                return e;
            }
            return self.undo_failed(old, "unfence the old primary", e, cause);
        }
        cause
    }

    fn undo_failed(&self, member: &str, what: &str, e: ReplError, cause: ReplError) -> ReplError {
        tracing::error!(%member, error = %e, "could not {what} after a failed attempt");
        ReplError::Command {
            member: member.to_string(),
            statement: format!("{what} after a failed attempt"),
            detail: format!("{e}; the attempt failed because: {cause}"),
        }
    }

    /// Lifts a fence on `member` (see [`crate::ReplicaSet::unfence`]).
    pub(super) async fn run_unfence(
        &self,
        member: &str,
        guard: &dyn StepGuard,
    ) -> Result<bool, ReplError> {
        self.spec(member)?;
        let steps = Steps::new(guard);
        let snap = self.observe_step(&steps).await?;
        let m = snap.member(member).expect("checked above");
        if !m.reachable {
            return Err(self.unreadable(m));
        }
        self.others_read_only(&snap, member)?;
        if m.read_only == Some(false) {
            return Ok(false);
        }
        if let Some(src) = &m.source {
            return Err(ReplError::Conflict {
                detail: format!(
                    "{member} replicates from {src}: lifting read-only would make a writable \
                     replica (promote it instead)"
                ),
            });
        }
        let step = Step::Unfence {
            member: member.to_string(),
        };
        let grace = self.timeouts.dead_man_grace;
        steps
            .run(step, |d| self.do_unfence(member, d, grace))
            .await?;
        Ok(true)
    }

    /// Refuses to make `member` writable unless every other member is
    /// known read-only: one that cannot be read now may be a writable
    /// primary (a promotion whose outcome was lost), and `member` writable
    /// would make two writers.
    pub(super) fn others_read_only(&self, snap: &Snapshot, member: &str) -> Result<(), ReplError> {
        let Some(o) = snap
            .members
            .iter()
            .find(|o| o.id != member && o.read_only != Some(true))
        else {
            return Ok(());
        };
        if o.read_only == Some(false) {
            return Err(ReplError::Conflict {
                detail: format!(
                    "{} is writable: {member} stays fenced (two writable members otherwise)",
                    o.id
                ),
            });
        }
        // Not known either way: refused all the same, but classed as the
        // member's read failed (retryable unless its credentials are
        // refused), so it is tried again on the short backoff once the
        // member answers — not after a person's 30 s-to-10 min wait
        // (docs/SIMULATION.md, seed 4885).
        Err(self.unreadable_other(o, member))
    }

    /// The error to return for a member that could not be read.
    pub(super) fn unreadable(&self, m: &MemberState) -> ReplError {
        let detail = m
            .contact_error
            .as_ref()
            .map(|c| c.detail.clone())
            .unwrap_or_else(|| "not read".into());
        match m.contact_error.as_ref().map(|c| c.kind) {
            Some(ContactErrorKind::AccessDenied) => ReplError::AccessDenied {
                member: m.id.clone(),
                user: self
                    .spec(&m.id)
                    .map(|s| s.credentials.user.clone())
                    .unwrap_or_default(),
                detail,
            },
            Some(ContactErrorKind::Failed) => ReplError::Command {
                member: m.id.clone(),
                statement: "observe".into(),
                detail,
            },
            _ => ReplError::Unreachable {
                member: m.id.clone(),
                address: m.address.clone(),
                detail,
            },
        }
    }

    /// The error to return when `fenced` may not be unfenced because `o`
    /// could not be read: `o`'s read error, saying what it holds back.
    pub(super) fn unreadable_other(&self, o: &MemberState, fenced: &str) -> ReplError {
        let held = format!("{} may be writable, so {fenced} stays fenced", o.id);
        let read_only_unknown = o.contact_error.is_none();
        match self.unreadable(o) {
            ReplError::AccessDenied {
                member,
                user,
                detail,
            } => ReplError::AccessDenied {
                member,
                user,
                detail: format!("{detail}; {held}"),
            },
            ReplError::Command {
                member,
                statement,
                detail,
            } => ReplError::Command {
                member,
                statement,
                detail: format!("{detail}; {held}"),
            },
            ReplError::Unreachable {
                member,
                address,
                detail,
            } if !read_only_unknown => ReplError::Unreachable {
                member,
                address,
                detail: format!("{detail}; {held}"),
            },
            // Reached, but its read_only was not in the answer.
            _ => ReplError::Command {
                member: o.id.clone(),
                statement: "observe".into(),
                detail: format!("read_only unknown; {held}"),
            },
        }
    }

    pub(super) fn no_position(&self, member: &str) -> ReplError {
        ReplError::Command {
            member: member.to_string(),
            statement: self.flavor.variables_query().to_string(),
            detail: "no replication position in the answer".into(),
        }
    }
}
