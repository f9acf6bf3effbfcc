//! One simulated cluster: three regions, each with a controller, a probe
//! and a MariaDB member; the in-memory etcd ([`MemKv`]), the simulated
//! MariaDB servers ([`SimNetwork`]) and the in-memory DNS provider
//! ([`MemoryBackend`]). The controllers run their real control loops
//! ([`loops::spawn`]); only what is outside them is simulated: the network
//! (who reaches whom), the probes' reports, and the peers' pings.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use switchyard_controller::api::ingest::{Aggregator, KnownNames, check_report};
use switchyard_controller::cli::ops::{self, Actor, Switch};
use switchyard_controller::clock::Clock;
use switchyard_controller::config::{self, Config};
use switchyard_controller::engine::{Observation, TargetId};
use switchyard_controller::runtime::{loops, model};
use switchyard_controller::store::Store;
use switchyard_controller::store::kv::model::MemKv;
use switchyard_controller::task::Host;
use switchyard_controller::traffic::memory::MemoryBackend;
use switchyard_controller::traffic::records::RecordBook;
use switchyard_controller::traffic::{RecordChange, TrafficBackend};
use switchyard_probes::proto::{Outcome, ProbeReport};
use switchyard_probes::replication::mysql::sim::{SimNetwork, StatementObserver};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// The regions, in priority order.
pub const REGIONS: [&str; 3] = ["a", "b", "c"];
/// The weighted record.
pub const RECORD: &str = "api.sim.test.";
/// How often the simulated probes report.
pub const PROBE_EVERY: Duration = Duration::from_millis(500);

/// A member's address.
pub fn member(region: &str) -> String {
    format!("db-{region}:3306")
}

/// A controller's id.
pub fn controller(region: &str) -> String {
    format!("ctl-{region}")
}

/// The application of a region: the client whose reach decides whether
/// a writable member is "reachable by clients".
pub fn app(region: &str) -> String {
    format!("app-{region}")
}

/// A host's wall clock: tokio's (paused) clock, plus an error that grows
/// at a drift rate while a clock fault holds
/// ([`super::schedule::Kind::ClockDrift`]) and is stepped back to nothing
/// when it heals, as chrony steps a clock it finds far off. Timers are not
/// drifted: tokio's clock stands for every host's monotonic clock, whose
/// rate NTP bounds to 500 ppm; wall time is what hosts disagree on.
#[derive(Debug)]
pub struct SimClock {
    start: tokio::time::Instant,
    at: DateTime<Utc>,
    drift: std::sync::Mutex<Drift>,
}

/// A wall clock's error: `base` when the rate last changed (`since`),
/// growing by `ppm` microseconds a second from then.
#[derive(Debug, Clone, Copy)]
struct Drift {
    base_us: i64,
    since: tokio::time::Instant,
    ppm: i64,
}

impl SimClock {
    fn new() -> Self {
        let start = tokio::time::Instant::now();
        SimClock {
            start,
            at: DateTime::from_timestamp(1_800_000_000, 0).expect("a valid time"),
            drift: std::sync::Mutex::new(Drift {
                base_us: 0,
                since: start,
                ppm: 0,
            }),
        }
    }

    /// The error now, in microseconds (positive: ahead of true time).
    fn error_us(d: &Drift, now: tokio::time::Instant) -> i64 {
        let run = now.saturating_duration_since(d.since).as_micros() as i64;
        d.base_us + run * d.ppm / 1_000_000
    }

    /// Lets the error grow at `ppm` from now on (`Some`), or steps the
    /// clock back to true time (`None`).
    pub fn set_drift(&self, ppm: Option<i64>) {
        let now = tokio::time::Instant::now();
        let mut d = self
            .drift
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let base_us = match ppm {
            Some(_) => Self::error_us(&d, now),
            None => 0,
        };
        *d = Drift {
            base_us,
            since: now,
            ppm: ppm.unwrap_or(0),
        };
    }
}

impl Clock for SimClock {
    fn now(&self) -> DateTime<Utc> {
        let now = tokio::time::Instant::now();
        let error = {
            let d = self
                .drift
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            Self::error_us(&d, now)
        };
        self.at
            + chrono::TimeDelta::from_std(now.saturating_duration_since(self.start))
                .unwrap_or_default()
            + chrono::TimeDelta::microseconds(error)
    }
}

/// The cluster's config: a 3 s election lease (so a 6 s primary lease),
/// shorter than production's 5 s, automatic database failover.
fn config_text(dir: &Path) -> String {
    std::fs::write(dir.join("admin.secret"), "x").expect("secret");
    let mut t = format!(
        r#"cluster = "sim"

[etcd]
endpoints = ["http://etcd.sim:2379"]
lease_ttl = "3s"

[dns]
backend = "file"
path = "{weights}"

[policy]
fall = 2
rise = 2
quorum = 2
stale_after = "8s"
max_evacuated = 1
failback = "manual"
db_failover = "auto"

[credentials.admin]
user = "admin"
password = {{ file = "{secret}" }}
"#,
        weights = dir.join("weights.json").display(),
        secret = dir.join("admin.secret").display(),
    );
    for (i, r) in REGIONS.iter().enumerate() {
        t.push_str(&format!(
            "\n[[regions]]\nname = \"{r}\"\nweight = 100\npriority = {}\n\
             \n[[controllers]]\nid = \"{}\"\nregion = \"{r}\"\nlisten = \"127.0.0.1:{}\"\n",
            i + 1,
            controller(r),
            7400 + i
        ));
    }
    t.push_str(&format!(
        "\n[[services]]\nname = \"api\"\nrecord = \"{RECORD}\"\nttl = 30\n"
    ));
    for (i, r) in REGIONS.iter().enumerate() {
        t.push_str(&format!(
            "\n[[services.endpoints]]\nregion = \"{r}\"\nvalue = \"192.0.2.{}\"\ntarget = \"10.0.{i}.1:80\"\n",
            i + 1
        ));
    }
    t.push_str("\n[[services.checks]]\nkind = \"tcp\"\ninterval = \"1s\"\ntimeout = \"500ms\"\n");
    t.push_str(
        "\n[[databases]]\nname = \"orders\"\nkind = \"mariadb\"\nmax_lag = \"10s\"\n\
         credentials = \"admin\"\n",
    );
    if dead_man() {
        t.push_str("dead_man = true\n");
    }
    for r in REGIONS {
        t.push_str(&format!(
            "\n[[databases.members]]\nid = \"m-{r}\"\nregion = \"{r}\"\naddress = \"{}\"\n",
            member(r)
        ));
    }
    t
}

/// Whether the primary carries its dead-man switch (docs/SAFETY.md, S1):
/// on unless `SIM_DEAD_MAN=off`, which shows what the switch prevents.
pub fn dead_man() -> bool {
    std::env::var("SIM_DEAD_MAN").map_or(true, |v| v != "off")
}

/// Counts one more fault holding `key` (`on`) or one fewer; true when
/// that changed whether any holds it.
fn hold<K: Ord>(counts: &mut BTreeMap<K, u32>, key: K, on: bool) -> bool {
    if on {
        let n = counts.entry(key).or_insert(0);
        *n += 1;
        *n == 1
    } else {
        match counts.get_mut(&key) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => {
                counts.remove(&key);
                true
            }
            None => false,
        }
    }
}

