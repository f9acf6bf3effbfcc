//! Real servers inside network namespaces: etcd on the bridge address of the
//! root namespace, and a MariaDB primary and two replicas each in its own
//! namespace, replicating over the bridge. A partition of the primary's
//! namespace cuts its TCP links (replication and clients in other
//! namespaces) while the fixture keeps talking to it through its unix
//! socket; the application user's writes are refused once it is read-only;
//! healing restores the links and replication catches up.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mysql_async::prelude::*;
use switchyard_tests::mariadb::{ADMIN_PASSWORD, ADMIN_USER, APP_USER};
use switchyard_tests::netns::NetNs;
use switchyard_tests::paths::system_bin;
use switchyard_tests::wait::wait_for;
use switchyard_tests::{Etcd, MariaDbTopology};

/// `ER_OPTION_PREVENTS_STATEMENT`: "running with the --read-only option".
const ER_OPTION_PREVENTS_STATEMENT: u16 = 1290;

/// Logs in to `host:port` over TCP as the admin with the `mariadb` client
/// run inside namespace `ns`; `Err` carries the client's complaint.
async fn tcp_login_from(net: &NetNs, ns: usize, host: &str, port: u16) -> Result<(), String> {
    let client = system_bin("mariadb").map_err(|e| e.to_string())?;
    let mut cmd = Command::new(client);
    cmd.arg("--no-defaults")
        .arg("--protocol=tcp")
        .args(["-h", host, "-P", &port.to_string()])
        .arg(format!("-u{ADMIN_USER}"))
        .arg(format!("-p{ADMIN_PASSWORD}"))
        .arg("--connect-timeout=2")
        .args(["-N", "-e", "SELECT 1"]);
    let mut wrapped = net.command_in(ns, &cmd);
    wrapped.stdin(Stdio::null());
    let out = tokio::process::Command::from(wrapped)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// The pids of `mariadbd` processes inside namespace `ns` that carry the
/// fixture marker (what `scripts/check-leftovers` looks for).
fn marked_mariadbd_in(net: &NetNs, ns: usize) -> Vec<u32> {
    let out = Command::new("ip")
        .args(["netns", "pids", net.name(ns)])
        .output()
        .expect("ip netns pids");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse::<u32>().ok())
        .filter(|pid| {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            comm.trim() == "mariadbd"
                && env
                    .split(|b| *b == 0)
                    .any(|kv| kv == b"SWITCHYARD_FIXTURE=1")
        })
        .collect()
}

/// An insert as the application user over member `i`'s unix socket.
async fn app_insert(topo: &MariaDbTopology, i: usize, id: u32) -> Result<(), mysql_async::Error> {
    let mut c = mysql_async::Conn::new(topo.app_opts_socket(i)).await?;
    let r = c
        .query_drop(format!("INSERT INTO netns_probe.t VALUES ({id}, 'app')"))
        .await;
    c.disconnect().await.ok();
    r
}

async fn count_rows(topo: &MariaDbTopology, i: usize) -> anyhow::Result<i64> {
    let n: Option<i64> = topo
        .query_first(i, "SELECT COUNT(*) FROM netns_probe.t")
        .await?;
    Ok(n.unwrap_or(0))
}

