//! The primary lease against a real etcd: the keeper renews it, the leader's
//! reader sees it with a bounded expiry, and when the keeper stops (its
//! controller cut off or dead) the key vanishes and the reader's expiry
//! passes; the keeper notices a lease etcd lost.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use switchyard_controller::clock::SystemClock;
use switchyard_controller::fence::lease::{
    Acquired, DEFAULT_DRIFT_MARGIN, LeaseObservation, LeaseReader, LeaseValue, PrimaryLease,
};
use switchyard_controller::store::Store;
use switchyard_tests::Etcd;
use switchyard_tests::wait::wait_for;

fn value(primary: &str) -> LeaseValue {
    LeaseValue {
        holder: "ctl-east".into(),
        region: "east".into(),
        primary: primary.into(),
        renewed_at: Utc::now(),
        ttl_ms: 0,
    }
}

/// Takes the (free) lease of `key` for `ctl-east`.
async fn hold(store: &Store, key: String, ttl: Duration) -> anyhow::Result<PrimaryLease> {
    match PrimaryLease::acquire(store.client(), key, value("m0"), ttl, Utc::now()).await? {
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

    let ttl = Duration::from_secs(2);
    let lease = hold(&store, key.clone(), ttl).await?;
    assert_eq!(lease.ttl(), ttl);
    let first = lease.renewal();
    assert!(!first.lost);
    assert_eq!(first.deadline, first.last_renewed + ttl);

    // Renewed past the first deadline.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let later = lease.renewal();
    assert!(!later.lost, "lease lost while etcd was up");
    assert!(
        later.last_renewed > first.last_renewed,
        "no renewal in 2.5 s"
    );
    assert!(later.deadline > tokio::time::Instant::now());

    let reader = LeaseReader::new(store.clone(), Arc::new(SystemClock), DEFAULT_DRIFT_MARGIN);
    assert_eq!(reader.observed_expiry("orders"), None);
    let before = Utc::now();
    let LeaseObservation::Held(seen) = reader.observe("orders").await else {
        anyhow::bail!("lease not seen");
    };
    assert_eq!(seen.value.primary, "m0");
    assert_eq!(seen.value.ttl_ms, 2_000);
    assert_eq!(seen.lease_id, lease.lease_id());
    // Expiry: at most TTL + 1 s rounding + drift after the read.
    let ceiling = Utc::now() + chrono::Duration::milliseconds(2_000 + 500);
    assert!(seen.expires_at > before, "{seen:?}");
    assert!(seen.expires_at <= ceiling, "{seen:?}");
    assert_eq!(reader.observed_expiry("orders"), Some(seen.expires_at));

    lease.set_primary("m1", Utc::now()).await?;
    let LeaseObservation::Held(moved) = reader.observe("orders").await else {
        anyhow::bail!("lease not seen after set_primary");
    };
    assert_eq!(moved.value.primary, "m1");

    // The keeper stops (controller cut off): the key vanishes within TTL,
    // and the last expiry the reader saw is still reported.
    drop(lease);
    let stopped = Utc::now();
    let reader = &reader;
    wait_for(
        "the lease key to vanish",
        Duration::from_secs(6),
        || async move {
            match reader.observe("orders").await {
                LeaseObservation::Absent { last_seen: Some(_) } => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await?;
    let gone = Utc::now();
    assert!(
        gone - stopped >= chrono::Duration::milliseconds(500),
        "vanished too early"
    );
    let expiry = reader.observed_expiry("orders").expect("remembered");
    assert!(
        expiry >= gone - chrono::Duration::seconds(1),
        "expiry {expiry} vs gone {gone}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeper_reports_a_lease_etcd_no_longer_has() -> anyhow::Result<()> {
    let etcd = Etcd::single().await?;
    let store = Store::connect(&etcd.endpoints(), "t").await?;
    let key = store.keys().primary_lease("orders");
    let lease = hold(&store, key, Duration::from_secs(3)).await?;
    // Someone revokes it behind the keeper's back.
    let mut c = store.client();
    c.lease_revoke(lease.lease_id()).await?;
    tokio::time::timeout(Duration::from_secs(5), lease.lost()).await?;
    assert!(lease.renewal().lost);
    assert!(matches!(
        LeaseReader::new(store, Arc::new(SystemClock), DEFAULT_DRIFT_MARGIN)
            .observe("orders")
            .await,
        LeaseObservation::Absent { last_seen: None }
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
    etcd.pause(0);
    let cut = tokio::time::Instant::now();
    let fence = lease.fence_deadline(margin);
    // The isolated side must fence before its last renewal + TTL - margin,
    // which is at most TTL - margin from now.
    assert!(fence.fence_by <= cut + ttl - margin);
    tokio::time::timeout(ttl + Duration::from_secs(1), lease.lost()).await?;
    assert!(tokio::time::Instant::now() >= lease.deadline());
    etcd.resume(0);
    Ok(())
}
