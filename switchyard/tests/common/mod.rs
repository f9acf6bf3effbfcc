//! A three-region cluster of real controller processes on a real etcd, with
//! the file traffic backend (its calls journal counts actions across
//! processes) and fake probes streaming to every controller.

#![allow(dead_code)]

pub mod orders;
pub mod raw;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use switchyard_tests::reports::ReportFleet;
use switchyard_tests::wait::wait_for;
use switchyard_tests::{ControllerProcess, Etcd};

/// The three regions, each with a controller `ctl-<region>`.
pub const REGIONS: [&str; 3] = ["a", "b", "c"];
/// The one service record.
pub const RECORD: &str = "api.example.test.";
/// Lease TTL the test clusters use.
pub const LEASE_TTL: Duration = Duration::from_secs(2);

#[allow(unused_imports)]
pub use switchyard_tests::operators::{ADMIN_TOKEN, CHANGES, admin_operator};

/// A `switchyard` command reaching `servers` (tried in order; none: the
/// config's controllers) as the fixture's admin, whose token is in
/// `dir/admin.token`.
pub fn cli_command(dir: &Path, servers: &[String]) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"));
    if servers.is_empty() {
        cmd.env_remove("SWITCHYARD_SERVER");
    } else {
        cmd.env("SWITCHYARD_SERVER", servers.join(","));
    }
    cmd.env("SWITCHYARD_TOKEN_FILE", dir.join("admin.token"))
        .env_remove("SWITCHYARD_TOKEN")
        .env_remove("SWITCHYARD_CONFIG");
    cmd
}

/// The target id of the api endpoint in `region`.
pub fn target(region: &str) -> String {
    format!("svc:api@{region}")
}

/// A running cluster.
pub struct Cluster {
    pub etcd: Etcd,
    pub controllers: Vec<ControllerProcess>,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub weights: PathBuf,
    pub cluster: String,
}

/// The traffic backend a test cluster uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// The file backend: its calls journal counts actions across processes.
    File,
    /// Every controller serves the zone `example.test.` from its own DNS server.
    Embedded,
    /// Route 53 served by moto at `endpoint`, hosted zone `zone_id`
    /// (`example.test.`); controllers get moto's dummy credentials, and
    /// check for drift every 2 s.
    Route53 {
        /// moto's URL.
        endpoint: String,
        /// The hosted zone's id.
        zone_id: String,
    },
}

/// The environment a controller of `backend` needs.
pub fn backend_env(backend: &Backend) -> Vec<(&'static str, &'static str)> {
    match backend {
        Backend::Route53 { .. } => vec![
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ],
        _ => Vec::new(),
    }
}

/// The A record value of the api endpoint in region number `i`.
pub fn endpoint_ip(i: usize) -> String {
    format!("192.0.2.{}", i + 1)
}

/// Writes the config for a cluster on `etcd` with the file backend.
pub fn write_config(dir: &Path, endpoints: &[String], cluster: &str) -> (PathBuf, PathBuf) {
    write_config_with(dir, endpoints, cluster, Backend::File)
}

/// Writes the config for a cluster on `etcd` with `backend`.
pub fn write_config_with(
    dir: &Path,
    endpoints: &[String],
    cluster: &str,
    backend: Backend,
) -> (PathBuf, PathBuf) {
    write_config_extra(dir, endpoints, cluster, backend, "")
}

/// Writes the config, with `extra` TOML (e.g. databases) appended.
pub fn write_config_extra(
    dir: &Path,
    endpoints: &[String],
    cluster: &str,
    backend: Backend,
    extra: &str,
) -> (PathBuf, PathBuf) {
    write_config_full(
        dir,
        "switchyard.toml",
        endpoints,
        cluster,
        backend,
        extra,
        &[],
    )
}

