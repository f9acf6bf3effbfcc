//! The primitive steps — fence, unfence, promote, repoint, one slice of a
//! wait — each of which reads the member first and acts only where needed,
//! so that every step can be repeated safely. Each runs on a session bounded
//! by its step's deadline (client- and server-side).

use std::time::Duration;

use tokio::time::Instant;

use super::MySqlReplicaSet;
use super::flavor::GtidMode;
use super::observe::read_on;
use super::processlist::connections_to_kill;
use super::session::Session;
use crate::error::ReplError;
use crate::gtid::Position;
use crate::snapshot::{MemberState, Role};
use crate::spec::split_address;
use crate::stepper::failpoint;

/// How often a step re-reads a member while waiting for it.
const POLL: Duration = Duration::from_millis(10);
/// The longest lock wait of one attempt at read-only on.
const FENCE_ATTEMPT: Duration = Duration::from_millis(250);
/// How long repointing waits to see replication running.
const START_GRACE: Duration = Duration::from_secs(5);

/// What fencing found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Fenced {
    /// It was already read-only (nothing to undo after a failed attempt).
    pub was_read_only: bool,
    /// Client sessions ended (all rounds).
    pub killed: usize,
    /// Attempts at read-only on (more than one: something held a lock).
    pub attempts: usize,
    /// Its applied position, read after read-only was read back on: with
    /// every client session ended, what it will ever have (but for accounts
    /// that ignore `read_only`).
    pub position: Option<Position>,
}

/// How far a promotion got, kept by the caller across a failure so that
/// the undo knows what it may do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Promoting {
    /// Replication was stopped or reset on the member (undo restores it).
    pub touched: bool,
    /// Read-only off was sent: the member may have taken writes, so the old
    /// primary must never be unfenced again.
    pub maybe_writable: bool,
}

impl MySqlReplicaSet {
    /// A session to `id` bounded by `deadline`.
    pub(super) async fn session_until(
        &self,
        id: &str,
        deadline: Instant,
    ) -> Result<Session, ReplError> {
        Session::open_until(
            &self.servers,
            self.spec(id)?,
            self.timeouts,
            self.flavor,
            deadline,
        )
        .await
    }

    /// Reads one member before `deadline`, failing (rather than reporting it
    /// unreachable) when it cannot be read.
    pub(super) async fn read_until(
        &self,
        id: &str,
        deadline: Instant,
    ) -> Result<MemberState, ReplError> {
        let mut s = self.session_until(id, deadline).await?;
        let r = read_on(&mut s, self.flavor, self.spec(id)?, &self.members).await;
        s.close().await;
        r
    }

    /// Fences `id` before `deadline` (and within [`super::Timeouts::fence`]):
    /// client sessions ended first, so that the locks they hold
    /// (`LOCK TABLES`, open transactions) go with them; read-only on with a
    /// short lock wait, retried with sessions ended again between attempts;
    /// sessions ended once more (any that slipped in); read-only read back.
    /// Fails unless read-only reads back on.
    pub(super) async fn do_fence(&self, id: &str, deadline: Instant) -> Result<Fenced, ReplError> {
        let deadline = deadline.min(switchyard_host::time::now() + self.timeouts.fence);
        let spec = self.spec(id)?;
        let mut s = self.session_until(id, deadline).await?;
        let r = self.fence_on(&mut s, spec, deadline).await;
        s.close().await;
        r
    }

