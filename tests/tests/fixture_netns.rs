//! The network-namespace fixture: two namespaces reach each other's TCP
//! listener (and the root namespace reaches them over the bridge); a
//! partition inside one cuts it off both ways; healing restores it; and
//! everything is deleted on drop, also on panic.
//!
//! The listener and the client are this test binary itself, run inside a
//! namespace in a helper mode chosen by an environment variable (the helper
//! "tests" do nothing when it is not set).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use switchyard_tests::netns::NetNs;

const LISTEN_ENV: &str = "SY_NETNS_HELPER_LISTEN";
const CONNECT_ENV: &str = "SY_NETNS_HELPER_CONNECT";
const PORT: u16 = 7070;

/// Helper mode: serve "hi" to every connection until killed.
#[test]
fn helper_listen() {
    let Ok(addr) = std::env::var(LISTEN_ENV) else {
        return;
    };
    let listener = TcpListener::bind(addr.as_str()).expect("helper bind");
    for mut s in listener.incoming().flatten() {
        let _ = s.write_all(b"hi");
    }
}

/// Helper mode: connect, expect "hi"; the exit code says whether it worked.
#[test]
fn helper_connect() {
    let Ok(addr) = std::env::var(CONNECT_ENV) else {
        return;
    };
    let addr: SocketAddr = addr.parse().expect("helper address");
    assert_eq!(fetch(addr).as_deref(), Ok("hi"));
}

fn fetch(addr: SocketAddr) -> Result<String, String> {
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_millis(700)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_millis(700)))
        .map_err(|e| e.to_string())?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).map_err(|e| e.to_string())?;
    Ok(buf)
}

fn helper(name: &str, env: &str, value: String) -> Command {
    let mut c = Command::new(std::env::current_exe().expect("own path"));
    c.args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(env, value);
    c
}

/// Spawns helper `cmd` in namespace `i`, silenced.
fn spawn_in(net: &NetNs, i: usize, cmd: &Command) -> std::process::Child {
    net.command_in(i, cmd)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn in namespace")
}

/// Runs the connect helper inside namespace `i` against `addr`.
fn connects_from(net: &NetNs, i: usize, addr: SocketAddr) -> bool {
    let mut child = spawn_in(
        net,
        i,
        &helper("helper_connect", CONNECT_ENV, addr.to_string()),
    );
    child.wait().map(|s| s.success()).unwrap_or(false)
}

fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn exists(kind: &[&str], name: &str) -> bool {
    let out = Command::new("ip").args(kind).output().expect("ip");
    String::from_utf8_lossy(&out.stdout).contains(name)
}

#[test]
fn namespaces_talk_partition_and_heal() {
    let mut net = match NetNs::create(2) {
        Ok(n) => n,
        Err(e) => panic!("cannot run the partition tests on this machine: {e}"),
    };
    let server = SocketAddr::from((net.addr(0), PORT));
    let mut listener = spawn_in(
        &net,
        0,
        &helper("helper_listen", LISTEN_ENV, server.to_string()),
    );
    wait_until("the listener in ns 0", || fetch(server).is_ok());

    // Namespace 1 and the root namespace reach it.
    assert!(connects_from(&net, 1, server), "ns 1 cannot reach ns 0");
    assert_eq!(fetch(server).as_deref(), Ok("hi"));

    // Cut off: neither reaches it; loopback inside it still works.
    net.partition(0).expect("partition");
    net.partition(0).expect("partition twice is a no-op");
    assert!(net.is_partitioned(0));
    assert!(!connects_from(&net, 1, server), "ns 1 still reaches ns 0");
    assert!(fetch(server).is_err(), "root still reaches ns 0");
    let own_loopback = SocketAddr::from(([127, 0, 0, 1], PORT));
    let mut inside = spawn_in(
        &net,
        0,
        &helper("helper_listen", LISTEN_ENV, own_loopback.to_string()),
    );
    wait_until("loopback inside the partitioned namespace", || {
        connects_from(&net, 0, own_loopback)
    });

    // Healed: reachable again.
    net.heal(0).expect("heal");
    net.heal(0).expect("heal twice is a no-op");
    assert!(
        connects_from(&net, 1, server),
        "ns 1 cannot reach ns 0 after heal"
    );
    assert_eq!(fetch(server).as_deref(), Ok("hi"));

    // Drop deletes namespaces and bridge and kills what ran inside.
    let names: Vec<String> = (0..net.len()).map(|i| net.name(i).to_string()).collect();
    let pid = listener.id();
    drop(net);
    for n in &names {
        assert!(!exists(&["netns", "list"], n), "namespace {n} left behind");
    }
    let _ = listener.wait();
    let _ = inside.wait();
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "listener {pid} survived the fixture"
    );
}

#[test]
fn everything_is_deleted_when_a_test_panics() {
    let mut names = Vec::new();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let net = match NetNs::create(1) {
            Ok(n) => n,
            Err(e) => panic!("cannot run the partition tests on this machine: {e}"),
        };
        names.push(net.name(0).to_string());
        panic!("test failure inside the fixture's scope");
    }));
    assert!(result.is_err());
    assert_eq!(names.len(), 1, "the fixture was not created");
    assert!(
        !exists(&["netns", "list"], &names[0]),
        "{} left behind",
        names[0]
    );
}
