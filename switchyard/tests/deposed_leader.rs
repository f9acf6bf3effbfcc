//! A deposed leader sends no further SQL (issue: every external step guarded
//! by leadership). Three controller processes on a real etcd and a real
//! MariaDB primary with two GTID replicas; each controller connects with its
//! own MariaDB user, so the general log tells whose statement is whose.
//!
//! The leader is stopped (SIGSTOP) in the middle of a forced failover: after
//! it fenced the old primary, while it waits for the candidate to apply its
//! relay log (the candidate's SQL thread is stopped). A new leader takes
//! over, waits out the old lease and longest step, and finishes the intent
//! from its step cursor. Then the old leader is woken (SIGCONT): from that
//! moment no statement of its user reaches any member, and at every 10 ms
//! sample at most one member was writable.

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Backend, REGIONS};
use mysql_async::prelude::Queryable;
use switchyard_controller::store::Store;
use switchyard_tests::mariadb::{ADMIN_PASSWORD, REPL_PASSWORD, REPL_USER};
use switchyard_tests::reports::ReportFleet;
use switchyard_tests::wait::wait_for;
use switchyard_tests::{ControllerProcess, Etcd, MariaDbTopology};

/// The member regions: region c has none, so the controller of c sends SQL
/// only as leader (no primary lease to keep, nothing local to fence).
const MEMBER_REGIONS: [&str; 3] = ["a", "b", "b"];

fn db_user(region: &str) -> String {
    format!("ctl_{region}")
}

/// Creates each controller's MariaDB user on every member, unlogged (so no
/// member gets transactions the others lack), and turns the general log on.
async fn prepare_members(db: &MariaDbTopology, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut logs = Vec::new();
    for i in 0..db.len() {
        let mut c = db.conn(i).await?;
        c.query_drop("SET SESSION sql_log_bin = 0").await?;
        for r in REGIONS {
            let u = db_user(r);
            c.query_drop(format!(
                "CREATE USER IF NOT EXISTS '{u}'@'%' IDENTIFIED BY '{ADMIN_PASSWORD}'"
            ))
            .await?;
            c.query_drop(format!(
                "GRANT ALL PRIVILEGES ON *.* TO '{u}'@'%' WITH GRANT OPTION"
            ))
            .await?;
        }
        let log = dir.join(format!("general-m{i}.log"));
        std::fs::write(&log, "")?;
        std::fs::set_permissions(&log, std::os::unix::fs::PermissionsExt::from_mode(0o666))?;
        c.query_drop(format!("SET GLOBAL general_log_file = '{}'", log.display()))
            .await?;
        c.query_drop("SET GLOBAL general_log = ON").await?;
        c.disconnect().await?;
        logs.push(log);
    }
    Ok(logs)
}

/// One config per controller, the same but for the MariaDB user.
fn write_configs(
    dir: &Path,
    etcd: &Etcd,
    cluster: &str,
    db: &MariaDbTopology,
) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::write(dir.join("admin.secret"), ADMIN_PASSWORD)?;
    std::fs::write(dir.join("repl.secret"), REPL_PASSWORD)?;
    let mut paths = Vec::new();
    for r in REGIONS {
        let mut extra = format!(
            "\n[credentials.admin]\nuser = \"{}\"\npassword = {{ file = \"{}\" }}\n\
             \n[credentials.repl]\nuser = \"{REPL_USER}\"\npassword = {{ file = \"{}\" }}\n\
             \n[[databases]]\nname = \"orders\"\nkind = \"mariadb\"\nmax_lag = \"10s\"\n\
             credentials = \"admin\"\nreplication_credentials = \"repl\"\n",
            db_user(r),
            dir.join("admin.secret").display(),
            dir.join("repl.secret").display()
        );
        for (i, region) in MEMBER_REGIONS.iter().enumerate() {
            extra.push_str(&format!(
                "\n[[databases.members]]\nid = \"m{i}\"\nregion = \"{region}\"\naddress = \"{}\"\n",
                db.address(i)
            ));
        }
        let (path, weights) = common::write_config_full(
            dir,
            &format!("ctl-{r}.toml"),
            &etcd.endpoints(),
            cluster,
            Backend::File,
            &extra,
            &[],
        );
        common::seed_weights(&weights);
        paths.push(path);
    }
    Ok(paths)
}

