//! Network namespaces for partition tests: N namespaces on one bridge, each
//! with its own address, so that a region's controller and database can run
//! in their own namespace and be cut off with iptables *inside* it, the way
//! a real region loses its links.
//!
//! Needs root, `iproute2` and `iptables` (installed by `scripts/setup`).
//! When namespaces cannot be created, [`NetNs::create`] says why
//! ([`NetNsError::Unsupported`]); tests must fail with that message, not
//! pass.
//!
//! Every name carries this process's pid and a per-process counter, and the
//! /24 used (`10.213.<x>.0/24`) is claimed with a file under
//! `/run/switchyard-netns/`, so parallel tests and test processes never
//! clash. `Drop` kills every process left in the namespaces and deletes the
//! namespaces, veths, bridge and claim, also when a test panics.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::process::FIXTURE_ENV;

/// Where subnet claims live.
const CLAIMS: &str = "/run/switchyard-netns";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// What can go wrong.
#[derive(Debug)]
pub enum NetNsError {
    /// This machine cannot create namespaces (not root, no `ip`, no
    /// permission in a container): the reason, for the test to report.
    Unsupported(String),
    /// A setup command failed.
    Command {
        /// The command line.
        command: String,
        /// What it printed on stderr, or the spawn error.
        detail: String,
    },
    /// Every `10.213.x.0/24` is claimed.
    NoSubnet,
}

impl std::fmt::Display for NetNsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NetNsError::Unsupported(why) => {
                write!(f, "network namespaces are not available here: {why}")
            }
            NetNsError::Command { command, detail } => write!(f, "`{command}` failed: {detail}"),
            NetNsError::NoSubnet => write!(f, "every 10.213.x.0/24 subnet is claimed"),
        }
    }
}

impl std::error::Error for NetNsError {}

/// N namespaces on one bridge. Namespace `i` has address
/// `10.213.<x>.<i + 2>/24` on `eth0`; the bridge in the root namespace has
/// `10.213.<x>.1`, so processes in the root namespace reach them too.
#[derive(Debug)]
pub struct NetNs {
    names: Vec<String>,
    host_veths: Vec<String>,
    bridge: Option<String>,
    octet: u8,
    claim: Option<PathBuf>,
    partitioned: Vec<bool>,
}

impl NetNs {
    /// Creates `n` namespaces with loopback up, joined by a fresh bridge.
    pub fn create(n: usize) -> Result<Self, NetNsError> {
        let pid = std::process::id();
        let k = COUNTER.fetch_add(1, Ordering::Relaxed);
        probe_support(pid, k)?;
        let mut me = NetNs {
            names: Vec::new(),
            host_veths: Vec::new(),
            bridge: None,
            octet: 0,
            claim: None,
            partitioned: vec![false; n],
        };
        // From here on, Drop undoes whatever was created.
        let (octet, claim) = claim_subnet(pid, k)?;
        me.octet = octet;
        me.claim = Some(claim);
        let bridge = format!("syb{pid:x}x{k:x}");
        ip(&["link", "add", &bridge, "type", "bridge"])?;
        me.bridge = Some(bridge.clone());
        ip(&[
            "addr",
            "add",
            &format!("10.213.{octet}.1/24"),
            "dev",
            &bridge,
        ])?;
        ip(&["link", "set", &bridge, "up"])?;
        for i in 0..n {
            let ns = format!("sy-{pid}-{k}-{i}");
            ip(&["netns", "add", &ns])?;
            me.names.push(ns.clone());
            let host = format!("sv{pid:x}x{k:x}x{i:x}");
            let peer = format!("sp{pid:x}x{k:x}x{i:x}");
            ip(&["link", "add", &host, "type", "veth", "peer", "name", &peer])?;
            me.host_veths.push(host.clone());
            ip(&["link", "set", &peer, "netns", &ns])?;
            ip(&["-n", &ns, "link", "set", &peer, "name", "eth0"])?;
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("10.213.{octet}.{}/24", i + 2),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            ip(&["link", "set", &host, "master", &bridge])?;
            ip(&["link", "set", &host, "up"])?;
        }
        Ok(me)
    }

