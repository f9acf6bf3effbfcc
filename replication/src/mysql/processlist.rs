//! Which connections fencing ends, pure: every client session except our
//! own, the server's own threads and the replication streams.
//!
//! Replicas' `Binlog Dump` threads are kept on purpose: a planned switchover
//! waits for the replicas to receive the fenced primary's last transactions,
//! and cutting them would make each replica wait `MASTER_CONNECT_RETRY`
//! before reconnecting.

use super::status::Columns;

/// `Command` values of threads that are not client sessions.
const KEEP_COMMANDS: &[&str] = &[
    "Binlog Dump",
    "Binlog Dump GTID",
    "Daemon",
    "Slave_IO",
    "Slave_SQL",
    "Slave_worker",
    "Connect",
    "Killed",
];

/// Users of the server's internal threads.
const KEEP_USERS: &[&str] = &["system user", "event_scheduler", "unauthenticated user"];

/// The ids of `SHOW PROCESSLIST` rows to kill, given our own connection id.
pub fn connections_to_kill(rows: &[Columns], own_id: u64) -> Vec<u64> {
    rows.iter()
        .filter_map(|r| {
            let id: u64 = r.get("Id")?.as_deref()?.parse().ok()?;
            let user = r.get("User").and_then(|v| v.as_deref()).unwrap_or("");
            let command = r.get("Command").and_then(|v| v.as_deref()).unwrap_or("");
            let keep =
                id == own_id || KEEP_USERS.contains(&user) || KEEP_COMMANDS.contains(&command);
            (!keep).then_some(id)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: u64, user: &str, command: &str) -> Columns {
        [
            ("Id", Some(id.to_string())),
            ("User", Some(user.to_string())),
            ("Host", Some("127.0.0.1:5555".to_string())),
            ("db", None),
            ("Command", Some(command.to_string())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    #[test]
    fn kills_client_sessions_only() {
        // Shapes from MariaDB 10.11's and MySQL 8.0's SHOW PROCESSLIST.
        let rows = vec![
            row(1, "system user", "Daemon"),
            row(5, "repl", "Binlog Dump"),
            row(6, "repl", "Binlog Dump GTID"),
            row(7, "event_scheduler", "Daemon"),
            row(8, "app", "Query"),
            row(9, "app", "Sleep"),
            row(10, "switchyard", "Query"),
            row(11, "switchyard", "Sleep"),
            row(12, "system user", "Slave_SQL"),
        ];
        assert_eq!(connections_to_kill(&rows, 10), vec![8, 9, 11]);
    }

    #[test]
    fn rows_without_an_id_are_skipped() {
        let mut r = row(3, "app", "Query");
        r.insert("Id".into(), None);
        assert!(connections_to_kill(&[r], 1).is_empty());
    }
}
