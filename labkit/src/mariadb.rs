//! Real MariaDB servers (Debian's `mariadb-server`) replicating with GTID:
//! one primary and N replicas, each its own `mariadbd` with its own data dir,
//! `server_id`, binlog, `log_slave_updates` and `gtid_strict_mode`.
//!
//! Every member starts with `read_only=ON`, as production configs should (a
//! crashed primary must not come back writable); the fixture then turns the
//! primary writable. Users are created from an init file with `sql_log_bin=0`
//! so that no member has GTIDs of its own before replication starts.
//!
//! [`MariaDbTopology::start`] runs every member on loopback.
//! [`MariaDbTopology::start_in`] runs each member inside a network namespace
//! of a [`NetNs`], listening on the namespace's address; the fixture then
//! talks to every member through its unix socket, which a partition (iptables
//! inside the namespace) does not touch.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use mysql_async::prelude::*;
use mysql_async::{Conn, Opts, OptsBuilder};

use crate::netns::NetNs;
use crate::paths::{fixture_dir, system_bin};
use crate::ports::{free_port, looks_like_port_clash};
use crate::process::FixtureProcess;
use crate::wait::{NotReady, wait_for, wait_for_or_fail};

/// Administrative user the fixture creates on every member.
pub const ADMIN_USER: &str = "switchyard";
/// Password of [`ADMIN_USER`].
pub const ADMIN_PASSWORD: &str = "switchyard-test";
/// Replication user the replicas connect as.
pub const REPL_USER: &str = "repl";
/// Password of [`REPL_USER`].
pub const REPL_PASSWORD: &str = "repl-test";
/// Application user on every member: it may read, write and create tables
/// but holds no privilege that bypasses `read_only` (no `SUPER`, `READ_ONLY
/// ADMIN` or `CONNECTION ADMIN`), so a read-only member refuses its writes.
///
/// Not plain `app`: suites create their own `'app'@'%'` with narrower
/// grants (`replication/tests/mariadb`), which must neither clash with this
/// one nor be widened by the init file when a member restarts.
pub const APP_USER: &str = "sy_app";
/// Password of [`APP_USER`].
pub const APP_PASSWORD: &str = "app-test";

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const ATTEMPTS: usize = 3;

/// One `mariadbd`.
#[derive(Debug)]
struct Member {
    /// The address it listens on (`127.0.0.1` or its namespace's address).
    host: String,
    port: u16,
    dir: PathBuf,
    /// `mariadbd`'s own options (without any `ip netns exec` prefix).
    args: Vec<String>,
    /// The namespace it runs in, if any; a restart runs there again.
    netns: Option<String>,
    process: FixtureProcess,
}

impl Member {
    fn socket_path(&self) -> PathBuf {
        self.dir.join("mysqld.sock")
    }

    /// How the fixture itself reaches this member: TCP on loopback as
    /// always, or the unix socket for a member in a namespace, so a
    /// partition does not cut the fixture off.
    fn fixture_opts(&self) -> Opts {
        if self.netns.is_some() {
            socket_opts(&self.socket_path(), ADMIN_USER, ADMIN_PASSWORD)
        } else {
            member_opts(&self.host, self.port)
        }
    }

    fn describe(&self) -> String {
        match &self.netns {
            Some(ns) => format!(
                "{}:{} in {ns} (via {})",
                self.host,
                self.port,
                self.socket_path().display()
            ),
            None => format!("{}:{}", self.host, self.port),
        }
    }
}

/// Where a member runs.
struct Placement<'a> {
    /// Namespace name, for `ip netns exec`; `None` for the root namespace.
    netns: Option<&'a str>,
    /// The address `--bind-address` gets.
    host: String,
}

/// A primary (member 0) and its replicas; every server is stopped and its
/// data deleted on drop.
#[derive(Debug)]
pub struct MariaDbTopology {
    members: Vec<Member>,
    // Declared last: the processes are killed before their directory goes.
    _dir: tempfile::TempDir,
}

impl MariaDbTopology {
    /// Starts a primary and `replicas` replicas, replicating with GTID, and
    /// returns when every replica's IO and SQL threads run.
    pub async fn start(replicas: usize) -> anyhow::Result<Self> {
        let placements: Vec<Placement<'_>> = (0..=replicas)
            .map(|_| Placement {
                netns: None,
                host: "127.0.0.1".to_string(),
            })
            .collect();
        Self::start_placed(&placements).await
    }

