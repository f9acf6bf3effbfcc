//! The `Store` on the in-memory model (`MemKv`), on tokio's paused clock:
//! the election (campaign, lead, resign), the fence, watches, paged reads
//! and the primary lease, run as the simulator will run them. Each node
//! has its own link to the one model, so a cut link is a partition between
//! that node and etcd.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use switchyard_controller::fence::lease::{
    Acquired, DEFAULT_DRIFT_MARGIN, LeaseLife, LeaseObservation, LeaseReader, LeaseValue,
    PrimaryLease,
};
use switchyard_controller::store::kv::model::MemKv;
use switchyard_controller::store::kv::{Kv, Op, RangeQuery, WatchEvent, WatchStream};
use switchyard_controller::store::pages::Direction;
use switchyard_controller::store::{ElectionConfig, Leadership, Role, Store, StoreError, election};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The leader lease TTL of every node.
const TTL: Duration = Duration::from_secs(2);

/// Longest (virtual) wait for a role change.
const PATIENCE: Duration = Duration::from_secs(30);

/// Node A leads and has written the pause key under its fence; node B
/// campaigns behind it: where both fencing tests start.
async fn a_leads_b_waits(etcd: &MemKv) -> anyhow::Result<(Node, Leadership, Node, String)> {
    let mut a = Node::start(etcd, "a:7000");
    let lead_a = a.leads().await;
    let b = Node::start(etcd, "b:7000");
    let pause = a.store.keys().pause();
    a.store.fenced_put(&lead_a, pause.clone(), &"a").await?;
    Ok((a, lead_a, b, pause))
}

