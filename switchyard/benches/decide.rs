//! Benchmark of the engine's two hot paths, with plain `Instant` timing:
//! `decide` over 1,000 services × 5 regions × 5 vantages (target ≤ 1 ms per
//! call), and `HealthBook::record` over 2,000,000 reports (target ≥ 200,000
//! reports/s on one core).
//!
//! Run: `cargo bench -p switchyard --bench decide`.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use switchyard_controller::engine::{
    ControlState, Decision, Endpoint, HealthBook, Observation, Policy, Record, Region, TargetId,
    Topology, decide,
};

const SERVICES: usize = 1_000;
const REGIONS: [&str; 5] = ["ap-south", "eu-west", "sa-east", "us-east", "us-west"];
const DECIDE_RUNS: usize = 2_000;
const OBSERVATIONS: usize = 2_000_000;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn topology() -> Topology {
    let mut topo = Topology::default();
    for (i, r) in REGIONS.iter().enumerate() {
        topo.regions.insert(
            (*r).to_owned(),
            Region {
                weight: 100,
                priority: i as u32,
            },
        );
    }
    for s in 0..SERVICES {
        let name = format!("svc-{s:04}");
        let endpoints = REGIONS
            .iter()
            .map(|r| {
                (
                    (*r).to_owned(),
                    Endpoint {
                        target: TargetId::service(&name, r),
                        weight: 100,
                    },
                )
            })
            .collect();
        topo.records
            .insert(format!("{name}.example.com."), Record { endpoints });
    }
    topo
}

/// Every vantage sees every endpoint up at `now`, except the endpoints in
/// `down` (region, every n-th service) which every vantage sees down.
fn book(topo: &Topology, policy: &Policy, now: DateTime<Utc>, down: (&str, usize)) -> HealthBook {
    let mut book = HealthBook::new();
    for (k, record) in topo.records.values().enumerate() {
        for (region, ep) in &record.endpoints {
            let ok = !(region == down.0 && k % down.1 == 0);
            for v in REGIONS {
                let obs = Observation {
                    target: ep.target.clone(),
                    vantage: v.to_owned(),
                    ok,
                    observed_at: now,
                };
                for _ in 0..policy.fall.max(policy.rise) {
                    book.record(&obs, policy);
                }
            }
        }
    }
    book
}

fn control(topo: &Topology) -> ControlState {
    let weights = topo
        .records
        .iter()
        .map(|(name, r)| {
            let w: BTreeMap<String, u32> = r
                .endpoints
                .iter()
                .map(|(reg, e)| (reg.clone(), e.weight))
                .collect();
            (name.clone(), w)
        })
        .collect();
    ControlState {
        weights,
        ..ControlState::default()
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

fn bench_decide(label: &str, topo: &Topology, book: &HealthBook, control: &ControlState) {
    let policy = Policy::default();
    let now = t0() + TimeDelta::seconds(1);
    let sample: Decision = decide(topo, book, control, &policy, now);
    for _ in 0..50 {
        black_box(decide(topo, book, control, &policy, now));
    }
    let mut times = Vec::with_capacity(DECIDE_RUNS);
    for _ in 0..DECIDE_RUNS {
        let start = Instant::now();
        let d = decide(
            black_box(topo),
            black_box(book),
            black_box(control),
            &policy,
            now,
        );
        times.push(start.elapsed());
        black_box(d);
    }
    times.sort();
    let mean = times.iter().sum::<Duration>() / DECIDE_RUNS as u32;
    println!(
        "decide [{label}]: {} targets, {} actions, {} alarms; {DECIDE_RUNS} runs: \
         mean {:.3} ms, p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        sample.verdicts.len(),
        sample.plan.actions.len(),
        sample.alarms.len(),
        mean.as_secs_f64() * 1e3,
        percentile(&times, 0.50).as_secs_f64() * 1e3,
        percentile(&times, 0.99).as_secs_f64() * 1e3,
        percentile(&times, 1.0).as_secs_f64() * 1e3,
    );
}

fn bench_record(topo: &Topology) {
    let policy = Policy::default();
    // One reusable report per (target, vantage); each use gets a later time
    // and a result that makes the rise/fall counters really move.
    let mut pool: Vec<Observation> = topo
        .records
        .values()
        .flat_map(|r| r.endpoints.values())
        .flat_map(|ep| {
            REGIONS.iter().map(|v| Observation {
                target: ep.target.clone(),
                vantage: (*v).to_owned(),
                ok: true,
                observed_at: t0(),
            })
        })
        .collect();
    let pairs = pool.len();
    let mut book = HealthBook::new();
    let mut changes = 0u64;
    let start = Instant::now();
    for i in 0..OBSERVATIONS {
        let obs = &mut pool[i % pairs];
        let round = (i / pairs) as i64;
        obs.observed_at = t0() + TimeDelta::milliseconds(round * 1_000 + (i % 1_000) as i64);
        // Per pair: 7 passes then 3 failures, so every pair goes Down and
        // Up again every 10 rounds.
        obs.ok = (round as usize + i % pairs) % 10 < 7;
        if book.record(black_box(obs), &policy) {
            changes += 1;
        }
    }
    let elapsed = start.elapsed();
    println!(
        "HealthBook::record: {OBSERVATIONS} reports over {pairs} (target, vantage) pairs in \
         {:.3} s = {:.0} reports/s ({:.0} ns/report, {changes} status changes)",
        elapsed.as_secs_f64(),
        OBSERVATIONS as f64 / elapsed.as_secs_f64(),
        elapsed.as_nanos() as f64 / OBSERVATIONS as f64,
    );
}

fn main() {
    let topo = topology();
    let policy = Policy::default();
    let control = control(&topo);
    let now = t0();

    let steady = book(&topo, &policy, now, ("us-west", 100));
    bench_decide("10 endpoints down", &topo, &steady, &control);

    let outage = book(&topo, &policy, now, ("us-east", 1));
    bench_decide("region us-east down", &topo, &outage, &control);

    bench_record(&topo);
}
