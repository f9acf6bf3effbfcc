//! A rolling upgrade (issue 14, item 2): the three controllers are
//! replaced one at a time — SIGTERM, then the new binary started on the
//! same addresses — while probes report and an action is in flight.
//!
//! The "new binary" is a copy of the one under test at another path: no
//! older build exists on a clean clone, so this checks the procedure and
//! the hand-overs, not compatibility between versions (the journal's and
//! the reports' formats are versioned by their own tests).
//!
//! Checked: the evacuation in flight when the roll starts (its attempts
//! blocked on the traffic backend's lock, failing within their step budget
//! and retried, until the leader is replaced) is applied exactly once (one
//! apply in the backend's calls journal, one intent done, none left
//! pending); replacing a follower never moves leadership; replacing the
//! leader moves it exactly once.

use crate::common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Cluster, REGIONS, seed_weights, target, write_config};
use switchyard_tests::ports::free_port;
use switchyard_tests::wait::wait_for;
use switchyard_tests::{ControllerProcess, Etcd};

/// Every distinct leader value seen, in order, polled every 20 ms.
struct LeaderLog {
    seen: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl LeaderLog {
    async fn start(cl: &Cluster) -> anyhow::Result<Self> {
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut client = cl.etcd.client().await?;
        let key = cl.leader_key();
        let (s, st) = (seen.clone(), stop.clone());
        tokio::spawn(async move {
            while !st.load(Ordering::Relaxed) {
                if let Ok(Ok(r)) =
                    tokio::time::timeout(Duration::from_secs(1), client.leader(key.clone())).await
                    && let Some(v) = r.kv().and_then(|kv| kv.value_str().ok())
                {
                    let mut seen = s.lock().expect("lock");
                    if seen.last().map(String::as_str) != Some(v) {
                        seen.push(v.to_string());
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        Ok(Self { seen, stop })
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().expect("lock").clone()
    }
}

impl Drop for LeaderLog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controllers_replaced_one_by_one_finish_the_action_in_flight_once() -> anyhow::Result<()> {
    let etcd = Etcd::single().await?;
    let dir = tempfile::Builder::new()
        .prefix("switchyard-fixture-upgrade-")
        .tempdir()?;
    let name = Cluster::name();
    let (config, weights) = write_config(dir.path(), &etcd.endpoints(), &name);
    seed_weights(&weights);
    // Fixed gRPC ports, as a deployment has: probes and peers find a
    // replaced controller where the old one was.
    let listen: Vec<String> = REGIONS
        .iter()
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let old_bin = Path::new(env!("CARGO_BIN_EXE_switchyard"));
    let new_bin = dir.path().join("switchyard-new");
    std::fs::copy(old_bin, &new_bin)?;
    let args = |i: usize| vec!["--listen".to_string(), listen[i].clone()];
    let mut controllers = Vec::new();
    for (i, r) in REGIONS.iter().enumerate() {
        controllers.push(
            ControllerProcess::start_with_args(
                old_bin,
                &config,
                &format!("ctl-{r}"),
                dir.path(),
                &args(i),
            )
            .await?,
        );
    }
    let mut cl = Cluster {
        etcd,
        controllers,
        dir,
        config,
        weights,
        cluster: name,
    };
    let fleet = cl.all_up_fleet();
    let first = cl.wait_leader(None, Duration::from_secs(20)).await?;
    let leaders = LeaderLog::start(&cl).await?;

    // An action in flight: the leader writes its intent for region a's
    // evacuation, then blocks on the traffic backend's lock.
    let lock_path = {
        let mut p = cl.weights.as_os_str().to_owned();
        p.push(".lock");
        std::path::PathBuf::from(p)
    };
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)?;
    lock.lock()?;
    fleet.set_all(&target("a"), &REGIONS, false);
    wait_for("a pending intent", Duration::from_secs(20), || async {
        let j = cl.journal().await.map_err(|e| e.to_string())?;
        if j.iter().any(|e| e["status"] == "pending") {
            Ok(())
        } else {
            Err(format!("journal: {j:?}"))
        }
    })
    .await?;
    assert_eq!(cl.calls(), 0, "nothing applied while the lock is held");

    // Followers first, then the leader (the order an operator follows;
    // runbooks/controller-upgrade.md): SIGTERM, new binary, same address.
    let mut order: Vec<usize> = (0..REGIONS.len()).filter(|i| *i != first).collect();
    order.push(first);
    let mut lock = Some(lock);
    let mut leader_replacements = 0;
    for i in order {
        let was_leader = cl.leader().await == Some(i);
        if was_leader {
            leader_replacements += 1;
        }
        cl.controllers[i].terminate(Duration::from_secs(15)).await;
        if was_leader {
            // The action may go on now, under the next leader.
            drop(lock.take());
            cl.wait_leader(Some(i), Duration::from_secs(15)).await?;
        }
        let id = format!("ctl-{}", REGIONS[i]);
        cl.controllers[i] =
            ControllerProcess::start_with_args(&new_bin, &cl.config, &id, cl.dir.path(), &args(i))
                .await?;
        // Give the new process time to register and catch up.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    drop(lock);

    // While the lock was held the leader's attempts failed within their
    // step budget and were retried with backoff, across the replacements.
    let journal = wait_for(
        "the evacuation to be done",
        Duration::from_secs(60),
        || async {
            let j = cl.journal().await.map_err(|e| e.to_string())?;
            if j.iter().any(|e| e["status"] == "done") {
                Ok(j)
            } else {
                Err(format!("{j:?}"))
            }
        },
    )
    .await?;
    // Give any duplicate a chance to show up, then count.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let journal_now = cl.journal().await?;
    assert_eq!(
        cl.calls(),
        1,
        "the weights were applied exactly once: {journal_now:?}"
    );
    assert_eq!(cl.weights()["a"], 0);
    let done = journal_now.iter().filter(|e| e["status"] == "done").count();
    assert_eq!(done, 1, "one intent done: {journal_now:?}");
    assert!(
        journal_now
            .iter()
            .all(|e| e["status"] == "done" || e["status"] == "failed"),
        "nothing left pending: {journal_now:?}"
    );
    assert!(journal_now.len() >= journal.len());
    let seen = leaders.seen();
    let changes = seen.len().saturating_sub(1);
    assert!(
        changes >= 1 && changes <= leader_replacements,
        "leadership moved {changes} times for {leader_replacements} replaced leader(s) \
         (at most once per replaced leader, never for a follower): {seen:?}"
    );
    // Every controller now runs the new binary and answers.
    for c in &mut cl.controllers {
        assert!(c.is_running(), "{} exited", c.id());
    }
    Ok(())
}
