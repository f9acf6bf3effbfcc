//! The real-process fault matrix (issue 15): each row is one fault made on
//! the lab's network namespaces (real etcd, MariaDB replicating with GTID,
//! the controllers as processes, iptables partitions, SIGKILL and SIGSTOP),
//! run `FAULT_TRIALS` times (default 3, as in the whole suite,
//! `scripts/test`, and `scripts/fault-matrix`; 20 in
//! `scripts/fault-matrix 20`, the nightly run), each trial on a fresh lab,
//! with m0 in region a the primary at the start.
//!
//! While a trial runs, a [`Monitor`] samples every member's `read_only`,
//! the record's weights and the journal every 10 ms and fails the trial on
//! any breach: two writable members, every weight at 0, an intent's step
//! performed again with nothing between that undid it. Each row also
//! asserts that its fault was seen and what must come of it (a new primary
//! after m0's fence, or none; the acknowledged write kept; the failover
//! finished by a new leader), so that no trial passes by doing nothing.
//!
//! Every trial prints one line `fault-matrix: <row> trial i/n ...`; with
//! `FAULT_MATRIX_OUT` set it also appends it, as JSON, to that file, which
//! `scripts/fault-matrix` turns into the table of `docs/FAULTS.md`.

mod common;
mod split_lab;
mod traffic_support;

use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::time::Duration;

use split_lab::monitor::{EVERY, Monitor, WeightsAt};
use split_lab::{RECORD, REGIONS, Route53At, Settings, SplitLab, db_target, svc};
use switchyard_tests::wait::wait_for;
use tokio::time::Instant;
use traffic_support::proxy::Proxy;

/// What a row's trial returns: one line saying what came of the fault.
type Trial<'a> = Pin<Box<dyn Future<Output = anyhow::Result<String>> + 'a>>;

/// How many trials of each row (`FAULT_TRIALS`, default 3).
fn trials() -> usize {
    std::env::var("FAULT_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(3)
}

/// Runs `trial` on a fresh lab `FAULT_TRIALS` times under the monitor;
/// fails on the first trial that errs or breaches an invariant.
async fn row(
    name: &str,
    settings: Settings,
    trial: for<'a> fn(&'a mut SplitLab, &'a Monitor, usize) -> Trial<'a>,
) -> anyhow::Result<()> {
    let n = trials();
    for t in 1..=n {
        let mut lab = SplitLab::start_with(settings.clone()).await?;
        let monitor = watch(&lab);
        let outcome = trial(&mut lab, &monitor, t).await;
        conclude(name, t, n, &lab, monitor, outcome).await?;
    }
    Ok(())
}

/// A monitor of `lab`.
fn watch(lab: &SplitLab) -> Monitor {
    Monitor::start(&lab.db, WeightsAt::of(lab), RECORD, lab.store.clone())
}

/// Ends trial `t` of `n`: prints and records its line, and fails when the
/// trial erred, the monitor saw a breach, or the monitor hardly watched.
async fn conclude(
    name: &str,
    t: usize,
    n: usize,
    lab: &SplitLab,
    monitor: Monitor,
    outcome: anyhow::Result<String>,
) -> anyhow::Result<()> {
    let report = monitor.finish(&lab.store).await;
    let rate = report.samples as f64 / report.ran.as_secs_f64();
    let line = format!(
        "fault-matrix: {name} trial {t}/{n}: {:.1} s, {} samples ({rate:.0}/s, two or more \
         members read in {}), breaches {}: {}",
        report.ran.as_secs_f64(),
        report.samples,
        report.two_read,
        report.breaches.len(),
        match &outcome {
            Ok(o) => o.clone(),
            Err(e) => format!("FAILED: {e:#}"),
        }
    );
    eprintln!("{line}");
    record(name, t, &report, &outcome);
    if outcome.is_err() || !report.breaches.is_empty() {
        lab.dump_logs();
        for b in &report.breaches {
            eprintln!("breach: {b}");
        }
        anyhow::bail!("{line}");
    }
    // The monitor really watched: at least one sample in four of its
    // 10 ms ticks (a busy machine skips some), most with two or more
    // members read (a row may kill one).
    let ticks = report.ran.as_millis() as u64 / EVERY.as_millis() as u64;
    anyhow::ensure!(
        report.samples * 4 >= ticks,
        "the monitor sampled {} times in {ticks} ticks",
        report.samples
    );
    anyhow::ensure!(
        report.two_read * 10 >= report.samples * 9,
        "two or more members read in only {} of {} samples",
        report.two_read,
        report.samples
    );
    Ok(())
}

/// Appends the trial to `FAULT_MATRIX_OUT`, one JSON object per line.
fn record(
    name: &str,
    t: usize,
    report: &split_lab::monitor::Report,
    outcome: &anyhow::Result<String>,
) {
    let Ok(path) = std::env::var("FAULT_MATRIX_OUT") else {
        return;
    };
    let line = serde_json::json!({
        "row": name,
        "trial": t,
        "secs": report.ran.as_secs_f64(),
        "samples": report.samples,
        "breaches": report.breaches,
        "ok": outcome.is_ok(),
        "outcome": match outcome { Ok(o) => o.clone(), Err(e) => format!("{e:#}") },
    });
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{line}");
    }
}

