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

/// Registers `me` (retrying until etcd takes it), then keeps the prober's
/// address list current. Publishes the set of reachable peers on
/// `reachable` until `shutdown`.
pub async fn run(
    store: Store,
    cfg: Config,
    me: Registration,
    self_id: String,
    reachable: watch::Sender<BTreeSet<String>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let key = store.keys().controller(&self_id);
    let timeout = ping_timeout(cfg.etcd.primary_lease_ttl());
    let mut registered = false;
    let mut addresses: BTreeMap<String, String> = cfg
        .controllers
        .iter()
        .filter(|c| c.id != self_id)
        .map(|c| (c.id.clone(), c.listen.to_string()))
        .collect();
    let mut prober: Option<PeerProber> = None;
    let mut known: BTreeSet<String> = BTreeSet::new();
    let mut forward: Option<tokio::task::JoinHandle<()>> = None;
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
            for (id, r) in list {
                if id != self_id && addresses.contains_key(&id) {
                    addresses.insert(id.clone(), r.address);
                    known.insert(id);
                }
            }
        }
        let changed = prober.as_ref().is_none_or(|p| p.peers() != &addresses);
        if changed {
            match PeerProber::start(ProberConfig {
                self_id: self_id.clone(),
                cluster: cfg.cluster.clone(),
                peers: addresses.clone(),
                interval: PING_INTERVAL,
                timeout,
            }) {
                Ok(p) => {
                    tracing::info!(peers = ?addresses, "peer checks (re)started");
                    if let Some(f) = forward.take() {
                        f.abort();
                    }
                    let mut rx = p.subscribe();
                    let tx = reachable.clone();
                    forward = Some(tokio::spawn(async move {
                        loop {
                            let set = rx.borrow_and_update().clone();
                            tx.send_if_modified(|s| {
                                let differ = *s != set;
                                *s = set;
                                differ
                            });
                            if rx.changed().await.is_err() {
                                return;
                            }
                        }
                    }));
                    prober = Some(p);
                }
                Err(e) => tracing::warn!(error = %e, "peer checks cannot start"),
            }
        }
        let every = if registered && known.len() == addresses.len() {
            REFRESH
        } else {
            REFRESH_FAST
        };
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.wait_for(|s| *s) => break,
        }
    }
    if let Some(f) = forward {
        f.abort();
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
