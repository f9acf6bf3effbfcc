//! The dead-man switch on a MySQL/MariaDB primary: a server-side event
//! that turns the member read-only once its region's controller has
//! stopped renewing a deadline, so a primary whose controllers all died
//! (or were cut off with it) fences itself before the promotion gate can
//! open around it — without any controller alive to do it.
//!
//! What it puts on a member, with `sql_log_bin = 0` so that nothing of it
//! replicates or makes a GTID (an errant transaction otherwise):
//! - the table `switchyard.dead_man`, one row: `expires` (the deadline, on
//!   the server's clock in UTC, so a change of daylight-saving time moves
//!   nothing), `fired` (when the event last turned the member
//!   read-only, cleared by a controller's lift), `writable_at` and
//!   `was_writable` (whether the member was writable at the last renewal
//!   of this boot that saw it);
//! - the table `switchyard.dead_man_boot` (`ENGINE=MEMORY`, so a restart
//!   empties it), marked at each renewal that finds the member writable:
//!   unmarked, with `was_writable` set, the server restarted since a
//!   renewal last saw it writable — it came back read-only, as its own
//!   configuration says, not fenced by anyone;
//! - the event `switchyard.dead_man`, every second: if the member is
//!   writable and the row's deadline has passed (or the row is gone),
//!   read-only on and `fired` set. On a replica or a fenced member it does
//!   nothing.
//!
//! Only an account with `EVENT`, `CREATE` and the right to set `read_only`
//! (`SUPER` or `READ_ONLY ADMIN`) can arm it, and the server must run its
//! event scheduler (`event_scheduler = ON`): [`DeadMan::scheduler_on`]
//! says whether it does, and a switch that cannot fire is reported, never
//! assumed.

use std::time::Duration;

use tokio::time::Instant;

use super::MySqlReplicaSet;
use super::flavor::Flavor;
use super::session::Session;
use crate::error::ReplError;
use crate::replica_set::DeadMan;

/// How often the event runs: a lapsed deadline is acted on at most this
/// late (plus the statement's own time).
pub const EVENT_PERIOD: Duration = Duration::from_secs(1);

/// The longest the renewal's statement may take: its deadline is computed
/// just before it is sent, so a renewal that lands late is late by at most
/// this (the client gives up on it then; one delayed longer in the
/// network is outside the argument, `docs/SAFETY.md`).
pub const RENEW_BUDGET: Duration = Duration::from_millis(500);

/// Keeps replication out of this session's writes.
pub const NO_BINLOG: &str = "SET SESSION sql_log_bin = 0";
/// Puts replication back for whatever the session runs next.
pub const BINLOG: &str = "SET SESSION sql_log_bin = 1";

/// The schema, created on first arming.
pub const CREATE_SCHEMA: &str = "CREATE DATABASE IF NOT EXISTS switchyard";

/// The deadline's table.
pub const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS switchyard.dead_man \
     (id TINYINT UNSIGNED PRIMARY KEY, expires DATETIME(6) NOT NULL, fired DATETIME(6) NULL, \
     writable_at DATETIME(6) NULL, was_writable TINYINT NULL) \
     ENGINE=InnoDB";

/// The boot marker's table: emptied by every restart.
pub const CREATE_MARKER: &str = "CREATE TABLE IF NOT EXISTS switchyard.dead_man_boot \
     (id TINYINT UNSIGNED PRIMARY KEY) ENGINE=MEMORY";

/// Marks this boot (while the member is writable).
pub const MARK_BOOT: &str = "REPLACE INTO switchyard.dead_man_boot (id) VALUES (1)";

/// What the last renewals left, read before this one: whether this boot
/// is marked, and whether the member was writable when last seen.
pub const EVIDENCE_QUERY: &str = "SELECT (SELECT COUNT(*) FROM switchyard.dead_man_boot) AS marked, \
     was_writable FROM switchyard.dead_man WHERE id = 1";

/// Whether the table exists (a promotion or lift extends the deadline of
/// an armed member only; an unarmed one has nothing to extend).
pub const ARMED_QUERY: &str = "SELECT COUNT(*) AS armed FROM information_schema.TABLES \
     WHERE TABLE_SCHEMA = 'switchyard' AND TABLE_NAME = 'dead_man'";

/// The state of the switch, read after a renewal.
pub const STATE_QUERY: &str = "SELECT @@GLOBAL.event_scheduler AS scheduler, \
     @@GLOBAL.read_only AS read_only, CAST(fired AS CHAR) AS fired, \
     CAST(writable_at AS CHAR) AS writable_at \
     FROM switchyard.dead_man WHERE id = 1";

