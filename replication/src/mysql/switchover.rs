//! Planned switchover: zero loss, shortest possible read-only window.
//!
//! 1. Check the target: a member, reachable, a replica without errors,
//!    errant transactions or a `must_not` rule.
//! 2. Let it catch up with the primary *before* fencing (writes still
//!    flow), so the fenced window only covers the last few transactions. If
//!    it cannot within `timeout`, stop here: nothing has changed.
//! 3. Fence the old primary; read its final GTID position.
//! 4. Wait until the target has applied exactly that position; if it does
//!    not in time, unfence the old primary and fail: nothing has changed.
//! 5. Promote the target; the old primary and every other member follow it.

use std::time::Duration;

use super::MySqlReplicaSet;
use super::observe::observe_all;
use crate::error::ReplError;
use crate::report::{Operation, Report, WindowClock};
use crate::snapshot::{ContactErrorKind, MemberState, Role, Snapshot};

impl MySqlReplicaSet {
    pub(super) async fn run_switchover(
        &self,
        to: &str,
        timeout: Duration,
    ) -> Result<Report, ReplError> {
        self.spec(to)?;
        let snap = observe_all(self.flavor, &self.members, self.timeouts).await;
        let target = snap.member(to).expect("checked above");
        if !target.reachable {
            return Err(self.unreadable(target));
        }
        if target.is_writable_primary() {
            return self.finish_switchover(&snap, to).await;
        }
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
        self.do_wait(to, &current, timeout).await?;
        report.noted(format!("{to} caught up with {old} before fencing"));

        let mut clock = WindowClock::default();
        clock.fenced();
        let fenced = self.do_fence(&old).await?;
        report.did(format!(
            "fenced {old}: read_only on, {} client sessions killed",
            fenced.killed
        ));
        let final_pos = match self.read(&old).await.map(|m| m.position) {
            Ok(Some(p)) => p,
            Ok(None) => {
                return Err(self
                    .undo_fence(&old, fenced.was_read_only, self.no_position(&old))
                    .await);
            }
            Err(e) => return Err(self.undo_fence(&old, fenced.was_read_only, e).await),
        };
        if let Err(e) = self.do_wait(to, &final_pos, timeout).await {
            return Err(self.undo_fence(&old, fenced.was_read_only, e).await);
        }
        report.noted(format!(
            "{to} has applied every transaction of {old} ({final_pos})"
        ));
        if let Err(e) = self.do_promote(to).await {
            return Err(self.undo_fence(&old, fenced.was_read_only, e).await);
        }
        report.read_only_window = clock.writable();
        report.did(format!(
            "promoted {to}: replication stopped and reset, read_only off"
        ));
        match self.do_repoint(&old, to).await {
            Ok(true) => report.did(format!("{old} now replicates from {to}")),
            Ok(false) => report.noted(format!("{old} already replicates from {to}")),
            Err(e) => report.not_repointed.push((old.clone(), e.to_string())),
        }
        self.follow(&snap, to, &[&old], false, &mut report).await;
        report.lost_transactions = Some(Vec::new());
        Ok(report)
    }

    /// The target is already primary: finish what an interrupted run left.
    async fn finish_switchover(&self, snap: &Snapshot, to: &str) -> Result<Report, ReplError> {
        let mut report = Report::new(Operation::Switchover, None, to);
        report.noted(format!("{to} is already the writable primary"));
        if self.do_promote(to).await? {
            report.did(format!("finished promoting {to}: forgot its old source"));
        }
        self.follow(snap, to, &[], false, &mut report).await;
        if !report.changed {
            report.noted("every reachable member already follows it: nothing to do");
        }
        Ok(report)
    }

    /// Repoints every reachable member but `to` and `skip` that does not
    /// follow `to` yet (only replicas when `only_replicas`: a failover keeps
    /// fenced members fenced); failures are recorded, not raised.
    pub(super) async fn follow(
        &self,
        snap: &Snapshot,
        to: &str,
        skip: &[&str],
        only_replicas: bool,
        report: &mut Report,
    ) {
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
            match self.do_repoint(&m.id, to).await {
                Ok(true) => report.did(format!("{} now replicates from {to}", m.id)),
                Ok(false) => {}
                Err(e) => report.not_repointed.push((m.id.clone(), e.to_string())),
            }
        }
    }

    /// Unfences `member` if this attempt fenced it, and returns `cause`.
    pub(super) async fn undo_fence(
        &self,
        member: &str,
        was_read_only: bool,
        cause: ReplError,
    ) -> ReplError {
        if !was_read_only && let Err(e) = self.do_unfence(member).await {
            tracing::error!(%member, error = %e, "could not unfence after a failed attempt");
            return ReplError::Command {
                member: member.to_string(),
                statement: "unfence after a failed attempt".into(),
                detail: format!("{e}; the attempt failed because: {cause}"),
            };
        }
        cause
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

    pub(super) fn no_position(&self, member: &str) -> ReplError {
        ReplError::Command {
            member: member.to_string(),
            statement: self.flavor.variables_query().to_string(),
            detail: "no replication position in the answer".into(),
        }
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