/// Splits a `[policy]` table out of `extra` (its keys join the base
/// config's `[policy]`, as TOML allows a table once): the policy lines and
/// the rest.
fn split_policy(extra: &str) -> (String, String) {
    let (mut policy, mut rest, mut inside) = (String::new(), String::new(), false);
    for line in extra.lines() {
        let header = line.trim_start().starts_with('[');
        if header {
            inside = line.trim() == "[policy]";
            if inside {
                continue;
            }
        }
        let to = if inside { &mut policy } else { &mut rest };
        to.push_str(line);
        to.push('\n');
    }
    (policy, rest)
}

/// Writes config file `name`; `targets[i]` is where probes check region
/// `i`'s api endpoint (default: a port nothing listens on). A `[policy]`
/// table in `extra` adds to (or overrides nothing of) the base policy.
pub fn write_config_full(
    dir: &Path,
    name: &str,
    endpoints: &[String],
    cluster: &str,
    backend: Backend,
    extra: &str,
    targets: &[String],
) -> (PathBuf, PathBuf) {
    let weights = dir.join("weights.json");
    let dns = match &backend {
        Backend::File => format!("backend = \"file\"\npath = \"{}\"", weights.display()),
        Backend::Embedded => {
            "backend = \"embedded\"\nlisten = \"127.0.0.1:0\"\nzone = \"example.test.\"".to_string()
        }
        Backend::Route53 { endpoint, zone_id } => format!(
            "backend = \"route53\"\nhosted_zone_id = \"{zone_id}\"\nendpoint = \"{endpoint}\"\nmax_requests_per_second = 50"
        ),
    };
    let (policy_extra, extra) = split_policy(extra);
    let drift = if matches!(backend, Backend::Route53 { .. }) {
        "drift_check = \"2s\"\n"
    } else {
        ""
    };
    let mut toml = format!(
        r#"
cluster = "{cluster}"

[etcd]
endpoints = [{endpoints}]
lease_ttl = "{ttl}s"

[dns]
{dns}

[policy]
fall = 2
rise = 2
quorum = 2
stale_after = "8s" # above a database default check: 5s interval + 2s timeout
max_evacuated = 1
failback = "manual"
db_failover = "auto"
{drift}{policy_extra}"#,
        endpoints = endpoints
            .iter()
            .map(|e| format!("\"{e}\""))
            .collect::<Vec<_>>()
            .join(", "),
        ttl = LEASE_TTL.as_secs(),
    );
    for (i, r) in REGIONS.iter().enumerate() {
        toml.push_str(&format!(
            "\n[[regions]]\nname = \"{r}\"\nweight = 100\npriority = {}\n",
            i + 1
        ));
        toml.push_str(&format!(
            "\n[[controllers]]\nid = \"ctl-{r}\"\nregion = \"{r}\"\nlisten = \"127.0.0.1:0\"\n"
        ));
    }
    toml.push_str(&format!(
        "\n[[services]]\nname = \"api\"\nrecord = \"{RECORD}\"\nttl = 30\n"
    ));
    for (i, r) in REGIONS.iter().enumerate() {
        toml.push_str(&format!(
            "\n[[services.endpoints]]\nregion = \"{r}\"\nvalue = \"{}\"\ntarget = \"{}\"\n",
            endpoint_ip(i),
            targets.get(i).map_or("127.0.0.1:1", String::as_str)
        ));
    }
    toml.push_str(
        "\n[[services.checks]]\nkind = \"http\"\ninterval = \"1s\"\ntimeout = \"500ms\"\npath = \"/\"\n",
    );
    toml.push_str(&extra);
    toml.push_str(&admin_operator(dir));
    let path = dir.join(name);
    std::fs::write(&path, toml).expect("write config");
    (path, weights)
}

/// Base weights as the file backend stores them.
pub fn seed_weights(path: &Path) {
    let w: BTreeMap<String, BTreeMap<String, u32>> = [(
        RECORD.to_string(),
        REGIONS.iter().map(|r| (r.to_string(), 100)).collect(),
    )]
    .into();
    std::fs::write(path, serde_json::to_vec(&w).expect("json")).expect("seed weights");
}

