//! Real MariaDB servers (Debian's `mariadb-server`) replicating with GTID:
//! one primary and N replicas, each its own `mariadbd` with its own data dir,
//! `server_id`, binlog, `log_slave_updates` and `gtid_strict_mode`.
//!
//! Every member starts with `read_only=ON`, as production configs should (a
//! crashed primary must not come back writable); the fixture then turns the
//! primary writable. Users are created from an init file with `sql_log_bin=0`
//! so that no member has GTIDs of its own before replication starts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use mysql_async::prelude::*;
use mysql_async::{Conn, Opts, OptsBuilder};

use crate::paths::{fixture_dir, system_bin};
use crate::ports::{free_port, looks_like_port_clash};
use crate::process::FixtureProcess;
use crate::wait::wait_for;

/// Administrative user the fixture creates on every member.
pub const ADMIN_USER: &str = "switchyard";
/// Password of [`ADMIN_USER`].
pub const ADMIN_PASSWORD: &str = "switchyard-test";
/// Replication user the replicas connect as.
pub const REPL_USER: &str = "repl";
/// Password of [`REPL_USER`].
pub const REPL_PASSWORD: &str = "repl-test";

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const ATTEMPTS: usize = 3;

/// One `mariadbd`.
#[derive(Debug)]
struct Member {
    port: u16,
    dir: PathBuf,
    args: Vec<String>,
    process: FixtureProcess,
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
        let dir = fixture_dir("mariadb")?;
        let mut members = Vec::with_capacity(replicas + 1);
        for i in 0..=replicas {
            members.push(start_member(dir.path(), i).await?);
        }
        let topo = MariaDbTopology { members, _dir: dir };
        topo.exec(0, "SET GLOBAL read_only = OFF").await?;
        let primary_port = topo.members[0].port;
        for i in 1..=replicas {
            topo.replicate_from(i, primary_port).await?;
        }
        for i in 1..=replicas {
            topo.wait_replicating(i).await?;
        }
        Ok(topo)
    }

    /// Points member `i` at `127.0.0.1:source_port` with GTID auto-positioning
    /// (`MASTER_USE_GTID=slave_pos`) and starts replication.
    pub async fn replicate_from(&self, i: usize, source_port: u16) -> anyhow::Result<()> {
        let sql = format!(
            "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={source_port}, \
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

    /// `127.0.0.1:port` of member `i`.
    pub fn address(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.members[i].port)
    }

    /// A `mysql://` URL for member `i` as the admin user.
    pub fn url(&self, i: usize) -> String {
        format!(
            "mysql://{ADMIN_USER}:{ADMIN_PASSWORD}@127.0.0.1:{}/",
            self.members[i].port
        )
    }

    /// Connection options for member `i`, for callers that build their own pool.
    pub fn opts(&self, i: usize) -> Opts {
        member_opts(self.members[i].port)
    }

    /// A new connection to member `i`.
    pub async fn conn(&self, i: usize) -> anyhow::Result<Conn> {
        Conn::new(self.opts(i))
            .await
            .with_context(|| format!("connecting to member {i} at {}", self.address(i)))
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

    /// Starts member `i` again on the same port and data dir; it comes back
    /// read-only, and a replica resumes replication by itself.
    pub async fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        let m = &mut self.members[i];
        m.process.restart(&m.dir)?;
        let port = m.port;
        wait_ready(&mut m.process, port).await
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

fn member_opts(port: u16) -> Opts {
    OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(port)
        .user(Some(ADMIN_USER))
        .pass(Some(ADMIN_PASSWORD))
        .prefer_socket(false)
        .into()
}

async fn start_member(root: &Path, i: usize) -> anyhow::Result<Member> {
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
             GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO '{REPL_USER}'@'%';\n"
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
            "--bind-address=127.0.0.1".to_string(),
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
        let mut process = FixtureProcess::spawn(
            &format!("mariadbd member {i}"),
            &mariadbd,
            &args,
            &dir,
            &dir.join("error.log"),
        )?;
        match wait_ready(&mut process, port).await {
            Ok(()) => {
                return Ok(Member {
                    port,
                    dir,
                    args,
                    process,
                });
            }
            Err(e) => {
                let tail = process.log_tail(4000);
                process.kill();
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

async fn wait_ready(process: &mut FixtureProcess, port: u16) -> anyhow::Result<()> {
    let log = process.log_path().to_path_buf();
    let r = wait_for(&format!("mariadbd on port {port}"), READY_TIMEOUT, || {
        let exited = process.exited();
        async move {
            if let Some(s) = exited {
                return Err(format!("exited with {s}"));
            }
            let mut c = Conn::new(member_opts(port))
                .await
                .map_err(|e| e.to_string())?;
            c.query_drop("DO 1").await.map_err(|e| e.to_string())?;
            c.disconnect().await.ok();
            Ok::<_, String>(())
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
