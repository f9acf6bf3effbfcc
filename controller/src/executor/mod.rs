//! Journaled, idempotent execution of a plan (ARCHITECTURE.md §6):
//!
//! 1. write the intent (`pending`) with a fenced txn;
//! 2. check the lease still has a margin, then act idempotently: read the
//!    world first and act only if it differs from the intent;
//! 3. write the outcome (`done` | `failed`), the new desired state and a
//!    history event in one fenced txn.
//!
//! A new leader calls [`Executor::finish_pending`] before deciding anything:
//! an intent its predecessor wrote but did not finish is completed once —
//! the read-first step makes a re-run after a crash a no-op.

pub mod compaction;
pub mod guard;
pub use switchyard_core::journal;
pub mod step_window;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use chrono::{DateTime, Utc};

use switchyard_probes::replication::{FailoverRequest, ReplError, ReplicaSet};

use crate::fence::gate::{self, FenceAttempt, Gate};
use crate::fence::lease::{LeaseLife, LeaseObservation, LeaseReader, VouchObservation};
use crate::fence::local::FenceRecord;
use crate::runtime::control::DatabaseState;
use crate::store::kv::Op;
use crate::store::{LEASE_MARGIN, Leadership, Store, StoreError, encode};
use crate::traffic::records::RecordBook;
use crate::traffic::{RecordChange, TrafficBackend, TrafficChange, TrafficError, WriterChange};
pub use guard::LeaderGuard;
pub use journal::{ActionSpec, HistoryEvent, JournalEntry, Status, entry_id, history_id};
pub use step_window::StepTiming;

/// How long an opened promotion gate is trusted by the action that follows
/// it; older, and the gate is asked again before promoting.
const GATE_FRESH: Duration = Duration::from_secs(10);

/// How long a planned switchover waits for the target to catch up.
pub const SWITCHOVER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Why an execution stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// This node is not (or no longer safely) the leader: stop, act on nothing.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A database action failed with a retryable error after some of its
    /// steps were done: it may have changed a member (made the candidate
    /// writable, say), so it gets no final outcome. The intent stays
    /// pending, and the leader resumes it from its cursor before anything
    /// else.
    #[error("intent {id} interrupted after {steps} step(s), to be resumed: {cause}")]
    Interrupted {
        /// The journal entry.
        id: String,
        /// How many steps it had done.
        steps: usize,
        /// What stopped it.
        cause: String,
    },
    /// The operator request was withdrawn (cancelled) between the leader
    /// reading it and writing its intent: nothing was written or done.
    #[error("request {0} was withdrawn before it started: nothing done")]
    Withdrawn(String),
}

impl ExecError {
    /// True when this node lost leadership (as opposed to etcd trouble).
    pub fn lost_leadership(&self) -> bool {
        matches!(self, ExecError::Store(StoreError::NotLeader(_)))
    }

    /// True when an intent was left pending to be resumed.
    pub fn interrupted(&self) -> bool {
        matches!(self, ExecError::Interrupted { .. })
    }
}

/// Carries out actions for the leader, through the backends' traits.
pub struct Executor {
    store: Store,
    traffic: Arc<dyn TrafficBackend>,
    databases: BTreeMap<String, Arc<dyn ReplicaSet>>,
    controller_id: String,
    seq: AtomicU64,
    leases: Option<Arc<LeaseReader>>,
    timing: StepTiming,
    // Database → its writer record, and every record's targets.
    writers: BTreeMap<String, String>,
    book: RecordBook,
    // database → (primary replaced, when its gate opened).
    opened: Mutex<BTreeMap<String, (String, Instant)>>,
    // (database, primary) pairs whose replacement is waiting at the gate.
    waiting: Mutex<std::collections::BTreeSet<(String, String)>>,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("controller_id", &self.controller_id)
            .finish()
    }
}

impl Executor {
    /// An executor acting as controller `controller_id`.
    pub fn new(store: Store, traffic: Arc<dyn TrafficBackend>, controller_id: &str) -> Self {
        Self::with_databases(store, traffic, BTreeMap::new(), controller_id)
    }

