//! dnsperf runs (pinned to CPU 1) and the server's CPU time over each,
//! read from the scheduler's per-thread counts (`schedstat`) for the
//! server and its descendants.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;

use anyhow::Context;
use switchyard_tests::paths::system_bin;

/// The CPU dnsperf runs on.
pub const CLIENT_CPU: &str = "1";

/// Pins this process to [`CLIENT_CPU`] before it starts anything, so
/// its own work (reading dnsperf's per-query lines, the weight probes) and
/// every process it starts without `taskset` — etcd, moto, dnsperf — stay
/// off the servers' core: what runs on CPU 0 is the server under test.
pub fn pin_to_client_cpu() -> anyhow::Result<()> {
    use nix::sched::{CpuSet, sched_setaffinity};
    use nix::unistd::Pid;
    let mut set = CpuSet::new();
    set.set(CLIENT_CPU.parse()?)?;
    sched_setaffinity(Pid::from_raw(0), &set).context("pinning the bench to the client CPU")
}

/// One dnsperf run's figures, with the server's CPU over it.
#[derive(Debug, Default, Clone, Copy)]
pub struct Run {
    /// Queries per second dnsperf measured.
    pub qps: f64,
    /// Queries answered.
    pub completed: u64,
    /// Queries lost (no answer within dnsperf's timeout).
    pub lost: u64,
    /// Latency percentiles (ms), from `-v` (fixed-rate runs only).
    pub p50_ms: f64,
    /// 99th percentile (ms).
    pub p99_ms: f64,
    /// Server CPU seconds during the run (every thread's run time, user
    /// and kernel, softirq work done in its context included).
    pub cpu_s: f64,
    /// Of those, the seconds of the server's threads whose name starts
    /// with `dns-` (the embedded server's UDP workers: its query work
    /// without the controller's own loops). Zero for the peers.
    pub dns_threads_s: f64,
    /// Slices whose CPU is the coarse figure (10 ms ticks) because a
    /// thread exited during them.
    pub coarse: u32,
    /// Share of the run the hypervisor kept the server's and the client's
    /// CPU from running (`steal` in `/proc/stat`): time no process in the
    /// guest can use, and the first suspect for a latency tail.
    pub steal: [f64; 2],
}

impl Run {
    /// Adds one of `slices` equal slices of a phase: counts and CPU sum,
    /// QPS and steal average.
    pub fn add(&mut self, slice: &Run, slices: u64) {
        let w = 1.0 / slices as f64;
        self.qps += slice.qps * w;
        self.completed += slice.completed;
        self.lost += slice.lost;
        self.cpu_s += slice.cpu_s;
        self.dns_threads_s += slice.dns_threads_s;
        self.coarse += slice.coarse;
        for (mine, theirs) in self.steal.iter_mut().zip(slice.steal) {
            *mine += theirs * w;
        }
    }

    /// Server CPU seconds per million answered queries.
    pub fn cpu_per_million(&self) -> f64 {
        self.cpu_s / self.completed.max(1) as f64 * 1e6
    }

    /// The `dns-` threads' CPU seconds per million answered queries.
    pub fn dns_threads_per_million(&self) -> f64 {
        self.dns_threads_s / self.completed.max(1) as f64 * 1e6
    }
}

/// The fields of a `/proc/<pid>/stat` or `/proc/<pid>/task/<tid>/stat`
/// line this bench reads. The command name may hold spaces and
/// parentheses: the fields start after the last `") "`.
struct Stat {
    name: String,
    ppid: u32,
    /// `utime + stime`, in clock ticks (for a process: its exited threads
    /// included).
    ticks: u64,
    /// When it started, in clock ticks since boot.
    start: u64,
}

impl Stat {
    fn read(path: &str) -> Option<Stat> {
        let text = std::fs::read_to_string(path).ok()?;
        let (_, rest) = text.split_once(" (")?;
        let (name, fields) = rest.rsplit_once(") ")?;
        // From state (field 3): ppid 4, utime 14, stime 15, starttime 22.
        let f: Vec<&str> = fields.split_whitespace().collect();
        let num = |i: usize| f.get(i)?.parse::<u64>().ok();
        Some(Stat {
            name: name.to_string(),
            ppid: u32::try_from(num(1)?).ok()?,
            ticks: num(11)? + num(12)?,
            start: num(19)?,
        })
    }
}

/// A process tree's CPU at one moment: every thread, keyed by (tid,
/// start time) so a reused tid is a new thread, with the nanoseconds it
/// has run (its `schedstat`: the scheduler's own count,
/// `sum_exec_runtime`) and whether its name starts with `dns-`; and the
/// processes' tick total, the coarse figure.
///
/// Nanoseconds rather than `utime + stime`, which come in 10 ms clock
/// ticks: a slice at saturation is about 1.6 CPU seconds, so a tick
/// either side of it is ±0.6 %, more than half the difference the figure
/// is meant to show. The ticks are kept for a slice in which a thread
/// exited: they include what it ran.
#[derive(Debug, Default)]
pub struct Reading {
    threads: BTreeMap<(u32, u64), (u64, bool)>,
    ticks: u64,
}

