//! What the leader publishes for operators and its successor: the plan
//! (`state/plan`), the alarms (`state/alarms` and history), and region
//! states that changed. Writes follow changes, never the tick.

use std::collections::BTreeMap;

use super::LeaderContext;
use super::term::Term;
use crate::engine::{self, ControlState, RegionState};
use crate::executor::ExecError;
use crate::runtime::metrics as m;
use crate::store::{Leadership, StoreError};

/// Publishes the plan (`state/plan`) when what it does changed since this
/// term last published it. A write that fails is tried at the next tick.
pub(super) async fn publish_plan(
    ctx: &LeaderContext,
    leader: &Leadership,
    st: &mut Term,
    plan: &engine::Plan,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), ExecError> {
    if st.published.plan.is_none() && !st.published.inherited_holds {
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
                st.published.inherited_holds = true;
            }
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the published plan yet");
                return Ok(());
            }
        }
    }
    let holds = st.gate_waits.holds();
    let fingerprint = engine::plan_fingerprint(plan, &holds);
    if st.published.plan.as_deref() == Some(fingerprint.as_str()) {
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
        Ok(()) => st.published.plan = Some(fingerprint),
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
pub(super) async fn publish_alarms(
    ctx: &LeaderContext,
    leader: &Leadership,
    st: &mut Term,
    alarms: &[engine::Alarm],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), ExecError> {
    let key = ctx.store.keys().alarms();
    let published = match &st.published.alarms {
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
            st.published.alarms = Some(map);
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
    st.published.alarms = Some(changes.now);
    Ok(())
}

/// Writes region states whose status changed (not their reasons' wording).
pub(super) async fn persist_region_changes(
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
