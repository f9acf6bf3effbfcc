//! A lagging candidate (its SQL thread stopped): a caught-up replica wins;
//! named as the only candidate, promotion waits up to the timeout, then
//! fails clearly and leaves the topology as it was.

use std::time::{Duration, Instant};

use switchyard_replication::{ReplError, ReplicaSet};

use crate::common::{FREE, Lab, app_insert, req};

#[tokio::test]
async fn lagging_replica_is_waited_for_then_refused() -> anyhow::Result<()> {
    let mut lab = Lab::start().await?;
    lab.topo.exec(2, "STOP SLAVE SQL_THREAD").await?;
    lab.insert_admin(0, 1, 20).await?;
    lab.wait_caught_up(&[1]).await?;
    // db2 has received everything (relay log) but applied none of it.
    let primary_pos = lab
        .observe()
        .await
        .primary_state()
        .unwrap()
        .position
        .clone()
        .unwrap();
    lab.wait_member(2, "db2 to receive", |m| {
        m.received
            .as_ref()
            .is_some_and(|r| r.contains(&primary_pos))
            && !m
                .position
                .as_ref()
                .is_some_and(|p| p.contains(&primary_pos))
    })
    .await?;

    // Planned switchover to the lagging replica: waits, fails, changes nothing.
    let before = lab.fingerprint().await?;
    let started = Instant::now();
    let e = lab
        .set
        .switchover("db2", Duration::from_secs(2), &FREE)
        .await
        .unwrap_err();
    let waited = started.elapsed();
    let ReplError::CatchUpTimeout {
        member, missing, ..
    } = &e
    else {
        panic!("expected a catch-up timeout, got {e}");
    };
    assert_eq!(member, "db2");
    assert!(missing.starts_with("0-1001-"), "{missing}");
    assert!(e.retryable());
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(10),
        "{waited:?}"
    );
    assert_eq!(lab.fingerprint().await?, before, "nothing changed");
    app_insert(lab.topo.port(0), 1000).await?;

    // The primary dies. Named and forced, the lagging replica is waited for
    // (catch-up timeout 5 s), then refused; nothing changes.
    lab.wait_caught_up(&[1]).await?;
    lab.topo.kill9(0);
    let before = lab.fingerprint_alive(&[1, 2]).await?;
    let started = Instant::now();
    let e = lab
        .set
        .failover(&req(Some("db2"), true, Some("db0")), &FREE)
        .await
        .unwrap_err();
    assert!(matches!(e, ReplError::CatchUpTimeout { .. }), "{e}");
    assert!(started.elapsed() >= Duration::from_secs(5));
    assert_eq!(
        lab.fingerprint_alive(&[1, 2]).await?,
        before,
        "nothing changed"
    );

    // Chosen automatically, the caught-up replica wins.
    let report = lab
        .set
        .failover(&req(None, false, Some("db0")), &FREE)
        .await?;
    assert_eq!(report.new_primary, "db1");
    app_insert(lab.topo.port(1), 1001).await?;
    Ok(())
}

#[tokio::test]
async fn the_caught_up_replica_wins_automatically() -> anyhow::Result<()> {
    let mut lab = Lab::start_with(|specs| {
        // Without the lag, db2 would win on region priority.
        specs[1].region_priority = 5;
    })
    .await?;
    lab.topo.exec(2, "STOP SLAVE SQL_THREAD").await?;
    lab.insert_admin(0, 1, 10).await?;
    lab.wait_caught_up(&[1]).await?;
    lab.topo.kill9(0);
    let report = lab
        .set
        .failover(&req(None, false, Some("db0")), &FREE)
        .await?;
    assert_eq!(report.new_primary, "db1");
    let snap = lab.observe().await;
    assert_eq!(snap.primary.as_deref(), Some("db1"));
    Ok(())
}
