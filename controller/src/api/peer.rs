//! Controller-to-controller liveness: the `Peer.Ping` service every
//! controller serves, and the [`PeerProber`] that pings every other
//! controller and publishes which ones answer.
//!
//! Why: a controller that loses etcd must tell an etcd outage (it still
//! reaches a majority of controllers: fail static) from its own isolation
//! (it reaches neither: fence its region's primaries). See
//! [`crate::fence::isolation`].

use crate::task::AbortOnDrop;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::sync::watch;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tonic::{Request, Response, Status};

/// The generated protocol (`proto/peer.proto`).
#[allow(missing_docs, clippy::all)]
pub mod proto {
    tonic::include_proto!("switchyard.peer.v1");
}

use proto::peer_client::PeerClient;
use proto::peer_server::{Peer, PeerServer};
use proto::{PingReply, PingRequest};

/// What can go wrong setting up the prober.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// A peer's address is not a usable URI.
    #[error("controller {peer}: address {address:?} is not usable: {reason}")]
    BadAddress {
        /// The peer's id.
        peer: String,
        /// The address given.
        address: String,
        /// Why.
        reason: String,
    },
}

/// The `Peer` service: answers pings from controllers of the same cluster.
#[derive(Debug, Clone)]
pub struct PeerService {
    id: String,
    cluster: String,
    etcd_reachable: watch::Receiver<bool>,
}

impl PeerService {
    /// A service answering as controller `id` of `cluster`;
    /// `etcd_reachable` is reported in every reply: a peer that lost etcd
    /// while this one reaches it knows it is cut off from etcd alone.
    pub fn new(
        id: impl Into<String>,
        cluster: impl Into<String>,
        etcd_reachable: watch::Receiver<bool>,
    ) -> Self {
        Self {
            id: id.into(),
            cluster: cluster.into(),
            etcd_reachable,
        }
    }

    /// The tonic service, to add to the controller's gRPC server.
    pub fn into_server(self) -> PeerServer<Self> {
        PeerServer::new(self)
    }
}

#[tonic::async_trait]
impl Peer for PeerService {
    async fn ping(&self, request: Request<PingRequest>) -> Result<Response<PingReply>, Status> {
        let req = request.into_inner();
        if req.cluster != self.cluster {
            // A controller of another cluster must never count as a peer.
            return Err(Status::failed_precondition(format!(
                "controller {} is in cluster {:?}, not {:?}",
                self.id, self.cluster, req.cluster
            )));
        }
        Ok(Response::new(PingReply {
            id: self.id.clone(),
            cluster: self.cluster.clone(),
            etcd_reachable: *self.etcd_reachable.borrow(),
        }))
    }
}

/// How the prober runs.
#[derive(Clone)]
pub struct ProberConfig {
    /// This controller's id (never pinged, never in the reachable set).
    pub self_id: String,
    /// The cluster name sent with every ping and expected in every reply.
    pub cluster: String,
    /// Every other controller: id → gRPC address (`host:port` or a URI).
    pub peers: BTreeMap<String, String>,
    /// Time between two pings of one peer.
    pub interval: Duration,
    /// How long one ping (connect included) may take; keep it well under
    /// the primary lease TTL so that isolation is seen in time.
    pub timeout: Duration,
    /// Mutual TLS to the peers (`[tls]`), when configured.
    pub tls: Option<ClientTlsConfig>,
}

