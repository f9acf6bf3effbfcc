//! The primary lease against a real etcd: the keeper renews it, the leader's
//! reader sees it with a bounded expiry, and when the keeper stops (its
//! controller cut off or dead) the key vanishes and the reader's expiry
//! passes; the keeper notices a lease etcd lost. Every grant and change of
//! primary also writes the vouch (which primary and epoch a lease was taken
//! for), and the reader forgets what it saw across any gap in its watch.

use std::time::Duration;

use chrono::Utc;
use switchyard_controller::fence::lease::{
    Acquired, DEFAULT_DRIFT_MARGIN, LeaseObservation, LeaseReader, LeaseValue, PrimaryLease,
    VouchObservation,
};
use switchyard_controller::store::Store;
use switchyard_tests::Etcd;
use switchyard_tests::wait::wait_for;
use tokio::time::Instant;

fn value(primary: &str, epoch: u64) -> LeaseValue {
    LeaseValue {
        holder: "ctl-east".into(),
        region: "east".into(),
        primary: primary.into(),
        epoch: Some(epoch),
        renewed_at: Utc::now(),
        ttl_ms: 0,
    }
}

/// Takes the (free) lease of `key` for `ctl-east`.
async fn hold(store: &Store, key: String, ttl: Duration) -> anyhow::Result<PrimaryLease> {
    match PrimaryLease::acquire(store.clone(), key, value("m0", 1), ttl, Utc::now()).await? {
        Acquired::Held(l) => Ok(*l),
        Acquired::HeldBy(v) => anyhow::bail!("held by {}", v.holder),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_is_renewed_seen_and_expires_when_its_keeper_stops() -> anyhow::Result<()> {
    let etcd = Etcd::single().await?;
    let store = Store::connect(&etcd.endpoints(), "t").await?;
    let key = store.keys().primary_lease("orders");
    assert_eq!(key, "/switchyard/t/leases/primary/orders");
    assert!(key.starts_with(&store.keys().primary_leases_prefix()));
    assert_eq!(
        store.keys().vouched("orders"),
        "/switchyard/t/leases/vouched/orders"
    );

    let ttl = Duration::from_secs(2);
    let lease = hold(&store, key.clone(), ttl).await?;
    assert_eq!(lease.ttl(), ttl);
    let first = lease.renewal();
    assert!(!first.lost);
    assert_eq!(first.deadline, first.last_renewed + ttl);

    // The vouch was written with the lease: primary, epoch, lease id.
    let reader = LeaseReader::new(store.clone(), DEFAULT_DRIFT_MARGIN);
    let VouchObservation::Present(v) = reader.vouch("orders").await else {
        anyhow::bail!("no vouch written with the lease");
    };
    assert_eq!(v.lease_id, lease.lease_id());
    assert!(v.covers("m0", 1), "{v:?}");
    assert_eq!(v.lease.ttl_ms, 2_000);

    // Renewed past the first deadline.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let later = lease.renewal();
    assert!(!later.lost, "lease lost while etcd was up");
    assert!(
        later.last_renewed > first.last_renewed,
        "no renewal in 2.5 s"
    );
    assert!(later.deadline > Instant::now());

    assert_eq!(reader.observed_expiry("orders"), None);
    let before = Instant::now();
    let LeaseObservation::Held(seen) = reader.observe("orders").await else {
        anyhow::bail!("lease not seen");
    };
    assert_eq!(seen.value.primary, "m0");
    assert_eq!(seen.value.epoch, Some(1));
    assert_eq!(seen.value.ttl_ms, 2_000);
    assert_eq!(seen.lease_id, lease.lease_id());
    // Expiry: at most TTL + 1 s rounding + drift after the read.
    let ceiling = Instant::now() + Duration::from_millis(2_000 + 500);
    assert!(seen.expires_at > before, "{seen:?}");
    assert!(seen.expires_at <= ceiling, "{seen:?}");
    assert_eq!(reader.observed_expiry("orders"), Some(seen.expires_at));

    // A switchover inside the region: lease value and vouch move together.
    lease.set_primary("m1", 2, Utc::now()).await?;
    let LeaseObservation::Held(moved) = reader.observe("orders").await else {
        anyhow::bail!("lease not seen after set_primary");
    };
    assert_eq!(moved.value.primary, "m1");
    assert_eq!(moved.value.epoch, Some(2));
    let VouchObservation::Present(v) = reader.vouch("orders").await else {
        anyhow::bail!("vouch gone");
    };
    assert!(v.covers("m1", 2) && !v.covers("m1", 1), "{v:?}");

    // The keeper stops (controller cut off): the key vanishes within TTL,
    // and the last expiry the reader saw is still reported; the vouch stays.
    drop(lease);
    let stopped = Instant::now();
    let reader = &reader;
    wait_for(
        "the lease key to vanish",
        Duration::from_secs(6),
        || async move {
            match reader.observe("orders").await {
                LeaseObservation::Absent {
                    last_seen: Some(_), ..
                } => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await?;
    let gone = Instant::now();
    assert!(
        gone - stopped >= Duration::from_millis(500),
        "vanished too early"
    );
    let expiry = reader.observed_expiry("orders").expect("remembered");
    assert!(
        expiry + Duration::from_secs(1) >= gone,
        "expiry {expiry:?} vs gone {gone:?}"
    );
    assert!(matches!(
        reader.vouch("orders").await,
        VouchObservation::Present(_)
    ));
    Ok(())
}

/// Issue 11: a leader's memory of a lease is only as good as its watch was
/// continuous. While this controller lost etcd it told its peers "no etcd",
/// which may have let the holder fail static past its lease: after any
/// such gap the reader forgets the lease it saw, and the absence counts
/// from its first read after the gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reader_forgets_what_it_saw_across_a_gap_in_its_etcd_reach() -> anyhow::Result<()> {
    let etcd = Etcd::single().await?;
    let store = Store::connect(&etcd.endpoints(), "t").await?;
    let (reach, reach_rx) = tokio::sync::watch::channel(true);
    let reader = LeaseReader::new(store.clone(), DEFAULT_DRIFT_MARGIN)
        .with_lease_ttl(Duration::from_secs(2))
        .with_etcd_reach(reach_rx);
    let lease = hold(
        &store,
        store.keys().primary_lease("orders"),
        Duration::from_secs(2),
    )
    .await?;
    assert!(matches!(
        reader.observe("orders").await,
        LeaseObservation::Held(_)
    ));
    drop(lease);
    let reader = &reader;
    wait_for(
        "the lease key to vanish",
        Duration::from_secs(6),
        || async move {
            match reader.observe("orders").await {
                LeaseObservation::Absent {
                    last_seen: Some(_), ..
                } => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await?;
    let LeaseObservation::Absent {
        since: first_since,
        watching_since: first_watch,
        ..
    } = reader.observe("orders").await
    else {
        anyhow::bail!("absent, then?");
    };
    // This controller's etcd probe fails for a moment, and recovers before
    // the reader looks again: the blip alone is a gap.
    reach.send_replace(false);
    reach.send_replace(true);
    let gap = Instant::now();
    let after = reader.observe("orders").await;
    let LeaseObservation::Absent {
        last_seen,
        since,
        watching_since,
    } = after
    else {
        anyhow::bail!("absent, then? {after:?}");
    };
    assert!(
        last_seen.is_none(),
        "the lease seen before the gap still counts"
    );
    assert!(
        since >= gap && since > first_since,
        "{since:?} vs {first_since:?}"
    );
    assert!(watching_since >= gap && watching_since > first_watch);
    assert_eq!(reader.watching_since(), watching_since);
    // While it does not reach etcd, nothing it reads counts.
    reach.send_replace(false);
    assert!(matches!(
        reader.observe("orders").await,
        LeaseObservation::Unknown { .. }
    ));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeper_reports_a_lease_etcd_no_longer_has() -> anyhow::Result<()> {
    let etcd = Etcd::single().await?;
    let store = Store::connect(&etcd.endpoints(), "t").await?;
    let key = store.keys().primary_lease("orders");
    let lease = hold(&store, key, Duration::from_secs(3)).await?;
    // Someone revokes it behind the keeper's back.
    store.revoke_lease(lease.lease_id()).await?;
    tokio::time::timeout(Duration::from_secs(5), lease.lost()).await?;
    assert!(lease.renewal().lost);
    assert!(matches!(
        LeaseReader::new(store, DEFAULT_DRIFT_MARGIN)
            .observe("orders")
            .await,
        LeaseObservation::Absent {
            last_seen: None,
            ..
        }
    ));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeper_loses_the_lease_when_etcd_is_unreachable_past_its_deadline() -> anyhow::Result<()> {
    let mut etcd = Etcd::single().await?;
    let store = Store::connect(&etcd.endpoints(), "t").await?;
    let key = store.keys().primary_lease("orders");
    let ttl = Duration::from_secs(2);
    let lease = hold(&store, key, ttl).await?;
    let margin = Duration::from_millis(500);
    let budget = Duration::from_millis(500);
    etcd.pause(0);
    let cut = Instant::now();
    let fence = lease.fence_deadline(margin, budget);
    // The cut-off holder must be done fencing by its last renewal + TTL -
    // margin, which is at most TTL - margin from now, and start a budget
    // before that.
    assert!(fence.done_by <= cut + ttl - margin);
    assert_eq!(fence.done_by - fence.start_by, budget);
    tokio::time::timeout(ttl + Duration::from_secs(1), lease.lost()).await?;
    assert!(Instant::now() >= lease.deadline());
    assert!(lease.deadline() >= fence.done_by + margin);
    etcd.resume(0);
    Ok(())
}
