//! An automatic database failover end to end: three controller processes on
//! a real etcd, a real MariaDB primary and two replicas, probes (stand-ins)
//! reporting the primary down after it is killed with -9. The leader plans
//! one failover, the executor runs it through the MariaDB adapter once, and
//! the store records the new primary. A primary that hangs (alive, not
//! refusing connections) while its region still vouches for it is not
//! replaced: the promotion gate holds the failover.

use crate::common;
use crate::traffic_support;

use std::time::Duration;

use common::orders::{
    all_up, cluster_for, cluster_with, db_state, db_target, the_one_failover, wait_failed_over,
    wait_lease, wait_primary_recorded,
};
use common::{Backend, Cluster, REGIONS};
use switchyard_controller::store::Store;
use switchyard_tests::MariaDbTopology;
use switchyard_tests::wait::wait_for;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_primary_its_region_still_vouches_for_is_not_replaced() -> anyhow::Result<()> {
    let mut db = MariaDbTopology::start(2)
        .await
        .map_err(|e| e.context("starting the MariaDB topology"))?;
    // A gate wait is an alarm after 3 s here (1 min by default).
    let cl = cluster_with(&db, Backend::File, "[policy]\ngate_alarm_after = \"3s\"\n").await?;
    let result = hung_primary(&cl, &mut db).await;
    if result.is_err() {
        for c in &cl.controllers {
            eprintln!("--- {} log ---\n{}", c.id(), c.log());
        }
    }
    result
}

