//! Alarms are visible: when every region fails at once the leader keeps the
//! weights (fail-open) and raises an alarm that `status` shows, history
//! records once, and `switchyard_alarm{kind, subject}` exports; when the
//! regions come back it is cleared the same way, once.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Cluster, REGIONS, target};
use switchyard_tests::wait::wait_for;

fn cli(cl: &Cluster, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(args)
        .arg("--config")
        .arg(&cl.config)
        .output()
        .expect("run switchyard");
    assert!(
        out.status.success(),
        "switchyard {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The kinds of the alarms `status --output json` shows.
fn alarm_kinds(cl: &Cluster) -> Vec<String> {
    let v: serde_json::Value =
        serde_json::from_str(&cli(cl, &["status", "--output", "json"])).expect("status JSON");
    v["alarms"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x["kind"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fail_open_alarm_is_shown_recorded_once_and_cleared() -> anyhow::Result<()> {
    let cl = Cluster::start(1).await?;
    let fleet = cl.all_up_fleet();
    let leader = cl.wait_leader(None, Duration::from_secs(30)).await?;
    wait_for(
        "no alarm while healthy",
        Duration::from_secs(20),
        || async {
            let k = alarm_kinds(&cl);
            if k.is_empty() {
                Ok(())
            } else {
                Err(format!("{k:?}"))
            }
        },
    )
    .await?;

    // Every region down at once: a global outage, weights kept.
    for r in REGIONS {
        fleet.set_all(&target(r), &REGIONS, false);
    }
    wait_for("the fail-open alarm", Duration::from_secs(60), || async {
        let k = alarm_kinds(&cl);
        if k.iter().any(|k| k == "fail_open") {
            Ok(())
        } else {
            Err(format!("{k:?}"))
        }
    })
    .await?;
    let text = cli(&cl, &["status"]);
    assert!(
        text.contains("ALARMS") && text.contains("fail_open"),
        "{text}"
    );
    // Standing for a while is still one alarm, raised once.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let history = cli(&cl, &["history", "--limit", "100"]);
    assert_eq!(
        history.matches("alarm raised: fail_open").count(),
        1,
        "{history}"
    );
    let leader_now = cl.leader().await.unwrap_or(leader);
    let page = cl.controllers[leader_now].metrics().await?;
    assert!(
        page.lines().any(|l| l.starts_with("switchyard_alarm{")
            && l.contains("kind=\"fail_open\"")
            && l.ends_with(" 1")),
        "{page}"
    );
    assert_eq!(cl.weights().values().filter(|w| **w == 0).count(), 0);

    // Back (failback is manual in this cluster: approve it for any region
    // evacuated on the way down): every alarm cleared, each once.
    for r in REGIONS {
        fleet.set_all(&target(r), &REGIONS, true);
    }
    wait_for("every alarm cleared", Duration::from_secs(90), || async {
        for r in REGIONS {
            let _ = Command::new(env!("CARGO_BIN_EXE_switchyard"))
                .args(["failback", "--region", r, "--config"])
                .arg(&cl.config)
                .output();
        }
        let k = alarm_kinds(&cl);
        if k.is_empty() {
            Ok(())
        } else {
            Err(format!("{k:?}"))
        }
    })
    .await?;
    let history = cli(&cl, &["history", "--limit", "200"]);
    assert_eq!(
        history.matches("alarm cleared: fail_open").count(),
        1,
        "{history}"
    );
    for line in history.lines().filter(|l| l.contains("alarm raised: ")) {
        let what = line.split("alarm raised: ").nth(1).unwrap_or_default();
        let key: String = what.split(':').next().unwrap_or_default().to_string();
        assert_eq!(
            history.matches(&format!("alarm raised: {key}:")).count(),
            history.matches(&format!("alarm cleared: {key}:")).count(),
            "{key} raised and cleared a different number of times:\n{history}"
        );
    }
    let page = cl.controllers[leader_now].metrics().await?;
    assert!(
        page.lines().any(|l| l.starts_with("switchyard_alarm{")
            && l.contains("kind=\"fail_open\"")
            && l.ends_with(" 0")),
        "{page}"
    );
    Ok(())
}
