//! Turning what a server answered into a [`MemberState`], pure: rows come
//! in as column-name → text maps, so the MySQL 8 replies from its manual are
//! unit-tested the same way as real MariaDB ones.

use std::collections::BTreeMap;
use std::time::Duration;

use super::flavor::Flavor;
use crate::gtid::{MariaDbGtids, MySqlGtidSet, Position};
use crate::snapshot::{MemberState, Role};
use crate::spec::{MemberSpec, split_address};

/// One result row: column name → value as text (`None` for SQL NULL).
pub type Columns = BTreeMap<String, Option<String>>;

/// The variables row of [`Flavor::variables_query`].
#[derive(Debug, Clone, PartialEq)]
pub struct Variables {
    /// `server_id` (MariaDB) or `server_uuid` (MySQL).
    pub origin: String,
    /// `read_only`, or `super_read_only` on MySQL… either one blocks writes.
    pub read_only: bool,
    /// Applied transactions (`gtid_binlog_state` ∪ `gtid_slave_pos`, or
    /// `gtid_executed`).
    pub executed: Position,
}

/// The replica status row, when replication is configured.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaStatus {
    /// Source host as configured.
    pub host: String,
    /// Source port.
    pub port: u16,
    /// Receiver connected and running (`Yes`).
    pub io_running: bool,
    /// Receiver state as the server says it (`Yes`, `Connecting`, `No`).
    pub io_state: String,
    /// Applier running (`Yes`).
    pub sql_running: bool,
    /// Seconds behind, when the server knows.
    pub lag: Option<Duration>,
    /// Receiver's last error.
    pub io_error: Option<String>,
    /// Applier's last error.
    pub sql_error: Option<String>,
    /// Received but perhaps not applied.
    pub received: Option<Position>,
}

fn get<'a>(row: &'a Columns, name: &str) -> Option<&'a str> {
    row.get(name).and_then(|v| v.as_deref())
}

fn flag(v: Option<&str>) -> bool {
    matches!(v, Some("1" | "ON" | "on" | "Yes" | "YES"))
}

/// Reads a GTID list in the flavor's format.
pub fn parse_position(flavor: Flavor, text: &str) -> Result<Position, String> {
    match flavor {
        Flavor::MariaDb => text
            .parse::<MariaDbGtids>()
            .map(Position::MariaDb)
            .map_err(|e| e.to_string()),
        Flavor::MySql => text
            .parse::<MySqlGtidSet>()
            .map(Position::MySql)
            .map_err(|e| e.to_string()),
    }
}

/// Reads the variables row.
pub fn parse_variables(flavor: Flavor, row: &Columns) -> Result<Variables, String> {
    let origin = get(row, "origin")
        .ok_or("no server id in the answer")?
        .to_string();
    let read_only = flag(get(row, "read_only")) || flag(get(row, "super_read_only"));
    let mut executed = parse_position(flavor, get(row, "executed").unwrap_or(""))?;
    if let Some(sp) = get(row, "slave_pos").filter(|s| !s.trim().is_empty()) {
        executed = executed.union(&parse_position(flavor, sp)?);
    }
    Ok(Variables {
        origin,
        read_only,
        executed,
    })
}

/// Reads the replica status row; `None` when no source is configured.
pub fn parse_replica_status(
    flavor: Flavor,
    row: &Columns,
) -> Result<Option<ReplicaStatus>, String> {
    let c = flavor.status_columns();
    let host = get(row, c.host).unwrap_or("").trim().to_string();
    if host.is_empty() {
        return Ok(None);
    }
    let port = get(row, c.port)
        .unwrap_or("0")
        .parse::<u16>()
        .map_err(|_| format!("bad {} in replica status", c.port))?;
    let err = |no: &str, text: &str| {
        let n = get(row, no).unwrap_or("0");
        (n != "0" && !n.is_empty()).then(|| {
            format!(
                "error {n}: {}",
                get(row, text).unwrap_or("(no message)").trim()
            )
        })
    };
    let received = match get(row, c.received).map(str::trim) {
        Some(t) if !t.is_empty() => Some(parse_position(flavor, t)?),
        _ => None,
    };
    Ok(Some(ReplicaStatus {
        host,
        port,
        io_running: get(row, c.io_running) == Some("Yes"),
        io_state: get(row, c.io_running).unwrap_or("No").to_string(),
        sql_running: get(row, c.sql_running) == Some("Yes"),
        lag: get(row, c.lag)
            .and_then(|s| s.parse::<u64>().ok())
            .map(Duration::from_secs),
        io_error: err(c.io_errno, c.io_error),
        sql_error: err(c.sql_errno, c.sql_error),
        received,
    }))
}

/// The member whose replication address is `host:port`, else the address.
pub fn source_name(members: &[MemberSpec], host: &str, port: u16) -> String {
    members
        .iter()
        .find(|m| {
            split_address(m.source_address())
                .is_some_and(|(h, p)| p == port && h.eq_ignore_ascii_case(host))
        })
        .map(|m| m.id.clone())
        .unwrap_or_else(|| format!("{host}:{port}"))
}

/// Combines what was read into the member's state.
///
/// Role: a member with a configured source is a replica, except when it is
/// writable and both threads are stopped — then it takes writes and
/// replicates nothing, which is a primary (a promotion cut short before its
/// `RESET`). Without a source, writable is primary and read-only is fenced.
pub fn member_state(
    spec: &MemberSpec,
    members: &[MemberSpec],
    vars: Variables,
    status: Option<ReplicaStatus>,
) -> MemberState {
    let mut m = MemberState::unread(spec);
    m.reachable = true;
    m.origin = Some(vars.origin);
    m.read_only = Some(vars.read_only);
    m.role = match &status {
        Some(s) if vars.read_only || s.io_running || s.sql_running => Role::Replica,
        _ if vars.read_only => Role::Fenced,
        _ => Role::Primary,
    };
    m.received = Some(vars.executed.clone());
    if let Some(s) = status {
        m.source = Some(source_name(members, &s.host, s.port));
        m.io_running = s.io_running;
        m.state = Some(s.io_state);
        m.sql_running = s.sql_running;
        m.lag = s.lag;
        m.io_error = s.io_error;
        m.sql_error = s.sql_error;
        if let Some(r) = s.received {
            m.received = Some(vars.executed.union(&r));
        }
    }
    m.position = Some(vars.executed);
    m
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
