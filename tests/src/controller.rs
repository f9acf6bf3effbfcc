//! A `switchyard controller` process: started from the binary the test names
//! (`env!("CARGO_BIN_EXE_switchyard")`), on port 0, with the bound addresses
//! read from the line it prints; killed on drop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
}

impl ControllerProcess {
    /// Starts controller `id` of `config` with binary `bin`, logs in `dir`.
    pub async fn start(bin: &Path, config: &Path, id: &str, dir: &Path) -> anyhow::Result<Self> {
        let log = dir.join(format!("{id}.log"));
        let process = FixtureProcess::spawn(
            &format!("controller {id}"),
            bin,
            &Self::args(config, id),
            dir,
            &log,
        )?;
        let mut c = ControllerProcess {
            id: id.to_string(),
            grpc: SocketAddr::from(([127, 0, 0, 1], 0)),
            metrics: SocketAddr::from(([127, 0, 0, 1], 0)),
            dns: None,
            process,
            dir: dir.to_path_buf(),
        };
        c.wait_started().await?;
        Ok(c)
    }

    fn args(config: &Path, id: &str) -> Vec<String> {
        vec![
            "controller".into(),
            "--config".into(),
            config.display().to_string(),
            "--id".into(),
            id.into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--metrics-listen".into(),
            "127.0.0.1:0".into(),
            "--dns-listen".into(),
            "127.0.0.1:0".into(),
        ]
    }

    /// Reads the `grpc=… metrics=…` line the controller prints once bound.
    /// A restart appends to the same log, so the newest line wins.
    async fn wait_started(&mut self) -> anyhow::Result<()> {
        let log = self.process.log_path().to_path_buf();
        let prefix = format!("switchyard controller {} ", self.id);
        let process = &mut self.process;
        let (grpc, metrics, dns) = wait_for(
            &format!("controller {} to print its addresses", self.id),
            READY_TIMEOUT,
            || {
                let exited = process.exited();
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let prefix = prefix.clone();
                async move {
                    if let Some(s) = exited {
                        return Err(format!("exited with {s}: {text}"));
                    }
                    let line = text
                        .lines()
                        .rev()
                        .find(|l| l.starts_with(&prefix))
                        .ok_or_else(|| "no address line yet".to_string())?;
                    let field = |name: &str| {
                        line.split_whitespace()
                            .find_map(|w| w.strip_prefix(name))
                            .and_then(|v| v.parse::<SocketAddr>().ok())
                    };
                    match (field("grpc="), field("metrics=")) {
                        (Some(g), Some(m)) => Ok((g, m, field("dns="))),
                        _ => Err(format!("unparsable line {line:?}")),
                    }
                }
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

    /// Starts it again (new ports) after it was killed or stopped.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.process.restart(&self.dir)?;
        self.wait_started().await
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