async fn hung_primary(cl: &Cluster, db: &mut MariaDbTopology) -> anyhow::Result<()> {
    let fleet = all_up(cl);
    let store = Store::connect(&cl.etcd.endpoints(), &cl.cluster).await?;
    wait_lease(&store, "ctl-a", "m0").await?;
    // m0 stops answering without refusing connections (SIGSTOP): alive as
    // far as anyone can tell, so it may still hold sessions that write.
    db.pause(0);
    fleet.set_all(&db_target(0), &REGIONS, false);
    let leader = cl.wait_leader(None, Duration::from_secs(20)).await?;
    // The leader plans the failover and the gate holds it: ctl-a cannot
    // fence m0, so it keeps renewing its lease.
    wait_for(
        "the gate to hold a failover",
        Duration::from_secs(30),
        || async {
            match cl.controllers[leader]
                .metric("switchyard_promotion_gate_waits_total{database=\"orders\"}")
                .await
            {
                Ok(Some(n)) if n >= 1.0 => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await?;
    // An operator's unforced failover waits at the same gate, and the CLI
    // says why and what to do (as JSON here: one object, exit code 2).
    let out = cl
        .command()
        .args([
            "failover",
            "--database",
            "orders",
            "--reason",
            "primary m0 hung",
            "--wait",
            "3",
            "--output",
            "json",
        ])
        .arg("--config")
        .arg(&cl.config)
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    let o: serde_json::Value = serde_json::from_str(&stdout)?;
    assert_eq!(o["status"], "waiting_at_gate", "{o}");
    assert!(
        o["gate"]
            .as_str()
            .is_some_and(|g| g.contains("held by ctl-a in a")),
        "{o}"
    );
    let message = o["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("waits at the promotion gate") && message.contains("--force"),
        "{o}"
    );
    // The long wait is an alarm in status (naming the override) and in
    // history, raised once.
    wait_for("the gate-wait alarm", Duration::from_secs(30), || async {
        let v: serde_json::Value = serde_json::from_str(&cl.cli(&["status", "--output", "json"]).1)
            .map_err(|e| e.to_string())?;
        let alarms = v["alarms"].as_array().cloned().unwrap_or_default();
        match alarms
            .iter()
            .find(|a| a["kind"] == "gate_wait" && a["subject"] == "orders")
        {
            Some(a)
                if a["message"].as_str().is_some_and(|m| {
                    m.contains("switchyard failover --database orders --force")
                }) =>
            {
                Ok(())
            }
            _ => Err(format!("{alarms:?}")),
        }
    })
    .await?;
    // `plan` shows the held failover and the alarm.
    let plan: serde_json::Value = serde_json::from_str(&cl.cli(&["plan", "--output", "json"]).1)?;
    assert!(
        plan["gate_holds"]
            .as_array()
            .is_some_and(|h| h.iter().any(|x| x["database"] == "orders")),
        "{plan}"
    );
    assert!(
        plan["alarms"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["kind"] == "gate_wait")),
        "{plan}"
    );
    wait_for(
        "the gate-wait alarm in history",
        Duration::from_secs(10),
        || async {
            let history = cl.cli(&["history", "--limit", "200"]).1;
            match history.matches("alarm raised: gate_wait").count() {
                1 => Ok(()),
                n => Err(format!("{n} times: {history}")),
            }
        },
    )
    .await?;
    // Raised once and standing: a few seconds later, still once, never
    // cleared while the gate stays shut.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let history = cl.cli(&["history", "--limit", "200"]).1;
    assert_eq!(
        history.matches("alarm raised: gate_wait").count(),
        1,
        "{history}"
    );
    assert!(!history.contains("alarm cleared: gate_wait"), "{history}");
    // Past ctl-a's detection time (2 × the 5 s check), its failed fence
    // keeps the lease: it says so.
    wait_for(
        "ctl-a to keep the lease of an unreadable primary",
        Duration::from_secs(60),
        || async {
            if cl.controllers[0]
                .log()
                .contains("unreadable but maybe alive")
            {
                Ok(())
            } else {
                Err("not yet".to_string())
            }
        },
    )
    .await?;
    // Two lease TTLs later (a lease given up would have expired and opened
    // the gate by then), ctl-a still holds it and nobody was promoted.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let lease: Option<serde_json::Value> = store
        .get_json(&store.keys().primary_lease("orders"))
        .await?;
    assert_eq!(
        lease.as_ref().map(|l| l["holder"].clone()),
        Some(serde_json::json!("ctl-a")),
        "{lease:?}"
    );
    db.resume(0);
    let journal = cl.journal().await?;
    assert!(
        !journal.iter().any(|e| e["action"]["kind"] == "failover"),
        "{journal:#?}"
    );
    assert_eq!(
        db_state(&store).await.map_err(anyhow::Error::msg)?["primary"],
        "m0"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_primary_is_failed_over_once() -> anyhow::Result<()> {
    let mut db = MariaDbTopology::start(2)
        .await
        .map_err(|e| e.context("starting the MariaDB topology"))?;
    let cl = cluster_for(&db).await?;
    let result = scenario(&cl, &mut db).await;
    if result.is_err() {
        // What the controllers saw, for whoever reads a failed run.
        for c in &cl.controllers {
            eprintln!("--- {} log ---\n{}", c.id(), c.log());
        }
    }
    result
}

async fn scenario(cl: &Cluster, db: &mut MariaDbTopology) -> anyhow::Result<()> {
    let fleet = all_up(cl);
    cl.wait_leader(None, Duration::from_secs(20)).await?;

    // The leader discovers and records the primary.
    let store = Store::connect(&cl.etcd.endpoints(), &cl.cluster).await?;
    wait_primary_recorded(&store).await?;

    // The controller of the primary's region holds its primary lease.
    wait_lease(&store, "ctl-a", "m0").await?;

    db.exec(0, "CREATE DATABASE app").await?;
    db.exec(0, "CREATE TABLE app.t (id INT PRIMARY KEY)")
        .await?;
    db.exec(0, "INSERT INTO app.t VALUES (1), (2), (3)").await?;
    // Replication is asynchronous: a row not yet on any replica when the
    // primary dies is lost by design. This test is about the failover, so
    // the rows reach both replicas first.
    let pos = db.variable(0, "gtid_binlog_pos").await?;
    for r in 1..3 {
        let waited: Option<i64> = db
            .query_first(r, &format!("SELECT MASTER_GTID_WAIT('{pos}', 30)"))
            .await?;
        assert_eq!(waited, Some(0), "replica m{r} did not receive the rows");
    }

    db.kill9(0);
    fleet.set_all(&db_target(0), &REGIONS, false);

    let state = wait_failed_over(&store).await?;
    let new_primary: usize = state["primary"]
        .as_str()
        .and_then(|p| p.strip_prefix('m'))
        .and_then(|n| n.parse().ok())
        .expect("member id");
    assert_eq!(state["epoch"], 2);

    // The new primary takes writes and has every row; the other replica follows it.
    assert_eq!(db.variable(new_primary, "read_only").await?, "0");
    db.exec(new_primary, "INSERT INTO app.t VALUES (4)").await?;
    let other = 3 - new_primary;
    let pos = db.variable(new_primary, "gtid_binlog_pos").await?;
    let waited: Option<i64> = db
        .query_first(other, &format!("SELECT MASTER_GTID_WAIT('{pos}', 30)"))
        .await?;
    assert_eq!(waited, Some(0), "the other replica follows the new primary");
    let n: Option<i64> = db.query_first(other, "SELECT COUNT(*) FROM app.t").await?;
    assert_eq!(n, Some(4));

    // Exactly one failover was journaled and done.
    let failover = the_one_failover(cl).await?;
    // It waited for the dead primary's lease: ctl-a stopped renewing it once
    // it could not read m0 itself, and the gate opened when it expired.
    let reasons = failover["reasons"].to_string();
    assert!(
        reasons.contains("promotion gate open: primary lease of m0 (held by ctl-a in a) expired"),
        "{reasons}"
    );

    // An operator's planned switchover back to the other replica, through
    // the CLI and the leader.
    let out = cl
        .command()
        .args([
            "switchover",
            "--database",
            "orders",
            "--reason",
            "planned move back",
            "--to",
            &format!("m{other}"),
            "--wait",
            "60",
        ])
        .arg("--config")
        .arg(&cl.config)
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("done: switched over to m{other}")),
        "{stdout}"
    );
    // It ends with its cost: how long no member took writes, measured
    // from the fence to the new primary's read-only off; the journal and
    // a metric keep it too.
    let window_ms: u64 = stdout
        .split("writes unavailable for ")
        .nth(1)
        .and_then(|rest| rest.split(" ms").next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no write-unavailable window: {stdout}"))?;
    assert!(window_ms > 0 && window_ms < 60_000, "{stdout}");
    let switchovers: Vec<serde_json::Value> = cl
        .journal()
        .await?
        .into_iter()
        .filter(|e| e["action"]["kind"] == "switchover")
        .collect();
    assert_eq!(
        switchovers[0]["write_unavailable_ms"],
        serde_json::json!(window_ms),
        "{switchovers:#?}"
    );
    let leader = cl.wait_leader(None, Duration::from_secs(20)).await?;
    let gauge = cl.controllers[leader]
        .metric("switchyard_last_write_unavailable_seconds{database=\"orders\"}")
        .await?;
    // The same window (the text rounds down to whole milliseconds).
    assert!(
        gauge.is_some_and(|g| (g * 1000.0 - window_ms as f64).abs() <= 1.0),
        "{gauge:?} vs {window_ms} ms"
    );
    assert_eq!(db.variable(other, "read_only").await?, "0");
    assert_eq!(db.variable(new_primary, "read_only").await?, "1");

    // A forced manual failover skips the promotion gate (the current
    // primary's region holds a live lease for it), and history says so.
    let out = cl
        .command()
        .args([
            "failover",
            "--database",
            "orders",
            "--to",
            &format!("m{new_primary}"),
            "--force",
            "--reason",
            "m{new_primary} known good",
            "--wait",
            "60",
        ])
        .arg("--config")
        .arg(&cl.config)
        .output()?;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let history = cl
        .command()
        .args(["history", "--output", "json"])
        .arg("--config")
        .arg(&cl.config)
        .output()?;
    let history = String::from_utf8_lossy(&history.stdout);
    assert!(history.contains("forced: gate skipped"), "{history}");

    let out = cl
        .command()
        .args(["failover", "--database", "nope", "--reason", "typo"])
        .arg("--config")
        .arg(&cl.config)
        .output()?;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("database \"nope\" is not declared; declared databases: orders")
    );
    Ok(())
}

/// An account that bypasses `read_only` (MariaDB's `READ_ONLY ADMIN`) can
/// write through any fence: the leader finds it and `status` names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_names_accounts_that_bypass_read_only() -> anyhow::Result<()> {
    let db = MariaDbTopology::start(2)
        .await
        .map_err(|e| e.context("starting the MariaDB topology"))?;
    db.exec(0, "CREATE USER 'ops'@'%' IDENTIFIED BY 'ops-pw'")
        .await?;
    db.exec(0, "GRANT READ_ONLY ADMIN, INSERT ON *.* TO 'ops'@'%'")
        .await?;
    let cl = cluster_for(&db).await?;
    let _fleet = all_up(&cl);
    let status = || {
        cl.command()
            .arg("status")
            .arg("--config")
            .arg(&cl.config)
            .output()
    };
    let r = wait_for(
        "status to name the account",
        Duration::from_secs(40),
        || async {
            let out = status().map_err(|e| e.to_string())?;
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.lines()
                .find(|l| {
                    l.contains("m0: accounts that bypass read_only")
                        && l.contains("'ops'@'%' (READ_ONLY ADMIN)")
                })
                .map(|_| ())
                .ok_or(text)
        },
    )
    .await;
    if r.is_err() {
        for c in &cl.controllers {
            eprintln!("--- {} log ---\n{}", c.id(), c.log());
        }
    }
    r?;
    // The same in JSON, for tools.
    let out = cl
        .command()
        .args(["status", "--output", "json", "--config"])
        .arg(&cl.config)
        .output()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert!(v["bypass"].to_string().contains("READ_ONLY ADMIN"), "{v}");
    Ok(())
}

const WRITER: &str = "orders-writer.example.test.";

/// What each controller's DNS server answers for the writer record.
/// Where the writer record is read from.
enum WriterView<'a> {
    /// `dig` against every controller's embedded DNS server.
    Embedded,
    /// `ListResourceRecordSets` on moto.
    Route53 {
        api: &'a switchyard_tests::Route53Api,
        zone: &'a str,
    },
}

