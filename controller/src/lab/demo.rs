//! The lab's demonstration: a region's endpoint fails and traffic leaves it;
//! it heals and traffic ramps back; the database primary dies and a replica
//! takes over. Each step waits for the effect with a deadline and reports
//! how long it took.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::Command;
use std::time::Instant;

use switchyard_labkit::HttpMode;
use switchyard_labkit::wait::wait_for;

use super::config::endpoint_ip;
use super::{Lab, REGIONS, STEP_TIMEOUT, say};

const RECORD: &str = "api.lab.test.";
/// The database's writer record: follows the primary.
const WRITER: &str = "orders-writer.lab.test.";

/// Runs the demonstration on a lab that is up.
pub async fn run(lab: &mut Lab, out: &mut dyn Write) -> anyhow::Result<()> {
    let etcd = lab.etcd().client().await?;
    let leader = wait_for("a leader", STEP_TIMEOUT, || {
        let mut c = etcd.clone();
        async move {
            let r = c
                .leader("/switchyard/lab/leader")
                .await
                .map_err(|e| e.to_string())?;
            r.kv()
                .map(|kv| String::from_utf8_lossy(kv.value()).into_owned())
                .ok_or_else(|| "no leader yet".to_string())
        }
    })
    .await?;
    say(out, &format!("leader elected: controller at {leader}"))?;

    wait_for("traffic at base weights", STEP_TIMEOUT, || async {
        let w = weights(&etcd).await?;
        if REGIONS.iter().all(|r| w.get(*r) == Some(&100)) {
            Ok(())
        } else {
            Err(format!("{w:?}"))
        }
    })
    .await?;
    show_dns(lab, 0, out)?;

    // 1. A region's endpoint starts failing.
    say(out, "failing us-east's endpoint (HTTP 500)")?;
    lab.endpoints[0].set_mode(HttpMode::Failing).await?;
    let t = Instant::now();
    let seen = wait_weight(&etcd, "us-east", 0).await?;
    say(
        out,
        &format!(
            "us-east evacuated after {:.1}s: {:?}",
            t.elapsed().as_secs_f64(),
            seen.last().cloned().unwrap_or_default()
        ),
    )?;
    show_dns(lab, 1, out)?;

    // 2. It heals; traffic ramps back after steady health.
    say(out, "healing us-east's endpoint")?;
    lab.endpoints[0].set_mode(HttpMode::Healthy).await?;
    let t = Instant::now();
    for w in wait_weight(&etcd, "us-east", 100).await? {
        say(out, &format!("  weights now {w:?}"))?;
    }
    say(
        out,
        &format!("us-east failed back in {:.1}s", t.elapsed().as_secs_f64()),
    )?;

    // 3. The database primary dies.
    let primary = wait_for("the orders primary to be known", STEP_TIMEOUT, || async {
        let s = db_state(&etcd).await?;
        s["primary"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("{s}"))
    })
    .await?;
    say(
        out,
        &format!("orders primary: {primary}; killing it with -9"),
    )?;
    lab.db.exec(0, "CREATE DATABASE IF NOT EXISTS shop").await?;
    lab.db
        .exec(
            0,
            "CREATE TABLE IF NOT EXISTS shop.orders (id INT PRIMARY KEY)",
        )
        .await?;
    lab.db.exec(0, "INSERT INTO shop.orders VALUES (1)").await?;
    show_writer(lab, &lab.db.host(0), out).await?;
    lab.db.kill9(0);
    let t = Instant::now();
    let new_primary = wait_for("a new orders primary", STEP_TIMEOUT, || {
        let primary = primary.clone();
        let etcd = etcd.clone();
        async move {
            let s = db_state(&etcd).await?;
            match s["primary"].as_str() {
                Some(p) if p != primary => Ok(p.to_string()),
                _ => Err(format!("{s}")),
            }
        }
    })
    .await?;
    say(
        out,
        &format!(
            "{new_primary} promoted {:.1}s after the kill",
            t.elapsed().as_secs_f64()
        ),
    )?;
    let idx: usize = new_primary
        .rsplit('-')
        .next()
        .and_then(|n| n.parse::<usize>().ok())
        .map_or(1, |n| n - 1);
    lab.db
        .exec(idx, "INSERT INTO shop.orders VALUES (2)")
        .await?;
    say(out, &format!("{new_primary} takes writes"))?;
    show_writer(lab, &lab.db.host(idx), out).await?;

    let history = Command::new(std::env::current_exe()?)
        .args(["history", "--limit", "20", "--config"])
        .arg(&lab.config)
        .output()?;
    say(out, "history:")?;
    out.write_all(&history.stdout)?;
    Ok(())
}

