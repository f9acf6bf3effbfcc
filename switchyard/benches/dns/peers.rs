//! The servers measured: the embedded server as a real `switchyard
//! controller` process (with etcd, following its weights), NSD and gdnsd
//! (`plugin_weighted` for `api`) serving the same zone — each pinned to
//! CPU 0 with `taskset`, stopped when dropped.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use switchyard_tests::FixtureProcess;
use switchyard_tests::paths::system_bin;
use switchyard_tests::ports::free_port;

use super::{REGIONS, ZONE};

/// The CPU every server is pinned to (dnsperf gets the other one).
pub const SERVER_CPU: &str = "0";

/// A server under test.
pub struct Peer {
    /// Its name in the report.
    pub name: &'static str,
    /// Where it answers (UDP).
    pub addr: SocketAddr,
    /// Its process (its descendants are counted too).
    pub process: FixtureProcess,
}

impl Peer {
    /// The process id CPU time is read from.
    pub fn pid(&self) -> anyhow::Result<u32> {
        self.process.pid().context("server not running")
    }
}

fn pinned(
    name: &str,
    program: &Path,
    args: &[String],
    dir: &Path,
) -> anyhow::Result<FixtureProcess> {
    let mut all = vec![
        "-c".to_string(),
        SERVER_CPU.into(),
        program.display().to_string(),
    ];
    all.extend(args.iter().cloned());
    FixtureProcess::spawn(
        name,
        &system_bin("taskset")?,
        &all,
        dir,
        &dir.join(format!("{name}.log")),
    )
}

/// The zone as NSD and gdnsd read it: the same SOA, NS and glue as the
/// embedded server (one controller, region us-east); `api` as `api_rr`.
fn zone_file(api_rr: &str) -> String {
    format!(
        "$ORIGIN {ZONE}\n$TTL 3600\n\
         @ IN SOA ns-us-east.{ZONE} hostmaster.{ZONE} 1 3600 600 86400 60\n\
         @ IN NS ns-us-east.{ZONE}\nns-us-east IN A 127.0.0.1\n\
         web 30 IN A 192.0.2.10\n{api_rr}"
    )
}

