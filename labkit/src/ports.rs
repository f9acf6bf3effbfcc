//! Free loopback ports for servers that cannot be told to bind port 0 and
//! report it (etcd, mariadbd, moto).
//!
//! Ports are drawn at random from a range well below the kernel's ephemeral
//! range, checked by binding TCP and UDP, and never handed out twice by this
//! process. Another process can still take a port between the check and the
//! server's bind, so fixtures retry a start that failed on "address in use".

use std::collections::HashSet;
use std::net::{TcpListener, UdpSocket};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

const LOW: u16 = 20_000;
const HIGH: u16 = 30_000;

/// Returns a loopback port that is free right now (TCP and UDP).
pub fn free_port() -> u16 {
    let mut seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        ^ (u64::from(std::process::id()) << 32);
    let mut guard = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let handed = guard.get_or_insert_with(HashSet::new);
    loop {
        // xorshift: cheap and good enough to spread parallel test processes.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let port = LOW + (seed % u64::from(HIGH - LOW)) as u16;
        if handed.contains(&port) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok()
            && UdpSocket::bind(("127.0.0.1", port)).is_ok()
        {
            handed.insert(port);
            return port;
        }
    }
}

/// True when a server log says its listen address was taken, so the fixture
/// should retry on other ports.
pub fn looks_like_port_clash(log: &str) -> bool {
    let l = log.to_ascii_lowercase();
    l.contains("address already in use")
        || l.contains("errno: 98")
        || l.contains("bind on tcp/ip port")
}