// By hand: the TLS config holds the private key.
impl std::fmt::Debug for ProberConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProberConfig")
            .field("self_id", &self.self_id)
            .field("cluster", &self.cluster)
            .field("peers", &self.peers)
            .field("interval", &self.interval)
            .field("timeout", &self.timeout)
            .field("tls", &self.tls.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Pings every other controller every `interval` and publishes the set of
/// those answering, by the right controller of the same cluster, within
/// `timeout`. One lost ping is forgiven (a busy peer on a loaded machine is
/// not gone): a peer leaves the set at its second failed ping in a row,
/// keeping until then what its last answer said about etcd. That delays
/// seeing a silent peer by one interval and timeout; a peer whose last
/// answer said it reaches etcd makes an isolation visible at once anyway.
/// Stops when dropped.
#[derive(Debug)]
pub struct PeerProber {
    peers: BTreeMap<String, String>,
    reachable: watch::Receiver<BTreeSet<String>>,
    with_etcd: watch::Receiver<BTreeSet<String>>,
    _tasks: Vec<AbortOnDrop>,
}

impl PeerProber {
    /// Starts one pinging task per peer. Must be called inside a tokio
    /// runtime. Fails when an address is not a URI.
    pub fn start(config: ProberConfig) -> Result<Self, PeerError> {
        Self::start_seeded(config, BTreeSet::new())
    }

    /// Like [`start`](Self::start), with the reachable set starting as
    /// `seed` (restricted to the configured peers) instead of empty: a
    /// prober restarted for a changed address does not make every peer
    /// look gone until its first round ends.
    pub fn start_seeded(config: ProberConfig, seed: BTreeSet<String>) -> Result<Self, PeerError> {
        let seed: BTreeSet<String> = seed
            .into_iter()
            .filter(|p| config.peers.contains_key(p) && *p != config.self_id)
            .collect();
        let (tx, reachable) = watch::channel(seed);
        let (etcd_tx, with_etcd) = watch::channel(BTreeSet::new());
        let mut tasks = Vec::new();
        for (peer, address) in &config.peers {
            if *peer == config.self_id {
                continue;
            }
            let channel = channel(peer, address, config.timeout, config.tls.as_ref())?;
            tasks.push(AbortOnDrop(tokio::spawn(ping_loop(
                PeerClient::new(channel),
                peer.clone(),
                config.clone(),
                tx.clone(),
                etcd_tx.clone(),
            ))));
        }
        Ok(Self {
            peers: config.peers.clone(),
            reachable,
            with_etcd,
            _tasks: tasks,
        })
    }

    /// The peers it pings: id → address.
    pub fn peers(&self) -> &BTreeMap<String, String> {
        &self.peers
    }

    /// The reachable set, updated as pings succeed and fail.
    pub fn subscribe(&self) -> watch::Receiver<BTreeSet<String>> {
        self.reachable.clone()
    }

    /// The reachable peers whose last reply said they reach etcd.
    pub fn subscribe_etcd(&self) -> watch::Receiver<BTreeSet<String>> {
        self.with_etcd.clone()
    }

    /// The peers reachable right now.
    pub fn reachable(&self) -> BTreeSet<String> {
        self.reachable.borrow().clone()
    }
}

/// Failed pings in a row after which a peer counts as not answering.
pub const MISSES_TO_DROP: u32 = 2;

/// One ping of the controller at `address`, as `from` of `cluster`, bounded
/// by `timeout`: its reply, or why there was none. For the CLI's `status`,
/// which says whether a region has a live controller.
pub async fn ping_once(
    address: &str,
    from: &str,
    cluster: &str,
    timeout: Duration,
    tls: Option<&ClientTlsConfig>,
) -> Result<PingReply, String> {
    let channel = channel(from, address, timeout, tls).map_err(|e| e.to_string())?;
    let request = PingRequest {
        from: from.to_string(),
        cluster: cluster.to_string(),
    };
    match switchyard_host::time::timeout(timeout, PeerClient::new(channel).ping(request)).await {
        Ok(Ok(reply)) => Ok(reply.into_inner()),
        Ok(Err(status)) => Err(status.message().to_string()),
        Err(_) => Err(format!("no answer within {}ms", timeout.as_millis())),
    }
}

/// A lazily connecting channel to `address`, bounded by `timeout`.
fn channel(
    peer: &str,
    address: &str,
    timeout: Duration,
    tls: Option<&ClientTlsConfig>,
) -> Result<Channel, PeerError> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let uri = if address.contains("://") {
        address.to_string()
    } else {
        format!("{scheme}://{address}")
    };
    let bad = |e: tonic::transport::Error| PeerError::BadAddress {
        peer: peer.to_string(),
        address: address.to_string(),
        reason: switchyard_probes::error::error_chain(&e),
    };
    if tls.is_some() {
        crate::tls::require_https(&uri).map_err(|reason| PeerError::BadAddress {
            peer: peer.to_string(),
            address: address.to_string(),
            reason,
        })?;
    }
    let endpoint = Endpoint::from_shared(uri).map_err(bad)?;
    let endpoint = match tls {
        Some(t) => endpoint.tls_config(t.clone()).map_err(bad)?,
        None => endpoint,
    };
    Ok(endpoint
        .connect_timeout(timeout)
        .timeout(timeout)
        .connect_lazy())
}

async fn ping_loop(
    mut client: PeerClient<Channel>,
    peer: String,
    config: ProberConfig,
    reachable: watch::Sender<BTreeSet<String>>,
    with_etcd: watch::Sender<BTreeSet<String>>,
) {
    let mut tick = switchyard_host::time::interval(config.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut misses = 0u32;
    loop {
        tick.tick().await;
        let request = PingRequest {
            from: config.self_id.clone(),
            cluster: config.cluster.clone(),
        };
        let answered = switchyard_host::time::timeout(config.timeout, client.ping(request)).await;
        let (ok, etcd) = match answered {
            Ok(Ok(reply)) => {
                let reply = reply.into_inner();
                let ok = reply.id == peer && reply.cluster == config.cluster;
                (ok, ok && reply.etcd_reachable)
            }
            // A controller of another cluster is never forgiven.
            Ok(Err(status)) if status.code() == tonic::Code::FailedPrecondition => (false, false),
            // No answer (refused, timed out): forgiven once.
            Ok(Err(_)) | Err(_) => {
                misses += 1;
                if misses < MISSES_TO_DROP {
                    continue;
                }
                (false, false)
            }
        };
        misses = if ok { 0 } else { MISSES_TO_DROP };
        with_etcd.send_if_modified(|set| {
            if etcd {
                set.insert(peer.clone())
            } else {
                set.remove(&peer)
            }
        });
        reachable.send_if_modified(|set| {
            if ok {
                set.insert(peer.clone())
            } else {
                set.remove(&peer)
            }
        });
    }
}

#[cfg(test)]
mod tests;