/// The controller config: three regions at 60/30/10, one controller,
/// `api` weighted over three addresses, `web` one address.
pub fn controller_config(etcd: &[String]) -> String {
    let mut t = format!(
        "cluster = \"bench\"\n\n[etcd]\nendpoints = [{}]\nlease_ttl = \"5s\"\n\n\
         [dns]\nbackend = \"embedded\"\nlisten = \"127.0.0.1:0\"\nzone = \"{ZONE}\"\n\n\
         [policy]\nfall = 2\nrise = 2\nquorum = 2\nstale_after = \"8s\"\nmax_evacuated = 1\n\
         failback = \"manual\"\ndb_failover = \"auto\"\n",
        etcd.iter()
            .map(|e| format!("\"{e}\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for (i, (r, _, w)) in REGIONS.iter().enumerate() {
        t.push_str(&format!(
            "\n[[regions]]\nname = \"{r}\"\nweight = {w}\npriority = {}\n",
            i + 1
        ));
    }
    t.push_str(
        "\n[[controllers]]\nid = \"ctl-us-east\"\nregion = \"us-east\"\nlisten = \"127.0.0.1:0\"\n",
    );
    t.push_str(&format!(
        "\n[[services]]\nname = \"api\"\nrecord = \"api.{ZONE}\"\nttl = 30\n"
    ));
    for (r, v, _) in REGIONS {
        t.push_str(&format!(
            "\n[[services.endpoints]]\nregion = \"{r}\"\nvalue = \"{v}\"\ntarget = \"127.0.0.1:1\"\n"
        ));
    }
    let check = "\n[[services.checks]]\nkind = \"tcp\"\ninterval = \"1s\"\ntimeout = \"500ms\"\n";
    t.push_str(check);
    t.push_str(&format!(
        "\n[[services]]\nname = \"web\"\nrecord = \"web.{ZONE}\"\nttl = 30\n\n\
         [[services.endpoints]]\nregion = \"us-east\"\nvalue = \"192.0.2.10\"\ntarget = \"127.0.0.1:1\"\n"
    ));
    t.push_str(check);
    t
}

/// `switchyard controller` (the binary built with this bench) on CPU 0.
pub async fn embedded(bin: &Path, dir: &Path, etcd: &[String]) -> anyhow::Result<Peer> {
    let config = dir.join("switchyard.toml");
    std::fs::write(&config, controller_config(etcd))?;
    let args: Vec<String> = [
        "controller",
        "--config",
        &config.display().to_string(),
        "--id",
        "ctl-us-east",
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "127.0.0.1:0",
        "--dns-listen",
        "127.0.0.1:0",
        "--state-dir",
        &dir.join("state").display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut process = pinned("embedded", bin, &args, dir)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = std::fs::read_to_string(dir.join("embedded.log")).unwrap_or_default();
        let dns = log
            .lines()
            .find(|l| l.starts_with("switchyard controller "))
            .and_then(|l| l.split_whitespace().find_map(|w| w.strip_prefix("dns=")))
            .and_then(|a| a.parse::<SocketAddr>().ok());
        if let Some(addr) = dns {
            return Ok(Peer {
                name: "embedded",
                addr,
                process,
            });
        }
        if let Some(status) = process.exited() {
            anyhow::bail!("controller exited with {status}: {log}");
        }
        anyhow::ensure!(Instant::now() < deadline, "controller did not start: {log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// NSD, one server process (`server-count: 1`), no rate limiting; it has
/// no weighting, so `api` has all three records.
pub async fn nsd(dir: &Path) -> anyhow::Result<Peer> {
    let port = free_port();
    let d = dir.display();
    let api: String = REGIONS
        .iter()
        .map(|(_, v, _)| format!("api 30 IN A {v}\n"))
        .collect();
    std::fs::write(dir.join("zone"), zone_file(&api))?;
    std::fs::write(
        dir.join("nsd.conf"),
        format!(
            "server:\n  ip-address: 127.0.0.1@{port}\n  port: {port}\n  username: \"\"\n  chroot: \"\"\n  \
             pidfile: \"{d}/nsd.pid\"\n  database: \"\"\n  xfrdfile: \"{d}/xfrd.state\"\n  \
             zonelistfile: \"{d}/zone.list\"\n  logfile: \"{d}/nsd.log\"\n  server-count: 1\n  \
             verbosity: 1\n  rrl-ratelimit: 0\n  rrl-whitelist-ratelimit: 0\n\
             remote-control:\n  control-enable: no\n\
             zone:\n  name: {ZONE}\n  zonefile: \"{d}/zone\"\n"
        ),
    )?;
    let conf = dir.join("nsd.conf").display().to_string();
    let process = pinned(
        "nsd",
        &system_bin("nsd")?,
        &["-d".into(), "-c".into(), conf],
        dir,
    )?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    super::probe::wait_answering(addr, "NSD").await?;
    Ok(Peer {
        name: "nsd",
        addr,
        process,
    })
}

/// gdnsd 3 with one UDP and one TCP thread, `api` a `DYNA weighted!api`
/// resource with the same 60/30/10.
pub async fn gdnsd(dir: &Path) -> anyhow::Result<Peer> {
    let port = free_port();
    let d = dir.display();
    std::fs::create_dir_all(dir.join("zones"))?;
    std::fs::write(
        dir.join("zones").join(ZONE.trim_end_matches('.')),
        zone_file("api 30 IN DYNA weighted!api\n"),
    )?;
    let members: String = REGIONS
        .iter()
        .map(|(r, v, w)| format!("      {r} = [ {v}, {w} ]\n"))
        .collect();
    std::fs::write(
        dir.join("config"),
        format!(
            "options => {{\n  listen => [ 127.0.0.1:{port} ]\n  udp_threads => 1\n  tcp_threads => 1\n  \
             run_dir => {d}/run\n  state_dir => {d}/state\n}}\n\
             plugins => {{\n  weighted => {{\n    api => {{\n{members}    }}\n  }}\n}}\n"
        ),
    )?;
    let process = pinned(
        "gdnsd",
        &system_bin("gdnsd")?,
        &["-c".into(), d.to_string(), "start".into()],
        dir,
    )?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    super::probe::wait_answering(addr, "gdnsd").await?;
    Ok(Peer {
        name: "gdnsd",
        addr,
        process,
    })
}