/// The writer record's A value(s), from every place that serves it.
async fn writer_now(cl: &Cluster, view: &WriterView<'_>) -> Result<Vec<String>, String> {
    match view {
        WriterView::Embedded => writer_answers(cl),
        WriterView::Route53 { api, zone } => {
            let out = api
                .client()
                .list_resource_record_sets()
                .hosted_zone_id(*zone)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let values: Vec<String> = out
                .resource_record_sets()
                .iter()
                .filter(|r| r.name() == WRITER)
                .flat_map(|r| r.resource_records().iter().map(|v| v.value().to_string()))
                .collect();
            Ok(if values.is_empty() {
                vec![String::new()]
            } else {
                values
            })
        }
    }
}

fn writer_answers(cl: &Cluster) -> Result<Vec<String>, String> {
    cl.controllers
        .iter()
        .map(|c| {
            let dns = c.dns().ok_or("no DNS server")?;
            let out = std::process::Command::new("dig")
                .arg(format!("@{}", dns.ip()))
                .args([
                    "-p",
                    &dns.port().to_string(),
                    "+short",
                    "+tries=1",
                    "+time=2",
                ])
                .args([WRITER, "A"])
                .output()
                .map_err(|e| e.to_string())?;
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        })
        .collect()
}

/// A database's writer record follows its primary through a real failover
/// (kill -9): before it every controller's embedded DNS server answers the
/// old primary's address, after it the new primary's — the leader's
/// through the failover's writer step, the others' through their watch of
/// the recorded primary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_record_follows_the_primary_in_every_dns_server() -> anyhow::Result<()> {
    let mut db = MariaDbTopology::start_on_loopback_hosts(2)
        .await
        .map_err(|e| e.context("starting the MariaDB topology"))?;
    let cl = cluster_with(
        &db,
        Backend::Embedded,
        &format!("writer_record = \"{WRITER}\"\n"),
    )
    .await?;
    let result = writer_scenario(&cl, &mut db, &WriterView::Embedded).await;
    if result.is_err() {
        for c in &cl.controllers {
            eprintln!("--- {} log ---\n{}", c.id(), c.log());
        }
    }
    result
}

