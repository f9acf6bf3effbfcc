//! Self-tests of the etcd fixture: the primitives the controller's leadership
//! is built on (lease, campaign, a txn fenced by the leader key's create
//! revision) round-trip on a real etcd, and members can be killed, paused
//! and restarted.

use std::time::Duration;

use etcd_client::{Compare, CompareOp, EventType, Txn, TxnOp};
use switchyard_tests::Etcd;
use switchyard_tests::wait::wait_for;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_campaign_and_fenced_txn_round_trip() -> anyhow::Result<()> {
    let etcd = Etcd::single().await?;
    let mut client = etcd.client().await?;

    let lease = client.lease_grant(5, None).await?.id();
    let election = "/switchyard/test/leader";
    let campaign = client.campaign(election, "127.0.0.1:7400", lease).await?;
    let leader = campaign
        .leader()
        .expect("campaign returns the leader key")
        .clone();
    assert_eq!(leader.lease(), lease);

    // The election value is what observers read as the leader.
    let current = client.leader(election).await?;
    let kv = current.kv().expect("a leader is elected");
    assert_eq!(kv.value_str()?, "127.0.0.1:7400");
    let token = kv.create_revision();
    assert!(token > 0);

    // A write fenced by the right token goes through...
    let fenced = |rev: i64, value: &str| {
        Txn::new()
            .when([Compare::create_revision(
                leader.key().to_vec(),
                CompareOp::Equal,
                rev,
            )])
            .and_then([TxnOp::put("/switchyard/test/state", value, None)])
    };
    assert!(client.txn(fenced(token, "from-leader")).await?.succeeded());
    // ...a stale token is refused, and the value is untouched.
    assert!(
        !client
            .txn(fenced(token - 1, "from-stale"))
            .await?
            .succeeded()
    );
    let got = client.get("/switchyard/test/state", None).await?;
    assert_eq!(got.kvs()[0].value_str()?, "from-leader");

    // Revoking the lease deletes the leader key: every later fenced write fails.
    let mut watch_client = etcd.client().await?;
    let mut stream = watch_client.watch(leader.key().to_vec(), None).await?;
    client.lease_revoke(lease).await?;
    // The first message confirms the watch; wait for the delete event itself.
    let deleted = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(msg) = stream.message().await? {
            if msg
                .events()
                .iter()
                .any(|e| e.event_type() == EventType::Delete)
            {
                return Ok::<_, etcd_client::Error>(true);
            }
        }
        Ok(false)
    })
    .await??;
    assert!(deleted, "the leader key was not deleted with its lease");
    assert!(!client.txn(fenced(token, "after-revoke")).await?.succeeded());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_member_cluster_survives_kill_pause_and_restart() -> anyhow::Result<()> {
    let mut etcd = Etcd::cluster(3).await?;
    assert_eq!(etcd.len(), 3);
    let client = etcd.client().await?;
    let put = |value: &'static str| {
        let c = client.clone();
        move || {
            let mut c = c.clone();
            async move { c.put("/k", value, None).await }
        }
    };

    etcd.kill(0);
    assert!(etcd.pid(0).is_none());
    wait_for(
        "a write with one member dead",
        Duration::from_secs(20),
        put("a"),
    )
    .await?;

    etcd.pause(1);
    // Two of three members down (one dead, one stopped): no quorum, no write.
    let mut c = client.clone();
    let no_quorum = tokio::time::timeout(Duration::from_secs(2), c.put("/k", "b", None)).await;
    assert!(
        !matches!(no_quorum, Ok(Ok(_))),
        "a write succeeded without quorum"
    );

    etcd.resume(1);
    etcd.restart(0).await?;
    etcd.wait_writable().await?;
    // The old client's channel to the restarted member may still be in its
    // reconnect backoff: a client retries, and so does the test.
    wait_for(
        "a write after the restart",
        Duration::from_secs(20),
        put("c"),
    )
    .await?;
    // The restarted member serves reads of what was written while it was down.
    let mut only0 = etcd_client::Client::connect([etcd.endpoint(0)], None).await?;
    let got = wait_for("member 0 to catch up", Duration::from_secs(20), || {
        let mut c = only0.clone();
        async move {
            let r = c.get("/k", None).await.map_err(|e| e.to_string())?;
            match r.kvs().first().map(|kv| kv.value().to_vec()) {
                Some(v) if v == b"c" => Ok(v),
                other => Err(format!("value {other:?}")),
            }
        }
    })
    .await?;
    assert_eq!(got, b"c");
    only0.status().await?;
    Ok(())
}
