//! A `switchyard controller` process: started from the binary the test names
//! (`env!("CARGO_BIN_EXE_switchyard")`), on port 0, with the bound addresses
//! read from the line it prints; killed on drop. It runs on loopback
//! ([`ControllerProcess::start`]) or inside a network namespace on that
//! namespace's address ([`ControllerProcess::start_in`]).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::netns::NetNs;
use crate::paths::system_bin;
use crate::process::FixtureProcess;
use crate::wait::wait_for;

const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// One controller process.
#[derive(Debug)]
pub struct ControllerProcess {
    id: String,
    grpc: SocketAddr,
    metrics: SocketAddr,
    dns: Option<SocketAddr>,
    process: FixtureProcess,
    dir: PathBuf,
    /// The namespace it runs in, if any (the process command already holds
    /// the `ip netns exec` prefix, so a restart runs there again).
    netns: Option<String>,
}

impl ControllerProcess {
    /// Starts controller `id` of `config` with binary `bin`, logs in `dir`.
    pub async fn start(bin: &Path, config: &Path, id: &str, dir: &Path) -> anyhow::Result<Self> {
        Self::start_with_args(bin, config, id, dir, &[]).await
    }

    /// Like [`start`](Self::start), with `extra_args` appended to the
    /// command line (a restart passes them again).
    pub async fn start_with_args(
        bin: &Path,
        config: &Path,
        id: &str,
        dir: &Path,
        extra_args: &[String],
    ) -> anyhow::Result<Self> {
        let mut args = Self::args(config, id, Ipv4Addr::LOCALHOST, dir, extra_args);
        args.extend(extra_args.iter().cloned());
        Self::spawn(bin, &args, id, dir, None).await
    }

    /// Like [`start`](Self::start), with `env` set for the process only
    /// (through `env(1)`, which execs the controller in place, so
    /// [`pid`](Self::pid), kill and pause act on it): credentials for a
    /// test server, say, without touching the test's own environment.
    pub async fn start_with_env(
        bin: &Path,
        config: &Path,
        id: &str,
        dir: &Path,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let mut args: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        args.push(bin.display().to_string());
        args.extend(Self::args(config, id, Ipv4Addr::LOCALHOST, dir, &[]));
        Self::spawn(&system_bin("env")?, &args, id, dir, None).await
    }

    /// Like [`start_with_args`](Self::start_with_args), but the process runs
    /// inside namespace `ns` of `net` (through `ip netns exec`, which execs
    /// the controller in place, so [`pid`](Self::pid), kill and pause act on
    /// it), listening on `net.addr(ns)` with ports chosen by the kernel.
    /// [`restart`](Self::restart) starts it in the same namespace with the
    /// same arguments.
    pub async fn start_in(
        bin: &Path,
        config: &Path,
        id: &str,
        dir: &Path,
        net: &NetNs,
        ns: usize,
        extra_args: &[String],
    ) -> anyhow::Result<Self> {
        Self::start_in_with_env(bin, config, id, dir, net, ns, extra_args, &[]).await
    }

    /// Like [`start_in`](Self::start_in), with `env` set for the process
    /// only (through `env(1)` inside the namespace, which execs the
    /// controller in place): credentials for a test server, say.
    #[allow(clippy::too_many_arguments)]
    pub async fn start_in_with_env(
        bin: &Path,
        config: &Path,
        id: &str,
        dir: &Path,
        net: &NetNs,
        ns: usize,
        extra_args: &[String],
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(
            ns < net.len(),
            "namespace {ns} does not exist (there are {})",
            net.len()
        );
        let name = net.name(ns).to_string();
        let mut args = Self::args(config, id, net.addr(ns), dir, extra_args);
        args.extend(extra_args.iter().cloned());
        let (program, args) = if env.is_empty() {
            crate::netns::exec_in(Some(&name), bin, &args)?
        } else {
            let mut with_env: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
            with_env.push(bin.display().to_string());
            with_env.extend(args);
            crate::netns::exec_in(Some(&name), &system_bin("env")?, &with_env)?
        };
        Self::spawn(&program, &args, id, dir, Some(name)).await
    }

    async fn spawn(
        program: &Path,
        args: &[String],
        id: &str,
        dir: &Path,
        netns: Option<String>,
    ) -> anyhow::Result<Self> {
        let log = dir.join(format!("{id}.log"));
        let process = FixtureProcess::spawn(&format!("controller {id}"), program, args, dir, &log)?;
        let unbound = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut c = ControllerProcess {
            id: id.to_string(),
            grpc: unbound,
            metrics: unbound,
            dns: None,
            process,
            dir: dir.to_path_buf(),
            netns,
        };
        c.wait_started(0).await?;
        Ok(c)
    }

