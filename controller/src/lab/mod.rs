//! `switchyard lab`: a whole three-region deployment on this machine, run
//! from the same real parts the test suite uses — a 3-member etcd, one
//! controller and one probe per region (this binary), an HTTP endpoint per
//! region behind a weighted name served by every controller's embedded DNS
//! server, and a MariaDB primary with two GTID replicas.
//!
//! `lab` alone brings everything up, then shows the main job: it fails a
//! region's endpoint and shows traffic leave it, heals it and shows traffic
//! come back, kills the database primary and shows the failover. Then it
//! keeps running until Ctrl-C (or exits, with `--demo`), and stops
//! everything.
//!
//! The verbs (`lab up | status | fail | partition | heal | down --dir D`,
//! see [`verbs`]) run the same deployment in the background, held by a
//! server process ([`daemon`]) that keeps its state in `D`, so runbooks and
//! newcomers can break a region and watch Switchyard and the CLI deal with
//! it.
//!
//! Where this machine allows it (root, iproute2, iptables), each region
//! runs in a network namespace of its own — its controller, probe, etcd
//! member, database member and service endpoint on the region's address —
//! so `lab partition` can cut a region off the way a real region loses its
//! links. Elsewhere every part runs on loopback and `partition` says why it
//! cannot.

mod config;
pub mod daemon;
mod demo;
pub mod verbs;

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use switchyard_labkit::netns::NetNs;
use switchyard_labkit::pki::TestPki;
use switchyard_labkit::ports::free_port;
use switchyard_labkit::process::FixtureProcess;
use switchyard_labkit::{ControllerProcess, Etcd, HttpTarget, MariaDbTopology};

/// The lab's regions, in priority order.
pub const REGIONS: [&str; 3] = ["us-east", "eu-west", "ap-south"];

/// Where the lab keeps its config and logs: a temp dir removed when the
/// demonstration ends, or the `--dir` of `lab up`, which stays (with its
/// logs) after `lab down` unless `--purge` is given.
#[derive(Debug)]
pub enum LabDir {
    /// Removed on drop.
    Temp(tempfile::TempDir),
    /// Kept.
    Kept(PathBuf),
}

impl LabDir {
    /// The directory.
    pub fn path(&self) -> &Path {
        match self {
            LabDir::Temp(t) => t.path(),
            LabDir::Kept(p) => p,
        }
    }
}

/// One region's probe process and the metrics address it printed.
#[derive(Debug)]
pub struct ProbeProcess {
    /// The region it runs in (its vantage).
    pub region: String,
    /// Its probe id.
    pub id: String,
    /// Its `/metrics` address, once started.
    pub metrics: Option<SocketAddr>,
    process: FixtureProcess,
}

impl ProbeProcess {
    fn start(
        bin: &Path,
        config: &Path,
        region: &str,
        dir: &Path,
        net: &Network,
        i: usize,
    ) -> anyhow::Result<Self> {
        let id = format!("probe-{region}");
        // No `--controller`: the probe reads the controllers' fixed gRPC
        // addresses from the config, so it finds a restarted one again.
        let args: Vec<String> = vec![
            "probe".to_string(),
            "--config".into(),
            config.display().to_string(),
            "--region".into(),
            region.into(),
            "--id".into(),
            id.clone(),
            "--metrics-listen".into(),
            SocketAddr::new(net.host(i), 0).to_string(),
        ];
        // Inside the region's namespace, or on loopback.
        let ns = match net {
            Network::Namespaces(n) => Some(n.name(i)),
            Network::Loopback { .. } => None,
        };
        let (program, args) = switchyard_labkit::netns::exec_in(ns, bin, &args)?;
        let process = FixtureProcess::spawn(
            &format!("probe {region}"),
            &program,
            &args,
            dir,
            &dir.join(format!("{id}.log")),
        )?;
        Ok(ProbeProcess {
            region: region.to_string(),
            id,
            metrics: None,
            process,
        })
    }

    /// Waits for the line the probe prints once bound, reading the log from
    /// byte `since` on (a restart appends to the same log).
    async fn wait_started(&mut self, since: u64) -> anyhow::Result<()> {
        let prefix = format!("switchyard probe {} ", self.id);
        let metrics = self
            .process
            .wait_line(
                &format!("probe {} to print its metrics address", self.id),
                since,
                &prefix,
                Duration::from_secs(30),
                |line| {
                    line.split_whitespace()
                        .find_map(|w| w.strip_prefix("metrics="))
                        .and_then(|v| v.parse::<SocketAddr>().ok())
                },
            )
            .await?;
        self.metrics = Some(metrics);
        Ok(())
    }

