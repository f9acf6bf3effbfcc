//! The leader's loop: finish what the last leader left pending, then decide
//! and act every tick until leadership ends.
//!
//! etcd writes follow state *changes* (a region changing status, an action),
//! never the rate of probe reports.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use switchyard_probes::replication::ReplicaSet;
use tokio::sync::watch;

use crate::api::ingest::Aggregator;
use crate::clock::Clock;
use crate::engine::{self, Action, ControlState, Policy, RegionState, RegionStatus, Topology};
use crate::executor::journal::OperatorRequest;
use crate::executor::{ActionSpec, ExecError, Executor, Status};
use crate::fence::gate::Gate;
use crate::fence::local::FenceRecord;
use crate::runtime::lanes::{Lane, Lanes};
use crate::runtime::metrics as m;
use crate::runtime::retry::RetryBook;
use crate::runtime::{control, rejoin};
use crate::store::kv::Op;
use crate::store::{LEASE_MARGIN, Leadership, Role, Store, StoreError};
use crate::traffic::TrafficBackend;

/// How often the leader decides.
pub const TICK: Duration = Duration::from_millis(250);
/// How often a wait at the promotion gate is logged again.
const GATE_LOG_EVERY: Duration = Duration::from_secs(30);
/// How often a shut promotion gate is asked again.
const GATE_RETRY: Duration = TICK;
/// A gate wait not asked about for this long is over (the failover is no
/// longer wanted, or automation paused): its alarm clears. Long next to a
/// tick, so ticks slowed by etcd trouble do not restart a standing wait.
const GATE_WAIT_STALE: Duration = Duration::from_secs(30);
/// How often the leader checks that every writer record names its
/// database's recorded primary (a read of the backend per database).
const WRITER_CHECK: Duration = Duration::from_secs(30);
/// How long that read may take.
const WRITER_READ: Duration = Duration::from_secs(1);
/// How long one drift check's reads may take, all records together.
const DRIFT_READ: Duration = Duration::from_secs(5);
/// How long an interrupted intent is left before it is resumed.
const RETRY_AFTER: Duration = Duration::from_secs(5);
/// How long after winning the first compaction round runs (never before
/// the leader's first decisions), and how often after that.
const COMPACT_FIRST: Duration = Duration::from_secs(5);
const COMPACT_EVERY: Duration = Duration::from_secs(60);

/// Everything the leader loop works with.
pub struct LeaderContext {
    /// Shared state in etcd.
    pub store: Store,
    /// Where actions go.
    pub executor: Arc<Executor>,
    /// The traffic backend (read when a record has no stored weights).
    pub traffic: Arc<dyn TrafficBackend>,
    /// Database adapters, to discover primaries the store does not know.
    pub databases: BTreeMap<String, Arc<dyn ReplicaSet>>,
    /// What exists.
    pub topology: Topology,
    /// How to decide.
    pub policy: Policy,
    /// What the probes see.
    pub aggregator: Arc<Aggregator>,
    /// Where now comes from.
    pub clock: Arc<dyn Clock>,
    /// This controller's id (for history).
    pub id: String,
    /// How much journal and history to keep.
    pub retention: crate::config::Journal,
    /// How often live weights are compared with the desired ones.
    pub drift_check: Duration,
    /// How long a failover waits at the promotion gate before it is an
    /// alarm (`policy.gate_alarm_after`).
    pub gate_alarm_after: Duration,
}

/// Leads whenever `role` says so, until `shutdown`.
pub async fn run(
    ctx: LeaderContext,
    mut role: watch::Receiver<Role>,
    mut shutdown: watch::Receiver<bool>,
) {
    // The term last led: never led twice. Waiting for `Follower` between
    // terms instead missed a term won again before this loop looked (a
    // process paused past its lease wakes, loses the key and wins it again
    // at once): it then held the key and decided nothing.
    let mut ended: Option<i64> = None;
    loop {
        let fresh = |r: &Role| matches!(r, Role::Leader(l) if Some(l.token()) != ended);
        let leadership = tokio::select! {
            r = role.wait_for(fresh) => match r.map(|r| r.clone()) {
                Ok(Role::Leader(l)) => l,
                _ => return,
            },
            _ = shutdown.wait_for(|s| *s) => return,
        };
        ended = Some(leadership.token());
        m::set_leader(true);
        let rejoin = crate::task::spawn(rejoin::watch(
            ctx.store.clone(),
            ctx.databases.clone(),
            leadership.clone(),
            ctx.id.clone(),
            ctx.clock.clone(),
        ));
        let led = lead(&ctx, &leadership, &mut shutdown).await;
        rejoin.abort();
        match led {
            Ok(()) => {}
            Err(e) => tracing::warn!(error = %e, "leading stopped"),
        }
        m::set_leader(false);
        // Whatever happened, this term is over.
        leadership.step_down("leader loop ended");
        if *shutdown.borrow() {
            return;
        }
    }
}

/// How long a term that ended waits for its lanes' actions to stop (each
/// stops at its next step, which the guard refuses once the lease is
/// gone; a step itself is bounded by half the lease).
const DRAIN: Duration = Duration::from_secs(10);

/// Leads one term, then waits for every action it started to stop, so
/// this node never runs actions of two of its terms at once (a new term
/// won straight after a resign must not race the old term's last apply).
async fn lead(
    ctx: &LeaderContext,
    leader: &Leadership,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), ExecError> {
    let mut st = Term::default();
    let result = lead_term(ctx, leader, shutdown, &mut st).await;
    st.drain().await;
    // Only the leader exports alarms: a node that no longer leads cannot
    // see them clear.
    if let Some(standing) = &st.alarms {
        m::set_standing_alarms(standing.values(), false);
    }
    result
}

