//! The leader's promotion gate against a real etcd, through the executor
//! (issue 11, item 2): what it reads is what the region's controllers
//! wrote — the database's primary and epoch, the vouch of the last lease
//! taken, fence records, the lease itself.
//!
//! - A new primary (after a failover) whose region has a controller starts
//!   with the gate closed: the old primary's expired lease, an absent
//!   lease, and time do not open it; only its own region's lease (then
//!   gone) or its own fence does.
//! - A fence record from the previous epoch never opens the gate for the
//!   current primary; one made under the current epoch and lease does.
//! - A region without a controller is the documented exception.
//! - etcd's own expiry of the lease opens the gate (issue 12): a new
//!   leader that never saw the lease promotes as soon as etcd has ended
//!   it, not a full lease after it first found the key absent; a key
//!   deleted by hand while its lease still runs keeps the gate shut.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use switchyard_controller::executor::Executor;
use switchyard_controller::fence::gate::{Coverage, Gate, OpenedBy};
use switchyard_controller::fence::lease::{
    Acquired, DEFAULT_DRIFT_MARGIN, LeaseReader, LeaseValue, PrimaryLease,
};
use switchyard_controller::fence::local::{FenceOutcome, FenceRecord, FencedUnder};
use switchyard_controller::runtime::control::DatabaseState;
use switchyard_controller::store::Store;
use switchyard_controller::traffic::file::FileBackend;
use switchyard_tests::Etcd;
use switchyard_tests::wait::wait_for;

const TTL: Duration = Duration::from_secs(1);

/// Members m0 (region a), m1 (b), m2 (edge); controllers in a and b only.
fn coverage() -> Coverage {
    let mut c = Coverage::default();
    c.add_member("orders", "m0", "a");
    c.add_member("orders", "m1", "b");
    c.add_member("orders", "m2", "edge");
    c.add_controller("ctl-a", "a");
    c.add_controller("ctl-b", "b");
    c
}

struct Fixture {
    _etcd: Etcd,
    _dir: tempfile::TempDir,
    store: Store,
    executor: Executor,
}

async fn fixture() -> anyhow::Result<Fixture> {
    let etcd = Etcd::single().await?;
    let store = Store::connect(&etcd.endpoints(), "gate").await?;
    let dir = tempfile::tempdir()?;
    let reader = LeaseReader::new(store.clone(), DEFAULT_DRIFT_MARGIN)
        .with_lease_ttl(TTL)
        .with_coverage(coverage());
    let executor = Executor::new(
        store.clone(),
        Arc::new(FileBackend::new(dir.path().join("weights.json"))),
        "ctl-c",
    )
    .with_gate(Arc::new(reader));
    Ok(Fixture {
        _etcd: etcd,
        _dir: dir,
        store,
        executor,
    })
}

impl Fixture {
    async fn record_primary(&self, primary: &str, epoch: u64) -> anyhow::Result<()> {
        let state = DatabaseState {
            primary: primary.into(),
            epoch,
            last_failover: None,
        };
        self.store
            .put_json(self.store.keys().database("orders"), &state)
            .await?;
        Ok(())
    }

    /// Region `region`'s controller takes the lease of `primary` at `epoch`.
    async fn take_lease(
        &self,
        holder: &str,
        region: &str,
        primary: &str,
        epoch: u64,
    ) -> anyhow::Result<PrimaryLease> {
        self.take_lease_for(holder, region, primary, epoch, TTL)
            .await
    }

    /// [`Self::take_lease`] with a TTL of `ttl`.
    async fn take_lease_for(
        &self,
        holder: &str,
        region: &str,
        primary: &str,
        epoch: u64,
        ttl: Duration,
    ) -> anyhow::Result<PrimaryLease> {
        let value = LeaseValue {
            holder: holder.into(),
            region: region.into(),
            primary: primary.into(),
            epoch: Some(epoch),
            renewed_at: Utc::now(),
            ttl_ms: 0,
        };
        match PrimaryLease::acquire(
            self.store.clone(),
            self.store.keys().primary_lease("orders"),
            value,
            ttl,
            Utc::now(),
        )
        .await?
        {
            Acquired::Held(l) => Ok(*l),
            Acquired::HeldBy(v) => anyhow::bail!("held by {}", v.holder),
        }
    }

