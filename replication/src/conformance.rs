//! The contract of [`ReplicaSet`] over GTID replication, as one suite run
//! against real MariaDB servers (`tests/mariadb/conformance.rs`) and
//! against the simulated ones ([`crate::mysql::sim`]): the simulator is
//! only as good as its servers, so they must pass what real ones pass.
//!
//! The suite needs a [`Lab`]: three members, the first the writable
//! primary and the others its replicas, caught up, and a way to write as
//! the application, to write past `read_only` as an admin, to crash a
//! member and to stop a replica's applier. It runs its checks in one
//! order, each leaving a topology the next starts from:
//! reading, replication, the dead-man switch (a firing, a restart),
//! fencing, switchover (there and back, and resumed after its target
//! restarted), a stopped
//! applier, failover of a crashed primary, and an errant transaction.

use std::future::Future;
use std::time::Duration;

use crate::error::ReplError;
use crate::gtid::Position;
use crate::guard::{Step, StepGuard, Unguarded};
use crate::replica_set::{FailoverRequest, ReplicaSet};
use crate::snapshot::{Role, Snapshot};

/// Why an implementation broke the contract.
#[derive(Debug, thiserror::Error)]
#[error("replica set conformance: {0}")]
pub struct Violation(pub String);

impl From<ReplError> for Violation {
    fn from(e: ReplError) -> Self {
        Violation(format!("unexpected error: {e}"))
    }
}

macro_rules! ensure {
    ($cond:expr, $($why:tt)+) => {
        if !$cond {
            return Err(Violation(format!($($why)+)));
        }
    };
}

/// What the suite does to the servers besides calling the adapter.
#[async_trait::async_trait]
pub trait Lab: Send + Sync {
    /// The three member ids: the primary first, then its replicas.
    fn ids(&self) -> [String; 3];

    /// Commits one transaction on `member` as the application (whom
    /// `read_only` stops); `Err` when it was refused.
    async fn write(&self, member: &str) -> Result<(), String>;

    /// Commits one transaction on `member` as an account `read_only` does
    /// not stop: on a replica, an errant transaction.
    async fn write_as_admin(&self, member: &str) -> Result<(), String>;

    /// Kills `member` (SIGKILL).
    async fn crash(&mut self, member: &str) -> Result<(), String>;

    /// Shuts `member` down cleanly and starts it again; it comes back
    /// read-only, as its configuration says.
    async fn restart(&mut self, member: &str) -> Result<(), String>;

    /// Stops `member`'s applier (`STOP SLAVE SQL_THREAD`).
    async fn stop_applier(&self, member: &str) -> Result<(), String>;
}

/// Longest wait for replication to get somewhere.
const PATIENCE: Duration = Duration::from_secs(20);

/// Every step allowed: the suite runs no leader.
static FREE: Unguarded = Unguarded {
    budget: Duration::from_secs(30),
};

