//! The leader's loop: finish what the last leader left pending, then decide
//! and act every tick until leadership ends.
//!
//! The loop is a driver: what the term remembers and every choice about
//! what to start, resume or retry is [`term::Term`], a state machine with
//! no I/O. The driver reads etcd and the probes' view, asks the engine and
//! the promotion gate, runs actions in their lanes, publishes, and tells
//! the term how each went.
//!
//! etcd writes follow state *changes* (a region changing status, an action),
//! never the rate of probe reports.

mod chores;
mod plan;
mod publish;
mod requests;
pub mod term;
#[cfg(test)]
mod term_tests;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use switchyard_probes::replication::ReplicaSet;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::ingest::Aggregator;
use crate::clock::Clock;
use crate::engine::{self, Action, Policy, Topology};
use crate::executor::{ActionSpec, ExecError, Executor, JournalEntry, Status};
use crate::fence::gate::Gate;
use crate::runtime::lanes::Lane;
use crate::runtime::metrics as m;
use crate::runtime::{control, rejoin};
use crate::store::{LEASE_MARGIN, Leadership, Role, Store, StoreError};
use crate::traffic::TrafficBackend;

pub use plan::{avoid_regions, primary_region_back, spec_of, traffic_intent};
pub use requests::request_void;
use term::{Decided, Ended, Followup, GateStep, Next, Origin, Term};

/// How often the leader decides.
pub const TICK: Duration = Duration::from_millis(250);
/// A gate wait not asked about for this long is over (the failover is no
/// longer wanted, or automation paused): its alarm clears. Long next to a
/// tick, so ticks slowed by etcd trouble do not restart a standing wait.
const GATE_WAIT_STALE: Duration = Duration::from_secs(30);
/// How long the writer-record check's read may take.
const WRITER_READ: Duration = Duration::from_secs(1);
/// How long one drift check's reads may take, all records together.
const DRIFT_READ: Duration = Duration::from_secs(5);

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

/// What an action's task gives back: its journal entry, or `None` when it
/// found nothing to do (no drift).
type Task = JoinHandle<Result<Option<JournalEntry>, ExecError>>;

/// One term being led: the term's state machine and the tasks running its
/// lanes' actions.
struct Lead {
    term: Term,
    tasks: BTreeMap<Lane, Task>,
    /// Databases whose record could not be decoded at the last read of
    /// the primaries, with why: no primary is held for them, and the
    /// operator's failovers and switchovers of them are refused.
    unreadable: BTreeMap<String, String>,
}

/// Leads one term, then waits for every action it started to stop, so
/// this node never runs actions of two of its terms at once (a new term
/// won straight after a resign must not race the old term's last apply).
async fn lead(
    ctx: &LeaderContext,
    leader: &Leadership,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), ExecError> {
    let (control, topology, unreadable) = take_over(ctx, leader, shutdown).await?;
    let mut st = Lead {
        term: Term::new(switchyard_host::time::now()),
        tasks: BTreeMap::new(),
        unreadable,
    };
    let result = lead_ticks(ctx, leader, shutdown, &mut st, control, topology).await;
    drain(st.tasks).await;
    // Nor the actions that keep failing: the next leader counts its own.
    m::set_failing_actions(&[]);
    // Only the leader exports alarms: a node that no longer leads cannot
    // see them clear.
    if let Some(standing) = &st.term.published.alarms {
        m::set_standing_alarms(standing.values(), false);
    }
    result
}

/// Waits (up to [`DRAIN`]) for every running action to stop; aborts what
/// is left and says so.
async fn drain(tasks: BTreeMap<Lane, Task>) {
    for (lane, task) in tasks {
        let abort = task.abort_handle();
        if switchyard_host::time::timeout(DRAIN, task).await.is_err() {
            abort.abort();
            tracing::error!(%lane, "an action of the ended term did not stop within {DRAIN:?}; aborted");
        }
    }
}