/// Adds (`on`) or removes one fault's `value` for `key`; the values still
/// held.
fn held_values<K: Ord, V: PartialEq + Copy>(
    held: &mut BTreeMap<K, Vec<V>>,
    key: K,
    value: V,
    on: bool,
) -> Vec<V> {
    let values = held.entry(key).or_default();
    if on {
        values.push(value);
    } else if let Some(i) = values.iter().position(|v| *v == value) {
        values.remove(i);
    }
    values.clone()
}

/// One controller as the simulation runs it.
struct Node {
    region: &'static str,
    link: Arc<MemKv>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    running: Option<loops::Running>,
    peers: watch::Sender<BTreeSet<String>>,
    with_etcd: watch::Sender<BTreeSet<String>>,
    aggregator: Arc<Aggregator>,
    /// The process's `SIGSTOP`.
    host: Host,
}

/// A pause armed to stop the next sender of a leader's statement
/// ([`super::schedule::Kind::PauseMidStep`]), and the pauses it started.
#[derive(Default)]
struct MidStep {
    /// How long the armed pause lasts, while armed.
    armed: Option<Duration>,
    /// An armed pause right after sending ([`super::schedule::Kind::PauseInFlight`]):
    /// how long it lasts, and how late the statement lands.
    in_flight: Option<(Duration, Duration)>,
    /// The hold [`Watcher::sent`] just gave the statement it paused after,
    /// for [`Watcher::held`] (called next, with no await between).
    hold: Option<Duration>,
    /// Pauses started: the controller, when, for how long, after what.
    started: Vec<MidStepPause>,
}

/// A pause started in the middle of a step.
#[derive(Debug, Clone)]
pub struct MidStepPause {
    /// The controller paused.
    pub controller: String,
    /// When, from the simulation's start.
    pub at: Duration,
    /// For how long.
    pub lasts: Duration,
    /// The statement it had just sent, and where.
    pub after: String,
}

/// The simulated cluster and its network.
pub struct World {
    cfg: Config,
    /// etcd.
    pub kv: MemKv,
    /// The MariaDB servers.
    pub net: SimNetwork,
    /// The DNS provider.
    pub dns: MemoryBackend,
    /// True time: the operator's, and the start of every host's clock.
    clock: Arc<SimClock>,
    /// Each region's host clock, shared by its controller (across
    /// restarts) and its probe.
    clocks: BTreeMap<&'static str, Arc<SimClock>>,
    /// Regions whose host clock drifts: each fault's rate, in ppm.
    drift: BTreeMap<&'static str, Vec<i64>>,
    /// How fast each host's monotonic clock runs, for the whole run (a
    /// controller restarted keeps its host's).
    rates: super::schedule::Rates,
    /// Regions whose controller sees its peers late (their pings' answers
    /// delayed): each fault's delay ([`Self::set_peer_lag`]).
    peer_lag: BTreeMap<&'static str, Vec<Duration>>,
    /// Regions whose controller's pings are lost: each fault's chance in a
    /// hundred ([`Self::set_peer_loss`]).
    peer_loss: BTreeMap<&'static str, Vec<u32>>,
    /// Consecutive lost pings, by (pinging controller's region, peer's).
    ping_misses: BTreeMap<(&'static str, &'static str), u32>,
    /// Every change of the peers' views as they stand, by when, for the
    /// controllers that see them late; pruned past the longest lag.
    peer_history: Vec<(tokio::time::Instant, PeerViews)>,
    /// Draws which pings are lost (its own stream: other draws stay put).
    ping_rng: rand::rngs::StdRng,
    /// What a probe report may name: reports reach a controller through
    /// the ingest service's own check, against its host's clock.
    known: KnownNames,
    /// (vantage, controller) pairs whose reports the controller refuses
    /// now, so the trace shows when refusing starts and ends.
    refusing: BTreeSet<(String, usize)>,
    /// Lines for the trace, taken by the run each step.
    notes: Vec<String>,
    /// Operator switches (a region's drain, the pause) with how many
    /// faults hold them.
    switches: BTreeMap<String, u32>,
    /// Requests whose withdrawal `cancel_request` confirmed.
    withdrawn: Vec<String>,
    nodes: Vec<Node>,
    /// Regions whose service endpoint is down, with how many faults hold
    /// it down (overlapping faults heal one at a time).
    pub service_down: BTreeMap<&'static str, u32>,
    /// Pairs of regions cut from each other (both ways), with how many
    /// faults hold the cut.
    pub cut: BTreeMap<(&'static str, &'static str), u32>,
    /// Controllers cut from etcd, with how many faults hold the cut.
    pub etcd_cut: BTreeMap<&'static str, u32>,
    /// Controllers crashed, with how many faults hold them down.
    pub controller_down: BTreeMap<&'static str, u32>,
    /// Controllers paused, with how many faults hold them.
    pub paused: BTreeMap<&'static str, u32>,
    /// Members answering late: the latency of each fault holding it.
    slow_sql: BTreeMap<&'static str, Vec<Duration>>,
    /// How many faults hold the DNS provider down.
    dns_down: BTreeMap<(), u32>,
    /// Probes whose reports are lost: each fault's chance in a hundred.
    probe_loss: BTreeMap<&'static str, Vec<u32>>,
    /// Probes whose reports arrive late: each fault's delay.
    probe_delay: BTreeMap<&'static str, Vec<Duration>>,
    /// Reports on their way: when due, to which node, what.
    in_flight: Vec<(tokio::time::Instant, usize, Vec<Observation>)>,
    /// Decides which reports are lost (drawn only while some are).
    rng: rand::rngs::StdRng,
    /// Whether each region's application writes, every probe round, on
    /// every member it can write on (seeds with operator requests).
    app_writes: bool,
    /// Switchovers promoting a member: (the member promoted, the primary
    /// recorded when it was), to check for lost writes.
    promotions: Arc<std::sync::Mutex<Vec<(String, String)>>>,
    /// Old primaries a forced failover replaced, with how many times:
    /// writable beside their replacement on the operator's word
    /// ([`World::excused`]).
    forced: Arc<std::sync::Mutex<BTreeMap<String, u32>>>,
    /// How many of each member's excuses are spent (it was seen fenced,
    /// down or the recorded primary again since).
    excuses_spent: BTreeMap<String, u32>,
    /// Each controller's host, by id, for the statement observer to pause.
    hosts: Arc<std::sync::Mutex<BTreeMap<String, Host>>>,
    mid_step: Arc<std::sync::Mutex<MidStep>>,
    /// Changes of a database's primary or replication sent by a controller
    /// that was not the leader at that moment (docs/SAFETY.md, S2).
    deposed_steps: Arc<std::sync::Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

/// Each region's controller's view of its peers: the peers that answer
/// its pings, and those of them that say they reach etcd.
type PeerViews = BTreeMap<&'static str, (BTreeSet<String>, BTreeSet<String>)>;

/// The longest a peer's ping answer can be late and still count (the
/// simulation's ping timeout, `runtime::peers::ping_timeout` of its 6 s
/// primary lease) plus one forgiven miss at the ping interval: the most a
/// controller's view of a peer lags behind the peer.
pub const PEER_LAG_MAX: Duration = Duration::from_millis(1_250);

/// The statements that change a member: sent by a controller's leader
/// part (`ctl-x`: the executor, the rejoin watcher) only while it leads,
/// as S2 says — a failover's fence, a promotion, a repointing, a lift.
/// Its local part (`ctl-x/local`: the isolation fences, the lease keeper
/// and its dead-man switch's renewals) is every controller's.
const LEADER_ONLY: [&str; 8] = [
    "SET GLOBAL read_only = ON",
    "KILL ",
    "SET GLOBAL read_only = OFF",
    "STOP SLAVE",
    "START SLAVE",
    "RESET SLAVE ALL",
    "CHANGE MASTER TO ",
    "UPDATE switchyard.dead_man ",
];

/// The controller whose candidate key leads the election in `kv` now (its
/// value is `<id>.sim:7400`), and its term (the key's create revision),
/// read past every link.
fn leader_now(kv: &MemKv, prefix: &str) -> Option<(String, u64)> {
    kv.snapshot()
        .into_iter()
        .filter(|k| k.key.starts_with(prefix))
        .min_by_key(|k| k.create_revision)
        .map(|k| {
            let v = String::from_utf8_lossy(&k.value).into_owned();
            let id = v
                .split_once('.')
                .map_or(v.clone(), |(id, _)| id.to_string());
            (id, k.create_revision as u64)
        })
}

/// Watches every statement (`SimNetwork::observe_statements`): who sends
/// a leader's statement and in which term, switchovers' promotions, and
/// the pause armed for the middle of a step.
struct Watcher {
    kv: MemKv,
    keys: switchyard_controller::store::Keys,
    prefix: String,
    found: Arc<std::sync::Mutex<Vec<String>>>,
    promotions: Arc<std::sync::Mutex<Vec<(String, String)>>>,
    forced: Arc<std::sync::Mutex<BTreeMap<String, u32>>>,
    hosts: Arc<std::sync::Mutex<BTreeMap<String, Host>>>,
    mid_step: Arc<std::sync::Mutex<MidStep>>,
    start: tokio::time::Instant,
    show: bool,
    /// The latest term (the leader key's create revision) whose leader's
    /// statement has reached a member.
    latest_term: std::sync::atomic::AtomicU64,
}

impl Watcher {
    /// A statement of a controller's leader part that changes a member.
    fn leaders(client: Option<&str>, sql: &str) -> Option<String> {
        let client = client?;
        (!client.contains('/') && LEADER_ONLY.iter().any(|p| sql.starts_with(p)))
            .then(|| client.to_string())
    }