impl Cluster {
    /// etcd (one member, or `etcd_members`) plus three controllers, with the
    /// file backend.
    pub async fn start(etcd_members: usize) -> anyhow::Result<Cluster> {
        Self::start_with(etcd_members, Backend::File).await
    }

    /// The same with a chosen traffic backend.
    pub async fn start_with(etcd_members: usize, backend: Backend) -> anyhow::Result<Cluster> {
        Self::start_extra(etcd_members, backend, |_| String::new()).await
    }

    /// The same with extra config written by `extra` (given the temp dir,
    /// e.g. for secret files).
    pub async fn start_extra(
        etcd_members: usize,
        backend: Backend,
        extra: impl FnOnce(&Path) -> String,
    ) -> anyhow::Result<Cluster> {
        Self::start_full(etcd_members, backend, extra, &[]).await
    }

    /// The same with the api endpoints' probe targets given (for real probes).
    pub async fn start_full(
        etcd_members: usize,
        backend: Backend,
        extra: impl FnOnce(&Path) -> String,
        targets: &[String],
    ) -> anyhow::Result<Cluster> {
        let etcd = Etcd::cluster(etcd_members).await?;
        Self::start_on(etcd, backend, "", extra, targets).await
    }

    /// Three controllers on a given `etcd` (one secured by TLS or a login,
    /// for instance), with `etcd_lines` added to the config's `[etcd]`
    /// table. The cluster is named `t<pid>`.
    pub async fn start_on(
        etcd: Etcd,
        backend: Backend,
        etcd_lines: &str,
        extra: impl FnOnce(&Path) -> String,
        targets: &[String],
    ) -> anyhow::Result<Cluster> {
        let dir = tempfile::Builder::new()
            .prefix("switchyard-fixture-cluster-")
            .tempdir()?;
        let cluster = Self::name();
        let extra = extra(dir.path());
        let (config, weights) = write_config_full(
            dir.path(),
            "switchyard.toml",
            &etcd.endpoints(),
            &cluster,
            backend.clone(),
            &extra,
            targets,
        );
        if !etcd_lines.is_empty() {
            let text = std::fs::read_to_string(&config)?;
            let at = text.find("\n[dns]").expect("the config has a [dns] table");
            std::fs::write(
                &config,
                format!("{}\n{etcd_lines}\n{}", &text[..at], &text[at..]),
            )?;
        }
        seed_weights(&weights);
        let mut controllers = Vec::new();
        let env = backend_env(&backend);
        for r in REGIONS {
            let bin = Path::new(env!("CARGO_BIN_EXE_switchyard"));
            let id = format!("ctl-{r}");
            controllers.push(if env.is_empty() {
                ControllerProcess::start(bin, &config, &id, dir.path()).await?
            } else {
                ControllerProcess::start_with_env(bin, &config, &id, dir.path(), &env).await?
            });
        }
        Ok(Cluster {
            etcd,
            controllers,
            dir,
            config,
            weights,
            cluster,
        })
    }

    /// The name [`Cluster::start_on`] gives the cluster (etcd roles are
    /// granted on its prefix before it starts).
    pub fn name() -> String {
        format!("t{}", std::process::id())
    }

    /// gRPC URLs of every controller.
    pub fn urls(&self) -> Vec<String> {
        self.controllers.iter().map(|c| c.grpc_url()).collect()
    }

    /// A `switchyard` command for this cluster's operator API (every
    /// controller, in order), as the fixture's admin.
    pub fn command(&self) -> std::process::Command {
        // Bare addresses: the CLI takes https for them under [tls].
        let servers: Vec<String> = self
            .controllers
            .iter()
            .map(|c| c.grpc().to_string())
            .collect();
        cli_command(self.dir.path(), &servers)
    }

