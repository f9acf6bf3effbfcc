//! Self-tests of the MariaDB fixture: real GTID replication from a primary to
//! two replicas, and crash/restart of members.

use std::time::Duration;

use switchyard_tests::MariaDbTopology;
use switchyard_tests::wait::wait_for;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_written_on_the_primary_is_on_both_replicas_at_the_same_gtid() -> anyhow::Result<()> {
    let topo = MariaDbTopology::start(2).await?;
    assert_eq!(topo.len(), 3);

    // Distinct server ids, GTID strict mode and log_slave_updates everywhere.
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(topo.variable(i, "server_id").await?);
        assert_eq!(topo.variable(i, "gtid_strict_mode").await?, "1");
        assert_eq!(topo.variable(i, "log_slave_updates").await?, "1");
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "server ids must differ");
    assert_eq!(topo.variable(0, "read_only").await?, "0");
    assert_eq!(topo.variable(1, "read_only").await?, "1");

    topo.exec(0, "CREATE DATABASE app").await?;
    topo.exec(0, "CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(20))")
        .await?;
    topo.exec(0, "INSERT INTO app.t VALUES (1, 'hello')")
        .await?;
    let primary_pos = topo.variable(0, "gtid_binlog_pos").await?;
    assert!(!primary_pos.is_empty(), "the primary wrote GTIDs");

    for r in [1, 2] {
        // MASTER_GTID_WAIT returns 0 once the position is applied, -1 on timeout.
        let waited: Option<i64> = topo
            .query_first(r, &format!("SELECT MASTER_GTID_WAIT('{primary_pos}', 30)"))
            .await?;
        assert_eq!(waited, Some(0), "replica {r} did not reach {primary_pos}");
        let v: Option<String> = topo
            .query_first(r, "SELECT v FROM app.t WHERE id = 1")
            .await?;
        assert_eq!(v.as_deref(), Some("hello"));
        assert_eq!(topo.variable(r, "gtid_current_pos").await?, primary_pos);
        assert_eq!(topo.variable(r, "gtid_slave_pos").await?, primary_pos);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_members_restart_read_only_and_replicas_resume() -> anyhow::Result<()> {
    let mut topo = MariaDbTopology::start(1).await?;
    topo.exec(0, "CREATE TABLE mysql.fixture_probe (id INT PRIMARY KEY)")
        .await?;

    // A replica killed with -9 resumes replication by itself on restart.
    topo.kill9(1);
    assert!(!topo.is_running(1));
    topo.exec(0, "INSERT INTO mysql.fixture_probe VALUES (1)")
        .await?;
    topo.restart(1).await?;
    topo.wait_replicating(1).await?;
    let pos = topo.variable(0, "gtid_binlog_pos").await?;
    wait_for("the replica to catch up", Duration::from_secs(30), || {
        let topo = &topo;
        let pos = pos.clone();
        async move {
            let cur = topo
                .variable(1, "gtid_slave_pos")
                .await
                .map_err(|e| e.to_string())?;
            if cur == pos {
                Ok(())
            } else {
                Err(format!("at {cur}, want {pos}"))
            }
        }
    })
    .await?;

    // A primary killed with -9 comes back read-only: nothing writes to it by accident.
    topo.kill9(0);
    topo.restart(0).await?;
    assert_eq!(topo.variable(0, "read_only").await?, "1");
    let n: Option<i64> = topo
        .query_first(0, "SELECT COUNT(*) FROM mysql.fixture_probe")
        .await?;
    assert_eq!(n, Some(1), "the acknowledged row survived the crash");

    // A clean stop and start works too.
    topo.stop(1).await;
    assert!(!topo.is_running(1));
    topo.restart(1).await?;
    topo.wait_replicating(1).await?;
    Ok(())
}
