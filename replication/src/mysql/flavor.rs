//! The SQL each flavor speaks, as pure functions, so that the MySQL 8
//! statements are unit-tested even though no MySQL server runs here.
//!
//! MariaDB (10.5+): `gtid_binlog_state` / `gtid_slave_pos`, `SHOW SLAVE
//! STATUS`, `MASTER_GTID_WAIT`, `CHANGE MASTER TO … MASTER_USE_GTID`.
//! MySQL (8.0.23+): `gtid_executed`, `SHOW REPLICA STATUS`,
//! `WAIT_FOR_EXECUTED_GTID_SET`, `CHANGE REPLICATION SOURCE TO …
//! SOURCE_AUTO_POSITION=1`, and `super_read_only`, without which a user with
//! `SUPER`/`CONNECTION_ADMIN` could still write to a fenced primary.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::gtid::Missing;

/// Which server family a [`super::MySqlReplicaSet`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavor {
    /// MariaDB with GTID replication (`gtid_strict_mode` recommended).
    MariaDb,
    /// MySQL 8 with `gtid_mode=ON`.
    MySql,
}

impl fmt::Display for Flavor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Flavor::MariaDb => "mariadb",
            Flavor::MySql => "mysql",
        })
    }
}

/// Where a (re)started replica takes its GTID position from (MariaDB's
/// `MASTER_USE_GTID`; MySQL always auto-positions on `gtid_executed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GtidMode {
    /// The last GTID *replicated*: right for a replica that only ever
    /// applied its source's transactions (transactions written locally, if
    /// any, are not requested from the new source).
    SlavePos,
    /// The later of what it replicated and what it wrote itself: right for a
    /// demoted primary re-joining, whose own transactions are in its binlog
    /// and not in `gtid_slave_pos`.
    CurrentPos,
}

/// The column names of the replica status row, which MySQL 8.0.22 renamed.
#[derive(Debug, Clone, Copy)]
pub struct StatusColumns {
    /// Source host.
    pub host: &'static str,
    /// Source port.
    pub port: &'static str,
    /// Receiver state (`Yes`, `Connecting`, `No`).
    pub io_running: &'static str,
    /// Applier state (`Yes`, `No`).
    pub sql_running: &'static str,
    /// Lag in seconds, NULL when unknown.
    pub lag: &'static str,
    /// Receiver error number and text.
    pub io_errno: &'static str,
    /// Receiver error text.
    pub io_error: &'static str,
    /// Applier error number.
    pub sql_errno: &'static str,
    /// Applier error text.
    pub sql_error: &'static str,
    /// What has been received (MariaDB `Gtid_IO_Pos`, MySQL `Retrieved_Gtid_Set`).
    pub received: &'static str,
}