    /// An executor that can also fail databases over, through their adapters.
    pub fn with_databases(
        store: Store,
        traffic: Arc<dyn TrafficBackend>,
        databases: BTreeMap<String, Arc<dyn ReplicaSet>>,
        controller_id: &str,
    ) -> Self {
        Executor {
            store,
            traffic,
            databases,
            controller_id: controller_id.to_string(),
            seq: AtomicU64::new(0),
            leases: None,
            timing: StepTiming::for_lease(Duration::from_secs(5), LEASE_MARGIN),
            writers: BTreeMap::new(),
            book: RecordBook::default(),
            opened: Mutex::new(BTreeMap::new()),
            waiting: Mutex::new(std::collections::BTreeSet::new()),
        }
    }

    /// Bounds every external step by the leader lease's timing (default:
    /// a 5 s lease).
    pub fn with_timing(mut self, timing: StepTiming) -> Self {
        self.timing = timing;
        self
    }

    /// Moves each database's writer record (database → record, targets in
    /// `book`) with its primary, as a step of every failover and switchover.
    pub fn with_writers(mut self, book: RecordBook, writers: BTreeMap<String, String>) -> Self {
        self.book = book;
        self.writers = writers;
        self
    }

    /// True when `database` has a writer record and it does not name
    /// `member` (read now, bounded by `budget`): the leader then journals a
    /// [`ActionSpec::MoveWriter`].
    pub async fn writer_misplaced(&self, database: &str, member: &str, budget: Duration) -> bool {
        let Some(record) = self.writers.get(database) else {
            return false;
        };
        match switchyard_host::time::timeout(budget, self.writer_names(record, member)).await {
            Ok(Ok(names)) => !names,
            Ok(Err(e)) => {
                tracing::debug!(record = %record, error = %e, "cannot read the writer record");
                false
            }
            Err(_) => false,
        }
    }

    /// Does writer record `record` name `member` alone?
    async fn writer_names(&self, record: &str, member: &str) -> Result<bool, ActionError> {
        let want = self
            .book
            .writer(record)?
            .members
            .get(member)
            .map(|t| t.value.clone())
            .ok_or_else(|| ActionError::Refused(format!("{record} has no target for {member}")))?;
        let state = self.traffic.read(record).await?;
        Ok(state.0.len() == 1
            && state
                .0
                .values()
                .all(|t| t.value.as_deref() == Some(want.as_str())))
    }

    /// The step of a failover or switchover that moves applications: points
    /// `database`'s writer record (if any) at `member`. `Ok(None)` when it
    /// has none; the words for the outcome otherwise.
    async fn move_writer(
        &self,
        database: &str,
        member: &str,
        guard: &LeaderGuard<'_>,
    ) -> Result<Option<String>, ActionError> {
        let Some(record) = self.writers.get(database) else {
            return Ok(None);
        };
        let budget = guard.budget("read the writer record").await?;
        let names =
            match switchyard_host::time::timeout(budget, self.writer_names(record, member)).await {
                Ok(r) => r?,
                Err(_) => false,
            };
        if names {
            return Ok(Some(format!(
                "writer record {record} already names {member}"
            )));
        }
        let budget = guard.budget("move the writer record").await?;
        bounded(
            budget,
            "moving the writer record",
            self.traffic.apply_change(&TrafficChange {
                writers: vec![WriterChange {
                    record: record.clone(),
                    member: member.to_string(),
                }],
                ..TrafficChange::default()
            }),
        )
        .await?;
        Ok(Some(format!("writer record {record} now names {member}")))
    }

