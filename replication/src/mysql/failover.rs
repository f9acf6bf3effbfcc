//! Unplanned failover, in the order of ARCHITECTURE.md §6: fence the old
//! primary if reachable → choose → wait for the relay log → promote →
//! repoint the others → report (with the old primary's lost transactions
//! when it can be read). The old primary stays fenced.

use std::time::Duration;

use super::MySqlReplicaSet;
use super::observe::observe_all;
use super::steps::Fenced;
use crate::candidate::{choose_candidate, vet_target};
use crate::error::ReplError;
use crate::report::{Operation, Report, WindowClock};
use crate::snapshot::{ContactErrorKind, Snapshot};
use crate::spec::Rules;

impl MySqlReplicaSet {
    pub(super) async fn run_failover(
        &self,
        to: Option<&str>,
        force: bool,
        expected_old_primary: Option<&str>,
    ) -> Result<Report, ReplError> {
        for id in to.iter().chain(expected_old_primary.iter()) {
            self.spec(id)?;
        }
        let snap = observe_all(self.flavor, &self.members, self.timeouts).await;
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
        let old = expected_old_primary
            .map(str::to_string)
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
                let old = old.filter(|o| *o != w.id);
                return self.already_failed_over(&snap, &w.id, old).await;
            }
            if !force {
                return Err(ReplError::PrimaryHealthy {
                    member: w.id.clone(),
                });
            }
        }

        let mut view = snap.clone();
        view.primary = old.clone();
        let rules = if force {
            Rules {
                max_lag: Duration::MAX,
                ..self.rules.clone()
            }
        } else {
            self.rules.clone()
        };
        let choice = match to {
            Some(t) => vet_target(&view, &rules, t, force)?,
            None => choose_candidate(&view, &rules)?,
        };
        let new = choice.member.clone();
        let mut report = Report::new(Operation::Failover, old.clone(), &new);
        report.reasons = choice.reasons.clone();
        report.errant = choice.errant.clone();

        let mut clock = WindowClock::default();
        let mut fenced: Option<(String, Fenced)> = None;
        let mut wait_for = choice.catch_up_to.clone();
        let old_state = old.as_deref().and_then(|o| snap.member(o));
        match old_state {
            Some(o) if o.reachable => {
                clock.fenced();
                let f = self.do_fence(&o.id).await?;
                report.did(format!(
                    "fenced old primary {}: read_only on, {} client sessions killed",
                    o.id, f.killed
                ));
                fenced = Some((o.id.clone(), f));
                // It is still there: lose nothing it has.
                if let Ok(Some(p)) = self.read(&o.id).await.map(|m| m.position) {
                    wait_for = Some(match wait_for {
                        Some(w) => w.union(&p),
                        None => p,
                    });
                }
            }
            Some(o) => report.noted(format!(
                "old primary {} is unreachable ({}): not fenced; it restarts read-only and is kept out",
                o.id,
                o.last_error().unwrap_or_default()
            )),
            None => report.noted("no old primary known"),
        }

        if let Some(p) = &wait_for {
            if let Err(e) = self.do_wait(&new, p, self.rules.catch_up_timeout).await {
                return Err(self.undo(fenced, e).await);
            }
            report.noted(format!("{new} has applied everything it received ({p})"));
        }
        if let Err(e) = self.do_promote(&new).await {
            return Err(self.undo(fenced, e).await);
        }
        report.read_only_window = clock.writable();
        report.did(format!(
            "promoted {new}: replication stopped and reset, read_only off"
        ));

        if let Some(o) = old_state.filter(|o| o.reachable) {
            report.lost_transactions = self.lost(&o.id, &new).await;
        }
        if let Some(o) = &old {
            report.noted(format!(
                "old primary {o} stays fenced: a failover never re-joins it; repoint it by hand \
                 once any transactions only it has are dealt with"
            ));
        }
        let skip: Vec<&str> = old.iter().map(String::as_str).collect();
        self.follow(&snap, &new, &skip, true, &mut report).await;
        Ok(report)
    }

    /// Another member is already the healthy primary: change nothing but
    /// finish what an interrupted run left (a reset, a repoint), and say so.
    async fn already_failed_over(
        &self,
        snap: &Snapshot,
        primary: &str,
        old: Option<String>,
    ) -> Result<Report, ReplError> {
        let mut report = Report::new(Operation::Failover, old.clone(), primary);
        report.noted(match &old {
            Some(o) => format!("already failed over: {primary} is the writable primary, not {o}"),
            None => format!("already failed over: {primary} is the writable primary"),
        });
        if self.do_promote(primary).await? {
            report.did(format!(
                "finished promoting {primary}: forgot its old source"
            ));
        }
        let new_pos = snap.member(primary).and_then(|m| m.position.clone());
        if let Some(o) = old.as_deref().and_then(|o| snap.member(o))
            && o.reachable
        {
            if o.read_only != Some(true) {
                self.do_fence(&o.id).await?;
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
        self.follow(snap, primary, &skip, true, &mut report).await;
        if !report.changed {
            report.noted("nothing changed");
        }
        Ok(report)
    }

    /// What `old` has that `new` lacks, read now.
    async fn lost(&self, old: &str, new: &str) -> Option<Vec<String>> {
        let o = self.read(old).await.ok()?.position?;
        let n = self.read(new).await.ok()?.position?;
        Some(o.missing_from(&n).items())
    }

    async fn undo(&self, fenced: Option<(String, Fenced)>, cause: ReplError) -> ReplError {
        match fenced {
            Some((id, f)) => self.undo_fence(&id, f.was_read_only, cause).await,
            None => cause,
        }
    }
}