/// A controller's election on its own link to the model.
struct Node {
    link: MemKv,
    store: Store,
    role: watch::Receiver<Role>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Node {
    /// Starts campaigning as `value`.
    fn start(etcd: &MemKv, value: &str) -> Node {
        let link = etcd.connect();
        let store = Store::on(Arc::new(link.clone()), "sim");
        let (role_tx, role) = watch::channel(Role::Follower);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let config = ElectionConfig {
            name: store.keys().leader(),
            value: value.to_string(),
            ttl: TTL,
        };
        let task = tokio::spawn(election::run(store.clone(), config, role_tx, shutdown_rx));
        Node {
            link,
            store,
            role,
            shutdown,
            task,
        }
    }

    /// Waits until it leads.
    async fn leads(&mut self) -> Leadership {
        let role = tokio::time::timeout(
            PATIENCE,
            self.role.wait_for(|r| matches!(r, Role::Leader(_))),
        )
        .await
        .expect("leads in time")
        .expect("election running")
        .clone();
        match role {
            Role::Leader(l) => l,
            Role::Follower => unreachable!("waited for a leader"),
        }
    }

    fn is_follower(&self) -> bool {
        matches!(*self.role.borrow(), Role::Follower)
    }

    /// Shuts down (resigns) and waits for the election to end.
    async fn stop(self) {
        self.shutdown.send_replace(true);
        self.task.await.expect("election ended cleanly");
    }
}

#[tokio::test(start_paused = true)]
async fn one_node_leads_and_the_next_takes_over_when_it_resigns() -> anyhow::Result<()> {
    let etcd = MemKv::new();
    let mut a = Node::start(&etcd, "a:7000");
    let lead_a = a.leads().await;
    let mut b = Node::start(&etcd, "b:7000");
    // Several TTLs: A keeps its lease alive, B waits behind it.
    tokio::time::sleep(3 * TTL).await;
    assert!(lead_a.is_held() && b.is_follower());
    assert_eq!(b.store.leader_value().await?.as_deref(), Some("a:7000"));

    // etcd's election layout: `<name>/<lease hex>`, attached to the lease,
    // created at the token.
    let key = lead_a.key().to_string();
    assert_eq!(
        key,
        format!("{}/{:x}", a.store.keys().leader(), lead_a.lease())
    );
    let stored = etcd.get(&key).await?.expect("the leader key exists");
    assert_eq!(stored.create_revision, lead_a.token());
    assert_eq!(stored.lease, lead_a.lease());
    assert_eq!(stored.value, b"a:7000");

    // A resigns on shutdown: B leads at once, not a TTL later.
    let resigned = tokio::time::Instant::now();
    a.stop().await;
    let lead_b = b.leads().await;
    assert!(
        resigned.elapsed() < TTL,
        "B waited for A's lease to run out"
    );
    assert!(!lead_a.is_held());
    assert!(lead_b.token() > lead_a.token());
    assert_eq!(b.store.leader_value().await?.as_deref(), Some("b:7000"));
    assert!(etcd.get(&key).await?.is_none(), "A's key is gone");
    b.stop().await;
    assert_eq!(etcd.snapshot(), Vec::new(), "nothing left behind");
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_leader_cut_off_past_its_lease_is_fenced_out() -> anyhow::Result<()> {
    let etcd = MemKv::new();
    let (a, lead_a, mut b, pause) = a_leads_b_waits(&etcd).await?;

    // A loses etcd: its lease runs out on etcd's clock, and B wins.
    a.link.set_reachable(false);
    let cut = tokio::time::Instant::now();
    let lead_b = b.leads().await;
    assert!(
        cut.elapsed() >= TTL - TTL / 4,
        "B won before A's lease ran out"
    );
    assert!(!lead_a.is_held(), "A stepped down on its own deadline");
    a.link.set_reachable(true);

    let refused = a.store.fenced_put(&lead_a, pause.clone(), &"a-late").await;
    assert!(
        matches!(refused, Err(StoreError::NotLeader(_))),
        "{refused:?}"
    );
    b.store.fenced_put(&lead_b, pause.clone(), &"b").await?;
    assert_eq!(
        b.store.get_json::<String>(&pause).await?.as_deref(),
        Some("b")
    );
    a.stop().await;
    b.stop().await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn the_fence_refuses_a_leader_whose_key_another_node_took() -> anyhow::Result<()> {
    let etcd = MemKv::new();
    let (a, lead_a, mut b, pause) = a_leads_b_waits(&etcd).await?;

    // A's lease ends behind its back (etcd lost it); B takes the seat
    // before A's keeper notices.
    etcd.revoke(lead_a.lease()).await?;
    let lead_b = b.leads().await;
    assert!(lead_a.is_held(), "A has not noticed yet");

    // A create where a value is, by a leader the fence refuses: told it
    // no longer leads (not merely that the key exists), and steps down.
    let late = a
        .store
        .fenced_create(&lead_a, pause.clone(), &"a-late")
        .await;
    assert!(matches!(late, Err(StoreError::NotLeader(_))), "{late:?}");
    assert!(
        !lead_a.is_held(),
        "a refused fence makes the node step down"
    );

    // The store itself refuses A's write.
    let refused = a.store.fenced_put(&lead_a, pause.clone(), &"a-late").await;
    assert!(
        matches!(refused, Err(StoreError::NotLeader(_))),
        "{refused:?}"
    );
    let guarded = a
        .store
        .fenced_txn_while(&lead_a, &pause, vec![Op::delete(&pause)])
        .await;
    assert!(
        matches!(guarded, Err(StoreError::NotLeader(_))),
        "{guarded:?}"
    );
    assert_eq!(
        a.store.get_json::<String>(&pause).await?.as_deref(),
        Some("a")
    );

    // B's fenced writes go through; one guarded by a missing key does not.
    let gone = b.store.keys().request("r-1");
    assert!(
        !b.store
            .fenced_txn_while(&lead_b, &gone, vec![Op::delete(&pause)])
            .await?
    );
    assert!(
        b.store
            .fenced_txn_while(&lead_b, &pause, vec![Op::delete(&pause)])
            .await?
    );
    assert!(!b.store.exists(&pause).await?);
    // A create writes only where nothing is, and keeps what is there.
    assert!(
        b.store
            .fenced_create(&lead_b, pause.clone(), &"first")
            .await?
    );
    assert!(
        !b.store
            .fenced_create(&lead_b, pause.clone(), &"second")
            .await?
    );
    assert_eq!(
        b.store.get_json::<String>(&pause).await?.as_deref(),
        Some("first")
    );
    assert!(lead_b.is_held());
    a.stop().await;
    b.stop().await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn watches_see_puts_from_now_or_from_a_revision() -> anyhow::Result<()> {
    let etcd = MemKv::new();
    let link = etcd.connect();
    let store = Store::on(Arc::new(link.clone()), "sim");
    let writer = Store::on(Arc::new(etcd.connect()), "sim");
    let prefix = store.keys().traffic_prefix();
    let mut live = store.watch(&prefix, None).await?;
    let mut puts = store.watch_puts(&prefix).await?;
    let record = store.keys().traffic("www");
    writer.put_control(record.clone(), "{\"east\":100}").await?;
    writer.delete_control(record.clone()).await?;
    writer.put_control(record.clone(), "{\"west\":100}").await?;

    let Some(Ok(WatchEvent::Put(first))) = live.recv().await else {
        anyhow::bail!("no put seen");
    };
    assert_eq!(
        (first.key.as_str(), first.value.as_slice()),
        (record.as_str(), b"{\"east\":100}".as_slice())
    );
    assert!(matches!(
        live.recv().await,
        Some(Ok(WatchEvent::Delete { .. }))
    ));
    // The puts alone, deletes left out.
    for want in ["{\"east\":100}", "{\"west\":100}"] {
        let (key, value) = puts.recv().await.expect("a put")?;
        assert_eq!(
            (key.as_str(), value.as_slice()),
            (record.as_str(), want.as_bytes())
        );
    }
    // From a past revision: the change at it, and what followed.
    let again = store.watch(&prefix, Some(first.mod_revision)).await?;
    let replayed: Vec<_> = drain(again, 3).await;
    assert_eq!(replayed.len(), 3, "{replayed:?}");
    assert_eq!(replayed[0], WatchEvent::Put(first));
    // A cut link ends a watch with an error (a follower then re-lists).
    let mut cut = store.watch(&prefix, None).await?;
    link.set_reachable(false);
    assert!(matches!(cut.recv().await, Some(Err(_))));
    Ok(())
}

/// The first `n` events of `stream`.
async fn drain(mut stream: WatchStream, n: usize) -> Vec<WatchEvent> {
    let mut out = Vec::new();
    while out.len() < n {
        match stream.recv().await {
            Some(Ok(e)) => out.push(e),
            _ => break,
        }
    }
    out
}

#[tokio::test(start_paused = true)]
async fn paged_reads_and_counts_see_every_key() -> anyhow::Result<()> {
    let store = Store::on(Arc::new(MemKv::new()), "sim");
    let prefix = store.keys().history_prefix();
    for i in 0..7 {
        store
            .put_control(format!("{prefix}{i:013}"), &format!("{{\"i\":{i}}}"))
            .await?;
    }
    assert_eq!(store.count(&prefix).await?, 7);
    assert_eq!(
        store.page_keys(&prefix, 2).await?,
        ["0000000000000", "0000000000001"]
    );
    let last = store
        .page(&prefix, Some("0000000000005"), Direction::Backward, 2)
        .await?;
    let keys: Vec<&str> = last.entries.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["0000000000004", "0000000000003"]);
    assert!(last.more);
    let all: Vec<(String, serde_json::Value)> = store.list_json(&prefix).await?;
    assert_eq!(all.len(), 7);
    let listed = store.range(&RangeQuery::prefix(&prefix)).await?;
    assert_eq!(listed.count, 7);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_primary_lease_is_kept_alive_and_ends_when_its_holder_is_cut_off() -> anyhow::Result<()> {
    let etcd = MemKv::new();
    let holder_link = etcd.connect();
    let holder = Store::on(Arc::new(holder_link.clone()), "sim");
    let leader = Store::on(Arc::new(etcd.connect()), "sim");
    let value = LeaseValue {
        holder: "ctl-east".into(),
        region: "east".into(),
        primary: "m0".into(),
        epoch: Some(1),
        renewed_at: Utc::now(),
        ttl_ms: 0,
    };
    let key = holder.keys().primary_lease("orders");
    let lease = match PrimaryLease::acquire(holder.clone(), key, value, TTL, Utc::now()).await? {
        Acquired::Held(l) => *l,
        Acquired::HeldBy(v) => anyhow::bail!("held by {}", v.holder),
    };
    assert_eq!(lease.ttl(), TTL);
    let first = lease.renewal();
    tokio::time::sleep(3 * TTL).await;
    assert!(!lease.renewal().lost);
    assert!(lease.last_renewed() > first.last_renewed, "never renewed");

    let reader = LeaseReader::new(leader.clone(), DEFAULT_DRIFT_MARGIN);
    assert!(matches!(
        reader.observe("orders").await,
        LeaseObservation::Held(_)
    ));
    assert!(matches!(
        reader.lease_life(lease.lease_id()).await,
        LeaseLife::Running { left } if left <= TTL + Duration::from_secs(1)
    ));

    // The holder loses etcd: its keeper gives the lease up by its deadline,
    // and etcd ends it; the leader learns it is gone.
    holder_link.set_reachable(false);
    tokio::time::timeout(TTL + Duration::from_secs(1), lease.lost()).await?;
    tokio::time::sleep(TTL).await;
    assert_eq!(reader.lease_life(lease.lease_id()).await, LeaseLife::Gone);
    assert!(matches!(
        reader.observe("orders").await,
        LeaseObservation::Absent { .. }
    ));
    Ok(())
}

/// The model's etcd counts a lease's TTL on its own clock: one running
/// 10 % fast ends a 10 s lease after 10/1.1 s of tokio's, and says what
/// is left on its clock (the simulator gives etcd a rate of its own,
/// docs/SIMULATION.md).
#[tokio::test(start_paused = true)]
async fn a_lease_runs_out_on_etcds_own_clock() -> anyhow::Result<()> {
    let etcd = MemKv::new();
    etcd.set_clock_rate(100_000);
    let granted = etcd.grant(Duration::from_secs(10)).await?;
    etcd.put("k", b"v".to_vec(), Some(granted.id)).await?;
    tokio::time::sleep(Duration::from_millis(4_500)).await;
    // 4.59 s of tokio's left: 5.05 s on etcd's clock.
    assert_eq!(etcd.time_to_live(granted.id).await?, Duration::from_secs(5));
    tokio::time::sleep(Duration::from_millis(4_550)).await;
    assert!(etcd.get("k").await?.is_some(), "9.05 s: still held");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        etcd.get("k").await?.is_none(),
        "9.15 s: 10 s on etcd's clock"
    );

    // A renewal counts on the same clock.
    let slow = MemKv::new();
    slow.set_clock_rate(-100_000);
    let granted = slow.grant(Duration::from_secs(10)).await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    slow.keep_alive(granted.id).await?;
    tokio::time::sleep(Duration::from_millis(11_050)).await;
    assert!(
        slow.time_to_live(granted.id).await.is_ok(),
        "renewed 11.05 s ago"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        slow.time_to_live(granted.id).await.is_err(),
        "11.15 s: 10 s on a slow clock"
    );
    Ok(())
}