    /// Like [`start`](Self::start), but member `i` listens on its own
    /// loopback address `127.0.0.<i + 1>`, so that records naming members
    /// by address (a writer record) tell them apart.
    pub async fn start_on_loopback_hosts(replicas: usize) -> anyhow::Result<Self> {
        let placements: Vec<Placement<'_>> = (0..=replicas)
            .map(|i| Placement {
                netns: None,
                host: format!("127.0.0.{}", i + 1),
            })
            .collect();
        Self::start_placed(&placements).await
    }

    /// Starts one member per entry of `placement`, member `k` inside
    /// namespace `placement[k]` of `net`, listening on that namespace's
    /// address (several members may share a namespace). Member 0 is the
    /// primary, the others replicate from it over the bridge; returns when
    /// every replica's IO and SQL threads run.
    ///
    /// The fixture's own connections ([`exec`](Self::exec),
    /// [`query`](Self::query), [`conn`](Self::conn), …) go through each
    /// member's unix socket, so they keep working while its namespace is
    /// partitioned; [`address`](Self::address) and [`opts`](Self::opts) give
    /// the TCP endpoint other processes use.
    pub async fn start_in(net: &NetNs, placement: &[usize]) -> anyhow::Result<Self> {
        anyhow::ensure!(
            !placement.is_empty(),
            "a topology needs at least its primary"
        );
        if let Some(&bad) = placement.iter().find(|&&ns| ns >= net.len()) {
            anyhow::bail!(
                "placement names namespace {bad}, but there are only {}",
                net.len()
            );
        }
        let placements: Vec<Placement<'_>> = placement
            .iter()
            .map(|&ns| Placement {
                netns: Some(net.name(ns)),
                host: net.addr(ns).to_string(),
            })
            .collect();
        Self::start_placed(&placements).await
    }