impl Flavor {
    /// One row with the variables observation needs, under fixed aliases:
    /// `origin`, `read_only`, `super_read_only`, `executed`, `slave_pos`.
    pub fn variables_query(self) -> &'static str {
        match self {
            Flavor::MariaDb => {
                "SELECT @@server_id AS origin, @@read_only AS read_only, \
                 0 AS super_read_only, @@gtid_binlog_state AS executed, \
                 @@gtid_slave_pos AS slave_pos"
            }
            Flavor::MySql => {
                "SELECT @@server_uuid AS origin, @@read_only AS read_only, \
                 @@super_read_only AS super_read_only, @@gtid_executed AS executed, \
                 '' AS slave_pos"
            }
        }
    }

    /// The replica status statement (no row when replication is not configured).
    pub fn status_query(self) -> &'static str {
        match self {
            Flavor::MariaDb => "SHOW SLAVE STATUS",
            Flavor::MySql => "SHOW REPLICA STATUS",
        }
    }

    /// Column names of [`Flavor::status_query`]'s row.
    pub fn status_columns(self) -> StatusColumns {
        match self {
            Flavor::MariaDb => StatusColumns {
                host: "Master_Host",
                port: "Master_Port",
                io_running: "Slave_IO_Running",
                sql_running: "Slave_SQL_Running",
                lag: "Seconds_Behind_Master",
                io_errno: "Last_IO_Errno",
                io_error: "Last_IO_Error",
                sql_errno: "Last_SQL_Errno",
                sql_error: "Last_SQL_Error",
                received: "Gtid_IO_Pos",
            },
            Flavor::MySql => StatusColumns {
                host: "Source_Host",
                port: "Source_Port",
                io_running: "Replica_IO_Running",
                sql_running: "Replica_SQL_Running",
                lag: "Seconds_Behind_Source",
                io_errno: "Last_IO_Errno",
                io_error: "Last_IO_Error",
                sql_errno: "Last_SQL_Errno",
                sql_error: "Last_SQL_Error",
                received: "Retrieved_Gtid_Set",
            },
        }
    }

    /// Read-only on. MySQL: `super_read_only` (which implies `read_only`),
    /// so that no account can write.
    pub fn fence_statements(self) -> Vec<&'static str> {
        match self {
            Flavor::MariaDb => vec!["SET GLOBAL read_only = ON"],
            Flavor::MySql => vec!["SET GLOBAL super_read_only = ON"],
        }
    }

    /// Read-only off (MySQL: `super_read_only` first, which it requires).
    pub fn unfence_statements(self) -> Vec<&'static str> {
        match self {
            Flavor::MariaDb => vec!["SET GLOBAL read_only = OFF"],
            Flavor::MySql => vec![
                "SET GLOBAL super_read_only = OFF",
                "SET GLOBAL read_only = OFF",
            ],
        }
    }

    /// Stops both replication threads.
    pub fn stop_replica(self) -> &'static str {
        match self {
            Flavor::MariaDb => "STOP SLAVE",
            Flavor::MySql => "STOP REPLICA",
        }
    }

    /// Starts both replication threads.
    pub fn start_replica(self) -> &'static str {
        match self {
            Flavor::MariaDb => "START SLAVE",
            Flavor::MySql => "START REPLICA",
        }
    }

    /// Forgets the replication configuration entirely.
    pub fn reset_replica_all(self) -> &'static str {
        match self {
            Flavor::MariaDb => "RESET SLAVE ALL",
            Flavor::MySql => "RESET REPLICA ALL",
        }
    }

    /// Promotion, with read-only off **last**: until that statement is sent
    /// the member is certainly not writable, so a failure at any earlier
    /// point can be undone without ever having two writable members. A
    /// crash at any point leaves it recognisable: stopped (still a replica
    /// of its source), reset (read-only with no source: fenced), writable
    /// with no source (the primary).
    pub fn promote_statements(self) -> Vec<&'static str> {
        let mut v = vec![self.stop_replica(), self.reset_replica_all()];
        v.extend(self.unfence_statements());
        v
    }

    /// Bounds a session on the server to `left` (a step's remaining budget):
    /// statements stop there, lock waits too, even when the client has
    /// given up on them. MariaDB: `max_statement_time` covers every
    /// statement; MySQL's `max_execution_time` covers only `SELECT`, so
    /// `lock_wait_timeout` bounds the rest.
    pub fn bound_session(self, left: Duration) -> String {
        let secs = left.as_secs_f64().max(0.001);
        let whole = left.as_secs_f64().ceil().max(1.0);
        match self {
            Flavor::MariaDb => {
                format!("SET SESSION max_statement_time = {secs:.3}, lock_wait_timeout = {whole}")
            }
            Flavor::MySql => format!(
                "SET SESSION max_execution_time = {}, lock_wait_timeout = {whole}",
                left.as_millis().max(1)
            ),
        }
    }

    /// One attempt at read-only on with a short lock wait (`wait`), so that a
    /// client holding a lock (`LOCK TABLES … WRITE`; on MySQL also an open
    /// transaction) makes the attempt fail fast instead of stalling the
    /// fence: the fence then ends sessions again and retries.
    pub fn fence_attempt(self, wait: Duration) -> Vec<String> {
        match self {
            Flavor::MariaDb => vec![
                format!(
                    "SET SESSION max_statement_time = {:.3}, lock_wait_timeout = 1",
                    wait.as_secs_f64().max(0.001)
                ),
                "SET GLOBAL read_only = ON".to_string(),
            ],
            Flavor::MySql => vec![
                "SET SESSION lock_wait_timeout = 1".to_string(),
                "SET GLOBAL super_read_only = ON".to_string(),
            ],
        }
    }

    /// The query listing accounts that `read_only` does not stop, under the
    /// aliases `grantee`, `privilege`, `version`; `None` where none can exist
    /// (MySQL's `super_read_only` stops every account).
    pub fn bypass_query(self) -> Option<&'static str> {
        match self {
            Flavor::MariaDb => Some(
                "SELECT GRANTEE AS grantee, PRIVILEGE_TYPE AS privilege, @@version AS version \
                 FROM information_schema.USER_PRIVILEGES \
                 WHERE PRIVILEGE_TYPE IN ('READ_ONLY ADMIN', 'SUPER')",
            ),
            Flavor::MySql => None,
        }
    }

    /// Points a replica at `host:port` with GTID auto-positioning. The
    /// second value is the same statement with the password hidden, for
    /// errors and logs.
    pub fn change_source(
        self,
        host: &str,
        port: u16,
        user: &str,
        password: &str,
        mode: GtidMode,
    ) -> (String, String) {
        let build = |pw: &str| match self {
            Flavor::MariaDb => format!(
                "CHANGE MASTER TO MASTER_HOST={}, MASTER_PORT={port}, MASTER_USER={}, \
                 MASTER_PASSWORD={}, MASTER_USE_GTID={}, MASTER_CONNECT_RETRY=1",
                quote(host),
                quote(user),
                pw,
                match mode {
                    GtidMode::SlavePos => "slave_pos",
                    GtidMode::CurrentPos => "current_pos",
                }
            ),
            Flavor::MySql => format!(
                "CHANGE REPLICATION SOURCE TO SOURCE_HOST={}, SOURCE_PORT={port}, \
                 SOURCE_USER={}, SOURCE_PASSWORD={}, SOURCE_AUTO_POSITION=1, \
                 SOURCE_CONNECT_RETRY=1, GET_SOURCE_PUBLIC_KEY=1",
                quote(host),
                quote(user),
                pw
            ),
        };
        (build(&quote(password)), build("'<redacted>'"))
    }

    /// The statement that waits until the server has applied `missing`, for
    /// at most `timeout`.
    /// Returns `None` when there is nothing to wait for.
    pub fn wait_query(self, missing: &Missing, timeout: Duration) -> Option<String> {
        // MariaDB takes fractions of a second; MySQL's documented argument is
        // whole seconds, and it returns as soon as the set is reached anyway.
        let secs = match self {
            Flavor::MariaDb => format!("{:.3}", timeout.as_secs_f64()),
            Flavor::MySql => timeout.as_secs_f64().ceil().max(1.0).to_string(),
        };
        match (self, missing) {
            (Flavor::MariaDb, Missing::MariaDb(ranges)) if !ranges.is_empty() => {
                let mut wanted = crate::gtid::MariaDbGtids::new();
                for r in ranges {
                    wanted.insert(crate::gtid::MariaDbGtid {
                        domain: r.domain,
                        server: r.server,
                        seq: r.upto,
                    });
                }
                let pos = crate::gtid::mariadb::render_list(&wanted.wait_position());
                Some(format!("SELECT MASTER_GTID_WAIT({}, {secs})", quote(&pos)))
            }
            (Flavor::MySql, Missing::MySql(set)) if !set.is_empty() => Some(format!(
                "SELECT WAIT_FOR_EXECUTED_GTID_SET({}, {secs})",
                quote(&set.to_string())
            )),
            _ => None,
        }
    }

    /// Reads the wait function's result: true when the position was reached.
    /// `MASTER_GTID_WAIT` returns 0 or -1 (timeout);
    /// `WAIT_FOR_EXECUTED_GTID_SET` returns 0 or 1 (timeout).
    pub fn wait_reached(self, result: i64) -> bool {
        result == 0
    }

    /// The statement ending connection `id`.
    pub fn kill(self, id: u64) -> String {
        format!("KILL CONNECTION {id}")
    }
}

/// A SQL string literal, escaped for both servers' default `sql_mode`
/// (backslash and quote escaped; NUL and newlines spelled out).
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\0' => out.push_str("\\0"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\u{1a}' => out.push_str("\\Z"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
#[path = "flavor_tests.rs"]
mod tests;