async fn lead_term(
    ctx: &LeaderContext,
    leader: &Leadership,
    shutdown: &mut watch::Receiver<bool>,
    st: &mut Term,
) -> Result<(), ExecError> {
    // 1. Finish every pending intent before deciding anything.
    loop {
        match ctx.executor.finish_pending(leader, ctx.clock.now()).await {
            Ok(done) => {
                for e in &done {
                    tracing::info!(id = %e.id, outcome = ?e.outcome, "finished predecessor's intent");
                }
                break;
            }
            Err(e) if e.lost_leadership() => return Err(e),
            Err(e) => {
                tracing::warn!(error = %e, "cannot finish pending intents yet; retrying");
                let wait = if e.interrupted() { RETRY_AFTER } else { TICK };
                wait_or_lost(leader, shutdown, wait).await?;
            }
        }
    }
    // 2. Load the engine's memory.
    let mut control = loop {
        match control::load(
            &ctx.store,
            ctx.traffic.as_ref(),
            ctx.topology.records.keys(),
        )
        .await
        {
            Ok(c) => break c,
            Err(e) => {
                tracing::warn!(error = %e, "cannot load control state yet; retrying");
                wait_or_lost(leader, shutdown, TICK).await?;
            }
        }
    };
    // Database primaries as the store knows them (empty: not known yet, so
    // the engine plans no failover for that database).
    let mut topology = ctx.topology.clone();
    match control::databases(&ctx.store).await {
        Ok(states) => {
            for (db, state) in states {
                if let Some(d) = topology.databases.get_mut(&db) {
                    d.primary = state.primary;
                }
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read database states; no failover until known")
        }
    }
    discover_primaries(ctx, leader, &mut topology).await?;
    for (record, weights) in &control.weights {
        m::set_weights(record, weights);
    }
    m::set_switches(control.paused, control.drained.len());
    tracing::info!(paused = control.paused, drained = ?control.drained, "leading");
    let mut shown = m::Shown::default();
    let mut next_compaction = tokio::time::Instant::now() + COMPACT_FIRST;
    // Checked at once: a predecessor may have promoted without moving it.
    let mut last_writer_check: Option<tokio::time::Instant> = None;
    let mut last_drift_check = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A primary lease that changes (etcd ended one, say) is looked at at
    // once: a failover waiting at the gate must not wait for the tick.
    let (leases_changed, _lease_watch) = super::lease_watch::watch_primary_leases(&ctx.store);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = leases_changed.notified() => st.gate_retry.clear(),
            _ = leader.lost() => return Ok(()),
            _ = shutdown.wait_for(|s| *s) => return Ok(()),
        }
        // What the lanes finished since the last tick.
        harvest(ctx, st, &mut control, &mut topology).await?;
        // The operator's switches and requests, every tick, in one read.
        let controls = control::ControlSnapshot::read(&ctx.store).await;
        let refreshed = match &controls {
            Ok(c) => c.apply_switches(&mut control).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = refreshed {
            tracing::debug!(error = %e, "cannot refresh operator switches");
        }
        m::set_switches(control.paused, control.drained.len());
        if st.resume_at.is_none()
            && let Ok(controls) = &controls
        {
            serve_requests(
                ctx,
                leader,
                st,
                controls,
                &topology,
                &avoid_regions(&control),
            )
            .await;
        }
        // Keep the lease reader's memory current, so a gate decision
        // knows when each lease was last seen.
        ctx.executor.observe_leases(topology.databases.keys()).await;
        if !control.paused && st.resume_at.is_none() {
            lift_fences(ctx, leader, st, &topology, &control).await?;
        }
        m::set_failing_actions(&st.retries.alarms());
        if tokio::time::Instant::now() >= next_compaction {
            next_compaction = tokio::time::Instant::now() + COMPACT_EVERY;
            compact(ctx, leader).await?;
        }
        if st.resume_at.is_none() && last_writer_check.is_none_or(|t| t.elapsed() >= WRITER_CHECK) {
            last_writer_check = Some(tokio::time::Instant::now());
            repair_writers(ctx, leader, st, &topology).await?;
        }
        let now = ctx.clock.now();
        let decision = ctx
            .aggregator
            .with_book(|book| engine::decide(&topology, book, &control, &ctx.policy, now));
        m::record_decision(&decision, &mut shown);
        persist_region_changes(ctx, leader, &mut control, &decision.regions).await?;
        let mut alarms = decision.alarms.clone();
        alarms.extend(
            st.gate_waits
                .alarms(now, ctx.gate_alarm_after, GATE_WAIT_STALE),
        );
        publish_alarms(ctx, leader, st, &alarms, now).await?;
        publish_plan(ctx, leader, st, &decision.plan, now).await?;
        if let Some(at) = st.resume_at {
            // An interrupted intent is resumed before anything else starts,
            // once every lane is idle (a resume re-reads the whole journal
            // and must not meet an intent a lane is running).
            if tokio::time::Instant::now() < at || !st.lanes.is_idle() {
                continue;
            }
            match ctx.executor.finish_pending(leader, ctx.clock.now()).await {
                Ok(done) => {
                    for e in &done {
                        tracing::info!(id = %e.id, outcome = ?e.outcome, "resumed an interrupted intent");
                        if e.status == Status::Done {
                            // The engine's memory follows what the resume did.
                            apply_done(
                                &mut control,
                                &e.action,
                                e.finished_at.unwrap_or_else(|| ctx.clock.now()),
                            );
                        }
                    }
                    st.resume_at = None;
                    reload_primaries(ctx, &mut topology).await;
                }
                Err(e) if e.lost_leadership() => return Err(e),
                Err(e) => {
                    tracing::warn!(error = %e, "interrupted intent not finished yet; will resume");
                    st.resume_at = Some(tokio::time::Instant::now() + RETRY_AFTER);
                }
            }
            continue;
        }
        if decision.plan.paused {
            continue;
        }
        let avoid = avoid_regions(&control);
        // One traffic intent (one batch) for every weight change of the plan.
        let traffic = traffic_intent(&decision.plan.actions);
        if let Some((spec, key, reasons)) = traffic.clone()
            && st.lanes.is_free(&Lane::Traffic)
            && st.retries.ready(&key, tokio::time::Instant::now())
        {
            st.start(ctx, leader, spec, reasons, None, Origin::Engine(key), now);
        }
        // Drift is checked only when the engine wants no weight change: the
        // desired weights are then settled, and the check never holds the
        // lane an evacuation needs. A failed change the engine no longer
        // wants does not hold it off (it did: a hand edit at the provider
        // was then never undone, docs/SIMULATION.md, seed 8032); its
        // failure stays alarmed until a weight change succeeds.
        if traffic.is_none()
            && st.lanes.is_free(&Lane::Traffic)
            && last_drift_check.elapsed() >= ctx.drift_check
        {
            last_drift_check = tokio::time::Instant::now();
            st.check_drift(ctx, leader, control.weights.clone());
        }
        for action in &decision.plan.actions {
            if !matches!(action, Action::Failover { .. }) {
                continue;
            }
            let spec = spec_of(action, &avoid);
            let key = action.key();
            let at = tokio::time::Instant::now();
            if !st.lanes.is_free(&Lane::of(&spec))
                || !st.retries.ready(&key, at)
                || st.gate_retry.get(&key).is_some_and(|t| at < *t)
            {
                continue;
            }
            let mut reasons = action.reasons().to_vec();
            match gate(ctx, &spec, now).await {
                Ok(reason) => {
                    st.gate_waits.opened(spec.subject());
                    reasons.extend(reason);
                }
                Err(reason) => {
                    st.gate_waits.shut(spec.subject(), &reason, now);
                    // Logged when the wait starts, then every 30 s.
                    if st
                        .gate_said
                        .get(&key)
                        .is_none_or(|t| t.elapsed() >= GATE_LOG_EVERY)
                    {
                        tracing::warn!(database = %spec.subject(), "promotion gate shut: {reason}");
                        st.gate_said
                            .insert(key.clone(), tokio::time::Instant::now());
                    }
                    st.gate_retry
                        .insert(key, tokio::time::Instant::now() + GATE_RETRY);
                    continue;
                }
            }
            st.start(ctx, leader, spec, reasons, None, Origin::Engine(key), now);
        }
    }
}

