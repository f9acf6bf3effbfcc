//! Region loss, timed: a whole region is killed at once — its network cut,
//! its controller killed, its MariaDB primary killed with -9, its probe
//! gone, and the other regions' probes seeing its endpoint and primary
//! fail — and the bench times, from that moment, the leader's verdict
//! (region Down in etcd), traffic moved (the region's weight 0 in the
//! backend) and the database writable again (a replica sampled writable).
//! Each trial is a fresh lab (`tests/split_lab`: network namespaces, real
//! etcd, MariaDB and controller processes; stand-in probes reporting every
//! 500 ms, `fall = 3`, leader lease 2 s), once with the default primary
//! lease (4 s) and once with the shortest (2 s). `read_only` of
//! every member is sampled every 10 ms and a trial fails if two members are
//! ever writable. Half the trials kill the region that hosts the leader;
//! in the others the leader is moved away first.
//!
//! Run (as root, like the tests): `cargo bench -p switchyard
//! --bench rto` (`RTO_TRIALS=N` for other than 20 trials per primary lease,
//! `RTO_PRIMARY_TTLS=2,4` for other primary leases, in seconds; `RTO_LOGS=1`
//! prints the surviving controllers' logs after each trial).

#[path = "../tests/split_lab/mod.rs"]
mod split_lab;

use std::time::Duration;

use split_lab::{Sampler, Settings, SplitLab, ms, percentile};
use switchyard_tests::wait::wait_for;
use tokio::time::Instant;

/// What one trial measured, from the kill.
#[derive(Debug, Clone, Copy)]
struct Rto {
    detected: Duration,
    dns: Duration,
    writable: Duration,
    leader_in_region: bool,
}

/// Index of the leading controller.
async fn leader(lab: &SplitLab) -> anyhow::Result<Option<usize>> {
    let value = lab.store.leader_value().await?;
    Ok(value.and_then(|v| {
        lab.controllers
            .iter()
            .position(|c| c.grpc().to_string() == v)
    }))
}

/// The settings: checks every 500 ms, `fall = 3`.
fn settings(primary_ttl_s: u64) -> Settings {
    Settings {
        primary_ttl_s,
        report_every: Duration::from_millis(500),
        fall: 3,
        ..Settings::default()
    }
}