/// Polls `f` until it gives `Ok`, or fails after [`PATIENCE`] with its
/// last `Err`.
async fn until<T, F, Fut>(what: &str, mut f: F) -> Result<T, Violation>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(last) if tokio::time::Instant::now() >= deadline => {
                return Err(Violation(format!(
                    "{what}: not within {PATIENCE:?}: {last}"
                )));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Waits until `primary` is the writable primary and every id of
/// `followers` replicates from it, both threads running, with all of its
/// transactions applied.
async fn settled(
    rs: &dyn ReplicaSet,
    primary: &str,
    followers: &[&str],
) -> Result<Snapshot, Violation> {
    until(
        &format!("{primary} leading {followers:?}, caught up"),
        || async {
            let s = rs.observe().await.map_err(|e| e.to_string())?;
            let p = s.member(primary).ok_or("no such member")?;
            if p.role != Role::Primary || p.read_only != Some(false) {
                return Err(format!(
                    "{primary} is {} (read_only {:?})",
                    p.role, p.read_only
                ));
            }
            let pos = p.position.clone().ok_or("primary position unknown")?;
            for f in followers {
                let m = s.member(f).ok_or("no such member")?;
                let ok = m.role == Role::Replica
                    && m.source.as_deref() == Some(primary)
                    && m.io_running
                    && m.sql_running
                    && m.position.as_ref().is_some_and(|have| have.contains(&pos));
                if !ok {
                    return Err(format!("{f}: {m:?}"));
                }
            }
            Ok(s)
        },
    )
    .await
}

/// What `member` has applied, as observed now.
async fn position_of(rs: &dyn ReplicaSet, member: &str) -> Result<Position, Violation> {
    rs.observe()
        .await?
        .member(member)
        .and_then(|m| m.position.clone())
        .ok_or_else(|| Violation(format!("no position for {member}")))
}

/// Runs every check in order.
pub async fn run(rs: &dyn ReplicaSet, lab: &mut dyn Lab) -> Result<(), Violation> {
    let [a, b, c] = lab.ids();
    reading(rs, lab, &a, &b, &c).await?;
    dead_man(rs, lab, &a, &b, &c).await?;
    dead_man_restart(rs, lab, &a, &b, &c).await?;
    fencing(rs, lab, &a, &b).await?;
    switching(rs, lab, &a, &b, &c).await?;
    switchover_resumed(rs, lab, &a, &b, &c).await?;
    stopped_applier(rs, lab, &a, &c).await?;
    let new = failing_over(rs, lab, &a, &b, &c).await?;
    let other = if new == b { &c } else { &b };
    errant(rs, lab, &new, other).await?;
    unfence_held_back(rs, lab, &new, &a).await?;
    Ok(())
}

/// A fenced primary is not unfenced while another member (`down`, crashed)
/// cannot be read — it may be writable — and the refusal is retryable, so
/// the lift is tried again soon once that member answers, not on the
/// backoff of errors that need a person.
pub async fn unfence_held_back(
    rs: &dyn ReplicaSet,
    lab: &dyn Lab,
    primary: &str,
    down: &str,
) -> Result<(), Violation> {
    rs.fence(primary).await?;
    let refused = rs.unfence(primary, &FREE).await;
    ensure!(
        refused.as_ref().is_err_and(ReplError::retryable),
        "unfencing while {down} cannot be read is refused, retryably: {refused:?}"
    );
    ensure!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains(&format!("{primary} stays fenced"))),
        "the refusal says what it holds back: {refused:?}"
    );
    ensure!(
        lab.write(primary).await.is_err(),
        "the fenced primary still refuses the application's writes"
    );
    Ok(())
}

/// The dead-man switch on the primary `a`: renewed, `a` takes writes;
/// left unrenewed, it makes itself read-only by the deadline it was given
/// and says it fired; a lift pushes the deadline out and clears the
/// firing; disarmed, it no longer fires. Nothing of it is binlogged:
/// arming and renewing leave `a`'s GTID position where it was, and the
/// replicas `b` and `c` have no errant transaction after it.
pub async fn dead_man(
    rs: &dyn ReplicaSet,
    lab: &dyn Lab,
    a: &str,
    b: &str,
    c: &str,
) -> Result<(), Violation> {
    use tokio::time::Instant;
    // How late past its deadline a firing may be seen: the event's
    // statement and this poll, on a loaded machine.
    const SEEN_WITHIN: Duration = Duration::from_secs(3);
    let before = position_of(rs, a).await?;
    let deadline = Instant::now() + Duration::from_millis(2100);
    let held = rs.hold_dead_man(a, deadline).await?;
    ensure!(
        held.scheduler_on && held.fired.is_none(),
        "a renewed switch can fire and has not: {held:?}"
    );
    let after = position_of(rs, a).await?;
    ensure!(
        after == before,
        "arming and renewing the switch wrote nothing to the binlog: {before} then {after}"
    );
    ensure!(
        lab.write(a).await.is_ok(),
        "an armed, renewed primary takes the application's writes"
    );
    until("the unrenewed switch fires", || async {
        match lab.write(a).await {
            Err(_) => Ok(()),
            Ok(()) => Err(format!("{a} still takes writes")),
        }
    })
    .await?;
    let late = Instant::now().saturating_duration_since(deadline);
    ensure!(
        late <= SEEN_WITHIN,
        "{a} turned read-only {late:?} after its deadline (allowed: {SEEN_WITHIN:?})"
    );
    let fired = rs
        .hold_dead_man(a, Instant::now() + Duration::from_secs(60))
        .await?;
    ensure!(fired.fired.is_some(), "the switch says it fired: {fired:?}");
    ensure!(
        rs.unfence(a, &FREE).await? && lab.write(a).await.is_ok(),
        "a lift makes the fired member writable again"
    );
    let lifted = rs
        .hold_dead_man(a, Instant::now() + Duration::from_secs(60))
        .await?;
    ensure!(
        lifted.fired.is_none(),
        "a lift clears the firing: {lifted:?}"
    );
    // Disarmed with a deadline about to pass: it never fires.
    rs.hold_dead_man(a, Instant::now() + Duration::from_millis(1700))
        .await?;
    rs.disarm_dead_man(a).await?;
    rs.disarm_dead_man(a).await?;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    ensure!(
        lab.write(a).await.is_ok(),
        "a disarmed switch does not fire"
    );
    let s = settled(rs, a, &[b, c]).await?;
    ensure!(
        s.members.iter().all(|m| m.errant.is_empty()),
        "nothing of the switch replicates: {s:?}"
    );
    Ok(())
}