/// What one term of leadership keeps between ticks.
#[derive(Default)]
struct Term {
    /// Backoff of actions that failed.
    retries: RetryBook,
    /// Gate waits are not failures: asked again after [`GATE_RETRY`].
    gate_retry: BTreeMap<String, tokio::time::Instant>,
    /// Operator requests whose wait at the gate was already noted.
    waiting: std::collections::BTreeSet<String>,
    /// When each gate wait was last logged.
    gate_said: BTreeMap<String, tokio::time::Instant>,
    /// How long each database's failover has waited at the gate (an
    /// alarm past `gate_alarm_after`).
    gate_waits: engine::GateWaits,
    /// What runs in each lane.
    lanes: Lanes<Running>,
    /// Set while an intent of this term was interrupted after some steps:
    /// it is resumed (from its cursor) then, and nothing else starts first.
    resume_at: Option<tokio::time::Instant>,
    /// The alarms as last published (`state/alarms`); read from etcd at the
    /// term's first decision, so a new leader does not raise again what
    /// its predecessor raised.
    alarms: Option<BTreeMap<engine::AlarmKey, engine::PublishedAlarm>>,
    /// The fingerprint of the plan this term last published (`None`: not
    /// yet, so a new leader publishes at its first decision).
    plan: Option<String>,
    /// Whether this term has taken over the gate waits its predecessor
    /// published.
    inherited_holds: bool,
}

/// Who started an action, to know what to do with its outcome.
#[derive(Debug, Clone)]
enum Origin {
    /// The engine's plan (the action's key, for backoff).
    Engine(String),
    /// Lifting a fence (backoff key).
    Unfence(String),
    /// Repairing a writer record.
    Writer,
    /// An operator's request (its id).
    Request(String),
    /// Correcting traffic that drifted from the desired weights (backoff
    /// key).
    Drift(String),
}

/// An action running in its lane.
struct Running {
    origin: Origin,
    /// `None`: the task found nothing to do (no drift).
    task: tokio::task::JoinHandle<Result<Option<crate::executor::JournalEntry>, ExecError>>,
}

impl Term {
    /// Waits (up to [`DRAIN`]) for every running action to stop; aborts
    /// what is left and says so.
    async fn drain(&mut self) {
        let running = self.lanes.take_where(|_| true);
        for (lane, r) in running {
            let abort = r.task.abort_handle();
            if tokio::time::timeout(DRAIN, r.task).await.is_err() {
                abort.abort();
                tracing::error!(%lane, origin = ?r.origin, "an action of the ended term did not stop within {DRAIN:?}; aborted");
            }
        }
    }

    /// Starts `spec` in its lane (the caller checked it is free).
    #[allow(clippy::too_many_arguments)]
    fn start(
        &mut self,
        ctx: &LeaderContext,
        leader: &Leadership,
        spec: ActionSpec,
        reasons: Vec<String>,
        request: Option<String>,
        origin: Origin,
        now: chrono::DateTime<chrono::Utc>,
    ) {
        let lane = Lane::of(&spec);
        let executor = ctx.executor.clone();
        let leader = leader.clone();
        tracing::debug!(%lane, action = spec.kind(), subject = spec.subject(), "starting in its lane");
        let task = crate::task::spawn(async move {
            executor
                .execute_request(&leader, spec, reasons, request, now)
                .await
                .map(Some)
        });
        self.occupy(lane, Running { origin, task });
    }

    fn occupy(&mut self, lane: Lane, running: Running) {
        if let Err(r) = self.lanes.occupy(lane, running) {
            // Never: callers check the lane first. Do not leave it running
            // unaccounted for.
            r.task.abort();
        }
    }

