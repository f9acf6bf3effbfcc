//! The dead-man switch end to end (docs/SAFETY.md, S1): three controller
//! processes on a real etcd and a real MariaDB primary with two replicas,
//! `dead_man = true`. The primary's region controller arms and renews the
//! switch while it holds the primary lease; killed with -9, nobody renews
//! it, and the primary turns itself read-only before its lease is gone
//! from etcd (after which the promotion gate may open). Restarted, the
//! controller reports the firing as a fence and the leader lifts it. A
//! primary that restarts read-only (as its configuration says) while its
//! region keeps its lease is reported the same way and made writable
//! again.

use crate::common;

use std::time::Duration;

use common::orders::{all_up, orders_config};
use common::{Backend, Cluster};
use switchyard_controller::store::Store;
use switchyard_tests::MariaDbTopology;
use switchyard_tests::wait::wait_for;
use tokio::time::Instant;

/// The controllers with `dead_man = true` on `orders`, and the shortest
/// primary lease that allows it (6 s: the switch fires by 4.5 s after the
/// last renewal etcd acknowledged, the lease ends no earlier than 6 s).
async fn armed_cluster(db: &MariaDbTopology) -> anyhow::Result<Cluster> {
    let addresses: Vec<String> = (0..3).map(|i| db.address(i)).collect();
    let etcd = switchyard_tests::Etcd::cluster(1).await?;
    Cluster::start_on(
        etcd,
        Backend::File,
        "primary_lease_ttl = \"6s\"",
        |dir| orders_config(dir, &addresses, "dead_man = true\n"),
        &[],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_whose_controller_died_fences_itself_and_is_lifted_when_it_returns()
-> anyhow::Result<()> {
    let db = MariaDbTopology::start(2)
        .await
        .map_err(|e| e.context("starting the MariaDB topology"))?;
    let mut cl = armed_cluster(&db).await?;
    let result = scenario(&mut cl, &db).await;
    if result.is_err() {
        for c in &cl.controllers {
            eprintln!("--- {} log ---\n{}", c.id(), c.log());
        }
    }
    result
}

/// Waits until ctl-a holds m0's lease and has armed and renewed m0's
/// switch; returns the store and the lease key.
async fn armed(cl: &Cluster, db: &MariaDbTopology) -> anyhow::Result<(Store, String)> {
    let store = Store::connect(&cl.etcd.endpoints(), &cl.cluster).await?;
    let lease_key = store.keys().primary_lease("orders");
    wait_for(
        "ctl-a to hold m0's lease",
        Duration::from_secs(20),
        || async {
            let v: Option<serde_json::Value> = store
                .get_json(&lease_key)
                .await
                .map_err(|e| e.to_string())?;
            match v {
                Some(v) if v["holder"] == "ctl-a" && v["primary"] == "m0" => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await?;
    let armed = "SELECT CAST(expires > NOW(6) AS SIGNED) FROM switchyard.dead_man WHERE id = 1";
    wait_for(
        "m0's switch armed and renewed",
        Duration::from_secs(20),
        || async {
            match db.query_first::<i64>(0, armed).await {
                Ok(Some(1)) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await?;
    Ok((store, lease_key))
}

/// Waits until m0 takes writes again and the history says why.
async fn writable_again(cl: &Cluster, db: &MariaDbTopology, why: &str) -> anyhow::Result<()> {
    wait_for("m0 writable again", Duration::from_secs(60), || async {
        match db.variable(0, "read_only").await {
            Ok(v) if v == "0" => Ok(()),
            other => Err(format!("read_only {other:?}")),
        }
    })
    .await?;
    let history = cl.cli(&["history"]).1;
    anyhow::ensure!(history.contains(why), "history says {why:?}:\n{history}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_restarted_read_only_under_its_regions_lease_is_made_writable_again()
-> anyhow::Result<()> {
    let mut db = MariaDbTopology::start(2)
        .await
        .map_err(|e| e.context("starting the MariaDB topology"))?;
    let cl = armed_cluster(&db).await?;
    let _fleet = all_up(&cl);
    let result = async {
        armed(&cl, &db).await?;
        // Last seen writable, then a restart: it comes back read-only, as
        // its configuration says (boot time is read in whole seconds).
        tokio::time::sleep(Duration::from_millis(1500)).await;
        db.stop(0).await;
        db.restart(0).await?;
        anyhow::ensure!(
            db.variable(0, "read_only").await? == "1",
            "m0 restarts read-only"
        );
        writable_again(&cl, &db, "restarted read-only").await
    }
    .await;
    if result.is_err() {
        for c in &cl.controllers {
            eprintln!("--- {} log ---\n{}", c.id(), c.log());
        }
    }
    result
}

async fn scenario(cl: &mut Cluster, db: &MariaDbTopology) -> anyhow::Result<()> {
    let _fleet = all_up(cl);
    let (store, lease_key) = armed(cl, db).await?;

    // Renewed, it never fires: several deadlines pass with m0 writable.
    for _ in 0..12 {
        anyhow::ensure!(
            db.variable(0, "read_only").await? == "0",
            "m0 turned read-only while its controller renewed the switch"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Nothing of it replicated.
    let copies: Option<i64> = db
        .query_first(
            1,
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'switchyard'",
        )
        .await?;
    anyhow::ensure!(copies == Some(0), "the switch's table reached a replica");

    // Its controller dies: nobody renews the switch or the lease.
    cl.controllers[0].kill();
    let killed = Instant::now();
    let mut read_only_at = None;
    let mut lease_gone_at = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while read_only_at.is_none() || lease_gone_at.is_none() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "within 30 s: read-only at {read_only_at:?}, lease gone at {lease_gone_at:?}"
        );
        if lease_gone_at.is_none()
            && store
                .get_json::<serde_json::Value>(&lease_key)
                .await?
                .is_none()
        {
            lease_gone_at = Some(Instant::now());
        }
        if read_only_at.is_none() && db.variable(0, "read_only").await? == "1" {
            read_only_at = Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (ro, gone) = (read_only_at.unwrap(), lease_gone_at.unwrap());
    eprintln!(
        "after the kill: m0 read-only at {:?}, its lease gone from etcd at {:?}",
        ro.saturating_duration_since(killed),
        gone.saturating_duration_since(killed)
    );
    // By design 1.5 s (P/4) before the lease can end; etcd removes an
    // ended lease up to half a second later still.
    anyhow::ensure!(
        ro < gone,
        "m0 turned read-only {:?} after its lease left etcd",
        ro - gone
    );
    let fired: Option<Option<String>> = db
        .query_first(
            0,
            "SELECT CAST(fired AS CHAR) FROM switchyard.dead_man WHERE id = 1",
        )
        .await?;
    anyhow::ensure!(
        matches!(fired, Some(Some(_))),
        "the switch says it fired: {fired:?}"
    );

    // The controller returns: it reports the firing, the leader lifts it.
    cl.controllers[0].restart().await?;
    writable_again(cl, db, "dead-man switch fired").await?;
    let cleared: Option<Option<String>> = db
        .query_first(
            0,
            "SELECT CAST(fired AS CHAR) FROM switchyard.dead_man WHERE id = 1",
        )
        .await?;
    anyhow::ensure!(
        cleared == Some(None),
        "the lift cleared the firing: {cleared:?}"
    );
    Ok(())
}
