//! In-process: real tonic servers on loopback, a prober pinging them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio_stream::wrappers::TcpListenerStream;

use super::*;

/// A `Peer` server on 127.0.0.1:0; stops when the returned sender is
/// dropped or fired.
async fn serve(id: &str, cluster: &str) -> (SocketAddr, oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let (_leader_tx, leader_rx) = watch::channel(true);
    let service = PeerService::new(id, cluster, leader_rx).into_server();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
                let _ = stopped.await;
            })
            .await;
    });
    (addr, stop)
}

fn config(peers: BTreeMap<String, String>) -> ProberConfig {
    ProberConfig {
        self_id: "a".into(),
        cluster: "prod".into(),
        peers,
        interval: Duration::from_millis(100),
        timeout: Duration::from_millis(300),
        tls: None,
    }
}

async fn wait_set(
    rx: &mut watch::Receiver<BTreeSet<String>>,
    want: &[&str],
    within: Duration,
) -> BTreeSet<String> {
    let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
    let got = match tokio::time::timeout(within, rx.wait_for(|s| *s == want)).await {
        Ok(Ok(set)) => Some(set.clone()),
        _ => None,
    };
    got.unwrap_or_else(|| panic!("reachable set never became {want:?}; is {:?}", *rx.borrow()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prober_tracks_which_peers_answer() {
    let (b, stop_b) = serve("b", "prod").await;
    let (c, _stop_c) = serve("c", "prod").await;
    // A port nobody listens on: bind, note, release.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let peers = BTreeMap::from([
        ("a".to_string(), "127.0.0.1:1".to_string()), // self: never pinged
        ("b".to_string(), b.to_string()),
        ("c".to_string(), format!("http://{c}")),
        ("d".to_string(), dead.to_string()),
    ]);
    let prober = PeerProber::start(config(peers)).expect("start");
    let mut rx = prober.subscribe();
    wait_set(&mut rx, &["b", "c"], Duration::from_secs(5)).await;

    // b stops: gone from the set within a few intervals plus the timeout.
    let t = tokio::time::Instant::now();
    drop(stop_b);
    wait_set(&mut rx, &["c"], Duration::from_secs(3)).await;
    assert!(t.elapsed() < Duration::from_secs(3));
    assert_eq!(prober.reachable(), BTreeSet::from(["c".to_string()]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_of_another_cluster_or_identity_do_not_count() {
    let (other_cluster, _s1) = serve("b", "staging").await;
    let (impostor, _s2) = serve("z", "prod").await;
    let (good, _s3) = serve("c", "prod").await;
    let peers = BTreeMap::from([
        ("b".to_string(), other_cluster.to_string()),
        ("y".to_string(), impostor.to_string()),
        ("c".to_string(), good.to_string()),
    ]);
    let prober = PeerProber::start(config(peers)).expect("start");
    let mut rx = prober.subscribe();
    wait_set(&mut rx, &["c"], Duration::from_secs(5)).await;
    // Several more rounds: b and y never join.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(prober.reachable(), BTreeSet::from(["c".to_string()]));
}

#[tokio::test]
async fn service_refuses_another_cluster() {
    let (_tx, rx) = watch::channel(false);
    let svc = PeerService::new("b", "prod", rx);
    let refused = svc
        .ping(Request::new(PingRequest {
            from: "a".into(),
            cluster: "staging".into(),
        }))
        .await;
    assert_eq!(
        refused.map(|_| ()).map_err(|s| s.code()),
        Err(tonic::Code::FailedPrecondition)
    );
    let ok = svc
        .ping(Request::new(PingRequest {
            from: "a".into(),
            cluster: "prod".into(),
        }))
        .await
        .expect("same cluster")
        .into_inner();
    assert_eq!((ok.id.as_str(), ok.etcd_reachable), ("b", false));
}

#[tokio::test]
async fn bad_address_is_an_error() {
    let peers = BTreeMap::from([("b".to_string(), "http://[::1".to_string())]);
    let err = PeerProber::start(config(peers)).expect_err("bad uri");
    assert!(err.to_string().contains("controller b"), "{err}");
}

/// A `Peer` that answers after `stall` while `stalls` > 0 (one stall per
/// ping), else at once.
#[derive(Clone)]
struct Stalling {
    id: String,
    stalls: std::sync::Arc<std::sync::atomic::AtomicU32>,
    stall: Duration,
}

#[tonic::async_trait]
impl Peer for Stalling {
    async fn ping(&self, _: Request<PingRequest>) -> Result<Response<PingReply>, Status> {
        use std::sync::atomic::Ordering;
        let stalled = self
            .stalls
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if stalled {
            tokio::time::sleep(self.stall).await;
        }
        Ok(Response::new(PingReply {
            id: self.id.clone(),
            cluster: "prod".into(),
            etcd_reachable: true,
        }))
    }
}

/// One slow ping is forgiven (a busy peer is not gone: failing static
/// needs every controller to answer); two in a row are not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_lost_ping_is_forgiven_two_are_not() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let stalls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let svc = Stalling {
        id: "b".into(),
        stalls: stalls.clone(),
        stall: Duration::from_millis(600),
    };
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(PeerServer::new(svc))
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await;
    });
    let prober = PeerProber::start(config(BTreeMap::from([(
        "b".to_string(),
        addr.to_string(),
    )])))
    .expect("start");
    let mut rx = prober.subscribe();
    let mut etcd = prober.subscribe_etcd();
    wait_set(&mut rx, &["b"], Duration::from_secs(5)).await;
    wait_set(&mut etcd, &["b"], Duration::from_secs(5)).await;
    // Record every change of the set from here on.
    let changes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = changes.clone();
    let mut watch = prober.subscribe();
    watch.borrow_and_update();
    let recorder = tokio::spawn(async move {
        while watch.changed().await.is_ok() {
            let now = watch.borrow_and_update().clone();
            seen.lock().expect("lock").push(now);
        }
    });
    stalls.store(1, std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(
        stalls.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the stall happened"
    );
    assert!(
        changes.lock().expect("lock").is_empty(),
        "one timed-out ping made b leave: {:?}",
        changes.lock().expect("lock")
    );
    assert_eq!(
        prober.subscribe_etcd().borrow().clone(),
        BTreeSet::from(["b".to_string()])
    );
    // Many stalls in a row: b leaves, then comes back.
    stalls.store(3, std::sync::atomic::Ordering::SeqCst);
    wait_set(&mut rx, &[], Duration::from_secs(5)).await;
    wait_set(&mut rx, &["b"], Duration::from_secs(5)).await;
    recorder.abort();
}
