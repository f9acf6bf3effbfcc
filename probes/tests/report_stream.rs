//! The report stream: a controller that goes away and comes back gets
//! reports again within 2 s, with nothing lost beyond what its buffer
//! dropped (and counted); a dead, stalled or rejecting controller never
//! slows reporting to the others.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use support::{IngestServer, http_check, missing, plan, target};
use switchyard_probes::{Probe, ProbeOptions, ProbePlan};
use switchyard_tests::HttpTarget;
use switchyard_tests::wait::wait_for;
use tokio::sync::watch;

const INTERVAL: Duration = Duration::from_millis(100);
const TIMEOUT: Duration = Duration::from_millis(80);
/// Reports that can be in flight (written, not yet read by the controller)
/// when a controller dies: they are lost with it, not dropped by the buffer.
const IN_FLIGHT: usize = 3;

async fn healthy_plan(n: usize) -> anyhow::Result<(ProbePlan, Vec<HttpTarget>)> {
    let mut targets = Vec::new();
    let mut plan_targets = Vec::new();
    for i in 0..n {
        let t = HttpTarget::start().await?;
        plan_targets.push(target(
            &format!("t{i}"),
            vec![http_check(&t.url(), INTERVAL, TIMEOUT)],
        ));
        targets.push(t);
    }
    Ok((plan(plan_targets), targets))
}

