//! Who the other controllers are and whether they answer: this controller
//! registers the gRPC address it actually bound (listeners may be bound to
//! port 0, so the config alone cannot say), reads the others'
//! registrations, and keeps a [`PeerProber`] pinging them.
//!
//! The addresses are cached: when etcd goes away, which is exactly when
//! the peer check matters, the prober keeps pinging the last known ones.
//! A controller that never registered is pinged at its configured `listen`
//! address.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::api::peer::{PeerProber, ProberConfig};
use crate::config::Config;
use crate::store::Store;

/// How often the registrations are re-read while etcd answers.
const REFRESH: Duration = Duration::from_secs(2);
/// How often while some peer has not registered yet (at start-up, when
/// every controller registers within moments of the others).
const REFRESH_FAST: Duration = Duration::from_millis(250);
/// Time between two pings of one peer.
pub const PING_INTERVAL: Duration = Duration::from_millis(250);

/// How long after start the isolation decision waits for the first round
/// of pings: until then an unanswered peer is unknown, not unreachable.
pub fn first_round(primary_lease_ttl: Duration) -> Duration {
    ping_timeout(primary_lease_ttl) + PING_INTERVAL * 2
}

/// What a controller registers under `controllers/<id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// The gRPC address peers ping (and the CLI may use).
    pub address: String,
    /// Its region.
    pub region: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
}

/// The address peers should use for a listener bound to `bound`: the bound
/// address itself, unless it is a wildcard (then the configured host, with
/// the bound port).
pub fn advertised(bound: SocketAddr, configured: SocketAddr) -> SocketAddr {
    if bound.ip().is_unspecified() {
        SocketAddr::new(configured.ip(), bound.port())
    } else {
        bound
    }
}

/// How long one ping may take for a given primary lease TTL: long enough
/// not to call a busy peer gone, short enough to see an isolation well
/// before the fence deadline.
pub fn ping_timeout(primary_lease_ttl: Duration) -> Duration {
    (primary_lease_ttl / 8).clamp(Duration::from_millis(300), Duration::from_secs(1))
}

/// Where the peer views go: which peers answer, and which of those reach
/// etcd themselves.
#[derive(Debug)]
pub struct PeerViews {
    /// Peers whose last ping was answered.
    pub reachable: watch::Sender<BTreeSet<String>>,
    /// Reachable peers that say they reach etcd.
    pub with_etcd: watch::Sender<BTreeSet<String>>,
}

