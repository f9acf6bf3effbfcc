//! A real etcd (Debian's `etcd-server`): one member or a cluster, on free
//! loopback ports, each member in its own data dir. [`Etcd::single_on`]
//! listens on another address of the root namespace instead (a
//! [`NetNs`](crate::netns::NetNs) bridge), so processes inside network
//! namespaces reach it.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use etcd_client::{Client, ConnectOptions};

use crate::paths::{fixture_dir, system_bin};
use crate::ports::{free_port, looks_like_port_clash};
use crate::process::FixtureProcess;
use crate::wait::wait_for;

/// How long a member may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Start attempts when a port was taken by someone else meanwhile.
const ATTEMPTS: usize = 3;

/// One etcd member.
#[derive(Debug)]
struct Member {
    name: String,
    client_url: String,
    process: FixtureProcess,
    dir: PathBuf,
}

/// An etcd cluster of one or more members; stopped and deleted on drop.
#[derive(Debug)]
pub struct Etcd {
    members: Vec<Member>,
    // Declared last: the processes are killed before their directory goes.
    _dir: tempfile::TempDir,
}

impl Etcd {
    /// A single-member etcd.
    pub async fn single() -> anyhow::Result<Self> {
        Self::cluster(1).await
    }

    /// A single-member etcd in the root namespace whose client and peer
    /// URLs listen on `host` (for instance [`NetNs::host_addr`], so
    /// processes inside the namespaces reach it over the bridge).
    ///
    /// [`NetNs::host_addr`]: crate::netns::NetNs::host_addr
    pub async fn single_on(host: Ipv4Addr) -> anyhow::Result<Self> {
        Self::cluster_on(1, host).await
    }

    /// An etcd cluster of `size` members, ready to serve writes.
    pub async fn cluster(size: usize) -> anyhow::Result<Self> {
        Self::cluster_on(size, Ipv4Addr::LOCALHOST).await
    }

    /// An etcd cluster of `size` members listening on `host`.
    async fn cluster_on(size: usize, host: Ipv4Addr) -> anyhow::Result<Self> {
        anyhow::ensure!(size >= 1, "an etcd cluster needs at least one member");
        let mut last_err = None;
        for _ in 0..ATTEMPTS {
            match Self::try_cluster(size, host).await {
                Ok(e) => return Ok(e),
                Err(e) if format!("{e:#}").contains("port clash") => last_err = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow::anyhow!("etcd did not start")))
    }

    async fn try_cluster(size: usize, host: Ipv4Addr) -> anyhow::Result<Self> {
        let etcd = system_bin("etcd")?;
        let dir = fixture_dir("etcd")?;
        let token = dir
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "switchyard".into());
        let ports: Vec<(u16, u16)> = (0..size).map(|_| (free_port(), free_port())).collect();
        let initial_cluster = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("m{i}=http://{host}:{peer}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut members = Vec::with_capacity(size);
        for (i, (client, peer)) in ports.iter().enumerate() {
            let name = format!("m{i}");
            let mdir = dir.path().join(&name);
            std::fs::create_dir_all(&mdir)?;
            let client_url = format!("http://{host}:{client}");
            let args = vec![
                format!("--name={name}"),
                format!("--data-dir={}", mdir.join("data").display()),
                format!("--listen-client-urls={client_url}"),
                format!("--advertise-client-urls={client_url}"),
                format!("--listen-peer-urls=http://{host}:{peer}"),
                format!("--initial-advertise-peer-urls=http://{host}:{peer}"),
                format!("--initial-cluster={initial_cluster}"),
                "--initial-cluster-state=new".to_string(),
                format!("--initial-cluster-token={token}"),
                // Fast elections on loopback keep failover tests short.
                "--heartbeat-interval=50".to_string(),
                "--election-timeout=500".to_string(),
                "--logger=zap".to_string(),
                "--log-outputs=stderr".to_string(),
            ];
            let process =
                FixtureProcess::spawn(&name, &etcd, &args, &mdir, &mdir.join("etcd.log"))?;
            members.push(Member {
                name,
                client_url,
                process,
                dir: mdir,
            });
        }
        let mut cluster = Etcd { members, _dir: dir };
        for i in 0..size {
            cluster.wait_member_ready(i).await?;
        }
        // A cluster is ready when it has a leader and takes a write.
        cluster.wait_writable().await?;
        Ok(cluster)
    }

