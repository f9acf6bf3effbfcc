//! No fixture process outlives its test: not when the test panics (Drop runs
//! while unwinding), and not when the test process is killed outright (the
//! kernel delivers the parent-death signal).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use switchyard_tests::Etcd;
use switchyard_tests::wait::wait_for;

fn alive(pid: u32) -> bool {
    // A zombie is dead for our purpose; it is reaped by its parent.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .map(|rest| rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_test_leaves_no_server_behind() -> anyhow::Result<()> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let etcd = Etcd::single().await.expect("etcd starts");
        tx.send(etcd.pid(0).expect("running")).ok();
        panic!("the test body fails while the fixture is alive");
    });
    let pid = rx.await?;
    assert!(task.await.is_err(), "the task panicked");
    assert!(!alive(pid), "etcd {pid} outlived a panicking test");
    Ok(())
}

/// Run only as a child of the test below: starts etcd, prints its pid, and
/// waits to be killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "helper process for a_killed_test_process_leaves_no_server_behind"]
async fn orphan_helper() {
    if std::env::var("SWITCHYARD_ORPHAN_HELPER").is_err() {
        return;
    }
    let etcd = Etcd::single().await.expect("etcd starts");
    println!("ETCD_PID={}", etcd.pid(0).expect("running"));
    tokio::time::sleep(Duration::from_secs(600)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_test_process_leaves_no_server_behind() -> anyhow::Result<()> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--exact", "orphan_helper", "--ignored", "--nocapture"])
        .env("SWITCHYARD_ORPHAN_HELPER", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().expect("piped");
    let pid = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|l| {
                l.strip_prefix("ETCD_PID=")
                    .and_then(|p| p.parse::<u32>().ok())
            })
    })
    .await?
    .ok_or_else(|| anyhow::anyhow!("the helper did not report an etcd pid"))?;
    assert!(alive(pid));
    child.kill()?; // SIGKILL: no unwinding, no Drop.
    child.wait()?;
    wait_for(
        "the orphaned etcd to die",
        Duration::from_secs(10),
        || async move {
            if alive(pid) {
                Err("still running")
            } else {
                Ok(())
            }
        },
    )
    .await?;
    Ok(())
}
