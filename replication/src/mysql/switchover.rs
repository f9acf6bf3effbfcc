//! Planned switchover: zero loss, shortest possible read-only window, every
//! step guarded.
//!
//! 1. Check the target: a member, reachable, a replica without errors,
//!    errant transactions or a `must_not` rule.
//! 2. Let it catch up with the primary *before* fencing (writes still
//!    flow), so the fenced window only covers the last few transactions. If
//!    it cannot within `timeout`, stop here: nothing has changed.
//! 3. Fence the old primary; its final GTID position is read back with it.
//! 4. Wait until the target has applied exactly that position.
//! 5. Promote the target (read-only off last); the old primary and every
//!    other member follow it.
//!
//! A failure in 3–5 before the target's read-only off was sent is undone
//! (target re-fenced and replicating again, old primary unfenced); after
//! it, nothing is undone and a repeated call finishes (see
//! [`super::orchestrate`]) — also when the target has come back read-only
//! since (a restart), once every other member is known read-only.

use std::time::Duration;

use super::MySqlReplicaSet;
use super::orchestrate::Attempt;
use super::steps::Promoting;
use crate::error::ReplError;
use crate::guard::{Step, StepGuard};
use crate::replica_set::switchover_from;
use crate::report::{Operation, Report, WindowClock};
use crate::snapshot::{MemberState, Role, Snapshot};
use crate::stepper::{Steps, failpoint};

impl MySqlReplicaSet {
    pub(super) async fn run_switchover(
        &self,
        to: &str,
        expected_old_primary: Option<&str>,
        timeout: Duration,
        guard: &dyn StepGuard,
    ) -> Result<Report, ReplError> {
        self.spec(to)?;
        if let Some(e) = expected_old_primary {
            self.spec(e)?;
        }
        let steps = Steps::new(guard);
        let snap = self.observe_step(&steps).await?;
        let target = snap.member(to).expect("checked above");
        if !target.reachable {
            return Err(self.unreadable(target));
        }
        if target.is_writable_primary() {
            let why = format!("{to} is already the writable primary");
            return self.finish_switchover(&steps, &snap, to, why).await;
        }
        // An earlier run promoted the target, which has lost its read_only
        // off since (a restart brings it back read-only): past the point of
        // no return — the old primary fenced, the target holding all of it
        // — the switchover finishes forward. Vetting it again as a replica
        // failed it instead and left no member writable
        // (docs/SIMULATION.md, seed 4681).
        if steps.promoted(to) {
            self.may_promote_again(&snap, to)?;
            let why = format!(
                "{to} was promoted by an earlier run of this switchover and is read-only now \
                 (restarted): made writable again"
            );
            return self.finish_switchover(&steps, &snap, to, why).await;
        }
        // Past the two ways an earlier run is finished (above): the old
        // primary must be the one on record (docs/SIMULATION.md, seed 3781).
        switchover_from(expected_old_primary, snap.primary.as_deref())?;
        let primary = match snap.primary_state() {
            Some(p) if p.reachable => p,
            Some(p) => {
                return Err(ReplError::PrimaryUnreachable {
                    member: p.id.clone(),
                    detail: p.last_error().unwrap_or_else(|| "no answer".into()),
                });
            }
            None => {
                return Err(ReplError::PrimaryUnreachable {
                    member: "unknown".into(),
                    detail: if snap.warnings.is_empty() {
                        "no member is writable and no replica names its source".into()
                    } else {
                        snap.warnings.join("; ")
                    },
                });
            }
        };
        vet_switchover_target(target)?;
        let old = primary.id.clone();
        let mut report = Report::new(Operation::Switchover, Some(old.clone()), to);
        report
            .reasons
            .push(format!("planned switchover from {old} to {to}"));

        let current = primary
            .position
            .clone()
            .ok_or_else(|| self.no_position(&old))?;
        self.catch_up(&steps, to, &current, timeout).await?;
        report.noted(format!("{to} caught up with {old} before fencing"));
        failpoint!("switchover::after_pre_catch_up");

        let mut attempt = Attempt {
            old: Some(old),
            candidate: to.to_string(),
            ..Attempt::default()
        };
        match self
            .switchover_steps(&steps, &snap, timeout, &mut attempt, &mut report)
            .await
        {
            Ok(()) => Ok(report),
            Err(e) => Err(self.undo(&steps, &attempt, e).await),
        }
    }

