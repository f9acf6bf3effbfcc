//! Handing the primary over: raise the target's priority, step the primary
//! down with a catch-up period, wait for the election.

use std::time::Duration;

use tokio::time::Instant;

use super::observe::Observed;
use super::{ELECTION, MongoReplicaSet, POLL, commands, plan};
use crate::error::ReplError;
use crate::report::Report;

impl MongoReplicaSet {
    /// Polls until `id` is the writable primary or `limit` passes.
    pub(super) async fn await_primary(&self, id: &str, limit: Duration) -> Result<(), ReplError> {
        let deadline = Instant::now() + limit;
        loop {
            if self.hello(id).await.is_ok_and(|h| h.writable_primary) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ReplError::Command {
                    member: id.to_string(),
                    statement: "hello".into(),
                    detail: format!("not the writable primary after {limit:?}"),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Raises `to`'s priority, steps the primary down and waits for `to`
    /// to be elected; restores the old priorities if the step-down fails.
    pub(super) async fn hand_over(
        &self,
        obs: &Observed,
        to: &str,
        catch_up: Duration,
        report: &mut Report,
    ) -> Result<(), ReplError> {
        let (Some(config), Some(primary)) = (&obs.config, obs.snap.primary_state()) else {
            return Err(ReplError::PrimaryUnreachable {
                member: obs.snap.primary.clone().unwrap_or_else(|| "unknown".into()),
                detail: "no reachable primary to hand over from".into(),
            });
        };
        if !primary.reachable {
            return Err(ReplError::PrimaryUnreachable {
                member: primary.id.clone(),
                detail: primary.last_error().unwrap_or_default(),
            });
        }
        let p = self.client(&primary.id)?;
        let target = self.client(to)?.spec().address.clone();
        let raised = plan::raise_priority(config, &target).map_err(|reasons| {
            ReplError::TargetNotEligible {
                member: to.to_string(),
                reasons: vec![reasons],
            }
        })?;
        p.run(commands::reconfig(raised, false), catch_up).await?;
        report.did(format!(
            "raised the priority of {to} above every other member"
        ));
        let secs = catch_up.as_secs().max(1);
        if let Err(e) = p.run(commands::step_down(secs + 10, secs), catch_up).await {
            let restore = plan::restore(config, config.version + 1);
            let undone = p.run(commands::reconfig(restore, false), catch_up).await;
            return Err(match undone {
                Ok(_) => e,
                Err(u) => ReplError::Command {
                    member: primary.id.clone(),
                    statement: "replSetReconfig (restore priorities)".into(),
                    detail: format!("{u}; the step-down had failed: {e}"),
                },
            });
        }
        report.did(format!(
            "stepped down {} (secondaryCatchUpPeriodSecs {secs})",
            primary.id
        ));
        self.await_primary(to, catch_up + ELECTION).await?;
        report.did(format!("{to} was elected primary"));
        Ok(())
    }

    pub(super) async fn await_any_primary(&self, limit: Duration) -> Result<String, ReplError> {
        let deadline = Instant::now() + limit;
        loop {
            for c in &self.members {
                if self
                    .hello(&c.spec().id)
                    .await
                    .is_ok_and(|h| h.writable_primary)
                {
                    return Ok(c.spec().id.clone());
                }
            }
            if Instant::now() >= deadline {
                return Err(ReplError::NoPrimaryElected { waited: limit });
            }
            tokio::time::sleep(POLL).await;
        }
    }
}
