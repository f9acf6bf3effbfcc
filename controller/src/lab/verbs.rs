//! The lab's verbs: `switchyard lab up | status | fail REGION | partition
//! REGION | heal REGION | down`, each with `--dir D` (or
//! `SWITCHYARD_LAB_DIR`).
//!
//! `up` starts a server process ([`super::daemon`]) in the background that
//! runs the whole deployment and keeps its state in `D`: the config
//! (`lab.toml`), every process's log, the addresses of everything
//! (`lab.json`) and a control socket. The other verbs are requests to that
//! server over the socket, so they work from any shell, the way runbooks are
//! read and run. Nothing outside `D` is touched but the servers' own temp
//! dirs, and `D` is only deleted by `down --purge`, and only when `up`
//! created it (it carries [`MARKER`]).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The file `lab up` writes into the directory it takes, so `down --purge`
/// deletes only a directory the lab made its own.
pub const MARKER: &str = ".switchyard-lab";
/// The server's control socket, in the lab directory.
pub const SOCKET: &str = "control.sock";
/// The addresses of every part (JSON), written when the lab is ready and
/// rewritten after every change (a restarted controller has a new metrics
/// port).
pub const STATE: &str = "lab.json";
/// The server's process id.
pub const PID: &str = "server.pid";
/// The server's own output.
pub const LOG: &str = "lab.log";

/// How long `up` waits for the whole deployment (etcd, three MariaDB
/// servers, controllers, a leader) before giving up.
const UP_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a request may take (a heal restarts MariaDB and a controller).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(180);

/// What went wrong with a lab verb, said so the reader knows what to do.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The directory exists, holds files, and was not made by `lab up`.
    #[error(
        "{0} is not empty and was not created by `switchyard lab up` (no {MARKER} in it); \
         refusing to use or delete it: choose a new or empty directory"
    )]
    NotALabDir(PathBuf),
    /// A lab already runs there.
    #[error("a lab is already running in {0}; stop it with `switchyard lab down --dir {0}`")]
    AlreadyRunning(PathBuf),
    /// No lab server answers there.
    #[error(
        "no lab is running in {0} (nothing answers on its control socket); \
         start one with `switchyard lab up --dir {0}`"
    )]
    NotRunning(PathBuf),
    /// The region is not one of the lab's.
    #[error("the lab has no region {0:?}; its regions are us-east, eu-west, ap-south")]
    UnknownRegion(String),
    /// Servers the lab needs are not installed.
    #[error("missing: {}; run scripts/setup first", .0.join(", "))]
    Missing(Vec<String>),
    /// The server exited before the lab was up.
    #[error("the lab server exited before the lab was up; the end of {log}:\n{tail}")]
    ServerFailed {
        /// Its log.
        log: PathBuf,
        /// The end of it.
        tail: String,
    },
    /// Something took longer than its deadline.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The server refused the request, and said why.
    #[error("{0}")]
    Refused(String),
    /// Reading or writing the lab directory or socket.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The server answered something that is not a reply.
    #[error("the lab server answered nonsense: {0}")]
    Protocol(String),
}

/// A part of a region that `lab fail` can break.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum,
)]
pub enum Part {
    /// The region's service endpoint: refuses connections.
    Endpoint,
    /// The region's controller: killed (SIGKILL).
    Controller,
    /// The region's probe: killed (SIGKILL).
    Probe,
    /// The region's database member: `mariadbd` killed with -9.
    Database,
    /// The region's etcd member (member `i` for region `i`, as the
    /// Terraform example puts one per region): killed (SIGKILL).
    Etcd,
    /// The region's links: every packet into or out of its network
    /// namespace dropped, its processes left running (`lab partition`).
    /// Only when the lab runs in namespaces.
    Network,
}

impl Part {
    /// What `fail REGION` breaks without `--only`: the region's service
    /// and Switchyard's processes. Its etcd member only on request (`--only
    /// etcd`): with one member down, `switchyard` commands whose etcd
    /// client picks that member fail (see `runbooks/etcd-quorum-loss.md`).
    pub const ALL: [Part; 4] = [
        Part::Endpoint,
        Part::Controller,
        Part::Probe,
        Part::Database,
    ];
}

