//! Ingest throughput of one controller on one core: a real `switchyard
//! controller` process (pinned to CPU 0 with one tokio worker) on a real
//! etcd, fed by client streams from this process (pinned to CPU 1) as fast
//! as they can send. Prints reports/s accepted, CPU used and RSS.
//!
//! Run: `cargo bench -p switchyard-controller --bench ingest`

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use switchyard_probes::proto::probe_ingest_client::ProbeIngestClient;
use switchyard_probes::proto::{Outcome, ProbeReport};
use switchyard_tests::Etcd;
use switchyard_tests::controller::metric_value;

const SERVICES: usize = 1_000;
const REGIONS: usize = 5;
const STREAMS: usize = 4;
const RUN: Duration = Duration::from_secs(15);

fn config(endpoints: &[String], weights: &Path) -> String {
    let mut t = format!(
        "cluster = \"bench\"\n[etcd]\nendpoints = [\"{}\"]\n[dns]\nbackend = \"file\"\npath = \"{}\"\n\
         [policy]\nmax_evacuated = 2\n",
        endpoints.join("\", \""),
        weights.display()
    );
    for r in 0..REGIONS {
        t.push_str(&format!(
            "[[regions]]\nname = \"r{r}\"\nweight = 100\npriority = {}\n[[controllers]]\nid = \"c{r}\"\nregion = \"r{r}\"\nlisten = \"127.0.0.1:0\"\n",
            r + 1
        ));
    }
    for s in 0..SERVICES {
        t.push_str(&format!(
            "[[services]]\nname = \"s{s}\"\nrecord = \"s{s}.bench.test.\"\nttl = 30\n\
             [[services.checks]]\nkind = \"tcp\"\ninterval = \"1s\"\ntimeout = \"500ms\"\n"
        ));
        for r in 0..REGIONS {
            t.push_str(&format!(
                "[[services.endpoints]]\nregion = \"r{r}\"\nvalue = \"192.0.2.{}\"\ntarget = \"127.0.0.1:{}\"\n",
                r + 1,
                10_000 + s * REGIONS + r
            ));
        }
    }
    t
}

fn pin_to_cpu(cpu: usize) {
    // taskset on our own pid: no unsafe code needed.
    let _ = Command::new("taskset")
        .args([
            "-a",
            "-p",
            "-c",
            &cpu.to_string(),
            &std::process::id().to_string(),
        ])
        .stdout(Stdio::null())
        .status();
}

fn proc_stat(pid: u32) -> (f64, u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    // utime and stime are fields 14 and 15 (1-based) = index 11, 12 after ')'.
    let ticks: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks / 100.0, kb("VmRSS:"), kb("VmHWM:"))
}

async fn accepted(metrics: std::net::SocketAddr) -> f64 {
    let text = switchyard_tests::http_get(metrics, "/metrics")
        .await
        .unwrap_or_default();
    metric_value(&text, "switchyard_reports_accepted_total").unwrap_or(0.0)
}

fn main() -> anyhow::Result<()> {
    pin_to_cpu(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let etcd = Etcd::single().await?;
    let dir = tempfile::Builder::new()
        .prefix("switchyard-fixture-bench-")
        .tempdir()?;
    let cfg = dir.path().join("bench.toml");
    std::fs::write(&cfg, config(&etcd.endpoints(), &dir.path().join("w.json")))?;
    let log = std::fs::File::create(dir.path().join("controller.log"))?;
    let mut child = Command::new("taskset")
        .args(["-c", "0", env!("CARGO_BIN_EXE_switchyard")])
        .args(["controller", "--config"])
        .arg(&cfg)
        .args([
            "--id",
            "c0",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
        ])
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .env("TOKIO_WORKER_THREADS", "1")
        .env("RUST_LOG", "warn")
        .env(switchyard_tests::FIXTURE_ENV, "1")
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()?;
    let pid = child.id();
    // Whatever happens below (an error included), the controller goes too.
    let _reaper = KillOnDrop(pid);
    let line = {
        use std::io::BufRead;
        let out = child
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
        let mut l = String::new();
        std::io::BufReader::new(out).read_line(&mut l)?;
        l
    };
    let addr = |k: &str| -> anyhow::Result<std::net::SocketAddr> {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .ok_or_else(|| anyhow::anyhow!("no {k} in {line:?}"))?
            .parse()
            .map_err(Into::into)
    };
    let (grpc, metrics) = (addr("grpc=")?, addr("metrics=")?);

    let mut reports = Vec::with_capacity(SERVICES * REGIONS * REGIONS);
    for s in 0..SERVICES {
        for r in 0..REGIONS {
            for v in 0..REGIONS {
                reports.push(ProbeReport {
                    probe_id: format!("probe-r{v}"),
                    vantage_region: format!("r{v}"),
                    target: format!("svc:s{s}@r{r}"),
                    check: "tcp".into(),
                    outcome: Outcome::Up as i32,
                    reason: String::new(),
                    latency_us: 250,
                    observed_at_unix_ms: 0,
                    sequence: 0,
                    cluster: String::new(),
                });
            }
        }
    }
    let reports = std::sync::Arc::new(reports);
    let before = accepted(metrics).await;
    let (cpu0, _, _) = proc_stat(pid);
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..STREAMS {
        let reports = reports.clone();
        let url = format!("http://{grpc}");
        tasks.push(tokio::spawn(async move {
            let mut client = ProbeIngestClient::connect(url).await?;
            let deadline = Instant::now() + RUN;
            let now_ms = chrono::Utc::now().timestamp_millis();
            let stream = async_stream(reports, i, deadline, now_ms);
            client.report(stream).await?;
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let wall = t0.elapsed().as_secs_f64();
    let (cpu1, rss, hwm) = proc_stat(pid);
    let n = accepted(metrics).await - before;
    println!(
        "ingest: {SERVICES} services x {REGIONS} regions x {REGIONS} vantages, {STREAMS} streams, {wall:.1}s"
    );
    println!("  reports accepted      {n:.0} ({:.0}/s)", n / wall);
    println!(
        "  controller CPU        {:.2} cores (pinned to CPU 0, 1 worker)",
        (cpu1 - cpu0) / wall
    );
    println!(
        "  controller RSS        {} MB now, {} MB peak",
        rss / 1024,
        hwm / 1024
    );
    let _ = Command::new("kill").arg(pid.to_string()).status();
    let _ = child.wait();
    drop(etcd);
    Ok(())
}

/// SIGKILLs a process when dropped, so an early return leaves no controller.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-9", &self.0.to_string()])
            .stderr(Stdio::null())
            .status();
    }
}

/// Cycles through the reports, stamping time and sequence, until the deadline.
fn async_stream(
    reports: std::sync::Arc<Vec<ProbeReport>>,
    offset: usize,
    deadline: Instant,
    now_ms: i64,
) -> impl tokio_stream::Stream<Item = ProbeReport> {
    let mut i = offset * 7919;
    let mut seq = 0u64;
    let mut now_ms = now_ms;
    tokio_stream::iter(std::iter::from_fn(move || {
        if seq.is_multiple_of(4096) {
            if Instant::now() >= deadline {
                return None;
            }
            // Real time, refreshed cheaply: reports are stamped as a probe would.
            now_ms = chrono::Utc::now().timestamp_millis();
        }
        let mut r = reports[i % reports.len()].clone();
        i += 1;
        seq += 1;
        r.sequence = seq;
        r.observed_at_unix_ms = now_ms;
        Some(r)
    }))
}
