//! The leader's chores around the engine's decisions: discovering
//! primaries the store does not know, lifting fences of primaries whose
//! region is back, repairing writer records, compacting the journal,
//! reading the primaries again, and reading live weights for the drift
//! check.

use std::collections::BTreeMap;

use super::term::Origin;
use super::{Lead, LeaderContext, WRITER_READ, read_window};

use super::plan::primary_region_back;
use crate::engine::{ControlState, Topology};
use crate::executor::{ActionSpec, ExecError};
use crate::fence::local::FenceRecord;
use crate::runtime::control;
use crate::runtime::lanes::Lane;
use crate::store::{LEASE_MARGIN, Leadership, StoreError};
use crate::traffic::TrafficBackend;

/// Asks each database whose primary the store does not know yet which
/// member is primary, and records it (fenced) so failovers can be planned.
pub(super) async fn discover_primaries(
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
        let observed = switchyard_host::time::timeout(window, set.observe())
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
                    // Only where no record is: one this leader could not
                    // read (undecodable, a newer version's) is not its to
                    // replace with a guess at epoch 1.
                    let key = ctx.store.keys().database(name);
                    if ctx.store.fenced_create(leader, key.clone(), &state).await? {
                        tracing::info!(database = %name, primary = %primary, "primary discovered");
                        db.primary = primary;
                    } else {
                        // Written since the read, or one it could not
                        // decode: the next read of the primaries says.
                        tracing::warn!(database = %name, key = %key, "a record is there already; not discovering over it");
                    }
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
pub(super) async fn lift_fences(
    ctx: &LeaderContext,
    leader: &Leadership,
    st: &mut Lead,
    topology: &Topology,
    control: &ControlState,
) -> Result<(), ExecError> {
    for (db, d) in &topology.databases {
        let key = format!("unfence:{db}");
        if d.primary.is_empty()
            || !st.term.may_start(
                &Lane::Database(db.clone()),
                Some(&key),
                switchyard_host::time::now(),
            )
            || !primary_region_back(d, control)
        {
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
pub(super) async fn repair_writers(
    ctx: &LeaderContext,
    leader: &Leadership,
    st: &mut Lead,
    topology: &Topology,
) -> Result<(), ExecError> {
    for (db, d) in &topology.databases {
        if d.primary.is_empty()
            || !st.term.may_start(
                &Lane::Database(db.clone()),
                None,
                switchyard_host::time::now(),
            )
        {
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
pub(super) async fn compact(ctx: &LeaderContext, leader: &Leadership) -> Result<(), ExecError> {
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

/// Re-reads the primaries after a failover, a switchover or a resume
/// may have recorded a new one, or a record changed: `None` when etcd
/// could not be read (the term then plans nothing and the loop tries
/// again next tick), else the databases whose records could not be
/// decoded, with why.
///
/// Such a record (a newer version's, a hand edit) leaves its database
/// with no primary held: the engine plans nothing for a database whose
/// primary is unknown, so none of its failovers is planned on a primary
/// the record may no longer name; the operator's requests for it are
/// refused (`requests::unreadable_void`). The leader leads every other
/// one.
pub(super) async fn reload_primaries(
    ctx: &LeaderContext,
    topology: &mut Topology,
) -> Option<BTreeMap<String, String>> {
    match control::databases(&ctx.store).await {
        Ok(records) => {
            for (db, state) in records.states {
                if let Some(d) = topology.databases.get_mut(&db) {
                    d.primary = state.primary;
                }
            }
            for (db, why) in &records.undecodable {
                tracing::error!(database = %db, error = %why, "cannot decode the database's record; nothing is planned for it until it is mended");
                if let Some(d) = topology.databases.get_mut(db) {
                    d.primary.clear();
                }
            }
            metrics::gauge!("switchyard_database_records_undecodable")
                .set(records.undecodable.len() as f64);
            Some(records.undecodable)
        }
        Err(e) if e.retryable() => {
            tracing::warn!(error = %e, "cannot read the primaries again yet; planning nothing until then");
            None
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot read the primaries again; keeping the ones held");
            Some(BTreeMap::new())
        }
    }
}

/// The records whose live weights differ from `desired`, with why. A
/// record the backend cannot read now is left for the next check.
pub(super) async fn drifted(
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