    /// The controller's arguments. Listeners bind port 0 unless
    /// `extra_args` names their flag. Unless `extra_args` names one, each
    /// controller gets its own `--state-dir` under `dir`: parallel tests
    /// reuse controller ids, and must never share the record of isolation
    /// fences (the default lives under /var/lib).
    fn args(
        config: &Path,
        id: &str,
        host: Ipv4Addr,
        dir: &Path,
        extra_args: &[String],
    ) -> Vec<String> {
        let listen = SocketAddr::new(IpAddr::V4(host), 0).to_string();
        let mut args: Vec<String> = vec![
            "controller".into(),
            "--config".into(),
            config.display().to_string(),
            "--id".into(),
            id.into(),
        ];
        // Port 0 for each listener unless `extra_args` fixes it (the lab
        // gives each controller a fixed gRPC port, so probes find it again
        // after a restart).
        for flag in ["--listen", "--metrics-listen", "--dns-listen"] {
            if !extra_args.iter().any(|a| a == flag) {
                args.push(flag.into());
                args.push(listen.clone());
            }
        }
        if !extra_args.iter().any(|a| a == "--state-dir") {
            args.push("--state-dir".into());
            args.push(dir.join(format!("{id}-state")).display().to_string());
        }
        args
    }

    /// Reads the `grpc=… metrics=…` line the controller prints once bound,
    /// looking only at what the log got from byte `since` on: a restart
    /// appends to the same log, and the previous run's line must not be
    /// taken for the new one's.
    async fn wait_started(&mut self, since: u64) -> anyhow::Result<()> {
        let prefix = format!("switchyard controller {} ", self.id);
        let (grpc, metrics, dns) = self
            .process
            .wait_line(
                &format!("controller {} to print its addresses", self.id),
                since,
                &prefix,
                READY_TIMEOUT,
                |line| {
                    let field = |name: &str| {
                        line.split_whitespace()
                            .find_map(|w| w.strip_prefix(name))
                            .and_then(|v| v.parse::<SocketAddr>().ok())
                    };
                    Some((field("grpc=")?, field("metrics=")?, field("dns=")))
                },
            )
            .await?;
        self.grpc = grpc;
        self.metrics = metrics;
        self.dns = dns;
        Ok(())
    }

    /// The controller id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The network namespace it runs in, if started with
    /// [`start_in`](Self::start_in).
    pub fn netns(&self) -> Option<&str> {
        self.netns.as_deref()
    }

    /// Its gRPC address (also its election value).
    pub fn grpc(&self) -> SocketAddr {
        self.grpc
    }

    /// `http://grpc-addr`, for tonic clients.
    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    /// Its embedded DNS server's address (UDP and TCP), when it runs one.
    pub fn dns(&self) -> Option<SocketAddr> {
        self.dns
    }

    /// Its metrics address.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics
    }

    /// The text of its `/metrics` page.
    pub async fn metrics(&self) -> anyhow::Result<String> {
        crate::http_get(self.metrics, "/metrics").await
    }

    /// The value of a metric line starting with `name` (labels included in
    /// `name` when given), if present.
    pub async fn metric(&self, name: &str) -> anyhow::Result<Option<f64>> {
        Ok(metric_value(&self.metrics().await?, name))
    }

    /// Waits up to `timeout` until metric `name` reads at least `min`.
    pub async fn wait_metric_at_least(
        &self,
        name: &str,
        min: f64,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        wait_for(
            &format!("{} to show {name} ≥ {min}", self.id),
            timeout,
            || async {
                match self.metric(name).await {
                    Ok(Some(v)) if v >= min => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            },
        )
        .await
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// SIGTERM and wait for the exit (SIGKILL after `grace`).
    pub async fn terminate(&mut self, grace: Duration) {
        self.process.terminate(grace).await;
    }

    /// SIGSTOP.
    pub fn pause(&mut self) {
        self.process.pause();
    }

    /// SIGCONT.
    pub fn resume(&mut self) {
        self.process.resume();
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    /// Starts it again (new ports; same namespace and arguments) after it
    /// was killed or stopped.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        let since = std::fs::metadata(self.process.log_path())
            .map(|m| m.len())
            .unwrap_or(0);
        self.process.restart(&self.dir)?;
        self.wait_started(since).await
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.process.log_path()).unwrap_or_default()
    }
}

/// The value of the first metric line whose name-and-labels part equals
/// `name`, or starts with it when `name` ends with `{` or a label prefix.
pub fn metric_value(text: &str, name: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (key, value) = l.rsplit_once(' ')?;
        let matches = if name.contains('{') {
            key.starts_with(name.trim_end_matches('}'))
        } else {
            key == name
        };
        if matches { value.parse().ok() } else { None }
    })
}
