//! The interface the controller's executor drives, whatever the engine.

use std::time::Duration;

use crate::error::ReplError;
use crate::gtid::Position;
use crate::report::Report;
use crate::snapshot::Snapshot;

/// One replicated database: read it, and change its primary.
///
/// Every method is **idempotent**: it first reads the world and only acts
/// where the world differs from what is asked, so the executor can call it
/// again after a crash or a lost answer. Promoting the writable primary,
/// fencing a fenced member or repointing a replica that already follows the
/// target succeed and change nothing.
#[async_trait::async_trait]
pub trait ReplicaSet: Send + Sync {
    /// Reads every member (concurrently, each bounded by a timeout). A member
    /// that cannot be read is in the snapshot as unreachable with the reason;
    /// this fails only when nothing at all could be attempted.
    async fn observe(&self) -> Result<Snapshot, ReplError>;

    /// Stops `member` taking writes: read-only on (MySQL: `super_read_only`
    /// too; MongoDB: step down and freeze), then ends every client
    /// connection so that no open session keeps writing.
    async fn fence(&self, member: &str) -> Result<(), ReplError>;

    /// Makes `member` the writable primary. MySQL/MariaDB: stop replication,
    /// read-only off, forget the source; it does **not** wait for the relay
    /// log — call [`ReplicaSet::wait_caught_up`] first (the orchestrations
    /// do). MongoDB, which elects its primaries: a planned handover (raise
    /// its priority, step the primary down with a catch-up period, wait for
    /// the election).
    async fn promote(&self, member: &str) -> Result<(), ReplError>;

    /// Makes `member` a read-only replica of `to` with GTID auto-positioning
    /// (MongoDB: `replSetSyncFrom`, a hint MongoDB may later override).
    /// Refuses ([`ReplError::Diverged`]) when `member` has transactions `to`
    /// lacks: a diverged member is never re-joined automatically.
    async fn repoint(&self, member: &str, to: &str) -> Result<(), ReplError>;

    /// Waits until `member` has applied every transaction of `position`, or
    /// fails with [`ReplError::CatchUpTimeout`] after `timeout`.
    async fn wait_caught_up(
        &self,
        member: &str,
        position: &Position,
        timeout: Duration,
    ) -> Result<(), ReplError>;

    /// Planned, zero-loss change of primary to `to`: fence the old primary,
    /// wait (up to `timeout`) until `to` has every transaction it had,
    /// promote `to`, and make the old primary and the other replicas follow
    /// it. If `to` does not catch up in time the old primary is unfenced and
    /// nothing else has changed. A no-op when `to` is already the primary
    /// and everyone follows it.
    async fn switchover(&self, to: &str, timeout: Duration) -> Result<Report, ReplError>;

    /// Unplanned replacement of the primary `expected_old_primary` (or, when
    /// `None`, of the primary as observed now): fence it if reachable,
    /// choose the candidate (or check `to`), wait for its relay log to be
    /// applied (bounded by the rules' `catch_up_timeout`), promote it and
    /// repoint the other replicas. The old primary is left fenced and never
    /// re-joined by a failover; the transactions it has that the new primary
    /// lacks are reported.
    ///
    /// Without `force` a reachable, writable primary is not failed over
    /// ([`ReplError::PrimaryHealthy`]). With `force` a named target is
    /// promoted even if it breaks the rules (lag, `must_not`, divergence),
    /// and an automatic choice ignores `max_lag`.
    ///
    /// **Idempotence:** pass the primary being replaced as
    /// `expected_old_primary`. When another member is already the healthy,
    /// writable primary, the call succeeds, changes nothing (beyond finishing
    /// a repoint an earlier attempt left undone) and says so in the report.
    async fn failover(
        &self,
        to: Option<&str>,
        force: bool,
        expected_old_primary: Option<&str>,
    ) -> Result<Report, ReplError>;
}