/// Waits until a member other than `old` is the recorded primary.
async fn new_primary(lab: &SplitLab, old: &str) -> anyhow::Result<String> {
    wait_for(
        &format!("a primary other than {old} to be recorded"),
        Duration::from_secs(60),
        || async {
            match lab.primary().await.map_err(|e| e.to_string())? {
                Some(p) if p != old => Ok(p),
                other => Err(format!("primary is {other:?}")),
            }
        },
    )
    .await
}

/// m0 was seen read-only before `new` was seen writable: the fence came
/// first, as the samples show it (each sample reads the members one after
/// another, within milliseconds; the gate holds promotion back seconds).
fn fenced_first(monitor: &Monitor, new: &str) -> anyhow::Result<String> {
    let i: usize = new[1..].parse()?;
    let fenced = monitor
        .first_read_only(0)
        .ok_or_else(|| anyhow::anyhow!("m0 was never seen read-only"))?;
    let promoted = monitor
        .first_writable(i)
        .ok_or_else(|| anyhow::anyhow!("{new} was never seen writable"))?;
    anyhow::ensure!(
        fenced < promoted,
        "{new} writable at {promoted} ms, m0 read-only only at {fenced} ms"
    );
    Ok(format!(
        "m0 fenced {:.1} s before {new} was writable",
        (promoted - fenced) as f64 / 1000.0
    ))
}

/// Waits until region `r`'s weight is `w`.
async fn weight_is(lab: &SplitLab, r: &str, w: u32) -> anyhow::Result<()> {
    wait_for(
        &format!("region {r}'s weight to be {w}"),
        Duration::from_secs(30),
        || async {
            let now = lab.weights();
            if now.get(r) == Some(&w) {
                Ok(())
            } else {
                Err(format!("{now:?}"))
            }
        },
    )
    .await
}

/// The old primary m0, reachable again, stays read-only and the recorded
/// primary stays `new` through two of the leader's rejoin looks: a
/// failover never hands m0 its writes back.
async fn stays_out(lab: &SplitLab, monitor: &Monitor, new: &str) -> anyhow::Result<()> {
    wait_for("m0 to answer again", Duration::from_secs(30), || async {
        match monitor.last().read_only[0] {
            Some(true) => Ok(()),
            other => Err(format!("m0 read_only {other:?}")),
        }
    })
    .await?;
    tokio::time::sleep(2 * switchyard_controller::runtime::rejoin::INTERVAL).await;
    anyhow::ensure!(
        monitor.last().read_only[0] == Some(true),
        "m0 is not read-only"
    );
    anyhow::ensure!(
        lab.primary().await?.as_deref() == Some(new),
        "the recorded primary moved from {new}"
    );
    Ok(())
}

/// The journal's failover intents, (id, status, steps).
async fn failovers(lab: &SplitLab) -> anyhow::Result<Vec<serde_json::Value>> {
    Ok(lab
        .journal()
        .await?
        .into_iter()
        .filter(|e| e["action"]["kind"] == "failover")
        .collect())
}

/// Every region's probes see member `m` down (`up` false) or up.
fn member_seen(lab: &SplitLab, m: usize, up: bool) {
    lab.set_seen(&db_target(m), &REGIONS, up);
}

/// A table `app.t` on m0, replicated to m1 and m2.
async fn table(lab: &SplitLab) -> anyhow::Result<()> {
    lab.db
        .exec(0, "CREATE TABLE app.t (id INT PRIMARY KEY)")
        .await?;
    for i in 1..3 {
        counts_one(
            lab,
            i,
            "app.t to replicate",
            "SELECT COUNT(*) FROM information_schema.tables \
             WHERE table_schema = 'app' AND table_name = 't'",
        )
        .await?;
    }
    Ok(())
}

