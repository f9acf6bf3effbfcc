//! The control loops of one controller, wired from parts the caller gives:
//! the etcd probe, the primary-lease keeper, the isolation loop and its
//! fences, the election and the leader loop. [`super::run`] gives them a
//! real etcd, real database adapters and the peers' gRPC pings; the
//! simulator gives them the in-memory etcd, simulated MariaDB servers and
//! peer views it computes from its partitions — the same loops either way.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use switchyard_probes::replication::ReplicaSet;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use super::{isolation, leader, lease_keeper};
use crate::api::ingest::Aggregator;
use crate::clock::Clock;
use crate::config::{Config, Controller};
use crate::executor::{Executor, StepTiming};
use crate::fence::lease::{DEFAULT_DRIFT_MARGIN, LeaseReader};
use crate::fence::local::{FenceLog, LocalFencer};
use crate::store::{ElectionConfig, LEASE_MARGIN, Role, Store, election};
use crate::traffic::TrafficBackend;

/// What a controller's loops run on.
pub struct Parts {
    /// The whole config.
    pub cfg: Config,
    /// This controller's entry in it.
    pub me: Controller,
    /// Shared state and the action journal.
    pub store: Store,
    /// Where weights are applied.
    pub traffic: Arc<dyn TrafficBackend>,
    /// Every database, all its members (what a failover acts on).
    pub databases: BTreeMap<String, Arc<dyn ReplicaSet>>,
    /// Every database with members in this region, only those members
    /// (what the lease keeper holds and an isolated controller fences).
    pub local_sets: BTreeMap<String, Arc<dyn ReplicaSet>>,
    /// The probes' reports, debounced.
    pub aggregator: Arc<Aggregator>,
    /// Wall-clock time for decisions and records.
    pub clock: Arc<dyn Clock>,
    /// What must survive etcd being unreachable (the isolation fences'
    /// record).
    pub state_dir: PathBuf,
    /// The address peers and the CLI reach this controller at: the
    /// election's value.
    pub advertised: String,
}

impl std::fmt::Debug for Parts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parts")
            .field("me", &self.me.id)
            .finish_non_exhaustive()
    }
}

/// Which peers answer, and which of those reach etcd (from the peers'
/// pings, or from the simulator).
#[derive(Debug)]
pub struct PeerInputs {
    /// Peers whose last ping was answered.
    pub reachable: watch::Receiver<BTreeSet<String>>,
    /// Reachable peers that say they reach etcd.
    pub with_etcd: watch::Receiver<BTreeSet<String>>,
}

/// The running loops: the two the caller waits for on shutdown (the
/// leader resigns before the election ends), and this controller's view
/// of etcd, which its peer service reports.
#[derive(Debug)]
pub struct Running {
    /// The election (resigns and revokes on shutdown).
    pub election: JoinHandle<()>,
    /// The leader loop.
    pub leader: JoinHandle<()>,
    /// Whether this controller reaches etcd now.
    pub etcd_ok: watch::Receiver<bool>,
}

