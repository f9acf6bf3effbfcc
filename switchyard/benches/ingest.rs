//! Ingest throughput of one controller on one core: a real `switchyard
//! controller` process (pinned to CPU 0 with one tokio worker) on a real
//! etcd, fed by client streams from this process (pinned to CPU 1) as fast
//! as they can send. Prints reports/s accepted, CPU used and RSS — in
//! plaintext, then with mutual TLS (`[tls]`, the client's certificate
//! naming every vantage it reports for), each on a fresh controller, and
//! the ratio: what TLS costs ingest.
//!
//! Run: `cargo bench -p switchyard --bench ingest`
//! (`INGEST_MODES=plain` or `tls` for one of them).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use switchyard_probes::proto::probe_ingest_client::ProbeIngestClient;
use switchyard_probes::proto::{Outcome, ProbeReport};
use switchyard_tests::Etcd;
use switchyard_tests::controller::metric_value;
use switchyard_tests::pki::TestPki;

const SERVICES: usize = 1_000;
const REGIONS: usize = 5;
const STREAMS: usize = 4;
const RUN: Duration = Duration::from_secs(15);

/// The `[tls]` table naming `pki`'s CA and server certificate.
fn tls_table(pki: &TestPki) -> String {
    format!(
        "[tls]\nca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        pki.ca.display(),
        pki.server.cert.display(),
        pki.server.key.display()
    )
}

fn config(endpoints: &[String], weights: &Path, tls: Option<&TestPki>) -> String {
    let mut t = format!(
        "cluster = \"bench\"\n[etcd]\nendpoints = [\"{}\"]\n[dns]\nbackend = \"file\"\npath = \"{}\"\n\
         [policy]\nmax_evacuated = 2\n",
        endpoints.join("\", \""),
        weights.display()
    );
    if let Some(pki) = tls {
        t.push_str(&tls_table(pki));
    }
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

/// What one run measured.
struct Figures {
    per_second: f64,
    cores: f64,
    rss_mb: u64,
}

fn main() -> anyhow::Result<()> {
    pin_to_cpu(1);
    switchyard_controller::tls::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let modes = std::env::var("INGEST_MODES").unwrap_or_else(|_| "plain,tls".into());
    let mut results = Vec::new();
    for mode in modes.split(',') {
        let tls = match mode {
            "plain" => false,
            "tls" => true,
            other => anyhow::bail!("INGEST_MODES: unknown mode {other:?} (plain, tls)"),
        };
        results.push((mode, rt.block_on(run(tls))?));
    }
    if let [(_, plain), (_, tls)] = &results[..] {
        println!(
            "TLS / plaintext: reports/s {:.2}x, reports per CPU-second {:.2}x, RSS {:+} MB",
            tls.per_second / plain.per_second,
            (tls.per_second / tls.cores) / (plain.per_second / plain.cores),
            tls.rss_mb as i64 - plain.rss_mb as i64
        );
    }
    Ok(())
}

async fn run(tls: bool) -> anyhow::Result<Figures> {
    let etcd = Etcd::single().await?;
    let dir = tempfile::Builder::new()
        .prefix("switchyard-fixture-bench-")
        .tempdir()?;
    let pki = TestPki::new()?;
    // The bench's streams carry one certificate naming every vantage.
    let vantages: Vec<String> = (0..REGIONS)
        .map(|v| switchyard_controller::config::vantage_uri("bench", &format!("r{v}")))
        .collect();
    let probe = pki.issue("bench-probes", &vantages)?;
    let cfg = dir.path().join("bench.toml");
    std::fs::write(
        &cfg,
        config(
            &etcd.endpoints(),
            &dir.path().join("w.json"),
            tls.then_some(&pki),
        ),
    )?;
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
    let client_tls = if tls {
        Some(pki.client_tls(Some(&probe))?)
    } else {
        None
    };
    for i in 0..STREAMS {
        let reports = reports.clone();
        let scheme = if tls { "https" } else { "http" };
        let url = format!("{scheme}://{grpc}");
        let client_tls = client_tls.clone();
        tasks.push(tokio::spawn(async move {
            let mut endpoint = tonic::transport::Endpoint::from_shared(url)?;
            if let Some(t) = client_tls {
                endpoint = endpoint.tls_config(t)?;
            }
            let mut client = ProbeIngestClient::new(endpoint.connect().await?);
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
    let mode = if tls { "mutual TLS" } else { "plaintext" };
    println!(
        "ingest ({mode}): {SERVICES} services x {REGIONS} regions x {REGIONS} vantages, {STREAMS} streams, {wall:.1}s"
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
    let rejected = {
        let text = switchyard_tests::http_get(metrics, "/metrics")
            .await
            .unwrap_or_default();
        text.lines()
            .filter(|l| l.starts_with("switchyard_reports_rejected_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    println!("  reports rejected      {rejected:.0}");
    let _ = Command::new("kill").arg(pid.to_string()).status();
    let _ = child.wait();
    drop(etcd);
    anyhow::ensure!(n > 0.0, "no report was accepted ({mode})");
    Ok(Figures {
        per_second: n / wall,
        cores: (cpu1 - cpu0) / wall,
        rss_mb: hwm / 1024,
    })
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
