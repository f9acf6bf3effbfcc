//! Operator switches through the real CLI against a running cluster: a drain
//! takes a healthy region out of traffic; a pause stops actions but not
//! plans; resume acts; every switch is idempotent and lands in history.

use crate::common;

use std::time::Duration;

use common::{Cluster, REGIONS, target};
use switchyard_tests::wait::wait_for;

fn cli(cl: &Cluster, args: &[&str]) -> (i32, String, String) {
    cl.cli(args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_pause_resume_through_the_cli() -> anyhow::Result<()> {
    let cl = Cluster::start(1).await?;
    let fleet = cl.all_up_fleet();
    cl.wait_leader(None, Duration::from_secs(20)).await?;

    // `watch` prints each history event as it is written (one JSON object
    // per line): the drain below among them.
    let mut watch = cl
        .command()
        .args(["watch", "--output", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let watched = watch.stdout.take().expect("piped stdout");
    let (seen_tx, seen_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(watched)
            .lines()
            .map_while(Result::ok)
        {
            let _ = seen_tx.send(line);
        }
    });
    // The watch is open once a first event could reach it: give it a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let (code, out, _) = cli(&cl, &["drain", "--region", "b"]);
    assert_eq!((code, out.trim()), (0, "region b drained"));
    let drained = (|| {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            let line = seen_rx.recv_timeout(left).ok()?;
            let e: serde_json::Value = serde_json::from_str(&line).ok()?;
            if e["what"] == "region b drained" {
                return Some(e);
            }
        }
        None
    })();
    let _ = watch.kill();
    let _ = watch.wait();
    let drained = drained.expect("watch printed the drain");
    assert_eq!(drained["by"], "fixture-admin", "{drained}");
    wait_for(
        "b drained from traffic",
        Duration::from_secs(20),
        || async {
            match cl.weights().get("b") {
                Some(0) => Ok(()),
                other => Err(format!("b at {other:?}")),
            }
        },
    )
    .await?;
    assert_eq!(cl.calls(), 1);
    let (code, out, _) = cli(&cl, &["drain", "--region", "b"]);
    assert_eq!(
        (code, out.trim()),
        (0, "unchanged: region b drained already")
    );

    let (code, _, err) = cli(&cl, &["drain", "--region", "mars"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("region \"mars\" is not declared; declared regions: a, b, c"),
        "{err}"
    );

    let (code, out, _) = cli(&cl, &["pause"]);
    assert_eq!((code, out.trim()), (0, "automation paused"));
    // Wait until the leader has read the switch, then make a region fail.
    wait_for(
        "the leader to see the pause",
        Duration::from_secs(10),
        || async {
            let leader = cl.leader().await.ok_or("no leader".to_string())?;
            match cl.controllers[leader]
                .metric("switchyard_automation_paused")
                .await
            {
                Ok(Some(1.0)) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await?;
    fleet.set_all(&target("a"), &REGIONS, false);
    // Long enough for fall (2 reports at 200 ms) and several leader ticks.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(cl.calls(), 1, "a paused cluster acted");
    let (code, out, _) = cli(&cl, &["status", "--output", "json"]);
    assert_eq!(code, 0);
    let status: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(status["paused"], true);
    assert_eq!(status["drained"], serde_json::json!(["b"]));
    assert!(status["leader"].is_string());
    // `plan` shows what resuming would do, with its reasons.
    wait_for(
        "the paused plan to take a out of traffic",
        Duration::from_secs(20),
        || async {
            let (_, out, err) = cli(&cl, &["plan", "--output", "json"]);
            let p: serde_json::Value =
                serde_json::from_str(&out).map_err(|e| format!("{e}: {out}{err}"))?;
            let evacuates = p["actions"].as_array().is_some_and(|a| {
                a.iter().any(|x| {
                    x["action"] == "set_weights"
                        && x["weights"]["a"] == 0
                        && x["reasons"].as_array().is_some_and(|r| !r.is_empty())
                })
            });
            if p["paused"] == true && evacuates && p["note"].is_null() {
                Ok(())
            } else {
                Err(p.to_string())
            }
        },
    )
    .await?;
    let (code, out, _) = cli(&cl, &["plan"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("PAUSED: the plan is shown, not executed") && out.contains("set weights of"),
        "{out}"
    );

    // Scripts get one JSON object; a repeat says nothing changed.
    let (code, out, _) = cli(&cl, &["pause", "--output", "json"]);
    assert_eq!(code, 0);
    let o: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(
        o,
        serde_json::json!({ "command": "pause", "changed": false, "what": "automation paused" })
    );
    let (code, out, _) = cli(&cl, &["resume"]);
    assert_eq!((code, out.trim()), (0, "automation resumed"));
    wait_for(
        "the resumed leader to evacuate a",
        Duration::from_secs(20),
        || async {
            let w = cl.weights();
            if w.get("a") == Some(&0) {
                Ok(())
            } else {
                Err(format!("{w:?}"))
            }
        },
    )
    .await?;
    let w = cl.weights();
    assert_eq!(w["c"], 300, "c carries everything: {w:?}");
    wait_for("the plan to be done", Duration::from_secs(20), || async {
        let (_, out, _) = cli(&cl, &["plan"]);
        if out.contains("automation running") && out.contains("nothing to do") {
            Ok(())
        } else {
            Err(out)
        }
    })
    .await?;

    let (code, out, _) = cli(&cl, &["history"]);
    assert_eq!(code, 0);
    for expected in [
        "region b drained",
        "automation paused",
        "automation resumed",
        "set_weights",
    ] {
        assert!(out.contains(expected), "history lacks {expected:?}:\n{out}");
    }
    Ok(())
}

/// With one etcd member of three dead, every CLI command still works: a
/// fresh client would send its first calls to the dead member as readily
/// as to a live one (it failed 9 times out of 9 before the CLI kept to the
/// members that answer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_works_with_one_etcd_member_dead() -> anyhow::Result<()> {
    let mut cl = Cluster::start(3).await?;
    cl.wait_leader(None, Duration::from_secs(20)).await?;
    cl.etcd.kill(0);
    cl.etcd.wait_writable().await?;
    for _ in 0..3 {
        let (code, stdout, stderr) = cli(&cl, &["status"]);
        assert_eq!(code, 0, "status with etcd member 0 dead: {stdout}{stderr}");
        let (code, stdout, stderr) = cli(&cl, &["history", "--limit", "5"]);
        assert_eq!(code, 0, "history with etcd member 0 dead: {stdout}{stderr}");
    }
    let (code, stdout, stderr) = cli(&cl, &["pause"]);
    assert_eq!(code, 0, "pause with etcd member 0 dead: {stdout}{stderr}");
    Ok(())
}
