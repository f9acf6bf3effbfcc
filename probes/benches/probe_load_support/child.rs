//! The probe process under test: `switchyard_probes::Probe` checking every
//! bench target once a second and streaming to the bench's sink, for a
//! fixed time; then it prints its own counters on one line.

use std::net::SocketAddr;
use std::time::Duration;

use switchyard_probes::{
    CheckKind, CheckSpec, HttpCheck, Probe, ProbeOptions, ProbePlan, TargetPlan,
};

/// Interval of every check.
pub const INTERVAL: Duration = Duration::from_secs(1);
/// Timeout of every check.
pub const TIMEOUT: Duration = Duration::from_millis(500);

/// The plan: one HTTP check per target URL.
pub fn plan(targets: &[SocketAddr], n: usize) -> ProbePlan {
    let targets = (0..n)
        .map(|i| TargetPlan {
            id: format!("svc:t{i}@b"),
            region: "b".into(),
            checks: vec![CheckSpec {
                name: "http".into(),
                interval: INTERVAL,
                timeout: TIMEOUT,
                kind: CheckKind::Http(HttpCheck::get(super::targets::url(targets, i))),
            }],
        })
        .collect();
    ProbePlan::new("bench-probe", "a", targets)
}

/// Runs the probe for `secs` seconds and prints `RESULT k=v …`.
pub fn main(sink: String, secs: u64, n: usize, targets: Vec<SocketAddr>) -> anyhow::Result<()> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = std::env::var("PROBE_LOAD_PROBE_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        builder.worker_threads(n);
    }
    let runtime = builder.enable_all().build()?;
    runtime.block_on(async move {
        let probe = Probe::new(plan(&targets, n), vec![sink], ProbeOptions::default())?;
        let stats = probe.stats();
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let running = tokio::spawn(probe.run(shutdown));
        let trace = std::env::var_os("PROBE_LOAD_TRACE").is_some();
        for t in 0..secs {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if trace {
                eprintln!(
                    "t={t} checks={} p99={:?} max={:?}",
                    stats.checks_run(),
                    stats.scheduling_delay_quantile(0.99),
                    stats.max_scheduling_delay()
                );
            }
        }
        stop.send(true)?;
        running.await??;
        let c = &stats.controllers()[0];
        let failures: u64 = stats.checks().iter().map(|c| c.failures).sum();
        let missed: u64 = stats.checks().iter().map(|c| c.ticks_missed).sum();
        println!(
            "RESULT checks={} failures={failures} missed={missed} p50_us={} p99_us={} max_us={} sent={} dropped={}",
            stats.checks_run(),
            stats.scheduling_delay_quantile(0.5).as_micros(),
            stats.scheduling_delay_quantile(0.99).as_micros(),
            stats.max_scheduling_delay().as_micros(),
            c.sent,
            c.dropped,
        );
        anyhow::Ok(())
    })
}
