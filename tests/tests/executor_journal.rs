//! The executor against a real etcd: intents and outcomes are fenced, a new
//! leader finishes what its predecessor left pending exactly once, and a
//! deposed leader's writes are refused.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use switchyard_controller::executor::{
    ActionSpec, Executor, JournalEntry, Status, StepTiming, entry_id,
};
use switchyard_controller::store::kv::Op;
use switchyard_controller::store::{
    ElectionConfig, LEASE_MARGIN, Leadership, Role, Store, StoreError, election,
};
use switchyard_controller::traffic::file::FileBackend;
use switchyard_controller::traffic::{
    Applied, RecordChange, RecordState, TrafficBackend, TrafficChange, TrafficError,
};
use switchyard_tests::Etcd;
use tokio::sync::watch;

struct Node {
    role: watch::Receiver<Role>,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Node {
    async fn start(store: &Store, value: &str) -> Node {
        let (role_tx, role) = watch::channel(Role::Follower);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let cfg = ElectionConfig {
            name: store.keys().leader(),
            value: value.to_string(),
            ttl: TTL,
        };
        let task = tokio::spawn(election::run(store.clone(), cfg, role_tx, shutdown_rx));
        Node {
            role,
            shutdown,
            task,
        }
    }

    async fn leadership(&mut self) -> Leadership {
        let role = tokio::time::timeout(
            Duration::from_secs(15),
            self.role.wait_for(|r| matches!(r, Role::Leader(_))),
        )
        .await
        .expect("became leader in time")
        .expect("election running")
        .clone();
        match role {
            Role::Leader(l) => l,
            Role::Follower => unreachable!("waited for leader"),
        }
    }

    async fn stop(self) {
        self.shutdown.send_replace(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}

/// The lease TTL of these tests' elections.
const TTL: Duration = Duration::from_secs(3);

fn timing() -> StepTiming {
    StepTiming::for_lease(TTL, LEASE_MARGIN)
}

fn weights(pairs: &[(&str, u32)]) -> std::collections::BTreeMap<String, u32> {
    pairs.iter().map(|(r, w)| (r.to_string(), *w)).collect()
}

fn calls(backend: &FileBackend) -> usize {
    std::fs::read_to_string(backend.calls_path())
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intents_outcomes_and_takeover() -> anyhow::Result<()> {
    let etcd = Etcd::single().await?;
    let store = Store::connect(&etcd.endpoints(), "journal-test").await?;
    let dir = tempfile::tempdir()?;
    let backend = Arc::new(FileBackend::new(dir.path().join("weights.json")));

    let mut a = Node::start(&store, "ctl-a").await;
    let lead_a = a.leadership().await;
    let exec_a = Executor::new(store.clone(), backend.clone(), "ctl-a");

    // An action is journaled, applied once, and its outcome recorded.
    let evacuate = ActionSpec::SetWeights {
        record: "api.example.com.".into(),
        weights: weights(&[("a", 0), ("b", 200)]),
    };
    let done = exec_a
        .execute(&lead_a, evacuate.clone(), vec!["a down".into()], Utc::now())
        .await?;
    assert_eq!(done.status, Status::Done);
    assert_eq!(done.outcome.as_deref(), Some("applied"));
    assert_eq!(calls(&backend), 1);
    let stored: Option<JournalEntry> = store.get_json(&store.keys().journal(&done.id)).await?;
    assert_eq!(stored.map(|e| e.status), Some(Status::Done));
    let desired: Option<std::collections::BTreeMap<String, u32>> = store
        .get_json(&store.keys().traffic("api.example.com."))
        .await?;
    assert_eq!(desired, Some(weights(&[("a", 0), ("b", 200)])));
    let history: Vec<(String, serde_json::Value)> =
        store.list_json(&store.keys().history_prefix()).await?;
    assert_eq!(history.len(), 1);

    // The same action again is found done and not re-applied.
    let again = exec_a
        .execute(&lead_a, evacuate, vec![], Utc::now())
        .await?;
    assert_eq!(again.outcome.as_deref(), Some("already applied"));
    assert_eq!(calls(&backend), 1);

    // A leader writes two intents and "crashes": one before its action ran,
    // one after the action ran but before its outcome was written.
    let before_action = JournalEntry {
        id: entry_id(lead_a.token(), 100),
        action: ActionSpec::SetWeights {
            record: "web.example.com.".into(),
            weights: weights(&[("a", 50), ("b", 150)]),
        },
        reasons: vec!["test".into()],
        status: Status::Pending,
        created_by: "ctl-a".into(),
        created_at: Utc::now(),
        finished_by: None,
        finished_at: None,
        outcome: None,
        request: None,
        steps: Vec::new(),
        retryable: None,
        write_unavailable_ms: None,
    };
    let after_action = JournalEntry {
        id: entry_id(lead_a.token(), 101),
        action: ActionSpec::SetWeights {
            record: "api.example.com.".into(),
            weights: weights(&[("a", 100), ("b", 100)]),
        },
        ..before_action.clone()
    };
    for e in [&before_action, &after_action] {
        store
            .fenced_put(&lead_a, store.keys().journal(&e.id), e)
            .await?;
    }
    backend
        .apply(&[RecordChange {
            record: "api.example.com.".into(),
            weights: weights(&[("a", 100), ("b", 100)]),
        }])
        .await?;
    assert_eq!(calls(&backend), 2);

    // Node B campaigns; A goes away; B leads and finishes both, each once.
    let mut b = Node::start(&store, "ctl-b").await;
    a.stop().await;
    let lead_b = b.leadership().await;
    assert_ne!(lead_b.token(), lead_a.token());
    let exec_b = Executor::new(store.clone(), backend.clone(), "ctl-b").with_timing(timing());
    let finished = exec_b.finish_pending(&lead_b, Utc::now()).await?;
    // B ran no step of A's intents before A's whole lease plus the longest
    // step had passed since B won (A may have been inside a step).
    let waited = lead_b.won_at().elapsed();
    assert!(
        waited >= timing().takeover_quiet(),
        "B resumed its predecessor's intents {waited:?} after winning"
    );
    assert_eq!(finished.len(), 2);
    assert_eq!(finished[0].id, before_action.id);
    assert_eq!(finished[0].outcome.as_deref(), Some("applied"));
    assert_eq!(finished[1].outcome.as_deref(), Some("already applied"));
    assert!(
        finished
            .iter()
            .all(|e| e.finished_by.as_deref() == Some("ctl-b"))
    );
    assert_eq!(
        calls(&backend),
        3,
        "exactly one more apply: the unfinished one"
    );
    assert!(exec_b.finish_pending(&lead_b, Utc::now()).await?.is_empty());

    // The deposed leader's handle is refused by the fence.
    let refused = store
        .fenced_put(&lead_a, store.keys().region("a"), &"stale")
        .await;
    assert!(matches!(refused, Err(StoreError::NotLeader(_))));
    assert!(!lead_a.is_held());
    b.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_token_is_refused_even_while_the_handle_thinks_it_leads() -> anyhow::Result<()> {
    let etcd = Etcd::single().await?;
    let store = Store::connect(&etcd.endpoints(), "fence-test").await?;
    let mut a = Node::start(&store, "ctl-a").await;
    let lead_a = a.leadership().await;
    // Someone deletes the leader key behind A's back (as a lease expiry would).
    store.delete_control(lead_a.key().to_string()).await?;
    assert!(lead_a.is_held(), "A has not noticed yet");
    let r = store.fenced_put(&lead_a, store.keys().pause(), &true).await;
    assert!(matches!(r, Err(StoreError::NotLeader(_))), "{r:?}");
    assert!(
        !lead_a.is_held(),
        "a refused fence makes the node step down"
    );
    assert!(!store.exists(&store.keys().pause()).await?);
    a.stop().await;
    Ok(())
}

/// The write of a request's intent also requires the request key; when it
/// fails, a deposed leader is still told it is deposed (and steps down),
/// not that the request was withdrawn — whether the key is there or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_leader_is_told_so_by_the_request_guarded_write() -> anyhow::Result<()> {
    let etcd = Etcd::single().await?;
    let store = Store::connect(&etcd.endpoints(), "fence-while-test").await?;
    for request_present in [false, true] {
        let mut a = Node::start(&store, "ctl-a").await;
        let lead_a = a.leadership().await;
        let key = store.keys().request("r-9");
        if request_present {
            store.put_control(key.clone(), "{}").await?;
        }
        store.delete_control(lead_a.key().to_string()).await?;
        assert!(lead_a.is_held(), "A has not noticed yet");
        let ops = vec![Op::put(store.keys().pause(), "true")];
        let r = store.fenced_txn_while(&lead_a, &key, ops).await;
        assert!(
            matches!(r, Err(StoreError::NotLeader(_))),
            "request present {request_present}: {r:?}"
        );
        assert!(
            !lead_a.is_held(),
            "a refused fence makes the node step down"
        );
        assert!(!store.exists(&store.keys().pause()).await?);
        a.stop().await;
    }
    Ok(())
}

/// A traffic backend whose read uses up nearly all of the leader's lease
/// once etcd has gone silent (as a slow Route 53 call might), and which
/// counts applies.
struct SlowBackend {
    inner: FileBackend,
    lead: Leadership,
    /// Told once the test has paused etcd.
    paused: tokio::sync::Notify,
    reading: tokio::sync::Notify,
    applies: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl TrafficBackend for SlowBackend {
    async fn read(&self, record: &str) -> Result<RecordState, TrafficError> {
        self.reading.notify_one();
        self.paused.notified().await;
        // No renewal can land now: end just inside the step's budget.
        let end = self.lead.deadline() - LEASE_MARGIN - Duration::from_millis(50);
        tokio::time::sleep_until(end).await;
        self.inner.read(record).await
    }

    async fn apply_change(&self, change: &TrafficChange) -> Result<Applied, TrafficError> {
        self.applies
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.apply_change(change).await
    }
}

/// A leader cut off from etcd in the middle of an action takes no further
/// external step once its lease can no longer outlast one: the apply that
/// would follow the read never starts, and the intent stays pending (with
/// no outcome) for the next leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_cannot_renew_takes_no_further_step() -> anyhow::Result<()> {
    let mut etcd = Etcd::single().await?;
    let store = Store::connect(&etcd.endpoints(), "deposed-test").await?;
    let dir = tempfile::tempdir()?;
    let mut a = Node::start(&store, "ctl-a").await;
    let lead = a.leadership().await;
    let backend = Arc::new(SlowBackend {
        inner: FileBackend::new(dir.path().join("weights.json")),
        lead: lead.clone(),
        paused: tokio::sync::Notify::new(),
        reading: tokio::sync::Notify::new(),
        applies: Default::default(),
    });
    // Steps as long as the lease allows, so only the lease bounds them.
    let timing = StepTiming {
        max_step: Duration::from_secs(60),
        ..timing()
    };
    let exec = Executor::new(store.clone(), backend.clone(), "ctl-a").with_timing(timing);
    let action = ActionSpec::SetWeights {
        record: "api.example.com.".into(),
        weights: weights(&[("a", 0), ("b", 200)]),
    };
    let run = {
        let lead = lead.clone();
        tokio::spawn(async move { exec.execute(&lead, action, vec![], Utc::now()).await })
    };
    // The intent is written and the read (step one) is under way: etcd
    // goes silent, so the lease can no longer be renewed.
    backend.reading.notified().await;
    etcd.pause(0);
    backend.paused.notify_one();
    let result = tokio::time::timeout(Duration::from_secs(20), run).await??;
    etcd.resume(0);
    assert_eq!(
        backend.applies.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "no external step may start once the lease cannot outlast it ({result:?})"
    );
    assert!(
        matches!(&result, Err(e) if e.lost_leadership()),
        "the action must stop as deposed, got {result:?}"
    );
    assert!(!lead.is_held(), "the node stepped down");
    etcd.wait_writable().await?;
    let entries: Vec<(String, JournalEntry)> =
        store.list_json(&store.keys().journal_prefix()).await?;
    assert_eq!(entries.len(), 1);
    assert_eq!(
        entries[0].1.status,
        Status::Pending,
        "left for the next leader"
    );
    assert_eq!(entries[0].1.outcome, None);
    a.stop().await;
    Ok(())
}

/// An operator request cancelled between the leader reading it and
/// writing its intent is not started: the intent's fenced write also
/// requires the request key, and a missing one is told apart from lost
/// leadership (the leader stays leader).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_withdrawn_before_its_intent_is_written_is_not_started() -> anyhow::Result<()> {
    let etcd = Etcd::single().await?;
    let store = Store::connect(&etcd.endpoints(), "withdrawn-test").await?;
    let dir = tempfile::tempdir()?;
    let backend = Arc::new(FileBackend::new(dir.path().join("weights.json")));
    let mut a = Node::start(&store, "ctl-a").await;
    let lead = a.leadership().await;
    let exec = Executor::new(store.clone(), backend.clone(), "ctl-a");
    let action = ActionSpec::SetWeights {
        record: "api.example.com.".into(),
        weights: weights(&[("a", 0), ("b", 200)]),
    };
    // Withdrawn: no request key (a cancel deleted it).
    let gone = exec
        .execute_request(
            &lead,
            action.clone(),
            vec![],
            Some("r-1".into()),
            Utc::now(),
        )
        .await;
    assert!(
        matches!(&gone, Err(switchyard_controller::executor::ExecError::Withdrawn(id)) if id == "r-1"),
        "{gone:?}"
    );
    assert!(lead.is_held(), "a withdrawn request is not lost leadership");
    let journal: Vec<(String, JournalEntry)> =
        store.list_json(&store.keys().journal_prefix()).await?;
    assert!(journal.is_empty(), "{journal:?}");
    assert_eq!(calls(&backend), 0);
    // Standing: carried out, and the request key consumed with it.
    store.put_control(store.keys().request("r-2"), "{}").await?;
    let done = exec
        .execute_request(&lead, action, vec![], Some("r-2".into()), Utc::now())
        .await?;
    assert_eq!(done.status, Status::Done);
    assert!(!store.exists(&store.keys().request("r-2")).await?);
    a.stop().await;
    Ok(())
}