    async fn fence_record(&self, member: &str, under: FencedUnder) -> anyhow::Result<()> {
        let r = FenceRecord {
            at: Utc::now(),
            database: "orders".into(),
            member: member.into(),
            result: FenceOutcome::Fenced,
            reason: "test: isolated".into(),
            under: Some(under),
        };
        self.store
            .put_json(self.store.keys().fence("orders", member), &r)
            .await?;
        Ok(())
    }

    async fn gate(&self, replacing: &str) -> Gate {
        self.executor
            .promotion_gate("orders", replacing, false, Utc::now())
            .await
    }

    /// Asks the gate for replacing `replacing` until it opens (10 s).
    async fn wait_open(&self, replacing: &str) -> anyhow::Result<Gate> {
        wait_for(
            &format!("the gate for {replacing} to open"),
            Duration::from_secs(10),
            || async {
                match self.gate(replacing).await {
                    g @ Gate::Open { .. } => Ok(g),
                    Gate::Wait { reason, .. } => Err(reason),
                }
            },
        )
        .await
    }

    /// Waits until the primary lease key is gone.
    async fn wait_lease_gone(&self) -> anyhow::Result<()> {
        let key = self.store.keys().primary_lease("orders");
        wait_for(
            "the primary lease to vanish",
            Duration::from_secs(10),
            || async {
                match self.store.exists(&key).await {
                    Ok(false) => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            },
        )
        .await
    }
}

fn assert_wait(g: &Gate, words: &str) {
    match g {
        Gate::Wait { reason, .. } => assert!(reason.contains(words), "{reason}"),
        Gate::Open { .. } => panic!("the gate opened: {g:?}"),
    }
}

fn assert_open(g: &Gate, by: OpenedBy) {
    match g {
        Gate::Open { by: got, .. } => assert_eq!(*got, by, "{g:?}"),
        Gate::Wait { .. } => panic!("the gate stayed shut: {g:?}"),
    }
}

/// After a failover from m0 (region a) to m1 (region b), and before ctl-b
/// took m1's lease, m1 dies: nothing opens the gate for replacing it —
/// not m0's expired lease the leader saw, not an absent lease for many
/// TTLs, not m1's fence record from an earlier epoch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_primary_starts_with_the_gate_closed_until_its_region_takes_its_lease()
-> anyhow::Result<()> {
    let f = fixture().await?;
    // Epoch 1: m0 primary, ctl-a holds its lease; the leader sees it.
    f.record_primary("m0", 1).await?;
    let a = f.take_lease("ctl-a", "a", "m0", 1).await?;
    assert_wait(&f.gate("m0").await, "held by ctl-a in a");
    // Region a is cut off: the lease expires, the gate opens for m0.
    drop(a);
    f.wait_lease_gone().await?;
    assert_open(&f.wait_open("m0").await?, OpenedBy::LeaseExpired);
    // m1 was fenced at epoch 0 long ago (a stale record), and is promoted:
    // epoch 2. It dies before ctl-b takes its lease.
    f.fence_record(
        "m1",
        FencedUnder {
            primary: "m1".into(),
            epoch: 0,
            lease_id: Some(1),
        },
    )
    .await?;
    f.record_primary("m1", 2).await?;
    let waited = tokio::time::Instant::now();
    while waited.elapsed() < TTL * 4 {
        let g = f.gate("m1").await;
        assert_wait(
            &g,
            "no controller of region b has held the primary lease of m1",
        );
        assert_wait(&g, "taken by ctl-a for m0 at epoch 1");
        assert_wait(&g, "does not count");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // ctl-b takes m1's lease: held, shut.
    let b = f.take_lease("ctl-b", "b", "m1", 2).await?;
    assert_wait(&f.gate("m1").await, "held by ctl-b in b");
    // A fence of m1 made under epoch 2 and that lease opens it at once.
    f.fence_record(
        "m1",
        FencedUnder {
            primary: "m1".into(),
            epoch: 2,
            lease_id: Some(b.lease_id()),
        },
    )
    .await?;
    assert_open(&f.gate("m1").await, OpenedBy::Fenced);
    // Without the record, the lease running out opens it.
    f.store
        .delete_control(f.store.keys().fence("orders", "m1"))
        .await?;
    assert_wait(&f.gate("m1").await, "held by ctl-b in b");
    drop(b);
    f.wait_lease_gone().await?;
    assert_open(&f.wait_open("m1").await?, OpenedBy::LeaseExpired);
    Ok(())
}

/// A fence record counts only for the primary and epoch (and lease) it was
/// made under: m0, fenced and failed over away from at epoch 1, is primary
/// again at epoch 3 and its region renews its lease; the old record must
/// not open the gate, while a record made now does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fence_record_from_the_previous_epoch_does_not_open_the_gate() -> anyhow::Result<()> {
    let f = fixture().await?;
    f.record_primary("m0", 3).await?;
    let lease = f.take_lease("ctl-a", "a", "m0", 3).await?;
    f.fence_record(
        "m0",
        FencedUnder {
            primary: "m0".into(),
            epoch: 1,
            lease_id: Some(lease.lease_id()),
        },
    )
    .await?;
    let g = f.gate("m0").await;
    assert_wait(
        &g,
        "made while m0 was primary at epoch 1; now m0 is, at epoch 3",
    );
    // A failed fence under the right epoch is no fence either.
    let failed = FenceRecord {
        at: Utc::now(),
        database: "orders".into(),
        member: "m0".into(),
        result: FenceOutcome::Failed {
            error: "timeout".into(),
        },
        reason: "test".into(),
        under: Some(FencedUnder {
            primary: "m0".into(),
            epoch: 3,
            lease_id: Some(lease.lease_id()),
        }),
    };
    f.store
        .put_json(f.store.keys().fence("orders", "m0"), &failed)
        .await?;
    assert_wait(&f.gate("m0").await, "fencing m0 failed: timeout");
    // Made under epoch 3 and the current lease: counts.
    f.fence_record(
        "m0",
        FencedUnder {
            primary: "m0".into(),
            epoch: 3,
            lease_id: Some(lease.lease_id()),
        },
    )
    .await?;
    assert_open(&f.gate("m0").await, OpenedBy::Fenced);
    // The recorded primary moved on: a failover from m0 no longer applies.
    f.record_primary("m1", 4).await?;
    assert_wait(&f.gate("m0").await, "this failover no longer applies");
    Ok(())
}

/// The documented exception: m2's region has no controller, so nobody can
/// hold its lease or fence it; an absent lease opens the gate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_in_a_region_without_a_controller_is_the_exception() -> anyhow::Result<()> {
    let f = fixture().await?;
    f.record_primary("m2", 5).await?;
    assert_open(&f.gate("m2").await, OpenedBy::NoController);
    Ok(())
}