/// A writable primary `a` with its switch armed restarts (cleanly) and
/// comes back read-only, as its configuration says: the switch's renewal
/// reports it restarted read-only, never as fired. After a lift it no
/// longer does; nor after a restart of a member that was fenced (and seen
/// fenced) before it.
pub async fn dead_man_restart(
    rs: &dyn ReplicaSet,
    lab: &mut dyn Lab,
    a: &str,
    b: &str,
    c: &str,
) -> Result<(), Violation> {
    use tokio::time::Instant;
    let far = || Instant::now() + Duration::from_secs(60);
    let held = rs.hold_dead_man(a, far()).await?;
    ensure!(
        held.restarted_read_only.is_none() && held.fired.is_none(),
        "a writable, renewed primary did not restart read-only: {held:?}"
    );
    lab.restart(a).await.map_err(Violation)?;
    let back = until(&format!("{a} answering after its restart"), || async {
        rs.hold_dead_man(a, far()).await.map_err(|e| e.to_string())
    })
    .await?;
    ensure!(
        back.restarted_read_only.is_some() && back.fired.is_none(),
        "the renewal says {a} restarted read-only: {back:?}"
    );
    ensure!(lab.write(a).await.is_err(), "{a} came back read-only");
    ensure!(rs.unfence(a, &FREE).await?, "the lift makes {a} writable");
    let lifted = rs.hold_dead_man(a, far()).await?;
    ensure!(
        lifted.restarted_read_only.is_none(),
        "after the lift {a} is not reported restarted: {lifted:?}"
    );
    // Fenced (by an operator, or its isolated controller), renewed once
    // while fenced, then restarted: a fence, not a restart to undo.
    rs.fence(a).await?;
    rs.hold_dead_man(a, far()).await?;
    lab.restart(a).await.map_err(Violation)?;
    let fenced = until(&format!("{a} answering after its restart"), || async {
        rs.hold_dead_man(a, far()).await.map_err(|e| e.to_string())
    })
    .await?;
    ensure!(
        fenced.restarted_read_only.is_none(),
        "a member fenced before its restart is not reported restarted: {fenced:?}"
    );
    ensure!(rs.unfence(a, &FREE).await?, "the lift makes {a} writable");
    rs.disarm_dead_man(a).await?;
    settled(rs, a, &[b, c]).await?;
    Ok(())
}

/// A fresh set reads as one primary and its replicas; writes reach them;
/// a replica refuses the application's writes.
pub async fn reading(
    rs: &dyn ReplicaSet,
    lab: &dyn Lab,
    a: &str,
    b: &str,
    c: &str,
) -> Result<(), Violation> {
    let s = settled(rs, a, &[b, c]).await?;
    ensure!(
        s.primary.as_deref() == Some(a),
        "the snapshot names {a} the primary: {:?}",
        s.primary
    );
    ensure!(
        s.members.iter().all(|m| m.errant.is_empty() && m.reachable),
        "a fresh set has no errant transaction and every member is reachable: {s:?}"
    );
    for _ in 0..3 {
        lab.write(a).await.map_err(Violation)?;
    }
    settled(rs, a, &[b, c]).await?;
    ensure!(
        lab.write(b).await.is_err(),
        "a replica refuses the application's writes"
    );
    Ok(())
}