    /// Number of namespaces.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The name of namespace `i` (for `ip netns exec`).
    pub fn name(&self, i: usize) -> &str {
        &self.names[i]
    }

    /// The address of namespace `i`.
    pub fn addr(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 213, self.octet, i as u8 + 2)
    }

    /// The bridge's address in the root namespace.
    pub fn host_addr(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 213, self.octet, 1)
    }

    /// `cmd` (program, arguments, environment, working directory) wrapped
    /// in `ip netns exec` for namespace `i`, marked with [`FIXTURE_ENV`];
    /// set its stdio and spawn it. Whatever still runs in the namespace is
    /// killed on drop, but the caller should wait on or kill its child.
    pub fn command_in(&self, i: usize, cmd: &Command) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.names[i]])
            .arg(cmd.get_program())
            .args(cmd.get_args())
            .env(FIXTURE_ENV, "netns");
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        if let Some(dir) = cmd.get_current_dir() {
            c.current_dir(dir);
        }
        c
    }

    /// Spawns `cmd` inside namespace `i` (see [`NetNs::command_in`]), with
    /// the parent's stdio.
    pub fn run_in(&self, i: usize, cmd: &Command) -> std::io::Result<Child> {
        self.command_in(i, cmd).spawn()
    }

    /// Cuts namespace `i` off: iptables inside it drops every packet in and
    /// out except on its own loopback. Idempotent.
    pub fn partition(&mut self, i: usize) -> Result<(), NetNsError> {
        if self.partitioned[i] {
            return Ok(());
        }
        for rule in RULES {
            iptables(&self.names[i], "-I", rule)?;
        }
        self.partitioned[i] = true;
        Ok(())
    }

    /// Undoes [`NetNs::partition`]. Idempotent.
    pub fn heal(&mut self, i: usize) -> Result<(), NetNsError> {
        if !self.partitioned[i] {
            return Ok(());
        }
        for rule in RULES {
            iptables(&self.names[i], "-D", rule)?;
        }
        self.partitioned[i] = false;
        Ok(())
    }

    /// True while namespace `i` is partitioned.
    pub fn is_partitioned(&self, i: usize) -> bool {
        self.partitioned[i]
    }

    /// A TCP listener bound to `addr` inside namespace `i`, for a server
    /// this process runs itself (an HTTP endpoint of a region): a socket
    /// belongs to the namespace it was made in, whatever thread uses it
    /// later, so it is made on a short-lived thread that enters the
    /// namespace first. Non-blocking, ready for `tokio`.
    pub fn bind_tcp(&self, i: usize, addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
        bind_tcp_in(&self.names[i], addr)
    }
}

/// The command line that runs `program args…` inside namespace `ns`, or
/// as it is when `ns` is `None`: `ip netns exec <ns> program args…`, which
/// execs the program in place, so its pid (and with it kill, pause and
/// the parent-death signal) is the program's. Returns what to spawn and
/// its arguments.
pub fn exec_in(
    ns: Option<&str>,
    program: &std::path::Path,
    args: &[String],
) -> anyhow::Result<(PathBuf, Vec<String>)> {
    let Some(ns) = ns else {
        return Ok((program.to_path_buf(), args.to_vec()));
    };
    let mut wrapped = vec![
        "netns".to_string(),
        "exec".to_string(),
        ns.to_string(),
        program.display().to_string(),
    ];
    wrapped.extend(args.iter().cloned());
    Ok((crate::paths::system_bin("ip")?, wrapped))
}

/// [`NetNs::bind_tcp`] by namespace name (a listener bound again later,
/// after the [`NetNs`] was borrowed).
pub fn bind_tcp_in(ns: &str, addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let path = PathBuf::from("/run/netns").join(ns);
    std::thread::scope(|s| {
        s.spawn(|| {
            use std::os::fd::AsRawFd;
            let file = std::fs::File::open(&path)?;
            // SAFETY: setns on a namespace file we hold open; it changes
            // only this thread's network namespace, and the thread ends
            // right after binding.
            #[allow(unsafe_code)]
            let entered = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            if entered != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let listener = std::net::TcpListener::bind(addr)?;
            listener.set_nonblocking(true)?;
            Ok(listener)
        })
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the binding thread panicked")))
    })
}

