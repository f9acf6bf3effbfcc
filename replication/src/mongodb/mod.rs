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

use tokio::time::Instant;

use self::client::MemberClient;
use crate::error::ReplError;
use crate::gtid::Position;
use crate::replica_set::ReplicaSet;
use crate::report::{Operation, Report};
use crate::snapshot::Snapshot;
use crate::spec::{MemberSpec, Rules};

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
        Ok(Self { members, rules })
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
}

#[async_trait::async_trait]
impl ReplicaSet for MongoReplicaSet {
    async fn observe(&self) -> Result<Snapshot, ReplError> {
        Ok(self.observe_full().await.snap)
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

    async fn promote(&self, member: &str) -> Result<(), ReplError> {
        if self.hello(member).await?.writable_primary {
            return Ok(());
        }
        let obs = self.observe_full().await;
        let mut report = Report::new(Operation::Switchover, obs.snap.primary.clone(), member);
        self.hand_over(&obs, member, self.rules.catch_up_timeout, &mut report)
            .await
    }

    async fn repoint(&self, member: &str, to: &str) -> Result<(), ReplError> {
        let target = self.client(to)?.spec().address.clone();
        let obs = self.observe_full().await;
        let m = obs
            .snap
            .member(member)
            .ok_or_else(|| ReplError::UnknownMember {
                member: member.to_string(),
                known: obs.snap.ids(),
            })?;
        if m.source.as_deref() == Some(to) {
            return Ok(());
        }
        self.client(member)?
            .run(commands::sync_from(&target), Duration::ZERO)
            .await
            .map(|_| ())
    }

    async fn wait_caught_up(
        &self,
        member: &str,
        position: &Position,
        timeout: Duration,
    ) -> Result<(), ReplError> {
        let started = Instant::now();
        loop {
            let h = self.hello(member).await?;
            let have = h.last_write.map(Position::OpTime);
            if have.as_ref().is_some_and(|p| p.contains(position)) {
                return Ok(());
            }
            if started.elapsed() >= timeout {
                return Err(ReplError::CatchUpTimeout {
                    member: member.to_string(),
                    waited: started.elapsed(),
                    missing: match have {
                        Some(h) => position.missing_from(&h).to_string(),
                        None => position.to_string(),
                    },
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }
    async fn switchover(&self, to: &str, timeout: Duration) -> Result<Report, ReplError> {
        self.run_switchover(to, timeout).await
    }

    async fn failover(
        &self,
        to: Option<&str>,
        force: bool,
        expected_old_primary: Option<&str>,
    ) -> Result<Report, ReplError> {
        self.run_failover(to, force, expected_old_primary).await
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
        let started = Instant::now();
        let snap = set.observe().await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(snap.members.iter().all(|m| !m.reachable));
        assert!(snap.members.iter().all(|m| {
            m.contact_error
                .as_ref()
                .is_some_and(|c| c.kind == ContactErrorKind::Unreachable)
        }));
        let e = set.failover(None, false, Some("m0")).await.unwrap_err();
        assert!(matches!(e, ReplError::PrimaryUnreachable { .. }), "{e}");
        assert!(matches!(
            set.switchover("nobody", Duration::from_secs(1)).await,
            Err(ReplError::UnknownMember { .. })
        ));
    }
}