/// A request to the lab server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Request {
    /// What runs where.
    Status,
    /// Break `parts` of `region`.
    Fail {
        /// The region.
        region: String,
        /// What to break (empty: everything).
        parts: Vec<Part>,
    },
    /// Issue every certificate again over the same files, valid for
    /// `days` from now.
    RenewCerts {
        /// Validity of the new certificates, in days.
        days: u32,
    },
    /// Restart or repair whatever is broken in `region`.
    Heal {
        /// The region.
        region: String,
    },
    /// Stop everything and exit.
    Down,
}

/// The server's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reply {
    /// Whether the request was carried out.
    pub ok: bool,
    /// What was done, or why not.
    pub text: String,
}

/// The directory as an absolute path (the server runs elsewhere).
fn absolute(dir: &Path) -> Result<PathBuf, LabError> {
    Ok(if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        std::env::current_dir()?.join(dir)
    })
}

/// Sends `req` to the lab in `dir` and returns its reply.
pub fn request(dir: &Path, req: &Request) -> Result<Reply, LabError> {
    let sock = dir.join(SOCKET);
    let mut stream =
        UnixStream::connect(&sock).map_err(|_| LabError::NotRunning(dir.to_path_buf()))?;
    stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    let line = serde_json::to_string(req).map_err(|e| LabError::Protocol(e.to_string()))?;
    stream.write_all(line.as_bytes())?;
    stream.write_all(b"\n")?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).map_err(|e| {
        if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut {
            LabError::Timeout(format!("no answer from the lab in {REQUEST_TIMEOUT:?}"))
        } else {
            LabError::Io(e)
        }
    })?;
    serde_json::from_str(&answer).map_err(|e| LabError::Protocol(format!("{e}: {answer:?}")))
}

/// Sends `req` and prints the reply; a refusal becomes an error.
fn ask(dir: &Path, req: &Request, out: &mut dyn Write) -> Result<(), LabError> {
    let reply = request(&absolute(dir)?, req)?;
    if !reply.ok {
        return Err(LabError::Refused(reply.text));
    }
    out.write_all(reply.text.as_bytes())?;
    if !reply.text.ends_with('\n') {
        writeln!(out)?;
    }
    Ok(())
}

/// True when a lab server answers in `dir`.
fn answers(dir: &Path) -> bool {
    matches!(request(dir, &Request::Status), Ok(r) if r.ok)
}