/// Samples `read_only` of every member every 10 ms (over the admin user's
/// sockets) until stopped; returns the samples as writable flags, `None`
/// where a member could not be read.
fn sample_writable(
    db: &MariaDbTopology,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<Vec<Option<bool>>>> {
    let opts: Vec<mysql_async::Opts> = (0..db.len()).map(|i| db.opts_socket(i)).collect();
    tokio::spawn(async move {
        let mut conns = Vec::new();
        for o in &opts {
            conns.push(mysql_async::Conn::new(o.clone()).await.ok());
        }
        let mut samples = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        while !stop.load(Ordering::SeqCst) {
            tick.tick().await;
            let mut row = Vec::new();
            // A fence ends client sessions, the sampler's too: reconnect.
            for (c, o) in conns.iter_mut().zip(&opts) {
                if c.is_none() {
                    *c = mysql_async::Conn::new(o.clone()).await.ok();
                }
                let v = match c {
                    Some(conn) => conn
                        .query_first::<i64, _>("SELECT @@global.read_only")
                        .await
                        .ok()
                        .flatten()
                        .map(|ro| ro == 0),
                    None => None,
                };
                if v.is_none() {
                    *c = None;
                }
                row.push(v);
            }
            samples.push(row);
        }
        samples
    })
}

/// Statements a user's sessions sent after `offset` bytes of a general log
/// (a session is known by the thread id its `Connect` line names; closing
/// a connection, `Quit`, is not a statement).
fn statements_by(log: &str, user: &str, offset: usize) -> Vec<String> {
    let mut theirs = std::collections::BTreeSet::new();
    let mut found = Vec::new();
    let mut pos = 0;
    for line in log.split_inclusive('\n') {
        let start = pos;
        pos += line.len();
        // "[yymmdd hh:mm:ss]\t   <id> <Command>\t<argument>"
        let fields: Vec<&str> = line.trim_end().split('\t').collect();
        let Some(idx) = fields.iter().position(|f| {
            let mut w = f.split_whitespace();
            let (Some(id), Some(cmd), None) = (w.next(), w.next(), w.next()) else {
                return false;
            };
            id.parse::<u64>().is_ok() && cmd.starts_with(|c: char| c.is_ascii_uppercase())
        }) else {
            continue;
        };
        let mut head = fields[idx].split_whitespace();
        let (Some(id), Some(cmd)) = (head.next(), head.next()) else {
            continue;
        };
        let arg = fields.get(idx + 1).copied().unwrap_or("");
        if cmd == "Connect" && arg.starts_with(&format!("{user}@")) {
            theirs.insert(id.to_string());
        }
        if start >= offset && theirs.contains(id) && cmd != "Quit" {
            found.push(line.trim_end().to_string());
        }
    }
    found
}

fn file_len(p: &Path) -> usize {
    std::fs::metadata(p).map(|m| m.len() as usize).unwrap_or(0)
}

async fn journal(store: &Store) -> Result<Vec<serde_json::Value>, String> {
    let v: Vec<(String, serde_json::Value)> = store
        .list_json(&store.keys().journal_prefix())
        .await
        .map_err(|e| e.to_string())?;
    Ok(v.into_iter().map(|(_, e)| e).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_stopped_mid_failover_sends_no_sql_when_it_wakes() -> anyhow::Result<()> {
    let db = MariaDbTopology::start(2)
        .await
        .map_err(|e| e.context("starting the MariaDB topology"))?;
    let etcd = Etcd::single().await?;
    let dir = tempfile::Builder::new()
        .prefix("switchyard-fixture-deposed-")
        .tempdir()?;
    let logs = prepare_members(&db, dir.path()).await?;
    let cluster = format!("d{}", std::process::id());
    let configs = write_configs(dir.path(), &etcd, &cluster, &db)?;
    let bin = Path::new(env!("CARGO_BIN_EXE_switchyard"));
    // ctl-c first, so it leads; then the others.
    let mut controllers =
        vec![ControllerProcess::start(bin, &configs[2], "ctl-c", dir.path()).await?];
    let store = Store::connect(&etcd.endpoints(), &cluster).await?;
    wait_for("ctl-c to lead", Duration::from_secs(20), || async {
        match store.leader_value().await {
            Ok(Some(v)) if v == controllers[0].grpc().to_string() => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await?;
    for (i, r) in REGIONS.iter().enumerate().take(2) {
        controllers.push(
            ControllerProcess::start(bin, &configs[i], &format!("ctl-{r}"), dir.path()).await?,
        );
    }
    let result = scenario(&db, &store, &mut controllers, &configs[2], &logs).await;
    for c in controllers.iter_mut() {
        c.resume();
    }
    if result.is_err() {
        for c in &controllers {
            eprintln!("--- {} log ---\n{}", c.id(), c.log());
        }
    }
    result
}

async fn scenario(
    db: &MariaDbTopology,
    store: &Store,
    controllers: &mut [ControllerProcess],
    config: &Path,
    logs: &[PathBuf],
) -> anyhow::Result<()> {
    let urls: Vec<String> = controllers.iter().map(|c| c.grpc_url()).collect();
    let mut outcomes = std::collections::BTreeMap::new();
    for r in REGIONS {
        for v in REGIONS {
            outcomes.insert((common::target(r), v.to_string()), true);
        }
    }
    for m in 0..3 {
        for v in REGIONS {
            outcomes.insert((format!("db:orders/m{m}"), v.to_string()), true);
        }
    }
    let _fleet = ReportFleet::start(urls.clone(), outcomes, Duration::from_millis(200));
    wait_for(
        "m0 to be the recorded primary",
        Duration::from_secs(20),
        || async {
            let s: Option<serde_json::Value> = store
                .get_json(&store.keys().database("orders"))
                .await
                .map_err(|e| e.to_string())?;
            match s {
                Some(s) if s["primary"] == "m0" => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await?;

    // A transaction the replicas received but have not applied: the
    // candidate's catch-up cannot finish until its SQL thread runs again.
    db.exec(0, "CREATE DATABASE IF NOT EXISTS app").await?;
    db.exec(0, "CREATE TABLE IF NOT EXISTS app.t (id INT PRIMARY KEY)")
        .await?;
    for i in 1..3 {
        wait_for(
            "the table to replicate",
            Duration::from_secs(20),
            || async move {
                db.query_first::<i64>(
                    i,
                    "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'app'",
                )
                .await
                .map_err(|e| e.to_string())?
                .filter(|n| *n == 1)
                .map(|_| ())
                .ok_or_else(|| "not yet".to_string())
            },
        )
        .await?;
        db.exec(i, "STOP SLAVE SQL_THREAD").await?;
    }
    db.exec(0, "INSERT INTO app.t VALUES (1)").await?;

    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample_writable(db, stop.clone());

    // An operator's forced failover to m1, through the leader (ctl-c).
    let dir = config.parent().expect("the config's directory");
    let out = common::cli_command(dir, &urls)
        .args(["failover", "--config"])
        .arg(config)
        .args([
            "--reason",
            "drill: forced failover during a leader stall",
            "--database",
            "orders",
            "--to",
            "m1",
            "--force",
            "--wait",
            "0",
        ])
        .output()?;
    anyhow::ensure!(
        out.status.code() == Some(2),
        "the request is handed over and not yet finished: {}",
        String::from_utf8_lossy(&out.stdout)
    );

    // The leader fenced m0 and is waiting for m1's relay log: stop it there.
    wait_for(
        "the fence of m0 to be journaled",
        Duration::from_secs(20),
        || async {
            let j = journal(store).await?;
            let fenced = j.iter().any(|e| {
                e["steps"].as_array().is_some_and(|s| {
                    s.iter()
                        .any(|s| s["step"] == "fence" && s["member"] == "m0")
                })
            });
            fenced.then_some(()).ok_or_else(|| format!("{j:?}"))
        },
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    controllers[0].pause();

    // A new leader takes over and finishes the failover from the cursor.
    wait_for("a new leader", Duration::from_secs(20), || async {
        match store.leader_value().await {
            Ok(Some(v)) if v != controllers[0].grpc().to_string() => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await?;
    for i in 1..3 {
        db.exec(i, "START SLAVE SQL_THREAD").await?;
    }
    wait_for(
        "the failover to finish",
        Duration::from_secs(40),
        || async {
            let j = journal(store).await?;
            j.iter()
                .find(|e| e["action"]["kind"] == "failover" && e["status"] == "done")
                .map(|_| ())
                .ok_or_else(|| format!("{j:?}"))
        },
    )
    .await?;
    let j = journal(store).await.map_err(anyhow::Error::msg)?;
    let done = j
        .iter()
        .find(|e| e["action"]["kind"] == "failover")
        .cloned()
        .unwrap_or_default();
    anyhow::ensure!(
        done["finished_by"] != "ctl-c" && done["created_by"] == "ctl-c",
        "written by the old leader, finished by the new one: {done}"
    );
    let state: Option<serde_json::Value> = store.get_json(&store.keys().database("orders")).await?;
    anyhow::ensure!(
        state.as_ref().is_some_and(|s| s["primary"] == "m1"),
        "m1 is the recorded primary: {state:?}"
    );

    // Wake the old leader; from now on none of its statements may arrive.
    let offsets: Vec<usize> = logs.iter().map(|l| file_len(l)).collect();
    controllers[0].resume();
    let old_log = || controllers[0].log();
    wait_for(
        "the old leader to step down",
        Duration::from_secs(20),
        || async {
            let log = old_log();
            (log.contains("leadership ended") || log.contains("stepping down"))
                .then_some(())
                .ok_or_else(|| "not yet".to_string())
        },
    )
    .await?;
    // Three leases more, for anything it might still do.
    tokio::time::sleep(common::LEASE_TTL * 3).await;
    stop.store(true, Ordering::SeqCst);
    let samples = sampler.await?;

    for (i, log) in logs.iter().enumerate() {
        let text = std::fs::read_to_string(log)?;
        let late = statements_by(&text, &db_user("c"), offsets[i]);
        anyhow::ensure!(
            late.is_empty(),
            "the deposed leader sent SQL to m{i} after it woke: {late:#?}"
        );
        anyhow::ensure!(
            !statements_by(&text, &db_user("c"), 0).is_empty(),
            "the general log of m{i} shows the old leader's earlier statements (else the check above proves nothing)"
        );
    }
    let read: Vec<&Vec<Option<bool>>> = samples
        .iter()
        .filter(|s| s.iter().all(Option::is_some))
        .collect();
    anyhow::ensure!(
        read.len() * 10 >= samples.len() * 9 && samples.len() > 100,
        "every member read in 90 % of {} samples",
        samples.len()
    );
    let two = samples
        .iter()
        .filter(|s| s.iter().filter(|w| **w == Some(true)).count() > 1)
        .count();
    anyhow::ensure!(two == 0, "{two} samples saw two writable members");
    let last = samples.last().cloned().unwrap_or_default();
    anyhow::ensure!(
        last == vec![Some(false), Some(true), Some(false)],
        "in the end m1 alone is writable: {last:?}"
    );
    Ok(())
}

#[test]
fn the_general_log_reader_tells_sessions_apart() {
    let log = "/usr/sbin/mariadbd, Version: 10.11.6. started with:\n\
               Time\t\t    Id Command\tArgument\n\
               261202 17:40:01\t     5 Connect\tctl_c@127.0.0.1 on  using TCP/IP\n\
               \t\t     5 Query\tSELECT 1\n\
               \t\t     6 Connect\tctl_a@127.0.0.1 on  using TCP/IP\n\
               \t\t     6 Query\tSELECT 2\n";
    let cut = log.find("\t\t     6 Connect").unwrap_or(0);
    assert_eq!(statements_by(log, "ctl_c", 0).len(), 2);
    assert!(statements_by(log, "ctl_c", cut).is_empty());
    let later = format!("{log}\t\t     5 Query\tSET GLOBAL read_only=0\n\t\t     5 Quit\t\n");
    assert_eq!(
        statements_by(&later, "ctl_c", log.len()),
        vec!["\t\t     5 Query\tSET GLOBAL read_only=0".to_string()]
    );
    assert!(statements_by(&later, "ctl_a", log.len()).is_empty());
}
