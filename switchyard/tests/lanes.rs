//! Independent lanes, with real processes: an operator's switchover stuck
//! in its catch-up (the target's SQL thread stopped, so it cannot reach the
//! old primary's position for the 30 s the switchover allows) holds only
//! its database's lane. A region whose endpoint fails meanwhile is
//! evacuated at once, while the switchover intent is still pending. When
//! the leader ran its actions one after another, the evacuation waited for
//! the whole catch-up.

use crate::common;

use std::time::{Duration, Instant};

use common::orders::{all_up, cluster_for, db_state};
use common::{REGIONS, target};
use switchyard_controller::store::Store;
use switchyard_tests::MariaDbTopology;
use switchyard_tests::wait::wait_for;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_switchover_does_not_hold_up_an_evacuation() -> anyhow::Result<()> {
    let db = MariaDbTopology::start(2)
        .await
        .map_err(|e| e.context("starting the MariaDB topology"))?;
    let cl = cluster_for(&db).await?;
    let fleet = all_up(&cl);
    let store = Store::connect(&cl.etcd.endpoints(), &cl.cluster).await?;
    wait_for("orders' primary known", Duration::from_secs(30), || async {
        let s = db_state(&store).await?;
        (s["primary"] == "m0").then_some(()).ok_or(format!("{s}"))
    })
    .await?;

    // m1 stops applying what it receives, and falls behind.
    db.exec(1, "STOP SLAVE SQL_THREAD").await?;
    db.exec(
        0,
        "CREATE DATABASE IF NOT EXISTS lanes; CREATE TABLE IF NOT EXISTS lanes.t (id INT PRIMARY KEY); INSERT INTO lanes.t VALUES (1)",
    )
    .await?;
    let mut cli = cl
        .command()
        .args([
            "switchover",
            "--reason",
            "lanes test",
            "--database",
            "orders",
            "--to",
            "m1",
            "--wait",
            "60",
        ])
        .arg("--config")
        .arg(&cl.config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let result = async {
        // The switchover is under way, waiting for m1 to catch up.
        wait_for(
            "the switchover under way",
            Duration::from_secs(30),
            || async {
                let journal = cl.journal().await.map_err(|e| e.to_string())?;
                let stuck = journal
                    .iter()
                    .any(|e| e["action"]["kind"] == "switchover" && e["status"] == "pending");
                stuck.then_some(()).ok_or_else(|| format!("{journal:?}"))
            },
        )
        .await?;
        let cut = Instant::now();
        fleet.set_all(&target("c"), &REGIONS, false);
        wait_for("region c evacuated", Duration::from_secs(15), || async {
            match cl.weights().get("c") {
                Some(0) => Ok(()),
                other => Err(format!("c weighs {other:?}")),
            }
        })
        .await?;
        let took = cut.elapsed();
        eprintln!("region c evacuated {took:?} after its endpoint failed, during the switchover");
        let journal = cl.journal().await?;
        assert!(
            journal
                .iter()
                .any(|e| e["action"]["kind"] == "switchover" && e["status"] == "pending"),
            "the evacuation ran while the switchover was still running: {journal:#?}"
        );
        anyhow::Ok(())
    }
    .await;
    let _ = cli.kill();
    let _ = cli.wait();
    if result.is_err() {
        for c in &cl.controllers {
            eprintln!("--- {} log ---\n{}", c.id(), c.log());
        }
    }
    result
}
