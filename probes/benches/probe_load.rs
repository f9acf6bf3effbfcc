//! Probe load benchmark: one probe process checking 10,000 HTTP targets on
//! loopback once a second, then prometheus-blackbox-exporter probing the
//! same targets at the same rate, in one run. Reports sustained checks/s,
//! CPU cores, CPU per check, RSS and the probe's p99 scheduling delay, and
//! the CPU-per-check ratio.
//!
//! `cargo bench -p switchyard-probes --bench probe_load`
//! (env: `PROBE_LOAD_TARGETS`, default 10000; `PROBE_LOAD_SECS`, the
//! measured window, default 20; `PROBE_LOAD_WARMUP`, default 5;
//! `PROBE_LOAD_HOST_THREADS`, this process's runtime threads, default 2;
//! `PROBE_LOAD_PROBE_THREADS`, the probe's, default one per core;
//! `PROBE_LOAD_TRACE=1` prints the probe's delays every second).
//!
//! The two probers run one after the other against the same targets, not at
//! once: on two cores, running both together would make each one's CPU
//! figure depend on the other. Each is its own process, measured through
//! /proc over the same window length after the same warm-up. This process
//! serves the targets, the controller sink and the exporter's load
//! generator; its CPU is reported apart.

#[path = "probe_load_support/blackbox.rs"]
mod blackbox;
#[path = "probe_load_support/child.rs"]
mod child;
#[path = "probe_load_support/procstat.rs"]
mod procstat;
#[path = "probe_load_support/sink.rs"]
mod sink;
#[path = "probe_load_support/targets.rs"]
mod targets;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// Target listeners; URLs are spread over them.
const LISTENERS: usize = 20;
/// Keep-alive connections the exporter's load generator uses.
const GENERATOR_CONNECTIONS: usize = 64;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One prober's figures over the measured window.
#[derive(Debug, Default)]
struct Figures {
    checks_per_sec: f64,
    cores: f64,
    cpu_us_per_check: f64,
    rss_mib: f64,
    peak_rss_mib: f64,
    failed: u64,
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child-probe") {
        let get = |k: usize| args.get(i + k).cloned().unwrap_or_default();
        let addrs: Vec<SocketAddr> = get(4)
            .split(',')
            .map(str::parse)
            .collect::<Result<_, _>>()?;
        return child::main(get(1), get(2).parse()?, get(3).parse()?, addrs);
    }

    let n = env_or("PROBE_LOAD_TARGETS", 10_000) as usize;
    let secs = env_or("PROBE_LOAD_SECS", 20);
    let warmup = env_or("PROBE_LOAD_WARMUP", 5);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(env_or("PROBE_LOAD_HOST_THREADS", 2) as usize)
        .enable_all()
        .build()?;
    runtime.block_on(bench(n, secs, warmup))
}