impl Reading {
    /// Reads `root` and every descendant (NSD serves from a child).
    pub fn of(root: u32) -> Self {
        let mut out = Reading::default();
        for pid in tree(root) {
            out.ticks += Stat::read(&format!("/proc/{pid}/stat")).map_or(0, |s| s.ticks);
            let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
                continue;
            };
            for t in tasks.flatten() {
                let Some(tid) = t.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                    continue;
                };
                let dir = t.path();
                let stat = Stat::read(&dir.join("stat").to_string_lossy());
                let ran = std::fs::read_to_string(dir.join("schedstat"))
                    .ok()
                    .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok());
                if let (Some(stat), Some(ran)) = (stat, ran) {
                    let dns = stat.name.starts_with("dns-");
                    out.threads.insert((tid, stat.start), (ran, dns));
                }
            }
        }
        out
    }

    /// CPU seconds run between this reading and `later`: every thread's
    /// (the coarse tick figure when a thread of this reading is gone from
    /// `later` — it exited between, and what it ran after this reading is
    /// counted nowhere else), the `dns-` threads', and whether the first
    /// is the exact figure.
    pub fn until(&self, later: &Reading) -> anyhow::Result<(f64, f64, bool)> {
        let exact = self.threads.keys().all(|k| later.threads.contains_key(k));
        let (mut all, mut dns) = (0u64, 0u64);
        for (k, (ran, is_dns)) in &later.threads {
            let before = self.threads.get(k).map_or(0, |(r, _)| *r);
            let d = ran.saturating_sub(before);
            all += d;
            if *is_dns {
                dns += d;
            }
        }
        let all = if exact {
            all as f64 / 1e9
        } else {
            later.ticks.saturating_sub(self.ticks) as f64 / clock_ticks()?
        };
        Ok((all, dns as f64 / 1e9, exact))
    }
}

/// Clock ticks per second of `/proc` CPU times.
fn clock_ticks() -> anyhow::Result<f64> {
    let out = std::process::Command::new(system_bin("getconf")?)
        .arg("CLK_TCK")
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
}

/// (steal, total) ticks of CPUs 0 and 1 from `/proc/stat`.
fn cpu_ticks() -> [(u64, u64); 2] {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let mut out = [(0, 0); 2];
    for (i, cpu) in ["cpu0 ", "cpu1 "].iter().enumerate() {
        if let Some(line) = text.lines().find(|l| l.starts_with(cpu)) {
            let v: Vec<u64> = line
                .split_whitespace()
                .skip(1)
                .filter_map(|x| x.parse().ok())
                .collect();
            // user nice system idle iowait irq softirq steal …
            out[i] = (v.get(7).copied().unwrap_or(0), v.iter().take(8).sum());
        }
    }
    out
}

fn steal_share(before: [(u64, u64); 2], after: [(u64, u64); 2]) -> [f64; 2] {
    std::array::from_fn(|i| {
        let steal = after[i].0.saturating_sub(before[i].0) as f64;
        let total = after[i].1.saturating_sub(before[i].1).max(1) as f64;
        steal / total
    })
}

/// `root` and every descendant (NSD serves from a child).
fn tree(root: u32) -> Vec<u32> {
    let all: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, Stat::read(&format!("/proc/{pid}/stat"))?.ppid)))
        .collect();
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let p = tree[i];
        tree.extend(
            all.iter()
                .filter(|(_, ppid)| *ppid == p)
                .map(|(pid, _)| *pid),
        );
        i += 1;
    }
    tree
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

/// Runs dnsperf (`-c 4`, on [`CLIENT_CPU`]) against `addr` for `secs`:
/// at saturation (`-q 100`) or, with `rate`, at that fixed rate with
/// per-query latencies; the server `pid`'s CPU is read around it.
///
/// dnsperf writes to a file read once it has exited: parsing its
/// per-query lines while it runs would take CPU from dnsperf itself
/// (they share the client core) and lengthen the latencies it measures.
pub async fn dnsperf(
    addr: SocketAddr,
    pid: u32,
    queries: &Path,
    secs: u64,
    rate: Option<u64>,
) -> anyhow::Result<Run> {
    let out_path = queries.with_file_name("dnsperf.out");
    let out = std::fs::File::create(&out_path).context("dnsperf output file")?;
    let mut cmd = tokio::process::Command::new(system_bin("taskset")?);
    cmd.args(["-c", CLIENT_CPU])
        .arg(system_bin("dnsperf")?)
        .args(["-s", &addr.ip().to_string(), "-p", &addr.port().to_string()])
        .arg("-d")
        .arg(queries)
        .args(["-l", &secs.to_string(), "-c", "4", "-t", "2"])
        .stdout(Stdio::from(out))
        .stderr(Stdio::null())
        .kill_on_drop(true);
    match rate {
        Some(r) => cmd.args(["-Q", &r.to_string(), "-v"]),
        None => cmd.args(["-q", "100"]),
    };
    let before = Reading::of(pid);
    let cpus_before = cpu_ticks();
    let status = cmd.status().await.context("running dnsperf")?;
    let after = Reading::of(pid);
    let steal = steal_share(cpus_before, cpu_ticks());
    let (cpu_s, dns_threads_s, exact) = before.until(&after)?;
    let output = std::fs::read_to_string(&out_path).context("dnsperf output")?;
    let mut latencies = Vec::new();
    let mut text = String::new();
    for line in output.lines() {
        if let Some(rest) = line.strip_prefix("> ") {
            if let Some(l) = rest
                .split_whitespace()
                .last()
                .and_then(|v| v.parse::<f64>().ok())
            {
                latencies.push(l * 1000.0);
            }
        } else {
            text.push_str(line);
            text.push('\n');
        }
    }
    anyhow::ensure!(status.success(), "dnsperf failed: {text}");
    latencies.sort_by(f64::total_cmp);
    Ok(Run {
        qps: summary_value(&text, "Queries per second").context("no QPS in dnsperf output")?,
        completed: summary_value(&text, "Queries completed").unwrap_or(0.0) as u64,
        lost: summary_value(&text, "Queries lost").unwrap_or(0.0) as u64,
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
        cpu_s,
        dns_threads_s,
        coarse: u32::from(!exact),
        steal,
    })
}
