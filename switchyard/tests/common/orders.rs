//! Database `orders` (a real MariaDB primary and replicas) under a test
//! cluster: its config, the targets probes report on, and its state.

use std::time::Duration;

use switchyard_controller::store::Store;
use switchyard_tests::MariaDbTopology;
use switchyard_tests::mariadb::{ADMIN_PASSWORD, ADMIN_USER, REPL_PASSWORD, REPL_USER};
use switchyard_tests::reports::ReportFleet;
use switchyard_tests::wait::wait_for;

use super::{Backend, Cluster, REGIONS};

/// The probe target of member `m<member>`.
pub fn db_target(member: usize) -> String {
    format!("db:orders/m{member}")
}

/// The database's state as the store holds it.
pub async fn db_state(store: &Store) -> Result<serde_json::Value, String> {
    store
        .get_json(&store.keys().database("orders"))
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "no state yet".to_string())
}

/// Three controllers on a fresh etcd, with `db` as database `orders`.
pub async fn cluster_for(db: &MariaDbTopology) -> anyhow::Result<Cluster> {
    cluster_with(db, Backend::File, "").await
}

/// The same with `backend`, and `extra` TOML for the database (e.g. its
/// writer record).
pub async fn cluster_with(
    db: &MariaDbTopology,
    backend: Backend,
    extra: &str,
) -> anyhow::Result<Cluster> {
    let addresses: Vec<String> = (0..3).map(|i| db.address(i)).collect();
    let extra = extra.to_string();
    Cluster::start_extra(1, backend, |dir| orders_config(dir, &addresses, &extra))
        .await
        .map_err(|e| e.context("starting the controllers"))
}

/// The `[credentials.*]` and `[[databases]]` tables of `orders` on the
/// members at `addresses` (one per region), with `extra` TOML for the
/// database; the passwords are written to `dir`.
pub fn orders_config(dir: &std::path::Path, addresses: &[String], extra: &str) -> String {
    std::fs::write(dir.join("admin.secret"), ADMIN_PASSWORD).expect("secret");
    std::fs::write(dir.join("repl.secret"), REPL_PASSWORD).expect("secret");
    let mut t = format!(
        "\n[credentials.admin]\nuser = \"{ADMIN_USER}\"\npassword = {{ file = \"{}\" }}\n\
         \n[credentials.repl]\nuser = \"{REPL_USER}\"\npassword = {{ file = \"{}\" }}\n\
         \n[[databases]]\nname = \"orders\"\nkind = \"mariadb\"\nmax_lag = \"10s\"\n\
         credentials = \"admin\"\nreplication_credentials = \"repl\"\n{extra}",
        dir.join("admin.secret").display(),
        dir.join("repl.secret").display()
    );
    for (i, addr) in addresses.iter().enumerate() {
        t.push_str(&format!(
            "\n[[databases.members]]\nid = \"m{i}\"\nregion = \"{}\"\naddress = \"{addr}\"\n",
            REGIONS[i]
        ));
    }
    t
}

/// Fake probes seeing every endpoint and member up, from every region.
pub fn all_up(cl: &Cluster) -> ReportFleet {
    let mut outcomes = std::collections::BTreeMap::new();
    for r in REGIONS {
        for v in REGIONS {
            outcomes.insert((super::target(r), v.to_string()), true);
        }
    }
    for m in 0..3 {
        for v in REGIONS {
            outcomes.insert((db_target(m), v.to_string()), true);
        }
    }
    ReportFleet::start(cl.urls(), outcomes, Duration::from_millis(200))
}

/// Waits for the leader to record `m0`, the topology's first primary.
pub async fn wait_primary_recorded(store: &Store) -> anyhow::Result<()> {
    wait_for(
        "the primary to be discovered",
        Duration::from_secs(20),
        || async {
            let v = db_state(store).await?;
            if v["primary"] == "m0" {
                Ok(())
            } else {
                Err(format!("{v}"))
            }
        },
    )
    .await
}

/// Waits for `holder` to hold the primary lease of `primary`.
pub async fn wait_lease(store: &Store, holder: &str, primary: &str) -> anyhow::Result<()> {
    let key = store.keys().primary_lease("orders");
    wait_for(
        &format!("{holder} to hold the primary lease"),
        Duration::from_secs(20),
        || async {
            let v: Option<serde_json::Value> =
                store.get_json(&key).await.map_err(|e| e.to_string())?;
            match v {
                Some(v) if v["holder"] == holder && v["primary"] == primary => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await
}

/// Waits for a failover away from `m0` to be recorded; the new state.
pub async fn wait_failed_over(store: &Store) -> anyhow::Result<serde_json::Value> {
    wait_for(
        "the failover to be recorded",
        Duration::from_secs(60),
        || async {
            let v = db_state(store).await?;
            if v["primary"] != "m0" {
                Ok(v)
            } else {
                Err(format!("{v}"))
            }
        },
    )
    .await
}

/// The one failover the journal holds, asserted done.
pub async fn the_one_failover(cl: &Cluster) -> anyhow::Result<serde_json::Value> {
    let journal = cl.journal().await?;
    let failovers: Vec<_> = journal
        .iter()
        .filter(|e| e["action"]["kind"] == "failover")
        .collect();
    assert_eq!(failovers.len(), 1, "{journal:#?}");
    assert_eq!(failovers[0]["status"], "done", "{journal:#?}");
    Ok(failovers[0].clone())
}
