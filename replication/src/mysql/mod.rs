//! The MySQL/MariaDB adapter on `mysql_async`: GTID replication, fencing
//! with `read_only` (MySQL: `super_read_only`) and killed sessions,
//! promotion and repointing in the order of ARCHITECTURE.md §6.
//!
//! The `mariadb` flavor runs against real MariaDB 10.11 servers in this
//! crate's tests. The `mysql` flavor (MySQL 8) shares every step and
//! differs only in the SQL of [`flavor`], which is unit-tested against the
//! replies MySQL's manual documents: no MySQL server runs here.
//!
//! On MariaDB an account with `READ_ONLY ADMIN` (or `SUPER` before 10.11)
//! ignores `read_only`, so applications must not use such accounts: fencing
//! kills their sessions, but cannot stop them reconnecting and writing.

pub mod bypass;
pub mod dead_man;
mod failover;
pub mod flavor;
mod observe;
mod orchestrate;
pub mod processlist;
mod session;
pub mod sim;
pub mod status;
mod steps;
mod switchover;

use std::collections::BTreeSet;
use std::time::Duration;

pub use flavor::{Flavor, GtidMode};
pub use session::{Servers, Timeouts};

use crate::error::ReplError;
use crate::gtid::Position;
use crate::guard::{Step, StepGuard};
use crate::lag::LagMemory;
use crate::replica_set::{FailoverRequest, ReplicaSet};
use crate::report::Report;
use crate::snapshot::Snapshot;
use crate::spec::{Credentials, MemberSpec, Rules, split_address};
use crate::stepper::Steps;
use steps::Promoting;

/// A MySQL or MariaDB replica set with GTID replication.
#[derive(Debug, Clone)]
pub struct MySqlReplicaSet {
    flavor: Flavor,
    members: Vec<MemberSpec>,
    rules: Rules,
    repl: Credentials,
    timeouts: Timeouts,
    /// Real servers, or simulated ones.
    servers: Servers,
    /// Each replica's lag as last seen while the primary was alive (shared
    /// by clones: they are the same replica set).
    seen: LagMemory,
    /// Whether members carry the dead-man switch ([`dead_man`]): a
    /// promotion or a lift then arms it on a member that lacks it.
    dead_man: bool,
}

impl MySqlReplicaSet {
    /// Builds the adapter from plain data. `repl_credentials` is the account
    /// replicas use to connect to their source (`REPLICATION SLAVE`).
    /// Fails when ids repeat, an address is not `host:port`, or there are no
    /// members.
    pub fn new(
        flavor: Flavor,
        members: Vec<MemberSpec>,
        rules: Rules,
        repl_credentials: Credentials,
    ) -> Result<Self, ReplError> {
        if members.is_empty() {
            return Err(ReplError::InvalidSpec {
                detail: "no members".to_string(),
            });
        }
        let mut ids = BTreeSet::new();
        for m in &members {
            if !ids.insert(m.id.as_str()) {
                return Err(ReplError::InvalidSpec {
                    detail: format!("member id {:?} appears twice", m.id),
                });
            }
            for a in [m.address.as_str(), m.source_address()] {
                if split_address(a).is_none() {
                    return Err(ReplError::InvalidSpec {
                        detail: format!("member {}: address {a:?} is not host:port", m.id),
                    });
                }
            }
        }
        Ok(Self {
            flavor,
            members,
            rules,
            repl: repl_credentials,
            timeouts: Timeouts::default(),
            servers: Servers::Real,
            seen: LagMemory::default(),
            dead_man: false,
        })
    }

    /// Replaces the default connect (2 s), statement (10 s), fence (1 s)
    /// timeouts and dead-man grace (5 s).
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// Arms the dead-man switch ([`dead_man`]) on every member it promotes
    /// or unfences, from the moment it becomes writable, for
    /// [`Timeouts::dead_man_grace`]; the region's controller renews it
    /// from there ([`ReplicaSet::hold_dead_man`]). Without it, a switch
    /// found armed is still pushed out before read-only goes off.
    pub fn with_dead_man(mut self, armed: bool) -> Self {
        self.dead_man = armed;
        self
    }

    /// The same adapter on simulated MariaDB servers ([`sim`]): each
    /// member's address names its server in `network`. The adapter's code
    /// runs unchanged; only the connection under each session differs.
    pub fn simulated(mut self, network: &sim::SimNetwork) -> Self {
        self.servers = Servers::Sim(network.clone());
        self
    }

    fn spec(&self, id: &str) -> Result<&MemberSpec, ReplError> {
        self.members
            .iter()
            .find(|m| m.id == id)
            .ok_or_else(|| ReplError::UnknownMember {
                member: id.to_string(),
                known: self.members.iter().map(|m| m.id.clone()).collect(),
            })
    }

    /// Reads every member as a guarded observe step (and remembers it).
    async fn observe_step(&self, steps: &Steps<'_>) -> Result<Snapshot, ReplError> {
        let snap = steps
            .run(Step::Observe, |d| async move {
                Ok(observe::observe_all(
                    &self.servers,
                    self.flavor,
                    &self.members,
                    self.timeouts,
                    Some(d),
                )
                .await)
            })
            .await?;
        self.seen.remember(&snap);
        Ok(snap)
    }
}

#[async_trait::async_trait]
impl ReplicaSet for MySqlReplicaSet {
    async fn observe(&self) -> Result<Snapshot, ReplError> {
        let snap = observe::observe_all(
            &self.servers,
            self.flavor,
            &self.members,
            self.timeouts,
            None,
        )
        .await;
        self.seen.remember(&snap);
        Ok(snap)
    }

    async fn fence(&self, member: &str) -> Result<(), ReplError> {
        let deadline = switchyard_host::time::now() + self.timeouts.fence;
        let step = Step::Fence {
            member: member.to_string(),
        };
        crate::stepper::bounded(&step, self.timeouts.fence, self.do_fence(member, deadline))
            .await
            .map(|_| ())
    }

    async fn unfence(&self, member: &str, guard: &dyn StepGuard) -> Result<bool, ReplError> {
        self.run_unfence(member, guard).await
    }

    async fn hold_dead_man(
        &self,
        member: &str,
        until: tokio::time::Instant,
    ) -> Result<crate::replica_set::DeadMan, ReplError> {
        self.do_hold_dead_man(member, until).await
    }

    async fn disarm_dead_man(&self, member: &str) -> Result<(), ReplError> {
        self.spec(member)?;
        self.do_disarm_dead_man(member).await
    }

    async fn promote(&self, member: &str, guard: &dyn StepGuard) -> Result<(), ReplError> {
        self.spec(member)?;
        let steps = Steps::new(guard);
        let step = Step::Promote {
            member: member.to_string(),
        };
        let mut progress = Promoting::default();
        steps
            .run(step, |d| {
                self.do_promote(member, d, &mut progress, "promote")
            })
            .await
            .map(|_| ())
    }

    async fn repoint(
        &self,
        member: &str,
        to: &str,
        guard: &dyn StepGuard,
    ) -> Result<(), ReplError> {
        self.spec(member)?;
        self.spec(to)?;
        let steps = Steps::new(guard);
        let step = Step::Repoint {
            member: member.to_string(),
            to: to.to_string(),
        };
        steps
            .run(step, |d| self.do_repoint(member, to, d))
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
        self.spec(member)?;
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