impl Drop for NetNs {
    fn drop(&mut self) {
        for ns in &self.names {
            kill_all_in(ns);
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!("netns fixture: {e}");
            }
        }
        // Deleting a namespace deletes its veth ends; the host ends go with
        // them, but make sure.
        for v in &self.host_veths {
            let _ = quiet_ip(&["link", "del", v]);
        }
        if let Some(br) = &self.bridge
            && let Err(e) = ip(&["link", "del", br])
        {
            eprintln!("netns fixture: {e}");
        }
        if let Some(claim) = &self.claim {
            let _ = std::fs::remove_file(claim);
        }
    }
}

/// Rules inserted at the top of INPUT and OUTPUT by `partition`.
const RULES: [&[&str]; 2] = [
    &["INPUT", "1", "!", "-i", "lo", "-j", "DROP"],
    &["OUTPUT", "1", "!", "-o", "lo", "-j", "DROP"],
];

fn iptables(ns: &str, op: &str, rule: &[&str]) -> Result<(), NetNsError> {
    // `-D` takes the rule without the position.
    let rule: Vec<&str> = if op == "-D" {
        rule.iter()
            .enumerate()
            .filter(|(i, _)| *i != 1)
            .map(|(_, s)| *s)
            .collect()
    } else {
        rule.to_vec()
    };
    let mut args = vec!["netns", "exec", ns, "iptables", "-w", op];
    args.extend(rule);
    run("ip", &args)
}

fn kill_all_in(ns: &str) {
    let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() else {
        return;
    };
    for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        let _ = Command::new("kill")
            .args(["-9", pid])
            .stderr(Stdio::null())
            .status();
    }
}

/// Fails with [`NetNsError::Unsupported`] when a namespace cannot be made.
fn probe_support(pid: u32, k: u32) -> Result<(), NetNsError> {
    let probe = format!("sy-{pid}-{k}-probe");
    match ip(&["netns", "add", &probe]) {
        Ok(()) => {
            let _ = ip(&["netns", "del", &probe]);
            Ok(())
        }
        Err(NetNsError::Command { detail, .. }) => Err(NetNsError::Unsupported(format!(
            "`ip netns add` failed (root and iproute2 are needed): {detail}"
        ))),
        Err(e) => Err(e),
    }
}

/// Claims a free `10.213.x.0/24`: a file created exclusively, holding our
/// pid; a claim whose pid is gone is taken over. The search starts at a
/// value derived from the pid so parallel processes rarely collide.
fn claim_subnet(pid: u32, k: u32) -> Result<(u8, PathBuf), NetNsError> {
    std::fs::create_dir_all(CLAIMS).map_err(|e| NetNsError::Command {
        command: format!("mkdir -p {CLAIMS}"),
        detail: e.to_string(),
    })?;
    let start = (pid.wrapping_mul(31).wrapping_add(k)) % 254;
    for step in 0..254 {
        let octet = ((start + step) % 254 + 1) as u8;
        let path = PathBuf::from(CLAIMS).join(format!("10.213.{octet}"));
        for _ in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    use std::io::Write as _;
                    let _ = writeln!(f, "{pid}");
                    return Ok((octet, path));
                }
                Err(_) => {
                    let owner = std::fs::read_to_string(&path).unwrap_or_default();
                    let alive = owner
                        .trim()
                        .parse::<u32>()
                        .map(|p| PathBuf::from(format!("/proc/{p}")).exists())
                        // Being written right now: treat as alive.
                        .unwrap_or(true);
                    if alive {
                        break;
                    }
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
    }
    Err(NetNsError::NoSubnet)
}

fn ip(args: &[&str]) -> Result<(), NetNsError> {
    run("ip", args)
}

fn quiet_ip(args: &[&str]) -> std::io::Result<std::process::ExitStatus> {
    Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
}

fn run(program: &str, args: &[&str]) -> Result<(), NetNsError> {
    let command = format!("{program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| NetNsError::Command {
            command: command.clone(),
            detail: e.to_string(),
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NetNsError::Command {
            command,
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}