    async fn start_placed(placements: &[Placement<'_>]) -> anyhow::Result<Self> {
        let dir = fixture_dir("mariadb")?;
        let mut members = Vec::with_capacity(placements.len());
        for (i, placement) in placements.iter().enumerate() {
            members.push(start_member(dir.path(), i, placement).await?);
        }
        let topo = MariaDbTopology { members, _dir: dir };
        topo.exec(0, "SET GLOBAL read_only = OFF").await?;
        for i in 1..placements.len() {
            topo.replicate_from_member(i, 0).await?;
        }
        for i in 1..placements.len() {
            topo.wait_replicating(i).await?;
        }
        Ok(topo)
    }

    /// Points member `i` at `127.0.0.1:source_port` with GTID auto-positioning
    /// (`MASTER_USE_GTID=slave_pos`) and starts replication. Only for
    /// loopback topologies; see [`replicate_from_member`](Self::replicate_from_member).
    pub async fn replicate_from(&self, i: usize, source_port: u16) -> anyhow::Result<()> {
        self.replicate_from_host(i, "127.0.0.1", source_port).await
    }

    /// Points member `i` at member `source` (its real host and port, so this
    /// works across namespaces) with GTID auto-positioning and starts
    /// replication.
    pub async fn replicate_from_member(&self, i: usize, source: usize) -> anyhow::Result<()> {
        let (host, port) = (self.members[source].host.clone(), self.members[source].port);
        self.replicate_from_host(i, &host, port).await
    }

    async fn replicate_from_host(&self, i: usize, host: &str, port: u16) -> anyhow::Result<()> {
        let sql = format!(
            "CHANGE MASTER TO MASTER_HOST='{host}', MASTER_PORT={port}, \
             MASTER_USER='{REPL_USER}', MASTER_PASSWORD='{REPL_PASSWORD}', \
             MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1"
        );
        self.exec(i, &sql).await?;
        self.exec(i, "START SLAVE").await
    }

    /// Waits until member `i` has both replication threads running.
    pub async fn wait_replicating(&self, i: usize) -> anyhow::Result<()> {
        wait_for(
            &format!("member {i} to replicate"),
            READY_TIMEOUT,
            || async move {
                let row: Option<mysql_async::Row> = self
                    .query_first(i, "SHOW SLAVE STATUS")
                    .await
                    .map_err(|e| e.to_string())?;
                let row = row.ok_or("no replication configured")?;
                let io: Option<String> = row.get("Slave_IO_Running");
                let sql: Option<String> = row.get("Slave_SQL_Running");
                let err: Option<String> = row.get("Last_Error");
                let io_err: Option<String> = row.get("Last_IO_Error");
                if io.as_deref() == Some("Yes") && sql.as_deref() == Some("Yes") {
                    Ok(())
                } else {
                    Err(format!(
                        "IO {io:?}, SQL {sql:?}, last error {err:?}, last IO error {io_err:?}"
                    ))
                }
            },
        )
        .await
    }

    /// Number of members (primary included).
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Always false: a topology has at least its primary.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// TCP port of member `i`.
    pub fn port(&self, i: usize) -> u16 {
        self.members[i].port
    }

    /// The address member `i` listens on: `127.0.0.1`, or its namespace's
    /// address for a topology made by [`start_in`](Self::start_in).
    pub fn host(&self, i: usize) -> String {
        self.members[i].host.clone()
    }

    /// `host:port` of member `i`: the TCP address other processes use.
    pub fn address(&self, i: usize) -> String {
        format!("{}:{}", self.members[i].host, self.members[i].port)
    }

    /// Member `i`'s unix socket (in its directory, reachable from every
    /// namespace and untouched by a partition).
    pub fn socket_path(&self, i: usize) -> PathBuf {
        self.members[i].socket_path()
    }

    /// The namespace member `i` runs in, if any.
    pub fn netns(&self, i: usize) -> Option<&str> {
        self.members[i].netns.as_deref()
    }

    /// A `mysql://` URL for member `i` as the admin user, over TCP.
    pub fn url(&self, i: usize) -> String {
        format!("mysql://{ADMIN_USER}:{ADMIN_PASSWORD}@{}/", self.address(i))
    }

    /// Admin connection options for member `i` over TCP, for callers that
    /// build their own pool.
    pub fn opts(&self, i: usize) -> Opts {
        member_opts(&self.members[i].host, self.members[i].port)
    }

    /// Admin connection options for member `i` over its unix socket.
    pub fn opts_socket(&self, i: usize) -> Opts {
        socket_opts(&self.members[i].socket_path(), ADMIN_USER, ADMIN_PASSWORD)
    }

    /// [`APP_USER`]'s connection options for member `i` over its unix
    /// socket: a writer that `read_only` stops.
    pub fn app_opts_socket(&self, i: usize) -> Opts {
        socket_opts(&self.members[i].socket_path(), APP_USER, APP_PASSWORD)
    }

    /// A new admin connection to member `i`: over TCP for a loopback
    /// topology, over the unix socket for one made by
    /// [`start_in`](Self::start_in).
    pub async fn conn(&self, i: usize) -> anyhow::Result<Conn> {
        let m = &self.members[i];
        Conn::new(m.fixture_opts())
            .await
            .with_context(|| format!("connecting to member {i} at {}", m.describe()))
    }

    /// Runs one statement on member `i`.
    pub async fn exec(&self, i: usize, sql: &str) -> anyhow::Result<()> {
        let mut c = self.conn(i).await?;
        c.query_drop(sql)
            .await
            .with_context(|| format!("on member {i}: {sql}"))?;
        c.disconnect().await.ok();
        Ok(())
    }

    /// Runs a query on member `i` and returns every row.
    pub async fn query<T: FromRow + Send + 'static>(
        &self,
        i: usize,
        sql: &str,
    ) -> anyhow::Result<Vec<T>> {
        let mut c = self.conn(i).await?;
        let rows = c
            .query(sql)
            .await
            .with_context(|| format!("on member {i}: {sql}"))?;
        c.disconnect().await.ok();
        Ok(rows)
    }

