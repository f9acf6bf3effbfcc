//! A three-region cluster of real controller processes on a real etcd, with
//! the file traffic backend (its calls journal counts actions across
//! processes) and fake probes streaming to every controller.

#![allow(dead_code)]

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

/// Writes the config for a cluster on `etcd`.
pub fn write_config(dir: &Path, endpoints: &[String], cluster: &str) -> (PathBuf, PathBuf) {
    let weights = dir.join("weights.json");
    let mut toml = format!(
        r#"
cluster = "{cluster}"

[etcd]
endpoints = [{endpoints}]
lease_ttl = "{ttl}s"

[dns]
backend = "file"
path = "{weights}"

[policy]
fall = 2
rise = 2
quorum = 2
stale_after = "5s"
max_evacuated = 1
failback = "manual"
"#,
        endpoints = endpoints
            .iter()
            .map(|e| format!("\"{e}\""))
            .collect::<Vec<_>>()
            .join(", "),
        ttl = LEASE_TTL.as_secs(),
        weights = weights.display(),
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
    for r in REGIONS {
        toml.push_str(&format!(
            "\n[[services.endpoints]]\nregion = \"{r}\"\nvalue = \"192.0.2.1\"\ntarget = \"127.0.0.1:1\"\n"
        ));
    }
    toml.push_str(
        "\n[[services.checks]]\nkind = \"http\"\ninterval = \"1s\"\ntimeout = \"500ms\"\npath = \"/\"\n",
    );
    let path = dir.join("switchyard.toml");
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
    /// etcd (one member, or `etcd_members`) plus three controllers.
    pub async fn start(etcd_members: usize) -> anyhow::Result<Cluster> {
        let etcd = Etcd::cluster(etcd_members).await?;
        let dir = tempfile::Builder::new()
            .prefix("switchyard-fixture-cluster-")
            .tempdir()?;
        let cluster = format!("t{}", std::process::id());
        let (config, weights) = write_config(dir.path(), &etcd.endpoints(), &cluster);
        seed_weights(&weights);
        let mut controllers = Vec::new();
        for r in REGIONS {
            controllers.push(
                ControllerProcess::start(
                    Path::new(env!("CARGO_BIN_EXE_switchyard")),
                    &config,
                    &format!("ctl-{r}"),
                    dir.path(),
                )
                .await?,
            );
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

    /// gRPC URLs of every controller.
    pub fn urls(&self) -> Vec<String> {
        self.controllers.iter().map(|c| c.grpc_url()).collect()
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
