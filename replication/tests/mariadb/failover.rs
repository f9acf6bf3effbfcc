//! kill -9 of the primary: the most advanced replica is promoted, the other
//! follows it, and the old primary comes back read-only with its extra
//! transactions listed, never re-joined.

use switchyard_replication::{Operation, ReplError, ReplicaSet, Role};

use crate::common::{FREE, Lab, app_insert, req};

#[tokio::test]
async fn kill9_failover_promotes_the_most_advanced_replica() -> anyhow::Result<()> {
    let mut lab = Lab::start().await?;
    // db2 stops receiving; db1 gets 5 more transactions; then only db0 gets 3.
    lab.topo.exec(2, "STOP SLAVE IO_THREAD").await?;
    lab.insert_admin(0, 1, 5).await?;
    lab.wait_caught_up(&[1]).await?;
    lab.topo.exec(1, "STOP SLAVE IO_THREAD").await?;
    lab.insert_admin(0, 100, 3).await?;
    lab.topo.kill9(0);
    for i in [1, 2] {
        lab.topo.exec(i, "START SLAVE IO_THREAD").await?;
    }

    let report = lab
        .set
        .failover(&req(None, false, Some("db0")), &FREE)
        .await?;
    assert_eq!(report.operation, Operation::Failover);
    assert_eq!(report.old_primary.as_deref(), Some("db0"));
    assert_eq!(report.new_primary, "db1");
    assert!(report.changed);
    assert!(
        report.reasons.iter().any(|r| r.contains("most advanced")),
        "{:?}",
        report.reasons
    );
    assert_eq!(report.lost_transactions, None, "db0 could not be read");
    assert!(
        report
            .steps
            .iter()
            .any(|s| s.contains("db0 is unreachable"))
    );
    assert!(
        report
            .steps
            .iter()
            .any(|s| s.contains("db2 now replicates from db1"))
    );
    assert!(
        report.not_repointed.is_empty(),
        "{:?}",
        report.not_repointed
    );

    // The new primary takes writes; the other replica follows with no error.
    app_insert(lab.topo.port(1), 500).await?;
    let db2 = lab
        .wait_member(2, "db2 to follow db1", |m| {
            m.source.as_deref() == Some("db1") && m.io_running && m.sql_running
        })
        .await?;
    assert_eq!(db2.sql_error, None);
    lab.wait_caught_up(&[2]).await?;
    let ids = lab.ids_on(2).await?;
    assert!((1..=5).all(|i| ids.contains(&i)) && ids.contains(&500));
    assert!(!ids.contains(&100), "db0's last transactions never left it");

    // The old primary comes back read-only, not replicating, and its extra
    // transactions are listed.
    lab.restart(0).await?;
    let db0 = lab
        .wait_member(0, "db0 to be back", |m| m.reachable)
        .await?;
    assert_eq!(db0.role, Role::Fenced);
    assert_eq!(db0.read_only, Some(true));
    assert_eq!(db0.source, None);
    assert_eq!(db0.errant.len(), 1, "{:?}", db0.errant);
    assert!(db0.errant[0].starts_with("0-1001-"), "{:?}", db0.errant);

    // The executor repeating the failover changes nothing and lists them.
    let again = lab
        .set
        .failover(&req(None, false, Some("db0")), &FREE)
        .await?;
    assert!(!again.changed, "{:?}", again.steps);
    assert_eq!(again.new_primary, "db1");
    assert_eq!(again.lost_transactions.as_deref(), Some(&db0.errant[..]));
    assert!(again.steps[0].contains("already failed over"));
    let db0 = lab
        .wait_member(0, "db0 still fenced", |m| m.reachable)
        .await?;
    assert_eq!((db0.role, db0.read_only), (Role::Fenced, Some(true)));

    // It is never re-joined while it has transactions db1 lacks.
    let e = lab.set.repoint("db0", "db1", &FREE).await.unwrap_err();
    assert!(matches!(e, ReplError::Diverged { .. }), "{e}");
    assert!(!e.retryable());
    assert_eq!(lab.topo.variable(0, "read_only").await?, "1");
    Ok(())
}