    /// Reads every record with desired weights back from the backend, in
    /// the traffic lane, and journals one correction for those that differ
    /// (edited in the console, a change lost): the desired weights are
    /// what the engine decided, the backend must hold them.
    fn check_drift(
        &mut self,
        ctx: &LeaderContext,
        leader: &Leadership,
        desired: BTreeMap<String, BTreeMap<String, u32>>,
    ) {
        if desired.is_empty() {
            return;
        }
        let traffic = ctx.traffic.clone();
        let executor = ctx.executor.clone();
        let leader = leader.clone();
        let now = ctx.clock.now();
        let key = "drift".to_string();
        if !self.retries.ready(&key, tokio::time::Instant::now()) {
            return;
        }
        let task = crate::task::spawn(async move {
            let (records, reasons) =
                match tokio::time::timeout(DRIFT_READ, drifted(traffic.as_ref(), &desired)).await {
                    Ok(found) => found,
                    Err(_) => {
                        tracing::warn!(
                            "drift check: the backend did not answer within {DRIFT_READ:?}"
                        );
                        return Ok(None);
                    }
                };
            if records.is_empty() {
                return Ok(None);
            }
            for r in records.keys() {
                metrics::counter!("switchyard_traffic_drift_total", "record" => r.clone())
                    .increment(1);
            }
            let Some(spec) = ActionSpec::for_weights(records) else {
                return Ok(None);
            };
            tracing::warn!(reasons = ?reasons, "traffic drifted from the desired weights; correcting");
            executor
                .execute(&leader, spec, reasons, now)
                .await
                .map(Some)
        });
        self.occupy(
            Lane::Traffic,
            Running {
                origin: Origin::Drift(key),
                task,
            },
        );
    }
}

/// The records whose live weights differ from `desired`, with why. A
/// record the backend cannot read now is left for the next check.
async fn drifted(
    traffic: &dyn TrafficBackend,
    desired: &BTreeMap<String, BTreeMap<String, u32>>,
) -> (BTreeMap<String, BTreeMap<String, u32>>, Vec<String>) {
    let mut records = BTreeMap::new();
    let mut reasons = Vec::new();
    for (record, weights) in desired {
        match traffic.read(record).await {
            Ok(live) if !live.matches(&traffic.stored_weights(weights)) => {
                reasons.push(format!(
                    "drift: {record} holds {:?} in the DNS backend, not the desired {:?}",
                    live.weights(),
                    weights
                ));
                records.insert(record.clone(), weights.clone());
            }
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(record = %record, error = %e, "drift check cannot read the record")
            }
        }
    }
    (records, reasons)
}

