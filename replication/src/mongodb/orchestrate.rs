//! Switchover and failover on MongoDB: what `plan` decided, carried out.

use std::time::Duration;

use super::plan::{self, FailoverPlan};
use super::{ELECTION, MongoReplicaSet, commands};
use crate::error::ReplError;
use crate::guard::{Step, StepGuard};
use crate::replica_set::FailoverRequest;
use crate::report::{Operation, Report};
use crate::snapshot::{ContactError, ContactErrorKind, Role};
use crate::spec::Promotion;
use crate::stepper::Steps;

impl MongoReplicaSet {
    pub(super) async fn run_switchover(
        &self,
        to: &str,
        expected_old_primary: Option<&str>,
        timeout: Duration,
        guard: &dyn StepGuard,
    ) -> Result<Report, ReplError> {
        self.index(to)?;
        // Checked for a known member only: MongoDB's members elect their
        // own primary and an election keeps every majority-committed
        // write, so the primary they show is the one to switch from, even
        // when it is not the one on record (a step-down that elected
        // another member, then resumed); see `ReplicaSet::switchover`.
        if let Some(e) = expected_old_primary {
            self.index(e)?;
        }
        let steps = Steps::new(guard);
        let obs = self.observe_step(&steps).await?;
        let t = obs.snap.member(to).expect("checked above");
        if !t.reachable {
            return Err(unreadable(
                t.id.clone(),
                t.address.clone(),
                t.contact_error.clone(),
            ));
        }
        let old = obs.snap.primary.clone();
        let mut report = Report::new(Operation::Switchover, old.clone(), to);
        if t.is_writable_primary() {
            report.noted(format!("{to} is already the primary: nothing to do"));
            return Ok(report);
        }
        if t.role != Role::Replica {
            return Err(ReplError::NotAReplica {
                member: to.to_string(),
                detail: format!("it is {} ({})", t.role, t.state.clone().unwrap_or_default()),
            });
        }
        if t.promotion == Promotion::MustNot {
            return Err(ReplError::TargetNotEligible {
                member: to.to_string(),
                reasons: vec![
                    "its promotion rule is must_not, or it is hidden, delayed, non-voting or priority 0"
                        .into(),
                ],
            });
        }
        report.reasons.push(format!(
            "planned switchover from {} to {to}",
            old.as_deref().unwrap_or("unknown")
        ));
        self.hand_over(&steps, &obs, to, timeout, &mut report)
            .await?;
        report.lost_transactions = Some(Vec::new());
        Ok(report)
    }

    pub(super) async fn run_failover(
        &self,
        req: &FailoverRequest,
        guard: &dyn StepGuard,
    ) -> Result<Report, ReplError> {
        let to = req.to.as_deref();
        let force = req.force;
        let expected_old_primary = req.expected_old_primary.as_deref();
        for id in to.iter().chain(expected_old_primary.iter()) {
            self.index(id)?;
        }
        let steps = Steps::new(guard);
        let obs = self.observe_step(&steps).await?;
        let (Some(status), Some(config)) = (&obs.status, &obs.config) else {
            return Err(ReplError::PrimaryUnreachable {
                member: expected_old_primary.unwrap_or("unknown").to_string(),
                detail: "no member could be read: nothing to decide on".into(),
            });
        };
        let mut rules = self.rules.clone();
        rules.down_regions.extend(req.down_regions.iter().cloned());
        let plan = plan::plan_failover_with(
            &obs.snap,
            status,
            config,
            &rules,
            &self.seen.history(),
            to,
            force,
            expected_old_primary,
        )?;
        let old = expected_old_primary
            .map(str::to_string)
            .or(obs.snap.primary.clone());
        match plan {
            FailoverPlan::AlreadyDone { primary } => {
                let mut r = Report::new(Operation::Failover, old, &primary);
                r.noted(format!(
                    "already failed over: {primary} is the primary; nothing changed"
                ));
                Ok(r)
            }
            FailoverPlan::HandOver { to, reasons } => {
                let mut r = Report::new(Operation::Failover, old, &to);
                r.reasons = reasons;
                self.hand_over(&steps, &obs, &to, self.rules.catch_up_timeout, &mut r)
                    .await?;
                r.lost_transactions = Some(Vec::new());
                Ok(r)
            }
            FailoverPlan::AwaitElection { then } => {
                let elected = self
                    .await_any_primary(&steps, self.rules.catch_up_timeout + ELECTION)
                    .await?;
                let mut r = Report::new(Operation::Failover, old, &elected);
                r.noted(format!(
                    "a majority is up: MongoDB elected {elected} by itself"
                ));
                if let Some(t) = then.filter(|t| *t != elected) {
                    let obs = self.observe_step(&steps).await?;
                    self.hand_over(&steps, &obs, &t, self.rules.catch_up_timeout, &mut r)
                        .await?;
                    r.new_primary = t;
                }
                Ok(r)
            }
            FailoverPlan::ForcedReconfig {
                on,
                config: doc,
                reasons,
            } => {
                let mut r = Report::new(Operation::Failover, old, &on);
                r.reasons = reasons;
                let c = self.client(&on)?;
                let step = Step::Promote { member: on.clone() };
                steps
                    .run(step, |_| {
                        c.run(commands::reconfig(doc, true), Duration::ZERO)
                    })
                    .await?;
                r.did(format!(
                    "forced a reconfig on {on} keeping only the surviving members \
                     (allow_data_loss = true)"
                ));
                self.await_primary(&steps, &on, ELECTION).await?;
                r.did(format!("{on} was elected primary"));
                r.noted(
                    "writes only the lost members had are rolled back when they return \
                     (see their rollback directory)",
                );
                Ok(r)
            }
        }
    }
}

fn unreadable(member: String, address: String, e: Option<ContactError>) -> ReplError {
    match e {
        Some(ContactError {
            kind: ContactErrorKind::AccessDenied,
            detail,
        }) => ReplError::AccessDenied {
            member,
            user: String::new(),
            detail,
        },
        other => ReplError::Unreachable {
            member,
            address,
            detail: other.map(|c| c.detail).unwrap_or_default(),
        },
    }
}