    async fn switchover_steps(
        &self,
        steps: &Steps<'_>,
        snap: &Snapshot,
        timeout: Duration,
        attempt: &mut Attempt,
        report: &mut Report,
    ) -> Result<(), ReplError> {
        let to = attempt.candidate.clone();
        let old = attempt
            .old
            .clone()
            .expect("a switchover has an old primary");
        let mut clock = WindowClock::default();
        clock.fenced();
        let step = Step::Fence {
            member: old.clone(),
        };
        let fenced = steps.run(step, |d| self.do_fence(&old, d)).await?;
        attempt.fenced_from_writable = !fenced.was_read_only;
        if fenced.was_read_only {
            clock.forget();
        }
        report.did(format!(
            "fenced {old}: read_only on, {} client sessions killed",
            fenced.killed
        ));
        failpoint!("switchover::after_fence");
        let final_pos = fenced.position.ok_or_else(|| self.no_position(&old))?;
        self.catch_up(steps, &to, &final_pos, timeout).await?;
        report.noted(format!(
            "{to} has applied every transaction of {old} ({final_pos})"
        ));
        failpoint!("switchover::after_catch_up");

        let step = Step::Promote { member: to.clone() };
        let promoting = &mut attempt.promoting;
        steps
            .run(step, |d| self.do_promote(&to, d, promoting, "switchover"))
            .await?;
        report.read_only_window = clock.writable();
        report.did(format!(
            "promoted {to}: replication stopped and reset, read_only off"
        ));
        failpoint!("switchover::after_promote");

        let step = Step::Repoint {
            member: old.clone(),
            to: to.clone(),
        };
        match steps.run(step, |d| self.do_repoint(&old, &to, d)).await {
            Ok(true) => report.did(format!("{old} now replicates from {to}")),
            Ok(false) => report.noted(format!("{old} already replicates from {to}")),
            Err(e) if steps.refused() => return Err(e),
            Err(e) => report.not_repointed.push((old.clone(), e.to_string())),
        }
        failpoint!("switchover::after_repoint_old");
        self.follow(steps, snap, &to, &[&old], report).await?;
        report.lost_transactions = Some(Vec::new());
        Ok(())
    }

    /// The target is already primary: finish what an interrupted run left
    /// (its old source forgotten, the old primary and the others following
    /// it).
    async fn finish_switchover(
        &self,
        steps: &Steps<'_>,
        snap: &Snapshot,
        to: &str,
        why: String,
    ) -> Result<Report, ReplError> {
        let mut report = Report::new(Operation::Switchover, None, to);
        report.noted(why);
        if steps.promoted(to) {
            // The cursor says an earlier run promoted it whole: performing
            // the promotion again would run one step of the intent twice.
            // Read-only again since (a restart), it is made writable again
            // as a step of its own.
            if !snap.member(to).is_some_and(|m| m.is_writable_primary()) {
                let step = Step::Unfence {
                    member: to.to_string(),
                };
                // Held as a promotion holds it: the grace of a lifted
                // fence could end before the target's region takes over
                // its lease.
                let hold = super::dead_man::PROMOTION_HOLD;
                steps.run(step, |d| self.do_unfence(to, d, hold)).await?;
                report.did(format!("made {to} writable again"));
            }
        } else {
            let step = Step::Promote {
                member: to.to_string(),
            };
            let mut progress = Promoting::default();
            if steps
                .run(step, |d| {
                    self.do_promote(to, d, &mut progress, "switchover")
                })
                .await?
            {
                report.did(format!("finished promoting {to}: forgot its old source"));
            }
        }
        self.follow(steps, snap, to, &[], &mut report).await?;
        if !report.changed {
            report.noted("every reachable member already follows it: nothing to do");
        }
        Ok(report)
    }

    /// Whether `to`, promoted by an earlier run and read-only now, may be
    /// made writable again: every other member known read-only (none may
    /// be a writer), `to` replicating from no one (a relay log it has not
    /// applied would be dropped), and `to` holding every transaction any
    /// other member has (a restart that lost data, or writes taken
    /// elsewhere since, must not be lost by finishing): a conflict for a
    /// person otherwise.
    fn may_promote_again(&self, snap: &Snapshot, to: &str) -> Result<(), ReplError> {
        self.others_read_only(snap, to)?;
        let target = snap.member(to).expect("checked by the caller");
        if let Some(src) = &target.source {
            return Err(ReplError::Conflict {
                detail: format!(
                    "{to} was promoted by this switchover but replicates from {src} again: \
                     not finished (a person decides)"
                ),
            });
        }
        let Some(have) = &target.position else {
            return Err(self.no_position(to));
        };
        if let Some(o) = snap
            .members
            .iter()
            .find(|o| o.id != to && o.position.as_ref().is_some_and(|p| !have.contains(p)))
        {
            return Err(ReplError::Conflict {
                detail: format!(
                    "{to} was promoted by this switchover but lacks transactions {} has: not \
                     finished, so nothing is lost (a person decides)",
                    o.id
                ),
            });
        }
        Ok(())
    }
}

/// What disqualifies a switchover target before anything is touched.
fn vet_switchover_target(t: &MemberState) -> Result<(), ReplError> {
    if t.role != Role::Replica {
        return Err(ReplError::NotAReplica {
            member: t.id.clone(),
            detail: format!("it is {} and replicates from no one", t.role),
        });
    }
    let mut reasons = Vec::new();
    if let Some(e) = &t.sql_error {
        reasons.push(format!("its replication applier failed: {e}"));
    }
    if t.promotion == crate::spec::Promotion::MustNot {
        reasons.push("its promotion rule is must_not".to_string());
    }
    if !t.errant.is_empty() {
        reasons.push(format!(
            "it has errant transactions {} that every member would receive",
            t.errant.join(",")
        ));
    }
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(ReplError::TargetNotEligible {
            member: t.id.clone(),
            reasons,
        })
    }
}
