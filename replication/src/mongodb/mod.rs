//! The MongoDB adapter on the official `mongodb` driver.
//!
//! Observation: `hello` on every member directly (reachability, role, last
//! write), `replSetGetStatus` and `replSetGetConfig` on one reachable member
//! (the primary when there is one) for health, optimes and priorities.
//! Planned promotion: raise the target's priority (`replSetReconfig`), then
//! `replSetStepDown` on the primary with `secondaryCatchUpPeriodSecs`, then
//! wait until the target is the writable primary. When a majority of voting
//! members is lost, a forced reconfig keeping the survivors is run only if
//! the rules set `allow_data_loss`; otherwise failover is refused with why.
//!
//! **Not run against a real server**: no MongoDB server can be installed on
//! these machines. The command documents and the reading of replies are
//! unit-tested against the replies MongoDB's manual documents
//! ([`commands`], [`reply`], [`plan`]); the network path is only exercised
//! against closed ports.

mod client;
pub mod commands;
mod handover;
mod observe;
mod orchestrate;
pub mod plan;
pub mod reply;

use std::time::Duration;

use self::client::MemberClient;
use self::observe::Observed;
use crate::error::ReplError;
use crate::gtid::Position;
use crate::guard::{Step, StepGuard};
use crate::lag::LagMemory;
use crate::replica_set::{FailoverRequest, ReplicaSet};
use crate::report::{Operation, Report};
use crate::snapshot::Snapshot;
use crate::spec::{MemberSpec, Rules};
use crate::stepper::Steps;

/// How often the adapter re-reads members while waiting.
const POLL: Duration = Duration::from_millis(200);
/// Time for an election after a step-down or forced reconfig (MongoDB's
/// default `electionTimeoutMillis` is 10 s; elections settle in ≤ 12 s).
const ELECTION: Duration = Duration::from_secs(15);
/// How long a fenced member stays unelectable (step-down / freeze seconds).
const FENCE_SECS: u64 = 120;

/// A MongoDB replica set.
#[derive(Debug, Clone)]
pub struct MongoReplicaSet {
    members: Vec<MemberClient>,
    rules: Rules,
    /// Each secondary's lag as last seen while the primary was alive.
    seen: LagMemory,
}

impl MongoReplicaSet {
    /// Builds the adapter; `timeout` bounds each connection and command.
    /// The members' credentials need the `clusterManager` role (reconfig,
    /// step-down) and `clusterMonitor` (status).
    pub fn new(
        members: Vec<MemberSpec>,
        rules: Rules,
        timeout: Duration,
    ) -> Result<Self, ReplError> {
        if members.is_empty() {
            return Err(ReplError::InvalidSpec {
                detail: "no members".into(),
            });
        }
        let members = members
            .iter()
            .map(|m| MemberClient::new(m, timeout))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            members,
            rules,
            seen: LagMemory::default(),
        })
    }

    pub(crate) fn index(&self, id: &str) -> Result<usize, ReplError> {
        self.members
            .iter()
            .position(|m| m.spec().id == id)
            .ok_or_else(|| ReplError::UnknownMember {
                member: id.to_string(),
                known: self.members.iter().map(|m| m.spec().id.clone()).collect(),
            })
    }

    pub(crate) fn client(&self, id: &str) -> Result<&MemberClient, ReplError> {
        Ok(&self.members[self.index(id)?])
    }

    /// Reads the replica set as a guarded observe step (and remembers it).
    async fn observe_step(&self, steps: &Steps<'_>) -> Result<Observed, ReplError> {
        let obs = steps
            .run(Step::Observe, |_| async { Ok(self.observe_full().await) })
            .await?;
        self.seen.remember(&obs.snap);
        Ok(obs)
    }
}

#[async_trait::async_trait]
impl ReplicaSet for MongoReplicaSet {
    async fn observe(&self) -> Result<Snapshot, ReplError> {
        let obs = self.observe_full().await;
        self.seen.remember(&obs.snap);
        Ok(obs.snap)
    }

    async fn fence(&self, member: &str) -> Result<(), ReplError> {
        let h = self.hello(member).await?;
        let c = self.client(member)?;
        let cmd = if h.writable_primary {
            let mut d = commands::step_down(FENCE_SECS, 0);
            d.insert("force", true);
            d
        } else {
            commands::freeze(FENCE_SECS)
        };
        c.run(cmd, Duration::ZERO).await.map(|_| ())
    }

    async fn unfence(&self, member: &str, guard: &dyn StepGuard) -> Result<bool, ReplError> {
        self.index(member)?;
        let steps = Steps::new(guard);
        let obs = self.observe_step(&steps).await?;
        let m = obs.snap.member(member).expect("checked above");
        if !m.reachable {
            return Err(ReplError::Unreachable {
                member: member.to_string(),
                address: m.address.clone(),
                detail: m.last_error().unwrap_or_default(),
            });
        }
        if m.is_writable_primary() {
            return Ok(false);
        }
        if let Some(p) = obs.snap.writable().first() {
            return Err(ReplError::Conflict {
                detail: format!("{} is the primary: {member} stays frozen", p.id),
            });
        }
        let c = self.client(member)?;
        let step = Step::Unfence {
            member: member.to_string(),
        };
        steps
            .run(step, |_| c.run(commands::freeze(0), Duration::ZERO))
            .await?;
        Ok(true)
    }