    /// Adds the writer step to a failover or switchover that changed (or
    /// found) the primary. A writer record that cannot be moved now does
    /// not undo the promotion: the outcome says so and the leader repairs
    /// it with a [`ActionSpec::MoveWriter`].
    async fn with_writer_step(
        &self,
        database: &str,
        mut done: Performed,
        guard: &LeaderGuard<'_>,
    ) -> Result<Performed, ActionError> {
        let Some(primary) = done.new_primary.clone() else {
            return Ok(done);
        };
        match self.move_writer(database, &primary, guard).await {
            Ok(Some(words)) => done.outcome.push_str(&format!("; {words}")),
            Ok(None) => {}
            Err(e) if e.deposed() => return Err(e),
            Err(e) => done.outcome.push_str(&format!(
                "; writer record not moved yet ({e}): the leader retries"
            )),
        }
        Ok(done)
    }

    /// Guards every unforced failover with the promotion gate
    /// ([`crate::fence::gate`]), reading primary leases through `leases`.
    /// Without it (tests of the journal alone) failovers are not gated.
    pub fn with_gate(mut self, leases: Arc<LeaseReader>) -> Self {
        self.leases = Some(leases);
        self
    }

    /// May a replacement for `old_primary` of `database` be promoted now?
    /// A forced failover always may (history records that the gate was
    /// skipped). Otherwise [`gate::may_promote`] judges what etcd holds now:
    /// the database's recorded primary and epoch, the last lease taken for
    /// it (its vouch), its fence record ([`Self::recorded_fence`]) and,
    /// read last, its primary lease. The timing runs on this host's
    /// monotonic clock; `_now` (the caller's wall clock) is not used for it.
    ///
    /// The leader does not fence the old primary to open the gate: while
    /// its region's controller renews the lease, that controller still
    /// reaches it, and replacing a primary its own region vouches for is
    /// how a partial partition becomes split brain.
    pub async fn promotion_gate(
        &self,
        database: &str,
        old_primary: &str,
        force: bool,
        _now: DateTime<Utc>,
    ) -> Gate {
        let Some(leases) = &self.leases else {
            return Gate::Open {
                by: gate::OpenedBy::Ungated,
                reason: "no promotion gate configured".into(),
            };
        };
        let g = if force {
            Gate::Open {
                by: gate::OpenedBy::Forced,
                reason: gate::FORCED_REASON.to_string(),
            }
        } else {
            let state: Option<DatabaseState> = self
                .store
                .get_json(&self.store.keys().database(database))
                .await
                .ok()
                .flatten();
            let vouch = leases.vouch(database).await;
            let fence = match &state {
                Some(s) => self.recorded_fence(database, s, &vouch).await,
                None => FenceAttempt::NotAttempted,
            };
            let lease = leases.observe(database).await;
            let cover = state.as_ref().map_or(gate::Cover::UnknownMember, |s| {
                leases.coverage().cover(database, &s.primary)
            });
            let ttl = match &vouch {
                VouchObservation::Present(v) => Duration::from_millis(v.lease.ttl_ms),
                _ => Duration::ZERO,
            };
            // Asked only when it can matter: a vouch, and no lease key.
            let vouched_lease = match (&vouch, &lease) {
                (VouchObservation::Present(v), LeaseObservation::Absent { .. }) => {
                    match leases.lease_life(v.lease_id).await {
                        // A lease taken between the reads above and this
                        // answer would make "gone" stale: read the vouch
                        // and the key again, and count it only if neither
                        // moved.
                        LeaseLife::Gone => {
                            let again = leases.vouch(database).await;
                            let key_back = self
                                .store
                                .exists(&self.store.keys().primary_lease(database))
                                .await;
                            match (again, key_back) {
                                (VouchObservation::Present(w), Ok(false))
                                    if w.lease_id == v.lease_id =>
                                {
                                    LeaseLife::Gone
                                }
                                _ => LeaseLife::Unknown {
                                    error: "a lease was taken while the gate read it".into(),
                                },
                            }
                        }
                        other => other,
                    }
                }
                _ => LeaseLife::Unknown {
                    error: "not asked".into(),
                },
            };
            let evidence = gate::Evidence {
                state: state.as_ref(),
                cover: &cover,
                lease: &lease,
                vouch: &vouch,
                fence: &fence,
                vouched_lease: &vouched_lease,
                unseen_wait: leases.unseen_wait(ttl),
            };
            gate::may_promote(old_primary, &evidence, false, switchyard_host::time::now())
        };
        let pair = (database.to_string(), old_primary.to_string());
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        match &g {
            Gate::Open { .. } => {
                waiting.remove(&pair);
                self.opened
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(
                        database.to_string(),
                        (old_primary.to_string(), switchyard_host::time::now()),
                    );
            }
            Gate::Wait { .. } => {
                // Counted once per replacement that had to wait, not per poll.
                if waiting.insert(pair) {
                    metrics::counter!("switchyard_promotion_gate_waits_total", "database" => database.to_string())
                        .increment(1);
                }
            }
        }
        g
    }

