//! An errant transaction written directly on a replica is reported, and
//! that replica is not promoted while a clean one exists.

use switchyard_replication::{Promotion, ReplicaSet};

use crate::common::Lab;
use crate::common::{FREE, req};

#[tokio::test]
async fn errant_replica_is_reported_and_passed_over() -> anyhow::Result<()> {
    // db2 is preferred: only the errant transaction keeps it from winning.
    let mut lab = Lab::start_with(|specs| specs[2].promotion = Promotion::Prefer).await?;
    // The admin ignores read_only on MariaDB: a write "by hand" on db2.
    lab.topo
        .exec(2, "INSERT INTO app.t (id, note) VALUES (9999, 'errant')")
        .await?;

    let snap = lab.observe().await;
    let db2 = snap.member("db2").unwrap();
    assert_eq!(db2.errant.len(), 1, "{:?}", db2.errant);
    assert!(db2.errant[0].starts_with("0-1003-"), "{:?}", db2.errant);
    assert!(snap.member("db1").unwrap().errant.is_empty());

    lab.topo.kill9(0);
    let report = lab
        .set
        .failover(&req(None, false, Some("db0")), &FREE)
        .await?;
    assert_eq!(report.new_primary, "db1");
    assert_eq!(report.errant, vec![("db2".to_string(), db2.errant.clone())]);
    // db2 cannot follow db1 with a transaction db1 lacks: left as it is.
    let (who, why) = &report.not_repointed[0];
    assert_eq!(who, "db2");
    assert!(why.contains("not re-joined"), "{why}");
    assert!(!lab.ids_on(1).await?.contains(&9999));
    Ok(())
}