/// Max sequence number received, and the set.
fn received(c: &IngestServer) -> (u64, BTreeSet<u64>) {
    let s = c.sequences();
    (s.iter().next_back().copied().unwrap_or(0), s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_controller_gets_reports_again_within_2s_and_loses_nothing()
-> anyhow::Result<()> {
    let mut controller = IngestServer::start()?;
    let (plan, _targets) = healthy_plan(10).await?;
    let probe = Probe::new(plan, vec![controller.url()], ProbeOptions::default())?;
    let stats = probe.stats();
    let (stop, shutdown) = watch::channel(false);
    let running = tokio::spawn(probe.run(shutdown));

    wait_for("reports", Duration::from_secs(5), || async {
        if controller.reports().len() >= 50 {
            Ok(())
        } else {
            Err("too few")
        }
    })
    .await?;
    controller.kill();
    let before = controller.reports().len();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    controller.restart()?;
    let back = Instant::now();
    wait_for(
        "reports after the restart",
        Duration::from_secs(5),
        || async {
            if controller.reports().len() > before {
                Ok(())
            } else {
                Err("none yet")
            }
        },
    )
    .await?;
    let flowing = back.elapsed();
    println!("reports flowing again {flowing:?} after the controller came back");
    assert!(flowing <= Duration::from_secs(2), "{flowing:?}");

    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.send(true)?;
    running.await??;

    let (last, got) = received(&controller);
    let lost = missing(&got, last);
    let c = &stats.controllers()[0];
    println!(
        "{} reports, {} missing {lost:?}, {} dropped by the buffer, {} connects",
        last,
        lost.len(),
        c.dropped,
        c.connects
    );
    assert_eq!(
        c.dropped, 0,
        "the buffer (10,000) should not have overflowed"
    );
    assert!(lost.len() <= IN_FLIGHT, "lost {lost:?} beyond the buffer");
    assert!(c.connects >= 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_buffer_drops_the_oldest_reports_and_counts_them() -> anyhow::Result<()> {
    let mut controller = IngestServer::start()?;
    let (mut plan, _targets) = healthy_plan(10).await?;
    plan.buffer_per_controller = 50;
    let probe = Probe::new(plan, vec![controller.url()], ProbeOptions::default())?;
    let stats = probe.stats();
    let (stop, shutdown) = watch::channel(false);
    let running = tokio::spawn(probe.run(shutdown));

    wait_for("reports", Duration::from_secs(5), || async {
        if controller.reports().len() >= 20 {
            Ok(())
        } else {
            Err("too few")
        }
    })
    .await?;
    controller.kill();
    let (before_max, _) = received(&controller);
    // About 200 reports while away: 150 more than the buffer holds.
    tokio::time::sleep(Duration::from_secs(2)).await;
    controller.restart()?;
    let back = Instant::now();
    wait_for(
        "reports after the restart",
        Duration::from_secs(5),
        || async {
            if controller
                .reports()
                .iter()
                .any(|r| r.report.sequence > before_max + 100)
            {
                Ok(())
            } else {
                Err("none yet")
            }
        },
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.send(true)?;
    running.await??;

    let (last, got) = received(&controller);
    let lost = missing(&got, last);
    let dropped = stats.controllers()[0].dropped as usize;
    println!(
        "{last} reports, {} missing, {dropped} dropped and counted",
        lost.len()
    );
    assert!(dropped >= 100, "only {dropped} dropped");
    assert!(
        lost.len() >= dropped && lost.len() <= dropped + IN_FLIGHT,
        "missing {} vs dropped {dropped}",
        lost.len()
    );
    // What was dropped is the oldest: everything missing is older than
    // everything delivered after the controller came back.
    let oldest_after = controller
        .reports()
        .iter()
        .filter(|r| r.at > back)
        .map(|r| r.report.sequence)
        .min()
        .unwrap_or(0);
    assert!(
        lost.iter().all(|l| *l < oldest_after),
        "reports newer than delivered ones were lost: {lost:?}, oldest after {oldest_after}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_stalled_and_rejecting_controllers_do_not_slow_the_others() -> anyhow::Result<()> {
    let alive = IngestServer::start()?;
    // Dead: a port bound but never listened on, so connects are refused
    // and no other test can take it meanwhile (a port merely freed could
    // be). Stalled: accepts, never reads a byte.
    let dead = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    dead.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
    let dead_port = dead
        .local_addr()?
        .as_socket()
        .ok_or_else(|| anyhow::anyhow!("not an inet socket"))?;
    let stalled = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let stalled_url = format!("http://{}", stalled.local_addr()?);
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = stalled.accept().await {
            held.push(s);
        }
    });
    let rejecting = IngestServer::start()?;
    rejecting.reject_target("svc:t0@b");

    let (plan, _targets) = healthy_plan(20).await?;
    let controllers = vec![
        alive.url(),
        format!("http://{dead_port}"),
        stalled_url,
        rejecting.url(),
    ];
    let probe = Probe::new(plan, controllers, ProbeOptions::default())?;
    let stats = probe.stats();
    let (stop, shutdown) = watch::channel(false);
    let running = tokio::spawn(probe.run(shutdown));
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.send(true)?;
    running.await??;
    hold.abort();

    let reports = alive.reports();
    let (last, got) = received(&alive);
    let lost = missing(&got, last);
    assert!(
        last >= 600,
        "the live controller got only {last} reports in 4 s"
    );
    assert!(lost.is_empty(), "the live controller lost {lost:?}");
    // Delivery to the live controller: report stamped → received.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let worst_ms = reports
        .iter()
        .map(|r| {
            let age_now = r.at.elapsed().as_millis() as i64;
            (now_ms - age_now) - r.report.observed_at_unix_ms
        })
        .max()
        .unwrap_or(0);
    println!("live controller: {last} reports, worst delivery {worst_ms} ms");
    assert!(worst_ms < 200, "delivery took {worst_ms} ms");
    assert!(stats.max_scheduling_delay() < Duration::from_millis(50));

    let c = stats.controllers();
    println!("{c:#?}");
    assert_eq!(c[1].connects, 0, "nothing listens on the dead controller");
    assert!(
        c[3].rejected >= 2,
        "the rejecting controller's streams: {:?}",
        c[3]
    );
    // Backoff, not a hot loop: 100 ms, 200, 400, 800, then 1 s apart.
    assert!(
        c[3].connects <= 10,
        "reconnected {} times in 4 s",
        c[3].connects
    );
    Ok(())
}