/// Takes over from the last leader before deciding anything: finishes
/// every intent it left pending, loads the engine's memory and the
/// primaries (discovering those the store does not know), with the
/// databases whose records it could not decode.
async fn take_over(
    ctx: &LeaderContext,
    leader: &Leadership,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(engine::ControlState, Topology, BTreeMap<String, String>), ExecError> {
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
                let wait = if e.interrupted() {
                    term::RETRY_AFTER
                } else {
                    TICK
                };
                wait_or_lost(leader, shutdown, wait).await?;
            }
        }
    }
    // 2. Load the engine's memory.
    let control = loop {
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
    // the engine plans no failover for that database), read until etcd
    // answers: a primary left empty here would be discovered from the
    // members, which is slower and says less than the record does.
    let mut topology = ctx.topology.clone();
    let unreadable = loop {
        match chores::reload_primaries(ctx, &mut topology).await {
            Some(unreadable) => break unreadable,
            None => wait_or_lost(leader, shutdown, TICK).await?,
        }
    };
    chores::discover_primaries(ctx, leader, &mut topology).await?;
    for (record, weights) in &control.weights {
        m::set_weights(record, weights);
    }
    m::set_switches(control.paused, control.drained.len());
    tracing::info!(paused = control.paused, drained = ?control.drained, "leading");
    Ok((control, topology, unreadable))
}

async fn lead_ticks(
    ctx: &LeaderContext,
    leader: &Leadership,
    shutdown: &mut watch::Receiver<bool>,
    st: &mut Lead,
    mut control: engine::ControlState,
    mut topology: Topology,
) -> Result<(), ExecError> {
    let mut shown = m::Shown::default();
    let mut tick = switchyard_host::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A primary lease that changes (etcd ended one, say) is looked at at
    // once: a failover waiting at the gate must not wait for the tick.
    let (leases_changed, _lease_watch) = super::change_watch::watch_primary_leases(&ctx.store);
    let (records_changed, _records_watch) = super::change_watch::watch_database_records(&ctx.store);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = leases_changed.notified() => st.term.leases_changed(),
            _ = records_changed.notified() => st.term.records_changed(),
            _ = leader.lost() => return Ok(()),
            _ = shutdown.wait_for(|s| *s) => return Ok(()),
        }
        // What the lanes finished since the last tick.
        harvest(ctx, st, &mut control).await?;
        // A primary may have moved (or its record changed): read them
        // before planning anything, or publishing a plan made on the old
        // ones.
        if st.term.primaries_stale() {
            let read = chores::reload_primaries(ctx, &mut topology).await;
            st.term.primaries_read(read.is_some());
            match read {
                Some(unreadable) => st.unreadable = unreadable,
                None => continue,
            }
        }
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
        let chores = st.term.chores(switchyard_host::time::now(), control.paused);
        if chores.requests
            && let Ok(controls) = &controls
        {
            requests::serve_requests(
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
        if chores.lift_fences {
            chores::lift_fences(ctx, leader, st, &topology, &control).await?;
        }
        m::set_failing_actions(&st.term.failing());
        if chores.compact {
            chores::compact(ctx, leader).await?;
        }
        if chores.check_writers {
            chores::repair_writers(ctx, leader, st, &topology).await?;
        }
        let now = ctx.clock.now();
        let decision = ctx
            .aggregator
            .with_book(|book| engine::decide(&topology, book, &control, &ctx.policy, now));
        m::record_decision(&decision, &mut shown);
        publish::persist_region_changes(ctx, leader, &mut control, &decision.regions).await?;
        let mut alarms = decision.alarms.clone();
        alarms.extend(
            st.term
                .gate_waits
                .alarms(now, ctx.gate_alarm_after, GATE_WAIT_STALE),
        );
        publish::publish_alarms(ctx, leader, &mut st.term, &alarms, now).await?;
        publish::publish_plan(ctx, leader, &mut st.term, &decision.plan, now).await?;
        let avoid = avoid_regions(&control);
        // One traffic intent (one batch) for every weight change of the plan.
        let traffic = traffic_intent(&decision.plan.actions);
        let failovers: Vec<(ActionSpec, String, Vec<String>)> = decision
            .plan
            .actions
            .iter()
            .filter(|a| matches!(a, Action::Failover { .. }))
            .map(|a| (spec_of(a, &avoid), a.key(), a.reasons().to_vec()))
            .collect();
        let lanes: Vec<(String, Lane)> = failovers
            .iter()
            .map(|(spec, key, _)| (key.clone(), Lane::of(spec)))
            .collect();
        let next = st.term.next(&Decided {
            now: switchyard_host::time::now(),
            paused: decision.plan.paused,
            traffic: traffic.as_ref().map(|(_, key, _)| key.as_str()),
            failovers: &lanes,
            desired_weights: !control.weights.is_empty(),
            drift_every: ctx.drift_check,
        });
        let acts = match next {
            Next::Hold | Next::Paused => continue,
            Next::Resume => {
                resume(ctx, leader, st, &mut control).await?;
                continue;
            }
            Next::Act(acts) => acts,
        };
        if acts.traffic
            && let Some((spec, key, reasons)) = traffic
        {
            st.start(ctx, leader, spec, reasons, None, Origin::Engine(key), now);
        }
        if acts.drift {
            st.check_drift(ctx, leader, control.weights.clone());
        }
        for (spec, key, mut reasons) in failovers {
            if !acts.failovers.contains(&key) {
                continue;
            }
            let answer = gate(ctx, &spec, now).await;
            let shut = answer.as_ref().err().map(String::as_str);
            match st.term.gate_answered(
                &key,
                spec.subject(),
                shut,
                switchyard_host::time::now(),
                now,
            ) {
                GateStep::Start => reasons.extend(answer.ok().flatten()),
                GateStep::Wait { log } => {
                    // Logged when the wait starts, then every 30 s.
                    if log {
                        let reason = shut.unwrap_or_default();
                        tracing::warn!(database = %spec.subject(), "promotion gate shut: {reason}");
                    }
                    continue;
                }
            }
            st.start(ctx, leader, spec, reasons, None, Origin::Engine(key), now);
        }
    }
}