    /// The armed pause right after sending, if any: freezes `client` now
    /// (its task stops at its next yield, while its statement is in
    /// flight) and holds the statement.
    fn pause_in_flight(&self, client: &str, address: &str, sql: &str) {
        let mut m = self
            .mid_step
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some((lasts, late)) = m.in_flight.take() else {
            return;
        };
        if let Some(f) = self
            .hosts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(client)
        {
            f.set_frozen(true);
        }
        m.hold = Some(late);
        m.started.push(MidStepPause {
            controller: client.to_string(),
            at: self.start.elapsed(),
            lasts,
            after: format!("sending `{sql}` to {address}, which lands {late:?} later"),
        });
    }

    fn breach(&self, what: String) {
        self.found
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(what);
    }
}

impl StatementObserver for Watcher {
    /// S2: the sender leads when it sends; the tag is its term.
    fn sent(&self, client: Option<&str>, address: &str, sql: &str) -> u64 {
        let Some(client) = Self::leaders(client, sql) else {
            return 0;
        };
        let term = match leader_now(&self.kv, &self.prefix) {
            Some((id, term)) if id == client => term,
            leader => {
                self.breach(format!(
                    "{:.3}s: {client} sent `{sql}` to {address} while {:?} led",
                    self.start.elapsed().as_secs_f64(),
                    leader.map(|(id, _)| id)
                ));
                0
            }
        };
        self.pause_in_flight(&client, address, sql);
        term
    }

    fn held(&self, _: Option<&str>, _: &str, _: &str, _: u64) -> Duration {
        self.mid_step
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .hold
            .take()
            .unwrap_or_default()
    }

    /// S2 for statements in flight: none of an earlier term reaches a
    /// member after one of a later term did (what the quiet period a new
    /// leader keeps is for); switchovers' promotions; the mid-step pause.
    fn landed(&self, client: Option<&str>, address: &str, sql: &str, term: u64) -> bool {
        let at = self.start.elapsed();
        if self.show
            && let Some(c) = client
        {
            println!("{:>9.3}s {c} -> {address}: {sql}", at.as_secs_f64());
        }
        let Some(client) = Self::leaders(client, sql) else {
            return false;
        };
        let latest = self
            .latest_term
            .fetch_max(term, std::sync::atomic::Ordering::SeqCst);
        if term < latest {
            self.breach(format!(
                "{:.3}s: `{sql}` from {client}'s term {term} reached {address} after a statement \
                 of term {latest}",
                at.as_secs_f64()
            ));
        }
        if sql == "SET GLOBAL read_only = OFF"
            && let Some(from) = switchover_to(&self.kv, &self.keys, address)
        {
            self.promotions
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push((address.to_string(), from));
        }
        if sql == "SET GLOBAL read_only = OFF"
            && let Some(old) = forced_from(&self.kv, &self.keys, address)
        {
            *self
                .forced
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .entry(old)
                .or_default() += 1;
        }
        let mut m = self
            .mid_step
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(lasts) = m.armed.take() else {
            return false;
        };
        if let Some(f) = self
            .hosts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&client)
        {
            f.set_frozen(true);
        }
        m.started.push(MidStepPause {
            controller: client,
            at,
            lasts,
            after: format!("`{sql}` on {address}"),
        });
        true
    }
}

/// When a switchover to the member at `address` is under way (its intent
/// pending in etcd's journal): the address of the primary etcd records,
/// which it replaces.
/// The old primary a pending forced failover replaces, when `address`
/// is not it: the member whose replacement `address` is becoming.
fn forced_from(
    kv: &MemKv,
    keys: &switchyard_controller::store::Keys,
    address: &str,
) -> Option<String> {
    use switchyard_controller::executor::{ActionSpec, JournalEntry, Status};
    kv.snapshot()
        .iter()
        .filter(|k| k.key.starts_with(&keys.journal_prefix()))
        .filter_map(|k| serde_json::from_slice::<JournalEntry>(&k.value).ok())
        .filter(|e| e.status == Status::Pending)
        .find_map(|e| match e.action {
            ActionSpec::Failover {
                from_member,
                force: true,
                ..
            } if !from_member.is_empty() => Some(member(from_member.trim_start_matches("m-"))),
            _ => None,
        })
        .filter(|old| old != address)
}

fn switchover_to(
    kv: &MemKv,
    keys: &switchyard_controller::store::Keys,
    address: &str,
) -> Option<String> {
    use switchyard_controller::executor::{ActionSpec, JournalEntry, Status};
    let all = kv.snapshot();
    let to = all
        .iter()
        .filter(|k| k.key.starts_with(&keys.journal_prefix()))
        .filter_map(|k| serde_json::from_slice::<JournalEntry>(&k.value).ok())
        .filter(|e| e.status == Status::Pending)
        .find_map(|e| match e.action {
            ActionSpec::Switchover { to_member, .. } => Some(to_member),
            _ => None,
        })?;
    if member(to.trim_start_matches("m-")) != address {
        return None;
    }
    let state = all.iter().find(|k| k.key == keys.database("orders"))?;
    let v: serde_json::Value = serde_json::from_slice(&state.value).ok()?;
    let primary = v.get("primary")?.as_str()?;
    Some(member(primary.trim_start_matches("m-")))
}

