//! `switchyard lab`: a whole three-region deployment on this machine, run
//! from the same real parts the test suite uses — a 3-member etcd, one
//! controller and one probe per region (this binary), an HTTP endpoint per
//! region behind a weighted name served by every controller's embedded DNS
//! server, and a MariaDB primary with two GTID replicas.
//!
//! It brings everything up, then shows the main job: it fails a region's
//! endpoint and shows traffic leave it, heals it and shows traffic come
//! back, kills the database primary and shows the failover. Then it keeps
//! running until Ctrl-C (or exits, with `--demo`), and stops everything.

mod config;
mod demo;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use switchyard_tests::process::FixtureProcess;
use switchyard_tests::{ControllerProcess, Etcd, HttpTarget, MariaDbTopology};

/// The lab's regions, in priority order.
pub const REGIONS: [&str; 3] = ["us-east", "eu-west", "ap-south"];

/// Everything the lab started; dropping it stops all of it.
pub struct Lab {
    /// The config every process reads.
    pub config: PathBuf,
    /// The controllers, one per region.
    pub controllers: Vec<ControllerProcess>,
    /// The HTTP endpoint of each region.
    pub endpoints: Vec<HttpTarget>,
    /// The database.
    pub db: MariaDbTopology,
    // Held so they stop with the lab.
    _probes: Vec<FixtureProcess>,
    etcd: Etcd,
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for Lab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lab").field("config", &self.config).finish()
    }
}

impl Lab {
    /// Starts every part and waits until a controller leads.
    pub async fn up(bin: &Path, out: &mut dyn Write) -> anyhow::Result<Lab> {
        let dir = tempfile::Builder::new()
            .prefix("switchyard-lab-")
            .tempdir()?;
        say(out, "starting a 3-member etcd cluster")?;
        let etcd = Etcd::cluster(3).await?;
        say(out, "starting a MariaDB primary and two GTID replicas")?;
        let db = MariaDbTopology::start(2).await?;
        let mut endpoints = Vec::new();
        for _ in REGIONS {
            endpoints.push(HttpTarget::start().await?);
        }
        let config = config::write(dir.path(), &etcd.endpoints(), &endpoints, &db)?;
        say(out, &format!("config: {}", config.display()))?;
        let mut controllers = Vec::new();
        for r in REGIONS {
            let id = format!("ctl-{r}");
            say(out, &format!("starting controller {id}"))?;
            controllers.push(ControllerProcess::start(bin, &config, &id, dir.path()).await?);
        }
        let urls: Vec<String> = controllers.iter().map(|c| c.grpc_url()).collect();
        let mut probes = Vec::new();
        for r in REGIONS {
            say(out, &format!("starting probe in {r}"))?;
            let mut args = vec![
                "probe".to_string(),
                "--config".into(),
                config.display().to_string(),
                "--region".into(),
                r.into(),
                "--id".into(),
                format!("probe-{r}"),
            ];
            for u in &urls {
                args.push("--controller".into());
                args.push(u.clone());
            }
            probes.push(FixtureProcess::spawn(
                &format!("probe {r}"),
                bin,
                &args,
                dir.path(),
                &dir.path().join(format!("probe-{r}.log")),
            )?);
        }
        Ok(Lab {
            config,
            controllers,
            endpoints,
            db,
            _probes: probes,
            etcd,
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
                "running; try `switchyard status --config {}` — Ctrl-C stops everything",
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
        if switchyard_tests::paths::system_bin(bin).is_err() {
            missing.push(format!("{bin} ({package})"));
        }
    }
    missing
}

/// How long the demo waits for each effect before calling it failed.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(60);