/// Resumes this term's interrupted intent from its cursor (every lane is
/// idle: the term said so), and tells the term how it went.
async fn resume(
    ctx: &LeaderContext,
    leader: &Leadership,
    st: &mut Lead,
    control: &mut engine::ControlState,
) -> Result<(), ExecError> {
    match ctx.executor.finish_pending(leader, ctx.clock.now()).await {
        Ok(done) => {
            for e in &done {
                tracing::info!(id = %e.id, outcome = ?e.outcome, "resumed an interrupted intent");
                if e.status == Status::Done {
                    // The engine's memory follows what the resume did.
                    apply_done(
                        control,
                        &e.action,
                        e.finished_at.unwrap_or_else(|| ctx.clock.now()),
                    );
                }
            }
            // The term now holds its plans until the next tick has read
            // the primaries the resume may have moved.
            st.term.resumed(true, switchyard_host::time::now());
            Ok(())
        }
        Err(e) if e.lost_leadership() => Err(e),
        Err(e) => {
            tracing::warn!(error = %e, "interrupted intent not finished yet; will resume");
            st.term.resumed(false, switchyard_host::time::now());
            Ok(())
        }
    }
}

/// The engine's memory, and the weight gauges, after `action` was carried
/// out.
fn apply_done(
    control: &mut engine::ControlState,
    action: &ActionSpec,
    at: chrono::DateTime<chrono::Utc>,
) {
    term::apply_done(control, action, at);
    for (record, weights) in action.weight_sets() {
        m::set_weights(record, weights);
    }
}

