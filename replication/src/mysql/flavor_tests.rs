use std::time::Duration;

use super::*;
use crate::gtid::{Missing, Position};

#[test]
fn mysql8_statements() {
    let f = Flavor::MySql;
    assert_eq!(f.status_query(), "SHOW REPLICA STATUS");
    assert_eq!(f.fence_statements(), ["SET GLOBAL super_read_only = ON"]);
    assert_eq!(
        f.unfence_statements(),
        [
            "SET GLOBAL super_read_only = OFF",
            "SET GLOBAL read_only = OFF"
        ]
    );
    assert_eq!(
        f.promote_statements(),
        [
            "STOP REPLICA",
            "RESET REPLICA ALL",
            "SET GLOBAL super_read_only = OFF",
            "SET GLOBAL read_only = OFF"
        ]
    );
    let (sql, shown) = f.change_source("10.0.0.7", 3306, "repl", "s3cr'et", GtidMode::SlavePos);
    assert_eq!(
        sql,
        "CHANGE REPLICATION SOURCE TO SOURCE_HOST='10.0.0.7', SOURCE_PORT=3306, \
         SOURCE_USER='repl', SOURCE_PASSWORD='s3cr\\'et', SOURCE_AUTO_POSITION=1, \
         SOURCE_CONNECT_RETRY=1, GET_SOURCE_PUBLIC_KEY=1"
    );
    assert!(!shown.contains("s3cr"));
    assert!(f.variables_query().contains("@@gtid_executed"));
    assert!(f.variables_query().contains("@@super_read_only"));
    assert!(f.variables_query().contains("@@server_uuid"));
}

#[test]
fn mariadb_statements() {
    let f = Flavor::MariaDb;
    assert_eq!(f.status_query(), "SHOW SLAVE STATUS");
    assert_eq!(f.fence_statements(), ["SET GLOBAL read_only = ON"]);
    assert_eq!(
        f.promote_statements(),
        [
            "STOP SLAVE",
            "RESET SLAVE ALL",
            "SET GLOBAL read_only = OFF"
        ]
    );
    let (sql, _) = f.change_source("db-2", 3307, "repl", "pw", GtidMode::CurrentPos);
    assert_eq!(
        sql,
        "CHANGE MASTER TO MASTER_HOST='db-2', MASTER_PORT=3307, MASTER_USER='repl', \
         MASTER_PASSWORD='pw', MASTER_USE_GTID=current_pos, MASTER_CONNECT_RETRY=1"
    );
    let (sql, _) = f.change_source("db-2", 3307, "repl", "pw", GtidMode::SlavePos);
    assert!(sql.contains("MASTER_USE_GTID=slave_pos"));
}

#[test]
fn wait_functions_and_their_results() {
    let uuid = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
    let m = Position::MySql(format!("{uuid}:1-100").parse().unwrap())
        .missing_from(&Position::MySql(format!("{uuid}:1-90").parse().unwrap()));
    assert_eq!(
        Flavor::MySql.wait_query(&m, Duration::from_millis(1500)),
        Some(format!(
            "SELECT WAIT_FOR_EXECUTED_GTID_SET('{uuid}:91-100', 2)"
        ))
    );
    // WAIT_FOR_EXECUTED_GTID_SET: 0 reached, 1 timed out.
    assert!(Flavor::MySql.wait_reached(0));
    assert!(!Flavor::MySql.wait_reached(1));

    let m = Position::MariaDb("0-1-100,0-2-120,1-1-7".parse().unwrap())
        .missing_from(&Position::MariaDb("0-1-90".parse().unwrap()));
    assert_eq!(
        Flavor::MariaDb.wait_query(&m, Duration::from_secs(2)),
        Some("SELECT MASTER_GTID_WAIT('0-2-120,1-1-7', 2.000)".to_string())
    );
    // MASTER_GTID_WAIT: 0 reached, -1 timed out.
    assert!(!Flavor::MariaDb.wait_reached(-1));
    assert_eq!(
        Flavor::MariaDb.wait_query(&Missing::MariaDb(vec![]), Duration::from_secs(1)),
        None
    );
    // A flavor never waits on the other's positions.
    assert_eq!(Flavor::MySql.wait_query(&m, Duration::from_secs(1)), None);
}

#[test]
fn literals_are_escaped() {
    assert_eq!(quote("plain"), "'plain'");
    assert_eq!(quote("o'brien"), "'o\\'brien'");
    assert_eq!(quote("back\\slash"), "'back\\\\slash'");
    assert_eq!(quote("a\nb\0"), "'a\\nb\\0'");
}

#[test]
fn sessions_and_fence_attempts_are_bounded_on_the_server() {
    assert_eq!(
        Flavor::MariaDb.bound_session(Duration::from_millis(1500)),
        "SET SESSION max_statement_time = 1.500, lock_wait_timeout = 2"
    );
    assert_eq!(
        Flavor::MySql.bound_session(Duration::from_millis(1500)),
        "SET SESSION max_execution_time = 1500, lock_wait_timeout = 2"
    );
    assert_eq!(
        Flavor::MariaDb.fence_attempt(Duration::from_millis(250)),
        [
            "SET SESSION max_statement_time = 0.250, lock_wait_timeout = 1",
            "SET GLOBAL read_only = ON"
        ]
    );
    assert_eq!(
        Flavor::MySql.fence_attempt(Duration::from_millis(250)),
        [
            "SET SESSION lock_wait_timeout = 1",
            "SET GLOBAL super_read_only = ON"
        ]
    );
    assert!(
        Flavor::MariaDb
            .bypass_query()
            .unwrap()
            .contains("READ_ONLY ADMIN")
    );
    assert_eq!(Flavor::MySql.bypass_query(), None);
}