    /// SIGKILL: the probe's region went dark.
    pub fn kill(&mut self) {
        self.process.kill();
        self.metrics = None;
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// Starts it again after [`kill`](Self::kill).
    pub async fn restart(&mut self, dir: &Path) -> anyhow::Result<()> {
        let since = std::fs::metadata(self.process.log_path())
            .map(|m| m.len())
            .unwrap_or(0);
        self.process.restart(dir)?;
        self.wait_started(since).await
    }
}

/// Where the lab's regions run.
#[derive(Debug)]
pub enum Network {
    /// Region `i` in namespace `i`: a partition can cut it off.
    Namespaces(NetNs),
    /// Every part on loopback, because namespaces cannot be made here
    /// (the reason): no partitions.
    Loopback {
        /// Why not namespaces.
        why: String,
    },
}

impl Network {
    /// Namespaces when this machine can make them, loopback otherwise.
    fn new() -> Self {
        match NetNs::create(REGIONS.len()) {
            Ok(n) => Network::Namespaces(n),
            Err(e) => Network::Loopback { why: e.to_string() },
        }
    }

    /// The address region `i`'s servers listen on (the database members
    /// on loopback have their own, see [`MariaDbTopology::address`]).
    pub fn host(&self, i: usize) -> IpAddr {
        match self {
            Network::Namespaces(n) => IpAddr::V4(n.addr(i)),
            Network::Loopback { .. } => IpAddr::V4(Ipv4Addr::LOCALHOST),
        }
    }

    /// Every region's address, in [`REGIONS`] order.
    pub fn hosts(&self) -> Vec<IpAddr> {
        (0..REGIONS.len()).map(|i| self.host(i)).collect()
    }

    /// One line for the start-up log and `lab status`.
    pub fn describe(&self) -> String {
        match self {
            Network::Namespaces(n) => format!(
                "each region in its own network namespace ({}), joined by a bridge; `lab partition REGION` cuts one off",
                (0..n.len())
                    .map(|i| format!("{} {}", REGIONS[i], n.addr(i)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Network::Loopback { why } => format!(
                "every region on loopback ({why}); `lab partition` needs namespaces: run the lab as root with iproute2 and iptables"
            ),
        }
    }
}

/// Everything the lab started; dropping it stops all of it.
pub struct Lab {
    /// The config every process reads.
    pub config: PathBuf,
    /// The controllers, one per region (in [`REGIONS`] order).
    pub controllers: Vec<ControllerProcess>,
    /// The probes, one per region (in [`REGIONS`] order).
    pub probes: Vec<ProbeProcess>,
    /// The HTTP endpoint of each region.
    pub endpoints: Vec<HttpTarget>,
    /// The database: member `i` (`orders-<i+1>`) is in region `REGIONS[i]`.
    pub db: MariaDbTopology,
    etcd: Etcd,
    /// Where the regions run. After every process: the namespaces go once
    /// nothing runs in them.
    pub net: Network,
    /// The lab's CA and certificates (their files live as long as the
    /// lab; `lab renew-certs` issues new ones over them).
    pki: TestPki,
    // Declared last: every process is stopped before its directory goes.
    dir: LabDir,
}

impl std::fmt::Debug for Lab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lab").field("config", &self.config).finish()
    }
}

impl Lab {
    /// Starts every part in a fresh temp dir and waits until a controller
    /// leads.
    pub async fn up(bin: &Path, out: &mut dyn Write) -> anyhow::Result<Lab> {
        let dir = tempfile::Builder::new()
            .prefix("switchyard-lab-")
            .tempdir()?;
        Self::up_in(bin, LabDir::Temp(dir), out).await
    }

