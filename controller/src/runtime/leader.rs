//! The leader's loop: finish what the last leader left pending, then decide
//! and act every tick until leadership ends.
//!
//! etcd writes follow state *changes* (a region changing status, an action),
//! never the rate of probe reports.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::api::ingest::Aggregator;
use crate::clock::Clock;
use crate::engine::{self, Action, ControlState, Policy, RegionState, Topology};
use crate::executor::{ActionSpec, ExecError, Executor, Status};
use crate::runtime::control;
use crate::runtime::metrics as m;
use crate::store::{Leadership, Role, Store, StoreError};
use crate::traffic::TrafficBackend;

/// How often the leader decides.
pub const TICK: Duration = Duration::from_millis(250);
/// How often the operator's switches are re-read from etcd.
const SWITCH_REFRESH: Duration = Duration::from_secs(1);
/// How long a failed action is left alone before it is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// Everything the leader loop works with.
pub struct LeaderContext {
    /// Shared state in etcd.
    pub store: Store,
    /// Where actions go.
    pub executor: Executor,
    /// The traffic backend (read when a record has no stored weights).
    pub traffic: Arc<dyn TrafficBackend>,
    /// What exists.
    pub topology: Topology,
    /// How to decide.
    pub policy: Policy,
    /// What the probes see.
    pub aggregator: Arc<Aggregator>,
    /// Where now comes from.
    pub clock: Arc<dyn Clock>,
}

/// Leads whenever `role` says so, until `shutdown`.
pub async fn run(
    ctx: LeaderContext,
    mut role: watch::Receiver<Role>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let leadership = tokio::select! {
            r = role.wait_for(|r| matches!(r, Role::Leader(_))) => match r.map(|r| r.clone()) {
                Ok(Role::Leader(l)) => l,
                _ => return,
            },
            _ = shutdown.wait_for(|s| *s) => return,
        };
        m::set_leader(true);
        match lead(&ctx, &leadership, &mut shutdown).await {
            Ok(()) => {}
            Err(e) => tracing::warn!(error = %e, "leading stopped"),
        }
        m::set_leader(false);
        // Whatever happened, this term is over.
        leadership.step_down("leader loop ended");
        if *shutdown.borrow() {
            return;
        }
        let _ = role.wait_for(|r| matches!(r, Role::Follower)).await;
    }
}

async fn lead(
    ctx: &LeaderContext,
    leader: &Leadership,
    shutdown: &mut watch::Receiver<bool>,
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
                wait_or_lost(leader, shutdown, TICK).await?;
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
    tracing::info!(paused = control.paused, drained = ?control.drained, "leading");
    let mut retry_at: BTreeMap<String, tokio::time::Instant> = BTreeMap::new();
    let mut last_refresh = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = leader.lost() => return Ok(()),
            _ = shutdown.wait_for(|s| *s) => return Ok(()),
        }
        if last_refresh.elapsed() >= SWITCH_REFRESH {
            last_refresh = tokio::time::Instant::now();
            if let Err(e) = control::refresh_switches(&ctx.store, &mut control).await {
                tracing::debug!(error = %e, "cannot refresh operator switches");
            }
        }
        let now = ctx.clock.now();
        let decision = ctx
            .aggregator
            .with_book(|book| engine::decide(&ctx.topology, book, &control, &ctx.policy, now));
        m::record_decision(&decision);
        persist_region_changes(ctx, leader, &mut control, &decision.regions).await?;
        if decision.plan.paused {
            continue;
        }
        for action in &decision.plan.actions {
            let spec = spec_of(action);
            let key = action.key();
            if retry_at
                .get(&key)
                .is_some_and(|t| tokio::time::Instant::now() < *t)
            {
                continue;
            }
            let entry = match ctx
                .executor
                .execute(leader, spec, action.reasons().to_vec(), now)
                .await
            {
                Ok(e) => e,
                Err(e) if e.lost_leadership() => return Err(e),
                Err(e) => {
                    tracing::warn!(error = %e, "etcd trouble while executing; will retry");
                    break;
                }
            };
            match entry.status {
                Status::Done => {
                    retry_at.remove(&key);
                    apply_done(&mut control, &entry.action, now);
                }
                _ => {
                    tracing::warn!(id = %entry.id, outcome = ?entry.outcome, "action failed");
                    retry_at.insert(key, tokio::time::Instant::now() + RETRY_AFTER);
                }
            }
        }
    }
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
        ActionSpec::SetWeights { record, weights } => {
            control.weights.insert(record.clone(), weights.clone());
        }
        ActionSpec::Failover { database, .. } => {
            control.last_failover.insert(database.clone(), now);
        }
    }
}

/// The executor's form of an engine action.
pub fn spec_of(action: &Action) -> ActionSpec {
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
