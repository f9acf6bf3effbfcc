//! Replies as the servers give them: MySQL 8's `SHOW REPLICA STATUS`
//! fields as its manual documents them (no MySQL server runs here), and
//! MariaDB 10.11's `SHOW SLAVE STATUS` as the real servers in the
//! integration tests return it.

use std::time::Duration;

use super::*;
use crate::spec::Credentials;

const UUID_SRC: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
const UUID_ME: &str = "4b8e0f12-0000-11e1-9e33-c80aa9429562";

fn cols(pairs: &[(&str, Option<&str>)]) -> Columns {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
        .collect()
}

fn specs() -> Vec<MemberSpec> {
    vec![
        MemberSpec::new(
            "src",
            "east",
            "source.example:3306",
            Credentials::new("u", "p"),
        ),
        MemberSpec::new("me", "west", "10.0.0.2:3306", Credentials::new("u", "p")),
    ]
}

/// Abridged from the MySQL 8.0 manual's `SHOW REPLICA STATUS\G` example.
fn mysql_replica_status() -> Columns {
    let retrieved = format!("{UUID_SRC}:1-5");
    let executed = format!("{UUID_SRC}:1-5,\n{UUID_ME}:1-2");
    cols(&[
        ("Replica_IO_State", Some("Waiting for source to send event")),
        ("Source_Host", Some("source.example")),
        ("Source_User", Some("repl")),
        ("Source_Port", Some("3306")),
        ("Connect_Retry", Some("60")),
        ("Replica_IO_Running", Some("Yes")),
        ("Replica_SQL_Running", Some("Yes")),
        ("Last_Errno", Some("0")),
        ("Last_Error", Some("")),
        ("Seconds_Behind_Source", Some("3")),
        ("Last_IO_Errno", Some("0")),
        ("Last_IO_Error", Some("")),
        ("Last_SQL_Errno", Some("0")),
        ("Last_SQL_Error", Some("")),
        ("Source_UUID", Some(UUID_SRC)),
        ("Retrieved_Gtid_Set", Some(retrieved.as_str())),
        ("Executed_Gtid_Set", Some(executed.as_str())),
        ("Auto_Position", Some("1")),
    ])
}

#[test]
fn reads_mysql8_replica_status() {
    let s = parse_replica_status(Flavor::MySql, &mysql_replica_status())
        .unwrap()
        .unwrap();
    assert_eq!((s.host.as_str(), s.port), ("source.example", 3306));
    assert!(s.io_running && s.sql_running);
    assert_eq!(s.lag, Some(Duration::from_secs(3)));
    assert_eq!(s.io_error, None);
    assert_eq!(
        s.received,
        Some(Position::MySql(format!("{UUID_SRC}:1-5").parse().unwrap()))
    );
}

#[test]
fn reads_mysql8_variables_and_builds_the_member() {
    let vars = cols(&[
        ("origin", Some(UUID_ME)),
        ("read_only", Some("1")),
        ("super_read_only", Some("1")),
        ("executed", Some(&format!("{UUID_SRC}:1-3,\n{UUID_ME}:1-2"))),
        ("slave_pos", Some("")),
    ]);
    let v = parse_variables(Flavor::MySql, &vars).unwrap();
    assert!(v.read_only);
    let status = parse_replica_status(Flavor::MySql, &mysql_replica_status()).unwrap();
    let specs = specs();
    let m = member_state(&specs[1], &specs, v, status);
    assert_eq!(m.role, Role::Replica);
    assert_eq!(m.source.as_deref(), Some("src"));
    assert_eq!(m.origin.as_deref(), Some(UUID_ME));
    // Received = executed ∪ retrieved: 1-3 applied, 4-5 still in the relay log.
    assert_eq!(
        m.received.unwrap().to_string(),
        format!("{UUID_SRC}:1-5,{UUID_ME}:1-2")
    );
}

