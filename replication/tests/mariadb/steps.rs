//! The primitive steps, each repeatable: fence, promote, repoint, wait.

use std::time::Duration;

use switchyard_replication::{ReplError, ReplicaSet, Role};

use crate::common::{FREE, Lab, app_insert};

#[tokio::test]
async fn steps_are_idempotent() -> anyhow::Result<()> {
    let mut lab = Lab::start().await?;
    let port0 = lab.topo.port(0);
    app_insert(port0, 1).await?;

    // Fencing stops the application's writes and ends its sessions; twice is fine.
    let mut idle = crate::common::app_conn(port0).await?;
    lab.set.fence("db0").await?;
    lab.set.fence("db0").await?;
    assert!(
        app_insert(port0, 2).await.is_err(),
        "a fenced primary takes no writes"
    );
    use mysql_async::prelude::Queryable;
    assert!(
        idle.query_drop("SELECT 1").await.is_err(),
        "its session was killed"
    );
    let snap = lab.observe().await;
    assert_eq!(snap.member("db0").unwrap().role, Role::Fenced);
    assert_eq!(
        snap.primary.as_deref(),
        Some("db0"),
        "the replicas still follow it"
    );

    // A replica is not unfenced (that would make a writable replica).
    let e = lab.set.unfence("db1", &FREE).await.unwrap_err();
    assert!(matches!(e, ReplError::Conflict { .. }), "{e}");
    // Unfencing the fenced primary makes it writable again; twice is a no-op.
    assert!(lab.set.unfence("db0", &FREE).await?);
    lab.wait_caught_up(&[1, 2]).await?;
    let before = lab.fingerprint().await?;
    assert!(!lab.set.unfence("db0", &FREE).await?);
    lab.set.promote("db0", &FREE).await?;
    let after = lab.fingerprint().await?;
    assert_eq!(after, before);
    app_insert(port0, 3).await?;
    // Never while another member is writable.
    lab.set.fence("db0").await?;
    lab.topo.exec(2, "SET GLOBAL read_only = OFF").await?;
    let e = lab.set.unfence("db0", &FREE).await.unwrap_err();
    assert!(
        matches!(&e, ReplError::Conflict { detail } if detail.contains("db2 is writable")),
        "{e}"
    );
    assert_eq!(lab.topo.variable(0, "read_only").await?, "1");
    lab.topo.exec(2, "SET GLOBAL read_only = ON").await?;
    lab.set.unfence("db0", &FREE).await?;
    // Nor while another member cannot be read: it may be writable (a
    // promotion whose outcome was lost). Refused with that member's read
    // error, retryable: the lift is tried again soon once it answers.
    lab.set.fence("db0").await?;
    lab.topo.pause(2);
    let e = lab.set.unfence("db0", &FREE).await.unwrap_err();
    lab.topo.resume(2);
    assert!(
        e.retryable()
            && e.to_string()
                .contains("db2 may be writable, so db0 stays fenced"),
        "{e}"
    );
    assert_eq!(lab.topo.variable(0, "read_only").await?, "1");
    lab.set.unfence("db0", &FREE).await?;

    // Repointing a replica to the source it follows changes nothing.
    lab.wait_caught_up(&[1, 2]).await?;
    let before = lab.fingerprint().await?;
    lab.set.repoint("db1", "db0", &FREE).await?;
    assert_eq!(lab.fingerprint().await?, before);

    // Waiting for a position already applied returns at once; one that
    // will arrive is waited for.
    let p = lab
        .observe()
        .await
        .primary_state()
        .unwrap()
        .position
        .clone()
        .unwrap();
    lab.set
        .wait_caught_up("db1", &p, Duration::from_secs(10), &FREE)
        .await?;
    app_insert(port0, 4).await?;
    let p = lab
        .observe()
        .await
        .primary_state()
        .unwrap()
        .position
        .clone()
        .unwrap();
    lab.set
        .wait_caught_up("db2", &p, Duration::from_secs(10), &FREE)
        .await?;
    assert!(lab.ids_on(2).await?.contains(&4));

    // Chained replication: db2 follows db1, then db0 again.
    lab.set.repoint("db2", "db1", &FREE).await?;
    let m = lab
        .wait_member(2, "db2 to follow db1", |m| {
            m.source.as_deref() == Some("db1") && m.sql_running && m.io_running
        })
        .await?;
    assert_eq!(m.read_only, Some(true));
    app_insert(port0, 5).await?;
    lab.wait_caught_up(&[2]).await?;
    lab.set.repoint("db2", "db0", &FREE).await?;
    Ok(())
}
