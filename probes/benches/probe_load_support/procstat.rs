//! CPU time and memory of a process, read from /proc (Linux).

use std::time::Duration;

/// Linux's USER_HZ: /proc reports CPU time in 1/100 s on every mainstream
/// architecture.
const TICKS_PER_SEC: f64 = 100.0;

/// user + system CPU time of `pid` so far.
pub fn cpu(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces; fields after ")" are plain.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| anyhow::anyhow!("odd /proc/{pid}/stat"))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 here.
    let utime: f64 = fields
        .get(11)
        .ok_or_else(|| anyhow::anyhow!("no utime"))?
        .parse()?;
    let stime: f64 = fields
        .get(12)
        .ok_or_else(|| anyhow::anyhow!("no stime"))?
        .parse()?;
    Ok(Duration::from_secs_f64((utime + stime) / TICKS_PER_SEC))
}

/// (current RSS, peak RSS) of `pid`, in MiB.
pub fn rss_mib(pid: u32) -> anyhow::Result<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> f64 {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    Ok((field("VmRSS:"), field("VmHWM:")))
}

/// Busy and total CPU time of the whole machine so far, in ticks (all
/// CPUs together), from the first line of /proc/stat.
pub fn machine() -> anyhow::Result<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat
        .lines()
        .next()
        .ok_or_else(|| anyhow::anyhow!("empty /proc/stat"))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    // idle and iowait are fields 4 and 5.
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    Ok((total - idle, total))
}

/// Cores busy on the whole machine between two [`machine`] samples.
pub fn machine_cores(a: (u64, u64), b: (u64, u64)) -> f64 {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let total = (b.1 - a.1).max(1) as f64;
    (b.0 - a.0) as f64 / total * cpus
}
