//! A failover intent that was interrupted after some of its steps is
//! resumed, not dropped: against a real etcd, with a stand-in replica set
//! that counts what it is asked (the control flow of the executor is under
//! test here; the replica sets' own behaviour is tested on real MariaDB).
//!
//! - A predecessor's unforced failover with steps done is not sent through
//!   the promotion gate again: a new leader's lease reader knows nothing
//!   yet and would keep it shut, stranding the intent half done.
//! - A retryable database error after some steps gets no final outcome: the
//!   intent stays pending and a later pass finishes it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::Utc;
use switchyard_controller::executor::{
    ActionSpec, Executor, JournalEntry, Status, StepTiming, entry_id,
};
use switchyard_controller::fence::lease::LeaseReader;
use switchyard_controller::store::{
    ElectionConfig, LEASE_MARGIN, Leadership, Role, Store, election,
};
use switchyard_controller::traffic::file::FileBackend;
use switchyard_probes::replication::{
    FailoverRequest, Operation, Position, ReplError, ReplicaSet, Report, Snapshot, Step, StepGuard,
};
use switchyard_tests::Etcd;
use tokio::sync::watch;

const TTL: Duration = Duration::from_secs(2);

/// A replica set whose failover takes one guarded step, then fails with a
/// retryable error the first `fail_first` times, then promotes m1.
struct CountingSet {
    calls: AtomicUsize,
    fail_first: usize,
}

#[async_trait::async_trait]
impl ReplicaSet for CountingSet {
    async fn observe(&self) -> Result<Snapshot, ReplError> {
        Err(ReplError::InvalidSpec {
            detail: "not used".into(),
        })
    }
    async fn fence(&self, _: &str) -> Result<(), ReplError> {
        Ok(())
    }
    async fn unfence(&self, _: &str, _: &dyn StepGuard) -> Result<bool, ReplError> {
        Ok(false)
    }
    async fn promote(&self, _: &str, _: &dyn StepGuard) -> Result<(), ReplError> {
        Ok(())
    }
    async fn repoint(&self, _: &str, _: &str, _: &dyn StepGuard) -> Result<(), ReplError> {
        Ok(())
    }
    async fn wait_caught_up(
        &self,
        _: &str,
        _: &Position,
        _: Duration,
        _: &dyn StepGuard,
    ) -> Result<(), ReplError> {
        Ok(())
    }
    async fn switchover(
        &self,
        _: &str,
        _: Option<&str>,
        _: Duration,
        _: &dyn StepGuard,
    ) -> Result<Report, ReplError> {
        Err(ReplError::InvalidSpec {
            detail: "not used".into(),
        })
    }
    async fn failover(
        &self,
        _req: &FailoverRequest,
        guard: &dyn StepGuard,
    ) -> Result<Report, ReplError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        let step = Step::Promote {
            member: "m1".into(),
        };
        if !guard.finished().contains(&step) {
            guard.begin(&step).await?;
            guard.done(&step).await?;
        }
        if n < self.fail_first {
            return Err(ReplError::Unreachable {
                member: "m2".into(),
                address: "x".into(),
                detail: "repointing timed out".into(),
            });
        }
        let mut r = Report::new(Operation::Failover, Some("m0".into()), "m1");
        r.changed = true;
        Ok(r)
    }
}

async fn lead(store: &Store) -> (Leadership, watch::Sender<bool>) {
    let (role_tx, mut role) = watch::channel(Role::Follower);
    let (stop, stop_rx) = watch::channel(false);
    let cfg = ElectionConfig {
        name: store.keys().leader(),
        value: "ctl-b".into(),
        ttl: TTL,
    };
    tokio::spawn(election::run(store.clone(), cfg, role_tx, stop_rx));
    let r = tokio::time::timeout(
        Duration::from_secs(15),
        role.wait_for(|r| matches!(r, Role::Leader(_))),
    )
    .await
    .expect("leads in time")
    .expect("election runs")
    .clone();
    match r {
        Role::Leader(l) => (l, stop),
        Role::Follower => unreachable!(),
    }
}

