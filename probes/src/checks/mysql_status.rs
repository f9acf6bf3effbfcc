//! Judging a MySQL/MariaDB member from what it said: pure, so the rules
//! are tested without a server.

use std::time::Duration;

use super::{Failure, FailureKind};

/// One replication channel, as `SHOW REPLICA STATUS` (or `SHOW SLAVE
/// STATUS`) reports it; filled from the replication crate's reading.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelStatus {
    /// Channel (MySQL) or connection (MariaDB multi-source) name; often empty.
    pub name: String,
    /// IO (receiver) thread: `Yes`, `No`, `Connecting`.
    pub io_running: Option<String>,
    /// SQL (applier) thread: `Yes` or `No`.
    pub sql_running: Option<String>,
    /// `Seconds_Behind_Master`/`Seconds_Behind_Source`; `None` is NULL.
    pub lag_seconds: Option<u64>,
    /// `Last_IO_Error`.
    pub io_error: Option<String>,
    /// `Last_SQL_Error`.
    pub sql_error: Option<String>,
}

/// What the check read from a member.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberStatus {
    /// `read_only` (MySQL: `super_read_only` too).
    pub read_only: bool,
    /// Every replication channel; empty when it replicates from no one.
    pub channels: Vec<ChannelStatus>,
}

/// Up when read-only is as expected, every channel's threads run, and lag
/// is within `max_lag`. A member expected read-only (a replica) must also
/// replicate from someone.
pub fn judge(
    status: &MemberStatus,
    expect_read_only: Option<bool>,
    max_lag: Option<Duration>,
) -> Result<(), Failure> {
    if let Some(want) = expect_read_only
        && status.read_only != want
    {
        return Err(Failure::new(
            FailureKind::ReadOnly,
            format!(
                "read_only is {}, expected {}",
                on_off(status.read_only),
                on_off(want)
            ),
        ));
    }
    if expect_read_only == Some(true) && status.channels.is_empty() {
        return Err(Failure::new(
            FailureKind::Replication,
            "expected a replica, but it replicates from no one",
        ));
    }
    for ch in &status.channels {
        let label = if ch.name.is_empty() {
            String::new()
        } else {
            format!(" (channel {:?})", ch.name)
        };
        if ch.io_running.as_deref() != Some("Yes") {
            return Err(Failure::new(
                FailureKind::Replication,
                format!(
                    "IO thread {}{label}{}",
                    ch.io_running.as_deref().unwrap_or("unknown"),
                    error_suffix(&ch.io_error)
                ),
            ));
        }
        if ch.sql_running.as_deref() != Some("Yes") {
            return Err(Failure::new(
                FailureKind::Replication,
                format!(
                    "SQL thread {}{label}{}",
                    ch.sql_running.as_deref().unwrap_or("unknown"),
                    error_suffix(&ch.sql_error)
                ),
            ));
        }
        if let Some(max) = max_lag {
            match ch.lag_seconds {
                Some(lag) if Duration::from_secs(lag) > max => {
                    return Err(Failure::new(
                        FailureKind::Lag,
                        format!("lag {lag}s{label} over limit {max:?}"),
                    ));
                }
                Some(_) => {}
                None => {
                    return Err(Failure::new(
                        FailureKind::Lag,
                        format!("lag unknown{label} (Seconds_Behind is NULL)"),
                    ));
                }
            }
        }
    }
    Ok(())
}

fn on_off(b: bool) -> &'static str {
    if b { "ON" } else { "OFF" }
}

fn error_suffix(e: &Option<String>) -> String {
    match e.as_deref() {
        Some(e) if !e.is_empty() => format!(": {e}"),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(lag: Option<u64>) -> ChannelStatus {
        ChannelStatus {
            io_running: Some("Yes".into()),
            sql_running: Some("Yes".into()),
            lag_seconds: lag,
            ..ChannelStatus::default()
        }
    }

    #[test]
    fn a_writable_primary_is_up() {
        let primary = MemberStatus::default();
        assert!(judge(&primary, Some(false), Some(Duration::from_secs(5))).is_ok());
        assert!(judge(&primary, None, None).is_ok());
    }

    #[test]
    fn read_only_must_match_the_expectation() {
        let primary = MemberStatus::default();
        let err = judge(&primary, Some(true), None).unwrap_err();
        assert_eq!(err.kind, FailureKind::ReadOnly);
        assert_eq!(err.detail, "read_only is OFF, expected ON");
    }

    #[test]
    fn a_replica_needs_both_threads_and_bounded_lag() {
        let mut r = MemberStatus {
            read_only: true,
            channels: vec![running(Some(1))],
        };
        let max = Some(Duration::from_secs(5));
        assert!(judge(&r, Some(true), max).is_ok());

        r.channels[0].lag_seconds = Some(9);
        assert_eq!(
            judge(&r, Some(true), max).unwrap_err().kind,
            FailureKind::Lag
        );

        r.channels[0].lag_seconds = None;
        assert_eq!(
            judge(&r, Some(true), max).unwrap_err().kind,
            FailureKind::Lag
        );
        assert!(judge(&r, Some(true), None).is_ok());

        r.channels[0].io_running = Some("Connecting".into());
        r.channels[0].io_error = Some("error connecting to master".into());
        let err = judge(&r, Some(true), max).unwrap_err();
        assert_eq!(err.kind, FailureKind::Replication);
        assert!(err.detail.contains("Connecting: error connecting"), "{err}");
    }

    #[test]
    fn an_expected_replica_that_replicates_from_no_one_is_down() {
        let fenced = MemberStatus {
            read_only: true,
            channels: vec![],
        };
        assert_eq!(
            judge(&fenced, Some(true), None).unwrap_err().kind,
            FailureKind::Replication
        );
        assert!(judge(&fenced, None, None).is_ok());
    }
}