async fn bench(n: usize, secs: u64, warmup: u64) -> anyhow::Result<()> {
    let me = std::process::id();
    let addrs = targets::start(LISTENERS).await?;
    let (sink_addr, counts) = sink::start().await?;
    println!(
        "probe_load: {n} HTTP targets on {LISTENERS} loopback listeners, 1 s interval, \
         {warmup} s warm-up, {secs} s measured"
    );

    // Phase 1: the switchyard probe, as a child process.
    let addr_list: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    let child = Command::new(std::env::current_exe()?)
        .arg("--child-probe")
        .arg(format!("http://{sink_addr}"))
        .arg((warmup + secs + 1).to_string())
        .arg(n.to_string())
        .arg(addr_list.join(","))
        .stdout(Stdio::piped())
        .spawn()?;
    let pid = child.id();
    tokio::time::sleep(Duration::from_secs(warmup)).await;
    let m0 = procstat::machine()?;
    let (cpu0, host0, r0, d0, t0) = (
        procstat::cpu(pid)?,
        procstat::cpu(me)?,
        counts.reports.load(Relaxed),
        counts.down.load(Relaxed),
        Instant::now(),
    );
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let (cpu1, host1, r1, d1, elapsed) = (
        procstat::cpu(pid)?,
        procstat::cpu(me)?,
        counts.reports.load(Relaxed),
        counts.down.load(Relaxed),
        t0.elapsed(),
    );
    let machine_probe = procstat::machine_cores(m0, procstat::machine()?);
    let (rss, peak) = procstat::rss_mib(pid)?;
    let output = tokio::task::spawn_blocking(move || child.wait_with_output()).await??;
    let result = String::from_utf8_lossy(&output.stdout)
        .lines()
        .find(|l| l.starts_with("RESULT"))
        .unwrap_or("RESULT (none)")
        .to_string();
    let probe = figures(r1 - r0, cpu1 - cpu0, elapsed, (rss, peak), d1 - d0);
    let host_probe = (host1 - host0).as_secs_f64() / elapsed.as_secs_f64();

    // Phase 2: blackbox_exporter on the same targets at the same rate.
    let exporter = blackbox::start().await?;
    let bb_pid = exporter.child.id();
    let urls = Arc::new((0..n).map(|i| targets::url(&addrs, i)).collect::<Vec<_>>());
    let bb_counts = Arc::new(blackbox::Counts::default());
    let driver = tokio::spawn(blackbox::drive(
        exporter.addr,
        urls,
        n as u64,
        GENERATOR_CONNECTIONS,
        warmup + secs + 1,
        bb_counts.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(warmup)).await;
    let m0 = procstat::machine()?;
    let (cpu0, host0, a0, s0, t0) = (
        procstat::cpu(bb_pid)?,
        procstat::cpu(me)?,
        bb_counts.answered.load(Relaxed),
        bb_counts.succeeded.load(Relaxed),
        Instant::now(),
    );
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let (cpu1, host1, a1, s1, elapsed) = (
        procstat::cpu(bb_pid)?,
        procstat::cpu(me)?,
        bb_counts.answered.load(Relaxed),
        bb_counts.succeeded.load(Relaxed),
        t0.elapsed(),
    );
    let machine_bb = procstat::machine_cores(m0, procstat::machine()?);
    let bb_rss = procstat::rss_mib(bb_pid)?;
    driver.await?;
    let bb = figures(a1 - a0, cpu1 - cpu0, elapsed, bb_rss, (a1 - a0) - (s1 - s0));
    let host_bb = (host1 - host0).as_secs_f64() / elapsed.as_secs_f64();
    drop(exporter);

    println!("switchyard probe child: {result}");
    println!();
    println!("| prober | checks/s | CPU cores | CPU µs/check | RSS MiB (peak) | failed checks |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, f) in [
        ("switchyard probe", &probe),
        ("blackbox_exporter 0.23", &bb),
    ] {
        println!(
            "| {name} | {:.0} | {:.2} | {:.1} | {:.0} ({:.0}) | {} |",
            f.checks_per_sec, f.cores, f.cpu_us_per_check, f.rss_mib, f.peak_rss_mib, f.failed
        );
    }
    println!();
    println!(
        "CPU per check, switchyard / blackbox_exporter: {:.2}",
        probe.cpu_us_per_check / bb.cpu_us_per_check
    );
    println!(
        "bench process (targets, sink, generator): {host_probe:.2} cores during the probe \
         phase, {host_bb:.2} during the blackbox phase"
    );
    println!(
        "whole machine busy: {machine_probe:.2} cores during the probe phase (others: {:.2}), \
         {machine_bb:.2} during the blackbox phase (others: {:.2})",
        (machine_probe - probe.cores - host_probe).max(0.0),
        (machine_bb - bb.cores - host_bb).max(0.0)
    );
    Ok(())
}

fn figures(checks: u64, cpu: Duration, elapsed: Duration, rss: (f64, f64), failed: u64) -> Figures {
    let secs = elapsed.as_secs_f64();
    Figures {
        checks_per_sec: checks as f64 / secs,
        cores: cpu.as_secs_f64() / secs,
        cpu_us_per_check: if checks == 0 {
            f64::NAN
        } else {
            cpu.as_secs_f64() * 1e6 / checks as f64
        },
        rss_mib: rss.0,
        peak_rss_mib: rss.1,
        failed,
    }
}
