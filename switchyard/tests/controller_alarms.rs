//! Alarms are visible: when every region fails at once the leader keeps the
//! weights (fail-open) and raises an alarm that `status` shows, history
//! records once, and `switchyard_alarm{kind, subject}` exports; a new
//! leader takes the standing alarm over without raising it again; when the
//! regions come back it is cleared the same way, once.

use crate::common;

use std::time::Duration;

use common::{Cluster, REGIONS, target};
use switchyard_tests::wait::wait_for;

/// `switchyard ARGS`'s stdout; it must succeed.
fn cli(cl: &Cluster, args: &[&str]) -> String {
    let (code, out, err) = cl.cli(args);
    assert_eq!(code, 0, "switchyard {args:?}: {err}");
    out
}

/// Waits until `status` shows no alarm.
async fn wait_no_alarm(cl: &Cluster, what: &str, within: Duration) -> anyhow::Result<()> {
    wait_for(what, within, || async {
        let k = alarm_kinds(cl);
        if k.is_empty() {
            Ok(())
        } else {
            Err(format!("{k:?}"))
        }
    })
    .await
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
    let mut cl = Cluster::start(1).await?;
    let fleet = cl.all_up_fleet();
    let leader = cl.wait_leader(None, Duration::from_secs(30)).await?;
    wait_no_alarm(&cl, "no alarm while healthy", Duration::from_secs(20)).await?;

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
    let first = cl.leader().await.unwrap_or(leader);
    assert!(
        alarm_gauge(&cl, first, 1.0).await?,
        "the leader does not export it"
    );
    assert_eq!(cl.weights().values().filter(|w| **w == 0).count(), 0);

    // The leader goes; the next one exports the standing alarm and does
    // not raise it again.
    cl.controllers[first]
        .terminate(Duration::from_secs(10))
        .await;
    let leader_now = cl.wait_leader(Some(first), Duration::from_secs(30)).await?;
    wait_for(
        "the new leader to export the alarm",
        Duration::from_secs(30),
        || async {
            match alarm_gauge(&cl, leader_now, 1.0).await {
                Ok(true) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let history = cli(&cl, &["history", "--limit", "100"]);
    assert_eq!(
        history.matches("alarm raised: fail_open").count(),
        1,
        "raised again by the new leader:\n{history}"
    );

    // Back (failback is manual in this cluster: approve it for any region
    // evacuated on the way down): every alarm cleared, each once.
    for r in REGIONS {
        fleet.set_all(&target(r), &REGIONS, true);
    }
    wait_for("every alarm cleared", Duration::from_secs(90), || async {
        // Approved again each time: a region becomes eligible only once
        // it has been seen healthy for a while.
        for r in REGIONS {
            let _ = cl.cli(&["failback", "--region", r]);
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
    assert!(
        alarm_gauge(&cl, leader_now, 0.0).await?,
        "not cleared on the gauge"
    );
    Ok(())
}

/// True when controller `i` exports the fail-open alarm at `value`.
async fn alarm_gauge(cl: &Cluster, i: usize, value: f64) -> anyhow::Result<bool> {
    let page = cl.controllers[i].metrics().await?;
    Ok(page.lines().any(|l| {
        l.starts_with("switchyard_alarm{")
            && l.contains("kind=\"fail_open\"")
            && l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) == Some(value)
    }))
}