/// `lab up`: starts the lab server in the background and returns once the
/// whole deployment is up and a controller leads, printing its status.
pub fn up(dir: &Path, out: &mut dyn Write) -> Result<(), LabError> {
    let dir = absolute(dir)?;
    if dir.exists() {
        if dir.join(MARKER).exists() {
            if answers(&dir) {
                return Err(LabError::AlreadyRunning(dir));
            }
        } else if std::fs::read_dir(&dir)?.next().is_some() {
            return Err(LabError::NotALabDir(dir));
        }
    }
    let missing = super::prerequisites();
    if !missing.is_empty() {
        return Err(LabError::Missing(missing));
    }
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join(MARKER),
        "Created by `switchyard lab up`; `switchyard lab down --purge` deletes this directory.\n",
    )?;
    for stale in [STATE, SOCKET, PID] {
        let _ = std::fs::remove_file(dir.join(stale));
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(LOG))?;
    let mut cmd = Command::new(std::env::current_exe()?);
    {
        use std::os::unix::process::CommandExt;
        // Its own process group: a Ctrl-C in the shell that ran `lab up`
        // does not reach it; `lab down` stops it.
        cmd.process_group(0);
    }
    let mut child = cmd
        .args(["lab", "serve", "--dir"])
        .arg(&dir)
        .current_dir(&dir)
        // Marks it and its children, so `scripts/check-leftovers` sees a
        // lab a test forgot to stop.
        .env(switchyard_labkit::FIXTURE_ENV, "1")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    std::fs::write(dir.join(PID), format!("{}\n", child.id()))?;
    writeln!(
        out,
        "lab: starting in {} (server pid {}, log {})",
        dir.display(),
        child.id(),
        dir.join(LOG).display()
    )?;
    out.flush()?;
    let deadline = Instant::now() + UP_TIMEOUT;
    loop {
        if dir.join(STATE).exists() && answers(&dir) {
            break;
        }
        if let Some(status) = child.try_wait()? {
            let tail = switchyard_labkit::process::log_tail(&dir.join(LOG), 4000);
            return Err(LabError::ServerFailed {
                log: dir.join(LOG),
                tail: format!("({status})\n{tail}"),
            });
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(LabError::Timeout(format!(
                "the lab was not up after {UP_TIMEOUT:?}; see {}",
                dir.join(LOG).display()
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    ask(&dir, &Request::Status, out)?;
    writeln!(
        out,
        "\nexport SWITCHYARD_CONFIG={} SWITCHYARD_TOKEN_FILE={} SWITCHYARD_LAB_DIR={}",
        dir.join("lab.toml").display(),
        dir.join(super::config::TOKEN_FILE).display(),
        dir.display()
    )?;
    Ok(())
}

/// `lab status`: what runs where, what is broken, who leads.
pub fn status(dir: &Path, out: &mut dyn Write) -> Result<(), LabError> {
    ask(dir, &Request::Status, out)
}

/// `lab fail REGION [--only PART,…]`: breaks a region (all of it by
/// default).
pub fn fail(dir: &Path, region: &str, parts: &[Part], out: &mut dyn Write) -> Result<(), LabError> {
    super::Lab::region_index(region)?;
    ask(
        dir,
        &Request::Fail {
            region: region.to_string(),
            parts: parts.to_vec(),
        },
        out,
    )
}

/// `lab partition REGION`: cuts a region off the network, its processes
/// left running.
pub fn partition(dir: &Path, region: &str, out: &mut dyn Write) -> Result<(), LabError> {
    fail(dir, region, &[Part::Network], out)
}

/// `lab renew-certs [--days N]`: the lab's CA issues every certificate
/// again over the same files (controllers', probes'); the processes
/// reload them, as the certificate-rotation runbook checks.
pub fn renew_certs(dir: &Path, days: u32, out: &mut dyn Write) -> Result<(), LabError> {
    if days == 0 {
        return Err(LabError::Refused(
            "--days must be at least 1: a certificate valid for no time is no certificate".into(),
        ));
    }
    ask(dir, &Request::RenewCerts { days }, out)
}

/// `lab heal REGION`: restarts or repairs whatever is broken in a region.
pub fn heal(dir: &Path, region: &str, out: &mut dyn Write) -> Result<(), LabError> {
    super::Lab::region_index(region)?;
    ask(
        dir,
        &Request::Heal {
            region: region.to_string(),
        },
        out,
    )
}

/// `lab down [--purge]`: stops every process of the lab and waits for the
/// server to exit; with `purge`, deletes the directory too. Refuses a
/// directory `lab up` did not create.
pub fn down(dir: &Path, purge: bool, out: &mut dyn Write) -> Result<(), LabError> {
    let dir = absolute(dir)?;
    if !dir.join(MARKER).exists() {
        return Err(LabError::NotALabDir(dir));
    }
    let pid: Option<u32> = std::fs::read_to_string(dir.join(PID))
        .ok()
        .and_then(|s| s.trim().parse().ok());
    match request(&dir, &Request::Down) {
        Ok(reply) => writeln!(out, "{}", reply.text.trim_end())?,
        Err(LabError::NotRunning(_)) => {
            writeln!(out, "lab: no server answers in {}", dir.display())?
        }
        Err(e) => return Err(e),
    }
    if let Some(pid) = pid {
        let deadline = Instant::now() + Duration::from_secs(90);
        while is_lab_server(pid) {
            if Instant::now() >= deadline {
                // Its children die with it (parent-death signal).
                switchyard_labkit::process::signal(pid, SIGKILL);
                writeln!(out, "lab: server {pid} did not stop; killed it")?;
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let _ = std::fs::remove_file(dir.join(PID));
    if purge {
        std::fs::remove_dir_all(&dir)?;
        writeln!(out, "lab: deleted {}", dir.display())?;
    } else {
        writeln!(
            out,
            "lab: stopped; logs stay in {} (`--purge` deletes it)",
            dir.display()
        )?;
    }
    Ok(())
}

/// SIGKILL (9 on Linux), without a libc dependency in this crate.
const SIGKILL: i32 = 9;

/// True while `pid` is a running `switchyard lab serve` (not a zombie, and
/// not a process that reused the pid).
fn is_lab_server(pid: u32) -> bool {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit(')')
                .next()
                .map(|r| r.trim_start().starts_with('Z'))
        });
    let cmd = String::from_utf8_lossy(&cmdline);
    cmd.contains("lab\0serve") && state == Some(false)
}
