//! The write-failure window of a planned switchover, on real MariaDB
//! servers on loopback: a writer inserts rows as an application would
//! (and finds the writable member again when its writes fail) while the
//! primary is switched around a three-member topology; each switchover's
//! window is the longest time between two acknowledged writes.
//!
//! `cargo bench -p switchyard-replication --bench switchover`
//! (`SWITCHOVERS=n` to change the number of switchovers, default 20).

#[path = "../tests/mariadb/common.rs"]
mod common;
#[path = "../tests/mariadb/writer.rs"]
mod writer;

use std::time::Duration;

use switchyard_replication::ReplicaSet;

use common::{FREE, Lab, id};
use writer::Writer;

fn main() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let n: usize = std::env::var("SWITCHOVERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let lab = Lab::start().await?;
    let ports: Vec<u16> = (0..3).map(|i| lab.topo.port(i)).collect();
    let writer = Writer::start(ports, 1);
    writer.wait_more(200).await?;

    let mut windows = Vec::with_capacity(n);
    let mut read_only = Vec::with_capacity(n);
    for k in 0..n {
        let to = id((k + 1) % 3);
        writer.reset_gap().await;
        let report = lab
            .set
            .switchover(&to, None, Duration::from_secs(10), &FREE)
            .await?;
        anyhow::ensure!(
            report.changed && report.not_repointed.is_empty(),
            "{report:?}"
        );
        // Writes resumed on the new primary: enough of them to close the gap.
        writer.wait_more(200).await?;
        let gap = writer.take_gap().await;
        println!(
            "switchover {:>2} -> {to}: writes failed for {:>7.1} ms (adapter read-only window {:>6.1} ms)",
            k + 1,
            ms(gap),
            report.read_only_window.map(ms).unwrap_or(f64::NAN)
        );
        windows.push(gap);
        read_only.push(report.read_only_window.unwrap_or_default());
    }
    let writes = writer.stop().await;
    lab.wait_caught_up(&[0, 1, 2]).await?;
    let final_primary = lab.observe().await.primary.unwrap_or_default();
    let i: usize = final_primary.trim_start_matches("db").parse()?;
    let on_primary = lab.ids_on(i).await?;
    let lost = writes
        .acked
        .iter()
        .filter(|a| !on_primary.contains(a))
        .count();

    println!();
    println!(
        "{n} switchovers, {} acknowledged writes, {} failed attempts, {lost} acknowledged writes lost",
        writes.acked.len(),
        writes.failures
    );
    print_stats("write-failure window (writer)", &mut windows);
    print_stats("read-only window (adapter)", &mut read_only);
    anyhow::ensure!(lost == 0, "{lost} acknowledged writes lost");
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Nearest-rank percentiles.
fn print_stats(what: &str, v: &mut [Duration]) {
    v.sort();
    let pct = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    println!(
        "{what}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms(pct(0.50)),
        ms(pct(0.99)),
        ms(v[v.len() - 1])
    );
}