/// Waits until member `i` has applied everything member 0 has written.
async fn wait_caught_up(topo: &MariaDbTopology, i: usize) -> anyhow::Result<()> {
    let pos = topo.variable(0, "gtid_binlog_pos").await?;
    let waited: Option<i64> = topo
        .query_first(i, &format!("SELECT MASTER_GTID_WAIT('{pos}', 20)"))
        .await?;
    anyhow::ensure!(waited == Some(0), "member {i} did not reach {pos}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_in_namespaces_replicate_partition_and_heal() -> anyhow::Result<()> {
    let t0 = Instant::now();
    let mut net = match NetNs::create(3) {
        Ok(n) => n,
        Err(e) => panic!("cannot run the partition tests on this machine: {e}"),
    };

    // etcd on the bridge address, used from the root namespace.
    let etcd = Etcd::single_on(net.host_addr()).await?;
    assert!(
        etcd.endpoint(0)
            .starts_with(&format!("http://{}:", net.host_addr())),
        "etcd listens on the bridge address: {}",
        etcd.endpoint(0)
    );
    let mut kv = etcd.client().await?;
    kv.put("/netns-fixture/k", "v", None).await?;
    let got = kv.get("/netns-fixture/k", None).await?;
    assert_eq!(got.kvs().first().map(|kv| kv.value()), Some(&b"v"[..]));
    let t_etcd = t0.elapsed();

    // Declared after `net`, so it is dropped (its servers killed) first.
    let mut topo = MariaDbTopology::start_in(&net, &[0, 1, 2]).await?;
    let t_db = t0.elapsed();
    for i in 0..3 {
        assert_eq!(topo.host(i), net.addr(i).to_string());
        assert_eq!(topo.address(i), format!("{}:{}", net.addr(i), topo.port(i)));
        assert_eq!(topo.netns(i), Some(net.name(i)));
        assert!(topo.socket_path(i).exists(), "member {i} has no socket");
        assert_eq!(
            marked_mariadbd_in(&net, i).len(),
            1,
            "one marked mariadbd runs in namespace {i}"
        );
    }

    let (host0, port0) = (topo.host(0), topo.port(0));

    // The application user cannot bypass read_only.
    let grants: Vec<String> = topo
        .query(0, &format!("SHOW GRANTS FOR '{APP_USER}'@'%'"))
        .await?;
    let grants = grants.join("\n").to_ascii_uppercase();
    for forbidden in [
        "SUPER",
        "READ_ONLY ADMIN",
        "CONNECTION ADMIN",
        "ALL PRIVILEGES",
    ] {
        assert!(!grants.contains(forbidden), "app has {forbidden}: {grants}");
    }

    // Replication across namespaces.
    topo.exec(0, "CREATE DATABASE netns_probe").await?;
    topo.exec(
        0,
        "CREATE TABLE netns_probe.t (id INT PRIMARY KEY, v VARCHAR(20))",
    )
    .await?;
    topo.exec(0, "INSERT INTO netns_probe.t VALUES (1, 'admin')")
        .await?;
    wait_for("member 2 to have the row", Duration::from_secs(20), || {
        let topo = &topo;
        async move {
            let v: Option<String> = topo
                .query_first(2, "SELECT v FROM netns_probe.t WHERE id = 1")
                .await
                .map_err(|e| e.to_string())?;
            v.filter(|v| v == "admin")
                .ok_or_else(|| "not there yet".to_string())
        }
    })
    .await?;
    tcp_login_from(&net, 1, &host0, port0)
        .await
        .map_err(|e| anyhow::anyhow!("ns 1 cannot log in to member 0 before the partition: {e}"))?;

    // Partition the primary's namespace.
    net.partition(0)?;
    let t_partition = Instant::now();

    // (a) The fixture still reaches it through the socket.
    assert_eq!(topo.variable(0, "read_only").await?, "0");
    // (b) The application user writes on it through the socket.
    app_insert(&topo, 0, 2).await?;
    assert_eq!(count_rows(&topo, 0).await?, 2);
    // (c) Read-only stops the application user.
    topo.exec(0, "SET GLOBAL read_only = ON").await?;
    match app_insert(&topo, 0, 3).await {
        Err(mysql_async::Error::Server(e)) if e.code == ER_OPTION_PREVENTS_STATEMENT => {}
        other => panic!("app insert on a read-only member: {other:?}"),
    }
    assert_eq!(count_rows(&topo, 0).await?, 2);
    // (d) Other namespaces lose it: no TCP login, no replication.
    let refused = tcp_login_from(&net, 1, &host0, port0).await;
    assert!(refused.is_err(), "ns 1 still logs in to member 0");
    wait_for(
        "member 1's IO thread to lose member 0",
        Duration::from_secs(20),
        || {
            let topo = &topo;
            async move {
                let row: Option<mysql_async::Row> = topo
                    .query_first(1, "SHOW SLAVE STATUS")
                    .await
                    .map_err(|e| e.to_string())?;
                let io: Option<String> = row.ok_or("no replication")?.get("Slave_IO_Running");
                match io.as_deref() {
                    Some("Yes") => Err("IO thread still running".to_string()),
                    other => Ok(other.map(str::to_string)),
                }
            }
        },
    )
    .await?;
    let t_io_lost = t_partition.elapsed();
    assert_eq!(
        count_rows(&topo, 1).await?,
        1,
        "a write made during the partition reached member 1"
    );

    // Heal: TCP and replication come back.
    net.heal(0)?;
    let t_heal = Instant::now();
    wait_for(
        "ns 1 to log in to member 0 again",
        Duration::from_secs(10),
        || tcp_login_from(&net, 1, &host0, port0),
    )
    .await?;
    for i in [1, 2] {
        wait_caught_up(&topo, i).await?;
        assert_eq!(count_rows(&topo, i).await?, 2);
    }
    let t_caught_up = t_heal.elapsed();

    // A namespaced member restarts in its own namespace and resumes.
    topo.kill9(2);
    assert!(marked_mariadbd_in(&net, 2).is_empty());
    let t_restart = Instant::now();
    topo.restart(2).await?;
    let t_restarted = t_restart.elapsed();
    assert_eq!(marked_mariadbd_in(&net, 2).len(), 1);
    topo.wait_replicating(2).await?;

    eprintln!(
        "timings: etcd {t_etcd:?}, 3 mariadbd + replication {:?}, IO thread lost the \
         partitioned primary after {t_io_lost:?}, caught up {t_caught_up:?} after heal, \
         restart in namespace {t_restarted:?}, total {:?}",
        t_db - t_etcd,
        t0.elapsed()
    );
    drop(topo);
    drop(etcd);
    Ok(())
}
