//! A real etcd (Debian's `etcd-server`): one member or a cluster, on free
//! loopback ports, each member in its own data dir. [`Etcd::single_on`]
//! listens on another address of the root namespace instead (a
//! [`NetNs`](crate::netns::NetNs) bridge), so processes inside network
//! namespaces reach it; [`Etcd::cluster_in`] runs member `i` inside
//! namespace `i`, so cutting a namespace off cuts its member off too.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use etcd_client::{Certificate, Client, ConnectOptions, Identity, Permission, TlsOptions};

use crate::netns::NetNs;
use crate::paths::{fixture_dir, system_bin};
use crate::ports::{free_port, looks_like_port_clash};
use crate::process::FixtureProcess;
use crate::wait::{NotReady, wait_for, wait_for_or_fail};

/// How long a member may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Start attempts when a port was taken by someone else meanwhile.
const ATTEMPTS: usize = 3;

/// One etcd member.
#[derive(Debug)]
struct Member {
    name: String,
    client_url: String,
    /// Its peer URL: how a ready check knows the etcd answering at
    /// `client_url` is this member and not another test's.
    peer_url: String,
    process: FixtureProcess,
    dir: PathBuf,
}

/// TLS for a fixture etcd: server certificate, client certificates
/// required and checked against the CA (PEM bytes kept for the fixture's
/// own clients).
#[derive(Debug, Clone)]
struct ServerTls {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    client_cert: Vec<u8>,
    client_key: Vec<u8>,
    ca_pem: Vec<u8>,
}

/// Where one member runs: its address, and the namespace it runs in
/// (none: the root namespace).
#[derive(Debug, Clone)]
struct Place {
    host: Ipv4Addr,
    netns: Option<String>,
}

/// An etcd cluster of one or more members; stopped and deleted on drop.
#[derive(Debug)]
pub struct Etcd {
    members: Vec<Member>,
    tls: Option<ServerTls>,
    /// The root login once [`Etcd::enable_auth`] turned authentication on.
    root: Option<(String, String)>,
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

    /// A single-member etcd on loopback serving clients over TLS only, with
    /// `pki`'s server certificate, requiring client certificates signed by
    /// `pki`'s CA (`--client-cert-auth`).
    pub async fn single_tls(pki: &crate::pki::TestPki) -> anyhow::Result<Self> {
        let tls = ServerTls {
            ca: pki.ca.clone(),
            cert: pki.server.cert.clone(),
            key: pki.server.key.clone(),
            client_cert: std::fs::read(&pki.client.cert)?,
            client_key: std::fs::read(&pki.client.key)?,
            ca_pem: std::fs::read(&pki.ca)?,
        };
        Self::cluster_with(1, Ipv4Addr::LOCALHOST, Some(tls)).await
    }

    /// An etcd cluster of `size` members listening on `host`.
    async fn cluster_on(size: usize, host: Ipv4Addr) -> anyhow::Result<Self> {
        Self::cluster_with(size, host, None).await
    }

    /// An etcd cluster of one member per namespace of `net`: member `i`
    /// runs inside namespace `i` (through `ip netns exec`, which execs etcd
    /// in place, so kill and pause act on it) and listens on `net.addr(i)`.
    /// Processes in the root namespace reach it over the bridge.
    pub async fn cluster_in(net: &NetNs) -> anyhow::Result<Self> {
        anyhow::ensure!(!net.is_empty(), "an etcd cluster needs at least one member");
        let places: Vec<Place> = (0..net.len())
            .map(|i| Place {
                host: net.addr(i),
                netns: Some(net.name(i).to_string()),
            })
            .collect();
        Self::placed(&places, None).await
    }

    async fn cluster_with(
        size: usize,
        host: Ipv4Addr,
        tls: Option<ServerTls>,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(size >= 1, "an etcd cluster needs at least one member");
        let places: Vec<Place> = (0..size).map(|_| Place { host, netns: None }).collect();
        Self::placed(&places, tls).await
    }

    async fn placed(places: &[Place], tls: Option<ServerTls>) -> anyhow::Result<Self> {
        let mut last_err = None;
        for _ in 0..ATTEMPTS {
            match Self::try_cluster(places, tls.clone()).await {
                Ok(e) => return Ok(e),
                Err(e) if format!("{e:#}").contains("port clash") => last_err = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow::anyhow!("etcd did not start")))
    }