impl World {
    /// Builds the cluster with the member of `primary` primary (the others
    /// replicating from it) and the weights at 100 each, and starts the
    /// controllers (`ctl-a` campaigns first and leads).
    pub async fn start(primary: &str, seed: u64) -> World {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = config::parse(&config_text(dir.path()))
            .unwrap_or_else(|d| panic!("the simulation's config: {d:?}"))
            .config;
        let rates = super::schedule::rates(seed);
        let net = SimNetwork::new();
        for (i, r) in REGIONS.iter().enumerate() {
            net.add_server(&member(r), 1 + i as u32);
            net.set_clock_rate(&member(r), rates.member(r));
        }
        let kv = MemKv::new();
        kv.set_clock_rate(rates.etcd);
        for r in REGIONS.iter().filter(|r| **r != primary) {
            net.replicate(&member(r), &member(primary));
        }
        let dns = MemoryBackend::with_records(RecordBook::from_config(&cfg));
        dns.apply(&[RecordChange {
            record: RECORD.into(),
            weights: REGIONS.iter().map(|r| (r.to_string(), 100)).collect(),
        }])
        .await
        .expect("initial weights");
        let known = model::known_names(&model::topology(&cfg), &cfg.cluster);
        let mut world = World {
            cfg,
            kv,
            net,
            rates,
            peer_lag: BTreeMap::new(),
            peer_loss: BTreeMap::new(),
            ping_misses: BTreeMap::new(),
            peer_history: Vec::new(),
            ping_rng: rand::SeedableRng::seed_from_u64(seed ^ 0x9196_1055_0000_0001),
            dns,
            clock: Arc::new(SimClock::new()),
            clocks: REGIONS.map(|r| (r, Arc::new(SimClock::new()))).into(),
            drift: BTreeMap::new(),
            known,
            refusing: BTreeSet::new(),
            notes: Vec::new(),
            switches: BTreeMap::new(),
            withdrawn: Vec::new(),
            nodes: Vec::new(),
            service_down: BTreeMap::new(),
            cut: BTreeMap::new(),
            etcd_cut: BTreeMap::new(),
            controller_down: BTreeMap::new(),
            paused: BTreeMap::new(),
            slow_sql: BTreeMap::new(),
            dns_down: BTreeMap::new(),
            probe_loss: BTreeMap::new(),
            probe_delay: BTreeMap::new(),
            in_flight: Vec::new(),
            rng: rand::SeedableRng::seed_from_u64(seed ^ 0x9E37_79B9_7F4A_7C15),
            app_writes: super::schedule::requests_switchovers(seed),
            promotions: Arc::default(),
            forced: Arc::default(),
            excuses_spent: BTreeMap::new(),
            hosts: Arc::default(),
            mid_step: Arc::default(),
            deposed_steps: Arc::default(),
            _dir: dir,
        };
        {
            let keys = switchyard_controller::store::Keys::new(&world.cfg.cluster);
            world.net.observe_statements(Arc::new(Watcher {
                kv: world.kv.connect(),
                prefix: format!("{}/", keys.leader()),
                keys,
                found: world.deposed_steps.clone(),
                promotions: world.promotions.clone(),
                forced: world.forced.clone(),
                hosts: world.hosts.clone(),
                mid_step: world.mid_step.clone(),
                start: tokio::time::Instant::now(),
                show: std::env::var_os("SIM_STATEMENTS").is_some(),
                latest_term: std::sync::atomic::AtomicU64::new(0),
            }));
        }
        for r in REGIONS {
            let node = world.node(r);
            world.nodes.push(node);
        }
        world.publish_peers();
        world
    }