    /// Starts every part with its config and logs in `dir`. Every child
    /// process is spawned from the calling thread (the fixtures' parent-death
    /// signal follows the thread), so call it from the runtime's
    /// `block_on`, never from a spawned task.
    pub async fn up_in(bin: &Path, dir: LabDir, out: &mut dyn Write) -> anyhow::Result<Lab> {
        let net = Network::new();
        say(out, &format!("network: {}", net.describe()))?;
        say(
            out,
            "starting a 3-member etcd cluster (a member per region)",
        )?;
        let etcd = match &net {
            Network::Namespaces(n) => Etcd::cluster_in(n).await?,
            Network::Loopback { .. } => Etcd::cluster(3).await?,
        };
        say(out, "starting a MariaDB primary and two GTID replicas")?;
        // Each member on its own address (its region's, or 127.0.0.1–3 on
        // loopback), so the writer record's answer names which member is
        // primary.
        let db = match &net {
            Network::Namespaces(n) => MariaDbTopology::start_in(n, &[0, 1, 2]).await?,
            Network::Loopback { .. } => MariaDbTopology::start_on_loopback_hosts(2).await?,
        };
        let mut endpoints = Vec::new();
        for i in 0..REGIONS.len() {
            endpoints.push(match &net {
                Network::Namespaces(n) => HttpTarget::start_in(n, i).await?,
                Network::Loopback { .. } => HttpTarget::start().await?,
            });
        }
        // Fixed gRPC addresses: probes and peers find a restarted
        // controller at the same address (a real controller keeps its
        // address too).
        let grpc: Vec<SocketAddr> = (0..REGIONS.len())
            .map(|i| SocketAddr::new(net.host(i), free_port()))
            .collect();
        // gRPC with mutual TLS, from a CA made for this lab; the
        // controllers' certificate names every region's address.
        let hosts = net.hosts();
        let pki = TestPki::new_in_for(dir.path(), &hosts)?;
        let config = config::write(dir.path(), &etcd.endpoints(), &endpoints, &db, &grpc, &pki)?;
        say(out, &format!("config: {}", config.display()))?;
        say(
            out,
            "gRPC: mutual TLS from the lab's own CA; each probe's certificate names its region",
        )?;
        let mut controllers = Vec::new();
        for (i, (r, addr)) in REGIONS.iter().zip(&grpc).enumerate() {
            let id = format!("ctl-{r}");
            say(out, &format!("starting controller {id}"))?;
            let listen = vec!["--listen".to_string(), addr.to_string()];
            controllers.push(match &net {
                Network::Namespaces(n) => {
                    ControllerProcess::start_in(bin, &config, &id, dir.path(), n, i, &listen)
                        .await?
                }
                Network::Loopback { .. } => {
                    ControllerProcess::start_with_args(bin, &config, &id, dir.path(), &listen)
                        .await?
                }
            });
        }
        let mut probes = Vec::new();
        for (i, r) in REGIONS.iter().enumerate() {
            say(out, &format!("starting probe in {r}"))?;
            let probe_config = config::write_probe(dir.path(), &config, &pki, r)?;
            probes.push(ProbeProcess::start(
                bin,
                &probe_config,
                r,
                dir.path(),
                &net,
                i,
            )?);
        }
        for p in &mut probes {
            p.wait_started(0).await?;
        }
        Ok(Lab {
            config,
            controllers,
            probes,
            endpoints,
            db,
            etcd,
            net,
            pki,
            dir,
        })
    }

    /// Where the lab keeps its config and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The etcd cluster.
    pub fn etcd(&self) -> &Etcd {
        &self.etcd
    }

    /// Issues every certificate of the lab again over the same files,
    /// valid for `valid_for` from now; returns the files written.
    pub fn renew_certificates(&self, valid_for: Duration) -> anyhow::Result<Vec<PathBuf>> {
        let hosts = self.net.hosts();
        config::renew_certificates(&self.pki, &hosts, valid_for)
    }

    /// The index of `region` in [`REGIONS`], or an error naming them.
    pub fn region_index(region: &str) -> Result<usize, verbs::LabError> {
        REGIONS
            .iter()
            .position(|r| *r == region)
            .ok_or_else(|| verbs::LabError::UnknownRegion(region.to_string()))
    }
}

fn say(out: &mut dyn Write, what: &str) -> std::io::Result<()> {
    writeln!(out, "lab: {what}")?;
    out.flush()
}

/// Checks the prerequisites, runs the lab and its demo, then waits for
/// Ctrl-C unless `demo_only`. Returns the exit code.
pub async fn run(demo_only: bool, out: &mut dyn Write) -> anyhow::Result<i32> {
    let missing = prerequisites();
    if !missing.is_empty() {
        writeln!(out, "lab: missing: {}", missing.join(", "))?;
        writeln!(out, "lab: run scripts/setup first")?;
        return Ok(1);
    }
    let bin = std::env::current_exe()?;
    let mut lab = Lab::up(&bin, out).await?;
    let result = demo::run(&mut lab, out).await;
    match &result {
        Ok(()) => say(out, "demo complete")?,
        Err(e) => say(out, &format!("demo failed: {e:#}"))?,
    }
    if result.is_ok() && !demo_only {
        say(
            out,
            &format!(
                "running; try `SWITCHYARD_TOKEN_FILE={} switchyard status --config {}` — Ctrl-C \
                 stops everything",
                lab.config.with_file_name(config::TOKEN_FILE).display(),
                lab.config.display()
            ),
        )?;
        crate::cli::controller::wait_for_signal().await;
    }
    say(out, "stopping")?;
    drop(lab);
    Ok(if result.is_ok() { 0 } else { 1 })
}

/// What the lab needs that is not installed.
pub fn prerequisites() -> Vec<String> {
    let mut missing = Vec::new();
    for (bin, package) in [
        ("etcd", "etcd-server"),
        ("mariadbd", "mariadb-server"),
        ("dig", "dnsutils"),
    ] {
        if switchyard_labkit::paths::system_bin(bin).is_err() {
            missing.push(format!("{bin} ({package})"));
        }
    }
    missing
}

/// How long the demo waits for each effect before calling it failed.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(60);