    /// Runs a query on member `i` and returns the first row, if any.
    pub async fn query_first<T: FromRow + Send + 'static>(
        &self,
        i: usize,
        sql: &str,
    ) -> anyhow::Result<Option<T>> {
        let mut c = self.conn(i).await?;
        let row = c
            .query_first(sql)
            .await
            .with_context(|| format!("on member {i}: {sql}"))?;
        c.disconnect().await.ok();
        Ok(row)
    }

    /// A server variable of member `i` as a string (`@@gtid_current_pos`, …).
    pub async fn variable(&self, i: usize, name: &str) -> anyhow::Result<String> {
        let v: Option<Option<String>> = self.query_first(i, &format!("SELECT @@{name}")).await?;
        Ok(v.flatten().unwrap_or_default())
    }

    /// SIGKILL member `i`: a crash, with whatever was not yet replicated lost to the others.
    pub fn kill9(&mut self, i: usize) {
        self.members[i].process.kill();
    }

    /// A clean shutdown of member `i` (SIGTERM, then SIGKILL after 30 s).
    pub async fn stop(&mut self, i: usize) {
        self.members[i]
            .process
            .terminate(Duration::from_secs(30))
            .await;
    }

    /// SIGSTOP member `i`: it holds its connections but answers nothing.
    pub fn pause(&mut self, i: usize) {
        self.members[i].process.pause();
    }

    /// SIGCONT member `i`.
    pub fn resume(&mut self, i: usize) {
        self.members[i].process.resume();
    }

    /// Starts member `i` again on the same address, port and data dir (in
    /// the same namespace, if any); it comes back read-only, and a replica
    /// resumes replication by itself.
    pub async fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        let m = &mut self.members[i];
        m.process.restart(&m.dir)?;
        let (opts, what, data) = (m.fixture_opts(), m.describe(), m.dir.join("data"));
        wait_ready(&mut m.process, opts, &what, &data).await
    }

    /// True while member `i`'s process runs.
    pub fn is_running(&mut self, i: usize) -> bool {
        self.members[i].process.is_running()
    }

    /// The command-line options member `i` was started with.
    pub fn args(&self, i: usize) -> &[String] {
        &self.members[i].args
    }
}

fn member_opts(host: &str, port: u16) -> Opts {
    OptsBuilder::default()
        .ip_or_hostname(host)
        .tcp_port(port)
        .user(Some(ADMIN_USER))
        .pass(Some(ADMIN_PASSWORD))
        .prefer_socket(false)
        .into()
}

fn socket_opts(socket: &Path, user: &str, password: &str) -> Opts {
    OptsBuilder::default()
        .socket(Some(socket.display().to_string()))
        .prefer_socket(true)
        .user(Some(user))
        .pass(Some(password))
        .into()
}