    async fn fence_on(
        &self,
        s: &mut Session,
        spec: &crate::spec::MemberSpec,
        deadline: Instant,
    ) -> Result<Fenced, ReplError> {
        let before = read_on(s, self.flavor, spec, &self.members).await?;
        let mut killed = self.kill_clients(s).await?;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let left = deadline.saturating_duration_since(switchyard_host::time::now());
            match self.fence_attempt(s, FENCE_ATTEMPT.min(left)).await {
                Ok(()) => break,
                // A lock wait cut short (or another refusal): end the
                // sessions again and retry while the budget lasts.
                Err(ReplError::Command { detail, .. })
                    if deadline.saturating_duration_since(switchyard_host::time::now())
                        > POLL * 5 =>
                {
                    tracing::warn!(member = %spec.id, %detail, attempts, "read-only not set yet; ending sessions again");
                    killed += self.kill_clients(s).await?;
                    switchyard_host::time::sleep(POLL).await;
                }
                Err(e) => return Err(e),
            }
        }
        killed += self.kill_clients(s).await?;
        let after = read_on(s, self.flavor, spec, &self.members).await?;
        if after.read_only != Some(true) {
            return Err(ReplError::Command {
                member: spec.id.clone(),
                statement: self.flavor.variables_query().to_string(),
                detail: "read_only did not read back ON after the fence".into(),
            });
        }
        Ok(Fenced {
            was_read_only: before.read_only == Some(true),
            killed,
            attempts,
            position: after.position,
        })
    }

    async fn fence_attempt(&self, s: &mut Session, wait: Duration) -> Result<(), ReplError> {
        for sql in self.flavor.fence_attempt(wait) {
            s.exec(&sql).await?;
        }
        Ok(())
    }

    /// Ends every client session but ours; returns how many were ended.
    async fn kill_clients(&self, s: &mut Session) -> Result<usize, ReplError> {
        let own = s.connection_id();
        let victims = connections_to_kill(&s.rows("SHOW PROCESSLIST").await?, own);
        for &v in &victims {
            // "Unknown thread id" (1094): it ended by itself meanwhile.
            let _ = s.exec(&self.flavor.kill(v)).await;
        }
        Ok(victims.len())
    }

    /// Read-only off: lifts a fence.
    /// An armed dead-man switch is pushed out first, or it would turn the
    /// member straight back.
    pub(super) async fn do_unfence(
        &self,
        id: &str,
        deadline: Instant,
        hold: Duration,
    ) -> Result<(), ReplError> {
        let mut s = self.session_until(id, deadline).await?;
        let r = async {
            self.extend_dead_man(&mut s, hold).await?;
            for sql in self.flavor.unfence_statements() {
                s.exec(sql).await?;
            }
            Ok(())
        }
        .await;
        s.close().await;
        r
    }

    /// Makes `id` the writable primary; returns whether anything changed.
    /// Replication stopped, then reset, then read-only off **last**;
    /// `progress` says how far it got, also when it fails. `op` names the
    /// orchestration, for its failure injection points.
    pub(super) async fn do_promote(
        &self,
        id: &str,
        deadline: Instant,
        progress: &mut Promoting,
        op: &str,
    ) -> Result<bool, ReplError> {
        let spec = self.spec(id)?;
        let mut s = self.session_until(id, deadline).await?;
        let r = self.promote_on(&mut s, spec, progress, op).await;
        s.close().await;
        r
    }

    async fn promote_on(
        &self,
        s: &mut Session,
        spec: &crate::spec::MemberSpec,
        progress: &mut Promoting,
        op: &str,
    ) -> Result<bool, ReplError> {
        let _ = op;
        let m = read_on(s, self.flavor, spec, &self.members).await?;
        if m.read_only == Some(false) {
            progress.maybe_writable = true;
            if m.source.is_none() {
                return Ok(false);
            }
            // Writable with a source left over (a promotion cut short by an
            // older version): finish it.
            s.exec(self.flavor.stop_replica()).await?;
            s.exec(self.flavor.reset_replica_all()).await?;
            return Ok(true);
        }
        if m.source.is_some() {
            progress.touched = true;
            s.exec(self.flavor.stop_replica()).await?;
            failpoint!(&format!("{op}::after_stop_replica"));
            s.exec(self.flavor.reset_replica_all()).await?;
            failpoint!(&format!("{op}::after_reset_replica"));
        }
        self.extend_dead_man(s, super::dead_man::PROMOTION_HOLD)
            .await?;
        progress.maybe_writable = true;
        for sql in self.flavor.unfence_statements() {
            s.exec(sql).await?;
        }
        failpoint!(&format!("{op}::after_read_only_off"));
        Ok(true)
    }

    /// Makes `id` a read-only replica of `to`; returns whether anything
    /// changed. Refuses when `id` has transactions `to` lacks.
    pub(super) async fn do_repoint(
        &self,
        id: &str,
        to: &str,
        deadline: Instant,
    ) -> Result<bool, ReplError> {
        if id == to {
            return Err(ReplError::InvalidSpec {
                detail: format!("{id} cannot replicate from itself"),
            });
        }
        let spec = self.spec(id)?;
        let source_spec = self.spec(to)?;
        let mut s = self.session_until(id, deadline).await?;
        let m = read_on(&mut s, self.flavor, spec, &self.members).await?;
        if m.source.as_deref() == Some(to) && m.io_running && m.sql_running {
            s.close().await;
            return Ok(false);
        }
        // Read the source *after* the member: a source taking writes (or a
        // member fed by it through another replica) is never seen behind.
        let source = match self.read_until(to, deadline).await {
            Ok(src) => src,
            Err(e) => {
                s.close().await;
                return Err(e);
            }
        };
        if let (Some(mine), Some(theirs)) = (&m.position, &source.position) {
            let extra = mine.missing_from(theirs);
            if !extra.is_empty() {
                s.close().await;
                return Err(ReplError::Diverged {
                    member: id.to_string(),
                    to: to.to_string(),
                    extra: extra.to_string(),
                });
            }
        }
        let mode = if m.role == Role::Replica {
            GtidMode::SlavePos
        } else {
            GtidMode::CurrentPos
        };
        for sql in self.flavor.fence_statements() {
            s.exec(sql).await?;
        }
        if m.source.is_some() {
            s.exec(self.flavor.stop_replica()).await?;
        }
        let (host, port) =
            split_address(source_spec.source_address()).ok_or_else(|| ReplError::InvalidSpec {
                detail: format!("member {to}: bad address"),
            })?;
        let (sql, shown) =
            self.flavor
                .change_source(&host, port, &self.repl.user, &self.repl.password, mode);
        s.exec_shown(&sql, &shown).await?;
        s.exec(self.flavor.start_replica()).await?;
        let r = self.await_running(&mut s, id, deadline).await;
        s.close().await;
        r.map(|()| true)
    }

    /// After `START SLAVE`: both threads running, or a clear error.
    async fn await_running(
        &self,
        s: &mut Session,
        id: &str,
        deadline: Instant,
    ) -> Result<(), ReplError> {
        let spec = self.spec(id)?;
        let until = deadline.min(switchyard_host::time::now() + START_GRACE);
        loop {
            let m = read_on(s, self.flavor, spec, &self.members).await?;
            if m.io_running && m.sql_running {
                return Ok(());
            }
            let stopped_on = m.sql_error.clone().or_else(|| {
                (m.state.as_deref() == Some("No"))
                    .then(|| m.io_error.clone())
                    .flatten()
            });
            if let Some(e) = stopped_on {
                return Err(ReplError::Command {
                    member: id.to_string(),
                    statement: self.flavor.start_replica().to_string(),
                    detail: format!("replication stopped: {e}"),
                });
            }
            // Still connecting near the deadline: not an error yet; observe
            // will tell.
            if switchyard_host::time::now() + POLL * 10 >= until {
                return Ok(());
            }
            switchyard_host::time::sleep(POLL).await;
        }
    }

    /// One slice of waiting, until `until`, for `id` to apply all of
    /// `position`: `Ok(None)` once it has, `Ok(Some(missing))` when the
    /// slice ended first.
    pub(super) async fn wait_slice(
        &self,
        id: &str,
        position: &Position,
        until: Instant,
        deadline: Instant,
    ) -> Result<Option<String>, ReplError> {
        let spec = self.spec(id)?;
        let mut s = self.session_until(id, deadline).await?;
        let mut spun = false;
        let result = loop {
            let m = read_on(&mut s, self.flavor, spec, &self.members).await?;
            let Some(have) = m.position.as_ref() else {
                break Err(self.no_position(id));
            };
            let missing = position.missing_from(have);
            if missing.is_empty() {
                break Ok(None);
            }
            if m.role != Role::Replica {
                break Err(ReplError::NotAReplica {
                    member: id.to_string(),
                    detail: format!(
                        "it is {} and lacks {missing}, which it cannot receive",
                        m.role
                    ),
                });
            }
            let now = switchyard_host::time::now();
            // Leave room to read and close within the step's deadline.
            let left = until
                .min(deadline)
                .saturating_duration_since(now)
                .saturating_sub(Duration::from_millis(100));
            // The wait is sent in milliseconds (`wait_query`): less than
            // one would be a wait of 0 s, answered at once, and this loop
            // would send it again at once until real time moved on — on a
            // paused clock, for ever (the simulator found this, seed 6085).
            if left < Duration::from_millis(1) {
                // Too little of the slice left to wait on the server: sit
                // out the rest of it here. Returning at once would have the
                // caller start its next slice (a new session) at once, in a
                // tight loop until its end — forever on a paused clock.
                // When the slice ends with the step, half of what is left
                // is slept, so the step's own timeout cannot fire first,
                // and time still moves on every round.
                let rest = until.min(deadline).saturating_duration_since(now);
                switchyard_host::time::sleep(if until < deadline { rest } else { rest / 2 }).await;
                break Ok(Some(missing.to_string()));
            }
            if spun {
                // The server says the position is reached but a GTID is still
                // missing (e.g. a same-seq GTID from another server): poll.
                switchyard_host::time::sleep(POLL).await;
            }
            let chunk = left.min(Duration::from_secs(1));
            match self.flavor.wait_query(&missing, chunk) {
                Some(q) => {
                    let rows = s.rows_within(&q, chunk + self.timeouts.statement).await?;
                    let v = rows
                        .first()
                        .and_then(|r| r.values().next().cloned().flatten())
                        .and_then(|v| v.trim().parse::<i64>().ok())
                        .unwrap_or(-1);
                    spun = self.flavor.wait_reached(v);
                }
                None => switchyard_host::time::sleep(POLL).await,
            }
        };
        s.close().await;
        result
    }
}