/// Waits until `region`'s weight is `want`; returns every distinct set of
/// weights seen on the way (the ramp), the last one being the goal.
async fn wait_weight(
    etcd: &etcd_client::Client,
    region: &str,
    want: u32,
) -> anyhow::Result<Vec<BTreeMap<String, u32>>> {
    let seen = std::sync::Mutex::new(Vec::<BTreeMap<String, u32>>::new());
    wait_for(
        &format!("{region} at weight {want}"),
        STEP_TIMEOUT,
        || async {
            let w = weights(etcd).await?;
            let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
            if seen.last() != Some(&w) {
                seen.push(w.clone());
            }
            if w.get(region) == Some(&want) {
                Ok(())
            } else {
                Err(format!("{w:?}"))
            }
        },
    )
    .await?;
    Ok(seen.into_inner().unwrap_or_else(|e| e.into_inner()))
}

async fn weights(etcd: &etcd_client::Client) -> Result<BTreeMap<String, u32>, String> {
    json_at(etcd, &format!("/switchyard/lab/state/traffic/{RECORD}")).await
}

async fn db_state(etcd: &etcd_client::Client) -> Result<serde_json::Value, String> {
    json_at(etcd, "/switchyard/lab/state/databases/orders").await
}

/// The JSON value at `key`, or why there is none yet.
async fn json_at<T: serde::de::DeserializeOwned>(
    etcd: &etcd_client::Client,
    key: &str,
) -> Result<T, String> {
    let r = etcd
        .clone()
        .get(key, None)
        .await
        .map_err(|e| e.to_string())?;
    r.kvs()
        .first()
        .and_then(|kv| serde_json::from_slice(kv.value()).ok())
        .ok_or_else(|| format!("nothing at {key} yet"))
}

/// Waits until every controller's DNS server answers the writer record
/// with `host` (the primary's address), and prints it.
async fn show_writer(lab: &Lab, host: &str, out: &mut dyn Write) -> anyhow::Result<()> {
    let answers = wait_for(
        &format!("{WRITER} to answer {host} everywhere"),
        STEP_TIMEOUT,
        || async {
            let mut answers = Vec::new();
            for c in &lab.controllers {
                let Some(addr) = c.dns() else { continue };
                let dig = Command::new("dig")
                    .arg(format!("@{}", addr.ip()))
                    .args(["-p", &addr.port().to_string(), WRITER, "A"])
                    .args(["+short", "+tries=1", "+time=2"])
                    .output()
                    .map_err(|e| e.to_string())?;
                answers.push(String::from_utf8_lossy(&dig.stdout).trim().to_string());
            }
            if !answers.is_empty() && answers.iter().all(|a| a == host) {
                Ok(answers)
            } else {
                Err(format!("answers {answers:?}"))
            }
        },
    )
    .await?;
    say(
        out,
        &format!(
            "dig {WRITER} on every controller: {} ({} servers)",
            answers[0],
            answers.len()
        ),
    )?;
    Ok(())
}

/// Prints how 60 answers of controller `i`'s DNS server split by region.
fn show_dns(lab: &Lab, i: usize, out: &mut dyn Write) -> anyhow::Result<()> {
    let Some(addr) = lab.controllers[i].dns() else {
        return Ok(());
    };
    let batch = lab.dir().join("dig-batch");
    let line = format!(
        "@{} -p {} {RECORD} A +short +tries=1 +time=2\n",
        addr.ip(),
        addr.port()
    );
    std::fs::write(&batch, line.repeat(60))?;
    let dig = Command::new("dig").arg("-f").arg(&batch).output()?;
    let text = String::from_utf8_lossy(&dig.stdout);
    let mut counts = BTreeMap::new();
    for (idx, r) in REGIONS.iter().enumerate() {
        let ip = endpoint_ip(idx);
        counts.insert(*r, text.lines().filter(|l| l.trim() == ip).count());
    }
    say(
        out,
        &format!(
            "dig @{addr} {RECORD} x60 (controller {}): {counts:?}",
            lab.controllers[i].id()
        ),
    )?;
    Ok(())
}