/// Removes the event (the table stays; without the event it does nothing).
pub const DROP_EVENT: &str = "DROP EVENT IF EXISTS switchyard.dead_man";

/// Sets the deadline `valid_for` from the server's now; while the member
/// is writable also notes the time and clears `fired` (a firing someone
/// undid by hand is not reported later). `was_writable` follows the
/// member within a boot (`marked`: this boot was marked before the
/// renewal); across a restart it keeps what the last boot left.
pub fn renew(valid_for: Duration, marked: bool) -> String {
    let read_only_now = if marked { "0" } else { "was_writable" };
    format!(
        "INSERT INTO switchyard.dead_man (id, expires, writable_at, was_writable) VALUES \
         (1, UTC_TIMESTAMP(6) + INTERVAL {} MICROSECOND, IF(@@GLOBAL.read_only = 0, UTC_TIMESTAMP(6), NULL), \
         IF(@@GLOBAL.read_only = 0, 1, NULL)) \
         ON DUPLICATE KEY UPDATE expires = VALUES(expires), \
         fired = IF(@@GLOBAL.read_only = 0, NULL, fired), \
         writable_at = IF(@@GLOBAL.read_only = 0, UTC_TIMESTAMP(6), writable_at), \
         was_writable = IF(@@GLOBAL.read_only = 0, 1, {read_only_now})",
        valid_for.as_micros()
    )
}

/// Sets the deadline `valid_for` from now, clears `fired` and notes the
/// time (the row is created if missing): what a promotion or a lift runs
/// just before read-only off, so the event does not turn the member
/// straight back.
pub fn extend(valid_for: Duration) -> String {
    format!(
        "INSERT INTO switchyard.dead_man (id, expires, writable_at, was_writable) VALUES \
         (1, UTC_TIMESTAMP(6) + INTERVAL {} MICROSECOND, UTC_TIMESTAMP(6), 1) \
         ON DUPLICATE KEY UPDATE expires = VALUES(expires), fired = NULL, writable_at = UTC_TIMESTAMP(6), \
         was_writable = 1",
        valid_for.as_micros()
    )
}

/// How long a promotion holds the switch open: until the new primary's
/// region's keeper renews it from its lease. Safe, because the promotion
/// gate stays shut for a new primary until that keeper has taken its lease
/// (`docs/SAFETY.md`, S4); a bounded hold instead would fire on a healthy
/// new primary whenever the old lease takes long to end.
pub const PROMOTION_HOLD: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// The event. The lock wait is short, so a client holding a table lock
/// makes one run fail, not hang the scheduler; the next second tries again.
pub fn create_event(flavor: Flavor) -> String {
    let fence = match flavor {
        Flavor::MariaDb => "SET GLOBAL read_only = ON",
        Flavor::MySql => "SET GLOBAL super_read_only = ON",
    };
    format!(
        "CREATE EVENT IF NOT EXISTS switchyard.dead_man ON SCHEDULE EVERY 1 SECOND DO BEGIN \
         SET SESSION sql_log_bin = 0; SET SESSION lock_wait_timeout = 1; \
         IF @@GLOBAL.read_only = 0 AND NOT EXISTS \
         (SELECT 1 FROM switchyard.dead_man WHERE id = 1 AND expires > UTC_TIMESTAMP(6)) THEN \
         {fence}; UPDATE switchyard.dead_man SET fired = UTC_TIMESTAMP(6) WHERE id = 1; END IF; END"
    )
}

/// Reads the evidence query's row: the server restarted since a renewal
/// last saw the member writable (its boot unmarked, the member writable
/// when last seen), and whether this boot is marked.
fn parse_evidence(rows: &[super::status::Columns]) -> (bool, bool) {
    let text = |c: &str| rows.first().and_then(|r| r.get(c).cloned().flatten());
    let marked = text("marked").is_some_and(|n| n != "0");
    let was_writable = text("was_writable").is_some_and(|v| v == "1");
    (!marked && was_writable, marked)
}