/// Waits until `sql` (a `COUNT(*)`) counts one on member `i`.
async fn counts_one(lab: &SplitLab, i: usize, what: &str, sql: &str) -> anyhow::Result<()> {
    wait_for(what, Duration::from_secs(20), || async move {
        lab.db
            .query_first::<i64>(i, sql)
            .await
            .map_err(|e| e.to_string())?
            .filter(|n| *n == 1)
            .map(|_| ())
            .ok_or_else(|| format!("m{i}: not yet"))
    })
    .await
}

/// Makes m1 and m2 apply what they receive `secs` late (`MASTER_DELAY`),
/// then commits row 1 on m0 and waits until both have received it: an
/// acknowledged write that only the relay logs hold.
async fn delayed_replicas_and_one_write(lab: &SplitLab, secs: u32) -> anyhow::Result<()> {
    table(lab).await?;
    for i in 1..3 {
        lab.db.exec(i, "STOP SLAVE").await?;
        lab.db
            .exec(i, &format!("CHANGE MASTER TO MASTER_DELAY = {secs}"))
            .await?;
        lab.db.exec(i, "START SLAVE").await?;
    }
    lab.db.exec(0, "INSERT INTO app.t VALUES (1)").await?;
    let pos = lab.db.variable(0, "gtid_binlog_pos").await?;
    for i in 1..3 {
        let pos = pos.clone();
        wait_for(
            "the write to reach the relay logs",
            Duration::from_secs(20),
            || {
                let pos = pos.clone();
                async move {
                    let row: Option<mysql_async::Row> = lab
                        .db
                        .query_first(i, "SHOW SLAVE STATUS")
                        .await
                        .map_err(|e| e.to_string())?;
                    let io: Option<String> = row.and_then(|r| r.get("Gtid_IO_Pos"));
                    if io.as_deref() == Some(pos.as_str()) {
                        Ok(())
                    } else {
                        Err(format!("m{i} received {io:?}, m0 has {pos}"))
                    }
                }
            },
        )
        .await?;
    }
    Ok(())
}

/// Row 1 is on `member`.
async fn has_the_write(lab: &SplitLab, member: &str) -> anyhow::Result<()> {
    let i: usize = member[1..].parse()?;
    let n: Option<i64> = lab
        .db
        .query_first(i, "SELECT COUNT(*) FROM app.t WHERE id = 1")
        .await?;
    anyhow::ensure!(n == Some(1), "the acknowledged write is not on {member}");
    Ok(())
}

