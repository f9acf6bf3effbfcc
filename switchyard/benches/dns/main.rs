//! DNS benchmark (issue 16): the embedded authoritative server as a real
//! `switchyard controller` process, against NSD and gdnsd (`plugin_weighted`
//! for `api`) serving the same zone, in one run; then the answers' sizes
//! and amplification, the weighted shares over 100,000 answers, the time
//! from an etcd weight write to the answers, and one Route 53 apply
//! against moto.
//!
//! Fairness: every server runs as its own process pinned to CPU 0
//! (`taskset`), dnsperf runs pinned to CPU 1, with the same query file
//! (`api A` weighted 60/30/10, `web A`, the SOA, an NXDOMAIN name;
//! `-c 4`). dnsperf on one core cannot saturate the C servers, so each
//! phase also reads the server's CPU time (each thread's
//! `/proc/<pid>/task/<tid>/schedstat`, the server and its children) and reports CPU seconds per million answers.
//!
//! Per round and server: (1) saturation, `-q 100`: QPS and CPU/query,
//! in four slices with the servers taking turns;
//! (2) fixed rate, `-Q <rate> -v`: p50/p99 from per-query latencies and
//! CPU/query. `DNS_BENCH_ROUNDS` rounds (default 3), servers interleaved.
//!
//! Targets: CPU per query ≤ gdnsd's; p99 < 1 ms at 20 k qps in every
//! round; answers no larger than gdnsd's; shares within ±2 % over 100 k
//! answers; a weight change visible within 100 ms of reaching etcd.
//!
//! Run: `cargo bench -p switchyard --bench dns`
//! (`DNS_BENCH_SECONDS`, default 8, each phase's length;
//! `DNS_BENCH_RATE`, default 20000, the fixed rate; `DNS_BENCH_HOLD=<s>`
//! starts the servers, prints their addresses and pids and keeps them up
//! that long without measuring, for `perf` or a hand-run client.)
//! Needs `dnsperf`, `nsd`, `gdnsd`, `etcd`, `taskset` (scripts/setup)
//! and moto for the Route 53 line (skipped without it).

mod peers;
mod perf;
mod probe;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use switchyard_controller::config::{AnswerMode, RecordType};
use switchyard_controller::traffic::RecordChange;
use switchyard_controller::traffic::TrafficBackend;
use switchyard_controller::traffic::records::{RecordBook, WeightedRecord};
use switchyard_tests::{Etcd, Route53Api};

use peers::Peer;
use perf::Run;

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

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

/// Slices a saturation phase is cut into, the servers taking turns.
const SAT_SLICES: u64 = 4;

/// One round's figures per server (embedded, nsd, gdnsd).
struct Round {
    sat: Vec<Run>,
    lat: Vec<Run>,
}

async fn round(peers: &[Peer], queries: &Path, secs: u64, rate: u64) -> anyhow::Result<Round> {
    let mut r = Round {
        sat: Vec::new(),
        lat: Vec::new(),
    };
    // Saturation in slices, the servers taking turns: the host's noise
    // (other guests, steal) drifts over seconds, so a server measured in
    // one 8 s block can meet a different machine than the next one did.
    // Interleaved 2 s slices give every server the same mix of it.
    let slices = SAT_SLICES.min(secs.max(1));
    r.sat = vec![Run::default(); peers.len()];
    for _ in 0..slices {
        for (k, p) in peers.iter().enumerate() {
            let slice = perf::dnsperf(p.addr, p.pid()?, queries, secs / slices, None).await?;
            r.sat[k].add(&slice, slices);
        }
    }
    for p in peers {
        r.lat
            .push(perf::dnsperf(p.addr, p.pid()?, queries, secs, Some(rate)).await?);
    }
    Ok(r)
}

fn print_round(i: usize, peers: &[Peer], r: &Round, rate: u64) {
    println!("\nround {i}");
    println!(
        "server      sat QPS  CPU s/Mq   lost | {rate} qps: p50 ms  p99 ms  CPU s/Mq  lost  steal % (server CPU / client CPU)"
    );
    for (k, p) in peers.iter().enumerate() {
        let (s, l) = (&r.sat[k], &r.lat[k]);
        println!(
            "{:<9} {:>9.0} {:>9.2} {:>6} | {:>14.3} {:>7.3} {:>9.2} {:>5}  {:>4.1} / {:.1}",
            p.name,
            s.qps,
            s.cpu_per_million(),
            s.lost,
            l.p50_ms,
            l.p99_ms,
            l.cpu_per_million(),
            l.lost,
            l.steal[0] * 100.0,
            l.steal[1] * 100.0
        );
    }
    for (k, p) in peers.iter().enumerate() {
        let coarse = r.sat[k].coarse + r.lat[k].coarse;
        if coarse > 0 {
            println!(
                "note: {}: a thread exited during {coarse} slice(s); their CPU is the coarse 10 ms figure",
                p.name
            );
        }
    }
    let (e, n, g) = (&r.sat[0], &r.sat[1], &r.sat[2]);
    println!(
        "efficiency (peer CPU/query ÷ embedded CPU/query, ≥ 1.0 = embedded as cheap): vs gdnsd {:.2}×, vs NSD {:.2}×; QPS ratio vs gdnsd {:.2}, vs NSD {:.2}",
        g.cpu_per_million() / e.cpu_per_million(),
        n.cpu_per_million() / e.cpu_per_million(),
        e.qps / g.qps,
        e.qps / n.qps
    );
    println!(
        "embedded query threads only (dns-*): {:.2} CPU s/Mq of its {:.2}; vs gdnsd {:.2}×",
        e.dns_threads_per_million(),
        e.cpu_per_million(),
        g.cpu_per_million() / e.dns_threads_per_million()
    );
}

