//! Connecting a [`Store`] to a real etcd, and choosing the members a
//! one-shot caller (the operator API) should use. The member status probe
//! is etcd's own call, so it stays here, beside [`EtcdKv`].

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions};

use super::kv::etcd::EtcdKv;
use super::{EtcdAccess, Store, StoreError};

impl Store {
    /// Connects to etcd. Connecting is lazy enough that etcd may be down:
    /// calls fail with [`StoreError::Unavailable`] until it answers.
    pub async fn connect(endpoints: &[String], cluster: &str) -> Result<Self, StoreError> {
        Self::connect_with(endpoints, cluster, &EtcdAccess::plain()).await
    }

    /// [`connect`](Self::connect) with TLS and a login (`access`, from the
    /// config's `[etcd.tls]` and `etcd.credentials`). A login etcd rejects
    /// is [`StoreError::Refused`], not worth retrying.
    pub async fn connect_with(
        endpoints: &[String],
        cluster: &str,
        access: &EtcdAccess,
    ) -> Result<Self, StoreError> {
        let kv = EtcdKv::connect_with(endpoints, Some(options(access))).await?;
        Ok(Store::on(Arc::new(kv), cluster))
    }

    /// Like [`connect`](Self::connect), for one-shot calls (the operator
    /// API's, [`crate::api::operator::reach`]): only the endpoints that
    /// answer within `probe`, know a leader and have caught up are used
    /// (those that accept a TCP connection if none knows one, all of them
    /// if none does, so the error names the outage). etcd's balanced
    /// channel sends calls to a dead member as readily as to a live one,
    /// and an operator's call is not retried next tick: with one member of
    /// three down, operators would lose the CLI when they need it most. A
    /// member back from a partition answers before it has heard from the
    /// leader, and refuses every call meanwhile (`etcdserver: no leader`):
    /// the others are asked.
    pub async fn connect_reachable(
        endpoints: &[String],
        cluster: &str,
        access: &EtcdAccess,
        probe: Duration,
    ) -> Result<Self, StoreError> {
        // Every member asked at once: a CLI call waits for the slowest
        // answer or `probe`, not their sum.
        let reachable: Vec<String> =
            futures_util::future::join_all(endpoints.iter().map(|e| async move {
                let addr = host_port(e)?;
                matches!(
                    switchyard_host::time::timeout(probe, tokio::net::TcpStream::connect(&addr))
                        .await,
                    Ok(Ok(_))
                )
                .then(|| e.clone())
            }))
            .await
            .into_iter()
            .flatten()
            .collect();
        // (endpoint, raft index, applied index) of each member that knows
        // a leader.
        let led: Vec<(String, u64, u64)> =
            futures_util::future::join_all(reachable.iter().map(|e| async move {
                let status = async {
                    let mut c = Client::connect(std::slice::from_ref(e), Some(options(access)))
                        .await
                        .ok()?;
                    c.status().await.ok()
                };
                match switchyard_host::time::timeout(probe, status).await {
                    Ok(Some(s)) if s.leader() != 0 => {
                        Some((e.clone(), s.raft_index(), s.raft_applied_index()))
                    }
                    _ => None,
                }
            }))
            .await
            .into_iter()
            .flatten()
            .collect();
        let chosen = if !led.is_empty() {
            caught_up(&led)
        } else if !reachable.is_empty() {
            reachable
        } else {
            endpoints.to_vec()
        };
        Self::connect_with(&chosen, cluster, access).await
    }
}

/// The connection options of every client the controller makes: short
/// connect and keep-alive timeouts, calls refused by a member without a
/// leader, and `access`'s TLS and login.
fn options(access: &EtcdAccess) -> ConnectOptions {
    access.apply(
        ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2))
            .with_require_leader(true),
    )
}

/// How far behind the most advanced member a member's applied index may
/// be and still serve the CLI: one back from a partition can be far
/// behind, and every read it serves waits until it has caught up.
const CAUGHT_UP: u64 = 1000;

/// Of the members that know a leader, those that have applied nearly all
/// the log the most advanced one has: a CLI call sent to a member still
/// catching up after a partition would time out. All of them when none
/// qualifies.
fn caught_up(members: &[(String, u64, u64)]) -> Vec<String> {
    let newest = members
        .iter()
        .map(|(_, index, _)| *index)
        .max()
        .unwrap_or(0);
    let close: Vec<String> = members
        .iter()
        .filter(|(_, _, applied)| applied + CAUGHT_UP >= newest)
        .map(|(e, _, _)| e.clone())
        .collect();
    if close.is_empty() {
        members.iter().map(|(e, _, _)| e.clone()).collect()
    } else {
        close
    }
}

/// `host:port` of an etcd endpoint URL (`http://h:p`, `https://h:p/`, or
/// bare `h:p`).
pub fn host_port(endpoint: &str) -> Option<String> {
    let rest = endpoint
        .split_once("://")
        .map_or(endpoint, |(_, r)| r)
        .trim_end_matches('/');
    (!rest.is_empty() && rest.contains(':')).then(|| rest.to_string())
}

#[cfg(test)]
mod tests {
    use super::{caught_up, host_port};

    #[test]
    fn the_cli_keeps_to_members_that_have_caught_up() {
        let m = |e: &str, index: u64, applied: u64| (e.to_string(), index, applied);
        // A member back from a partition, far behind: left out.
        assert_eq!(
            caught_up(&[m("a", 5000, 5000), m("b", 5000, 4990), m("c", 5000, 1200)]),
            vec!["a".to_string(), "b".to_string()]
        );
        // Within the bound: kept.
        assert_eq!(
            caught_up(&[m("a", 5000, 5000), m("c", 5000, 4000)]).len(),
            2
        );
        // Never an empty list.
        assert_eq!(caught_up(&[m("a", 9000, 10)]), vec!["a".to_string()]);
    }

    #[test]
    fn endpoints_give_their_host_and_port() {
        let table = [
            ("http://127.0.0.1:2379", Some("127.0.0.1:2379")),
            (
                "https://etcd-1.internal:2379/",
                Some("etcd-1.internal:2379"),
            ),
            ("10.0.0.1:2379", Some("10.0.0.1:2379")),
            ("http://", None),
            ("etcd", None),
        ];
        for (e, want) in table {
            assert_eq!(host_port(e).as_deref(), want, "{e}");
        }
    }
}
