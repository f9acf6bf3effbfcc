//! etcd writes follow state changes, never the rate of probe reports: 60 s of
//! steady reports at 1,000/s into each of three controllers, with nothing
//! changing, cause no more etcd writes than lease keep-alives (in fact none).

use crate::common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{Cluster, REGIONS, target};
use switchyard_tests::controller::metric_value;
use switchyard_tests::reports::ReportFleet;

/// Writes (puts + deletes, txns included) and lease keep-alives etcd has
/// served, from its own `/metrics`.
async fn etcd_counts(cl: &Cluster) -> anyhow::Result<(f64, f64)> {
    let url = cl
        .etcd
        .endpoint(0)
        .trim_start_matches("http://")
        .to_string();
    let text = switchyard_tests::http_get(url.parse()?, "/metrics").await?;
    // The election has written already: a missing counter (renamed in
    // another etcd version) must fail, not read as zero writes.
    let puts = metric_value(&text, "etcd_mvcc_put_total")
        .ok_or_else(|| anyhow::anyhow!("etcd_mvcc_put_total missing from etcd's metrics"))?;
    anyhow::ensure!(puts > 0.0, "etcd counted no put at all");
    let writes = puts + metric_value(&text, "etcd_mvcc_delete_total").unwrap_or(0.0);
    let keepalives = text
        .lines()
        .filter(|l| {
            l.starts_with("grpc_server_msg_received_total{")
                && l.contains("grpc_method=\"LeaseKeepAlive\"")
        })
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum();
    Ok((writes, keepalives))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_reports_cause_no_etcd_writes() -> anyhow::Result<()> {
    let cl = Cluster::start(1).await?;
    cl.wait_leader(None, Duration::from_secs(20)).await?;
    // 9 (target, vantage) pairs every 9 ms: 1,000 reports/s into each controller.
    let mut outcomes = BTreeMap::new();
    for t in REGIONS {
        for v in REGIONS {
            outcomes.insert((target(t), v.to_string()), true);
        }
    }
    let _fleet = ReportFleet::start(cl.urls(), outcomes, Duration::from_millis(9));
    // Warm up: verdicts settle (regions become Healthy once) before counting.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let accepted_before = accepted(&cl).await?;
    let (w0, k0) = etcd_counts(&cl).await?;
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(60)).await;
    let (w1, k1) = etcd_counts(&cl).await?;
    let elapsed = t0.elapsed().as_secs_f64();
    let reports = accepted(&cl).await? - accepted_before;
    let (writes, keepalives) = (w1 - w0, k1 - k0);
    eprintln!(
        "steady {elapsed:.1}s: {reports} reports accepted by 3 controllers ({:.0}/s each); \
         etcd writes {writes}, lease keep-alives {keepalives}",
        reports / elapsed / 3.0
    );
    assert!(
        reports / elapsed / 3.0 >= 900.0,
        "the load was lighter than 1,000 reports/s per controller"
    );
    assert!(keepalives > 0.0, "keep-alives are counted");
    assert!(
        writes <= keepalives,
        "{writes} etcd writes exceed {keepalives} keep-alives"
    );
    assert_eq!(writes, 0.0, "no state changed, so nothing was written");
    Ok(())
}

async fn accepted(cl: &Cluster) -> anyhow::Result<f64> {
    let mut total = 0.0;
    for c in &cl.controllers {
        total += c
            .metric("switchyard_reports_accepted_total")
            .await?
            .unwrap_or(0.0);
    }
    Ok(total)
}
