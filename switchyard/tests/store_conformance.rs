//! The `Kv` contract (`store::kv::conformance`), run against a real etcd
//! (one member and a three-member cluster) and against the in-memory
//! model, on the wall clock and on tokio's paused clock — the clock the
//! simulator runs it on. The model is only worth simulating with while it
//! passes the same suite as etcd.

use switchyard_controller::store::kv::conformance::run;
use switchyard_controller::store::kv::etcd::EtcdKv;
use switchyard_controller::store::kv::model::MemKv;
use switchyard_controller::store::kv::{Kv, KvError, RangeQuery};
use switchyard_tests::Etcd;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_conforms() -> anyhow::Result<()> {
    let etcd = Etcd::single().await?;
    let kv = EtcdKv::connect(&etcd.endpoints()).await?;
    run(&kv, "/conformance/").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_member_etcd_conforms() -> anyhow::Result<()> {
    let etcd = Etcd::cluster(3).await?;
    let kv = EtcdKv::connect(&etcd.endpoints()).await?;
    run(&kv, "/conformance/").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_conforms_on_the_wall_clock() -> anyhow::Result<()> {
    run(&MemKv::new(), "/conformance/").await?;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn the_model_conforms_on_a_paused_clock() -> anyhow::Result<()> {
    let started = tokio::time::Instant::now();
    run(&MemKv::new(), "/conformance/").await?;
    // The suite's lease waits passed on the paused clock, not the wall's.
    assert!(started.elapsed() >= std::time::Duration::from_secs(2));
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_cut_link_fails_its_calls_and_ends_its_watches_alone() -> anyhow::Result<()> {
    let a = MemKv::new();
    let b = a.connect();
    let mut watch_a = a.watch("/k", None).await?;
    let mut watch_b = b.watch("/k", None).await?;
    a.set_reachable(false);
    assert!(matches!(
        a.put("/k", b"1".to_vec(), None).await,
        Err(KvError::Unavailable(_))
    ));
    assert!(matches!(
        watch_a.recv().await,
        Some(Err(KvError::Unavailable(_)))
    ));
    // The other link still reads and writes, and its watch goes on.
    let rev = b.put("/k", b"2".to_vec(), None).await?;
    assert_eq!(
        watch_b.recv().await.map(|e| e.map(|e| e.revision())),
        Some(Ok(rev))
    );
    a.set_reachable(true);
    assert_eq!(a.get("/k").await?.map(|kv| kv.value), Some(b"2".to_vec()));
    assert_eq!(a.range(&RangeQuery::prefix("/")).await?.revision, rev);
    Ok(())
}