    async fn promote(&self, member: &str, guard: &dyn StepGuard) -> Result<(), ReplError> {
        self.index(member)?;
        let steps = Steps::new(guard);
        let obs = self.observe_step(&steps).await?;
        if obs
            .snap
            .member(member)
            .is_some_and(|m| m.is_writable_primary())
        {
            return Ok(());
        }
        let mut report = Report::new(Operation::Switchover, obs.snap.primary.clone(), member);
        self.hand_over(
            &steps,
            &obs,
            member,
            self.rules.catch_up_timeout,
            &mut report,
        )
        .await
    }

    async fn repoint(
        &self,
        member: &str,
        to: &str,
        guard: &dyn StepGuard,
    ) -> Result<(), ReplError> {
        let target = self.client(to)?.spec().address.clone();
        let c = self.client(member)?;
        let steps = Steps::new(guard);
        let obs = self.observe_step(&steps).await?;
        let m = obs.snap.member(member).expect("checked above");
        if m.source.as_deref() == Some(to) {
            return Ok(());
        }
        let step = Step::Repoint {
            member: member.to_string(),
            to: to.to_string(),
        };
        steps
            .run(step, |_| {
                c.run(commands::sync_from(&target), Duration::ZERO)
            })
            .await
            .map(|_| ())
    }

    async fn wait_caught_up(
        &self,
        member: &str,
        position: &Position,
        timeout: Duration,
        guard: &dyn StepGuard,
    ) -> Result<(), ReplError> {
        self.index(member)?;
        self.catch_up(&Steps::new(guard), member, position, timeout)
            .await
    }

    async fn switchover(
        &self,
        to: &str,
        expected_old_primary: Option<&str>,
        timeout: Duration,
        guard: &dyn StepGuard,
    ) -> Result<Report, ReplError> {
        self.run_switchover(to, expected_old_primary, timeout, guard)
            .await
    }

    async fn failover(
        &self,
        req: &FailoverRequest,
        guard: &dyn StepGuard,
    ) -> Result<Report, ReplError> {
        self.run_failover(req, guard).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::ContactErrorKind;
    use crate::spec::Credentials;

    /// The network path without a server: closed loopback ports answer
    /// nothing, and every member must come back unreachable, quickly.
    #[tokio::test]
    async fn observe_reports_closed_ports_as_unreachable() {
        let ports: Vec<u16> = (0..2)
            .map(|_| {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                l.local_addr().unwrap().port()
            })
            .collect();
        let members = ports
            .iter()
            .enumerate()
            .map(|(i, p)| {
                MemberSpec::new(
                    format!("m{i}"),
                    "r",
                    format!("127.0.0.1:{p}"),
                    Credentials::new("u", "p"),
                )
            })
            .collect();
        let set =
            MongoReplicaSet::new(members, Rules::default(), Duration::from_millis(300)).unwrap();
        let started = switchyard_host::time::now();
        let snap = set.observe().await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(snap.members.iter().all(|m| !m.reachable));
        assert!(snap.members.iter().all(|m| {
            m.contact_error
                .as_ref()
                .is_some_and(|c| c.kind == ContactErrorKind::Unreachable)
        }));
        let e = set
            .failover(
                &FailoverRequest::replacing("m0"),
                &crate::guard::Unguarded::default(),
            )
            .await
            .unwrap_err();
        assert!(matches!(e, ReplError::PrimaryUnreachable { .. }), "{e}");
        // A deposed leader's orchestration stops before its first command.
        struct Deposed;
        #[async_trait::async_trait]
        impl StepGuard for Deposed {
            async fn begin(&self, step: &Step) -> Result<Duration, ReplError> {
                Err(ReplError::Deposed {
                    step: step.to_string(),
                    detail: "not the leader".into(),
                })
            }
            async fn done(&self, _: &Step) -> Result<(), ReplError> {
                Ok(())
            }
            fn finished(&self) -> Vec<Step> {
                Vec::new()
            }
        }
        let started = switchyard_host::time::now();
        let e = set
            .failover(&FailoverRequest::replacing("m0"), &Deposed)
            .await
            .unwrap_err();
        assert!(matches!(e, ReplError::Deposed { .. }), "{e}");
        for r in [
            set.switchover("m1", None, Duration::from_secs(1), &Deposed)
                .await
                .map(|_| ()),
            set.unfence("m0", &Deposed).await.map(|_| ()),
            set.promote("m1", &Deposed).await,
            set.repoint("m1", "m0", &Deposed).await,
        ] {
            assert!(matches!(r, Err(ReplError::Deposed { .. })), "{r:?}");
        }
        // Refused before any command: no connection timeout was waited for.
        assert!(started.elapsed() < Duration::from_millis(250));
        assert!(matches!(
            set.switchover(
                "nobody",
                None,
                Duration::from_secs(1),
                &crate::guard::Unguarded::default()
            )
            .await,
            Err(ReplError::UnknownMember { .. })
        ));
    }
}
