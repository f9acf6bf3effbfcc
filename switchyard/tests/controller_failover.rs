//! Controller core against real etcd, with three controller processes:
//! leadership moves on SIGKILL, SIGTERM and SIGSTOP; a pending intent is
//! finished exactly once by the next leader; a deposed leader acts on
//! nothing; an etcd outage freezes action (fail static).

use crate::common;

use std::fs::OpenOptions;
use std::time::{Duration, Instant};

use common::{Cluster, LEASE_TTL, REGIONS, target};
use switchyard_tests::wait::wait_for;

/// Makes region `r` look down from every vantage.
fn region_down(fleet: &switchyard_tests::reports::ReportFleet, r: &str) {
    fleet.set_all(&target(r), &REGIONS, false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_action_new_leader_finishes_the_intent_once() -> anyhow::Result<()> {
    let mut cl = Cluster::start(1).await?;
    let fleet = cl.all_up_fleet();
    let leader = cl.wait_leader(None, Duration::from_secs(20)).await?;

    // Hold the backend's lock: the leader writes its intent, then blocks in
    // the action, before anything is applied.
    let lock_path = {
        let mut p = cl.weights.as_os_str().to_owned();
        p.push(".lock");
        std::path::PathBuf::from(p)
    };
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)?;
    lock.lock()?;

    region_down(&fleet, "a");
    let journal = wait_for("a pending intent", Duration::from_secs(20), || async {
        let j = cl.journal().await.map_err(|e| e.to_string())?;
        if j.iter().any(|e| e["status"] == "pending") {
            Ok(j)
        } else {
            Err(format!("journal: {j:?}"))
        }
    })
    .await?;
    assert_eq!(journal.len(), 1);
    assert_eq!(cl.calls(), 0, "nothing applied while the lock is held");

    let killed_at = Instant::now();
    cl.controllers[leader].kill();
    let next = cl
        .wait_leader(Some(leader), LEASE_TTL + Duration::from_secs(10))
        .await?;
    let takeover = killed_at.elapsed();
    eprintln!("takeover after SIGKILL: {takeover:?} (lease TTL {LEASE_TTL:?})");
    assert!(
        takeover <= LEASE_TTL + Duration::from_secs(1),
        "takeover took {takeover:?}, more than lease TTL + 1s"
    );

    drop(lock); // the new leader's action may proceed now
    let done = wait_for("the intent to be done", Duration::from_secs(20), || async {
        let j = cl.journal().await.map_err(|e| e.to_string())?;
        match j.first() {
            Some(e) if e["status"] == "done" => Ok(e.clone()),
            other => Err(format!("{other:?}")),
        }
    })
    .await?;
    assert_eq!(done["finished_by"], format!("ctl-{}", REGIONS[next]));
    assert_eq!(done["created_by"], format!("ctl-{}", REGIONS[leader]));
    // Give any duplicate a chance to show up, then count.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(cl.calls(), 1, "the action ran exactly once");
    assert_eq!(cl.weights()["a"], 0);
    assert_eq!(cl.weights()["b"] + cl.weights()["c"], 300);
    assert_eq!(
        cl.journal().await?.len(),
        1,
        "no second intent: nothing left to do"
    );
    Ok(())
}

fn libc_sigterm() -> i32 {
    15
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_leadership_over_within_a_second() -> anyhow::Result<()> {
    let mut cl = Cluster::start(1).await?;
    let _fleet = cl.all_up_fleet();
    let leader = cl.wait_leader(None, Duration::from_secs(20)).await?;
    let t = Instant::now();
    let pid = cl.controllers[leader].pid().expect("running");
    switchyard_tests::process::signal(pid, libc_sigterm());
    let next = cl
        .wait_leader(Some(leader), Duration::from_secs(10))
        .await?;
    let handover = t.elapsed();
    // It exits by itself, promptly, once it has resigned.
    wait_for(
        "the terminated controller to exit",
        Duration::from_secs(10),
        || {
            let running = cl.controllers[leader].is_running();
            async move {
                if running {
                    Err("still running")
                } else {
                    Ok(())
                }
            }
        },
    )
    .await?;
    eprintln!("handover after SIGTERM: {handover:?}");
    assert_ne!(next, leader);
    assert!(
        handover < Duration::from_secs(1),
        "SIGTERM handover took {handover:?}"
    );
    assert!(
        cl.controllers[leader]
            .log()
            .contains("resigning leadership")
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_stopped_past_its_lease_acts_on_nothing_when_it_wakes() -> anyhow::Result<()> {
    let mut cl = Cluster::start(1).await?;
    let fleet = cl.all_up_fleet();
    let old = cl.wait_leader(None, Duration::from_secs(20)).await?;

    cl.controllers[old].pause();
    let new = cl.wait_leader(Some(old), LEASE_TTL * 5).await?;

    // The new leader acts.
    region_down(&fleet, "b");
    wait_for(
        "the new leader to evacuate b",
        Duration::from_secs(20),
        || async {
            if cl.calls() == 1 && cl.weights().get("b") == Some(&0) {
                Ok(())
            } else {
                Err(format!("calls {}, weights {:?}", cl.calls(), cl.weights()))
            }
        },
    )
    .await?;
    let entries_before = cl.journal().await?.len();

    // The old leader wakes up believing it leads, with a view that wants to
    // act: it must find its lease gone and do nothing.
    cl.controllers[old].resume();
    tokio::time::sleep(LEASE_TTL * 2).await;
    assert_eq!(cl.calls(), 1, "the woken leader applied something");
    let journal = cl.journal().await?;
    assert_eq!(journal.len(), entries_before);
    let old_id = format!("ctl-{}", REGIONS[old]);
    assert!(
        journal
            .iter()
            .all(|e| e["created_by"] != old_id.as_str() || e["status"] == "done")
    );
    assert_eq!(cl.leader().await, Some(new));
    assert_eq!(
        cl.controllers[old].metric("switchyard_leader").await?,
        Some(0.0),
        "the woken node knows it does not lead"
    );
    // It stepped down for its lease (the keep-alive's deadline, etcd's
    // word, or the fence on a write), not merely because its loop ended.
    // (Or, when the pause caught an etcd call in flight, that call's own
    // deadline passed while it slept: the call fails as it wakes and the
    // loop ends before it could act — seen once in CI on a busy machine.)
    let log = cl.controllers[old].log();
    let in_flight_call_timed_out = log
        .contains("leading stopped error=etcd unavailable: etcd call timed out")
        && log.contains("stepping down reason=\"leader loop ended\"");
    assert!(
        [
            "lease deadline passed",
            "etcd reports the lease expired",
            "the fence refused a write"
        ]
        .iter()
        .any(|why| log.contains(why))
            || in_flight_call_timed_out,
        "{log}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_down_means_fail_static_and_a_leader_returns_with_it() -> anyhow::Result<()> {
    let mut cl = Cluster::start(1).await?;
    let fleet = cl.all_up_fleet();
    cl.wait_leader(None, Duration::from_secs(20)).await?;
    let before = cl.weights();

    cl.etcd.kill_all();
    region_down(&fleet, "c");
    // Longer than the lease and the fall count: a leader would have acted.
    tokio::time::sleep(LEASE_TTL * 3).await;
    assert_eq!(cl.calls(), 0, "nothing acted while etcd was down");
    assert_eq!(cl.weights(), before, "what was applied stays applied");
    for c in &cl.controllers {
        assert_eq!(
            c.metric("switchyard_leader").await?,
            Some(0.0),
            "{} still leads",
            c.id()
        );
    }

    cl.etcd.restart_all().await?;
    cl.wait_leader(None, Duration::from_secs(30)).await?;
    wait_for(
        "the returning leader to act",
        Duration::from_secs(30),
        || async {
            if cl.weights().get("c") == Some(&0) {
                Ok(())
            } else {
                Err(format!("weights {:?}", cl.weights()))
            }
        },
    )
    .await?;
    assert_eq!(cl.calls(), 1);
    Ok(())
}
