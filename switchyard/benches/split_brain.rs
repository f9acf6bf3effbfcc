//! Split brain, timed: how long from cutting the primary's region off to
//! its local primary turning read-only (the isolated controller's fence),
//! and to a new primary being writable on the majority side. Each trial is
//! a fresh lab (network namespaces, real etcd, MariaDB and controller
//! processes; see `tests/split_lab`), with `read_only` sampled every 10 ms
//! from outside every network, and the cut made at a random moment within
//! a second. Leader lease 2 s, primary lease 4 s.
//!
//! Run (as root, like the tests): `cargo bench -p switchyard
//! --bench split_brain` (`SPLIT_TRIALS=N` for other than 10 trials).

#[path = "../tests/split_lab/mod.rs"]
mod split_lab;

use std::time::Duration;

use split_lab::{Sampler, SplitLab, Writer, ms, percentile, timeline};
use switchyard_tests::wait::wait_for;
use tokio::time::Instant;

async fn trial() -> anyhow::Result<split_lab::Timeline> {
    let mut lab = SplitLab::start().await?;
    let sampler = Sampler::start(&lab.db, Duration::from_millis(10));
    let writer = Writer::start(&lab.db, 0);
    // A random phase for the cut: the lab's fixed polling intervals would
    // otherwise lock it to the controllers' timers, trial after trial.
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() % 1_000_000_000)
        / 1_000_000;
    tokio::time::sleep(Duration::from_millis(500 + u64::from(jitter))).await;
    let cut = Instant::now();
    lab.isolate_a()?;
    wait_for("a new primary", Duration::from_secs(60), || async {
        match lab.primary().await.map_err(|e| e.to_string())? {
            Some(p) if p != "m0" => Ok(()),
            other => Err(format!("primary is {other:?}")),
        }
    })
    .await?;
    // The recorded primary can lead the sampled one by a moment.
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(writer);
    let samples = sampler.samples();
    for s in &samples {
        let writable = s.read_only.iter().filter(|r| **r == Some(false)).count();
        anyhow::ensure!(writable <= 1, "two writable members: {:?}", s.read_only);
    }
    timeline(&samples, cut).ok_or_else(|| anyhow::anyhow!("fence or promotion not sampled"))
}

fn main() -> anyhow::Result<()> {
    let trials: usize = std::env::var("SPLIT_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut fenced = Vec::new();
    let mut promoted = Vec::new();
    for i in 0..trials {
        let t = rt.block_on(trial())?;
        println!(
            "trial {:2}: isolation → local fence {:>8}, → new primary {:>8}",
            i + 1,
            ms(t.fenced),
            ms(t.promoted)
        );
        anyhow::ensure!(t.fenced < t.promoted, "promoted before the fence: {t:?}");
        fenced.push(t.fenced);
        promoted.push(t.promoted);
    }
    fenced.sort();
    promoted.sort();
    println!(
        "\n{trials} trials (read_only sampled every 10 ms; leader lease 2 s, primary lease 4 s)"
    );
    println!(
        "isolation → local fence:  p50 {}  p99 {}  min {}  max {}",
        ms(percentile(&fenced, 0.5)),
        ms(percentile(&fenced, 0.99)),
        ms(fenced[0]),
        ms(fenced[fenced.len() - 1])
    );
    println!(
        "isolation → new primary:  p50 {}  p99 {}  min {}  max {}",
        ms(percentile(&promoted, 0.5)),
        ms(percentile(&promoted, 0.99)),
        ms(promoted[0]),
        ms(promoted[promoted.len() - 1])
    );
    Ok(())
}