    async fn wait_member_ready(&mut self, i: usize) -> anyhow::Result<()> {
        let url = self.members[i].client_url.clone();
        let name = self.members[i].name.clone();
        let result = {
            let member = &mut self.members[i];
            wait_for(
                &format!("etcd member {name} at {url}"),
                READY_TIMEOUT,
                || {
                    let exited = member.process.exited();
                    let url = url.clone();
                    async move {
                        if let Some(status) = exited {
                            return Err(format!("exited with {status}"));
                        }
                        let opts = ConnectOptions::new()
                            .with_connect_timeout(Duration::from_millis(500))
                            .with_timeout(Duration::from_secs(1));
                        let mut c = Client::connect([url], Some(opts))
                            .await
                            .map_err(|e| e.to_string())?;
                        c.status().await.map(|_| ()).map_err(|e| e.to_string())
                    }
                },
            )
            .await
        };
        result.map_err(|e| {
            let tail = self.members[i].process.log_tail(4000);
            if looks_like_port_clash(&tail) {
                anyhow::anyhow!("port clash starting etcd {name}: {e}")
            } else {
                anyhow::anyhow!("{e}\n--- etcd {name} log tail ---\n{tail}")
            }
        })
    }

    /// Client URLs of every member, in member order.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client_url.clone()).collect()
    }

    /// The client URL of member `i`.
    pub fn endpoint(&self, i: usize) -> &str {
        &self.members[i].client_url
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Always false: a cluster has at least one member.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// A client connected to every member.
    pub async fn client(&self) -> anyhow::Result<Client> {
        let opts = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_timeout(Duration::from_secs(5));
        Client::connect(self.endpoints(), Some(opts))
            .await
            .context("connecting to the etcd fixture")
    }

    /// SIGKILL member `i` (its data stays; [`restart`](Self::restart) brings it back).
    pub fn kill(&mut self, i: usize) {
        self.members[i].process.kill();
    }

    /// SIGSTOP member `i`: alive but silent.
    pub fn pause(&mut self, i: usize) {
        self.members[i].process.pause();
    }

    /// SIGCONT member `i` after [`pause`](Self::pause).
    pub fn resume(&mut self, i: usize) {
        self.members[i].process.resume();
    }

    /// Stops every member (SIGKILL): an etcd outage.
    pub fn kill_all(&mut self) {
        for m in &mut self.members {
            m.process.kill();
        }
    }

    /// Starts member `i` again from its data dir and waits until it serves.
    pub async fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        let dir = self.members[i].dir.clone();
        self.members[i].process.restart(&dir)?;
        self.wait_member_ready(i).await
    }

    /// Restarts every stopped member and waits until the cluster takes writes.
    pub async fn restart_all(&mut self) -> anyhow::Result<()> {
        for i in 0..self.members.len() {
            if !self.members[i].process.is_running() {
                let dir = self.members[i].dir.clone();
                self.members[i].process.restart(&dir)?;
            }
        }
        for i in 0..self.members.len() {
            self.wait_member_ready(i).await?;
        }
        self.wait_writable().await
    }

    /// Waits until the cluster has a leader and takes a write.
    pub async fn wait_writable(&self) -> anyhow::Result<()> {
        let client = self.client().await?;
        wait_for("etcd to accept a write", READY_TIMEOUT, || {
            let mut c = client.clone();
            async move { c.put("/switchyard-fixture/ready", "1", None).await }
        })
        .await?;
        Ok(())
    }

    /// The process id of member `i`, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.members[i].process.pid()
    }
}