    /// Reads `database`'s primary leases now, so that a later gate decision
    /// knows when each was last seen (the leader calls it every second).
    pub async fn observe_leases(&self, databases: impl Iterator<Item = &String>) {
        if let Some(leases) = &self.leases {
            for db in databases {
                let _ = leases.observe(db).await;
            }
        }
    }

    /// The fence record of `state`'s primary, judged by
    /// [`gate::judge_record`]: it counts only for the primary, epoch and
    /// lease it was made under, and a failed fence is not a fence.
    async fn recorded_fence(
        &self,
        database: &str,
        state: &DatabaseState,
        vouch: &VouchObservation,
    ) -> FenceAttempt {
        let key = self.store.keys().fence(database, &state.primary);
        match self.store.get_json::<FenceRecord>(&key).await {
            Ok(record) => gate::judge_record(record.as_ref(), state, vouch),
            Err(_) => FenceAttempt::NotAttempted,
        }
    }

    /// True when the gate for replacing `old_primary` opened recently.
    fn gate_fresh(&self, database: &str, old_primary: &str) -> bool {
        self.opened
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(database)
            .is_some_and(|(p, at)| {
                p == old_primary && switchyard_host::time::since(*at) < GATE_FRESH
            })
    }

    /// Journals `action`, performs it, journals the outcome. Returns the
    /// finished entry (an action that failed is `Status::Failed`, not an
    /// error); an error means leadership or etcd was lost and the intent, if
    /// written, stays pending for the next leader.
    pub async fn execute(
        &self,
        leader: &Leadership,
        action: ActionSpec,
        reasons: Vec<String>,
        now: DateTime<Utc>,
    ) -> Result<JournalEntry, ExecError> {
        self.execute_request(leader, action, reasons, None, now)
            .await
    }

