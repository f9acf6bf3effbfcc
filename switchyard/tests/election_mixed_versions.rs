//! A rolling upgrade runs controllers that campaign through etcd's
//! election API (releases before the store ran on `Kv`) beside controllers
//! that run the same protocol on key-value calls (`store::campaign`). Both
//! must share one election on a real etcd: each waits behind the other's
//! key, each takes over when the other resigns, and etcd's API reads the
//! new kind's key as its own.

use std::time::Duration;

use etcd_client::ResignOptions;
use switchyard_controller::store::{ElectionConfig, Leadership, Role, Store, election};
use switchyard_tests::Etcd;
use tokio::sync::watch;

/// How long a campaign that must wait is watched to still wait.
const STILL: Duration = Duration::from_secs(3);

/// Longest wait for a take-over.
const PATIENCE: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_and_new_campaigners_share_one_election() -> anyhow::Result<()> {
    let etcd = Etcd::single().await?;
    let store = Store::connect(&etcd.endpoints(), "mixed").await?;
    let name = store.keys().leader();
    let mut old = etcd.client().await?;

    // An old controller leads, through etcd's API (its lease outlives the
    // test, so it needs no keep-alive here).
    let old_lease = old.lease_grant(60, None).await?.id();
    let won = old.campaign(name.clone(), "old:7000", old_lease).await?;
    let old_key = won.leader().cloned().expect("a leader key");

    // A new one campaigns and waits behind it.
    let (role_tx, mut role) = watch::channel(Role::Follower);
    let (stop, stop_rx) = watch::channel(false);
    let config = ElectionConfig {
        name: name.clone(),
        value: "new:7000".into(),
        ttl: Duration::from_secs(2),
    };
    let task = tokio::spawn(election::run(store.clone(), config, role_tx, stop_rx));
    tokio::time::sleep(STILL).await;
    assert!(matches!(*role.borrow(), Role::Follower));
    assert_eq!(store.leader_value().await?.as_deref(), Some("old:7000"));

    // The old one resigns through the API: the new one leads.
    old.resign(Some(ResignOptions::new().with_leader(old_key)))
        .await?;
    let lead = leads(&mut role).await;
    let seen = old.leader(name.clone()).await?;
    let kv = seen.kv().expect("etcd's API sees a leader");
    assert_eq!(kv.value(), b"new:7000");
    assert_eq!(kv.key(), lead.key().as_bytes());
    assert_eq!(kv.create_revision(), lead.token());
    assert_eq!(kv.lease(), lead.lease());

    // An old controller campaigning now waits behind the new leader, and
    // takes over when it shuts down (and resigns).
    let next_lease = old.lease_grant(60, None).await?.id();
    let mut next = old.clone();
    let election_name = name.clone();
    let campaign =
        tokio::spawn(async move { next.campaign(election_name, "old:7001", next_lease).await });
    tokio::time::sleep(STILL).await;
    assert!(!campaign.is_finished(), "the old kind did not wait");
    stop.send_replace(true);
    task.await?;
    tokio::time::timeout(PATIENCE, campaign).await???;
    assert_eq!(store.leader_value().await?.as_deref(), Some("old:7001"));
    old.lease_revoke(next_lease).await?;
    old.lease_revoke(old_lease).await?;
    assert_eq!(store.leader_value().await?, None);
    Ok(())
}

/// Waits until the role is leader.
async fn leads(role: &mut watch::Receiver<Role>) -> Leadership {
    let r = tokio::time::timeout(PATIENCE, role.wait_for(|r| matches!(r, Role::Leader(_))))
        .await
        .expect("leads in time")
        .expect("election running")
        .clone();
    match r {
        Role::Leader(l) => l,
        Role::Follower => unreachable!("waited for a leader"),
    }
}
