//! Handing the primary over, every command a guarded step: raise the
//! target's priority, wait (in slices) until it has the primary's last
//! write, step the primary down with a catch-up period that fits the step's
//! budget, wait (in slices) for the election.

use std::time::Duration;

use super::observe::Observed;
use super::{ELECTION, MongoReplicaSet, POLL, commands, plan};
use crate::error::ReplError;
use crate::gtid::Position;
use crate::guard::Step;
use crate::report::Report;
use crate::stepper::{Steps, bounded};

impl MongoReplicaSet {
    /// Polls, in guarded observe slices, until `id` is the writable
    /// primary or `limit` passes.
    pub(super) async fn await_primary(
        &self,
        steps: &Steps<'_>,
        id: &str,
        limit: Duration,
    ) -> Result<(), ReplError> {
        let end = switchyard_host::time::now() + limit;
        loop {
            let (deadline, budget) = steps.begin(&Step::Observe).await?;
            let until = end.min(deadline);
            let found = bounded(&Step::Observe, budget, async {
                loop {
                    if self.hello(id).await.is_ok_and(|h| h.writable_primary) {
                        return Ok(true);
                    }
                    if switchyard_host::time::now() + POLL >= until {
                        return Ok(false);
                    }
                    switchyard_host::time::sleep(POLL).await;
                }
            })
            .await?;
            steps.done(&Step::Observe).await?;
            if found {
                return Ok(());
            }
            if switchyard_host::time::now() >= end {
                return Err(ReplError::Command {
                    member: id.to_string(),
                    statement: "hello".into(),
                    detail: format!("not the writable primary after {limit:?}"),
                });
            }
        }
    }

    /// Waits, in guarded `CatchUp` slices, up to `timeout`, until `id`'s last
    /// write contains `position`.
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
            let until = end.min(deadline);
            let have = bounded(&step, budget, async {
                loop {
                    let h = self.hello(id).await?;
                    let have = h.last_write.map(Position::OpTime);
                    if have.as_ref().is_some_and(|p| p.contains(position))
                        || switchyard_host::time::now() + POLL >= until
                    {
                        return Ok(have);
                    }
                    switchyard_host::time::sleep(POLL).await;
                }
            })
            .await?;
            if have.as_ref().is_some_and(|p| p.contains(position)) {
                steps.done(&step).await?;
                return Ok(());
            }
            if switchyard_host::time::now() >= end {
                return Err(ReplError::CatchUpTimeout {
                    member: id.to_string(),
                    waited: switchyard_host::time::since(started),
                    missing: match have {
                        Some(h) => position.missing_from(&h).to_string(),
                        None => position.to_string(),
                    },
                });
            }
        }
    }

    /// Raises `to`'s priority, waits until it has the primary's last write,
    /// steps the primary down and waits for `to` to be elected; restores the
    /// old priorities if it cannot step the primary down.
    pub(super) async fn hand_over(
        &self,
        steps: &Steps<'_>,
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
        let step = Step::Promote {
            member: to.to_string(),
        };
        steps
            .run(step, |_| {
                p.run(commands::reconfig(raised, false), Duration::ZERO)
            })
            .await?;
        report.did(format!(
            "raised the priority of {to} above every other member"
        ));
        if let Some(last) = primary.position.clone()
            && let Err(e) = self.catch_up(steps, to, &last, catch_up).await
        {
            return Err(self.restore_priorities(steps, config, &primary.id, e).await);
        }
        let step = Step::Fence {
            member: primary.id.clone(),
        };
        let (deadline, budget) = match steps.begin(&step).await {
            Ok(b) => b,
            Err(e) => return Err(e),
        };
        // The catch-up period must end within the step's budget.
        let secs = budget
            .saturating_sub(p.timeout() + Duration::from_secs(1))
            .as_secs()
            .min(catch_up.as_secs().max(1));
        let stepped = bounded(
            &step,
            deadline.saturating_duration_since(switchyard_host::time::now()),
            p.run(
                commands::step_down(secs + 10, secs),
                Duration::from_secs(secs),
            ),
        )
        .await;
        if let Err(e) = stepped {
            return Err(self.restore_priorities(steps, config, &primary.id, e).await);
        }
        steps.done(&step).await?;
        report.did(format!(
            "stepped down {} (secondaryCatchUpPeriodSecs {secs})",
            primary.id
        ));
        self.await_primary(steps, to, catch_up + ELECTION).await?;
        report.did(format!("{to} was elected primary"));
        Ok(())
    }

    /// Undoes a priority change after a handover that did not happen (a
    /// guarded step too) and returns `cause`, or why it could not.
    async fn restore_priorities(
        &self,
        steps: &Steps<'_>,
        config: &super::reply::Config,
        primary: &str,
        cause: ReplError,
    ) -> ReplError {
        if steps.refused() {
            return cause;
        }
        let Ok(p) = self.client(primary) else {
            return cause;
        };
        let restore = plan::restore(config, config.version + 1);
        let step = Step::Unfence {
            member: primary.to_string(),
        };
        match steps
            .run(step, |_| {
                p.run(commands::reconfig(restore, false), Duration::ZERO)
            })
            .await
        {
            Ok(_) => cause,
            Err(u) if steps.refused() => u,
            Err(u) => ReplError::Command {
                member: primary.to_string(),
                statement: "replSetReconfig (restore priorities)".into(),
                detail: format!("{u}; the handover had failed: {cause}"),
            },
        }
    }

    /// Polls, in guarded observe slices, until any member is the writable
    /// primary or `limit` passes.
    pub(super) async fn await_any_primary(
        &self,
        steps: &Steps<'_>,
        limit: Duration,
    ) -> Result<String, ReplError> {
        let end = switchyard_host::time::now() + limit;
        loop {
            let (deadline, budget) = steps.begin(&Step::Observe).await?;
            let until = end.min(deadline);
            let found = bounded(&Step::Observe, budget, async {
                loop {
                    for c in &self.members {
                        if self
                            .hello(&c.spec().id)
                            .await
                            .is_ok_and(|h| h.writable_primary)
                        {
                            return Ok(Some(c.spec().id.clone()));
                        }
                    }
                    if switchyard_host::time::now() + POLL >= until {
                        return Ok(None);
                    }
                    switchyard_host::time::sleep(POLL).await;
                }
            })
            .await?;
            steps.done(&Step::Observe).await?;
            if let Some(id) = found {
                return Ok(id);
            }
            if switchyard_host::time::now() >= end {
                return Err(ReplError::NoPrimaryElected { waited: limit });
            }
        }
    }
}
