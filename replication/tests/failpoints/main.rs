//! Failure injection at every step boundary of failover and switchover, on
//! real MariaDB (issue 11, item 4): whichever step fails, exactly one
//! member is writable at the end of the failed run, the orchestration is
//! either cleanly not started (the old primary writable, everyone
//! replicating from it) or past its point of no return (the new primary
//! writable, the old one fenced), and a resumed run finishes it.
//!
//! Its own test binary: the failpoint registry is global to a process, so
//! these tests must not share one with tests that do not set failpoints.
//! Inside it they are serialised by a mutex (nextest runs each test in a
//! process of its own anyway).

#[path = "../mariadb/common.rs"]
mod common;

use std::time::Duration;

use switchyard_replication::{MemberState, ReplicaSet, Role};

use common::{FREE, Journal, Lab, app_insert, id, req, writable_members};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Where the failed run must leave the replica set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    /// Undone: the old primary writable, the others replicating from it.
    NotStarted,
    /// Past the point of no return: the new primary writable, the old one
    /// fenced; a resumed run finishes.
    Promoted,
}

const FAILOVER: &[(&str, After)] = &[
    ("failover::before_fence", After::NotStarted),
    ("failover::after_fence", After::NotStarted),
    ("failover::after_chosen", After::NotStarted),
    ("failover::after_catch_up", After::NotStarted),
    ("failover::after_stop_replica", After::NotStarted),
    ("failover::after_reset_replica", After::NotStarted),
    ("failover::after_read_only_off", After::Promoted),
    ("failover::after_promote", After::Promoted),
    ("failover::after_repoint", After::Promoted),
];

const SWITCHOVER: &[(&str, After)] = &[
    ("switchover::after_pre_catch_up", After::NotStarted),
    ("switchover::after_fence", After::NotStarted),
    ("switchover::after_catch_up", After::NotStarted),
    ("switchover::after_stop_replica", After::NotStarted),
    ("switchover::after_reset_replica", After::NotStarted),
    ("switchover::after_read_only_off", After::Promoted),
    ("switchover::after_promote", After::Promoted),
    ("switchover::after_repoint_old", After::Promoted),
    ("switchover::after_repoint", After::Promoted),
];

fn index(member: &str) -> usize {
    member.trim_start_matches("db").parse().expect("db<i>")
}

/// Every member but `primary` replicates from it (both threads running),
/// read-only; waited for, since a restored replica takes a moment to
/// reconnect.
async fn all_follow(lab: &Lab, primary: usize, what: &str) -> anyhow::Result<()> {
    for i in (0..lab.topo.len()).filter(|&i| i != primary) {
        let want = id(primary);
        lab.wait_member(
            i,
            &format!("{what}: db{i} to follow {want}"),
            |m: &MemberState| {
                m.role == Role::Replica
                    && m.source.as_deref() == Some(want.as_str())
                    && m.io_running
                    && m.sql_running
                    && m.read_only == Some(true)
            },
        )
        .await?;
    }
    Ok(())
}

/// After the failed run: exactly one writer, in the state `expect` says.
async fn check_failed_run(
    lab: &Lab,
    point: &str,
    old: usize,
    expect: After,
) -> anyhow::Result<String> {
    let writable = writable_members(&lab.topo, &[0, 1, 2]).await?;
    assert_eq!(
        writable.len(),
        1,
        "{point}: writable after the failed run: {writable:?}"
    );
    let w = writable[0].clone();
    match expect {
        After::NotStarted => {
            assert_eq!(
                w,
                id(old),
                "{point}: expected the old primary writable again"
            );
            all_follow(lab, old, point).await?;
        }
        After::Promoted => {
            assert_ne!(w, id(old), "{point}: expected the new primary writable");
            assert_eq!(lab.topo.variable(old, "read_only").await?, "1", "{point}");
        }
    }
    Ok(w)
}

#[tokio::test]
async fn failover_failpoints_leave_one_writer_and_resume() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let scenario = fail::FailScenario::setup();
    let lab = Lab::start().await?;
    let mut primary = 0;
    let mut row = 100;
    for &(point, expect) in FAILOVER {
        app_insert(lab.topo.port(primary), row).await?;
        row += 1;
        let old = id(primary);
        let journal = Journal::new();
        fail::cfg(point, "return").expect("failpoint");
        let r = lab
            .set
            .failover(&req(None, true, Some(&old)), &journal)
            .await;
        fail::remove(point);
        let e = r.expect_err(&format!("{point}: the injected failure must surface"));
        assert!(e.to_string().contains(point), "{point}: {e}");
        let w = check_failed_run(&lab, point, primary, expect).await?;

        // The next attempt, given the journal, finishes the job.
        let report = lab
            .set
            .failover(&req(None, true, Some(&old)), &journal)
            .await
            .map_err(|e| anyhow::anyhow!("{point}: resumed run: {e}"))?;
        if expect == After::Promoted {
            assert_eq!(report.new_primary, w, "{point}");
        }
        if let Some(c) = journal.chosen() {
            assert_eq!(
                report.new_primary, c,
                "{point}: resumed with another candidate"
            );
        }
        let new = index(&report.new_primary);
        assert_ne!(new, primary, "{point}");
        let writable = writable_members(&lab.topo, &[0, 1, 2]).await?;
        assert_eq!(writable, [id(new)], "{point}: after the resumed run");
        assert_eq!(
            lab.topo.variable(primary, "read_only").await?,
            "1",
            "{point}"
        );
        // A failover never re-joins the old primary: do it by hand for the
        // next round (it lost nothing: it was fenced and caught up with).
        lab.set.repoint(&old, &id(new), &FREE).await?;
        all_follow(&lab, new, point).await?;
        app_insert(lab.topo.port(new), row).await?;
        row += 1;
        primary = new;
    }
    scenario.teardown();
    Ok(())
}

#[tokio::test]
async fn switchover_failpoints_leave_one_writer_and_resume() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let scenario = fail::FailScenario::setup();
    let lab = Lab::start().await?;
    let mut primary = 0;
    let mut row = 100;
    for &(point, expect) in SWITCHOVER {
        app_insert(lab.topo.port(primary), row).await?;
        row += 1;
        let to = (primary + 1) % 3;
        let journal = Journal::new();
        fail::cfg(point, "return").expect("failpoint");
        let r = lab
            .set
            .switchover(&id(to), None, Duration::from_secs(10), &journal)
            .await;
        fail::remove(point);
        let e = r.expect_err(&format!("{point}: the injected failure must surface"));
        assert!(e.to_string().contains(point), "{point}: {e}");
        let w = check_failed_run(&lab, point, primary, expect).await?;
        if expect == After::Promoted {
            assert_eq!(w, id(to), "{point}");
        }

        let report = lab
            .set
            .switchover(&id(to), None, Duration::from_secs(10), &journal)
            .await
            .map_err(|e| anyhow::anyhow!("{point}: resumed run: {e}"))?;
        assert_eq!(report.new_primary, id(to), "{point}");
        let writable = writable_members(&lab.topo, &[0, 1, 2]).await?;
        assert_eq!(writable, [id(to)], "{point}: after the resumed run");
        all_follow(&lab, to, point).await?;
        // Nothing acknowledged was lost on the way.
        let want: Vec<u64> = (100..row).collect();
        app_insert(lab.topo.port(to), row).await?;
        let have = lab.ids_on(to).await?;
        assert!(want.iter().all(|r| have.contains(r)), "{point}: lost rows");
        row += 1;
        primary = to;
    }
    scenario.teardown();
    Ok(())
}