// ---------------------------------------------------------------- rows

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn region_outage() -> anyhow::Result<()> {
    row("region outage", Settings::default(), |lab, monitor, _| {
        Box::pin(async move {
            let cut = Instant::now();
            lab.isolate_a()?;
            let new = new_primary(lab, "m0").await?;
            let took = cut.elapsed();
            weight_is(lab, "a", 0).await?;
            let i: usize = new[1..].parse()?;
            wait_for(
                "the new primary to be seen writable",
                Duration::from_secs(20),
                || async { monitor.first_writable(i).map(|_| ()).ok_or("not yet") },
            )
            .await?;
            let first = fenced_first(monitor, &new)?;
            lab.heal_a()?;
            stays_out(lab, monitor, &new).await?;
            Ok(format!(
                "{new} primary {:.1} s after the cut ({first}), a evacuated; healed, m0 stays \
                 read-only",
                took.as_secs_f64()
            ))
        })
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_vantage_cut() -> anyhow::Result<()> {
    row(
        "single-vantage cut",
        Settings::default(),
        |lab, monitor, _| {
            Box::pin(async move {
                // Only c's probes lose region a (its service and m0): one
                // vote of three, below the quorum of 2.
                lab.set_seen(&svc("a"), &["c"], false);
                lab.set_seen(&db_target(0), &["c"], false);
                tokio::time::sleep(Duration::from_secs(6)).await;
                let last = monitor.last();
                anyhow::ensure!(
                    last.read_only == [Some(false), Some(true), Some(true)],
                    "m0 is no longer the one writable member: {:?}",
                    last.read_only
                );
                anyhow::ensure!(
                    lab.weights().values().all(|w| *w == 100),
                    "weights moved: {:?}",
                    lab.weights()
                );
                let journal = lab.journal().await?;
                anyhow::ensure!(journal.is_empty(), "something was done: {journal:?}");
                lab.set_seen(&svc("a"), &["c"], true);
                lab.set_seen(&db_target(0), &["c"], true);
                Ok("6 s of one vantage's cut: nothing moved".to_string())
            })
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_kill9() -> anyhow::Result<()> {
    row("primary kill -9", Settings::default(), |lab, monitor, _| {
        Box::pin(async move {
            let killed = Instant::now();
            lab.db.kill9(0);
            member_seen(lab, 0, false);
            let new = new_primary(lab, "m0").await?;
            let took = killed.elapsed();
            lab.db.restart(0).await?;
            member_seen(lab, 0, true);
            stays_out(lab, monitor, &new).await?;
            let f = failovers(lab).await?;
            anyhow::ensure!(f.len() == 1, "one failover, not {}", f.len());
            Ok(format!(
                "{new} primary {:.1} s after the kill; m0 restarted read-only and stays out",
                took.as_secs_f64()
            ))
        })
    })
    .await
}

/// The leader is stopped (`kill`: SIGKILL, else SIGSTOP for three leader
/// lease TTLs) in the middle of its failover; another controller must
/// finish the same intent without performing any of its steps twice, the
/// acknowledged write must survive, and the old leader must do nothing
/// when it wakes. m1 and m2 apply 9 s late, so the failover waits for its
/// candidate's relay log: even trials stop the leader then; odd ones (the
/// first, so a one-trial run has it) the moment the monitor sees the
/// candidate writable, between the promotion and the rest (recording it,
/// repointing m2, closing the intent).
async fn leader_stopped_mid_failover(
    lab: &mut SplitLab,
    monitor: &Monitor,
    kill: bool,
    trial: usize,
) -> anyhow::Result<String> {
    let after_promote = trial % 2 == 1;
    delayed_replicas_and_one_write(lab, 9).await?;
    lab.db.kill9(0);
    member_seen(lab, 0, false);
    let pending = wait_for(
        "a failover intent to be pending",
        Duration::from_secs(30),
        || async {
            let f = failovers(lab).await.map_err(|e| e.to_string())?;
            f.into_iter()
                .find(|e| e["status"] == "pending")
                .ok_or_else(|| "none yet".to_string())
        },
    )
    .await?;
    let leader = lab
        .leader()
        .await
        .ok_or_else(|| anyhow::anyhow!("no controller says it leads"))?;
    let who = lab.controllers[leader].id().to_string();
    if after_promote {
        let until = Instant::now() + Duration::from_secs(30);
        while monitor.last().read_only[1..]
            .iter()
            .all(|r| *r != Some(false))
        {
            anyhow::ensure!(Instant::now() < until, "no member was promoted");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    if kill {
        lab.controllers[leader].kill();
    } else {
        lab.controllers[leader].pause();
    }
    let id = pending["id"].as_str().unwrap_or_default().to_string();
    let at_stop = failovers(lab)
        .await?
        .into_iter()
        .find(|e| e["id"] == id.as_str());
    let steps_then: Vec<String> = at_stop
        .as_ref()
        .and_then(|e| e["steps"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .map(|s| s["step"].as_str().unwrap_or("?").to_string())
        .collect();
    let status_then = at_stop.map_or("compacted".to_string(), |e| {
        e["status"].as_str().unwrap_or("?").to_string()
    });
    // The fault must have landed mid-failover: the intent still open, and
    // (even trials) before the promotion.
    anyhow::ensure!(
        status_then == "pending",
        "{who} was stopped after its intent closed ({status_then}): nothing to resume"
    );
    anyhow::ensure!(
        after_promote || !steps_then.iter().any(|s| s == "promote"),
        "{who} was stopped after the promotion, not while catching up: {steps_then:?}"
    );
    let done = wait_for(
        "the intent to be finished",
        Duration::from_secs(60),
        || async {
            let f = failovers(lab).await.map_err(|e| e.to_string())?;
            match f.iter().find(|e| e["id"] == id.as_str()) {
                Some(e) if e["status"] == "done" => Ok(e.clone()),
                Some(e) => Err(format!("{}", e["status"])),
                // Compacted into history once done.
                None => Ok(serde_json::Value::Null),
            }
        },
    )
    .await?;
    if !kill {
        tokio::time::sleep(Duration::from_secs(3 * split_lab::LEASE_TTL_S)).await;
        lab.controllers[leader].resume();
        // The woken leader's chance to do harm, under the monitor.
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let new = new_primary(lab, "m0").await?;
    has_the_write(lab, &new).await?;
    let f = failovers(lab).await?;
    anyhow::ensure!(f.len() <= 1, "one failover intent, not {}", f.len());
    // Who closed the intent: the entry says, or (compacted) its history.
    let finisher = match done["finished_by"].as_str() {
        Some(f) => f.to_string(),
        None => lab
            .history()
            .await?
            .iter()
            .filter(|e| e["journal_id"] == id.as_str())
            .filter_map(|e| e["by"].as_str())
            .next_back()
            .unwrap_or("?")
            .to_string(),
    };
    anyhow::ensure!(
        finisher != who && finisher != "?",
        "the intent was finished by {finisher}, not by a new leader"
    );
    Ok(format!(
        "{who} {} {} with the intent {status_then} at [{}]; finished by {finisher}; {new} primary with the write",
        if kill { "killed" } else { "paused 6 s" },
        if after_promote {
            "as its candidate turned writable"
        } else {
            "while catching up"
        },
        steps_then.join(", ")
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_sigkill_mid_failover() -> anyhow::Result<()> {
    row(
        "leader SIGKILL mid-failover",
        Settings::default(),
        |lab, m, t| Box::pin(leader_stopped_mid_failover(lab, m, true, t)),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_sigstop_past_the_lease() -> anyhow::Result<()> {
    row(
        "leader SIGSTOP past the lease",
        Settings::default(),
        |lab, m, t| Box::pin(leader_stopped_mid_failover(lab, m, false, t)),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_quorum_loss() -> anyhow::Result<()> {
    row(
        "etcd quorum loss",
        Settings::default(),
        |lab, monitor, _| {
            Box::pin(async move {
                lab.etcd.kill(0);
                // Twice the primary lease without etcd: nothing may move.
                tokio::time::sleep(Duration::from_secs(2 * split_lab::PRIMARY_TTL_S)).await;
                let last = monitor.last();
                anyhow::ensure!(
                    last.read_only == [Some(false), Some(true), Some(true)],
                    "m0 is no longer the one writable member: {:?}",
                    last.read_only
                );
                lab.etcd.restart(0).await?;
                lab.wait_lease_held("ctl-a", "m0").await?;
                anyhow::ensure!(lab.primary().await?.as_deref() == Some("m0"));
                anyhow::ensure!(failovers(lab).await?.is_empty(), "a failover was journaled");
                Ok(format!(
                    "{} s without etcd: m0 kept writing, nothing promoted; lease back with etcd",
                    2 * split_lab::PRIMARY_TTL_S
                ))
            })
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asymmetric_partition() -> anyhow::Result<()> {
    row(
        "asymmetric partition",
        Settings::default(),
        |lab, monitor, _| {
            Box::pin(async move {
                // a and b lose c; then b, then a lose etcd: a still reaches b,
                // a majority, but c alone has etcd, leads and promotes m2.
                for i in [0, 1] {
                    lab.cut_link(i, 2)?;
                }
                lab.wait_peers(0, 1).await?;
                lab.wait_peers(1, 1).await?;
                lab.cut_etcd_from(1)?;
                tokio::time::sleep(Duration::from_secs(2)).await;
                let cut = Instant::now();
                lab.cut_etcd_from(0)?;
                lab.fleet_bc.set_all(&db_target(0), &["b", "c"], false);
                let new = new_primary(lab, "m0").await?;
                anyhow::ensure!(new == "m2", "only m2 is reachable from c, got {new}");
                let took = cut.elapsed();
                // The new primary's first writable sample comes after the
                // record: wait for it.
                wait_for(
                    "m2 to be seen writable",
                    Duration::from_secs(20),
                    || async { monitor.first_writable(2).map(|_| ()).ok_or("not yet") },
                )
                .await?;
                Ok(format!(
                    "m2 primary {:.1} s after a lost etcd; {}",
                    took.as_secs_f64(),
                    fenced_first(monitor, "m2")?
                ))
            })
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flapping_target() -> anyhow::Result<()> {
    row("flapping target", Settings::default(), |lab, _, _| {
        Box::pin(async move {
            // Region b's service flaps every 300 ms, seen so by every
            // vantage, until b is evacuated (whether a 300 ms flap reads
            // as Down depends on when reports land: on a busy machine it
            // once took longer than 8 s), then for 8 s more.
            let began = Instant::now();
            let mut until = began + Duration::from_secs(20);
            let mut seen = None;
            let mut up = false;
            while Instant::now() < until {
                lab.set_seen(&svc("b"), &REGIONS, up);
                up = !up;
                tokio::time::sleep(Duration::from_millis(300)).await;
                if seen.is_none() && lab.weights().get("b").is_some_and(|w| *w < 100) {
                    seen = Some(began.elapsed());
                    until = Instant::now() + Duration::from_secs(8);
                }
            }
            let Some(seen) = seen else {
                anyhow::bail!("20 s of flapping and b was never evacuated");
            };
            lab.set_seen(&svc("b"), &REGIONS, true);
            tokio::time::sleep(Duration::from_secs(2)).await;
            anyhow::ensure!(lab.primary().await?.as_deref() == Some("m0"));
            let changes = lab
                .history()
                .await?
                .iter()
                .filter(|e| e["what"].as_str().is_some_and(|w| w.contains("weight")))
                .count();
            // The flapping was seen (b evacuated once), and damped: failback
            // is manual, so b does not come back on its own.
            anyhow::ensure!(
                (1..=2).contains(&changes),
                "{changes} weight changes in 8 s of flapping after b was evacuated"
            );
            Ok(format!(
                "b evacuated {:.1} s into the flapping, then 8 s more: {changes} weight \
                 changes, b ends at {:?}",
                seen.as_secs_f64(),
                lab.weights().get("b")
            ))
        })
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_region_down() -> anyhow::Result<()> {
    row("every region down", Settings::default(), |lab, _, _| {
        Box::pin(async move {
            for r in REGIONS {
                lab.set_seen(&svc(r), &REGIONS, false);
            }
            tokio::time::sleep(Duration::from_secs(6)).await;
            // The leader saw every service Down (the fault reached it)...
            let leader = lab
                .leader()
                .await
                .ok_or_else(|| anyhow::anyhow!("no controller says it leads"))?;
            for r in REGIONS {
                let v = lab.controllers[leader]
                    .metric(&format!(
                        "switchyard_target_verdict{{target=\"{}\"}}",
                        svc(r)
                    ))
                    .await?;
                anyhow::ensure!(v == Some(0.0), "the leader's verdict on {}: {v:?}", svc(r));
            }
            // ...and evacuated nothing: a global outage is not a region's.
            let w = lab.weights();
            anyhow::ensure!(w.values().all(|w| *w == 100), "weights moved: {w:?}");
            anyhow::ensure!(lab.primary().await?.as_deref() == Some("m0"));
            for r in REGIONS {
                lab.set_seen(&svc(r), &REGIONS, true);
            }
            Ok(format!("6 s with every service down: weights {w:?}"))
        })
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errant_replica() -> anyhow::Result<()> {
    row("errant replica", Settings::default(), |lab, _, _| {
        Box::pin(async move {
            table(lab).await?;
            // A write straight into replica m1 (the admin bypasses
            // read_only): a transaction the primary never had.
            lab.db.exec(1, "INSERT INTO app.t VALUES (1001)").await?;
            lab.db.kill9(0);
            member_seen(lab, 0, false);
            let new = new_primary(lab, "m0").await?;
            anyhow::ensure!(new == "m2", "the errant m1 was promoted over the clean m2");
            Ok("m2 promoted; m1, with an errant transaction, passed over".to_string())
        })
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn divergent_replicas() -> anyhow::Result<()> {
    row(
        "divergent replicas",
        Settings::default(),
        |lab, monitor, _| {
            Box::pin(async move {
                table(lab).await?;
                // m2 stops following m0, which then commits row 1: m1 has it.
                lab.db.exec(2, "STOP SLAVE").await?;
                lab.db.exec(0, "INSERT INTO app.t VALUES (1)").await?;
                counts_one(
                    lab,
                    1,
                    "row 1 to reach m1",
                    "SELECT COUNT(*) FROM app.t WHERE id = 1",
                )
                .await?;
                // m2 takes a transaction of another origin (server 4004: a
                // short-lived second writer it followed for a while, as a
                // split brain leaves it). Not m2's own, so not errant: neither
                // replica now has everything the other has.
                lab.db
                    .exec(
                        2,
                        "SET SESSION server_id = 4004; INSERT INTO app.t VALUES (2)",
                    )
                    .await?;
                lab.db.kill9(0);
                member_seen(lab, 0, false);
                // The leader refuses to pick: an automatic failover that failed
                // naming the divergence, and nobody promoted.
                let refused = wait_for(
                    "the leader to refuse the automatic failover",
                    Duration::from_secs(60),
                    || async {
                        // Finished intents stay in the journal until compacted
                        // into the history.
                        let mut h = lab.journal().await.map_err(|e| e.to_string())?;
                        h.extend(lab.history().await.map_err(|e| e.to_string())?);
                        h.iter()
                            .find(|e| {
                                e["action"]["kind"] == "failover"
                                    && e["status"] == "failed"
                                    && e["outcome"]
                                        .as_str()
                                        .is_some_and(|o| o.contains("divergent replicas"))
                            })
                            .and_then(|e| e["outcome"].as_str().map(str::to_string))
                            .ok_or_else(|| "not yet".to_string())
                    },
                )
                .await?;
                anyhow::ensure!(
                    refused.contains("0-4004-"),
                    "the refusal does not name m2's transaction: {refused}"
                );
                tokio::time::sleep(Duration::from_secs(3)).await;
                let last = monitor.last();
                anyhow::ensure!(
                    last.read_only[1] == Some(true) && last.read_only[2] == Some(true),
                    "a divergent replica was made writable: {:?}",
                    last.read_only
                );
                anyhow::ensure!(
                    lab.primary().await?.as_deref() == Some("m0"),
                    "the recorded primary moved without an operator"
                );
                // The operator keeps m1's history with a forced failover naming it.
                let urls: Vec<String> = lab.controllers.iter().map(|c| c.grpc_url()).collect();
                let out = common::cli_command(lab.dir.path(), &urls)
                    .args(["failover", "--config"])
                    .arg(&lab.config)
                    .args([
                        "--reason",
                        "fault matrix: divergent replicas, keep m1",
                        "--database",
                        "orders",
                        "--to",
                        "m1",
                        "--force",
                        "--wait",
                        "60",
                    ])
                    .output()?;
                anyhow::ensure!(
                    out.status.success(),
                    "the forced failover to m1 failed: {}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                let new = new_primary(lab, "m0").await?;
                anyhow::ensure!(new == "m1", "{new} promoted, the operator named m1");
                has_the_write(lab, "m1").await?;
                Ok(format!(
                    "automatic failover refused ({}); the operator's forced failover promoted m1",
                    refused.split(": ").nth(1).unwrap_or(&refused)
                ))
            })
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_only_candidate() -> anyhow::Result<()> {
    let settings = Settings {
        max_lag_s: 2,
        ..Settings::default()
    };
    row("lagging-only candidate", settings, |lab, _, _| {
        Box::pin(async move {
            // Both replicas apply 6 s late; max_lag is 2 s.
            delayed_replicas_and_one_write(lab, 6).await?;
            tokio::time::sleep(Duration::from_secs(3)).await;
            let killed = Instant::now();
            lab.db.kill9(0);
            member_seen(lab, 0, false);
            let new = new_primary(lab, "m0").await?;
            let took = killed.elapsed();
            has_the_write(lab, &new).await?;
            Ok(format!(
                "{new} promoted {:.1} s after the kill, once it had applied the write",
                took.as_secs_f64()
            ))
        })
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route53_throttling() -> anyhow::Result<()> {
    let name = "Route 53 throttling";
    let moto = switchyard_tests::Route53Api::start().await?;
    let proxy = Proxy::start_on(
        std::net::Ipv4Addr::UNSPECIFIED.into(),
        traffic_support::endpoint_addr(moto.endpoint())?,
    )
    .await?;
    let n = trials();
    for t in 1..=n {
        let zone = traffic_support::create_zone(&moto, "example.test.").await?;
        let mut lab = SplitLab::start_with(Settings {
            route53: Some(Route53At {
                port: proxy.port(),
                zone_id: zone,
                client: moto.client(),
            }),
            ..Settings::default()
        })
        .await?;
        let monitor = watch(&lab);
        let outcome = throttled(&mut lab, &monitor, &proxy).await;
        proxy.throttle_all_changes(false);
        conclude(name, t, n, &lab, monitor, outcome).await?;
    }
    Ok(())
}

/// Every weight change Route 53 gets is throttled while region b is lost:
/// the leader retries, keeps its books straight, and evacuates b once
/// the API takes changes again.
async fn throttled(lab: &mut SplitLab, monitor: &Monitor, proxy: &Proxy) -> anyhow::Result<String> {
    wait_for("the records created", Duration::from_secs(30), || async {
        let w = monitor.last().weights;
        if w.len() == 3 && w.values().all(|w| *w == 100) {
            Ok(())
        } else {
            Err(format!("{w:?}"))
        }
    })
    .await?;
    proxy.throttle_all_changes(true);
    let throttled_before = proxy.throttled();
    lab.set_seen(&svc("b"), &REGIONS, false);
    wait_for(
        "a change to be throttled",
        Duration::from_secs(30),
        || async {
            if proxy.throttled() > throttled_before + 1 {
                Ok(())
            } else {
                Err(format!("{} throttled", proxy.throttled()))
            }
        },
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let w = monitor.last().weights;
    anyhow::ensure!(
        w.get("b") == Some(&100),
        "a throttled change went through: {w:?}"
    );
    let refused = proxy.throttled() - throttled_before;
    let lifted = Instant::now();
    proxy.throttle_all_changes(false);
    wait_for(
        "region b evacuated at Route 53",
        Duration::from_secs(40),
        || async {
            let w = monitor.last().weights;
            if w.get("b") == Some(&0) {
                Ok(())
            } else {
                Err(format!("{w:?}"))
            }
        },
    )
    .await?;
    Ok(format!(
        "{refused} changes throttled over 4 s; b evacuated {:.1} s after the API took changes again",
        lifted.elapsed().as_secs_f64()
    ))
}

/// The monitor's checks, on breaches made by hand: each must be seen.
mod monitor_checks {
    use super::split_lab::monitor::{Checker, Observation};
    use serde_json::json;

    fn obs(ro: [Option<bool>; 3], weights: &[u32], journal: Vec<serde_json::Value>) -> Observation {
        Observation {
            at_ms: 7,
            read_only: ro,
            weights: weights
                .iter()
                .enumerate()
                .map(|(i, w)| (["a", "b", "c"][i].to_string(), *w))
                .collect(),
            journal: Some(journal),
        }
    }

    #[test]
    fn two_writable_members_are_a_breach_and_one_is_not() {
        let mut c = Checker::default();
        assert!(
            c.check(&obs(
                [Some(false), Some(true), None],
                &[100, 0, 100],
                vec![]
            ))
            .is_empty()
        );
        let b = c.check(&obs(
            [Some(false), None, Some(false)],
            &[100, 0, 100],
            vec![],
        ));
        assert_eq!(b, vec!["7 ms: two writable members: m0, m2"]);
    }

    #[test]
    fn every_weight_at_zero_is_a_breach() {
        let mut c = Checker::default();
        let b = c.check(&obs(
            [Some(false), Some(true), Some(true)],
            &[0, 0, 0],
            vec![],
        ));
        assert_eq!(b.len(), 1, "{b:?}");
        assert!(
            c.check(&obs([None; 3], &[], vec![])).is_empty(),
            "unread weights"
        );
    }

    #[test]
    fn a_step_performed_twice_or_undone_is_a_breach() {
        let promote = json!({"step": "promote", "member": "m1"});
        let fence = json!({"step": "fence", "member": "m0"});
        let observe = json!({"step": "observe"});
        let entry = |status: &str, steps: Vec<serde_json::Value>| json!({"id": "000000000002-000001", "status": status, "steps": steps});
        let ok = [Some(true); 3];
        let mut c = Checker::default();
        assert!(
            c.check(&obs(
                ok,
                &[1],
                vec![entry("pending", vec![observe.clone(), fence.clone()])]
            ))
            .is_empty()
        );
        // A resumed run reads the members again: fine.
        assert!(
            c.check(&obs(
                ok,
                &[1],
                vec![entry(
                    "done",
                    vec![
                        observe.clone(),
                        fence.clone(),
                        observe.clone(),
                        promote.clone()
                    ]
                )]
            ))
            .is_empty()
        );
        let mut twice = c.check(&obs(
            ok,
            &[1],
            vec![entry(
                "done",
                vec![
                    observe.clone(),
                    fence.clone(),
                    observe.clone(),
                    promote.clone(),
                    promote.clone(),
                ],
            )],
        ));
        assert_eq!(twice.len(), 1, "{twice:?}");
        assert!(twice.remove(0).contains("twice"));
        let undone = c.check(&obs(ok, &[1], vec![entry("pending", vec![observe])]));
        assert_eq!(undone.len(), 2, "{undone:?}");
    }
}
