//! While targets hang, every other check still starts on time: scheduling
//! delay (actual start − grid time) stays under 50 ms for each of them.

mod support;

use std::time::Duration;

use support::{IngestServer, http_check, plan, target};
use switchyard_probes::{Probe, ProbeOptions};
use switchyard_tests::{HttpMode, HttpTarget};

const INTERVAL: Duration = Duration::from_millis(200);
const TIMEOUT: Duration = Duration::from_millis(150);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_targets_do_not_delay_the_other_checks() -> anyhow::Result<()> {
    let controller = IngestServer::start()?;
    let hung = [HttpTarget::start().await?, HttpTarget::start().await?];
    for h in &hung {
        h.set_mode(HttpMode::Hang).await?;
    }
    let mut healthy = Vec::new();
    for _ in 0..20 {
        healthy.push(HttpTarget::start().await?);
    }
    let mut targets: Vec<_> = hung
        .iter()
        .enumerate()
        .map(|(i, t)| {
            target(
                &format!("hung{i}"),
                vec![http_check(&t.url(), INTERVAL, TIMEOUT)],
            )
        })
        .collect();
    targets.extend(healthy.iter().enumerate().map(|(i, t)| {
        target(
            &format!("ok{i}"),
            vec![http_check(&t.url(), INTERVAL, TIMEOUT)],
        )
    }));
    let mut plan = plan(targets);
    // Few slots on purpose: the two hung checks hold up to two of them (75 %
    // of the time each); twenty healthy checks of about a millisecond every
    // 200 ms share the rest. Slots bound the hung ones' cost; they must not
    // make healthy checks wait.
    plan.max_concurrency = 4;
    let probe = Probe::new(plan, vec![controller.url()], ProbeOptions::default())?;
    let stats = probe.stats();
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(probe.run(shutdown));

    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.send(true)?;
    running.await??;

    let mut worst = Duration::ZERO;
    assert_eq!(stats.checks().len(), 22, "every check is in the stats");
    for c in stats.checks() {
        if c.target.starts_with("svc:hung") {
            // The run in flight at shutdown is counted as started only.
            assert!(
                c.failures + 1 >= c.runs,
                "{} must time out every run: {c:?}",
                c.target
            );
            continue;
        }
        assert!(
            c.runs >= 15,
            "{} ran only {} times in 4 s",
            c.target,
            c.runs
        );
        assert_eq!(c.failures, 0, "{} failed", c.target);
        assert!(
            c.max_scheduling_delay < Duration::from_millis(50),
            "{} started {:?} late",
            c.target,
            c.max_scheduling_delay
        );
        worst = worst.max(c.max_scheduling_delay);
    }
    println!(
        "healthy checks: worst scheduling delay {worst:?}; p99 over all runs {:?}",
        stats.scheduling_delay_quantile(0.99)
    );
    let timeouts = controller
        .reports()
        .iter()
        .filter(|r| {
            r.report.target.starts_with("svc:hung") && r.report.reason.starts_with("timeout")
        })
        .count();
    assert!(timeouts >= 30, "hung targets reported {timeouts} timeouts");
    Ok(())
}