/// A new leader (its lease reader never saw the lease) asks the gate the
/// moment etcd has ended m0's lease: it opens then, on etcd's clock, not a
/// full lease (and the drift margin) after the reader first finds the key
/// absent, which is what made region loss take 5–8 s to a writable
/// database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gate_opens_when_etcd_ends_the_lease() -> anyhow::Result<()> {
    let f = fixture().await?;
    f.record_primary("m0", 1).await?;
    // A longer lease, so "a full lease after first seen absent" (3.5 s)
    // is far from "at once".
    let a = f
        .take_lease_for("ctl-a", "a", "m0", 1, Duration::from_secs(3))
        .await?;
    // The reader has watched etcd for over a lease when etcd ends it (as a
    // controller that has run for a while and just won the election).
    tokio::time::sleep(Duration::from_secs(1)).await;
    // ctl-a dies with its region: nobody renews; etcd ends the lease.
    drop(a);
    f.wait_lease_gone().await?;
    let g = f.gate("m0").await;
    assert_open(&g, OpenedBy::LeaseExpired);
    let Gate::Open { reason, .. } = g else {
        unreachable!()
    };
    assert!(reason.contains("etcd ended it"), "{reason}");
    Ok(())
}

/// The lease key deleted by hand while ctl-a still renews its etcd lease:
/// the key's absence says nothing, so the gate stays shut while etcd runs
/// the lease, and opens once etcd ends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_key_deleted_by_hand_does_not_open_the_gate() -> anyhow::Result<()> {
    let f = fixture().await?;
    f.record_primary("m0", 1).await?;
    let a = f.take_lease("ctl-a", "a", "m0", 1).await?;
    f.store
        .delete_control(f.store.keys().primary_lease("orders"))
        .await?;
    f.wait_lease_gone().await?;
    // Well past the lease's TTL, ctl-a still renews it: shut throughout.
    let since = tokio::time::Instant::now();
    while since.elapsed() < TTL * 4 {
        assert_wait(&f.gate("m0").await, "etcd still runs lease");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(a);
    assert_open(&f.wait_open("m0").await?, OpenedBy::LeaseExpired);
    Ok(())
}