/// Starts pinging at once (the config's addresses, overlaid with the
/// registrations cached in `cache` from an earlier run: a controller
/// restarted during an etcd outage must still find its peers), then
/// registers `me` (retrying until etcd takes it) and keeps the addresses
/// current. Publishes on `views` until `shutdown`.
#[allow(clippy::too_many_arguments)] // what the outside gives, one by one
pub async fn run(
    store: Store,
    cfg: Config,
    mut tls: Option<watch::Receiver<std::sync::Arc<crate::tls::GrpcTlsMaterial>>>,
    me: Registration,
    self_id: String,
    cache: PathBuf,
    views: PeerViews,
    mut shutdown: watch::Receiver<bool>,
) {
    let key = store.keys().controller(&self_id);
    let timeout = ping_timeout(cfg.etcd.primary_lease_ttl());
    let mut addresses: BTreeMap<String, String> = cfg
        .controllers
        .iter()
        .filter(|c| c.id != self_id)
        .map(|c| (c.id.clone(), c.listen.to_string()))
        .collect();
    let mut known: BTreeSet<String> = BTreeSet::new();
    for (id, address) in read_cache(&cache) {
        if let Some(a) = addresses.get_mut(&id) {
            *a = address;
        }
    }
    let views = std::sync::Arc::new(views);
    let start = |addresses: &BTreeMap<String, String>,
                 seed: BTreeSet<String>,
                 tls: Option<tonic::transport::ClientTlsConfig>| {
        let prober = PeerProber::start_seeded(
            ProberConfig {
                self_id: self_id.clone(),
                cluster: cfg.cluster.clone(),
                peers: addresses.clone(),
                interval: PING_INTERVAL,
                timeout,
                tls,
            },
            seed,
        );
        match prober {
            Ok(p) => {
                tracing::info!(peers = ?addresses, "peer checks (re)started");
                let forward = forward(&p, views.clone());
                Some((p, forward))
            }
            Err(e) => {
                tracing::warn!(error = %e, "peer checks cannot start");
                None
            }
        }
    };
    // The client side of the certificates in use: pings reconnect with
    // new ones after a rotation.
    let client = |tls: &Option<watch::Receiver<std::sync::Arc<crate::tls::GrpcTlsMaterial>>>| {
        tls.as_ref().map(|rx| rx.borrow().client())
    };
    // (Re)starts the pings; peers keep their standing across a restart.
    let restart = |running: &mut Option<_>,
                   addresses: &BTreeMap<String, String>,
                   tls: Option<tonic::transport::ClientTlsConfig>| {
        let seed = views.reachable.borrow().clone();
        if let Some((_, f)) = running.take() {
            let f: tokio::task::JoinHandle<()> = f;
            f.abort();
        }
        *running = start(addresses, seed, tls);
    };
    let mut running = None;
    restart(&mut running, &addresses, client(&tls));
    let mut registered = false;
    loop {
        if !registered {
            match store.put_json(key.clone(), &me).await {
                Ok(()) => {
                    registered = true;
                    tracing::info!(address = %me.address, "registered for peer checks");
                }
                Err(e) => tracing::debug!(error = %e, "cannot register yet"),
            }
        }
        if let Ok(list) = store
            .list_json::<Registration>(&store.keys().controllers_prefix())
            .await
        {
            let mut changed = false;
            for (id, r) in list {
                if let Some(a) = addresses.get_mut(&id) {
                    known.insert(id);
                    if *a != r.address {
                        *a = r.address;
                        changed = true;
                    }
                }
            }
            if changed {
                write_cache(&cache, &addresses);
                restart(&mut running, &addresses, client(&tls));
            }
        }
        let every = if registered && known.len() == addresses.len() {
            REFRESH
        } else {
            REFRESH_FAST
        };
        let rotated = async {
            match tls.as_mut() {
                Some(rx) => rx.changed().await.is_ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = switchyard_host::time::sleep(every) => {}
            true = rotated => {
                // New certificates: new connections to every peer.
                restart(&mut running, &addresses, client(&tls));
                tracing::info!("peer checks reconnect with the reloaded certificates");
            }
            _ = shutdown.wait_for(|s| *s) => break,
        }
    }
    if let Some((_, f)) = running {
        f.abort();
    }
}

/// Copies a prober's views to the published ones until aborted.
fn forward(p: &PeerProber, views: std::sync::Arc<PeerViews>) -> tokio::task::JoinHandle<()> {
    let mut reachable = p.subscribe();
    let mut with_etcd = p.subscribe_etcd();
    crate::task::spawn(async move {
        loop {
            let r = reachable.borrow_and_update().clone();
            let e = with_etcd.borrow_and_update().clone();
            views.reachable.send_if_modified(|s| replace(s, r));
            views.with_etcd.send_if_modified(|s| replace(s, e));
            tokio::select! {
                c = reachable.changed() => if c.is_err() { return },
                c = with_etcd.changed() => if c.is_err() { return },
            }
        }
    })
}

fn replace(slot: &mut BTreeSet<String>, new: BTreeSet<String>) -> bool {
    let differ = *slot != new;
    *slot = new;
    differ
}

fn read_cache(path: &std::path::Path) -> BTreeMap<String, String> {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn write_cache(path: &std::path::Path, addresses: &BTreeMap<String, String>) {
    let tmp = path.with_extension("tmp");
    let written = serde_json::to_vec_pretty(addresses)
        .map_err(std::io::Error::other)
        .and_then(|b| std::fs::write(&tmp, b))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        tracing::warn!(path = %path.display(), error = %e, "cannot cache peer addresses");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_listener_is_advertised_at_the_configured_host() {
        let configured: SocketAddr = "10.0.0.5:7000".parse().unwrap();
        let bound: SocketAddr = "0.0.0.0:41234".parse().unwrap();
        assert_eq!(advertised(bound, configured).to_string(), "10.0.0.5:41234");
        let bound: SocketAddr = "10.213.1.2:41234".parse().unwrap();
        assert_eq!(advertised(bound, configured), bound);
    }

    #[test]
    fn ping_timeout_stays_well_inside_the_lease() {
        assert_eq!(
            ping_timeout(Duration::from_secs(4)),
            Duration::from_millis(500)
        );
        assert_eq!(
            ping_timeout(Duration::from_secs(2)),
            Duration::from_millis(300)
        );
        assert_eq!(
            ping_timeout(Duration::from_secs(60)),
            Duration::from_secs(1)
        );
    }
}
