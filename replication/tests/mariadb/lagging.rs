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
        .switchover("db2", None, Duration::from_secs(2), &FREE)
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

/// Rules with a short lag limit, for the tests below.
fn strict() -> switchyard_replication::Rules {
    switchyard_replication::Rules {
        max_lag: Duration::from_secs(2),
        catch_up_timeout: Duration::from_secs(10),
        ..crate::common::rules()
    }
}

/// Blocks member `i`'s applier behind a table lock and writes on the
/// primary until `set` has *observed* member `i` at least `lag` behind
/// while the primary was alive. Returns the session holding the lock.
async fn lag_behind(
    lab: &Lab,
    set: &switchyard_replication::MySqlReplicaSet,
    i: usize,
    lag: Duration,
) -> anyhow::Result<mysql_async::Conn> {
    use mysql_async::prelude::Queryable;
    let mut lock = lab.topo.conn(i).await?;
    lock.query_drop("LOCK TABLES app.t WRITE").await?;
    lab.insert_admin(0, 500, 5).await?;
    let who = crate::common::id(i);
    switchyard_tests::wait::wait_for(
        "the lag to be observed while the primary lives",
        crate::common::PATIENCE,
        || async {
            let s = set.observe().await.map_err(|e| e.to_string())?;
            let m = s.member(&who).ok_or("no member")?;
            match m.lag {
                Some(l) if l >= lag => Ok(()),
                other => Err(format!("{who} lag {other:?}")),
            }
        },
    )
    .await?;
    Ok(lock)
}

#[tokio::test]
async fn a_replica_seen_lagging_before_the_primary_died_is_passed_over() -> anyhow::Result<()> {
    let lab = Lab::start().await?;
    // db2 would win the tie (prefer); only its lag can pass it over.
    let mut specs = crate::common::specs(&lab.topo);
    specs[2].promotion = switchyard_replication::Promotion::Prefer;
    let set = crate::common::replica_set(specs, strict());
    let _lock = lag_behind(&lab, &set, 2, Duration::from_secs(3)).await?;
    lab.wait_caught_up(&[1]).await?;
    let mut lab = lab;
    lab.topo.kill9(0);
    // Seconds_Behind_Master now reads NULL on both replicas.
    let snap = set.observe().await?;
    assert_eq!(snap.member("db2").unwrap().lag, None);
    let report = set.failover(&req(None, false, Some("db0")), &FREE).await?;
    assert_eq!(report.new_primary, "db1", "{report:?}");
    Ok(())
}

#[tokio::test]
async fn a_lagging_only_replica_is_refused_then_forced_saying_how_far_behind() -> anyhow::Result<()>
{
    let mut lab = Lab::start_n(1, |_| {}).await?;
    let set = crate::common::replica_set(crate::common::specs(&lab.topo), strict());
    let lock = lag_behind(&lab, &set, 1, Duration::from_secs(3)).await?;
    lab.topo.kill9(0);
    // Until its receiver notices the primary is gone, the replica still
    // reports a lag of its own ("behind now"); the judgement this test is
    // about is the one made from the lag seen while the primary was alive.
    lab.wait_member(1, "db1 to notice its primary is gone", |m| m.lag.is_none())
        .await?;
    let e = set
        .failover(&req(None, false, Some("db0")), &FREE)
        .await
        .unwrap_err();
    let ReplError::NoCandidate { excluded } = &e else {
        panic!("expected the lagging replica refused, got {e}");
    };
    let why = excluded
        .iter()
        .find(|x| x.member == "db1")
        .map(|x| x.reasons.join("; "))
        .unwrap_or_default();
    assert!(
        why.contains("over the limit of 2s") && why.contains("while the primary was alive"),
        "{why}"
    );

    // Forced, it is promoted once its relay log is applied (the lock goes
    // away a moment later), and the report says how far behind it was.
    let unlock = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        drop(lock);
    });
    let report = set
        .failover(&req(Some("db1"), true, Some("db0")), &FREE)
        .await?;
    unlock.await?;
    assert_eq!(report.new_primary, "db1");
    let behind = report.promoted_lag.expect("how far behind");
    assert!(behind >= Duration::from_secs(3), "{behind:?}");
    assert!(
        report.reasons.iter().any(|r| r.contains("behind")),
        "{:?}",
        report.reasons
    );
    app_insert(lab.topo.port(1), 2000).await?;
    Ok(())
}
