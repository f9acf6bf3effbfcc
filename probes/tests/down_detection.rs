//! HTTP targets switched to 500, hang and refuse are each seen as down in
//! at most fall × interval + timeout, measured from the switch to the
//! arrival at a controller of the `fall`-th consecutive down report; and
//! they are seen up again in at most rise × interval + timeout.

mod support;

use std::time::{Duration, Instant};

use support::{IngestServer, Received, http_check, plan, target};
use switchyard_probes::{Probe, ProbeOptions};
use switchyard_tests::wait::wait_for;
use switchyard_tests::{HttpMode, HttpTarget};

const INTERVAL: Duration = Duration::from_millis(300);
const TIMEOUT: Duration = Duration::from_millis(200);
/// The controller's defaults (ARCHITECTURE.md §4).
const FALL: usize = 3;
const RISE: usize = 2;
/// Scheduling delay budget (50 ms) plus loopback delivery to the controller.
const SLACK: Duration = Duration::from_millis(50);

/// When `target` had been seen `n` times in a row with `down`, counting
/// only reports of runs that started after `since`.
fn seen(
    reports: &[Received],
    target: &str,
    since: Instant,
    down: bool,
    n: usize,
) -> Option<Instant> {
    let mut streak = 0;
    for r in reports
        .iter()
        .filter(|r| r.report.target == target && r.at > since)
    {
        if r.is_down() == down {
            streak += 1;
            if streak == n {
                return Some(r.at);
            }
        } else {
            streak = 0;
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_hanging_and_refusing_targets_are_seen_down_then_up_in_time() -> anyhow::Result<()>
{
    let began = Instant::now();
    let controller = IngestServer::start()?;
    let modes = [HttpMode::Failing, HttpMode::Hang, HttpMode::Refuse];
    let mut targets = Vec::new();
    for _ in &modes {
        targets.push(HttpTarget::start().await?);
    }
    let control = HttpTarget::start().await?;
    let names = ["failing", "hang", "refuse"];
    let mut plan_targets: Vec<_> = targets
        .iter()
        .zip(names)
        .map(|(t, n)| target(n, vec![http_check(&t.url(), INTERVAL, TIMEOUT)]))
        .collect();
    plan_targets.push(target(
        "control",
        vec![http_check(&control.url(), INTERVAL, TIMEOUT)],
    ));
    let probe = Probe::new(
        plan(plan_targets),
        vec![controller.url()],
        ProbeOptions::default(),
    )?;
    let stats = probe.stats();
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(probe.run(shutdown));

    wait_for("every target up", Duration::from_secs(5), || async {
        let r = controller.reports();
        match names
            .iter()
            .find(|n| seen(&r, &format!("svc:{n}@b"), began, false, 1).is_none())
        {
            Some(n) => Err(format!("{n} not seen up yet")),
            None => Ok(()),
        }
    })
    .await?;

    let down_bound = INTERVAL * FALL as u32 + TIMEOUT;
    for ((t, mode), name) in targets.iter().zip(modes).zip(names) {
        let id = format!("svc:{name}@b");
        let switched = Instant::now();
        t.set_mode(mode).await?;
        let at = wait_for(
            &format!("{name} seen down"),
            Duration::from_secs(10),
            || async { seen(&controller.reports(), &id, switched, true, FALL).ok_or("not yet") },
        )
        .await?;
        let took = at - switched;
        let reason = controller
            .reports()
            .iter()
            .rev()
            .find(|r| r.report.target == id)
            .map(|r| r.report.reason.clone())
            .unwrap_or_default();
        println!(
            "{name}: down after {took:?} (bound {down_bound:?} + {SLACK:?}); reason {reason:?}"
        );
        assert!(
            took <= down_bound + SLACK,
            "{name}: {took:?} > {down_bound:?}"
        );
        let expected = match mode {
            HttpMode::Failing => "status: got 500",
            HttpMode::Hang => "timeout",
            _ => "refused",
        };
        assert!(reason.starts_with(expected), "{name}: reason {reason:?}");
    }

    let up_bound = INTERVAL * RISE as u32 + TIMEOUT;
    for (t, name) in targets.iter().zip(names) {
        let id = format!("svc:{name}@b");
        let switched = Instant::now();
        t.set_mode(HttpMode::Healthy).await?;
        let at = wait_for(
            &format!("{name} seen up"),
            Duration::from_secs(10),
            || async { seen(&controller.reports(), &id, switched, false, RISE).ok_or("not yet") },
        )
        .await?;
        let took = at - switched;
        println!("{name}: up again after {took:?} (bound {up_bound:?} + {SLACK:?})");
        assert!(took <= up_bound + SLACK, "{name}: {took:?} > {up_bound:?}");
    }

    let control_down = controller
        .reports()
        .iter()
        .filter(|r| r.report.target == "svc:control@b" && r.is_down())
        .count();
    assert_eq!(
        control_down, 0,
        "the healthy control target was reported down"
    );
    let max_delay = stats.max_scheduling_delay();
    println!("max scheduling delay {max_delay:?}");
    assert!(max_delay < Duration::from_millis(50));

    stop.send(true)?;
    running.await??;
    Ok(())
}