/// Collects what the lanes finished: backoff, the engine's memory, new
/// primaries. A lane that lost leadership ends the term.
async fn harvest(
    ctx: &LeaderContext,
    st: &mut Term,
    control: &mut ControlState,
    topology: &mut Topology,
) -> Result<(), ExecError> {
    let finished = st.lanes.take_where(|r| r.task.is_finished());
    let mut lost = None;
    for (lane, running) in finished {
        let result = match running.task.await {
            Ok(Ok(None)) => {
                if let Origin::Drift(k) = &running.origin {
                    st.retries.succeeded(k);
                }
                continue;
            }
            Ok(Ok(Some(entry))) => Ok(entry),
            Ok(Err(e)) => Err(e),
            Err(e) => {
                tracing::error!(%lane, error = %e, "an action's task ended abnormally");
                continue;
            }
        };
        match (result, running.origin) {
            (Err(e), _) if e.lost_leadership() => lost = Some(e),
            (Err(ExecError::Withdrawn(id)), _) => {
                tracing::info!(request = %id, "operator request withdrawn before it started");
                st.waiting.remove(&id);
            }
            (Err(e), _) if e.interrupted() => {
                tracing::warn!(%lane, error = %e, "will resume the interrupted intent first");
                st.resume_at = Some(tokio::time::Instant::now() + RETRY_AFTER);
            }
            (Err(e), origin) => {
                // The action may have been carried out and its intent left
                // pending (its outcome write failed): settle it before
                // anything else starts, so it is never re-run later over
                // newer decisions.
                tracing::warn!(%lane, ?origin, error = %e, "etcd trouble while executing; settling the journal before anything else");
                st.resume_at = Some(tokio::time::Instant::now() + RETRY_AFTER);
            }
            (Ok(entry), origin) => {
                if let Origin::Request(id) = &origin {
                    tracing::info!(request = %id, status = ?entry.status, outcome = ?entry.outcome, "operator request carried out");
                }
                let key = match &origin {
                    Origin::Engine(k) | Origin::Unfence(k) | Origin::Drift(k) => Some(k.clone()),
                    Origin::Writer | Origin::Request(_) => None,
                };
                if entry.status == Status::Done {
                    if let Some(k) = &key {
                        st.retries.succeeded(k);
                    }
                    // Older attempts at the same thing are superseded.
                    match entry.action.database() {
                        None => st
                            .retries
                            .forget_where(|k| k.starts_with("weights/") || k == "drift"),
                        Some(db) => {
                            let failover = format!("failover/{db}/");
                            let unfence = format!("unfence:{db}");
                            st.retries
                                .forget_where(|k| k.starts_with(&failover) || k == unfence);
                        }
                    }
                    if matches!(origin, Origin::Engine(_)) {
                        apply_done(
                            control,
                            &entry.action,
                            entry.finished_at.unwrap_or_else(|| ctx.clock.now()),
                        );
                    }
                    if matches!(
                        entry.action,
                        ActionSpec::Failover { .. } | ActionSpec::Switchover { .. }
                    ) {
                        reload_primaries(ctx, topology).await;
                    }
                    continue;
                }
                let outcome = entry.outcome.as_deref().unwrap_or_default();
                let Some(key) = key else {
                    tracing::warn!(id = %entry.id, ?origin, outcome, "action failed");
                    continue;
                };
                let retryable = entry.retryable.unwrap_or(true);
                let wait = st
                    .retries
                    .failed(&key, retryable, outcome, tokio::time::Instant::now());
                if st.retries.alarms().iter().any(|a| a.key == key) {
                    tracing::error!(id = %entry.id, outcome, retryable, retry_in_ms = wait.as_millis() as u64, "action keeps failing: it needs a person (switchyard_actions_failing)");
                } else {
                    tracing::warn!(id = %entry.id, outcome, retryable, retry_in_ms = wait.as_millis() as u64, "action failed");
                }
            }
        }
    }
    match lost {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The plan's weight changes as one intent: `SetWeights` for one record,
/// `SetWeightsBatch` for several (one atomic change, one Route 53
/// `ChangeBatch`), with the key its backoff is counted under and the
/// reasons of every record. `None` when the plan changes no weights.
pub fn traffic_intent(actions: &[Action]) -> Option<(ActionSpec, String, Vec<String>)> {
    let mut records = BTreeMap::new();
    let mut keys = Vec::new();
    let mut reasons = Vec::new();
    for a in actions {
        if let Action::SetWeights {
            record,
            weights,
            reasons: why,
        } = a
        {
            records.insert(record.clone(), weights.clone());
            keys.push(a.key());
            reasons.extend(why.iter().cloned());
        }
    }
    let spec = ActionSpec::for_weights(records)?;
    Some((spec, keys.join(" + "), reasons))
}

/// Asks the promotion gate before a failover: `Ok` with the reason to add to
/// the action's (none for other actions), `Err` with why it must wait.
async fn gate(
    ctx: &LeaderContext,
    action: &ActionSpec,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Option<String>, String> {
    let ActionSpec::Failover {
        database,
        from_member,
        force,
        ..
    } = action
    else {
        return Ok(None);
    };
    match ctx
        .executor
        .promotion_gate(database, from_member, *force, now)
        .await
    {
        // A forced failover's reason says the gate was skipped.
        Gate::Open { reason, .. } if *force => Ok(Some(reason)),
        Gate::Open { reason, .. } => Ok(Some(format!("promotion gate open: {reason}"))),
        Gate::Wait { reason, .. } => Err(reason),
    }
}

/// Carries out operator requests (manual failover, switchover) through the
/// journal, each in its database's lane (a request whose lane is busy waits
/// for the next tick). They run even while automation is paused: pause
/// stops the engine, not the operator.
async fn serve_requests(
    ctx: &LeaderContext,
    leader: &Leadership,
    st: &mut Term,
    controls: &control::ControlSnapshot,
    topology: &Topology,
    avoid: &std::collections::BTreeSet<String>,
) {
    let requests: Vec<(String, OperatorRequest)> = match controls.requests() {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(error = %e, "cannot list operator requests");
            return;
        }
    };
    let now = ctx.clock.now();
    for (id, request) in requests {
        let mut action = request.action.clone();
        if let Some(why) = request_void(&request, topology, now) {
            drop_request(ctx, leader, st, &id, &request, &why, now).await;
            continue;
        }
        if !st.lanes.is_free(&Lane::of(&action)) {
            continue;
        }
        if let ActionSpec::Failover {
            database,
            from_member,
            avoid_regions,
            ..
        } = &mut action
        {
            if avoid_regions.is_empty() {
                avoid_regions.clone_from(avoid);
            }
            if from_member.is_empty()
                && let Some(db) = topology.databases.get(database.as_str())
            {
                from_member.clone_from(&db.primary);
            }
        }
        let mut reasons = vec![format!(
            "requested by {} at {}",
            request.requested_by,
            request.requested_at.to_rfc3339()
        )];
        reasons.extend(request.reason.clone());
        reasons.extend(request.origin.as_ref().map(|o| format!("from {o}")));
        match gate(ctx, &action, now).await {
            Ok(reason) => {
                st.gate_waits.opened(action.subject());
                reasons.extend(reason);
            }
            Err(reason) => {
                st.gate_waits.shut(action.subject(), &reason, now);
                // The request stays until the gate opens (or the operator
                // forces it); the CLI is told why, once.
                if !st.waiting.contains(&id) {
                    tracing::info!(request = %id, database = %action.subject(), "operator failover waits for the promotion gate: {reason}");
                    // Only while the request stands: a cancel in between
                    // must not leave a waiting key behind for ever.
                    let keys = ctx.store.keys();
                    let put = crate::store::encode(&id, &reason)
                        .map(|json| vec![Op::put(keys.request_waiting(&id), json)]);
                    if let Ok(ops) = put
                        && let Ok(true) = ctx
                            .store
                            .fenced_txn_while(leader, &keys.request(&id), ops)
                            .await
                    {
                        st.waiting.insert(id.clone());
                    }
                }
                continue;
            }
        }
        tracing::info!(request = %id, action = action.kind(), subject = action.subject(), "operator request");
        st.start(
            ctx,
            leader,
            action,
            reasons,
            Some(id.clone()),
            Origin::Request(id),
            now,
        );
    }
}

/// Why a request must not be carried out any more, if so: not started by
/// its deadline, or the primary is no longer the one the operator saw (a
/// request is never re-aimed at another primary). Pure.
pub fn request_void(
    request: &OperatorRequest,
    topology: &Topology,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<String> {
    let database = request.action.subject();
    if let Some(at) = request.expires_at
        && now > at
    {
        return Some(format!(
            "expired: not started by {} (its deadline); nothing done",
            at.to_rfc3339()
        ));
    }
    let expected = request.expected_primary.as_deref()?;
    let actual = topology
        .databases
        .get(database)
        .map_or("", |d| d.primary.as_str());
    (actual != expected).then(|| {
        format!(
            "refused: the primary of {database} is {}, not {expected} as the operator saw; \
             nothing done (ask again against the current primary)",
            if actual.is_empty() { "unknown" } else { actual }
        )
    })
}

/// Removes a void request and says why in history, once.
async fn drop_request(
    ctx: &LeaderContext,
    leader: &Leadership,
    st: &mut Term,
    id: &str,
    request: &OperatorRequest,
    why: &str,
    now: chrono::DateTime<chrono::Utc>,
) {
    let keys = ctx.store.keys();
    let event = crate::executor::HistoryEvent {
        at: now,
        by: ctx.id.clone(),
        what: format!(
            "request {id} ({} of {} by {}) {why}",
            request.action.kind(),
            request.action.subject(),
            request.requested_by
        ),
        reasons: request.reason.iter().cloned().collect(),
        journal_id: None,
        steps: Vec::new(),
    };
    let hid = crate::executor::history_id(now, &format!("request-{id}"));
    let ops = match crate::store::encode(&hid, &event) {
        Ok(json) => vec![
            Op::delete(keys.request(id)),
            Op::delete(keys.request_waiting(id)),
            Op::put(keys.history(&hid), json),
        ],
        Err(e) => {
            tracing::warn!(request = %id, error = %e, "cannot record a void request");
            return;
        }
    };
    match ctx
        .store
        .fenced_txn_while(leader, &keys.request(id), ops)
        .await
    {
        Ok(true) => {
            tracing::warn!(request = %id, "operator request {why}");
            st.waiting.remove(id);
        }
        // Cancelled meanwhile: the operator's cancel said so already.
        Ok(false) => {
            st.waiting.remove(id);
        }
        Err(e) => tracing::debug!(request = %id, error = %e, "cannot drop a void request yet"),
    }
}

/// Asks each database whose primary the store does not know yet which
/// member is primary, and records it (fenced) so failovers can be planned.
async fn discover_primaries(
    ctx: &LeaderContext,
    leader: &Leadership,
    topology: &mut Topology,
) -> Result<(), ExecError> {
    for (name, db) in topology.databases.iter_mut() {
        if !db.primary.is_empty() {
            continue;
        }
        let Some(set) = ctx.databases.get(name) else {
            continue;
        };
        // A read, but SQL all the same: only while the lease is certain,
        // and over before it can expire.
        let Some(window) = read_window(leader) else {
            return Err(
                StoreError::NotLeader("lease too close to expiry to observe".into()).into(),
            );
        };
        let observed = tokio::time::timeout(window, set.observe())
            .await
            .unwrap_or_else(|_| {
                Err(switchyard_probes::replication::ReplError::Unreachable {
                    member: "(all)".into(),
                    address: String::new(),
                    detail: format!("no snapshot within {window:?}"),
                })
            });
        match observed {
            Ok(snapshot) => {
                if let Some(primary) = snapshot.primary {
                    let state = control::DatabaseState {
                        primary: primary.clone(),
                        epoch: 1,
                        last_failover: None,
                    };
                    ctx.store
                        .fenced_put(leader, ctx.store.keys().database(name), &state)
                        .await?;
                    tracing::info!(database = %name, primary = %primary, "primary discovered");
                    db.primary = primary;
                }
            }
            Err(e) => tracing::warn!(database = %name, error = %e, "cannot observe database"),
        }
    }
    Ok(())
}

/// Lifts the fence of a recorded primary whose region's controller fenced
/// it (an isolation that healed before anyone was promoted) once its region
/// is healthy or recovering again: otherwise it would stay read-only with nobody to
/// replace it. Through the journal, in the database's lane, like every
/// action.
async fn lift_fences(
    ctx: &LeaderContext,
    leader: &Leadership,
    st: &mut Term,
    topology: &Topology,
    control: &ControlState,
) -> Result<(), ExecError> {
    for (db, d) in &topology.databases {
        if d.primary.is_empty() || !st.lanes.is_free(&Lane::Database(db.clone())) {
            continue;
        }
        let key = format!("unfence:{db}");
        if !st.retries.ready(&key, tokio::time::Instant::now()) {
            continue;
        }
        // Healthy, or Recovering (its service endpoints up again): with
        // manual failback a region stays Recovering until an operator
        // acts, and its recorded primary would stay read-only meanwhile,
        // with nobody to replace it (the simulator found this).
        let healthy = d
            .members
            .get(&d.primary)
            .and_then(|m| control.regions.get(&m.region))
            .is_some_and(|r| matches!(r.status, RegionStatus::Healthy | RegionStatus::Recovering));
        if !healthy {
            continue;
        }
        let record: Option<FenceRecord> = match ctx
            .store
            .get_json(&ctx.store.keys().fence(db, &d.primary))
            .await
        {
            Ok(r) => r,
            Err(_) => continue,
        };
        // No record, no lift: a primary read-only without one may be
        // fenced by its region's controller, cut from etcd, whose record
        // has not arrived yet (docs/SIMULATION.md, seed 1721).
        let Some(record) = record else { continue };
        let reasons = vec![
            format!(
                "{} was fenced at {}: {}",
                d.primary,
                record.at.to_rfc3339(),
                record.reason
            ),
            "it is still the recorded primary and its region is healthy or recovering again"
                .to_string(),
        ];
        let action = ActionSpec::Unfence {
            database: db.clone(),
            member: d.primary.clone(),
        };
        st.start(
            ctx,
            leader,
            action,
            reasons,
            None,
            Origin::Unfence(key),
            ctx.clock.now(),
        );
    }
    Ok(())
}

/// Points every writer record that does not name its database's recorded
/// primary back at it, through the journal, in the database's lane.
/// Operator actions, so they run while automation is paused too (a writer
/// record naming a replica only sends writes where they fail).
async fn repair_writers(
    ctx: &LeaderContext,
    leader: &Leadership,
    st: &mut Term,
    topology: &Topology,
) -> Result<(), ExecError> {
    for (db, d) in &topology.databases {
        if d.primary.is_empty() || !st.lanes.is_free(&Lane::Database(db.clone())) {
            continue;
        }
        // A read of Route 53 or the table: an external call all the same.
        if !leader.safe_for(LEASE_MARGIN + WRITER_READ) {
            return Ok(());
        }
        if !ctx
            .executor
            .writer_misplaced(db, &d.primary, WRITER_READ)
            .await
        {
            continue;
        }
        let action = ActionSpec::MoveWriter {
            database: db.clone(),
            member: d.primary.clone(),
        };
        let reasons = vec![format!(
            "the writer record of {db} does not name its recorded primary {}",
            d.primary
        )];
        st.start(
            ctx,
            leader,
            action,
            reasons,
            None,
            Origin::Writer,
            ctx.clock.now(),
        );
    }
    Ok(())
}

/// One compaction round of the journal and history. Failures are logged
/// and tried again next round; only a lost lease stops the leader.
async fn compact(ctx: &LeaderContext, leader: &Leadership) -> Result<(), ExecError> {
    match ctx
        .executor
        .compact(leader, &ctx.retention, ctx.clock.now())
        .await
    {
        Ok(c) => {
            metrics::gauge!("switchyard_journal_pending_intents").set(c.pending as f64);
            metrics::gauge!("switchyard_journal_undecodable_entries")
                .set(c.undecodable.len() as f64);
            if c.intents > 0 || c.history_trimmed {
                tracing::info!(
                    intents = c.intents,
                    history_trimmed = c.history_trimmed,
                    "journal compacted"
                );
            }
            Ok(())
        }
        Err(e) if e.lost_leadership() => Err(e),
        Err(e) => {
            tracing::warn!(error = %e, "cannot compact the journal now; next round");
            Ok(())
        }
    }
}

/// Re-reads the primaries after a failover recorded a new one.
async fn reload_primaries(ctx: &LeaderContext, topology: &mut Topology) {
    if let Ok(states) = control::databases(&ctx.store).await {
        for (db, state) in states {
            if let Some(d) = topology.databases.get_mut(&db) {
                d.primary = state.primary;
            }
        }
    }
}

/// Publishes the plan (`state/plan`) when what it does changed since this
/// term last published it. A write that fails is tried at the next tick.
async fn publish_plan(
    ctx: &LeaderContext,
    leader: &Leadership,
    st: &mut Term,
    plan: &engine::Plan,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), ExecError> {
    if st.plan.is_none() && !st.inherited_holds {
        // A new leader takes over the waits its predecessor published, with
        // their start: a standing gate-wait alarm is neither cleared nor
        // raised again by a change of leader.
        match ctx
            .store
            .get_json::<engine::PublishedPlan>(&ctx.store.keys().plan())
            .await
        {
            Ok(published) => {
                if let Some(p) = published {
                    st.gate_waits.inherit(&p.gate_holds, now);
                }
                st.inherited_holds = true;
            }
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the published plan yet");
                return Ok(());
            }
        }
    }
    let holds = st.gate_waits.holds();
    let fingerprint = engine::plan_fingerprint(plan, &holds);
    if st.plan.as_deref() == Some(fingerprint.as_str()) {
        return Ok(());
    }
    let value = engine::PublishedPlan {
        leader: ctx.id.clone(),
        since: now,
        paused: plan.paused,
        actions: plan.actions.clone(),
        gate_holds: holds,
    };
    match ctx
        .store
        .fenced_put_all(leader, vec![(ctx.store.keys().plan(), value)])
        .await
    {
        Ok(()) => st.plan = Some(fingerprint),
        Err(e @ StoreError::NotLeader(_)) => return Err(e.into()),
        Err(e) => tracing::debug!(error = %e, "cannot publish the plan; trying again next tick"),
    }
    Ok(())
}

/// One value [`publish_alarms`] writes: a history event, or the list of
/// alarms standing.
#[derive(Clone, serde::Serialize)]
#[serde(untagged)]
enum AlarmWrite<'a> {
    Event(crate::executor::HistoryEvent),
    Standing(Vec<&'a engine::PublishedAlarm>),
}

/// Operations per transaction when publishing alarms.
const ALARM_TXN_OPS: usize = 100;

/// Publishes the decision's alarms when the set changed: `state/alarms`
/// for `status`, a history event per alarm raised or cleared, and the
/// labelled gauge. A write that fails is tried again at the next tick.
async fn publish_alarms(
    ctx: &LeaderContext,
    leader: &Leadership,
    st: &mut Term,
    alarms: &[engine::Alarm],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), ExecError> {
    let key = ctx.store.keys().alarms();
    let published = match &st.alarms {
        Some(p) => p,
        None => {
            let list: Vec<engine::PublishedAlarm> = match ctx.store.get_json(&key).await {
                Ok(l) => l.unwrap_or_default(),
                Err(e) => {
                    tracing::debug!(error = %e, "cannot read the published alarms yet");
                    return Ok(());
                }
            };
            let map: BTreeMap<engine::AlarmKey, engine::PublishedAlarm> = list
                .into_iter()
                .map(|a| ((a.kind, a.subject.clone()), a))
                .collect();
            // What the previous leader raised stands here now.
            m::set_standing_alarms(map.values(), true);
            st.alarms = Some(map);
            return Ok(());
        }
    };
    let changes = engine::alarm_changes(published, alarms, now);
    if changes.is_empty() {
        return Ok(());
    }
    let mut puts: Vec<(String, AlarmWrite<'_>)> = Vec::new();
    for (verb, a) in changes
        .raised
        .iter()
        .map(|a| ("raised", a))
        .chain(changes.cleared.iter().map(|a| ("cleared", a)))
    {
        let event = crate::executor::HistoryEvent {
            at: now,
            by: ctx.id.clone(),
            what: format!(
                "alarm {verb}: {} {}: {}",
                engine::kind_label(a.kind),
                a.subject,
                a.message
            ),
            reasons: a.reasons.clone(),
            journal_id: None,
            steps: Vec::new(),
        };
        let hid = crate::executor::history_id(
            now,
            &format!("alarm-{verb}-{}-{}", engine::kind_label(a.kind), a.subject),
        );
        puts.push((ctx.store.keys().history(&hid), AlarmWrite::Event(event)));
        if verb == "raised" {
            tracing::warn!(kind = engine::kind_label(a.kind), subject = %a.subject, "alarm raised: {}", a.message);
        } else {
            tracing::info!(kind = engine::kind_label(a.kind), subject = %a.subject, "alarm cleared");
        }
    }
    // History first, `state/alarms` last, each transaction within etcd's
    // default limit of 128 operations (a wide outage raises many alarms).
    let list: Vec<&engine::PublishedAlarm> = changes.now.values().collect();
    puts.push((key, AlarmWrite::Standing(list)));
    for chunk in puts.chunks(ALARM_TXN_OPS) {
        match ctx.store.fenced_put_all(leader, chunk.to_vec()).await {
            Ok(()) => {}
            Err(e @ StoreError::NotLeader(_)) => return Err(e.into()),
            Err(e) => {
                metrics::counter!("switchyard_alarm_publish_failures_total").increment(1);
                tracing::warn!(error = %e, "cannot publish the alarms; trying again next tick");
                return Ok(());
            }
        }
    }
    m::set_alarms(&changes);
    st.alarms = Some(changes.now);
    Ok(())
}

/// Writes region states whose status changed (not their reasons' wording).
async fn persist_region_changes(
    ctx: &LeaderContext,
    leader: &Leadership,
    control: &mut ControlState,
    regions: &BTreeMap<String, RegionState>,
) -> Result<(), ExecError> {
    for (name, state) in regions {
        let changed = control
            .regions
            .get(name)
            .is_none_or(|old| old.status != state.status || old.ramp_step != state.ramp_step);
        if changed {
            ctx.store
                .fenced_put(leader, ctx.store.keys().region(name), state)
                .await?;
            tracing::info!(region = %name, status = ?state.status, reasons = ?state.reasons, "region state changed");
        }
        // Keep the engine's memory current either way (since, reasons).
        control.regions.insert(name.clone(), state.clone());
    }
    Ok(())
}

fn apply_done(control: &mut ControlState, action: &ActionSpec, now: chrono::DateTime<chrono::Utc>) {
    match action {
        ActionSpec::SetWeights { .. } | ActionSpec::SetWeightsBatch { .. } => {
            for (record, weights) in action.weight_sets() {
                m::set_weights(record, weights);
                control.weights.insert(record.clone(), weights.clone());
            }
        }
        ActionSpec::Failover { database, .. } => {
            control.last_failover.insert(database.clone(), now);
        }
        ActionSpec::Switchover { .. }
        | ActionSpec::Unfence { .. }
        | ActionSpec::MoveWriter { .. } => {}
    }
}

/// How long a read the leader makes outside an intent (discovering a
/// primary, the rejoin watcher's look) may take: what the lease has left
/// beyond the margin. `None` when too little is left to start one.
pub fn read_window(leader: &Leadership) -> Option<Duration> {
    if !leader.is_held() {
        return None;
    }
    let left = leader
        .deadline()
        .saturating_duration_since(tokio::time::Instant::now())
        .saturating_sub(LEASE_MARGIN);
    (left >= Duration::from_millis(100)).then_some(left)
}

/// Regions a failover takes a candidate from only when no other
/// qualifies: those the engine sees Down, and those an operator drained.
pub fn avoid_regions(control: &ControlState) -> std::collections::BTreeSet<String> {
    control
        .regions
        .iter()
        .filter(|(_, r)| r.status == RegionStatus::Down)
        .map(|(name, _)| name.clone())
        .chain(control.drained.iter().cloned())
        .collect()
}

/// The executor's form of an engine action; a failover avoids `avoid`.
pub fn spec_of(action: &Action, avoid: &std::collections::BTreeSet<String>) -> ActionSpec {
    match action {
        Action::SetWeights {
            record, weights, ..
        } => ActionSpec::SetWeights {
            record: record.clone(),
            weights: weights.clone(),
        },
        Action::Failover {
            database,
            from_member,
            ..
        } => ActionSpec::Failover {
            database: database.clone(),
            from_member: from_member.clone(),
            to_member: None,
            force: false,
            avoid_regions: avoid.clone(),
        },
    }
}

async fn wait_or_lost(
    leader: &Leadership,
    shutdown: &mut watch::Receiver<bool>,
    d: Duration,
) -> Result<(), ExecError> {
    tokio::select! {
        _ = tokio::time::sleep(d) => Ok(()),
        _ = leader.lost() => Err(StoreError::NotLeader("lost while waiting".into()).into()),
        _ = shutdown.wait_for(|s| *s) => Err(StoreError::NotLeader("shutting down".into()).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_void_once_expired_or_aimed_at_another_primary() {
        let at = |s: i64| chrono::DateTime::from_timestamp(s, 0).expect("time");
        let mut topology = Topology::default();
        topology.databases.insert(
            "orders".into(),
            engine::Database {
                members: BTreeMap::new(),
                primary: "m0".into(),
            },
        );
        let request = |expected: Option<&str>, expires: Option<i64>| OperatorRequest {
            action: ActionSpec::Switchover {
                database: "orders".into(),
                to_member: "m1".into(),
            },
            requested_by: "otto".into(),
            requested_at: at(0),
            reason: None,
            origin: None,
            expected_primary: expected.map(str::to_string),
            expires_at: expires.map(at),
        };
        // (expected primary, expiry, now, void because)
        let cases = [
            (None, None, 100, None),
            (Some("m0"), Some(200), 100, None),
            (Some("m0"), Some(200), 200, None),
            (Some("m0"), Some(200), 201, Some("expired")),
            (
                Some("m2"),
                None,
                100,
                Some("is m0, not m2 as the operator saw"),
            ),
            (Some("m2"), Some(50), 100, Some("expired")),
        ];
        for (expected, expires, now, void) in cases {
            let got = request_void(&request(expected, expires), &topology, at(now));
            match (void, &got) {
                (None, None) => {}
                (Some(why), Some(text)) if text.contains(why) => {}
                _ => panic!("{expected:?} {expires:?} at {now}: {got:?}"),
            }
        }
        topology.databases.clear();
        let unknown = request_void(&request(Some("m0"), None), &topology, at(0));
        assert!(unknown.is_some_and(|t| t.contains("is unknown, not m0")));
    }

    fn weights(record: &str, c: u32) -> Action {
        Action::SetWeights {
            record: record.into(),
            weights: [("a".to_string(), 100), ("c".to_string(), c)].into(),
            reasons: vec![format!("{record}: c is {c}")],
        }
    }

    #[test]
    fn a_plans_weight_changes_become_one_intent() {
        let failover = Action::Failover {
            database: "orders".into(),
            from_member: "m0".into(),
            after: None,
            reasons: vec![],
        };
        assert_eq!(traffic_intent(std::slice::from_ref(&failover)), None);
        let Some((one, key, _)) = traffic_intent(&[weights("api.", 0), failover.clone()]) else {
            panic!("one record");
        };
        assert!(matches!(one, ActionSpec::SetWeights { .. }), "{one:?}");
        assert_eq!(key, weights("api.", 0).key());
        let Some((batch, key, reasons)) =
            traffic_intent(&[weights("api.", 0), failover, weights("web.", 0)])
        else {
            panic!("two records");
        };
        let ActionSpec::SetWeightsBatch { records } = &batch else {
            panic!("{batch:?}");
        };
        assert_eq!(
            records.keys().collect::<Vec<_>>(),
            ["api.", "web."],
            "both records in one change"
        );
        assert_eq!(batch.weight_sets().len(), 2);
        assert!(key.contains("api.") && key.contains("web."), "{key}");
        assert_eq!(reasons.len(), 2);
        assert_eq!(Lane::of(&batch), Lane::Traffic);
    }
}
