//! `switchyard controller`: one controller process. It serves probe ingest
//! and gRPC health, campaigns for leadership, aggregates every report, and
//! — while leader — decides and acts. Listeners and the shutdown signal are
//! passed in, so tests run it on port 0 and stop it cleanly.

pub mod change_watch;
pub mod control;
pub mod follow;
pub mod isolation;
pub mod lanes;
pub mod leader;
pub mod lease_keeper;
pub mod loops;
pub mod metrics;
pub mod model;
pub mod peers;
pub mod probe_plan;
pub mod rejoin;
pub mod retry;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use switchyard_probes::proto::probe_ingest_server::ProbeIngestServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::wrappers::TcpListenerStream;

use crate::api::ingest::{Aggregator, IngestService};
use crate::api::peer::PeerService;
use crate::clock::Clock;
use crate::config::{Config, Controller, Dns};
use crate::store::Store;
use crate::traffic::embedded::EmbeddedBackend;
use crate::traffic::file::FileBackend;
use crate::traffic::records::RecordBook;
use crate::traffic::route53::Route53Backend;
use crate::traffic::{TrafficBackend, TrafficError};

/// How long open gRPC calls may run on after shutdown, once leadership is resigned.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

/// Why a controller could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The config names no controller with this id.
    #[error("no [[controllers]] entry has id {id:?}; declared: {declared}")]
    UnknownController {
        /// The id asked for.
        id: String,
        /// The ids the config declares.
        declared: String,
    },
    /// The traffic backend could not start (e.g. the DNS port is taken).
    #[error(transparent)]
    Traffic(#[from] TrafficError),
    /// A database adapter could not be built (a secret, a bad member).
    #[error(transparent)]
    Adapter(#[from] model::AdapterError),
    /// etcd could not be reached at all.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The etcd TLS files or login named by the config cannot be used.
    #[error(transparent)]
    EtcdAccess(#[from] crate::store::AccessError),
    /// A `[tls]` file cannot be used.
    #[error(transparent)]
    GrpcTls(#[from] crate::tls::TlsFileError),
    /// The gRPC reflection service could not read the protocols'
    /// descriptors (a build defect).
    #[error("gRPC reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// A listener failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Keeps the operator service's health in step with its operators: NOT_SERVING
/// while there are none (every call would be refused), SERVING otherwise.
async fn operator_health(
    reporter: tonic_health::server::HealthReporter,
    mut operators: watch::Receiver<Arc<crate::api::operator::OperatorBook>>,
    mut shutdown: watch::Receiver<bool>,
) {
    type Api = crate::api::operator::proto::operator_server::OperatorServer<
        crate::api::operator::OperatorService,
    >;
    loop {
        if operators.borrow_and_update().is_empty() {
            reporter.set_not_serving::<Api>().await;
        } else {
            reporter.set_serving::<Api>().await;
        }
        tokio::select! {
            changed = operators.changed() => if changed.is_err() { return },
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}

/// Connects to etcd. Without a login the connection is lazy (etcd may be
/// down). With one, etcd-client logs in at once, so while etcd does not
/// answer this retries every second (until `shutdown`) instead of exiting.
async fn connect_store(
    cfg: &Config,
    access: &crate::store::EtcdAccess,
    mut shutdown: watch::Receiver<bool>,
) -> Result<Store, StartError> {
    loop {
        match Store::connect_with(&cfg.etcd.endpoints, &cfg.cluster, access).await {
            Ok(s) => return Ok(s),
            Err(e) if access.logs_in() && e.retryable() => {
                tracing::warn!(error = %e, "cannot log in to etcd yet; retrying every second");
                tokio::select! {
                    _ = switchyard_host::time::sleep(std::time::Duration::from_secs(1)) => {}
                    _ = shutdown.wait_for(|s| *s) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The controller entry of `id` (or the only one, when `id` is `None`).
pub fn find_controller<'a>(
    cfg: &'a Config,
    id: Option<&str>,
) -> Result<&'a Controller, StartError> {
    let found = match id {
        Some(id) => cfg.controllers.iter().find(|c| c.id == id),
        None if cfg.controllers.len() == 1 => cfg.controllers.first(),
        None => None,
    };
    found.ok_or_else(|| StartError::UnknownController {
        id: id.unwrap_or("(none given; pass --id)").to_string(),
        declared: cfg
            .controllers
            .iter()
            .map(|c| c.id.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// A controller's traffic backend, plus what the embedded backend needs.
pub struct Traffic {
    /// Where the leader's actions go.
    pub backend: Arc<dyn TrafficBackend>,
    /// With the embedded backend: the local server's table, which follows
    /// the desired weights in etcd on every controller.
    pub follow: Option<crate::traffic::embedded::WeightTable>,
    /// With the embedded backend: where this controller's DNS server listens.
    pub dns: Option<SocketAddr>,
}

impl std::fmt::Debug for Traffic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Traffic").field("dns", &self.dns).finish()
    }
}

/// The traffic backend the config asks for. The embedded backend starts
/// this controller's DNS server (on `dns_listen` if given, else the
/// config's address), which runs as long as the backend lives.
pub async fn traffic_backend(
    cfg: &Config,
    dns_listen: Option<SocketAddr>,
) -> Result<Traffic, StartError> {
    Ok(match &cfg.dns {
        Dns::File(f) => Traffic {
            // With the config's records, like the real backends: it refuses
            // what the config does not declare and reads writer records back.
            backend: Arc::new(FileBackend::with_records(
                f.path.clone(),
                RecordBook::from_config(cfg),
            )),
            follow: None,
            dns: None,
        },
        Dns::Route53(r) => Traffic {
            backend: Arc::new(Route53Backend::connect(r, RecordBook::from_config(cfg)).await),
            follow: None,
            dns: None,
        },
        Dns::Embedded(e) => {
            let backend =
                EmbeddedBackend::from_config(cfg, &e.zone, dns_listen.unwrap_or(e.listen)).await?;
            Traffic {
                follow: Some(backend.table().clone()),
                dns: backend.addr(),
                backend: Arc::new(backend),
            }
        }
    })
}

/// Addresses the controller actually bound (port 0 resolved).
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    /// gRPC: probe ingest and health.
    pub grpc: SocketAddr,
    /// Prometheus `/metrics`, when enabled.
    pub metrics: Option<SocketAddr>,
}

/// What the outside gives a controller to serve on.
pub struct Listeners {
    /// gRPC: probe ingest, health, peer pings.
    pub grpc: TcpListener,
    /// Prometheus `/metrics`, when enabled.
    pub metrics: Option<TcpListener>,
    /// The traffic backend (with the embedded DNS server, if any).
    pub traffic: Traffic,
}

impl std::fmt::Debug for Listeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listeners")
            .field("grpc", &self.grpc.local_addr().ok())
            .field("traffic", &self.traffic)
            .finish()
    }
}

/// Runs controller `me` of `cfg` until `shutdown` turns true; on shutdown it
/// resigns leadership so a peer takes over at once. `state_dir` holds what
/// must survive etcd being unreachable (the record of isolation fences).
/// `operators` are the identities of the operator API as they are now
/// (the caller reloads them, [`crate::api::operator::reload`]).
pub async fn run(
    cfg: Config,
    me: Controller,
    listeners: Listeners,
    state_dir: PathBuf,
    operators: watch::Receiver<Arc<crate::api::operator::OperatorBook>>,
    clock: Arc<dyn Clock>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), StartError> {
    // Before anything else: a controller configured for TLS or a login
    // must never go on without them.
    let access = crate::store::EtcdAccess::from_config(&cfg)?;
    let grpc_tls = cfg
        .tls
        .as_ref()
        .map(crate::tls::GrpcTlsMaterial::load)
        .transpose()?;
    let Listeners {
        grpc,
        metrics: metrics_listener,
        traffic,
    } = listeners;
    let handle = metrics::install();
    metrics::zero_counters(cfg.databases.iter().map(|d| d.name.as_str()));
    if let Some(m) = &grpc_tls {
        m.record_expiry();
    }
    access.record_expiry();
    // From here on the `[tls]` files are watched: a rotated certificate is
    // used for every handshake after it (no restart).
    let grpc_tls = match (grpc_tls, &cfg.tls) {
        (Some(m), Some(files)) => {
            Some(crate::tls_reload::TlsReloader::new(files.clone(), m).spawn(shutdown.clone()))
        }
        _ => None,
    };
    let bound = Bound {
        grpc: grpc.local_addr()?,
        metrics: metrics_listener
            .as_ref()
            .map(|l| l.local_addr())
            .transpose()?,
    };
    let Traffic {
        backend: traffic,
        follow,
        ..
    } = traffic;
    let topology = model::topology(&cfg);
    let databases = model::replica_sets(&cfg)?;
    let local_sets = model::local_replica_sets(&cfg, &me.region)?;
    let policy = model::policy(&cfg);
    let known = Arc::new(model::known_names(&topology, &cfg.cluster));
    let aggregator = Arc::new(Aggregator::new(policy));
    let store = connect_store(&cfg, &access, shutdown.clone()).await?;
    metrics::set_leader(false);

    let mut tasks = tokio::task::JoinSet::new();
    if let Some(table) = follow {
        tasks.spawn(follow::follow_weights(
            store.clone(),
            table,
            crate::traffic::records::writer_records(&cfg),
            shutdown.clone(),
        ));
    }
    if let Some(l) = metrics_listener {
        tasks.spawn(metrics::serve(l, handle, shutdown.clone()));
    }

    // Which peers answer the gRPC pings, and which of those reach etcd.
    let (peers_tx, peers_rx) = watch::channel(Default::default());
    let (with_etcd_tx, with_etcd_rx) = watch::channel(Default::default());
    let advertised = peers::advertised(bound.grpc, me.listen);
    tasks.spawn(peers::run(
        store.clone(),
        cfg.clone(),
        grpc_tls.clone(),
        peers::Registration {
            address: advertised.to_string(),
            region: me.region.clone(),
            started_at: clock.now(),
        },
        me.id.clone(),
        state_dir.join("peers.json"),
        peers::PeerViews {
            reachable: peers_tx,
            with_etcd: with_etcd_tx,
        },
        shutdown.clone(),
    ));
    let running = loops::spawn(
        loops::Parts {
            cfg: cfg.clone(),
            me: me.clone(),
            store,
            traffic,
            databases,
            local_sets,
            aggregator: aggregator.clone(),
            clock: clock.clone(),
            state_dir,
            advertised: advertised.to_string(),
        },
        loops::PeerInputs {
            reachable: peers_rx,
            with_etcd: with_etcd_rx,
        },
        &mut tasks,
        shutdown.clone(),
    );

    // gRPC: ingest + health + peer pings.
    let mut ingest = IngestService::new(aggregator.clone(), known, clock.clone());
    if grpc_tls.is_some() {
        ingest = ingest.certified_vantages_only();
    }
    let mut server = tonic::transport::Server::builder();
    let peer = PeerService::new(me.id.clone(), cfg.cluster.clone(), running.etcd_ok.clone());
    let operator = crate::api::operator::proto::operator_server::OperatorServer::new(
        crate::api::operator::OperatorService::new(
            Arc::new(cfg.clone()),
            access.clone(),
            operators.clone(),
        ),
    );
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<ProbeIngestServer<IngestService>>()
        .await;
    // The operator API is SERVING while some operator may call it, and
    // NOT_SERVING while `[[operators]]` is empty (it refuses every call).
    tasks.spawn(operator_health(
        health_reporter.clone(),
        operators,
        shutdown.clone(),
    ));
    let reflection = crate::api::reflection::service()?;
    let mut grpc_shutdown = shutdown.clone();
    let tls_for_server = grpc_tls.clone();
    tasks.spawn(async move {
        let router = server
            .add_service(health_service)
            .add_service(reflection)
            .add_service(ProbeIngestServer::new(ingest))
            .add_service(operator)
            .add_service(peer.into_server());
        let stop = async move {
            let _ = grpc_shutdown.wait_for(|s| *s).await;
        };
        let r = match tls_for_server {
            Some(tls) => {
                router
                    .serve_with_incoming_shutdown(crate::api::tls_accept::incoming(grpc, tls), stop)
                    .await
            }
            None => {
                router
                    .serve_with_incoming_shutdown(TcpListenerStream::new(grpc), stop)
                    .await
            }
        };
        if let Err(e) = r {
            tracing::error!(error = %e, "gRPC server failed");
        }
    });
    let loops::Running {
        election,
        leader: leader_loop,
        ..
    } = running;

    let mut shutdown_wait = shutdown.clone();
    let _ = shutdown_wait.wait_for(|s| *s).await;
    tracing::info!("shutting down: resigning leadership");
    let _ = leader_loop.await;
    let _ = election.await;
    // Probe streams never end by themselves: give open calls a moment to
    // finish, then close what is left.
    let drain = async { while tasks.join_next().await.is_some() {} };
    if switchyard_host::time::timeout(SHUTDOWN_GRACE, drain)
        .await
        .is_err()
    {
        tasks.shutdown().await;
    }
    Ok(())
}

#[cfg(test)]
mod operator_health_tests {
    use super::*;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_server::Health;

    /// The operator service's status; `None` before it has one.
    async fn status(service: &tonic_health::server::HealthService) -> Option<ServingStatus> {
        service
            .check(tonic::Request::new(HealthCheckRequest {
                service: "switchyard.operator.v1.Operator".into(),
            }))
            .await
            .ok()
            .map(|r| r.into_inner().status())
    }

    /// With no operators the API refuses every call, and says so in its
    /// health; an operator added (a reload) makes it SERVING.
    #[tokio::test]
    async fn the_operator_api_is_not_serving_without_operators() {
        let reporter = tonic_health::server::HealthReporter::new();
        let service = tonic_health::server::HealthService::from_health_reporter(reporter.clone());
        let (book_tx, book_rx) =
            watch::channel(Arc::new(crate::api::operator::OperatorBook::default()));
        let (_stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(operator_health(reporter, book_rx, stop_rx));
        let until = |want: ServingStatus| {
            let service = &service;
            async move {
                for _ in 0..200 {
                    if status(service).await == Some(want) {
                        return;
                    }
                    switchyard_host::time::sleep(std::time::Duration::from_millis(5)).await;
                }
                panic!("never {want:?}");
            }
        };
        until(ServingStatus::NotServing).await;
        let book = crate::api::operator::OperatorBook::from_config(&[crate::config::Operator {
            name: "o".into(),
            role: crate::config::Role::Viewer,
            token_sha256: Some("ab".repeat(32)),
            token_file: None,
        }])
        .expect("book");
        book_tx.send_replace(Arc::new(book));
        until(ServingStatus::Serving).await;
    }
}