/// The same through Route 53 (moto): the record read back with
/// `ListResourceRecordSets` before and after the failover.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_record_follows_the_primary_in_route53() -> anyhow::Result<()> {
    let api = switchyard_tests::Route53Api::start().await?;
    let zone = traffic_support::create_zone(&api, "example.test.").await?;
    let mut db = MariaDbTopology::start_on_loopback_hosts(2)
        .await
        .map_err(|e| e.context("starting the MariaDB topology"))?;
    let backend = Backend::Route53 {
        endpoint: api.endpoint().to_string(),
        zone_id: zone.clone(),
    };
    let cl = cluster_with(&db, backend, &format!("writer_record = \"{WRITER}\"\n")).await?;
    let view = WriterView::Route53 {
        api: &api,
        zone: &zone,
    };
    let result = writer_scenario(&cl, &mut db, &view).await;
    if result.is_err() {
        for c in &cl.controllers {
            eprintln!("--- {} log ---\n{}", c.id(), c.log());
        }
    }
    result
}

async fn writer_scenario(
    cl: &Cluster,
    db: &mut MariaDbTopology,
    view: &WriterView<'_>,
) -> anyhow::Result<()> {
    let fleet = all_up(cl);
    let store = Store::connect(&cl.etcd.endpoints(), &cl.cluster).await?;
    wait_for(
        "m0 to be the recorded primary",
        Duration::from_secs(30),
        || async {
            let v = db_state(&store).await?;
            (v["primary"] == "m0").then_some(()).ok_or(format!("{v}"))
        },
    )
    .await?;
    wait_for(
        "every server to answer m0",
        Duration::from_secs(20),
        || async {
            let a = writer_now(cl, view).await?;
            a.iter()
                .all(|x| x == "127.0.0.1")
                .then_some(())
                .ok_or(format!("{a:?}"))
        },
    )
    .await?;
    wait_lease(&store, "ctl-a", "m0").await?;

    db.kill9(0);
    fleet.set_all(&db_target(0), &REGIONS, false);
    let new = wait_for("a new primary", Duration::from_secs(60), || async {
        let v = db_state(&store).await?;
        match v["primary"].as_str() {
            Some(p) if p != "m0" => Ok(p.to_string()),
            _ => Err(format!("{v}")),
        }
    })
    .await?;
    let index: usize = new.trim_start_matches('m').parse()?;
    let ip = format!("127.0.0.{}", index + 1);
    wait_for(
        "every server to answer the new primary",
        Duration::from_secs(20),
        || async {
            let a = writer_now(cl, view).await?;
            a.iter()
                .all(|x| *x == ip)
                .then_some(())
                .ok_or(format!("{a:?}"))
        },
    )
    .await?;
    let journal = cl.journal().await?;
    let failover = journal
        .iter()
        .find(|e| e["action"]["kind"] == "failover" && e["status"] == "done")
        .cloned()
        .unwrap_or_default();
    let outcome = failover["outcome"].as_str().unwrap_or_default();
    anyhow::ensure!(
        outcome.contains(&format!("writer record {WRITER} now names {new}")),
        "the failover moved the writer record as its own step: {outcome}"
    );
    Ok(())
}