    /// Runs `switchyard ARGS --config <this cluster's>` against its
    /// controllers as the fixture's admin: exit code, stdout, stderr.
    /// A change without `--reason` gets one naming the test's command.
    pub fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let mut cmd = self.command();
        cmd.args(args);
        if args.first().is_some_and(|a| CHANGES.contains(a)) && !args.contains(&"--reason") {
            cmd.args(["--reason", "fixture test"]);
        }
        let out = cmd
            .arg("--config")
            .arg(&self.config)
            .output()
            .expect("run switchyard");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// A real `switchyard probe` of `region` (id `probe-<region>`) with
    /// `config`, streaming to `controllers` (URLs); its log beside the
    /// config.
    pub fn spawn_probe(
        &self,
        config: &Path,
        region: &str,
        controllers: &[String],
    ) -> anyhow::Result<switchyard_tests::process::FixtureProcess> {
        let mut args = vec![
            "probe".to_string(),
            "--config".into(),
            config.display().to_string(),
            "--region".into(),
            region.into(),
            "--id".into(),
            format!("probe-{region}"),
        ];
        for url in controllers {
            args.push("--controller".into());
            args.push(url.clone());
        }
        switchyard_tests::process::FixtureProcess::spawn(
            &format!("probe {region}"),
            Path::new(env!("CARGO_BIN_EXE_switchyard")),
            &args,
            self.dir.path(),
            &self.dir.path().join(format!("probe-{region}.log")),
        )
    }

    /// Fake probes in every region seeing every endpoint up.
    pub fn all_up_fleet(&self) -> ReportFleet {
        let mut outcomes = BTreeMap::new();
        for t in REGIONS {
            for v in REGIONS {
                outcomes.insert((target(t), v.to_string()), true);
            }
        }
        ReportFleet::start(self.urls(), outcomes, Duration::from_millis(200))
    }

    /// The election key prefix.
    pub fn leader_key(&self) -> String {
        format!("/switchyard/{}/leader", self.cluster)
    }

    /// Index of the controller etcd names leader, if any.
    pub async fn leader(&self) -> Option<usize> {
        let mut c = self.etcd.client().await.ok()?;
        let resp = tokio::time::timeout(Duration::from_secs(2), c.leader(self.leader_key()))
            .await
            .ok()?
            .ok()?;
        let value = resp.kv()?.value_str().ok()?.to_string();
        self.controllers
            .iter()
            .position(|c| c.grpc().to_string() == value)
    }

    /// Waits for a leader other than `not`, within `timeout`.
    pub async fn wait_leader(
        &self,
        not: Option<usize>,
        timeout: Duration,
    ) -> anyhow::Result<usize> {
        wait_for("a leader", timeout, || async move {
            match self.leader().await {
                Some(i) if Some(i) != not => Ok(i),
                other => Err(format!("leader is {other:?}")),
            }
        })
        .await
    }

    /// Lines in the traffic backend's calls journal: applies across processes.
    pub fn calls(&self) -> usize {
        std::fs::read_to_string(switchyard_controller::traffic::file::calls_path(
            &self.weights,
        ))
        .map(|s| s.lines().count())
        .unwrap_or(0)
    }

    /// The record's weights in the backend now.
    pub fn weights(&self) -> BTreeMap<String, u32> {
        let all: BTreeMap<String, BTreeMap<String, u32>> =
            serde_json::from_slice(&std::fs::read(&self.weights).unwrap_or_default())
                .unwrap_or_default();
        all.get(RECORD).cloned().unwrap_or_default()
    }

    /// Journal entries as JSON values.
    pub async fn journal(&self) -> anyhow::Result<Vec<serde_json::Value>> {
        let mut c = self.etcd.client().await?;
        let prefix = format!("/switchyard/{}/journal/", self.cluster);
        let resp = c
            .get(prefix, Some(etcd_client::GetOptions::new().with_prefix()))
            .await?;
        Ok(resp
            .kvs()
            .iter()
            .filter_map(|kv| serde_json::from_slice(kv.value()).ok())
            .collect())
    }
}
