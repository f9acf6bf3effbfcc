//! The keeper's part in the dead-man switch (`docs/SAFETY.md`, S4): while
//! it holds a primary's lease, it renews the switch on that primary so
//! that the primary turns itself read-only by the time the lease can run
//! out — the fence that still happens when every controller of the region
//! is dead. A switch that fired is reported as a fence of the primary, so
//! the leader lifts it through its guarded path once the region is well;
//! so is a primary that crashed writable and restarted read-only (as its
//! configuration says) while this region kept its lease: nobody replaced
//! it, and without the report nobody would make it writable again.

use std::collections::{BTreeMap, BTreeSet};

use switchyard_probes::replication::ReplicaSet;
use tokio::time::Instant;

use crate::fence::lease::PrimaryLease;
use crate::fence::local::{FenceOutcome, FenceRecord, FencedUnder};

/// What the keeper remembers of the switches between ticks.
#[derive(Debug, Default)]
pub struct DeadManMemory {
    /// `(database, member)` whose switch was removed by this process (a
    /// database configured without the switch).
    disarmed: BTreeSet<(String, String)>,
    /// Per database, the firing already reported.
    reported: BTreeMap<String, String>,
    /// Per database, the last error said (said again only when it changes).
    said: BTreeMap<String, String>,
}

/// When, on this process's clock, the primary must be read-only if not
/// renewed again: the margin `m = max(P/4, 500 ms)` before `lease` can run
/// out at the earliest — the same margin the isolation loop's own fence
/// keeps. etcd counts a lease's TTL from when it received the last
/// keep-alive, which was after this process sent it.
pub fn deadline(lease: &PrimaryLease) -> Instant {
    lease
        .fence_deadline(margin(lease.ttl()), std::time::Duration::ZERO)
        .done_by
}

/// The margin a fence keeps before its lease can end.
pub fn margin(ttl: std::time::Duration) -> std::time::Duration {
    (ttl / 4).max(std::time::Duration::from_millis(500))
}

/// What one tick does with the switch of `primary`, the primary of `db`,
/// under `lease` (which this controller holds, verified, for it).
pub enum Work {
    /// Renew it (the database is configured with the switch).
    Renew {
        /// Its deadline.
        until: Instant,
        /// What a fence record of a firing is made under.
        under: FencedUnder,
    },
    /// Remove it once per process (configured without).
    Disarm,
    /// Nothing to do (not holding a verified lease for this primary and
    /// epoch).
    Nothing,
}

/// The tick's work: pure, from the lease held and the configuration.
pub fn work(armed: bool, lease: Option<&PrimaryLease>, primary: &str, epoch: u64) -> Work {
    let Some(l) = lease else {
        return Work::Nothing;
    };
    let renewal = l.renewal();
    let value = l.value();
    if !l.verified() || renewal.lost || value.primary != primary || value.epoch != Some(epoch) {
        return Work::Nothing;
    }
    if !armed {
        return Work::Disarm;
    }
    Work::Renew {
        until: deadline(l),
        under: FencedUnder {
            primary: primary.to_string(),
            epoch,
            lease_id: Some(l.lease_id()),
        },
    }
}

impl DeadManMemory {
    /// Performs `work` on `primary` through `set`; returns the fence record
    /// to log when the switch fired since the last report.
    pub async fn perform(
        &mut self,
        db: &str,
        primary: &str,
        work: Work,
        set: &dyn ReplicaSet,
        now: chrono::DateTime<chrono::Utc>,
        self_id: &str,
    ) -> Option<FenceRecord> {
        match work {
            Work::Nothing => None,
            Work::Disarm => {
                let key = (db.to_string(), primary.to_string());
                if !self.disarmed.contains(&key) {
                    match set.disarm_dead_man(primary).await {
                        Ok(()) => {
                            self.disarmed.insert(key);
                        }
                        Err(e) => self.say(
                            db,
                            format!("cannot remove the dead-man switch of {primary}: {e}"),
                        ),
                    }
                }
                None
            }
            Work::Renew { until, under } => match set.hold_dead_man(primary, until).await {
                Ok(dm) => {
                    metrics::gauge!("switchyard_dead_man_armed", "database" => db.to_string())
                        .set(if dm.scheduler_on { 1.0 } else { 0.0 });
                    if dm.scheduler_on {
                        self.said.remove(db);
                    } else {
                        self.say(
                            db,
                            format!(
                                "the dead-man switch of {primary} cannot fire: its server runs \
                                 with event_scheduler OFF (set event_scheduler = ON)"
                            ),
                        );
                    }
                    let (mark, reason) = match (dm.fired, dm.restarted_read_only) {
                        (Some(fired), _) => (
                            format!("fired {fired}"),
                            format!(
                                "its dead-man switch fired at {fired} (server time, UTC): {self_id} \
                                 had not renewed it in time"
                            ),
                        ),
                        (None, Some(writable_at)) => (
                            format!("restarted {writable_at}"),
                            format!(
                                "it restarted read-only (as its configuration says) after it was \
                                 last seen writable at {writable_at} (server time, UTC), while \
                                 {self_id} kept its lease: nobody replaced it"
                            ),
                        ),
                        (None, None) => return None,
                    };
                    if self.reported.get(db) == Some(&mark) {
                        return None;
                    }
                    self.reported.insert(db.to_string(), mark);
                    tracing::warn!(database = %db, member = %primary, %reason,
                        "the primary is read-only; reporting it as a fence so the leader can lift it");
                    Some(FenceRecord {
                        at: now,
                        database: db.to_string(),
                        member: primary.to_string(),
                        result: FenceOutcome::Fenced,
                        reason,
                        under: Some(under),
                    })
                }
                Err(e) => {
                    metrics::gauge!("switchyard_dead_man_armed", "database" => db.to_string())
                        .set(0.0);
                    self.say(
                        db,
                        format!("cannot renew the dead-man switch of {primary}: {e}"),
                    );
                    None
                }
            },
        }
    }

    /// Forgets the report of `db`'s firing (its record could not be
    /// logged: the next tick reports it again).
    pub fn forget_report(&mut self, db: &str) {
        self.reported.remove(db);
    }

    /// Logs `what` for `db` once, until it changes.
    fn say(&mut self, db: &str, what: String) {
        if self.said.get(db) != Some(&what) {
            tracing::warn!(database = %db, "{what}");
            self.said.insert(db.to_string(), what);
        }
    }
}