    /// Like [`execute`](Self::execute), for an operator request: the intent
    /// is written and the request key deleted in one fenced txn, so a
    /// request is carried out once even across a change of leader.
    pub async fn execute_request(
        &self,
        leader: &Leadership,
        action: ActionSpec,
        reasons: Vec<String>,
        request: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<JournalEntry, ExecError> {
        let seq = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
        let entry = JournalEntry {
            id: entry_id(leader.token(), seq),
            action,
            reasons,
            status: Status::Pending,
            created_by: self.controller_id.clone(),
            created_at: now,
            finished_by: None,
            finished_at: None,
            outcome: None,
            request: request.clone(),
            steps: Vec::new(),
            retryable: None,
            write_unavailable_ms: None,
        };
        let keys = self.store.keys();
        let key = keys.journal(&entry.id);
        let mut ops = vec![Op::put(key.clone(), encode(&key, &entry)?)];
        match &request {
            Some(r) => {
                ops.push(Op::delete(keys.request(r)));
                ops.push(Op::delete(keys.request_waiting(r)));
                // Only while the request stands: a cancel that got there
                // first wins, and nothing is started.
                if !self
                    .store
                    .fenced_txn_while(leader, &keys.request(r), ops)
                    .await?
                {
                    return Err(ExecError::Withdrawn(r.clone()));
                }
            }
            None => self.store.fenced_txn(leader, ops).await?,
        }
        tracing::info!(id = %entry.id, action = entry.action.kind(), subject = entry.action.subject(), "intent written");
        self.complete(leader, entry, now).await
    }

    /// Completes every intent left `pending` (by this or an earlier leader),
    /// in journal order. Called by a new leader before it decides anything.
    pub async fn finish_pending(
        &self,
        leader: &Leadership,
        now: DateTime<Utc>,
    ) -> Result<Vec<JournalEntry>, ExecError> {
        // Paged, and an entry that cannot be decoded is set aside with an
        // alarm: one bad key must never keep a leader from acting.
        let journal = self
            .store
            .scan_json::<JournalEntry>(&self.store.keys().journal_prefix())
            .await?;
        alarm_undecodable(&journal.undecodable);
        let pending: Vec<JournalEntry> = journal
            .values
            .into_iter()
            .map(|(_, e)| e)
            .filter(|e| e.status == Status::Pending)
            .collect();
        metrics::gauge!("switchyard_journal_pending_intents").set(pending.len() as f64);
        let mut done = Vec::new();
        for entry in pending {
            if !entry.written_in_term(leader.token()) {
                self.wait_out_predecessor(leader, &entry).await?;
            }
            tracing::info!(id = %entry.id, by = %entry.created_by, steps = entry.steps.len(), "finishing a pending intent");
            done.push(self.complete(leader, entry, now).await?);
            metrics::gauge!("switchyard_journal_pending_intents").decrement(1.0);
        }
        Ok(done)
    }

    /// Before a step of an intent an earlier term left pending: waits until
    /// the earlier leader cannot still be inside a step, counted on this
    /// node's monotonic clock from when it won (no other host's clock is
    /// trusted): its whole lease, stretched by the drift allowance, plus the
    /// longest step bound.
    async fn wait_out_predecessor(
        &self,
        leader: &Leadership,
        entry: &JournalEntry,
    ) -> Result<(), ExecError> {
        let until = leader.won_at() + self.timing.takeover_quiet();
        let left = until.saturating_duration_since(switchyard_host::time::now());
        if !left.is_zero() {
            tracing::info!(id = %entry.id, by = %entry.created_by, wait_ms = left.as_millis() as u64,
                "waiting out the previous leader's lease and longest step before resuming its intent");
            tokio::select! {
                _ = switchyard_host::time::sleep_until(until) => {}
                _ = leader.lost() => {
                    return Err(StoreError::NotLeader("lost while waiting out the previous leader".into()).into());
                }
            }
        }
        Ok(())
    }

    async fn complete(
        &self,
        leader: &Leadership,
        entry: JournalEntry,
        now: DateTime<Utc>,
    ) -> Result<JournalEntry, ExecError> {
        if !leader.safe_for(LEASE_MARGIN) {
            leader.step_down("lease too close to expiry to start an action");
            return Err(StoreError::NotLeader("lease too close to expiry".into()).into());
        }
        let started = switchyard_host::time::now();
        let guard = LeaderGuard::new(leader, &self.store, self.timing, entry.clone());
        // An intent with steps done passed the gate when it started (and
        // may have fenced or promoted since): asking again would only be
        // able to strand it half done.
        let gate = if entry.steps.is_empty() {
            self.closed_gate(&entry.action, now).await
        } else {
            None
        };
        let result = match gate {
            Some(reason) => Err(ActionError::GateClosed(reason)),
            None => self.perform(&entry.action, &guard).await,
        };
        if let Err(e) = &result
            && e.deposed()
        {
            // Stopped between steps because leadership is no longer
            // certain: write nothing; the intent stays pending with its
            // step cursor, for the next leader.
            tracing::warn!(id = %entry.id, error = %e, "intent interrupted; left pending for the next leader");
            return Err(StoreError::NotLeader(e.to_string()).into());
        }
        let done_steps = guard.entry().steps.len();
        if let Err(e @ ActionError::Database(db)) = &result
            && db.retryable()
            && done_steps > 0
        {
            tracing::warn!(id = %entry.id, error = %e, steps = done_steps, "intent interrupted after some steps; left pending to be resumed");
            return Err(ExecError::Interrupted {
                id: entry.id.clone(),
                steps: done_steps,
                cause: e.to_string(),
            });
        }
        let mut entry = JournalEntry {
            steps: guard.entry().steps,
            ..entry
        };
        let kind = entry.action.kind();
        metrics::histogram!("switchyard_action_duration_seconds", "kind" => kind)
            .record(switchyard_host::time::since(started).as_secs_f64());
        let (status, outcome, new_primary) = match &result {
            Ok(p) => (Status::Done, p.outcome.clone(), p.new_primary.clone()),
            Err(e) => (Status::Failed, e.to_string(), None),
        };
        if let (
            Ok(Performed {
                write_unavailable: Some(w),
                ..
            }),
            ActionSpec::Failover { database, .. } | ActionSpec::Switchover { database, .. },
        ) = (&result, &entry.action)
        {
            entry.write_unavailable_ms = Some(u64::try_from(w.as_millis()).unwrap_or(u64::MAX));
            metrics::histogram!("switchyard_write_unavailable_seconds", "kind" => kind, "database" => database.clone())
                .record(w.as_secs_f64());
            metrics::gauge!("switchyard_last_write_unavailable_seconds", "database" => database.clone())
                .set(w.as_secs_f64());
        }
        entry.retryable = result.as_ref().err().map(ActionError::retryable);
        metrics::counter!("switchyard_actions_total", "kind" => kind, "status" => match status {
            Status::Done => "done",
            _ => "failed",
        })
        .increment(1);
        entry.status = status;
        entry.outcome = Some(outcome.clone());
        entry.finished_by = Some(self.controller_id.clone());
        entry.finished_at = Some(now);

        let keys = self.store.keys();
        let mut ops = vec![Op::put(keys.journal(&entry.id), encode(&entry.id, &entry)?)];
        if status == Status::Done {
            for (record, weights) in entry.action.weight_sets() {
                ops.push(Op::put(keys.traffic(record), encode(record, weights)?));
            }
        }
        if let ActionSpec::Failover { database, .. } | ActionSpec::Switchover { database, .. } =
            &entry.action
            && let Some(primary) = new_primary
        {
            let automatic = entry.request.is_none();
            let key = keys.database(database);
            let old: Option<DatabaseState> = self.store.get_json(&key).await?;
            let changed = old.as_ref().is_none_or(|o| o.primary != primary);
            let state = DatabaseState {
                epoch: old.as_ref().map_or(1, |o| o.epoch + u64::from(changed)),
                // Anti-flap counts the engine's own failovers only; an
                // operator's switchover does not block the next automatic one.
                last_failover: if automatic {
                    Some(now)
                } else {
                    old.as_ref().and_then(|o| o.last_failover)
                },
                primary,
            };
            ops.push(Op::put(key.clone(), encode(&key, &state)?));
            // A member promoted is no longer fenced: its old record must
            // never open the gate for its own replacement later.
            ops.push(Op::delete(keys.fence(database, &state.primary)));
        }
        if status == Status::Done
            && let ActionSpec::Unfence { database, member } = &entry.action
        {
            ops.push(Op::delete(keys.fence(database, member)));
        }
        let event = HistoryEvent {
            at: now,
            by: self.controller_id.clone(),
            what: format!(
                "{} {}: {}",
                entry.action.kind(),
                entry.action.subject(),
                outcome
            ),
            reasons: entry.reasons.clone(),
            journal_id: Some(entry.id.clone()),
            steps: entry.steps.clone(),
        };
        let hid = history_id(now, &entry.id);
        ops.push(Op::put(keys.history(&hid), encode(&hid, &event)?));
        self.store.fenced_txn(leader, ops).await?;
        tracing::info!(id = %entry.id, status = ?entry.status, outcome = %outcome, "outcome written");
        Ok(entry)
    }

    /// For an unforced failover whose gate has not opened recently (an
    /// intent a previous leader left pending): asks the gate again. `Some`
    /// with the reason when it is shut.
    async fn closed_gate(&self, action: &ActionSpec, now: DateTime<Utc>) -> Option<String> {
        let ActionSpec::Failover {
            database,
            from_member,
            force: false,
            ..
        } = action
        else {
            return None;
        };
        if self.leases.is_none() || self.gate_fresh(database, from_member) {
            return None;
        }
        match self.promotion_gate(database, from_member, false, now).await {
            Gate::Open { .. } => None,
            Gate::Wait { reason, .. } => Some(reason),
        }
    }

    fn replica_set(&self, database: &str) -> Result<&Arc<dyn ReplicaSet>, ActionError> {
        self.databases.get(database).ok_or_else(|| {
            ActionError::Unsupported(format!("database {database} is not configured"))
        })
    }

    /// Does the action if the world is not already as it says. Every
    /// external call starts only with the guard's permission and ends within
    /// the budget it grants.
    async fn perform(
        &self,
        action: &ActionSpec,
        guard: &LeaderGuard<'_>,
    ) -> Result<Performed, ActionError> {
        match action {
            ActionSpec::SetWeights { .. } | ActionSpec::SetWeightsBatch { .. } => {
                // Read every record first; send one change (one Route 53
                // ChangeBatch) with those that differ, or nothing.
                let mut differ = Vec::new();
                for (record, weights) in action.weight_sets() {
                    let budget = guard.budget("read traffic").await?;
                    let current =
                        bounded(budget, "reading the record", self.traffic.read(record)).await?;
                    if !current.matches(&self.traffic.stored_weights(weights)) {
                        differ.push(RecordChange {
                            record: record.clone(),
                            weights: weights.clone(),
                        });
                    }
                }
                if differ.is_empty() {
                    return Ok(Performed::said("already applied"));
                }
                let budget = guard.budget("apply traffic").await?;
                bounded(budget, "applying the weights", self.traffic.apply(&differ)).await?;
                Ok(Performed::said("applied"))
            }
            ActionSpec::Switchover {
                database,
                to_member,
                from_member,
            } => {
                let set = self.replica_set(database)?;
                let from = (!from_member.is_empty()).then_some(from_member.as_str());
                let report = set
                    .switchover(to_member, from, SWITCHOVER_TIMEOUT, guard)
                    .await?;
                let verb = if report.changed {
                    "switched over to"
                } else {
                    "already primary:"
                };
                let done = Performed::moved(format!("{verb} {}", report.new_primary), &report);
                self.with_writer_step(database, done, guard).await
            }
            ActionSpec::MoveWriter { database, member } => {
                match self.move_writer(database, member, guard).await? {
                    Some(words) => Ok(Performed::said(&words)),
                    None => Err(ActionError::Refused(format!(
                        "database {database} has no writer record"
                    ))),
                }
            }
            ActionSpec::Unfence { database, member } => {
                // The adapter refuses while another member is writable, or
                // when the member replicates from someone.
                let set = self.replica_set(database)?;
                Ok(if set.unfence(member, guard).await? {
                    Performed::said(&format!("{member} takes writes again"))
                } else {
                    Performed::said("already writable")
                })
            }
            ActionSpec::Failover {
                database,
                from_member,
                to_member,
                force,
                avoid_regions,
            } => {
                let set = self.replica_set(database)?;
                // Idempotent: naming the primary being replaced makes a
                // repeated call (after a crash) a no-op once it is done.
                let report = set
                    .failover(
                        &FailoverRequest {
                            to: to_member.clone(),
                            force: *force,
                            expected_old_primary: (!from_member.is_empty())
                                .then(|| from_member.clone()),
                            down_regions: avoid_regions.clone(),
                        },
                        guard,
                    )
                    .await?;
                let verb = if report.changed {
                    "promoted"
                } else {
                    "already primary:"
                };
                let mut outcome = format!("{verb} {}", report.new_primary);
                if let Some(lag) = report.promoted_lag
                    && report.changed
                {
                    outcome.push_str(&format!(
                        " (it was {:.1}s behind the old primary when last seen)",
                        lag.as_secs_f64()
                    ));
                }
                if let Some(lost) = &report.lost_transactions
                    && !lost.is_empty()
                {
                    outcome.push_str(&format!(
                        "; old primary has transactions the new one lacks: {}",
                        lost.join(",")
                    ));
                }
                let done = Performed::moved(outcome, &report);
                self.with_writer_step(database, done, guard).await
            }
        }
    }
}

/// Says, at most once per key set change, which journal entries cannot be
/// decoded; the gauge holds their number for alerting.
pub fn alarm_undecodable(undecodable: &[(String, String)]) {
    metrics::gauge!("switchyard_journal_undecodable_entries").set(undecodable.len() as f64);
    for (key, why) in undecodable {
        tracing::error!(key = %key, error = %why, "journal entry cannot be decoded; skipped (a newer version's entry, or edited by hand): inspect it with etcdctl and delete it once understood");
    }
}

impl ActionError {
    /// True when trying the same action again may succeed without anyone
    /// changing anything (etcd, a member or Route 53 unreachable, a gate
    /// that may open, a step that ran out of time); false when it cannot
    /// (access denied, a precondition a person must change): the leader
    /// backs off longer and raises an alarm.
    pub fn retryable(&self) -> bool {
        match self {
            ActionError::Traffic(e) => e.retryable(),
            ActionError::Database(e) => e.retryable(),
            ActionError::Deposed(_) | ActionError::GateClosed(_) => true,
            // A config that names no target or no writer record: a person
            // must change it.
            ActionError::Refused(_) | ActionError::Unsupported(_) => false,
        }
    }

