//! Split-brain protection end to end (issue 7, ARCHITECTURE.md §5): real
//! etcd and MariaDB, controllers as processes, each region's controller and
//! database in its own network namespace, partitions made with iptables.
//!
//! - Region a (the primary's) is cut off while a client inside it keeps
//!   writing: its controller fences m0 before the majority promotes; never
//!   two writable members in any 50 ms sample; no write acknowledged after
//!   the fence. When a rejoins, m0 stays fenced, what it has that the new
//!   primary lacks is reported, the fence record reaches history, and a
//!   takes no traffic back (failback is manual).
//! - etcd stopped while the controllers reach each other: nothing fenced,
//!   nothing promoted, the primary stays writable, also across a restart
//!   of the primary region's controller during the outage.
//! - Region a cut off from etcd alone (its peers still reach etcd): its
//!   lease will lapse while the rest carry on, so it fences m0; nobody is
//!   promoted (m0 is seen up); when its etcd link returns, the leader lifts
//!   the fence through the journal and m0 takes writes again.
//! - An asymmetric partition (issue 11): a and b lose c, then etcd, but
//!   still reach each other; c keeps etcd. a and b are a majority without
//!   etcd, which is not an etcd outage: c leads and promotes m2 once m0's
//!   lease expires, so ctl-a fences m0 first; never two writable members
//!   in any 10 ms sample. With c's controller gone (and b's etcd link
//!   back, so that a controller can answer `status`), `status` says that
//!   region c has no live controller, next to the database. The same cut
//!   again with the shortest primary lease (2 s), where the gate opens on
//!   etcd's end of the lease.

use crate::common;
use crate::split_lab;

use std::time::Duration;

use split_lab::{Sample, Sampler, Settings, SplitLab, Timeline, Writer, timeline};
use switchyard_tests::wait::wait_for;
use tokio::time::Instant;