/// Fencing stops writes and is idempotent; unfencing is refused for a
/// replica and reports whether it changed anything.
pub async fn fencing(
    rs: &dyn ReplicaSet,
    lab: &dyn Lab,
    a: &str,
    b: &str,
) -> Result<(), Violation> {
    rs.fence(a).await?;
    let s = rs.observe().await?;
    let m = s.member(a).ok_or(Violation("no primary".into()))?;
    ensure!(
        m.read_only == Some(true) && m.role == Role::Fenced,
        "a fenced primary reads as read-only and fenced: {m:?}"
    );
    ensure!(
        s.writable().is_empty(),
        "no member is writable once the primary is fenced"
    );
    ensure!(
        lab.write(a).await.is_err(),
        "a fenced primary refuses the application's writes"
    );
    rs.fence(a).await?;
    let refused = rs.unfence(b, &FREE).await;
    ensure!(
        matches!(refused, Err(ReplError::Conflict { .. })),
        "unfencing a replica is refused: {refused:?}"
    );
    ensure!(
        rs.unfence(a, &FREE).await?,
        "unfencing the fenced primary changes it"
    );
    lab.write(a).await.map_err(Violation)?;
    ensure!(
        !rs.unfence(a, &FREE).await?,
        "unfencing a writable primary changes nothing"
    );
    Ok(())
}

/// A switchover moves the primary with every acknowledged write, is a
/// no-op when repeated, and goes back.
pub async fn switching(
    rs: &dyn ReplicaSet,
    lab: &dyn Lab,
    a: &str,
    b: &str,
    c: &str,
) -> Result<(), Violation> {
    lab.write(a).await.map_err(Violation)?;
    let before = position_of(rs, a).await?;
    switched_with_every_write(rs, lab, &FREE, a, b, c, &before).await?;
    ensure!(
        lab.write(a).await.is_err(),
        "the old primary refuses writes after the switchover"
    );
    rs.switchover(b, None, Duration::from_secs(10), &FREE)
        .await?;
    settled(rs, b, &[a, c]).await?;
    // Named with a primary the members do not show (the caller's record
    // is stale, or the members are): refused, nothing changed.
    let stale = rs
        .switchover(a, Some(c), Duration::from_secs(10), &FREE)
        .await;
    ensure!(
        matches!(stale, Err(ReplError::Conflict { .. })),
        "a switchover expecting {c} as the old primary while {b} is refuses: {stale:?}"
    );
    settled(rs, b, &[a, c]).await?;
    rs.switchover(a, Some(b), Duration::from_secs(10), &FREE)
        .await?;
    settled(rs, a, &[b, c]).await?;
    Ok(())
}

/// Switches over from `a` to `b` under `guard`: the report names `b`,
/// which leads `a` and `c`, has every write `a` acknowledged (`before`)
/// and takes the application's writes.
async fn switched_with_every_write(
    rs: &dyn ReplicaSet,
    lab: &dyn Lab,
    guard: &dyn StepGuard,
    a: &str,
    b: &str,
    c: &str,
    before: &Position,
) -> Result<(), Violation> {
    let report = rs
        .switchover(b, None, Duration::from_secs(10), guard)
        .await?;
    ensure!(
        report.new_primary == b,
        "the switchover reports {b}: {report:?}"
    );
    let s = settled(rs, b, &[a, c]).await?;
    let now = s.member(b).and_then(|m| m.position.clone());
    ensure!(
        now.as_ref().is_some_and(|p| p.contains(before)),
        "{b} has every write {a} acknowledged: {now:?} ⊉ {before}"
    );
    lab.write(b).await.map_err(Violation)
}

/// Allows every step and remembers the finished ones, as the leader's
/// journal does: a second run with it resumes the first.
#[derive(Default)]
struct Recording(std::sync::Mutex<Vec<Step>>);

#[async_trait::async_trait]
impl StepGuard for Recording {
    async fn begin(&self, _step: &Step) -> Result<Duration, ReplError> {
        Ok(Duration::from_secs(30))
    }

    async fn done(&self, step: &Step) -> Result<(), ReplError> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(step.clone());
        Ok(())
    }

    fn finished(&self) -> Vec<Step> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// A switchover to `b` whose promoted target restarts (and so comes back