    async fn try_cluster(places: &[Place], tls: Option<ServerTls>) -> anyhow::Result<Self> {
        let size = places.len();
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
            .map(|(i, (_, peer))| format!("m{i}=http://{}:{peer}", places[i].host))
            .collect::<Vec<_>>()
            .join(",");
        let mut members = Vec::with_capacity(size);
        for (i, (client, peer)) in ports.iter().enumerate() {
            let host = places[i].host;
            let name = format!("m{i}");
            let mdir = dir.path().join(&name);
            std::fs::create_dir_all(&mdir)?;
            let scheme = if tls.is_some() { "https" } else { "http" };
            let client_url = format!("{scheme}://{host}:{client}");
            let mut args = vec![
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
                // As production should run it (etcd 3.5's default): a
                // member back from a partition does not depose the leader
                // with the terms it raised while away.
                "--pre-vote=true".to_string(),
                "--logger=zap".to_string(),
                "--log-outputs=stderr".to_string(),
            ];
            if let Some(t) = &tls {
                args.extend([
                    format!("--cert-file={}", t.cert.display()),
                    format!("--key-file={}", t.key.display()),
                    format!("--trusted-ca-file={}", t.ca.display()),
                    "--client-cert-auth".to_string(),
                ]);
            }
            let log = mdir.join("etcd.log");
            let (program, argv) = crate::netns::exec_in(places[i].netns.as_deref(), &etcd, &args)?;
            let process = FixtureProcess::spawn(&name, &program, &argv, &mdir, &log)?;
            members.push(Member {
                name,
                client_url,
                peer_url: format!("http://{host}:{peer}"),
                process,
                dir: mdir,
            });
        }
        let mut cluster = Etcd {
            members,
            tls,
            root: None,
            _dir: dir,
        };
        for i in 0..size {
            cluster.wait_member_ready(i).await?;
        }
        // A cluster is ready when it has a leader and takes a write.
        cluster.wait_writable().await?;
        Ok(cluster)
    }

    /// `base` with the fixture's client certificate and root login, if any.
    fn secure(
        tls: Option<&ServerTls>,
        root: Option<&(String, String)>,
        mut base: ConnectOptions,
    ) -> ConnectOptions {
        if let Some(t) = tls {
            base = base.with_tls(
                TlsOptions::new()
                    .ca_certificate(Certificate::from_pem(&t.ca_pem))
                    .identity(Identity::from_pem(&t.client_cert, &t.client_key)),
            );
        }
        if let Some((user, password)) = root {
            base = base.with_user(user.clone(), password.clone());
        }
        base
    }

    async fn wait_member_ready(&mut self, i: usize) -> anyhow::Result<()> {
        let tls = self.tls.clone();
        let url = self.members[i].client_url.clone();
        let name = self.members[i].name.clone();
        let peer = self.members[i].peer_url.clone();
        let result = {
            let member = &mut self.members[i];
            wait_for_or_fail(
                &format!("etcd member {name} at {url}"),
                READY_TIMEOUT,
                || {
                    let exited = member.process.exited();
                    let url = url.clone();
                    let peer = peer.clone();
                    let opts = Self::secure(
                        tls.as_ref(),
                        None,
                        ConnectOptions::new()
                            .with_connect_timeout(Duration::from_millis(500))
                            .with_timeout(Duration::from_secs(1)),
                    );
                    async move {
                        if let Some(status) = exited {
                            return Err(NotReady::Never(format!("exited with {status}")));
                        }
                        let yet = |e: etcd_client::Error| NotReady::Yet(e.to_string());
                        let mut c = Client::connect([url.clone()], Some(opts))
                            .await
                            .map_err(yet)?;
                        // Every fixture etcd answers the same way: the
                        // member list says whether this one does (another
                        // test's may hold the port, this one then exits).
                        let list = c.member_list().await.map_err(yet)?;
                        if list.members().iter().any(|m| m.peer_urls().contains(&peer)) {
                            Ok(())
                        } else {
                            Err(NotReady::Yet(format!(
                                "another etcd answers at {url}: the port was taken \
                                 before this member bound it"
                            )))
                        }
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

    /// A client connected to every member (with the fixture's client
    /// certificate on TLS, as root once authentication is on).
    pub async fn client(&self) -> anyhow::Result<Client> {
        let opts = Self::secure(
            self.tls.as_ref(),
            self.root.as_ref(),
            ConnectOptions::new()
                .with_connect_timeout(Duration::from_secs(2))
                .with_timeout(Duration::from_secs(5)),
        );
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

    /// Turns etcd's authentication on: a `root` user, and a user `user`
    /// (password `password`) whose only role, `switchyard-<cluster>`,
    /// reads and writes the keys under `/switchyard/<cluster>/` and
    /// nothing else — what a production etcd shared with other users
    /// would grant Switchyard. The fixture's own client logs in as root
    /// from then on.
    pub async fn enable_auth(
        &mut self,
        cluster: &str,
        user: &str,
        password: &str,
    ) -> anyhow::Result<()> {
        let root_password = format!("root-{}", std::process::id());
        let mut c = self.client().await?;
        c.user_add("root", root_password.as_str(), None).await?;
        c.user_grant_role("root", "root").await?;
        let role = format!("switchyard-{cluster}");
        c.role_add(role.as_str()).await?;
        c.role_grant_permission(
            role.as_str(),
            Permission::read_write(format!("/switchyard/{cluster}/")).with_prefix(),
        )
        .await?;
        c.user_add(user, password, None).await?;
        c.user_grant_role(user, role.as_str()).await?;
        c.auth_enable().await?;
        self.root = Some(("root".to_string(), root_password));
        Ok(())
    }

    /// The process id of member `i`, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.members[i].process.pid()
    }
}