/// Response sizes per query type (no EDNS and EDNS 1232) on each server,
/// and the embedded server's amplification factors.
async fn sizes(peers: &[Peer]) -> anyhow::Result<bool> {
    let api = format!("api.{ZONE}");
    let web = format!("web.{ZONE}");
    let nx = format!("nx.{ZONE}");
    let kinds: [(&str, &str, u16); 6] = [
        ("api A", &api, 1),
        ("web A", &web, 1),
        ("SOA", ZONE, 6),
        ("NXDOMAIN", &nx, 1),
        ("NODATA (api AAAA)", &api, 28),
        ("ANY at apex", ZONE, 255),
    ];
    println!("\nresponse bytes (query bytes) — no EDNS | EDNS 1232");
    print!("{:<18}", "query");
    for p in peers {
        print!(" {:>16}", p.name);
    }
    println!();
    let mut no_larger = true;
    let mut amplification = Vec::new();
    for (what, name, qtype) in kinds {
        print!("{what:<18}");
        let mut row = Vec::new();
        for p in peers {
            let mut c = probe::Client::new(p.addr).await?;
            let plain = c.ask(name, qtype, None).await.map(|r| r.len()).unwrap_or(0);
            let edns = c
                .ask(name, qtype, Some(1232))
                .await
                .map(|r| r.len())
                .unwrap_or(0);
            print!(" {plain:>7} | {edns:>6}");
            row.push((plain, edns));
        }
        println!();
        // ANY is answered differently by every server (RFC 8482): not a
        // like-for-like record, so not part of the size target.
        if qtype != 255 {
            no_larger &= row[0].0 <= row[2].0 && row[0].1 <= row[2].1;
        }
        let q_plain = probe::query(0, name, qtype, None).len();
        let q_edns = probe::query(0, name, qtype, Some(4096)).len();
        let mut c = probe::Client::new(peers[0].addr).await?;
        let big = c
            .ask(name, qtype, Some(4096))
            .await
            .map(|r| r.len())
            .unwrap_or(0);
        amplification.push((
            what,
            row[0].0 as f64 / q_plain as f64,
            big as f64 / q_edns as f64,
        ));
    }
    println!(
        "embedded answers no larger than gdnsd's (ANY aside): {}",
        verdict(no_larger)
    );
    println!(
        "\namplification of the embedded server (response ÷ query bytes): no EDNS | EDNS 4096"
    );
    for (what, plain, edns) in amplification {
        println!("{what:<18} {plain:>6.2}× | {edns:>6.2}×");
    }
    Ok(no_larger)
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
    book
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

async fn bench() -> anyhow::Result<()> {
    let secs = env_u64("DNS_BENCH_SECONDS", 8);
    let rate = env_u64("DNS_BENCH_RATE", 20_000);
    let rounds = env_u64("DNS_BENCH_ROUNDS", 3) as usize;
    let dir = tempfile::tempdir()?;
    let queries = dir.path().join("queries");
    std::fs::write(&queries, QUERIES)?;

    let etcd = Etcd::single().await?;
    let mut client = etcd.client().await?;
    let sub = |n: &str| -> anyhow::Result<std::path::PathBuf> {
        let d = dir.path().join(n);
        std::fs::create_dir_all(&d)?;
        Ok(d)
    };
    let embedded = peers::embedded(
        Path::new(env!("CARGO_BIN_EXE_switchyard")),
        &sub("embedded")?,
        &etcd.endpoints(),
    )
    .await?;
    probe::set_base_weights(&mut client, embedded.addr).await?;
    let nsd = peers::nsd(&sub("nsd")?).await?;
    let gdnsd = peers::gdnsd(&sub("gdnsd")?).await?;
    let peers = [embedded, nsd, gdnsd];

    let hold = env_u64("DNS_BENCH_HOLD", 0);
    if hold > 0 {
        for p in &peers {
            println!("hold: {} {} pid {}", p.name, p.addr, p.pid()?);
        }
        tokio::time::sleep(Duration::from_secs(hold)).await;
        return Ok(());
    }

    println!(
        "dns bench: {rounds} rounds, {secs}s per phase, fixed rate {rate} qps, dnsperf -c 4 on CPU {}, servers on CPU {}; query mix: api A (weighted 60/30/10), web A, SOA, NXDOMAIN",
        perf::CLIENT_CPU,
        peers::SERVER_CPU
    );
    let mut all = Vec::new();
    for i in 1..=rounds {
        let r = round(&peers, &queries, secs, rate).await?;
        print_round(i, &peers, &r, rate);
        all.push(r);
    }
    let eff: Vec<f64> = all
        .iter()
        .map(|r| r.sat[2].cpu_per_million() / r.sat[0].cpu_per_million())
        .collect();
    let p99: Vec<f64> = all.iter().map(|r| r.lat[0].p99_ms).collect();
    let threads: Vec<f64> = all
        .iter()
        .map(|r| r.sat[2].cpu_per_million() / r.sat[0].dns_threads_per_million())
        .collect();
    // The run's own figure: every saturation slice of every round
    // pooled, CPU seconds over answers, for each server, so the run
    // weighs each answer once. (The verdict was "≥ 1.0 in every round"
    // before `6b229ad`; a round's figure rests on a third of the run's
    // answers.)
    let pooled = |k: usize| {
        let (cpu, answers) = all.iter().fold((0.0, 0u64), |(c, a), r| {
            (c + r.sat[k].cpu_s, a + r.sat[k].completed)
        });
        cpu / answers.max(1) as f64 * 1e6
    };
    let (run_e, run_n, run_g) = (pooled(0), pooled(1), pooled(2));
    println!("\nsummary over {rounds} rounds");
    println!(
        "CPU per query over the run ≤ gdnsd's: {} — {run_e:.3} CPU s/Mq against gdnsd's {run_g:.3}, efficiency {:.3}× (vs NSD {run_n:.3}, {:.3}×)",
        verdict(run_g / run_e >= 1.0),
        run_g / run_e,
        run_n / run_e
    );
    println!(
        "  per round: {eff:.2?} ({} of {rounds} rounds ≥ 1.0), median {:.2}",
        eff.iter().filter(|e| **e >= 1.0).count(),
        median(eff.clone())
    );
    println!(
        "  (the embedded server's query threads alone against gdnsd's process: {threads:.2?}, median {:.2})",
        median(threads.clone())
    );
    println!(
        "embedded p99 < 1 ms at {rate} qps in every round: {} — {p99:.3?} ms",
        verdict(p99.iter().all(|p| *p < 1.0))
    );

    sizes(&peers).await?;

    let n = 100_000;
    println!("\nweighted shares over {n} answers (target 60/30/10 ± 2 points)");
    for p in [&peers[0], &peers[2]] {
        let got = probe::shares(p.addr, n).await?;
        let mut ok = true;
        let line: Vec<String> = REGIONS
            .iter()
            .map(|(_, v, w)| {
                let share = *got.get(*v).unwrap_or(&0) as f64 * 100.0 / n as f64;
                ok &= (share - f64::from(*w)).abs() <= 2.0;
                format!("{v} {share:.2}%")
            })
            .collect();
        println!("{:<9} {} — {}", p.name, line.join(", "), verdict(ok));
    }

    let flips = probe::weight_change_latency(&mut client, peers[0].addr, 10).await?;
    let acked: Vec<f64> = flips.iter().map(|f| f.0).collect();
    let sent: Vec<f64> = flips.iter().map(|f| f.1).collect();
    let worst = sent.iter().copied().fold(0.0, f64::max);
    println!(
        "\nweight change, etcd write → first answer from the new weights ({} changes): after the write was acknowledged median {:.2} ms, max {:.2} ms; from before it was sent median {:.2} ms, max {:.2} ms — within 100 ms: {}",
        flips.len(),
        median(acked.clone()),
        acked.iter().copied().fold(0.0, f64::max),
        median(sent),
        worst,
        verdict(worst < 100.0)
    );

    match tokio::time::timeout(Duration::from_secs(120), route53_apply()).await {
        Ok(Ok((create, shift, noop))) => println!(
            "\nroute53 apply against moto: first (3 UPSERTs) {:.1} ms, shift one region {:.1} ms, unchanged (no write) {:.1} ms",
            create.as_secs_f64() * 1000.0,
            shift.as_secs_f64() * 1000.0,
            noop.as_secs_f64() * 1000.0
        ),
        Ok(Err(e)) => println!("\nroute53 apply skipped: {e}"),
        Err(_) => println!("\nroute53 apply skipped: timed out"),
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    // `cargo test --benches` runs benches with `--test`: skip the load.
    if std::env::args().any(|a| a == "--test") {
        return Ok(());
    }
    perf::pin_to_client_cpu()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("runtime")?;
    rt.block_on(bench())
}
