//! The real servers that `switchyard lab` and the test suite start: each
//! on free ports (or inside a network namespace) in its own temp dir,
//! ready when returned, and stopped on `Drop` — also when a test panics or
//! the lab server dies (a parent-death signal).
//!
//! - [`Etcd`]: one member or a cluster; kill, pause, restart a member.
//! - [`MariaDbTopology`]: a GTID-replicating primary and replicas.
//! - [`HttpTarget`]: an HTTP endpoint whose answer is switched at run time.
//! - [`netns::NetNs`]: network namespaces on a bridge, cut off with iptables.
//! - [`pki::TestPki`]: a CA and certificates (`rcgen`).
//! - [`ControllerProcess`]: a `switchyard controller` process.
//!
//! It is a crate of its own so that the shipping binary, whose `lab` starts
//! these servers, links this and not the test suite's fixtures
//! (`switchyard-tests`, which re-exports all of it). Every child process
//! carries the environment variable [`FIXTURE_ENV`], so the test script can
//! prove that none outlived the suite.

pub mod controller;
pub mod etcd;
pub mod http_target;
pub mod mariadb;
pub mod netns;
pub mod paths;
pub mod pki;
pub mod ports;
pub mod process;
pub mod wait;

pub use controller::ControllerProcess;
pub use etcd::Etcd;
pub use http_target::{HttpMode, HttpTarget};
pub use mariadb::MariaDbTopology;
pub use process::{FIXTURE_ENV, FixtureProcess};

/// One plain HTTP/1.1 GET on loopback; returns the body of a 200 answer.
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut buf = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut buf)).await??;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("no HTTP header in answer from {addr}"))?;
    anyhow::ensure!(
        head.starts_with("HTTP/1.1 200"),
        "GET {path} on {addr}: {head}"
    );
    Ok(body.to_string())
}