/// read-only) before its outcome is recorded: resumed, it finishes
/// forward — `b` writable again with every write, the others following
/// it — instead of failing `b` as "not a replica" and leaving no member
/// writable (docs/SIMULATION.md, seed 4681). Ends with `a` primary again.
pub async fn switchover_resumed(
    rs: &dyn ReplicaSet,
    lab: &mut dyn Lab,
    a: &str,
    b: &str,
    c: &str,
) -> Result<(), Violation> {
    let journal = Recording::default();
    lab.write(a).await.map_err(Violation)?;
    let before = position_of(rs, a).await?;
    rs.switchover(b, None, Duration::from_secs(10), &journal)
        .await?;
    lab.restart(b).await.map_err(Violation)?;
    until(
        &format!("{b} answering, read-only, after its restart"),
        || async {
            let s = rs.observe().await.map_err(|e| e.to_string())?;
            match s.member(b) {
                Some(m) if m.reachable && m.read_only == Some(true) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await?;
    switched_with_every_write(rs, &*lab, &journal, a, b, c, &before).await?;
    rs.switchover(a, None, Duration::from_secs(10), &FREE)
        .await?;
    settled(rs, a, &[b, c]).await?;
    Ok(())
}

/// A replica whose applier is stopped does not catch up in time; a
/// repoint starts it again.
pub async fn stopped_applier(
    rs: &dyn ReplicaSet,
    lab: &dyn Lab,
    a: &str,
    c: &str,
) -> Result<(), Violation> {
    lab.stop_applier(c).await.map_err(Violation)?;
    lab.write(a).await.map_err(Violation)?;
    let target = position_of(rs, a).await?;
    let waited = rs
        .wait_caught_up(c, &target, Duration::from_millis(1500), &FREE)
        .await;
    ensure!(
        matches!(waited, Err(ReplError::CatchUpTimeout { .. })),
        "a replica with its applier stopped times out catching up: {waited:?}"
    );
    rs.repoint(c, a, &FREE).await?;
    rs.wait_caught_up(c, &target, Duration::from_secs(10), &FREE)
        .await?;
    Ok(())
}

/// A failover of a healthy primary is refused; of a crashed one, it
/// promotes a replica with every write the others had and repoints the
/// rest. The new primary's id.
pub async fn failing_over(
    rs: &dyn ReplicaSet,
    lab: &mut dyn Lab,
    a: &str,
    b: &str,
    c: &str,
) -> Result<String, Violation> {
    let healthy = rs.failover(&FailoverRequest::replacing(a), &FREE).await;
    ensure!(
        matches!(healthy, Err(ReplError::PrimaryHealthy { .. })),
        "a failover of a healthy primary is refused: {healthy:?}"
    );
    lab.write(a).await.map_err(Violation)?;
    let s = settled(rs, a, &[b, c]).await?;
    let before = s
        .member(a)
        .and_then(|m| m.position.clone())
        .ok_or(Violation("no position for the primary".into()))?;
    lab.crash(a).await.map_err(Violation)?;
    let report = rs.failover(&FailoverRequest::replacing(a), &FREE).await?;
    let new = report.new_primary.clone();
    ensure!(new == b || new == c, "a replica is promoted: {report:?}");
    let other = if new == b { c } else { b };
    let s = settled(rs, &new, &[other]).await?;
    ensure!(
        s.member(&new)
            .and_then(|m| m.position.as_ref())
            .is_some_and(|p| p.contains(&before)),
        "the promoted replica has every write the crashed primary had shipped"
    );
    let crashed = s.member(a).ok_or(Violation("no old primary".into()))?;
    ensure!(
        !crashed.reachable,
        "the crashed primary reads as unreachable: {crashed:?}"
    );
    let again = rs.failover(&FailoverRequest::replacing(a), &FREE).await?;
    ensure!(
        again.new_primary == new,
        "a repeated failover changes nothing: {again:?}"
    );
    lab.write(&new).await.map_err(Violation)?;
    Ok(new)
}

/// A transaction written on a replica is reported as errant, breaks its
/// applier once the primary writes past it, and keeps it from being
/// repointed.
pub async fn errant(
    rs: &dyn ReplicaSet,
    lab: &dyn Lab,
    primary: &str,
    replica: &str,
) -> Result<(), Violation> {
    settled(rs, primary, &[replica]).await?;
    lab.write_as_admin(replica).await.map_err(Violation)?;
    let s = rs.observe().await?;
    let m = s.member(replica).ok_or(Violation("no replica".into()))?;
    ensure!(
        m.errant.len() == 1,
        "a transaction written on a replica is errant: {m:?}"
    );
    lab.write(primary).await.map_err(Violation)?;
    until(
        "the replica's applier to stop on the out-of-order GTID",
        || async {
            let s = rs.observe().await.map_err(|e| e.to_string())?;
            let m = s.member(replica).ok_or("no replica")?;
            if !m.sql_running && m.sql_error.is_some() {
                Ok(())
            } else {
                Err(format!("{m:?}"))
            }
        },
    )
    .await?;
    let refused = rs.repoint(replica, primary, &FREE).await;
    ensure!(
        matches!(refused, Err(ReplError::Diverged { .. })),
        "a replica with an errant transaction is not repointed: {refused:?}"
    );
    Ok(())
}
