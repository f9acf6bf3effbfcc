//! DNS benchmark: the embedded authoritative server against NSD serving
//! the same zone, both driven by `dnsperf` with the same query file, in
//! one run; and the time of one Route 53 apply against moto.
//!
//! Two phases per server, on loopback:
//! 1. throughput: `dnsperf -q 100` (100 queries in flight) for the run
//!    time — queries per second at saturation;
//! 2. latency: `dnsperf -Q <rate> -v` at a fixed rate — p50/p99 from the
//!    per-query latencies `-v` prints (dnsperf itself only reports the
//!    average).
//!
//! Targets (issue 5): embedded ≥ half of NSD's QPS; p99 < 1 ms.
//!
//! Run: `cargo bench -p switchyard-controller --bench dns`
//! (`DNS_BENCH_SECONDS`, default 8, sets each phase's length;
//! `DNS_BENCH_RATE`, default 20000, the latency phase's rate;
//! `DNS_BENCH_WORKERS`, default 1 — like NSD's `server-count: 1` — the
//! embedded server's Tokio workers.)
//! Needs `dnsperf` and `nsd` (scripts/setup installs them) and moto.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use switchyard_controller::config::{AnswerMode, RecordType};
use switchyard_controller::traffic::embedded::{EmbeddedBackend, NameServer};
use switchyard_controller::traffic::records::{RecordBook, WeightedRecord};
use switchyard_controller::traffic::{RecordChange, TrafficBackend};
use switchyard_tests::paths::system_bin;
use switchyard_tests::ports::free_port;
use switchyard_tests::{FixtureProcess, Route53Api};
use tokio::io::{AsyncBufReadExt, BufReader};

const ZONE: &str = "bench.example.";
const REGIONS: [(&str, &str, u32); 3] = [
    ("us-east", "192.0.2.1", 60),
    ("eu-west", "192.0.2.2", 30),
    ("ap-south", "192.0.2.3", 10),
];
const QUERIES: &str =
    "api.bench.example. A\nweb.bench.example. A\nbench.example. SOA\nnx.bench.example. A\n";

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn book() -> RecordBook {
    let mut book = RecordBook::default();
    book.insert_weighted(WeightedRecord {
        name: format!("api.{ZONE}"),
        kind: RecordType::A,
        ttl: 30,
        answer: AnswerMode::One,
        values: REGIONS
            .iter()
            .map(|(r, v, _)| (r.to_string(), v.to_string()))
            .collect(),
    });
    book.insert_weighted(WeightedRecord {
        name: format!("web.{ZONE}"),
        kind: RecordType::A,
        ttl: 30,
        answer: AnswerMode::One,
        values: [("us-east".to_string(), "192.0.2.10".to_string())].into(),
    });
    book
}

/// The same zone as NSD reads it (NSD has no weighting: all three records).
fn zone_file() -> String {
    let mut z = format!(
        "$ORIGIN {ZONE}\n$TTL 3600\n@ IN SOA ns1.{ZONE} hostmaster.{ZONE} 1 3600 600 86400 60\n\
         @ IN NS ns1.{ZONE}\nns1 IN A 127.0.0.1\nweb 30 IN A 192.0.2.10\n"
    );
    for (_, v, _) in REGIONS {
        z.push_str(&format!("api 30 IN A {v}\n"));
    }
    z
}

fn nsd_conf(dir: &Path, port: u16) -> String {
    let d = dir.display();
    format!(
        "server:\n  ip-address: 127.0.0.1@{port}\n  port: {port}\n  username: \"\"\n  chroot: \"\"\n  \
         pidfile: \"{d}/nsd.pid\"\n  database: \"\"\n  xfrdfile: \"{d}/xfrd.state\"\n  \
         zonelistfile: \"{d}/zone.list\"\n  logfile: \"{d}/nsd.log\"\n  server-count: 1\n  \
         verbosity: 1\n  rrl-ratelimit: 0\n  rrl-whitelist-ratelimit: 0\n\
         remote-control:\n  control-enable: no\n\
         zone:\n  name: {ZONE}\n  zonefile: \"{d}/zone\"\n"
    )
}

