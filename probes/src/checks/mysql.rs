//! `mysql`/`mariadb`: read one member through the replication crate (the
//! same reading the controller's executor uses: `read_only`, replica
//! status, lag) and judge it ([`super::mysql_status`]).
//!
//! The member is observed as a one-member [`MySqlReplicaSet`] on a fresh
//! connection per run, with the check's timeout for connecting and for
//! each statement.

use std::time::Duration;

use switchyard_replication::{
    ContactErrorKind, Credentials, MemberSpec, MemberState, MySqlReplicaSet, ReplicaSet, Rules,
    Timeouts,
};

use crate::plan::MySqlCheck;

use super::mysql_status::{ChannelStatus, MemberStatus, judge};
use super::{Check, CheckFuture, Failure, FailureKind};

/// A built MySQL/MariaDB check.
#[derive(Debug, Clone)]
pub struct MySqlCheckRunner {
    set: MySqlReplicaSet,
    address: String,
    expect_read_only: Option<bool>,
    max_lag: Option<Duration>,
}

impl MySqlCheckRunner {
    /// Builds the check; fails on an address that is not `host:port`.
    pub fn new(spec: &MySqlCheck, timeout: Duration) -> Result<Self, String> {
        let member = MemberSpec::new(
            "member",
            "",
            spec.address.clone(),
            Credentials::new(spec.user.clone(), spec.password.clone()),
        );
        // Replication credentials are only used to repoint: never here.
        let set = MySqlReplicaSet::new(
            spec.flavor,
            vec![member],
            Rules::default(),
            Credentials::new("", ""),
        )
        .map_err(|e| e.to_string())?
        .with_timeouts(Timeouts {
            connect: timeout,
            statement: timeout,
            ..Timeouts::default()
        });
        Ok(MySqlCheckRunner {
            set,
            address: spec.address.clone(),
            expect_read_only: spec.expect_read_only,
            max_lag: spec.max_lag,
        })
    }

    async fn once(&self) -> Result<(), Failure> {
        let snapshot =
            self.set.observe().await.map_err(|e| {
                Failure::new(FailureKind::Protocol, format!("{}: {e}", self.address))
            })?;
        let member = snapshot.members.first().ok_or_else(|| {
            Failure::new(
                FailureKind::Protocol,
                format!("{}: not observed", self.address),
            )
        })?;
        judge(&self.status(member)?, self.expect_read_only, self.max_lag)
    }

    /// What the judge needs from the replication crate's reading, or why
    /// the member could not be read.
    fn status(&self, m: &MemberState) -> Result<MemberStatus, Failure> {
        if let Some(e) = &m.contact_error {
            let kind = match e.kind {
                ContactErrorKind::AccessDenied => FailureKind::Auth,
                ContactErrorKind::Unreachable if e.is_refused() => FailureKind::Refused,
                ContactErrorKind::Unreachable => FailureKind::Connect,
                ContactErrorKind::Failed => FailureKind::Protocol,
            };
            return Err(Failure::new(
                kind,
                format!("{}: {}", self.address, e.detail),
            ));
        }
        let yes_no = |b: bool| Some(if b { "Yes" } else { "No" }.to_string());
        let channels = if m.source.is_some() {
            vec![ChannelStatus {
                name: String::new(),
                io_running: yes_no(m.io_running),
                sql_running: yes_no(m.sql_running),
                lag_seconds: m.lag.map(|d| d.as_secs()),
                io_error: m.io_error.clone(),
                sql_error: m.sql_error.clone(),
            }]
        } else {
            Vec::new()
        };
        Ok(MemberStatus {
            read_only: m.read_only.unwrap_or(false),
            channels,
        })
    }
}

impl Check for MySqlCheckRunner {
    fn run(&self) -> CheckFuture<'_> {
        Box::pin(self.once())
    }
}