async fn start_member(root: &Path, i: usize, placement: &Placement<'_>) -> anyhow::Result<Member> {
    let mariadbd = system_bin("mariadbd")?;
    let install = system_bin("mariadb-install-db")?;
    let dir = root.join(format!("member{i}"));
    let data = dir.join("data");
    // A private tmpdir: parallel installs sharing /tmp trip over each
    // other's temporary tables ("Error on delete of '/tmp/#sql-temptable…'").
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp)?;
    let user = run_as_user();
    let mut install_cmd = std::process::Command::new(&install);
    install_cmd
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
        .args(["--innodb-log-file-size=8M", "--innodb-buffer-pool-size=16M"])
        .arg(format!("--tmpdir={}", tmp.display()));
    if let Some(u) = &user {
        install_cmd.arg(format!("--user={u}"));
    }
    let out = install_cmd.output().context("running mariadb-install-db")?;
    anyhow::ensure!(
        out.status.success(),
        "mariadb-install-db failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let init = dir.join("init.sql");
    std::fs::write(
        &init,
        format!(
            "SET sql_log_bin=0;\n\
             CREATE USER IF NOT EXISTS '{ADMIN_USER}'@'%' IDENTIFIED BY '{ADMIN_PASSWORD}';\n\
             GRANT ALL PRIVILEGES ON *.* TO '{ADMIN_USER}'@'%' WITH GRANT OPTION;\n\
             CREATE USER IF NOT EXISTS '{REPL_USER}'@'%' IDENTIFIED BY '{REPL_PASSWORD}';\n\
             GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO '{REPL_USER}'@'%';\n\
             CREATE USER IF NOT EXISTS '{APP_USER}'@'%' IDENTIFIED BY '{APP_PASSWORD}';\n\
             GRANT SELECT, INSERT, UPDATE, DELETE, CREATE ON *.* TO '{APP_USER}'@'%';\n"
        ),
    )?;
    let server_id = 1001 + i as u32;
    let mut last = None;
    for _ in 0..ATTEMPTS {
        let port = free_port();
        let mut args = vec![
            "--no-defaults".to_string(),
            format!("--datadir={}", data.display()),
            format!("--port={port}"),
            format!("--bind-address={}", placement.host),
            format!("--socket={}", dir.join("mysqld.sock").display()),
            format!("--pid-file={}", dir.join("mysqld.pid").display()),
            format!("--tmpdir={}", tmp.display()),
            format!("--init-file={}", init.display()),
            format!("--server-id={server_id}"),
            "--log-bin=mysql-bin".to_string(),
            "--relay-log=relay-bin".to_string(),
            "--binlog-format=ROW".to_string(),
            "--log-slave-updates=ON".to_string(),
            "--gtid-strict-mode=ON".to_string(),
            "--read-only=ON".to_string(),
            "--event-scheduler=ON".to_string(),
            "--skip-name-resolve".to_string(),
            "--slave-net-timeout=4".to_string(),
            "--performance-schema=OFF".to_string(),
            "--innodb-buffer-pool-size=16M".to_string(),
            "--innodb-log-file-size=8M".to_string(),
            // Durable against a process crash (kill -9), which is what tests do;
            // an OS crash is out of scope on a test machine.
            "--innodb-flush-log-at-trx-commit=2".to_string(),
            "--sync-binlog=0".to_string(),
            "--max-connections=200".to_string(),
        ];
        if let Some(u) = &user {
            args.push(format!("--user={u}"));
        }
        // In a namespace, `ip netns exec` execs mariadbd in place: the pid
        // (and so kill, pause, the death signal) is the server's.
        let (program, argv) = crate::netns::exec_in(placement.netns, &mariadbd, &args)?;
        let process = FixtureProcess::spawn(
            &format!("mariadbd member {i}"),
            &program,
            &argv,
            &dir,
            &dir.join("error.log"),
        )?;
        let mut member = Member {
            host: placement.host.clone(),
            port,
            dir: dir.clone(),
            args: args.clone(),
            netns: placement.netns.map(str::to_string),
            process,
        };
        let (opts, what) = (member.fixture_opts(), member.describe());
        match wait_ready(&mut member.process, opts, &what, &data).await {
            Ok(()) => return Ok(member),
            Err(e) => {
                let tail = member.process.log_tail(4000);
                member.process.kill();
                if looks_like_port_clash(&tail) {
                    last = Some(e);
                    continue;
                }
                return Err(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("mariadbd did not start")))
}

/// mariadbd refuses to run as root unless told `--user=root`.
fn run_as_user() -> Option<String> {
    std::env::var("USER")
        .ok()
        .filter(|u| u == "root")
        .or_else(|| {
            // Containers often run as root with no USER set.
            let uid = std::fs::read_to_string("/proc/self/status")
                .ok()?
                .lines()
                .find(|l| l.starts_with("Uid:"))?
                .split_whitespace()
                .nth(1)?
                .to_string();
            (uid == "0").then(|| "root".to_string())
        })
}

/// Waits until this member's server answers at `opts` (the way the
/// fixture will talk to it), failing at once if it exits. The answer must
/// come from the server on `datadir`: every fixture member shares its
/// credentials, so when another test's server took the port first (this
/// one then fails to bind and exits), a bare "answers" was that other
/// server, and the caller configured the wrong one.
async fn wait_ready(
    process: &mut FixtureProcess,
    opts: Opts,
    what: &str,
    datadir: &Path,
) -> anyhow::Result<()> {
    let log = process.log_path().to_path_buf();
    // As the server reports it: resolved, without the trailing slash.
    let resolved = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let want = resolved(datadir);
    let r = wait_for_or_fail(&format!("mariadbd at {what}"), READY_TIMEOUT, || {
        let exited = process.exited();
        let opts = opts.clone();
        let want = want.clone();
        async move {
            if let Some(s) = exited {
                return Err(NotReady::Never(format!("exited with {s}")));
            }
            let yet = |e: mysql_async::Error| NotReady::Yet(e.to_string());
            let mut c = Conn::new(opts).await.map_err(yet)?;
            let dir: Option<String> = c.query_first("SELECT @@datadir").await.map_err(yet)?;
            c.disconnect().await.ok();
            let dir = dir.unwrap_or_default();
            if resolved(Path::new(dir.trim_end_matches('/'))) != want {
                // Ours fails to bind and exits: the next look says so.
                return Err(NotReady::Yet(format!(
                    "another server answers there (its data dir is {dir}): \
                     the port was taken before this one bound it"
                )));
            }
            Ok(())
        }
    })
    .await;
    r.map_err(|e| {
        anyhow::anyhow!(
            "{e}\n--- {} tail ---\n{}",
            log.display(),
            crate::process::log_tail(&log, 4000)
        )
    })
}
