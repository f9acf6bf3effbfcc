//! A database record that no longer decodes (a hand edit, a newer
//! version's), end to end on a real etcd and real MariaDB: three controller
//! processes and stand-in probes. The leader notices it mid-term; a new
//! leader takes over past it; nobody writes over it; its database is not
//! failed over while it cannot be read, even with its primary dead; and
//! once it is mended the failover goes through, once. The simulator's
//! world tests hold the same rules under faults; this holds them on the
//! real store and the real binary.

use crate::common;

use std::time::Duration;

use common::orders::{
    all_up, cluster_for, db_target, the_one_failover, wait_failed_over, wait_lease,
    wait_primary_recorded,
};
use common::{Cluster, REGIONS};
use switchyard_controller::store::Store;
use switchyard_controller::store::kv::KeyValue;
use switchyard_tests::MariaDbTopology;
use switchyard_tests::wait::wait_for;

/// The record as a person might leave it: JSON, but an epoch that is no
/// number.
const HAND_EDIT: &str = r#"{"primary": "m0", "epoch": "one"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_record_is_kept_and_stops_only_its_failover_until_it_is_mended()
-> anyhow::Result<()> {
    let mut db = MariaDbTopology::start(2)
        .await
        .map_err(|e| e.context("starting the MariaDB topology"))?;
    let mut cl = cluster_for(&db).await?;
    let result = unreadable_record(&mut cl, &mut db).await;
    if result.is_err() {
        for c in &cl.controllers {
            eprintln!("--- {} log ---\n{}", c.id(), c.log());
        }
    }
    result
}

async fn unreadable_record(cl: &mut Cluster, db: &mut MariaDbTopology) -> anyhow::Result<()> {
    let fleet = all_up(cl);
    let first = cl.wait_leader(None, Duration::from_secs(20)).await?;
    let store = Store::connect(&cl.etcd.endpoints(), &cl.cluster).await?;
    wait_primary_recorded(&store).await?;
    // Its region's controller holds its primary lease: the vouch a
    // failover's gate needs once the lease lapses.
    wait_lease(&store, "ctl-a", "m0").await?;
    let lease = store.keys().primary_lease("orders");
    let key = store.keys().database("orders");
    let good = read(&store, &key)
        .await?
        .expect("the recorded primary")
        .value;

    // Mid-term: the leader's watch sees the record change and stop
    // decoding; `status` names it instead of failing.
    put(&store, &key, HAND_EDIT).await?;
    wait_undecodable(cl, first).await?;
    wait_for(
        "status to name the unreadable record",
        Duration::from_secs(20),
        || async {
            let (code, out, err) = cl.cli(&["status", "--output", "json"]);
            let v: serde_json::Value =
                serde_json::from_str(&out).map_err(|e| format!("{e}: {code} {out} {err}"))?;
            match v["unreadable_databases"].as_array() {
                Some(u) if u.iter().any(|d| d[0] == "orders") => Ok(()),
                _ => Err(v["unreadable_databases"].to_string()),
            }
        },
    )
    .await?;

    // The primary dies and every region sees it. Nothing is failed over
    // while the record cannot be read, and the record stays as it was.
    // Its region's controller cannot tell which primary the record names
    // either, so it changes nothing: the very lease it held stays renewed
    // (so the gate would stay shut too) past the time it gives a dead
    // primary's lease up (its detection, two 5 s checks, and the 4 s TTL).
    let held = read(&store, &lease).await?.expect("ctl-a's lease").lease;
    db.kill9(0);
    fleet.set_all(&db_target(0), &REGIONS, false);
    tokio::time::sleep(Duration::from_secs(20)).await;
    no_failover_and_untouched(cl, &store, &key).await?;
    let now = read(&store, &lease).await?;
    assert_eq!(now.as_ref().map(|kv| kv.lease), Some(held), "{now:?}");

    // A new leader takes over past it: its take-over reads the records and
    // goes on leading (an unreadable record once failed that read for
    // ever), writes nothing over it and fails nothing over either. When
    // the leader killed was ctl-a, the lease goes with it and the gate
    // would open: the leader's own refusal is all that stands.
    let was_holder = cl.controllers[first].id() == "ctl-a";
    eprintln!(
        "killing the leader {} (the lease's holder: {was_holder})",
        cl.controllers[first].id()
    );
    cl.controllers[first].kill();
    let next = cl.wait_leader(Some(first), Duration::from_secs(30)).await?;
    wait_undecodable(cl, next).await?;
    if was_holder {
        wait_for(
            "the killed holder's lease to lapse",
            Duration::from_secs(30),
            || async {
                match store.get(&lease).await.map_err(|e| e.to_string())? {
                    None => Ok(()),
                    Some(kv) => Err(String::from_utf8_lossy(&kv.value).into_owned()),
                }
            },
        )
        .await?;
    }
    tokio::time::sleep(Duration::from_secs(8)).await;
    no_failover_and_untouched(cl, &store, &key).await?;

    // Mended (the record as it was): ctl-a (if alive) gives the dead
    // primary's lease up, the leader reads the record again and fails the
    // dead primary over, once, at the next epoch.
    put(&store, &key, std::str::from_utf8(&good)?).await?;
    let state = wait_failed_over(&store).await?;
    assert_eq!(state["epoch"], 2, "{state}");
    the_one_failover(cl).await?;
    Ok(())
}

/// No failover journaled, and the record still the hand edit.
async fn no_failover_and_untouched(cl: &Cluster, store: &Store, key: &str) -> anyhow::Result<()> {
    let journal = cl.journal().await?;
    assert!(
        !journal.iter().any(|e| e["action"]["kind"] == "failover"),
        "{journal:#?}"
    );
    let raw = read(store, key)
        .await?
        .map(|kv| kv.value)
        .unwrap_or_default();
    assert_eq!(String::from_utf8_lossy(&raw), HAND_EDIT);
    Ok(())
}

/// Waits for controller `i`, leading, to count one undecodable record.
async fn wait_undecodable(cl: &Cluster, i: usize) -> anyhow::Result<()> {
    wait_for(
        "the leader to count the undecodable record",
        Duration::from_secs(30),
        || async {
            match cl.controllers[i]
                .metric("switchyard_database_records_undecodable")
                .await
            {
                Ok(Some(1.0)) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await
}

/// One read of `key`, retried while it fails: the test's own connection
/// sits idle through the sleeps above, and once in a fresh-clone run the
/// next call on it failed with a retryable "etcd unavailable … broken
/// pipe" (a connection closed while idle), as any client's may.
async fn read(store: &Store, key: &str) -> anyhow::Result<Option<KeyValue>> {
    wait_for(&format!("a read of {key}"), Duration::from_secs(15), || {
        store.get(key)
    })
    .await
}

/// One put of `value` at `key` (a person's hand edit), retried as [`read`].
async fn put(store: &Store, key: &str, value: &str) -> anyhow::Result<()> {
    wait_for(&format!("a put at {key}"), Duration::from_secs(15), || {
        store.put_control(key.to_string(), value)
    })
    .await
}
