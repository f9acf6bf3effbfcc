//! The primitive steps — fence, unfence, promote, repoint, wait — each of
//! which reads the member first and acts only where needed, so that every
//! step can be repeated safely.

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

/// How often a step re-reads a member while waiting for it.
const POLL: Duration = Duration::from_millis(10);
/// How long fencing waits for killed sessions to be gone.
const KILL_GRACE: Duration = Duration::from_secs(2);
/// How long repointing waits to see replication running.
const START_GRACE: Duration = Duration::from_secs(5);

/// What fencing found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Fenced {
    /// It was already read-only (nothing to undo after a failed attempt).
    pub was_read_only: bool,
    /// Client sessions ended.
    pub killed: usize,
}

impl MySqlReplicaSet {
    async fn session(&self, id: &str) -> Result<Session, ReplError> {
        Session::open(self.spec(id)?, self.timeouts).await
    }

    /// Reads one member, failing (rather than reporting it unreachable)
    /// when it cannot be read.
    pub(super) async fn read(&self, id: &str) -> Result<MemberState, ReplError> {
        let mut s = self.session(id).await?;
        let r = read_on(&mut s, self.flavor, self.spec(id)?, &self.members).await;
        s.close().await;
        r
    }

    /// Read-only on, client sessions killed and gone.
    pub(super) async fn do_fence(&self, id: &str) -> Result<Fenced, ReplError> {
        let spec = self.spec(id)?;
        let mut s = self.session(id).await?;
        let m = read_on(&mut s, self.flavor, spec, &self.members).await?;
        for sql in self.flavor.fence_statements() {
            s.exec(sql).await?;
        }
        let own = s.connection_id();
        let victims = connections_to_kill(&s.rows("SHOW PROCESSLIST").await?, own);
        for &v in &victims {
            // "Unknown thread id" (1094): it ended by itself meanwhile.
            let _ = s.exec(&self.flavor.kill(v)).await;
        }
        let deadline = Instant::now() + KILL_GRACE;
        while !victims.is_empty() && Instant::now() < deadline {
            let rows = s.rows("SHOW PROCESSLIST").await?;
            let left = connections_to_kill(&rows, own);
            if !victims.iter().any(|v| left.contains(v)) {
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        s.close().await;
        Ok(Fenced {
            was_read_only: m.read_only == Some(true),
            killed: victims.len(),
        })
    }

    /// Read-only off: undoes a fence after a switchover that did not happen.
    pub(super) async fn do_unfence(&self, id: &str) -> Result<(), ReplError> {
        let mut s = self.session(id).await?;
        for sql in self.flavor.unfence_statements() {
            s.exec(sql).await?;
        }
        s.close().await;
        Ok(())
    }

    /// Makes `id` the writable primary; returns whether anything changed.
    pub(super) async fn do_promote(&self, id: &str) -> Result<bool, ReplError> {
        let spec = self.spec(id)?;
        let mut s = self.session(id).await?;
        let m = read_on(&mut s, self.flavor, spec, &self.members).await?;
        let changed = match (m.role, m.source.is_some()) {
            (Role::Primary, false) => false,
            // Writable with a stopped source left over: finish the promotion.
            (Role::Primary, true) => {
                s.exec(self.flavor.reset_replica_all()).await?;
                true
            }
            _ => {
                for sql in self.flavor.promote_statements() {
                    s.exec(sql).await?;
                }
                true
            }
        };
        s.close().await;
        Ok(changed)
    }

    /// Makes `id` a read-only replica of `to`; returns whether anything
    /// changed. Refuses when `id` has transactions `to` lacks.
    pub(super) async fn do_repoint(&self, id: &str, to: &str) -> Result<bool, ReplError> {
        if id == to {
            return Err(ReplError::InvalidSpec {
                detail: format!("{id} cannot replicate from itself"),
            });
        }
        let spec = self.spec(id)?;
        let source_spec = self.spec(to)?;
        let mut s = self.session(id).await?;
        let m = read_on(&mut s, self.flavor, spec, &self.members).await?;
        if m.source.as_deref() == Some(to) && m.io_running && m.sql_running {
            s.close().await;
            return Ok(false);
        }
        // Read the source *after* the member: a source taking writes (or a
        // member fed by it through another replica) is never seen behind.
        let source = match self.read(to).await {
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
        let r = self.await_running(&mut s, id).await;
        s.close().await;
        r.map(|()| true)
    }

    /// After `START SLAVE`: both threads running, or a clear error.
    async fn await_running(&self, s: &mut Session, id: &str) -> Result<(), ReplError> {
        let spec = self.spec(id)?;
        let deadline = Instant::now() + START_GRACE;
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
            if Instant::now() >= deadline {
                // Still connecting: not an error yet; observe will tell.
                return Ok(());
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until `id` has applied all of `position`.
    pub(super) async fn do_wait(
        &self,
        id: &str,
        position: &Position,
        timeout: Duration,
    ) -> Result<(), ReplError> {
        let spec = self.spec(id)?;
        let started = Instant::now();
        let deadline = started + timeout;
        let mut s = self.session(id).await?;
        let mut spun = false;
        let result = loop {
            let m = read_on(&mut s, self.flavor, spec, &self.members).await?;
            let Some(have) = m.position.as_ref() else {
                break Err(self.no_position(id));
            };
            let missing = position.missing_from(have);
            if missing.is_empty() {
                break Ok(());
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
            let now = Instant::now();
            if now >= deadline {
                break Err(ReplError::CatchUpTimeout {
                    member: id.to_string(),
                    waited: now - started,
                    missing: missing.to_string(),
                });
            }
            if spun {
                // The server says the position is reached but a GTID is still
                // missing (e.g. a same-seq GTID from another server): poll.
                tokio::time::sleep(POLL).await;
            }
            let chunk = (deadline - now).min(Duration::from_secs(1));
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
                None => tokio::time::sleep(POLL).await,
            }
        };
        s.close().await;
        result
    }
}