impl Lead {
    /// Starts `spec` in its lane, when the term lets it (the lane is free
    /// and no resume is pending).
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
        if !self.term.start(lane.clone(), origin) {
            return;
        }
        let executor = ctx.executor.clone();
        let leader = leader.clone();
        tracing::debug!(%lane, action = spec.kind(), subject = spec.subject(), "starting in its lane");
        let task = crate::task::spawn(async move {
            executor
                .execute_request(&leader, spec, reasons, request, now)
                .await
                .map(Some)
        });
        self.run(lane, task);
    }

    /// Keeps `task`'s handle for `lane`, which the term just gave it.
    fn run(&mut self, lane: Lane, task: Task) {
        if let Some(old) = self.tasks.insert(lane.clone(), task) {
            // Never: the term refuses a busy lane. Do not leave it running
            // unaccounted for.
            old.abort();
            tracing::error!(%lane, "a lane held a task the term did not know of; aborted it");
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
        if !self
            .term
            .start(Lane::Traffic, Origin::Drift(term::DRIFT.to_string()))
        {
            return;
        }
        let traffic = ctx.traffic.clone();
        let executor = ctx.executor.clone();
        let leader = leader.clone();
        let now = ctx.clock.now();
        let task = crate::task::spawn(async move {
            let found = switchyard_host::time::timeout(
                DRIFT_READ,
                chores::drifted(traffic.as_ref(), &desired),
            );
            let (records, reasons) = match found.await {
                Ok(found) => found,
                Err(_) => {
                    tracing::warn!("drift check: the backend did not answer within {DRIFT_READ:?}");
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
        self.run(Lane::Traffic, task);
    }
}

/// Collects what the lanes finished and tells the term; performs what it
/// says follows (the engine's memory, new primaries). A lane that lost
/// leadership ends the term, once every finished lane was looked at.
async fn harvest(
    ctx: &LeaderContext,
    st: &mut Lead,
    control: &mut engine::ControlState,
) -> Result<(), ExecError> {
    let finished: Vec<Lane> = st
        .tasks
        .iter()
        .filter(|(_, t)| t.is_finished())
        .map(|(l, _)| l.clone())
        .collect();
    let mut lost = None;
    for lane in finished {
        let Some(task) = st.tasks.remove(&lane) else {
            continue;
        };
        let (how, error) = match task.await {
            Ok(Ok(None)) => (Ended::NothingToDo, None),
            Ok(Ok(Some(entry))) => (Ended::Journaled(Box::new(entry)), None),
            Ok(Err(e)) if e.lost_leadership() => (Ended::LostLeadership, Some(e)),
            Ok(Err(ExecError::Withdrawn(id))) => (Ended::Withdrawn(id), None),
            Ok(Err(e)) if e.interrupted() => (Ended::Interrupted, Some(e)),
            Ok(Err(e)) => (Ended::Unsettled, Some(e)),
            Err(e) => {
                tracing::error!(%lane, error = %e, "an action's task ended abnormally");
                (Ended::Aborted, None)
            }
        };
        let entry = match &how {
            Ended::Journaled(entry) => Some(entry.as_ref()),
            _ => None,
        };
        if let Some(entry) = entry
            && let Some(id) = &entry.request
        {
            tracing::info!(request = %id, status = ?entry.status, outcome = ?entry.outcome, "operator request carried out");
        }
        let origin = st.term.origin(&lane).cloned();
        let Some(followup) = st.term.ended(&lane, &how, switchyard_host::time::now()) else {
            tracing::error!(%lane, "a task ended in a lane the term did not know of");
            continue;
        };
        match followup {
            Followup::Nothing => {}
            Followup::Lost => lost = error,
            Followup::Withdrawn => {
                if let Ended::Withdrawn(id) = &how {
                    tracing::info!(request = %id, "operator request withdrawn before it started");
                }
            }
            Followup::Resume { interrupted: true } => {
                let e = error.map(|e| e.to_string()).unwrap_or_default();
                tracing::warn!(%lane, error = %e, "will resume the interrupted intent first");
            }
            Followup::Resume { interrupted: false } => {
                let e = error.map(|e| e.to_string()).unwrap_or_default();
                tracing::warn!(%lane, ?origin, error = %e, "etcd trouble (or an abnormal end) while executing; settling the journal before anything else");
            }
            Followup::Done { engine } => {
                let Some(entry) = entry else { continue };
                if engine {
                    apply_done(
                        control,
                        &entry.action,
                        entry.finished_at.unwrap_or_else(|| ctx.clock.now()),
                    );
                }
            }
            Followup::Failed { retry_in, alarmed } => {
                let Some(entry) = entry else { continue };
                let outcome = entry.outcome.as_deref().unwrap_or_default();
                let retryable = entry.retryable.unwrap_or(true);
                match retry_in {
                    None => tracing::warn!(id = %entry.id, ?origin, outcome, "action failed"),
                    Some(wait) if alarmed => {
                        tracing::error!(id = %entry.id, outcome, retryable, retry_in_ms = wait.as_millis() as u64, "action keeps failing: it needs a person (switchyard_actions_failing)")
                    }
                    Some(wait) => {
                        tracing::warn!(id = %entry.id, outcome, retryable, retry_in_ms = wait.as_millis() as u64, "action failed")
                    }
                }
            }
        }
    }
    match lost {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Asks the promotion gate before a failover: `Ok` with the reason to add to
/// the action's (none for other actions), `Err` with why it must wait.
pub(super) async fn gate(
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

/// How long a read the leader makes outside an intent (discovering a
/// primary, the rejoin watcher's look) may take: what the lease has left
/// beyond the margin. `None` when too little is left to start one.
pub fn read_window(leader: &Leadership) -> Option<Duration> {
    if !leader.is_held() {
        return None;
    }
    let left = leader
        .deadline()
        .saturating_duration_since(switchyard_host::time::now())
        .saturating_sub(LEASE_MARGIN);
    (left >= Duration::from_millis(100)).then_some(left)
}

async fn wait_or_lost(
    leader: &Leadership,
    shutdown: &mut watch::Receiver<bool>,
    d: Duration,
) -> Result<(), ExecError> {
    tokio::select! {
        _ = switchyard_host::time::sleep(d) => Ok(()),
        _ = leader.lost() => Err(StoreError::NotLeader("lost while waiting".into()).into()),
        _ = shutdown.wait_for(|s| *s) => Err(StoreError::NotLeader("shutting down".into()).into()),
    }
}