/// Reads the state query's row, and whether the member is read-only;
/// `restarted`: from [`parse_evidence`].
fn parse_state(
    member: &str,
    rows: &[super::status::Columns],
    restarted: bool,
) -> Result<(DeadMan, bool), ReplError> {
    let row = rows.first().ok_or_else(|| ReplError::Command {
        member: member.to_string(),
        statement: STATE_QUERY.to_string(),
        detail: "the dead-man row is missing right after it was written".into(),
    })?;
    let text = |c: &str| row.get(c).cloned().flatten();
    let scheduler = text("scheduler").unwrap_or_default();
    let read_only = text("read_only").is_some_and(|v| v != "0");
    // A firing counts only while its effect holds.
    let fired = text("fired").filter(|_| read_only);
    let state = DeadMan {
        scheduler_on: scheduler.eq_ignore_ascii_case("ON") || scheduler == "1",
        restarted_read_only: (read_only && restarted && fired.is_none())
            .then(|| text("writable_at").unwrap_or_default()),
        fired,
    };
    Ok((state, read_only))
}

impl MySqlReplicaSet {
    /// Arms the switch on `member` if needed and sets its deadline so that
    /// the member is read-only by `until` (this clock) unless renewed
    /// again: the deadline is `until` less the event's period and
    /// [`RENEW_BUDGET`], counted from just before the statement is sent,
    /// so a renewal that takes its whole budget to land still fires by
    /// `until`. Nothing is sent when that leaves no time, or past the
    /// budget.
    pub(super) async fn do_hold_dead_man(
        &self,
        member: &str,
        until: Instant,
    ) -> Result<DeadMan, ReplError> {
        let spec = self.spec(member)?;
        // Nothing is worth sending once no deadline could be left.
        let last_useful = until
            .checked_sub(EVENT_PERIOD + RENEW_BUDGET)
            .unwrap_or(until)
            .min(switchyard_host::time::now() + self.timeouts.statement);
        let mut s = self.session_until(member, last_useful).await?;
        let r = self.hold_on(&mut s, &spec.id, until).await;
        s.close().await;
        r
    }

    async fn hold_on(
        &self,
        s: &mut Session,
        member: &str,
        until: Instant,
    ) -> Result<DeadMan, ReplError> {
        s.exec(NO_BINLOG).await?;
        let armed = self.is_armed(s).await?;
        if !armed {
            s.exec(CREATE_SCHEMA).await?;
            s.exec(CREATE_TABLE).await?;
            s.exec(CREATE_MARKER).await?;
        }
        let (restarted, marked) = parse_evidence(&s.rows(EVIDENCE_QUERY).await?);
        // Computed last, just before it is sent: everything before it only
        // shortens the deadline's reach.
        let valid_for = until
            .checked_duration_since(switchyard_host::time::now() + EVENT_PERIOD + RENEW_BUDGET)
            .filter(|d| !d.is_zero())
            .ok_or_else(|| ReplError::Command {
                member: member.to_string(),
                statement: "dead-man renewal".into(),
                detail: "not sent: too little of the lease is left to renew it".into(),
            })?;
        s.rows_within(&renew(valid_for, marked), RENEW_BUDGET)
            .await?;
        // The event after the row: an event without its row would fence a
        // writable member at once.
        s.exec(&create_event(self.flavor)).await?;
        let (state, read_only) = parse_state(member, &s.rows(STATE_QUERY).await?, restarted)?;
        if !read_only {
            s.exec(MARK_BOOT).await?;
        }
        Ok(state)
    }

    /// Removes the event from `member` (idempotent). A member that was
    /// never armed is left untouched (an account without `EVENT` never
    /// sees an error for a switch it does not use).
    pub(super) async fn do_disarm_dead_man(&self, member: &str) -> Result<(), ReplError> {
        let deadline = switchyard_host::time::now() + self.timeouts.statement;
        let mut s = self.session_until(member, deadline).await?;
        let r = async {
            if !self.is_armed(&mut s).await? {
                return Ok(());
            }
            s.exec(NO_BINLOG).await?;
            s.exec(DROP_EVENT).await
        }
        .await;
        s.close().await;
        r
    }

    async fn is_armed(&self, s: &mut Session) -> Result<bool, ReplError> {
        let rows = s.rows(ARMED_QUERY).await?;
        Ok(rows
            .first()
            .and_then(|r| r.get("armed").cloned().flatten())
            .is_some_and(|n| n != "0"))
    }

