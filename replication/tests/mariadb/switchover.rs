//! Planned switchover under load: zero loss, a short write outage, and the
//! old primary replicating from the new one.

use std::time::Duration;

use switchyard_replication::{Operation, ReplicaSet, Role};

use crate::common::{FREE, Lab, id};
use crate::writer::Writer;

#[tokio::test]
async fn switchover_under_load_loses_no_acknowledged_write() -> anyhow::Result<()> {
    let lab = Lab::start().await?;
    let ports: Vec<u16> = (0..3).map(|i| lab.topo.port(i)).collect();
    let writer = Writer::start(ports.clone(), 1_000_000);
    writer.wait_more(100).await?;
    writer.reset_gap().await;

    let report = lab
        .set
        .switchover("db1", None, Duration::from_secs(10), &FREE)
        .await?;
    writer.wait_more(100).await?;
    let writes = writer.stop().await;

    assert_eq!(report.operation, Operation::Switchover);
    assert_eq!(report.old_primary.as_deref(), Some("db0"));
    assert_eq!(report.new_primary, "db1");
    assert!(report.changed);
    assert!(
        report.not_repointed.is_empty(),
        "{:?}",
        report.not_repointed
    );
    assert_eq!(report.lost_transactions, Some(vec![]));
    let steps = report.steps.join("\n");
    for expected in [
        "caught up",
        "fenced db0",
        "promoted db1",
        "db0 now replicates from db1",
        "db2 now replicates from db1",
    ] {
        assert!(steps.contains(expected), "no {expected:?} in:\n{steps}");
    }

    // Every acknowledged write is on the new primary.
    let on_new = lab.ids_on(1).await?;
    let missing: Vec<u64> = writes
        .acked
        .iter()
        .copied()
        .filter(|i| !on_new.contains(i))
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged but missing on db1: {missing:?}"
    );
    // The writer moved to db1 and wrote there after the switchover.
    assert_eq!(
        writes.targets.last(),
        Some(&ports[1]),
        "{:?}",
        writes.targets
    );

    // The old primary and the other replica follow the new primary.
    for i in [0, 2] {
        let m = lab
            .wait_member(i, "to replicate from db1", |m| {
                m.role == Role::Replica
                    && m.source.as_deref() == Some("db1")
                    && m.io_running
                    && m.sql_running
            })
            .await?;
        assert_eq!(m.read_only, Some(true));
    }
    let snap = lab.observe().await;
    assert_eq!(snap.primary.as_deref(), Some("db1"));
    // Everything written on db1 reaches the old primary.
    lab.wait_caught_up(&[0, 2]).await?;
    let on_old = lab.ids_on(0).await?;
    assert!(writes.acked.iter().all(|i| on_old.contains(i)));

    let window = writes.longest_gap;
    eprintln!(
        "switchover write outage: {window:?} (writer), read-only window {:?} (adapter), {} failed attempts, {} acknowledged",
        report.read_only_window,
        writes.failures,
        writes.acked.len()
    );
    assert!(
        window < Duration::from_secs(3),
        "writes failed for {window:?}"
    );
    assert!(
        report
            .read_only_window
            .is_some_and(|w| w <= window + Duration::from_millis(50))
    );
    Ok(())
}

#[tokio::test]
async fn switchover_again_changes_nothing_and_back_works() -> anyhow::Result<()> {
    let lab = Lab::start().await?;
    let first = lab
        .set
        .switchover("db2", None, Duration::from_secs(10), &FREE)
        .await?;
    assert!(first.changed);
    let before = lab.fingerprint().await?;

    // Repeating it (an executor retrying after a crash) changes nothing.
    let again = lab
        .set
        .switchover("db2", None, Duration::from_secs(10), &FREE)
        .await?;
    assert!(!again.changed, "{:?}", again.steps);
    assert!(
        again
            .steps
            .iter()
            .any(|s| s.contains("already the writable primary"))
    );
    assert_eq!(lab.fingerprint().await?, before);

    // And back to db0, which rejoined with its own transactions counted.
    lab.wait_member(0, "db0 to follow db2", |m| m.io_running && m.sql_running)
        .await?;
    let back = lab
        .set
        .switchover("db0", None, Duration::from_secs(10), &FREE)
        .await?;
    assert_eq!(back.new_primary, "db0");
    crate::common::app_insert(lab.topo.port(0), 42).await?;
    for i in [1, 2] {
        lab.wait_member(i, "to follow db0", |m| {
            m.source.as_deref() == Some("db0") && m.io_running && m.sql_running
        })
        .await?;
    }
    assert_eq!(id(0), back.new_primary);
    Ok(())
}
