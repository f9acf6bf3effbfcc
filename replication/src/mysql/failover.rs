//! Unplanned failover, in the order of ARCHITECTURE.md §6, every step
//! guarded: observe → choose (or keep the candidate an earlier run chose) →
//! fence the old primary if reachable → record the choice and the position
//! it must reach → wait for the relay log (in slices) → promote (read-only
//! off last) → report the old primary's lost transactions → repoint the
//! others. The old primary stays fenced. A failure is undone only while
//! that cannot make two writers (see [`super::orchestrate`]).

use std::time::Duration;

use super::MySqlReplicaSet;
use super::orchestrate::Attempt;
use super::status::parse_position;
use crate::candidate::{Choice, choose_candidate, vet_target};
use crate::error::ReplError;
use crate::gtid::Position;
use crate::guard::{Step, StepGuard};
use crate::lag::judge;
use crate::replica_set::FailoverRequest;
use crate::report::{Operation, Report, WindowClock};
use crate::snapshot::{ContactErrorKind, Snapshot};
use crate::spec::Rules;
use crate::stepper::{Steps, failpoint};

impl MySqlReplicaSet {
    pub(super) async fn run_failover(
        &self,
        req: &FailoverRequest,
        guard: &dyn StepGuard,
    ) -> Result<Report, ReplError> {
        let to = req.to.as_deref();
        let force = req.force;
        for id in to.iter().chain(req.expected_old_primary.as_deref().iter()) {
            self.spec(id)?;
        }
        let steps = Steps::new(guard);
        let resumed = steps.chosen();
        if let Some((c, _)) = &resumed {
            self.spec(c)?;
            if let Some(t) = to.filter(|t| t != c) {
                return Err(ReplError::Conflict {
                    detail: format!("asked to fail over to {t}, but an earlier run chose {c}"),
                });
            }
        }
        let snap = self.observe_step(&steps).await?;
        if snap.members.iter().all(|m| !m.reachable) {
            // Nothing could be read: say why (wrong credentials first).
            let m = snap
                .members
                .iter()
                .find(|m| {
                    m.contact_error
                        .as_ref()
                        .is_some_and(|c| c.kind == ContactErrorKind::AccessDenied)
                })
                .unwrap_or(&snap.members[0]);
            return Err(self.unreadable(m));
        }
        let writable = snap.writable();
        if writable.len() > 1 {
            return Err(ReplError::Conflict {
                detail: format!(
                    "several writable primaries ({}): fence all but one first",
                    writable
                        .iter()
                        .map(|m| m.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        let old = req
            .expected_old_primary
            .clone()
            .or_else(|| snap.primary.clone());
        if let Some(w) = writable.first() {
            if Some(w.id.as_str()) != old.as_deref() || to == Some(w.id.as_str()) {
                if let Some(t) = to.filter(|t| *t != w.id) {
                    return Err(ReplError::Conflict {
                        detail: format!(
                            "asked to fail over to {t}, but {} is already the writable primary",
                            w.id
                        ),
                    });
                }
                if let Some((c, _)) = resumed.as_ref().filter(|(c, _)| *c != w.id) {
                    return Err(ReplError::Conflict {
                        detail: format!(
                            "an earlier run chose {c}, but {} is the writable primary",
                            w.id
                        ),
                    });
                }
                let old = old.filter(|o| *o != w.id);
                return self.already_failed_over(&steps, &snap, &w.id, old).await;
            }
            if !force {
                return Err(ReplError::PrimaryHealthy {
                    member: w.id.clone(),
                });
            }
        }

        let mut view = snap.clone();
        view.primary = old.clone();
        let choice = match &resumed {
            Some((c, pos)) => self.resumed_choice(&view, c, pos.as_deref())?,
            None => {
                let rules = self.rules_for(req);
                let history = self.seen.history();
                match to {
                    Some(t) => vet_target(&view, &rules, &history, t, force)?,
                    None => choose_candidate(&view, &rules, &history)?,
                }
            }
        };
        let new = choice.member.clone();
        let mut report = Report::new(Operation::Failover, old.clone(), &new);
        report.reasons = choice.reasons.clone();
        report.errant = choice.errant.clone();
        report.promoted_lag = choice.lag;

        let mut attempt = Attempt {
            old: old.clone(),
            candidate: new.clone(),
            ..Attempt::default()
        };
        let record = resumed.is_none();
        match self
            .failover_steps(&steps, &snap, &choice, record, &mut attempt, &mut report)
            .await
        {
            Ok(()) => Ok(report),
            Err(e) => Err(self.undo(&steps, &attempt, e).await),
        }
    }

    /// The rules for this request: the request's down regions merged in,
    /// `max_lag` lifted when forced.
    fn rules_for(&self, req: &FailoverRequest) -> Rules {
        let mut rules = self.rules.clone();
        rules.down_regions.extend(req.down_regions.iter().cloned());
        if req.force {
            rules.max_lag = Duration::MAX;
        }
        rules
    }

    /// The candidate an earlier run recorded, kept (never re-chosen).
    fn resumed_choice(
        &self,
        view: &Snapshot,
        member: &str,
        pos: Option<&str>,
    ) -> Result<Choice, ReplError> {
        let catch_up_to = match pos {
            Some(p) => {
                Some(
                    parse_position(self.flavor, p).map_err(|e| ReplError::InvalidSpec {
                        detail: format!("recorded catch-up position {p:?}: {e}"),
                    })?,
                )
            }
            None => None,
        };
        let lag = view
            .member(member)
            .map(|m| judge(m, view, &self.seen.history()));
        let mut reasons = vec![format!(
            "resumed: {member} was chosen by an earlier run of this failover"
        )];
        if let Some(l) = &lag {
            reasons.push(format!("{member}: {}", l.note));
        }
        Ok(Choice {
            member: member.to_string(),
            reasons,
            excluded: Vec::new(),
            errant: view
                .members
                .iter()
                .filter(|m| !m.errant.is_empty() && Some(&m.id) != view.primary.as_ref())
                .map(|m| (m.id.clone(), m.errant.clone()))
                .collect(),
            lacking: Vec::new(),
            catch_up_to,
            lag: lag.and_then(|l| l.seen.or(l.judged)),
        })
    }

    /// Every step after the choice; on an error the caller undoes what
    /// `attempt` says may be undone.
    async fn failover_steps(
        &self,
        steps: &Steps<'_>,
        snap: &Snapshot,
        choice: &Choice,
        record: bool,
        attempt: &mut Attempt,
        report: &mut Report,
    ) -> Result<(), ReplError> {
        let new = choice.member.as_str();
        let old = attempt.old.clone();
        let mut clock = WindowClock::default();
        let mut wait_for: Option<Position> = choice.catch_up_to.clone();
        // An earlier run promoted the candidate whole: past the point of no
        // return, the old primary is never unfenced, and the candidate is
        // neither repointed nor caught up again (what the old primary took
        // since is reported lost below).
        let promoted_before = steps.promoted(new);
        attempt.promoting.maybe_writable |= promoted_before;
        failpoint!("failover::before_fence");
        let old_state = old.as_deref().and_then(|o| snap.member(o));
        match old_state {
            Some(o) if o.reachable => {
                clock.fenced();
                let step = Step::Fence {
                    member: o.id.clone(),
                };
                let f = steps.run(step, |d| self.do_fence(&o.id, d)).await?;
                attempt.fenced_from_writable = !f.was_read_only;
                if f.was_read_only {
                    clock.forget();
                }
                report.did(format!(
                    "fenced old primary {}: read_only on, {} client sessions killed",
                    o.id, f.killed
                ));
                // It is still there: lose nothing it has.
                if let Some(p) = f.position {
                    wait_for = Some(match wait_for {
                        Some(w) => w.union(&p),
                        None => p,
                    });
                }
                failpoint!("failover::after_fence");
            }
            Some(o) => report.noted(format!(
                "old primary {} is unreachable ({}): not fenced; it restarts read-only and is kept out",
                o.id,
                o.last_error().unwrap_or_default()
            )),
            None => report.noted("no old primary known"),
        }

        if record {
            let step = Step::Chosen {
                member: new.to_string(),
                catch_up_to: wait_for.as_ref().map(ToString::to_string),
            };
            steps.run(step, |_| async { Ok(()) }).await?;
            failpoint!("failover::after_chosen");
        }

        // The candidate lacks some of the old primary's transactions and
        // does not follow it: an earlier run of this failover began the
        // promotion (its first statement stops both replication threads)
        // and went no further (docs/SIMULATION.md, seed 1245), or it still
        // follows a primary from before the old one (seed 11053). An
        // applier stopped alone (a person's `STOP SLAVE SQL_THREAD`) is
        // left as it is: the catch-up waits for it, as before. Its catch-up would
        // wait for ever: it follows the old primary, fenced, first (refused
        // if it has transactions the old primary lacks).
        if !promoted_before
            && let (Some(o), Some(c), Some(p)) = (
                old_state.filter(|o| o.reachable),
                snap.member(new),
                &wait_for,
            )
            && c.read_only == Some(true)
            && (c.source.as_deref() != Some(o.id.as_str()) || !(c.receiving() || c.sql_running))
            && c.position
                .as_ref()
                .is_none_or(|have| !p.missing_from(have).is_empty())
        {
            let step = Step::Repoint {
                member: new.to_string(),
                to: o.id.clone(),
            };
            steps.run(step, |d| self.do_repoint(new, &o.id, d)).await?;
            report.did(format!(
                "{new} follows {} to catch up with it: it lacked some of its transactions and \
                 did not replicate from it",
                o.id
            ));
        }
        if let Some(p) = wait_for.as_ref().filter(|_| !promoted_before) {
            self.catch_up(steps, new, p, self.rules.catch_up_timeout)
                .await?;
            report.noted(format!("{new} has applied everything it received ({p})"));
        }
        failpoint!("failover::after_catch_up");

        if promoted_before {
            // An earlier run promoted it whole, and it is read-only again
            // since (its region fenced it while cut off, or it restarted):
            // past the point of no return, it is made writable again as a
            // step of its own, never promoted a second time, and the old
            // primary is never unfenced (docs/SIMULATION.md, seed 9917).
            let step = Step::Unfence {
                member: new.to_string(),
            };
            let hold = super::dead_man::PROMOTION_HOLD;
            steps.run(step, |d| self.do_unfence(new, d, hold)).await?;
            report.read_only_window = clock.writable();
            report.did(format!(
                "made {new} writable again: an earlier run promoted it, and it was read-only since"
            ));
        } else {
            let step = Step::Promote {
                member: new.to_string(),
            };
            let promoting = &mut attempt.promoting;
            steps
                .run(step, |d| self.do_promote(new, d, promoting, "failover"))
                .await?;
            report.read_only_window = clock.writable();
            report.did(format!(
                "promoted {new}: replication stopped and reset, read_only off"
            ));
        }
        failpoint!("failover::after_promote");

        if let Some(o) = old_state.filter(|o| o.reachable) {
            let (o, n) = (o.id.clone(), new.to_string());
            report.lost_transactions = steps
                .run(
                    Step::Observe,
                    |d| async move { Ok(self.lost(&o, &n, d).await) },
                )
                .await?;
        }
        if let Some(o) = &old {
            report.noted(format!(
                "old primary {o} stays fenced: a failover never re-joins it; repoint it by hand \
                 once any transactions only it has are dealt with"
            ));
        }
        let skip: Vec<&str> = old.iter().map(String::as_str).collect();
        self.follow(steps, snap, new, &skip, report).await
    }

    /// Another member is already the healthy primary: change nothing but
    /// finish what an interrupted run left (a reset, a fence, a repoint),
    /// and say so.
    async fn already_failed_over(
        &self,
        steps: &Steps<'_>,
        snap: &Snapshot,
        primary: &str,
        old: Option<String>,
    ) -> Result<Report, ReplError> {
        let mut report = Report::new(Operation::Failover, old.clone(), primary);
        report.noted(match &old {
            Some(o) => format!("already failed over: {primary} is the writable primary, not {o}"),
            None => format!("already failed over: {primary} is the writable primary"),
        });
        let step = Step::Promote {
            member: primary.to_string(),
        };
        let mut progress = super::steps::Promoting::default();
        // A promotion the cursor records was finished whole (its last
        // statement turned read_only off): performing it again would run
        // one step of the intent twice.
        if !steps.promoted(primary)
            && steps
                .run(step, |d| {
                    self.do_promote(primary, d, &mut progress, "failover")
                })
                .await?
        {
            report.did(format!(
                "finished promoting {primary}: forgot its old source"
            ));
        }
        let new_pos = snap.member(primary).and_then(|m| m.position.clone());
        if let Some(o) = old.as_deref().and_then(|o| snap.member(o))
            && o.reachable
        {
            if o.read_only != Some(true) {
                let step = Step::Fence {
                    member: o.id.clone(),
                };
                steps.run(step, |d| self.do_fence(&o.id, d)).await?;
                report.did(format!("fenced old primary {}", o.id));
            }
            if let (Some(op), Some(np)) = (&o.position, &new_pos) {
                report.lost_transactions = Some(op.missing_from(np).items());
            }
        }
        report.errant = snap
            .members
            .iter()
            .filter(|m| !m.errant.is_empty() && Some(&m.id) != old.as_ref())
            .map(|m| (m.id.clone(), m.errant.clone()))
            .collect();
        let skip: Vec<&str> = old.iter().map(String::as_str).collect();
        self.follow(steps, snap, primary, &skip, &mut report)
            .await?;
        if !report.changed {
            report.noted("nothing changed");
        }
        Ok(report)
    }

    /// What `old` has that `new` lacks, read now (within `deadline`).
    async fn lost(
        &self,
        old: &str,
        new: &str,
        deadline: tokio::time::Instant,
    ) -> Option<Vec<String>> {
        let o = self.read_until(old, deadline).await.ok()?.position?;
        let n = self.read_until(new, deadline).await.ok()?.position?;
        Some(o.missing_from(&n).items())
    }
}
