//! A child server process owned by a fixture: logged to a file, killable,
//! pausable, and never outliving the test.
//!
//! Two guards stop orphans: `Drop` kills and reaps the child (this runs when a
//! test panics, too), and the child gets `PR_SET_PDEATHSIG = SIGKILL`, so the
//! kernel kills it if the test process dies without unwinding (a timeout's
//! SIGKILL, an abort). The death signal follows the *thread* that spawned the
//! child, so fixtures start their processes from the test's own thread, never
//! from `spawn_blocking`.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Environment variable set on every fixture child; `scripts/test` looks for
/// it in `/proc/*/environ` to prove nothing was left running.
pub const FIXTURE_ENV: &str = "SWITCHYARD_FIXTURE";

/// A running (or stopped) server process started by a fixture.
#[derive(Debug)]
pub struct FixtureProcess {
    name: String,
    command: Vec<String>,
    log_path: PathBuf,
    child: Option<Child>,
    paused: bool,
}

impl FixtureProcess {
    /// Spawns `program args…`, with stdout and stderr appended to `log_path`.
    pub fn spawn(
        name: &str,
        program: &Path,
        args: &[String],
        cwd: &Path,
        log_path: &Path,
    ) -> anyhow::Result<Self> {
        let mut command = vec![program.display().to_string()];
        command.extend(args.iter().cloned());
        let mut p = FixtureProcess {
            name: name.to_string(),
            command,
            log_path: log_path.to_path_buf(),
            child: None,
            paused: false,
        };
        p.start_with(cwd)?;
        Ok(p)
    }

    fn start_with(&mut self, cwd: &Path) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)?;
        let mut cmd = Command::new(&self.command[0]);
        cmd.args(&self.command[1..])
            .current_dir(cwd)
            .env(FIXTURE_ENV, "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        set_parent_death_signal(&mut cmd);
        let child = cmd.spawn().map_err(|e| {
            anyhow::anyhow!("cannot start {} ({}): {e}", self.name, self.command[0])
        })?;
        self.child = Some(child);
        self.paused = false;
        Ok(())
    }

    /// Starts the same command again after the process was killed or stopped.
    pub fn restart(&mut self, cwd: &Path) -> anyhow::Result<()> {
        anyhow::ensure!(
            !self.is_running(),
            "{} is still running; stop it before restarting",
            self.name
        );
        self.start_with(cwd)
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// True while the process has not exited (a paused process is running).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            None => false,
            Some(c) => matches!(c.try_wait(), Ok(None)),
        }
    }

    /// The exit status if the process has exited on its own, for readiness
    /// checks that should fail fast instead of waiting out their deadline.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Waits until the log, from byte `since` on, holds a complete line
    /// starting with `prefix` that `parse` accepts, and returns what
    /// `parse` made of the newest one. Fails at once, with the log, if the
    /// process exits. A restart appends to the same log: `since` keeps an
    /// earlier run's line from counting, and only complete lines are read
    /// (half a line could parse as a truncated port).
    pub async fn wait_line<T>(
        &mut self,
        what: &str,
        since: u64,
        prefix: &str,
        timeout: Duration,
        parse: impl Fn(&str) -> Option<T>,
    ) -> anyhow::Result<T> {
        let log = self.log_path.clone();
        let parse = &parse;
        crate::wait::wait_for(what, timeout, || {
            let exited = self.exited();
            let bytes = std::fs::read(&log).unwrap_or_default();
            let start = usize::try_from(since)
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            let text = String::from_utf8_lossy(&bytes[start..]).into_owned();
            async move {
                if let Some(s) = exited {
                    return Err(format!("exited with {s}: {text}"));
                }
                let complete = text.rfind('\n').map_or("", |n| &text[..n]);
                let line = complete
                    .lines()
                    .rev()
                    .find(|l| l.starts_with(prefix))
                    .ok_or_else(|| format!("no line starting {prefix:?} yet"))?;
                parse(line).ok_or_else(|| format!("unparsable line {line:?}"))
            }
        })
        .await
    }

    /// SIGKILL and reap: the crash a failover has to survive.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(c.id(), libc::SIGKILL);
            let _ = c.wait();
        }
        self.paused = false;
    }

    /// SIGTERM, wait up to `grace` for a clean exit, then SIGKILL.
    pub async fn terminate(&mut self, grace: Duration) {
        if let Some(mut c) = self.child.take() {
            if self.paused {
                signal(c.id(), libc::SIGCONT);
            }
            signal(c.id(), libc::SIGTERM);
            let deadline = Instant::now() + grace;
            loop {
                if matches!(c.try_wait(), Ok(Some(_)) | Err(_)) {
                    break;
                }
                if Instant::now() >= deadline {
                    signal(c.id(), libc::SIGKILL);
                    let _ = c.wait();
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        self.paused = false;
    }

    /// SIGSTOP: the process is alive but does nothing (a hung or partitioned
    /// node). Returns once the kernel reports every thread stopped, so a
    /// request sent after `pause` cannot be served by the paused process.
    pub fn pause(&mut self) {
        if let Some(c) = &self.child {
            let pid = c.id();
            signal(pid, libc::SIGSTOP);
            self.paused = true;
            let deadline = Instant::now() + Duration::from_secs(2);
            while !all_threads_stopped(pid) && Instant::now() < deadline {
                std::thread::yield_now();
            }
        }
    }

    /// SIGCONT after [`pause`](Self::pause).
    pub fn resume(&mut self) {
        if let Some(c) = &self.child {
            signal(c.id(), libc::SIGCONT);
            self.paused = false;
        }
    }

    /// The last `max_bytes` of the process log, for error messages.
    pub fn log_tail(&self, max_bytes: u64) -> String {
        log_tail(&self.log_path, max_bytes)
    }

    /// Where the process writes its output.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }
}

impl Drop for FixtureProcess {
    fn drop(&mut self) {
        if let Some(c) = &self.child
            && self.paused
        {
            signal(c.id(), libc::SIGCONT);
        }
        self.kill();
    }
}

/// The last `max_bytes` of a log file (empty if unreadable).
pub fn log_tail(path: &Path, max_bytes: u64) -> String {
    let Ok(mut f) = File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(max_bytes)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// Sends signal `sig` to process `pid` (for tests that time a signal's effect
/// without waiting for the process to exit).
pub fn signal(pid: u32, sig: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        #[allow(unsafe_code)]
        // SAFETY: kill(2) takes plain integers and touches no memory of ours.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

fn set_parent_death_signal(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    #[allow(unsafe_code)]
    // SAFETY: the closure runs between fork and exec and calls only prctl(2),
    // which is async-signal-safe and allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// True when every thread of `pid` is in the stopped state (`T`).
fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return true;
    };
    tasks.flatten().all(|t| {
        std::fs::read_to_string(t.path().join("stat"))
            .ok()
            .and_then(|stat| {
                stat.rsplit(')')
                    .next()
                    .map(|rest| rest.trim_start().starts_with('T'))
            })
            .unwrap_or(true)
    })
}