    /// Just before read-only is lifted, on `s`: pushes an armed member's
    /// deadline `hold` out and clears `fired` (or the event would turn it
    /// straight back); with the switch configured, arms an unarmed member
    /// the same way. A lift holds it for [`super::Timeouts::dead_man_grace`];
    /// a promotion for [`PROMOTION_HOLD`]. The region's controller takes
    /// the renewals over from there.
    pub(super) async fn extend_dead_man(
        &self,
        s: &mut Session,
        hold: Duration,
    ) -> Result<(), ReplError> {
        let armed = self.is_armed(s).await?;
        if !armed && !self.dead_man {
            return Ok(());
        }
        s.exec(NO_BINLOG).await?;
        if !armed {
            s.exec(CREATE_SCHEMA).await?;
            s.exec(CREATE_TABLE).await?;
            s.exec(CREATE_MARKER).await?;
        }
        s.exec(&extend(hold)).await?;
        s.exec(MARK_BOOT).await?;
        if self.dead_man {
            s.exec(&create_event(self.flavor)).await?;
        }
        s.exec(BINLOG).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_is_sent_in_microseconds() {
        assert!(renew(Duration::from_millis(2500), true).contains("INTERVAL 2500000 MICROSECOND"));
        assert!(extend(Duration::from_secs(5)).contains("INTERVAL 5000000 MICROSECOND"));
        assert!(extend(Duration::from_secs(5)).contains("fired = NULL"));
        // A renewal clears a firing only while the member is writable.
        assert!(!renew(Duration::from_secs(5), true).contains("fired = NULL"));
        // Read-only within a marked boot: not writable when last seen;
        // in an unmarked one, what the last boot left.
        assert!(renew(Duration::from_secs(5), true).ends_with("IF(@@GLOBAL.read_only = 0, 1, 0)"));
        assert!(
            renew(Duration::from_secs(5), false)
                .ends_with("IF(@@GLOBAL.read_only = 0, 1, was_writable)")
        );
    }

    #[test]
    fn the_event_fences_as_the_flavor_does() {
        assert!(create_event(Flavor::MariaDb).contains("SET GLOBAL read_only = ON;"));
        assert!(create_event(Flavor::MySql).contains("SET GLOBAL super_read_only = ON;"));
        for f in [Flavor::MariaDb, Flavor::MySql] {
            let e = create_event(f);
            assert!(e.contains("SET SESSION sql_log_bin = 0"), "{e}");
            assert!(e.contains("@@GLOBAL.read_only = 0"), "{e}");
        }
    }

    fn rows(cols: &[(&str, Option<&str>)]) -> Vec<super::super::status::Columns> {
        vec![
            cols.iter()
                .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
                .collect(),
        ]
    }

    #[test]
    fn a_restart_is_an_unmarked_boot_after_the_member_was_writable() {
        let ev = |marked: &str, was: Option<&str>| {
            parse_evidence(&rows(&[("marked", Some(marked)), ("was_writable", was)]))
        };
        assert_eq!(ev("0", Some("1")), (true, false));
        // Marked: no restart since the last renewal that saw it writable.
        assert_eq!(ev("1", Some("1")), (false, true));
        // Read-only when last seen (fenced, or a replica), or never seen.
        assert_eq!(ev("0", Some("0")), (false, false));
        assert_eq!(ev("0", None), (false, false));
    }

    #[test]
    fn the_state_row_reads_the_scheduler_and_the_firing() {
        let row = |s: &str, f: Option<&str>, read_only: &str| {
            rows(&[
                ("scheduler", Some(s)),
                ("fired", f),
                ("read_only", Some(read_only)),
                ("writable_at", Some("2026-12-04 03:20:00.5")),
            ])
        };
        let (on, ro) = parse_state("m", &row("ON", None, "0"), false).unwrap();
        assert!(on.scheduler_on && on.fired.is_none() && on.restarted_read_only.is_none() && !ro);
        let (off, _) = parse_state(
            "m",
            &row("OFF", Some("2026-12-04 03:27:15.001342"), "1"),
            true,
        )
        .unwrap();
        assert!(!off.scheduler_on);
        assert_eq!(off.fired.as_deref(), Some("2026-12-04 03:27:15.001342"));
        // Fired, then restarted: the firing is what to report.
        assert!(off.restarted_read_only.is_none());
        // Fired, then made writable by hand: nothing to report.
        let (undone, _) =
            parse_state("m", &row("ON", Some("2026-12-04 03:27:15"), "0"), false).unwrap();
        assert!(undone.fired.is_none());
        // Restarted, read-only, never fired: restarted.
        let (restarted, _) = parse_state("m", &row("ON", None, "1"), true).unwrap();
        assert_eq!(
            restarted.restarted_read_only.as_deref(),
            Some("2026-12-04 03:20:00.5")
        );
        // Restarted but writable now: nothing to lift.
        let (writable, _) = parse_state("m", &row("ON", None, "0"), true).unwrap();
        assert!(writable.restarted_read_only.is_none());
        assert!(parse_state("m", &[], false).is_err());
    }
}