    fn node(&self, region: &'static str) -> Node {
        let id = controller(region);
        let me = self
            .cfg
            .controllers
            .iter()
            .find(|c| c.id == id)
            .expect("declared")
            .clone();
        let link = Arc::new(self.kv.connect());
        let store = Store::on(link.clone(), &self.cfg.cluster);
        let client = self.net.as_client(&id);
        let databases =
            model::simulated_replica_sets(&self.cfg, None, &client).expect("replica sets");
        // The lease keeper's and the isolation fences' sessions come from
        // `ctl-x/local`, the leader's (the executor's, the rejoin
        // watcher's) from `ctl-x`: a fence is anyone's, a failover's is
        // the leader's.
        let local_sets = model::simulated_replica_sets(
            &self.cfg,
            Some(region),
            &self.net.as_client(&format!("{id}/local")),
        )
        .expect("local replica sets");
        let aggregator = Arc::new(Aggregator::new(model::policy(&self.cfg)));
        let (stop, shutdown) = watch::channel(false);
        let (peers, peers_rx) = watch::channel(BTreeSet::new());
        let (with_etcd, with_etcd_rx) = watch::channel(BTreeSet::new());
        let state_dir = self._dir.path().join(&id);
        std::fs::create_dir_all(&state_dir).expect("state dir");
        let mut tasks = JoinSet::new();
        let host = Host::with_rate_ppm(self.rates.controller(region));
        self.hosts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id.clone(), host.clone());
        let running = host.enter(|| {
            loops::spawn(
                loops::Parts {
                    cfg: self.cfg.clone(),
                    me,
                    store,
                    traffic: Arc::new(self.dns.clone()),
                    databases,
                    local_sets,
                    aggregator: aggregator.clone(),
                    clock: self.clocks[region].clone(),
                    state_dir,
                    advertised: format!("{id}.sim:7400"),
                },
                loops::PeerInputs {
                    reachable: peers_rx,
                    with_etcd: with_etcd_rx,
                },
                &mut tasks,
                shutdown,
            )
        });
        Node {
            region,
            link,
            stop,
            tasks,
            running: Some(running),
            peers,
            with_etcd,
            aggregator,
            host,
        }
    }

    /// Whether regions `a` and `b` reach each other.
    pub fn linked(&self, a: &str, b: &str) -> bool {
        a == b
            || !self
                .cut
                .keys()
                .any(|(x, y)| (*x == a && *y == b) || (*x == b && *y == a))
    }

    /// Cuts region `a` from region `b` (or heals the cut): their
    /// controllers, probes, applications and members lose each other.
    pub fn set_cut(&mut self, a: &'static str, b: &'static str, cut: bool) {
        let pair = if a < b { (a, b) } else { (b, a) };
        if !hold(&mut self.cut, pair, cut) {
            return;
        }
        let side = |r: &str| [controller(r), app(r), member(r)];
        for x in side(a) {
            for y in side(b) {
                self.net.partition(&x, &y, cut);
            }
        }
        self.publish_peers();
    }

    /// Takes a region's service endpoint down (or brings it back, once no
    /// other fault holds it down).
    pub fn set_service_down(&mut self, region: &'static str, down: bool) {
        hold(&mut self.service_down, region, down);
    }

    /// Cuts a region's controller from etcd (or heals it).
    pub fn set_etcd_cut(&mut self, region: &'static str, cut: bool) {
        if !hold(&mut self.etcd_cut, region, cut) {
            return;
        }
        if let Some(n) = self.nodes.iter().find(|n| n.region == region)
            && !self.controller_down.contains_key(region)
        {
            n.link.set_reachable(!cut);
        }
        self.publish_peers();
    }

    /// Crashes a region's controller (or starts it again once no other
    /// fault holds it down). A crash aborts its tasks where they are:
    /// nothing resigns, its etcd leases run out by their TTL, a statement
    /// half-sent is dropped. The restart is a new process on the same
    /// state directory (its fence log survives) and the same network.
    pub fn set_controller_down(&mut self, region: &'static str, down: bool) {
        if !hold(&mut self.controller_down, region, down) {
            return;
        }
        let Some(i) = self.nodes.iter().position(|n| n.region == region) else {
            return;
        };
        if down {
            let n = &mut self.nodes[i];
            n.link.set_reachable(false);
            if let Some(r) = n.running.take() {
                r.leader.abort();
                r.election.abort();
            }
            n.tasks.abort_all();
        } else {
            let node = self.node(region);
            node.link.set_reachable(!self.etcd_cut.contains_key(region));
            // The old process's tasks are gone; dropping it drops them.
            self.nodes[i] = node;
        }
        self.publish_peers();
    }

    /// Pauses a region's controller (`SIGSTOP`) or lets it go on once no
    /// other fault holds it. A process started after the pause began (a
    /// crashed one restarted) is not paused.
    pub fn set_paused(&mut self, region: &'static str, paused: bool) {
        if !hold(&mut self.paused, region, paused) {
            return;
        }
        if let Some(n) = self.nodes.iter().find(|n| n.region == region) {
            n.host.set_frozen(paused);
        }
        self.publish_peers();
    }

    /// Makes a region's member answer every statement `latency` late (or
    /// heals one such fault: the slowest still holding wins).
    pub fn set_slow_sql(&mut self, region: &'static str, latency: Duration, on: bool) {
        let now = held_values(&mut self.slow_sql, region, latency, on);
        let slowest = now.into_iter().max().unwrap_or_default();
        self.net.set_latency(&member(region), slowest);
    }

    /// Loses each of a region's probe reports with `percent` in a hundred
    /// chance (or heals one such fault).
    pub fn set_probe_loss(&mut self, region: &'static str, percent: u32, on: bool) {
        held_values(&mut self.probe_loss, region, percent, on);
    }

    /// Delays a region's probe reports by `delay` (or heals one such
    /// fault).
    pub fn set_probe_delay(&mut self, region: &'static str, delay: Duration, on: bool) {
        held_values(&mut self.probe_delay, region, delay, on);
    }

    /// Applies an operator's switch (`switchyard drain`, `pause`,
    /// `failback`, ...) as the operator API does, at true time. A drain or
    /// a pause held by overlapping faults is undone when the last heals.
    pub async fn operator_switch(&mut self, which: Switch, on: bool) {
        let key = match &which {
            Switch::Drain(r) | Switch::Undrain(r) => Some(format!("drain {r}")),
            Switch::Pause | Switch::Resume => Some("pause".to_string()),
            Switch::Failback(_) => None,
        };
        if let Some(key) = key
            && !hold(&mut self.switches, key, on)
        {
            return;
        }
        let store = Store::on(Arc::new(self.kv.connect()), &self.cfg.cluster);
        let actor = Actor {
            by: "sim".into(),
            reason: "an operator at a random moment".into(),
            origin: None,
        };
        let done = ops::apply_switch(&self.cfg, &store, &which, &actor, self.clock.now()).await;
        self.notes.push(match done {
            Ok((_, what)) => format!("operator: {what}"),
            Err(e) => format!("operator: {which:?} failed: {e}"),
        });
    }

    /// Lets a region's host clock drift at `ppm` (or heals one such
    /// fault: the fastest drift still holding wins; with none left the
    /// clock is stepped back to true time).
    pub fn set_clock_drift(&mut self, region: &'static str, ppm: i64, on: bool) {
        let now = held_values(&mut self.drift, region, ppm, on);
        let fastest = now.into_iter().max_by_key(|p| p.abs());
        self.clocks[region].set_drift(fastest);
    }

    /// Fails every call to the DNS provider (or heals one such fault).
    pub fn set_dns_outage(&mut self, on: bool) {
        if hold(&mut self.dns_down, (), on) {
            self.dns.set_available(!on);
        }
    }

    /// Sets `region`'s weight of the record by hand at the provider, past
    /// the controllers (a console edit). Lost if the provider is down.
    pub fn edit_weight(&self, region: &str, weight: u32) {
        let mut weights = self.dns.snapshot().remove(RECORD).unwrap_or_default();
        weights.insert(region.to_string(), weight);
        let change = RecordChange {
            record: RECORD.into(),
            weights,
        };
        let dns = self.dns.clone();
        tokio::spawn(async move {
            let _ = dns.apply(&[change]).await;
        });
    }

    /// Hands the leader an operator's switchover to `region`'s member, as
    /// `switchyard switchover` does: naming the primary recorded now, to
    /// be started within a minute.
    pub async fn request_switchover(&self, region: &str) -> String {
        use switchyard_controller::executor::ActionSpec;
        self.request(
            ActionSpec::Switchover {
                database: "orders".into(),
                to_member: format!("m-{region}"),
                from_member: String::new(),
            },
            "a planned move",
        )
        .await
    }
    /// Hands the leader an operator's failover, forced or not, to
    /// `region`'s member or to the member candidate selection picks, as
    /// `switchyard failover [--force] [--to]` does.
    pub async fn request_failover(&self, region: Option<&str>, force: bool) -> String {
        use switchyard_controller::executor::ActionSpec;
        self.request(
            ActionSpec::Failover {
                database: "orders".into(),
                from_member: String::new(),
                to_member: region.map(|r| format!("m-{r}")),
                force,
                avoid_regions: Default::default(),
            },
            if force {
                "a forced failover by hand"
            } else {
                "a failover by hand"
            },
        )
        .await
    }

    /// Writes an operator's request for `action`, for `reason`, as the
    /// operator API does: naming the primary recorded now, to be started
    /// within a minute. Returns its id.
    async fn request(
        &self,
        action: switchyard_controller::executor::ActionSpec,
        reason: &str,
    ) -> String {
        use switchyard_controller::executor::journal::OperatorRequest;
        use switchyard_controller::store::kv::Kv;
        let now = self.clock.now();
        let expected = self.recorded_primary().await;
        let request = OperatorRequest {
            action,
            requested_by: "sim".into(),
            requested_at: now,
            reason: Some(reason.into()),
            origin: None,
            expected_primary: expected,
            expires_at: Some(now + chrono::TimeDelta::seconds(60)),
        };
        let id = format!("{:013}-sim", now.timestamp_millis());
        let key = switchyard_controller::store::Keys::new(&self.cfg.cluster).request(&id);
        let json = serde_json::to_vec(&request).expect("a request encodes");
        let _ = self.kv.connect().put(&key, json, None).await;
        id
    }

    /// Withdraws request `id` as `switchyard cancel` does, through the
    /// operator API's own `cancel_request`; a withdrawal it confirms is
    /// remembered, for [`Self::withdrawn_carried_out`].
    pub async fn withdraw(&mut self, id: &str) {
        let store = Store::on(Arc::new(self.kv.connect()), &self.cfg.cluster);
        let actor = Actor {
            by: "sim".into(),
            reason: "the operator changed their mind".into(),
            origin: None,
        };
        let note = match ops::cancel_request(&store, id, &actor, self.clock.now()).await {
            Ok((true, what)) => {
                self.withdrawn.push(id.to_string());
                format!("operator: {what}")
            }
            Ok((false, what)) => format!("operator: {what}"),
            Err(e) => format!("operator: cancelling request {id} failed: {e}"),
        };
        self.notes.push(note);
    }

    /// An intent that carries out a request whose withdrawal was
    /// confirmed, if any: a confirmed cancel means nothing was or will be
    /// done for it.
    pub async fn withdrawn_carried_out(&self) -> Option<String> {
        use switchyard_controller::executor::JournalEntry;
        use switchyard_controller::store::kv::{Kv, RangeQuery};
        if self.withdrawn.is_empty() {
            return None;
        }
        let r = self.kv.range(&RangeQuery::prefix("")).await.ok()?;
        r.kvs
            .iter()
            .filter(|kv| kv.key.contains("/journal/"))
            .filter_map(|kv| serde_json::from_slice::<JournalEntry>(&kv.value).ok())
            .find_map(|e| {
                let id = e.request.as_ref().filter(|r| self.withdrawn.contains(*r))?;
                Some(format!(
                    "request {id} was cancelled, yet intent {} ({} of {}) carries it out",
                    e.id,
                    e.action.kind(),
                    e.action.subject()
                ))
            })
    }

    /// Makes a region's member apply what it receives `delay` late (or
    /// heals the lag).
    pub fn set_lag(&self, region: &str, delay: Duration, on: bool) {
        self.net
            .set_apply_delay(&member(region), if on { delay } else { Duration::ZERO });
    }

    /// The writable members the checks pass over: an old primary a
    /// forced failover replaced, from the moment its replacement is made
    /// writable for as long as it stays writable without a break (seen
    /// fenced, down or the recorded primary again, its excuse is spent).
    /// Forcing skips the gate's evidence on the operator's word, so an
    /// old primary the leader could not fence, writable beside its
    /// replacement, is the operator's choice (the runbook has them fence
    /// it by hand), not the controller's breach; made writable again
    /// later, it is the controller's again. Called after every event, so
    /// a break between two calls is a change the run sees.
    pub async fn excused(&mut self) -> BTreeSet<String> {
        let forced = self
            .forced
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if forced.is_empty() {
            return BTreeSet::new();
        }
        let recorded = self
            .recorded_primary()
            .await
            .map(|m| member(m.trim_start_matches("m-")));
        let mut excused = BTreeSet::new();
        for (m, times) in forced {
            if self
                .excuses_spent
                .get(&m)
                .is_some_and(|spent| *spent >= times)
            {
                continue;
            }
            if !self.net.writable(&m) || Some(&m) == recorded.as_ref() {
                self.excuses_spent.insert(m, times);
            } else {
                excused.insert(m);
            }
        }
        excused
    }

    /// Writes each switchover promoted that lacks a transaction of the
    /// primary it replaced, since the last call: `(promoted, replaced,
    /// missing)`.
    pub fn switchover_losses(&self) -> Vec<(String, String, Vec<String>)> {
        let promoted = std::mem::take(
            &mut *self
                .promotions
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        promoted
            .into_iter()
            .filter(|(to, from)| to != from)
            .map(|(to, from)| {
                let missing = self.net.missing(&from, &to);
                (to, from, missing)
            })
            .filter(|(.., missing)| !missing.is_empty())
            .collect()
    }

    /// Arms a pause of the next sender of a leader's statement, for
    /// `lasts` (or disarms it: `None`).
    pub fn arm_mid_step(&self, lasts: Option<Duration>) {
        self.mid_step
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .armed = lasts;
    }

    /// Arms a pause of the next sender of a leader's statement right after
    /// it sent it, for `lasts`, its statement landing `late` (or disarms
    /// it: `None`).
    pub fn arm_in_flight(&self, armed: Option<(Duration, Duration)>) {
        self.mid_step
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .in_flight = armed;
    }

    /// The pauses started in the middle of a step since the last call.
    pub fn take_mid_step_pauses(&self) -> Vec<MidStepPause> {
        std::mem::take(
            &mut self
                .mid_step
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .started,
        )
    }

    /// Steps a controller took on a database while not leading, so far.
    pub fn deposed_steps(&self) -> Vec<String> {
        self.deposed_steps
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// What each controller's pings would say now: the peers it reaches,
    /// and which of those reach etcd.
    /// Tells each controller which peers answer its pings and which of
    /// those reach etcd, as it would see them now (late, for one whose
    /// peers' answers are delayed).
    pub fn publish_peers(&mut self) {
        let now = tokio::time::Instant::now();
        let views = self.peer_views();
        if self.peer_history.last().is_none_or(|(_, v)| *v != views) {
            self.peer_history.push((now, views.clone()));
        }
        // What a lagging controller may still be shown: the last view
        // before the longest lag, and everything since.
        let keep_from = self
            .peer_history
            .iter()
            .rposition(|(t, _)| now.saturating_duration_since(*t) >= PEER_LAG_MAX)
            .unwrap_or(0);
        self.peer_history.drain(..keep_from);
        for n in &self.nodes {
            let lag = self.peer_lag(n.region);
            let (reachable, with_etcd) = self
                .peer_history
                .iter()
                .rev()
                .find(|(t, _)| now.saturating_duration_since(*t) >= lag)
                .or(self.peer_history.first())
                .and_then(|(_, v)| v.get(n.region).cloned())
                .unwrap_or_default();
            n.peers
                .send_if_modified(|v| std::mem::replace(v, reachable.clone()) != reachable);
            n.with_etcd
                .send_if_modified(|v| std::mem::replace(v, with_etcd.clone()) != with_etcd);
        }
    }

    /// Each controller's view of its peers as it stands now: a peer
    /// answers when their regions are linked, it runs (not crashed, not
    /// paused) and the last two pings to it were not both lost.
    fn peer_views(&self) -> PeerViews {
        self.nodes
            .iter()
            .map(|n| {
                let reachable: BTreeSet<String> = self
                    .nodes
                    .iter()
                    .filter(|p| p.region != n.region && self.linked(n.region, p.region))
                    .filter(|p| !self.controller_down.contains_key(p.region))
                    .filter(|p| !p.host.is_frozen())
                    .filter(|p| {
                        self.ping_misses
                            .get(&(n.region, p.region))
                            .is_none_or(|m| *m < switchyard_controller::api::peer::MISSES_TO_DROP)
                    })
                    .map(|p| controller(p.region))
                    .collect();
                let with_etcd = self
                    .nodes
                    .iter()
                    .filter(|p| reachable.contains(&controller(p.region)))
                    .filter(|p| !self.etcd_cut.contains_key(p.region))
                    .map(|p| controller(p.region))
                    .collect();
                (n.region, (reachable, with_etcd))
            })
            .collect()
    }

    /// How late `region`'s controller sees its peers.
    fn peer_lag(&self, region: &str) -> Duration {
        self.peer_lag
            .get(region)
            .and_then(|l| l.iter().max().copied())
            .unwrap_or_default()
    }

    /// Makes `region`'s controller see its peers `lag` late (or heals one
    /// such fault): their pings' answers are delayed, within the ping
    /// timeout, and a peer that went silent is dropped only after its
    /// forgiven miss.
    pub fn set_peer_lag(&mut self, region: &'static str, lag: Duration, on: bool) {
        held_values(&mut self.peer_lag, region, lag, on);
        self.publish_peers();
    }

    /// Loses each of `region`'s controller's pings with this chance in a
    /// hundred (or heals one such fault).
    pub fn set_peer_loss(&mut self, region: &'static str, percent: u32, on: bool) {
        let now = held_values(&mut self.peer_loss, region, percent, on);
        if now.is_empty() {
            self.ping_misses.retain(|(from, _), _| *from != region);
        }
        self.publish_peers();
    }

    /// Whether pings are being lost anywhere (the run then pings every
    /// `runtime::peers::PING_INTERVAL`).
    pub fn pings_lost(&self) -> bool {
        self.peer_loss.values().any(|v| !v.is_empty())
    }

    /// The next moment a lagging controller's view changes, if any.
    pub fn peers_due(&self) -> Option<tokio::time::Instant> {
        let now = tokio::time::Instant::now();
        self.nodes
            .iter()
            .filter_map(|n| {
                let lag = self.peer_lag(n.region);
                self.peer_history
                    .iter()
                    .map(|(t, _)| *t + lag)
                    .filter(|due| *due > now)
                    .min()
            })
            .min()
    }

    /// One round of pings where they are lost: each lossy controller's
    /// ping to each peer is lost with its fault's chance, and a peer whose
    /// last two pings were lost drops out of its view until one is
    /// answered (`api::peer`'s ping loop forgives one miss).
    pub fn ping_round(&mut self) {
        use rand::Rng;
        for from in REGIONS {
            let Some(percent) = self
                .peer_loss
                .get(from)
                .and_then(|v| v.iter().max().copied())
            else {
                continue;
            };
            for to in REGIONS.iter().filter(|r| **r != from) {
                let lost = self.ping_rng.random_range(0..100) < percent;
                let misses = self.ping_misses.entry((from, to)).or_default();
                *misses = if lost { *misses + 1 } else { 0 };
            }
        }
        self.publish_peers();
    }

    /// One round of probe reports: each region's probe checks every
    /// service endpoint and member it can reach, and its report reaches
    /// the controllers it can reach.
    pub fn probe_round(&mut self) {
        use rand::Rng;
        let now = tokio::time::Instant::now();
        if self.app_writes {
            for r in REGIONS {
                for m in REGIONS.map(member) {
                    if self.net.writable_from(&app(r), &m) {
                        let _ = self.net.as_client(&app(r)).write(&m);
                    }
                }
            }
        }
        let due: Vec<_> = self
            .in_flight
            .extract_if(.., |(due, ..)| *due <= now)
            .collect();
        for (_, i, seen) in due {
            self.deliver(i, &seen);
        }
        for vantage in REGIONS {
            let at = self.clocks[vantage].now();
            let mut seen = Vec::new();
            for r in REGIONS {
                let reach = self.linked(vantage, r);
                seen.push(Observation {
                    target: TargetId::service("api", r),
                    vantage: vantage.to_string(),
                    ok: reach && !self.service_down.contains_key(r),
                    observed_at: at,
                });
                seen.push(Observation {
                    target: TargetId::db_member("orders", &format!("m-{r}")),
                    vantage: vantage.to_string(),
                    ok: reach && self.net.answers(&member(r)),
                    observed_at: at,
                });
            }
            let loss = self
                .probe_loss
                .get(vantage)
                .and_then(|v| v.iter().copied().max());
            let delay = self
                .probe_delay
                .get(vantage)
                .and_then(|v| v.iter().copied().max());
            for i in 0..self.nodes.len() {
                if !self.linked(vantage, self.nodes[i].region) {
                    continue;
                }
                if loss.is_some_and(|p| self.rng.random_range(0..100) < p) {
                    continue;
                }
                match delay {
                    Some(d) => self.in_flight.push((now + d, i, seen.clone())),
                    None => self.deliver(i, &seen),
                }
            }
        }
    }

    /// Hands reports to controller `i` as its ingest service takes them:
    /// each checked against its host's clock (one stamped too far ahead
    /// is refused), then folded into its view.
    fn deliver(&mut self, i: usize, seen: &[Observation]) {
        let n = &self.nodes[i];
        let now = self.clocks[n.region].now();
        let mut refused = None;
        for o in seen {
            let mut report = ProbeReport {
                vantage_region: o.vantage.clone(),
                target: o.target.as_str().to_string(),
                outcome: if o.ok { Outcome::Up } else { Outcome::Down } as i32,
                observed_at_unix_ms: o.observed_at.timestamp_millis(),
                cluster: self.known.cluster.clone(),
                ..Default::default()
            };
            match check_report(&mut report, &self.known, now) {
                Ok(checked) => {
                    n.aggregator.record(&checked);
                }
                Err(why) => refused = Some(why),
            }
        }
        let Some(vantage) = seen.first().map(|o| o.vantage.clone()) else {
            return;
        };
        let who = controller(n.region);
        let key = (vantage.clone(), i);
        match refused {
            Some(why) if self.refusing.insert(key.clone()) => self
                .notes
                .push(format!("{who} refuses {vantage}'s reports: {why}")),
            None if self.refusing.remove(&key) => self
                .notes
                .push(format!("{who} takes {vantage}'s reports again")),
            _ => {}
        }
    }

    /// The lines the world has for the trace since the last call.
    pub fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }

    /// The members some region's application can write on now.
    pub fn writable_by_clients(&self) -> BTreeSet<String> {
        REGIONS
            .iter()
            .flat_map(|a| {
                REGIONS
                    .iter()
                    .filter(move |m| self.net.writable_from(&app(a), &member(m)))
                    .map(|m| member(m))
            })
            .collect()
    }

    /// The primary of `orders` as etcd records it.
    pub async fn recorded_primary(&self) -> Option<String> {
        use switchyard_controller::store::kv::Kv;
        let kv = self
            .kv
            .get(&format!(
                "/switchyard/{}/state/databases/orders",
                self.cfg.cluster
            ))
            .await
            .ok()??;
        let v: serde_json::Value = serde_json::from_slice(&kv.value).ok()?;
        v.get("primary")?.as_str().map(str::to_string)
    }

    /// The weights the leader wants for `record`, as etcd holds them.
    pub async fn desired_weights(&self, record: &str) -> Option<BTreeMap<String, u32>> {
        use switchyard_controller::store::kv::Kv;
        let key = switchyard_controller::store::Keys::new(&self.cfg.cluster).traffic(record);
        let kv = self.kv.get(&key).await.ok()??;
        serde_json::from_slice(&kv.value).ok()
    }

    /// Every record's weights as the DNS provider holds them.
    pub fn weights(&self) -> BTreeMap<String, BTreeMap<String, u32>> {
        self.dns.snapshot()
    }

    /// Stops every controller (they resign), and waits for them.
    pub async fn stop(mut self) {
        for n in &self.nodes {
            n.host.set_frozen(false);
            n.stop.send_replace(true);
        }
        for n in &mut self.nodes {
            if let Some(r) = n.running.take() {
                let _ = r.leader.await;
                let _ = r.election.await;
            }
            n.tasks.abort_all();
            while n.tasks.join_next().await.is_some() {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A drifting host clock gains at its rate, keeps what it gained when
    /// the rate changes, and is stepped back to true time when the last
    /// drift heals: the clock fault is real, not a label in the trace.
    #[tokio::test(start_paused = true)]
    async fn a_drifting_clock_gains_then_is_stepped_back() {
        let truth = SimClock::new();
        let host = SimClock::new();
        let ahead = |host: &SimClock| (host.now() - truth.now()).num_milliseconds();
        host.set_drift(Some(100_000));
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(ahead(&host), 1_000, "10 % fast for 10 s");
        host.set_drift(Some(-50_000));
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(ahead(&host), 500, "then 5 % slow for 10 s");
        host.set_drift(None);
        assert_eq!(ahead(&host), 0, "stepped back");
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(ahead(&host), 0, "and true from then on");
    }

    /// A controller whose peers' answers are late sees a cut `lag` after
    /// it happened, and one whose pings are all lost drops its peers;
    /// the others see at once: the peer faults reach the views the
    /// isolation loop decides on.
    #[tokio::test(start_paused = true)]
    async fn late_and_lost_pings_reach_the_controllers_views() {
        let mut world = World::start("a", 0).await;
        let sees = |w: &World, from: &str, peer: &str| {
            w.nodes
                .iter()
                .find(|n| n.region == from)
                .expect("a node")
                .peers
                .borrow()
                .contains(&controller(peer))
        };
        assert!(sees(&world, "a", "b") && sees(&world, "b", "a"));
        world.set_peer_lag("a", Duration::from_millis(800), true);
        world.set_cut("a", "b", true);
        assert!(!sees(&world, "b", "a"), "b sees the cut at once");
        assert!(sees(&world, "a", "b"), "a does not yet");
        tokio::time::advance(Duration::from_millis(700)).await;
        world.publish_peers();
        assert!(sees(&world, "a", "b"), "nor 700 ms later");
        tokio::time::advance(Duration::from_millis(150)).await;
        world.publish_peers();
        assert!(!sees(&world, "a", "b"), "but 850 ms later");
        world.set_cut("a", "b", false);
        world.set_peer_lag("a", Duration::from_millis(800), false);
        assert!(sees(&world, "a", "b"));

        world.set_peer_loss("c", 100, true);
        world.ping_round();
        assert!(sees(&world, "c", "a"), "one lost ping is forgiven");
        world.ping_round();
        assert!(
            !sees(&world, "c", "a") && !sees(&world, "c", "b"),
            "two are not"
        );
        assert!(sees(&world, "a", "c"), "a's pings to c still answered");
        world.set_peer_loss("c", 100, false);
        assert!(sees(&world, "c", "a"), "healed");
        world.stop().await;
    }

    /// One step of the world: a probe round, then a quarter second.
    async fn step(world: &mut World) {
        world.probe_round();
        tokio::time::advance(Duration::from_millis(250)).await;
    }

    /// The world with `a`'s member primary, run until the leader has
    /// recorded it (at most 30 s).
    async fn recorded_world() -> World {
        let mut world = World::start("a", 0).await;
        for _ in 0..120 {
            if world.recorded_primary().await.is_some() {
                break;
            }
            step(&mut world).await;
        }
        assert_eq!(world.recorded_primary().await.as_deref(), Some("m-a"));
        world
    }

    /// A database record the leader cannot decode (a newer version's, a
    /// hand edit) neither wedges the next leader's take-over nor is
    /// written over by a primary it discovers at epoch 1: the new leader
    /// leads (a region's outage moves its weight away) and the record's
    /// bytes are still what they were.
    #[tokio::test(start_paused = true)]
    async fn an_undecodable_database_record_neither_stops_a_take_over_nor_is_written_over() {
        use switchyard_controller::store::kv::Kv;
        let mut world = recorded_world().await;
        let keys = switchyard_controller::store::Keys::new(&world.cfg.cluster);
        let key = keys.database("orders");
        let garbage = br#"{"primary":"m-a","epoch":"seven","written_by":"v9"}"#.to_vec();
        world
            .kv
            .put(&key, garbage.clone(), None)
            .await
            .expect("put");
        let prefix = format!("{}/", keys.leader());
        let (first, _) = leader_now(&world.kv, &prefix).expect("a leader");
        let region = REGIONS
            .into_iter()
            .find(|r| controller(r) == first)
            .expect("a region's controller leads");
        world.set_controller_down(region, true);
        let other = REGIONS
            .into_iter()
            .find(|r| *r != region)
            .expect("another region");
        world.set_service_down(other, true);
        let mut moved = false;
        for _ in 0..240 {
            step(&mut world).await;
            moved = world
                .weights()
                .values()
                .any(|w| w.get(other).is_some_and(|v| *v == 0));
            if moved {
                break;
            }
        }
        let (now, _) = leader_now(&world.kv, &prefix).expect("a leader");
        assert_ne!(now, first, "another controller leads");
        assert!(
            moved,
            "the new leader leads: {other}'s weight moved away ({:?})",
            world.weights()
        );
        let held = world.kv.get(&key).await.expect("get").expect("the record");
        assert_eq!(
            String::from_utf8_lossy(&held.value),
            String::from_utf8_lossy(&garbage),
            "the record nobody could read is kept"
        );
        world.stop().await;
    }

    /// A record that stops decoding while a leader leads is read at once
    /// (the leader watches the records) and leaves it with no primary for
    /// that database: even an operator's forced failover is not started
    /// (its commit could never record the new primary over the record),
    /// and once the record is mended the leader holds its primary again
    /// and fails the dead one over.
    #[tokio::test(start_paused = true)]
    async fn a_record_unreadable_mid_term_starts_no_failover_until_it_is_mended() {
        use switchyard_controller::executor::{ActionSpec, JournalEntry};
        use switchyard_controller::store::kv::Kv;
        let mut world = recorded_world().await;
        let keys = switchyard_controller::store::Keys::new(&world.cfg.cluster);
        // Its region's controller vouches for it (the lease the gate will
        // see end once it is dead).
        for _ in 0..120 {
            if world
                .kv
                .get(&keys.vouched("orders"))
                .await
                .expect("get")
                .is_some()
            {
                break;
            }
            step(&mut world).await;
        }
        let key = keys.database("orders");
        let good = world
            .kv
            .get(&key)
            .await
            .expect("get")
            .expect("recorded")
            .value;
        let garbage = br#"{"primary":"m-a","epoch":"seven"}"#.to_vec();
        world
            .kv
            .put(&key, garbage.clone(), None)
            .await
            .expect("put");
        world.net.crash(&member("a"));
        for _ in 0..40 {
            step(&mut world).await;
        }
        let id = world.request_failover(Some("b"), true).await;
        // Refused at once (the request would expire in a minute), and the
        // leader leads all the same: an outage moves weight away.
        let history = |w: &World| {
            w.kv.snapshot()
                .iter()
                .filter(|k| k.key.starts_with(&keys.history_prefix()))
                .map(|k| String::from_utf8_lossy(&k.value).into_owned())
                .collect::<Vec<_>>()
        };
        world.set_service_down("c", true);
        let mut refused = false;
        let mut moved = false;
        for _ in 0..80 {
            step(&mut world).await;
            refused = history(&world)
                .iter()
                .any(|e| e.contains(&id) && e.contains("refused"));
            moved = world
                .weights()
                .values()
                .any(|w| w.get("c").is_some_and(|v| *v == 0));
            if refused && moved {
                break;
            }
        }
        assert!(
            refused,
            "the forced failover is refused: {:?}",
            history(&world)
        );
        assert!(
            moved,
            "the leader still leads: c's weight moved away ({:?})",
            world.weights()
        );
        world.set_service_down("c", false);
        let failovers = |w: &World| {
            w.kv.snapshot()
                .iter()
                .filter(|k| k.key.starts_with(&keys.journal_prefix()))
                .filter_map(|k| serde_json::from_slice::<JournalEntry>(&k.value).ok())
                .filter(|e| matches!(e.action, ActionSpec::Failover { .. }))
                .count()
        };
        for _ in 0..240 {
            step(&mut world).await;
        }
        assert_eq!(
            failovers(&world),
            0,
            "no failover started on an unreadable record, not even a forced one"
        );
        assert!(world.writable_by_clients().is_empty(), "nobody promoted");
        let held = world.kv.get(&key).await.expect("get").expect("the record");
        assert_eq!(held.value, garbage, "the record is kept");
        world.kv.put(&key, good, None).await.expect("mend");
        let mut promoted = false;
        for _ in 0..480 {
            step(&mut world).await;
            promoted = world.recorded_primary().await.is_some_and(|p| p != "m-a");
            if promoted {
                break;
            }
        }
        assert!(promoted, "mended, the dead primary is failed over");
        assert_eq!(failovers(&world), 1);
        world.stop().await;
    }
}