/// Starts the loops: the helpers go into `tasks`, the election and the
/// leader loop are returned.
pub fn spawn(
    parts: Parts,
    peers: PeerInputs,
    tasks: &mut JoinSet<()>,
    shutdown: watch::Receiver<bool>,
) -> Running {
    let Parts {
        cfg,
        me,
        store,
        traffic,
        databases,
        local_sets,
        aggregator,
        clock,
        state_dir,
        advertised,
    } = parts;
    // Split-brain protection: etcd reachability, primary leases of this
    // region, and the isolation loop that fences.
    let timing = isolation::Timing::for_ttl(cfg.etcd.primary_lease_ttl());
    let (last_ok_tx, last_ok_rx) = watch::channel(switchyard_host::time::now());
    let (etcd_ok_tx, etcd_ok_rx) = watch::channel(true);
    crate::task::spawn_in(
        tasks,
        isolation::probe_etcd(
            store.clone(),
            timing.probe_timeout,
            last_ok_tx,
            etcd_ok_tx,
            timing.etcd_silence,
            shutdown.clone(),
        ),
    );
    let log = Arc::new(FenceLog::new(state_dir.join("isolation-fences.jsonl")));
    let (held_tx, held_rx) = watch::channel(Default::default());
    let keeper = lease_keeper::LeaseKeeper::from_config(
        &cfg,
        store.clone(),
        &me.id,
        &me.region,
        local_sets.clone(),
        clock.clone(),
        log.clone(),
    );
    crate::task::spawn_in(
        tasks,
        keeper.run(held_tx, etcd_ok_rx.clone(), shutdown.clone()),
    );
    let fencers = local_sets
        .iter()
        .map(|(db, set)| {
            let members = cfg
                .databases
                .iter()
                .filter(|d| &d.name == db)
                .flat_map(|d| d.members.iter())
                .filter(|m| m.region == me.region)
                .map(|m| m.id.clone());
            LocalFencer::with_log(db.clone(), members, set.clone(), log.clone())
        })
        .collect();
    let isolation_loop = isolation::IsolationLoop {
        store: store.clone(),
        self_id: me.id.clone(),
        controllers: cfg.controllers.iter().map(|c| c.id.clone()).collect(),
        fencers,
        timing,
        clock: clock.clone(),
    };
    crate::task::spawn_in(
        tasks,
        isolation_loop.run(
            isolation::Inputs {
                last_etcd_ok: last_ok_rx,
                peers: peers.reachable,
                peers_with_etcd: peers.with_etcd,
                held: held_rx,
            },
            shutdown.clone(),
        ),
    );
    crate::task::spawn_in(
        tasks,
        isolation::flush_records(
            store.clone(),
            me.id.clone(),
            log,
            etcd_ok_rx.clone(),
            shutdown.clone(),
        ),
    );

    // Election: the value is our gRPC address, so peers and the CLI find
    // the leader.
    let (role_tx, role_rx) = watch::channel(Role::Follower);
    let election_cfg = ElectionConfig {
        name: store.keys().leader(),
        value: advertised,
        ttl: cfg.etcd.lease_ttl,
    };
    let election = crate::task::spawn(election::run(
        store.clone(),
        election_cfg,
        role_tx,
        shutdown.clone(),
    ));

    // The gate's lease reader forgets what it saw whenever this controller
    // loses etcd (it then tells its peers "no etcd", which may let a lease
    // holder fail static).
    let leases = Arc::new(
        LeaseReader::new(store.clone(), DEFAULT_DRIFT_MARGIN)
            .with_lease_ttl(cfg.etcd.primary_lease_ttl())
            .with_etcd_reach(etcd_ok_rx.clone())
            .with_coverage(crate::fence::gate::Coverage::from_config(&cfg)),
    );
    let topology = super::model::topology(&cfg);
    let policy = super::model::policy(&cfg);
    let ctx = leader::LeaderContext {
        executor: Arc::new(
            Executor::with_databases(store.clone(), traffic.clone(), databases.clone(), &me.id)
                .with_gate(leases)
                .with_timing(StepTiming::for_lease(cfg.etcd.lease_ttl, LEASE_MARGIN))
                .with_writers(
                    crate::traffic::records::RecordBook::from_config(&cfg),
                    crate::traffic::records::writer_records(&cfg),
                ),
        ),
        store,
        traffic,
        databases,
        topology,
        policy,
        aggregator,
        clock,
        id: me.id.clone(),
        retention: cfg.journal.clone(),
        drift_check: cfg.policy.drift_check,
        gate_alarm_after: cfg.policy.gate_alarm_after,
    };
    let leader = crate::task::spawn(leader::run(ctx, role_rx, shutdown));
    Running {
        election,
        leader,
        etcd_ok: etcd_ok_rx,
    }
}