fn executor(store: &Store, dir: &std::path::Path, set: Arc<CountingSet>) -> Executor {
    let databases: BTreeMap<String, Arc<dyn ReplicaSet>> =
        [("orders".to_string(), set as _)].into();
    let backend = Arc::new(FileBackend::new(dir.join("weights.json")));
    Executor::with_databases(store.clone(), backend, databases, "ctl-b")
        .with_gate(Arc::new(
            LeaseReader::new(store.clone(), Duration::from_millis(500)).with_lease_ttl(TTL * 2),
        ))
        .with_timing(StepTiming::for_lease(TTL, LEASE_MARGIN))
}

fn failover_entry(token: i64, steps: Vec<Step>) -> JournalEntry {
    JournalEntry {
        id: entry_id(token, 1),
        action: ActionSpec::Failover {
            database: "orders".into(),
            from_member: "m0".into(),
            to_member: None,
            force: false,
            avoid_regions: Default::default(),
        },
        reasons: vec!["m0 down".into()],
        status: Status::Pending,
        created_by: "ctl-a".into(),
        created_at: Utc::now(),
        finished_by: None,
        finished_at: None,
        outcome: None,
        request: None,
        steps,
        retryable: None,
        write_unavailable_ms: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_predecessors_half_done_failover_is_finished_not_re_gated() -> anyhow::Result<()> {
    let etcd = Etcd::single().await?;
    let store = Store::connect(&etcd.endpoints(), "resume-test").await?;
    let dir = tempfile::tempdir()?;
    let (lead, _stop) = lead(&store).await;
    // Written by an earlier term, which fenced m0 and stopped.
    let entry = failover_entry(
        lead.token() - 1,
        vec![Step::Fence {
            member: "m0".into(),
        }],
    );
    store
        .fenced_put(&lead, store.keys().journal(&entry.id), &entry)
        .await?;
    let set = Arc::new(CountingSet {
        calls: AtomicUsize::new(0),
        fail_first: 0,
    });
    let exec = executor(&store, dir.path(), set.clone());
    let done = exec.finish_pending(&lead, Utc::now()).await?;
    assert_eq!(done.len(), 1);
    assert_eq!(
        done[0].status,
        Status::Done,
        "resumed past the gate: {:?}",
        done[0].outcome
    );
    assert_eq!(set.calls.load(Ordering::SeqCst), 1);
    // A fresh intent with nothing done still meets the (shut) gate.
    let fresh = failover_entry(lead.token(), vec![]);
    store
        .fenced_put(&lead, store.keys().journal(&fresh.id), &fresh)
        .await?;
    let done = exec.finish_pending(&lead, Utc::now()).await?;
    assert_eq!(done[0].status, Status::Failed, "{:?}", done[0].outcome);
    assert!(
        done[0]
            .outcome
            .as_deref()
            .is_some_and(|o| o.contains("promotion gate closed")),
        "{:?}",
        done[0].outcome
    );
    assert_eq!(set.calls.load(Ordering::SeqCst), 1, "the gate held it");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retryable_error_after_a_step_leaves_the_intent_pending_to_resume() -> anyhow::Result<()>
{
    let etcd = Etcd::single().await?;
    let store = Store::connect(&etcd.endpoints(), "interrupt-test").await?;
    let dir = tempfile::tempdir()?;
    let (lead, _stop) = lead(&store).await;
    let set = Arc::new(CountingSet {
        calls: AtomicUsize::new(0),
        fail_first: 1,
    });
    let exec = executor(&store, dir.path(), set.clone());
    // A forced failover (no gate): promotes m1, then fails repointing.
    let action = ActionSpec::Failover {
        database: "orders".into(),
        from_member: "m0".into(),
        to_member: None,
        force: true,
        avoid_regions: Default::default(),
    };
    let r = exec.execute(&lead, action, vec![], Utc::now()).await;
    assert!(matches!(&r, Err(e) if e.interrupted()), "{r:?}");
    let pending: Vec<(String, JournalEntry)> =
        store.list_json(&store.keys().journal_prefix()).await?;
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].1.status, Status::Pending, "no final outcome");
    assert_eq!(
        pending[0].1.steps,
        vec![Step::Promote {
            member: "m1".into()
        }]
    );
    // The leader resumes it: done, the promotion not repeated.
    let done = exec.finish_pending(&lead, Utc::now()).await?;
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].status, Status::Done, "{:?}", done[0].outcome);
    assert_eq!(
        done[0].steps.len(),
        1,
        "the promote step was not taken twice"
    );
    assert_eq!(set.calls.load(Ordering::SeqCst), 2);
    Ok(())
}