#[test]
fn reads_a_broken_mysql8_replica() {
    let mut row = mysql_replica_status();
    row.insert("Replica_SQL_Running".into(), Some("No".into()));
    row.insert("Last_SQL_Errno".into(), Some("1062".into()));
    row.insert(
        "Last_SQL_Error".into(),
        Some("Could not execute Write_rows event on table t; Duplicate entry '1'".into()),
    );
    row.insert("Seconds_Behind_Source".into(), None);
    let s = parse_replica_status(Flavor::MySql, &row).unwrap().unwrap();
    assert!(!s.sql_running);
    assert_eq!(s.lag, None);
    assert!(
        s.sql_error
            .unwrap()
            .starts_with("error 1062: Could not execute")
    );
}

#[test]
fn reads_mariadb_slave_status_while_the_primary_is_down() {
    let row = cols(&[
        (
            "Slave_IO_State",
            Some("Reconnecting after a failed master event read"),
        ),
        ("Master_Host", Some("10.0.0.2")),
        ("Master_Port", Some("3306")),
        ("Slave_IO_Running", Some("Connecting")),
        ("Slave_SQL_Running", Some("Yes")),
        ("Seconds_Behind_Master", None),
        ("Last_IO_Errno", Some("2003")),
        (
            "Last_IO_Error",
            Some("error reconnecting to master 'repl@10.0.0.2:3306' - retry-time: 1"),
        ),
        ("Last_SQL_Errno", Some("0")),
        ("Last_SQL_Error", Some("")),
        ("Using_Gtid", Some("Slave_Pos")),
        ("Gtid_IO_Pos", Some("0-1001-120")),
    ]);
    let s = parse_replica_status(Flavor::MariaDb, &row)
        .unwrap()
        .unwrap();
    assert!(!s.io_running && s.sql_running);
    assert_eq!(s.io_state, "Connecting");
    assert!(s.io_error.unwrap().starts_with("error 2003"));
    let vars = cols(&[
        ("origin", Some("1003")),
        ("read_only", Some("1")),
        ("super_read_only", Some("0")),
        ("executed", Some("0-1001-118")),
        ("slave_pos", Some("0-1001-118")),
    ]);
    let v = parse_variables(Flavor::MariaDb, &vars).unwrap();
    let specs = specs();
    let m = member_state(
        &specs[0],
        &specs,
        v,
        Some(
            parse_replica_status(Flavor::MariaDb, &row)
                .unwrap()
                .unwrap(),
        ),
    );
    assert_eq!(m.role, Role::Replica);
    assert_eq!(
        m.source.as_deref(),
        Some("me"),
        "matched by replication address"
    );
    assert_eq!(m.position.unwrap().to_string(), "0-1001-118");
    assert_eq!(m.received.unwrap().to_string(), "0-1001-120");
}

#[test]
fn roles() {
    let specs = specs();
    let vars = |ro: &str| {
        parse_variables(
            Flavor::MariaDb,
            &cols(&[
                ("origin", Some("1")),
                ("read_only", Some(ro)),
                ("executed", Some("")),
                ("slave_pos", None),
            ]),
        )
        .unwrap()
    };
    assert_eq!(
        member_state(&specs[0], &specs, vars("0"), None).role,
        Role::Primary
    );
    assert_eq!(
        member_state(&specs[0], &specs, vars("1"), None).role,
        Role::Fenced
    );
    let stopped = ReplicaStatus {
        host: "h".into(),
        port: 1,
        io_running: false,
        io_state: "No".into(),
        sql_running: false,
        lag: None,
        io_error: None,
        sql_error: None,
        received: None,
    };
    // A stopped source on a read-only member: a replica whose replication is stopped.
    let m = member_state(&specs[0], &specs, vars("1"), Some(stopped.clone()));
    assert_eq!(m.role, Role::Replica);
    assert_eq!(
        m.source.as_deref(),
        Some("h:1"),
        "unknown sources keep their address"
    );
    // Writable with a stopped source: a promotion cut short before RESET.
    assert_eq!(
        member_state(&specs[0], &specs, vars("0"), Some(stopped)).role,
        Role::Primary
    );
}

#[test]
fn no_source_configured_means_no_status() {
    let row = cols(&[("Master_Host", Some("")), ("Master_Port", Some("0"))]);
    assert_eq!(parse_replica_status(Flavor::MariaDb, &row).unwrap(), None);
}