/// One dnsperf run's figures.
#[derive(Debug, Default, Clone, Copy)]
struct Run {
    qps: f64,
    lost: u64,
    avg_ms: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn summary_value(text: &str, key: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.trim_start().starts_with(key))
        .and_then(|l| l.split(':').nth(1))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Runs dnsperf against `addr`; with `rate`, at that fixed rate and with
/// per-query latencies (`-v`).
async fn dnsperf(
    addr: SocketAddr,
    queries: &Path,
    secs: u64,
    rate: Option<u64>,
) -> anyhow::Result<Run> {
    let mut cmd = tokio::process::Command::new(system_bin("dnsperf")?);
    cmd.args(["-s", &addr.ip().to_string(), "-p", &addr.port().to_string()])
        .arg("-d")
        .arg(queries)
        .args(["-l", &secs.to_string(), "-c", "4", "-t", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    match rate {
        Some(r) => {
            cmd.args(["-Q", &r.to_string(), "-v"]);
        }
        None => {
            cmd.args(["-q", "100"]);
        }
    }
    let mut child = cmd.spawn().context("starting dnsperf")?;
    let stdout = child.stdout.take().context("dnsperf stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut latencies = Vec::new();
    let mut text = String::new();
    while let Some(line) = lines.next_line().await? {
        if let Some(rest) = line.strip_prefix("> ") {
            if let Some(l) = rest
                .split_whitespace()
                .last()
                .and_then(|v| v.parse::<f64>().ok())
            {
                latencies.push(l * 1000.0);
            }
        } else {
            text.push_str(&line);
            text.push('\n');
        }
    }
    let status = child.wait().await?;
    anyhow::ensure!(status.success(), "dnsperf failed: {text}");
    latencies.sort_by(f64::total_cmp);
    Ok(Run {
        qps: summary_value(&text, "Queries per second").context("no QPS in dnsperf output")?,
        lost: summary_value(&text, "Queries lost").unwrap_or(0.0) as u64,
        avg_ms: summary_value(&text, "Average Latency (s)").unwrap_or(f64::NAN) * 1000.0,
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
    })
}

async fn start_nsd(dir: &Path) -> anyhow::Result<(FixtureProcess, SocketAddr)> {
    let port = free_port();
    std::fs::write(dir.join("zone"), zone_file())?;
    std::fs::write(dir.join("nsd.conf"), nsd_conf(dir, port))?;
    let conf = dir.join("nsd.conf").display().to_string();
    let nsd = FixtureProcess::spawn(
        "nsd",
        &system_bin("nsd")?,
        &["-d".into(), "-c".into(), conf],
        dir,
        &dir.join("nsd.out"),
    )?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    // Ready when it answers the SOA.
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    let query = [
        0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 5, b'b', b'e', b'n', b'c', b'h', 7, b'e', b'x',
        b'a', b'm', b'p', b'l', b'e', 0, 0, 6, 0, 1,
    ];
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 512];
    loop {
        sock.send_to(&query, addr).await?;
        if let Ok(Ok(_)) =
            tokio::time::timeout(Duration::from_millis(200), sock.recv_from(&mut buf)).await
        {
            return Ok((nsd, addr));
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "NSD did not answer: {}",
            nsd.log_tail(2000)
        );
    }
}

async fn route53_apply() -> anyhow::Result<(Duration, Duration, Duration)> {
    let api = Route53Api::start().await?;
    let zone = api
        .client()
        .create_hosted_zone()
        .name(ZONE)
        .caller_reference("switchyard-bench")
        .send()
        .await?
        .hosted_zone()
        .map(|z| z.id().trim_start_matches("/hostedzone/").to_string())
        .context("no zone id")?;
    let cfg = switchyard_controller::config::Route53 {
        hosted_zone_id: zone,
        endpoint: Some(api.endpoint().to_string()),
        aws_region: "us-east-1".into(),
        max_requests_per_second: 10,
    };
    let creds =
        aws_sdk_route53::config::Credentials::new("testing", "testing", None, None, "bench");
    let b = switchyard_controller::traffic::route53::Route53Backend::with_credentials(
        &cfg,
        book(),
        creds,
    );
    let change = |w: [u32; 3]| {
        vec![RecordChange {
            record: format!("api.{ZONE}"),
            weights: REGIONS
                .iter()
                .map(|(r, _, _)| r.to_string())
                .zip(w)
                .collect(),
        }]
    };
    let t = Instant::now();
    b.apply(&change([60, 30, 10])).await?;
    let create = t.elapsed();
    let t = Instant::now();
    b.apply(&change([60, 30, 0])).await?;
    let shift = t.elapsed();
    let t = Instant::now();
    b.apply(&change([60, 30, 0])).await?;
    let noop = t.elapsed();
    Ok((create, shift, noop))
}

fn line(name: &str, sat: &Run, lat: &Run) {
    println!(
        "{name:<9} {:>10.0} {:>8.3} {:>7} | {:>8.3} {:>8.3} {:>7}",
        sat.qps, sat.avg_ms, sat.lost, lat.p50_ms, lat.p99_ms, lat.lost
    );
}

async fn bench() -> anyhow::Result<()> {
    let secs = env_u64("DNS_BENCH_SECONDS", 8);
    let rate = env_u64("DNS_BENCH_RATE", 20_000);
    let dir = tempfile::tempdir()?;
    let queries = dir.path().join("queries");
    std::fs::write(&queries, QUERIES)?;

    let ns = [NameServer {
        name: format!("ns1.{ZONE}"),
        address: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
    }];
    let embedded = EmbeddedBackend::serve(
        ZONE,
        &ns,
        book(),
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
    )
    .await?;
    embedded
        .apply(&[RecordChange {
            record: format!("api.{ZONE}"),
            weights: REGIONS
                .iter()
                .map(|(r, _, w)| (r.to_string(), *w))
                .collect(),
        }])
        .await?;
    let emb_addr = embedded.addr().context("embedded address")?;
    let nsd_dir = dir.path().join("nsd");
    std::fs::create_dir_all(&nsd_dir)?;
    let (_nsd, nsd_addr) = start_nsd(&nsd_dir).await?;

    println!(
        "dns bench: {secs}s per phase, latency phase at {rate} qps, dnsperf -c 4; query mix: api A (weighted), web A, SOA, NXDOMAIN"
    );
    let emb_sat = dnsperf(emb_addr, &queries, secs, None).await?;
    let nsd_sat = dnsperf(nsd_addr, &queries, secs, None).await?;
    let emb_lat = dnsperf(emb_addr, &queries, secs, Some(rate)).await?;
    let nsd_lat = dnsperf(nsd_addr, &queries, secs, Some(rate)).await?;
    println!(
        "server           QPS  avg ms    lost |   p50 ms   p99 ms    lost   (saturation | fixed rate)"
    );
    line("embedded", &emb_sat, &emb_lat);
    line("nsd", &nsd_sat, &nsd_lat);
    let ratio = emb_sat.qps / nsd_sat.qps;
    println!(
        "ratio embedded/NSD QPS: {ratio:.2} (target >= 0.50: {}); embedded p99 at {rate} qps: {:.3} ms (target < 1 ms: {})",
        if ratio >= 0.5 { "met" } else { "MISSED" },
        emb_lat.p99_ms,
        if emb_lat.p99_ms < 1.0 {
            "met"
        } else {
            "MISSED"
        }
    );

    let (create, shift, noop) = route53_apply().await?;
    println!(
        "route53 apply against moto: first (3 UPSERTs) {:.1} ms, shift one region {:.1} ms, unchanged (no write) {:.1} ms",
        create.as_secs_f64() * 1000.0,
        shift.as_secs_f64() * 1000.0,
        noop.as_secs_f64() * 1000.0
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    // `cargo test --benches` runs benches with `--test`: skip the load.
    if std::env::args().any(|a| a == "--test") {
        return Ok(());
    }
    let workers = env_u64("DNS_BENCH_WORKERS", 1).max(1) as usize;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?;
    rt.block_on(bench())
}