    /// True when the action stopped because this node may no longer lead:
    /// nothing may be written for it, and the next leader resumes it.
    pub fn deposed(&self) -> bool {
        matches!(
            self,
            ActionError::Deposed(_) | ActionError::Database(ReplError::Deposed { .. })
        )
    }
}

/// Runs `call` within `budget`; past it, the call is abandoned and the
/// action fails (a retry re-reads the world first).
async fn bounded<T>(
    budget: Duration,
    what: &str,
    call: impl std::future::Future<Output = Result<T, TrafficError>>,
) -> Result<T, ActionError> {
    match switchyard_host::time::timeout(budget, call).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(ActionError::Traffic(TrafficError::Unavailable(format!(
            "{what} took longer than its {budget:?} budget"
        )))),
    }
}

/// What an action did.
#[derive(Debug)]
struct Performed {
    /// In words, for the journal and history.
    outcome: String,
    /// A failover's resulting primary, recorded in the database's state.
    new_primary: Option<String>,
    /// How long no member took writes while the primary moved.
    write_unavailable: Option<Duration>,
}

impl Performed {
    fn said(outcome: &str) -> Self {
        Performed {
            outcome: outcome.to_string(),
            new_primary: None,
            write_unavailable: None,
        }
    }

    /// A moved primary's outcome, with the write-unavailable window the
    /// adapter measured when it moved it (not on a repeated call).
    fn moved(mut outcome: String, report: &switchyard_probes::replication::Report) -> Self {
        let window = report.read_only_window.filter(|_| report.changed);
        if let Some(w) = window {
            outcome.push_str(&format!("; writes unavailable for {} ms", w.as_millis()));
        }
        Performed {
            outcome,
            new_primary: Some(report.new_primary.clone()),
            write_unavailable: window,
        }
    }
}

/// Why an action failed.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// The traffic backend failed.
    #[error(transparent)]
    Traffic(#[from] TrafficError),
    /// The action cannot be carried out by this build.
    #[error("{0}")]
    Unsupported(String),
    /// The database adapter failed (no candidate, timeout, unreachable…).
    #[error(transparent)]
    Database(#[from] ReplError),
    /// The executor refused: the world is not as the action needs it.
    #[error("{0}")]
    Refused(String),
    /// A step was not started: leadership is no longer certain.
    #[error("not taken: {0}")]
    Deposed(#[from] StoreError),
    /// The promotion gate is shut: the old primary may still be writable.
    #[error("promotion gate closed: {0}")]
    GateClosed(String),
}