async fn trial(kill_leader_region: bool, primary_ttl_s: u64) -> anyhow::Result<Rto> {
    let mut lab = SplitLab::start_with(settings(primary_ttl_s)).await?;
    let _logs = lab.logs_on_panic();
    let first = wait_for("a leader", Duration::from_secs(20), || async {
        leader(&lab)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "none yet".to_string())
    })
    .await?;
    // Region a hosts the primary (m0): it is the one killed. Move the
    // leader to or from it as the trial wants.
    if (first == 0) != kill_leader_region {
        let from = first;
        lab.controllers[from]
            .terminate(Duration::from_secs(5))
            .await;
        let want_a = kill_leader_region;
        wait_for("the leader moved", Duration::from_secs(20), || async {
            match leader(&lab).await.map_err(|e| e.to_string())? {
                Some(i) if i != from && (i == 0) == want_a => Ok(()),
                Some(i) if i != from && want_a => Err(format!("ctl {i} leads, want a")),
                other => Err(format!("leader {other:?}")),
            }
        })
        .await
        .or_else(|e| if want_a { Err(e) } else { Ok(()) })?;
        lab.controllers[from].restart().await?;
    }
    let leads = leader(&lab).await?;
    lab.wait_lease_held("ctl-a", "m0").await?;
    let sampler = Sampler::start(&lab.db, Duration::from_millis(10));
    // A random phase, so the kill does not lock to the controllers' timers.
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() % 1_000_000_000)
        / 1_000_000;
    tokio::time::sleep(Duration::from_millis(500 + u64::from(jitter))).await;

    let cut = Instant::now();
    lab.isolate_a()?;
    lab.controllers[0].kill();
    lab.db.kill9(0);
    let region_key = lab.store.keys().region("a");
    let mut detected = None;
    let mut dns = None;
    let deadline = cut + Duration::from_secs(60);
    while (detected.is_none() || dns.is_none()) && Instant::now() < deadline {
        if detected.is_none() {
            let state: Option<serde_json::Value> =
                lab.store.get_json(&region_key).await.unwrap_or(None);
            if state.is_some_and(|s| s["status"] == "Down") {
                detected = Some(cut.elapsed());
            }
        }
        if dns.is_none() && lab.weights().get("a") == Some(&0) {
            dns = Some(cut.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    wait_for("a new primary", Duration::from_secs(60), || async {
        match lab.primary().await.map_err(|e| e.to_string())? {
            Some(p) if p != "m0" => Ok(()),
            other => Err(format!("primary is {other:?}")),
        }
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let samples = sampler.samples();
    for s in &samples {
        let writable = s.read_only.iter().filter(|r| **r == Some(false)).count();
        anyhow::ensure!(writable <= 1, "two writable members: {:?}", s.read_only);
    }
    let writable = samples
        .iter()
        .filter(|s| s.at >= cut)
        .find(|s| s.read_only[1] == Some(false) || s.read_only[2] == Some(false))
        .map(|s| s.at.duration_since(cut))
        .ok_or_else(|| anyhow::anyhow!("no writable replica sampled"))?;
    if std::env::var_os("RTO_LOGS").is_some() {
        // Where the time went: the surviving controllers' logs.
        for c in &lab.controllers[1..] {
            println!("--- {} ---\n{}", c.id(), c.log());
        }
    }
    Ok(Rto {
        detected: detected.ok_or_else(|| anyhow::anyhow!("region a never Down"))?,
        dns: dns.ok_or_else(|| anyhow::anyhow!("region a never out of DNS"))?,
        writable,
        leader_in_region: leads == Some(0),
    })
}

fn summary(name: &str, mut v: Vec<Duration>) {
    v.sort();
    println!(
        "{name:<22} p50 {:>8}  p99 {:>8}  min {:>8}  max {:>8}",
        ms(percentile(&v, 0.5)),
        ms(percentile(&v, 0.99)),
        ms(v[0]),
        ms(v[v.len() - 1])
    );
}

fn main() -> anyhow::Result<()> {
    let trials: usize = std::env::var("RTO_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let ttls: Vec<u64> = std::env::var("RTO_PRIMARY_TTLS")
        .ok()
        .map(|v| v.split(',').filter_map(|t| t.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![4, 2]);
    let mut runs = Vec::new();
    for &ttl in &ttls {
        let mut all = Vec::new();
        for i in 0..trials {
            let t = rt.block_on(trial(i % 2 == 0, ttl))?;
            println!(
                "primary lease {ttl} s, trial {:2} (leader {}): Down {:>8}, DNS moved {:>8}, writable {:>8}",
                i + 1,
                if t.leader_in_region {
                    "in the region"
                } else {
                    "elsewhere    "
                },
                ms(t.detected),
                ms(t.dns),
                ms(t.writable)
            );
            all.push(t);
        }
        runs.push((ttl, all));
    }
    for (ttl, all) in &runs {
        println!(
            "\n== primary lease {ttl} s: {trials} trials (checks every 500 ms, fall 3, leader lease 2 s; \
             read_only sampled every 10 ms, never two writable)"
        );
        for (label, pick) in [
            ("all", None),
            ("leader in the region", Some(true)),
            ("leader elsewhere", Some(false)),
        ] {
            let set: Vec<&Rto> = all
                .iter()
                .filter(|t| pick.is_none_or(|p| t.leader_in_region == p))
                .collect();
            if set.is_empty() {
                continue;
            }
            println!("-- {label} ({} trials)", set.len());
            summary("region Down", set.iter().map(|t| t.detected).collect());
            summary("traffic moved", set.iter().map(|t| t.dns).collect());
            summary(
                "database writable",
                set.iter().map(|t| t.writable).collect(),
            );
            summary("total", set.iter().map(|t| t.dns.max(t.writable)).collect());
        }
    }
    Ok(())
}