const SAMPLE_EVERY: Duration = Duration::from_millis(50);
/// The asymmetric-partition test samples every member this often.
const SAMPLE_FAST: Duration = Duration::from_millis(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_primary_region_fences_itself_before_the_majority_promotes()
-> anyhow::Result<()> {
    let mut lab = SplitLab::start().await?;
    let result = isolate_and_rejoin(&mut lab).await;
    if result.is_err() {
        lab.dump_logs();
    }
    result
}

async fn isolate_and_rejoin(lab: &mut SplitLab) -> anyhow::Result<()> {
    let _logs = lab.logs_on_panic();
    let sampler = Sampler::start(&lab.db, SAMPLE_EVERY);
    let writer = Writer::start(&lab.db, 0);
    wait_for("the writer to commit", Duration::from_secs(10), || async {
        if writer.attempts().iter().any(|a| a.acked) {
            Ok(())
        } else {
            Err("no acknowledged insert yet".to_string())
        }
    })
    .await?;

    let cut = Instant::now();
    lab.isolate_a()?;

    // The majority side promotes m1 or m2.
    let new_primary = wait_for(
        "the majority side to record a new primary",
        Duration::from_secs(60),
        || async {
            match lab.primary().await.map_err(|e| e.to_string())? {
                Some(p) if p != "m0" => Ok(p),
                other => Err(format!("primary is {other:?}")),
            }
        },
    )
    .await?;
    // Let the writer run on a little against the fenced m0.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let attempts = writer.attempts();
    drop(writer);
    let samples = sampler.samples();

    let t = one_writer_fence_first(&samples, cut, "isolation");
    // No write acknowledged by m0 after its fence: every acknowledged insert
    // was sent before the first sample that saw m0 read-only, and m0 holds
    // the acknowledged rows (and at most one unanswered, below).
    let fence_seen = cut + t.fenced;
    let acked: Vec<_> = attempts.iter().filter(|a| a.acked).collect();
    let late: Vec<_> = acked.iter().filter(|a| a.sent >= fence_seen).collect();
    assert!(
        late.is_empty(),
        "{} inserts sent after m0 was seen read-only were acknowledged, first {:?}",
        late.len(),
        late.first()
    );
    let refused_after = attempts
        .iter()
        .filter(|a| !a.acked && a.sent >= fence_seen)
        .count();
    assert!(
        refused_after > 0,
        "the writer kept trying after the fence and was refused"
    );
    // m0 holds every acknowledged row. Beyond them at most the one insert
    // whose session the fence ended between its commit and its answer (the
    // fence ends sessions first): committed, never acknowledged, and sent
    // before the fence was seen.
    let ids: Vec<i64> = lab.db.query(0, "SELECT id FROM app.w").await?;
    let ids: std::collections::BTreeSet<i64> = ids.into_iter().collect();
    let missing: Vec<i64> = acked
        .iter()
        .map(|a| a.id)
        .filter(|id| !ids.contains(id))
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged rows missing on m0: {missing:?}"
    );
    let acked_ids: std::collections::BTreeSet<i64> = acked.iter().map(|a| a.id).collect();
    let extra: Vec<(i64, bool)> = attempts
        .iter()
        .filter(|a| !a.acked && ids.contains(&a.id))
        .map(|a| (a.id, a.sent < fence_seen))
        .collect();
    assert!(
        extra.len() <= 1 && extra.iter().all(|(_, before)| *before),
        "rows on m0 that were never acknowledged: {extra:?}"
    );
    assert_eq!(
        ids.len(),
        acked_ids.len() + extra.len(),
        "m0 holds rows no attempt wrote"
    );

    // The failover waited for the gate (the lease of m0 expired).
    one_failover_through_the_gate(lab, "promotion gate open: primary lease of m0").await?;
    // The majority's leader counted the wait at the gate.
    let mut waits = 0.0;
    for c in &lab.controllers[1..] {
        waits += c
            .metric("switchyard_promotion_gate_waits_total{database=\"orders\"}")
            .await?
            .unwrap_or(0.0);
    }
    assert!(waits >= 1.0, "promotion-gate waits counted: {waits}");
    // The new primary's region now holds its lease.
    let region = ["a", "b", "c"][new_primary[1..].parse::<usize>()?];
    lab.wait_lease_held(&format!("ctl-{region}"), &new_primary)
        .await?;
    // Region a is evacuated.
    wait_for(
        "region a's weight to be 0",
        Duration::from_secs(20),
        || async {
            let w = lab.weights();
            if w.get("a") == Some(&0) {
                Ok(())
            } else {
                Err(format!("{w:?}"))
            }
        },
    )
    .await?;

    // --- Rejoin ---
    let new_idx: usize = new_primary[1..].parse()?;
    // A write on the new primary that m0 never had.
    lab.db
        .exec(new_idx, "INSERT INTO app.w (id, sent_ms) VALUES (-1, 0)")
        .await?;
    lab.heal_a()?;
    let history = wait_for(
        "the fence record and the rejoin report in history",
        Duration::from_secs(30),
        || async {
            let h = lab.history().await.map_err(|e| e.to_string())?;
            let text = serde_json::to_string(&h).map_err(|e| e.to_string())?;
            let fence = text.contains("isolation fence orders/m0: fenced");
            let rejoin = text.contains("rejoin orders/m0");
            if fence && rejoin {
                Ok(h)
            } else {
                Err(format!("fence record {fence}, rejoin report {rejoin}"))
            }
        },
    )
    .await?;
    let fence_event = history
        .iter()
        .find(|e| {
            e["what"]
                .as_str()
                .is_some_and(|w| w.starts_with("isolation fence orders/m0"))
        })
        .expect("fence event");
    assert_eq!(fence_event["by"], "ctl-a");
    assert!(
        fence_event["reasons"].to_string().contains("isolated"),
        "{fence_event}"
    );
    let rejoin = history
        .iter()
        .find(|e| {
            e["what"]
                .as_str()
                .is_some_and(|w| w.starts_with("rejoin orders/m0"))
        })
        .expect("rejoin event");
    // m0 took writes after the cut that never reached the majority side.
    let on_new: Vec<i64> = lab
        .db
        .query(new_idx, "SELECT id FROM app.w WHERE id > 0")
        .await?;
    let on_new: std::collections::BTreeSet<i64> = on_new.into_iter().collect();
    assert!(
        acked.iter().any(|a| !on_new.contains(&a.id)),
        "m0 acknowledged writes during the cut that the majority never got"
    );
    assert!(
        rejoin["what"].as_str().is_some_and(
            |w| w.contains(&format!("has transactions the primary {new_primary} lacks"))
        ),
        "{rejoin}"
    );

    // m0 stays fenced, the recorded primary stays the new one, and region a
    // takes no traffic back while failback waits for an operator.
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        assert_eq!(lab.db.variable(0, "read_only").await?, "1", "m0 unfenced");
        assert_eq!(lab.primary().await?.as_deref(), Some(new_primary.as_str()));
        assert_eq!(
            lab.weights().get("a"),
            Some(&0),
            "region a took traffic back"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // What the runbook tells the on-call person to look at.
    let status = cli(lab, &["status"])?;
    assert!(
        status.contains(&format!(
            "primary {new_primary} (epoch 2), lease held by ctl-{region} in {region} for {new_primary}"
        )),
        "{status}"
    );
    let history_text = cli(lab, &["history", "--limit", "50"])?;
    assert!(
        history_text.contains("isolation fence orders/m0: fenced"),
        "{history_text}"
    );
    let fences = lab.controllers[0]
        .metric("switchyard_local_fences_total{outcome=\"fenced\"}")
        .await?;
    assert!(fences.unwrap_or(0.0) >= 1.0, "fences counted: {fences:?}");
    Ok(())
}

/// Runs `switchyard <args> --config <lab config>`; its stdout.
fn cli(lab: &SplitLab, args: &[&str]) -> anyhow::Result<String> {
    let dir = lab.config.parent().expect("the config's directory");
    let servers: Vec<String> = lab
        .controllers
        .iter()
        .map(|c| c.grpc().to_string())
        .collect();
    let out = common::cli_command(dir, &servers)
        .args(args)
        .arg("--config")
        .arg(&lab.config)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "switchyard {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_stopped_while_controllers_reach_each_other_fences_and_promotes_nothing()
-> anyhow::Result<()> {
    let mut lab = SplitLab::start().await?;
    let result = etcd_outage(&mut lab).await;
    if result.is_err() {
        lab.dump_logs();
    }
    result
}

async fn etcd_outage(lab: &mut SplitLab) -> anyhow::Result<()> {
    let _logs = lab.logs_on_panic();
    let sampler = Sampler::start(&lab.db, SAMPLE_EVERY);
    let writer = Writer::start(&lab.db, 0);
    lab.etcd.kill(0);
    let stopped = Instant::now();
    // Three primary-lease TTLs without etcd; a third of the way in, ctl-a
    // (the primary's region) is restarted: it must find its peers from
    // its cache, not take their silence for an isolation.
    let outage = Duration::from_secs(3 * split_lab::PRIMARY_TTL_S);
    tokio::time::sleep(outage / 3).await;
    lab.controllers[0].kill();
    lab.controllers[0].restart().await?;
    tokio::time::sleep(stopped + outage - Instant::now()).await;
    let samples = sampler.samples();
    let during: Vec<_> = samples.iter().filter(|s| s.at >= stopped).collect();
    assert!(
        during.len() as u64 >= outage.as_millis() as u64 / 100,
        "too few samples"
    );
    // A sample may miss a member (a slow connect on a busy machine), but
    // every member read is as before: m0 writable, m1 and m2 read-only.
    for s in &during {
        let as_before = [Some(false), Some(true), Some(true)];
        for (seen, before) in s.read_only.iter().zip(as_before) {
            assert!(
                seen.is_none() || *seen == before,
                "m0 must stay the only writable member at +{:?}: {:?}",
                s.at.duration_since(stopped),
                s.read_only
            );
        }
    }
    split_lab::assert_mostly_read(&during);
    let attempts = writer.attempts();
    let late_refused = attempts
        .iter()
        .filter(|a| a.sent >= stopped && !a.acked)
        .count();
    let late_acked = attempts
        .iter()
        .filter(|a| a.sent >= stopped && a.acked)
        .count();
    assert_eq!(late_refused, 0, "writes refused during the etcd outage");
    assert!(late_acked > 0, "the writer kept committing");
    for c in &lab.controllers {
        let metrics = c.metrics().await?;
        assert!(
            !metrics.contains("switchyard_local_fences_total"),
            "{} fenced during an etcd outage",
            c.id()
        );
        // ctl-a answers everyone. The fixture restarts it on a new port,
        // which it cannot register without etcd, so ctl-b and ctl-c may no
        // longer find it (a configured listen address does not move): then
        // not every controller answers them, and they count as isolated —
        // which fences nothing, as nothing in their regions is writable.
        let isolated = c.metric("switchyard_isolated").await?;
        assert!(
            isolated == Some(0.0) || (c.id() != "ctl-a" && c.log().contains("(ctl-a silent")),
            "{}: isolated {isolated:?}",
            c.id()
        );
        assert!(
            c.log().contains("etcd outage: failing static"),
            "{} never saw the etcd outage",
            c.id()
        );
    }
    // The restarted ctl-a saw the outage for what it was, too.
    let seen = lab.controllers[0]
        .log()
        .matches("etcd outage: failing static")
        .count();
    assert!(
        seen >= 2,
        "ctl-a saw the etcd outage {seen} times across its restart"
    );
    // etcd returns: still m0, nothing journaled.
    lab.etcd.restart(0).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(lab.primary().await?.as_deref(), Some("m0"));
    let failovers = lab
        .journal()
        .await?
        .into_iter()
        .filter(|e| e["action"]["kind"] == "failover")
        .count();
    assert_eq!(failovers, 0);
    assert_eq!(lab.db.variable(0, "read_only").await?, "0");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_cut_off_from_etcd_alone_fences_then_the_leader_lifts_the_fence()
-> anyhow::Result<()> {
    let mut lab = SplitLab::start().await?;
    let result = etcd_alone(&mut lab).await;
    if result.is_err() {
        lab.dump_logs();
    }
    result
}

async fn etcd_alone(lab: &mut SplitLab) -> anyhow::Result<()> {
    let _logs = lab.logs_on_panic();
    let sampler = Sampler::start(&lab.db, SAMPLE_EVERY);
    let writer = Writer::start(&lab.db, 0);
    let cut = Instant::now();
    lab.cut_etcd_from(0)?;
    wait_for("ctl-a to fence m0", Duration::from_secs(20), || async {
        match lab.db.variable(0, "read_only").await {
            Ok(v) if v == "1" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await?;
    let fenced_after = cut.elapsed();
    assert!(
        lab.controllers[0].log().contains("cut off from etcd alone"),
        "ctl-a's reason names the cut"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    lab.restore_etcd_to(0)?;
    let restored = Instant::now();
    wait_for(
        "the leader to lift the fence",
        Duration::from_secs(30),
        || async {
            match lab.db.variable(0, "read_only").await {
                Ok(v) if v == "0" => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await?;
    let lifted_after = restored.elapsed();
    eprintln!(
        "etcd cut → m0 fenced in {fenced_after:?}; etcd back → fence lifted in {lifted_after:?}"
    );
    // The writer commits again.
    let before = writer.attempts().iter().filter(|a| a.acked).count();
    wait_for(
        "the writer to commit again",
        Duration::from_secs(10),
        || async {
            let now = writer.attempts().iter().filter(|a| a.acked).count();
            if now > before {
                Ok(())
            } else {
                Err(format!("{now} acked"))
            }
        },
    )
    .await?;
    // Never two writable members, and nobody was promoted.
    let samples = sampler.samples();
    split_lab::assert_mostly_read(&samples.iter().collect::<Vec<_>>());
    for s in &samples {
        assert_ne!(s.read_only[1], Some(false), "m1 writable");
        assert_ne!(s.read_only[2], Some(false), "m2 writable");
    }
    assert_eq!(lab.primary().await?.as_deref(), Some("m0"));
    // The lift's outcome is written after its step: read_only off and
    // the writer back do not mean the intent is closed yet (a busy
    // machine once read it still pending).
    let kinds = wait_for(
        "the unfence intent to be done",
        Duration::from_secs(10),
        || async {
            let journal = lab.journal().await.map_err(|e| e.to_string())?;
            let kinds: Vec<_> = journal
                .iter()
                .map(|e| (e["action"]["kind"].to_string(), e["status"].to_string()))
                .collect();
            if kinds.contains(&("\"unfence\"".to_string(), "\"done\"".to_string())) {
                Ok(kinds)
            } else {
                Err(format!("{kinds:?}"))
            }
        },
    )
    .await?;
    assert!(!kinds.iter().any(|(k, _)| k == "\"failover\""), "{kinds:?}");
    let history = serde_json::to_string(&lab.history().await?)?;
    assert!(
        history.contains("isolation fence orders/m0: fenced"),
        "{history}"
    );
    // The fence record is gone with the fence.
    let record: Option<serde_json::Value> = lab
        .store
        .get_json(&lab.store.keys().fence("orders", "m0"))
        .await?;
    assert!(record.is_none(), "{record:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_asymmetric_partition_fences_the_primary_before_the_etcd_side_promotes()
-> anyhow::Result<()> {
    let mut lab = SplitLab::start().await?;
    let result = asymmetric(&mut lab).await;
    if result.is_err() {
        lab.dump_logs();
    }
    result
}

/// The same cut with the shortest primary lease (2 s, issue 12): the gate
/// opens as soon as etcd ends m0's lease, and ctl-a must have fenced m0
/// within 1.5 s of its last renewal — still before anyone is promoted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_shortest_primary_lease_an_asymmetric_partition_still_fences_first()
-> anyhow::Result<()> {
    let mut lab = SplitLab::start_with(Settings {
        primary_ttl_s: 2,
        ..Settings::default()
    })
    .await?;
    let result = asymmetric(&mut lab).await;
    if result.is_err() {
        lab.dump_logs();
    }
    result
}

async fn asymmetric(lab: &mut SplitLab) -> anyhow::Result<()> {
    let _logs = lab.logs_on_panic();
    let sampler = Sampler::start(&lab.db, SAMPLE_FAST);
    // The partition forms in steps, so that what ctl-a sees when it loses
    // etcd is exactly the asymmetric case: a and b lose c (both ways) and
    // see it silent; b loses etcd (and, with a still on etcd, isolates
    // itself: its replica m1 is read-only anyway); then a loses etcd. Now
    // a reaches b, a majority, and no peer it reaches says it has etcd,
    // while c keeps etcd and leads.
    for i in [0, 1] {
        lab.cut_link(i, 2)?;
    }
    lab.wait_peers(0, 1).await?;
    lab.wait_peers(1, 1).await?;
    lab.cut_etcd_from(1)?;
    wait_for(
        "ctl-b to see itself cut off",
        Duration::from_secs(20),
        || async {
            match lab.controllers[1].metric("switchyard_isolated").await {
                Ok(Some(1.0)) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await?;
    // ctl-a's next pings of ctl-b hear that it has no etcd.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        lab.controllers[0].metric("switchyard_isolated").await?,
        Some(0.0),
        "ctl-a still reaches etcd"
    );
    let cut = Instant::now();
    lab.cut_etcd_from(0)?;
    // What the probes of b and c report: m0 down (c cannot reach it).
    lab.fleet_bc
        .set_all(&split_lab::db_target(0), &["b", "c"], false);

    // c leads (the only one with etcd) and promotes the one member it
    // reaches, m2.
    let new_primary = wait_for(
        "the etcd side to record a new primary",
        Duration::from_secs(60),
        || async {
            match lab.primary().await.map_err(|e| e.to_string())? {
                Some(p) if p != "m0" => Ok(p),
                other => Err(format!("primary is {other:?}")),
            }
        },
    )
    .await?;
    assert_eq!(new_primary, "m2", "only m2 is reachable from c");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let samples = sampler.samples();
    drop(sampler);

    one_writer_fence_first(&samples, cut, "asymmetric cut");
    // ctl-a knew why: a majority without etcd is not an etcd outage.
    let log_a = lab.controllers[0].log();
    assert!(log_a.contains("ISOLATED"), "ctl-a never isolated itself");
    assert!(log_a.contains("ctl-c silent"), "ctl-a's reason names ctl-c");
    assert!(
        !log_a.contains("etcd outage: failing static"),
        "ctl-a took the cut for an etcd outage"
    );
    // One failover, through the gate, on m0's expired lease.
    one_failover_through_the_gate(
        lab,
        "promotion gate open: primary lease of m0 (held by ctl-a in a) expired",
    )
    .await?;
    // ctl-c takes m2's lease: the new primary is vouched for.
    lab.wait_lease_held("ctl-c", "m2").await?;
    let status = cli(lab, &["status"])?;
    assert!(
        status.contains("primary m2 (epoch 2), lease held by ctl-c in c for m2"),
        "{status}"
    );
    assert!(!status.contains("NO LIVE CONTROLLER"), "{status}");

    // Region c's controller dies: nobody there could fence m2 now, and
    // status says so next to the database. Status is asked of the
    // controllers' operator API, so one of them must reach etcd: b gets
    // its link back first.
    lab.restore_etcd_to(1)?;
    lab.controllers[2].kill();
    let status = wait_for(
        "status to say region c has no live controller",
        Duration::from_secs(30),
        || async {
            let s = cli(lab, &["status"]).map_err(|e| e.to_string())?;
            if s.contains("NO LIVE CONTROLLER IN REGION c") {
                Ok(s)
            } else {
                Err(s)
            }
        },
    )
    .await?;
    assert!(
        status.contains("primary m2 (epoch 2), no primary lease"),
        "{status}"
    );
    assert!(status.contains("ctl-c: registered at"), "{status}");
    assert!(
        status.contains("nobody can fence m2 if region c is cut off"),
        "{status}"
    );
    Ok(())
}

/// Never two writable members in one sample (with every member read in
/// most), and m0 read-only before anyone else became writable. `what`
/// names the fault in the printed timeline.
fn one_writer_fence_first(samples: &[Sample], cut: Instant, what: &str) -> Timeline {
    split_lab::assert_mostly_read(&samples.iter().collect::<Vec<_>>());
    for s in samples {
        let writable = s.read_only.iter().filter(|r| **r == Some(false)).count();
        assert!(
            writable <= 1,
            "two writable members at +{:?}: {:?}",
            s.at.saturating_duration_since(cut),
            s.read_only
        );
    }
    let t = timeline(samples, cut).expect("both the fence and the promotion were sampled");
    eprintln!(
        "{what} → m0 fenced seen {:?}; → new primary seen {:?}",
        t.fenced, t.promoted
    );
    assert!(
        t.fenced < t.promoted,
        "m0 must be read-only before anyone is promoted: {t:?}"
    );
    t
}

/// Exactly one failover was journaled, it is done, and its reasons say the
/// promotion gate opened as `opened`.
async fn one_failover_through_the_gate(lab: &SplitLab, opened: &str) -> anyhow::Result<()> {
    let journal = lab.journal().await?;
    let failovers: Vec<_> = journal
        .iter()
        .filter(|e| e["action"]["kind"] == "failover")
        .collect();
    assert_eq!(failovers.len(), 1, "{journal:#?}");
    assert_eq!(failovers[0]["status"], "done");
    let reasons = failovers[0]["reasons"].to_string();
    assert!(reasons.contains(opened), "{reasons}");
    Ok(())
}
