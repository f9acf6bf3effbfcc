//! Direct UDP probes of a server: readiness, one answer's bytes, the
//! shares of 100,000 weighted answers, and how long a weight written to
//! etcd takes to show in the answers.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;

/// EDNS(0) OPT record advertising `payload` bytes.
fn opt(payload: u16) -> Vec<u8> {
    let p = payload.to_be_bytes();
    vec![0, 0, 41, p[0], p[1], 0, 0, 0, 0, 0, 0]
}

/// A query for `name` (dotted, trailing dot) of type `qtype`, RD set,
/// with an OPT record when `edns` gives a payload size.
pub fn query(id: u16, name: &str, qtype: u16, edns: Option<u16>) -> Vec<u8> {
    let mut p = id.to_be_bytes().to_vec();
    p.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, u8::from(edns.is_some())]);
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        p.push(label.len() as u8);
        p.extend_from_slice(label.as_bytes());
    }
    p.push(0);
    p.extend_from_slice(&qtype.to_be_bytes());
    p.extend_from_slice(&[0, 1]);
    if let Some(payload) = edns {
        p.extend(opt(payload));
    }
    p
}

/// A UDP client of one server; each answer is matched by its id.
pub struct Client {
    socket: UdpSocket,
    id: u16,
}

impl Client {
    /// A client of `server`.
    pub async fn new(server: SocketAddr) -> anyhow::Result<Self> {
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        socket.connect(server).await?;
        Ok(Client { socket, id: 0 })
    }

    /// The response to `name`/`qtype` (raw bytes).
    pub async fn ask(
        &mut self,
        name: &str,
        qtype: u16,
        edns: Option<u16>,
    ) -> anyhow::Result<Vec<u8>> {
        self.id = self.id.wrapping_add(1);
        self.socket.send(&query(self.id, name, qtype, edns)).await?;
        let mut buf = [0u8; 4096];
        loop {
            let n =
                tokio::time::timeout(Duration::from_secs(2), self.socket.recv(&mut buf)).await??;
            if buf[..2] == self.id.to_be_bytes() {
                return Ok(buf[..n].to_vec());
            }
        }
    }
}

/// The last A record's address in a response (the answer of a
/// one-record A query without EDNS ends with it).
pub fn last_a(response: &[u8]) -> String {
    match response {
        [.., a, b, c, d] => format!("{a}.{b}.{c}.{d}"),
        _ => "?".into(),
    }
}

/// Waits until `addr` answers the SOA.
pub async fn wait_answering(addr: SocketAddr, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut c = Client::new(addr).await?;
    loop {
        if c.ask(super::ZONE, 6, None).await.is_ok() {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "{what} did not answer on {addr}");
    }
}

/// How often each address answered `n` queries of `api` A.
pub async fn shares(addr: SocketAddr, n: usize) -> anyhow::Result<BTreeMap<String, usize>> {
    let mut c = Client::new(addr).await?;
    let name = format!("api.{}", super::ZONE);
    let mut out = BTreeMap::new();
    for _ in 0..n {
        *out.entry(last_a(&c.ask(&name, 1, None).await?))
            .or_default() += 1;
    }
    Ok(out)
}

/// Time from an etcd write of `api`'s weights to the first answer that
/// can only come from them, `flips` times (alternating all-in-one-region
/// between two regions): (after the write was acknowledged, from before
/// it was sent), in ms.
pub async fn weight_change_latency(
    etcd: &mut etcd_client::Client,
    addr: SocketAddr,
    flips: usize,
) -> anyhow::Result<Vec<(f64, f64)>> {
    let key = format!("/switchyard/bench/state/traffic/api.{}", super::ZONE);
    let name = format!("api.{}", super::ZONE);
    let mut c = Client::new(addr).await?;
    let mut out = Vec::new();
    for i in 0..=flips {
        let (region, value) = if i % 2 == 0 {
            ("us-east", "192.0.2.1")
        } else {
            ("ap-south", "192.0.2.3")
        };
        let weights: BTreeMap<&str, u32> = super::REGIONS
            .iter()
            .map(|(r, _, _)| (*r, u32::from(*r == region) * 100))
            .collect();
        let sent = Instant::now();
        etcd.put(key.as_str(), serde_json::to_vec(&weights)?, None)
            .await?;
        let acked = Instant::now();
        let deadline = acked + Duration::from_secs(10);
        loop {
            if last_a(&c.ask(&name, 1, None).await?) == value {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{value} never answered after the write"
            );
        }
        let seen = Instant::now();
        // The first flip only sets the starting point.
        if i > 0 {
            out.push((
                (seen - acked).as_secs_f64() * 1000.0,
                (seen - sent).as_secs_f64() * 1000.0,
            ));
        }
        // Settled: a run of 50 answers all from the new region (the
        // first flip's region could also answer under the old weights).
        let mut run = 0;
        while run < 50 {
            run = if last_a(&c.ask(&name, 1, None).await?) == value {
                run + 1
            } else {
                0
            };
            anyhow::ensure!(
                Instant::now() < deadline,
                "answers did not settle on {region}"
            );
        }
    }
    Ok(out)
}

/// Writes `api`'s weights (`REGIONS`' 60/30/10) to etcd and waits until
/// all three addresses answer again.
pub async fn set_base_weights(
    etcd: &mut etcd_client::Client,
    addr: SocketAddr,
) -> anyhow::Result<()> {
    let key = format!("/switchyard/bench/state/traffic/api.{}", super::ZONE);
    let weights: BTreeMap<&str, u32> = super::REGIONS.iter().map(|(r, _, w)| (*r, *w)).collect();
    etcd.put(key.as_str(), serde_json::to_vec(&weights)?, None)
        .await?;
    let mut c = Client::new(addr).await?;
    let name = format!("api.{}", super::ZONE);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < 3 {
        seen.insert(last_a(&c.ask(&name, 1, None).await?));
        anyhow::ensure!(
            Instant::now() < deadline,
            "base weights not served: {seen:?}"
        );
    }
    Ok(())
}
