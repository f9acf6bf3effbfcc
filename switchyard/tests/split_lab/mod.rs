//! A three-region cluster for split-brain tests and the split-brain
//! benchmark: each region's controller and MariaDB member run in its own
//! network namespace, etcd runs in the root namespace (a witness site)
//! on the bridge, and a region is cut off with iptables inside its
//! namespace.
//!
//! Outside every network, the harness samples each member's `read_only`
//! through its unix socket, and a writer "inside" region a (the `app` user,
//! which `read_only` stops, on m0's socket: the partition does not touch
//! it, as it would not touch a client in the same region) inserts rows and
//! records each acknowledgement.
//!
//! Probes are stand-ins ([`ReportFleet`]): vantages b and c report what
//! they would see of region a once it is cut off; vantage a's reports stop.

#![allow(dead_code)]

pub mod monitor;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mysql_async::prelude::*;
use switchyard_controller::store::Store;
use switchyard_tests::mariadb::{ADMIN_PASSWORD, ADMIN_USER, REPL_PASSWORD, REPL_USER};
use switchyard_tests::netns::NetNs;
use switchyard_tests::reports::ReportFleet;
use switchyard_tests::wait::wait_for;
use switchyard_tests::{ControllerProcess, Etcd, MariaDbTopology};
use tokio::time::Instant;

/// Regions, one namespace each, in order.
pub const REGIONS: [&str; 3] = ["a", "b", "c"];
/// The service record.
pub const RECORD: &str = "api.example.test.";
/// Leader lease TTL.
pub const LEASE_TTL_S: u64 = 2;
/// Primary lease TTL (the default: twice the leader's).
pub const PRIMARY_TTL_S: u64 = 4;
/// Report interval of the stand-in probes.
const REPORT_EVERY: Duration = Duration::from_millis(200);

/// What a lab may be started with other than the defaults the split-brain
/// tests use (the `rto` benchmark's settings).
#[derive(Debug, Clone)]
pub struct Settings {
    /// `etcd.primary_lease_ttl`, whole seconds.
    pub primary_ttl_s: u64,
    /// How often the stand-in probes report.
    pub report_every: Duration,
    /// `policy.fall` (and `rise`).
    pub fall: u32,
    /// The database's `max_lag`, whole seconds.
    pub max_lag_s: u64,
    /// Route 53 as the DNS backend instead of the weights file.
    pub route53: Option<Route53At>,
}

/// A Route 53 API (moto, behind a proxy) the lab's controllers use.
#[derive(Debug, Clone)]
pub struct Route53At {
    /// The proxy's port, listening on every address of the host (the
    /// controllers reach it at the bridge's).
    pub port: u16,
    /// The hosted zone.
    pub zone_id: String,
    /// A client of the API itself (moto), for reading what it serves.
    pub client: aws_sdk_route53::Client,
}

/// The environment a controller on Route 53 needs: moto's credentials.
pub const ROUTE53_ENV: [(&str, &str); 3] = [
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
];

impl Default for Settings {
    fn default() -> Self {
        Self {
            primary_ttl_s: PRIMARY_TTL_S,
            report_every: REPORT_EVERY,
            fall: 2,
            max_lag_s: 30,
            route53: None,
        }
    }
}

/// The service target of `region`.
pub fn svc(region: &str) -> String {
    format!("svc:api@{region}")
}

/// The database target of member `i`.
pub fn db_target(i: usize) -> String {
    format!("db:orders/m{i}")
}

/// The running lab. Fields drop in order: probes, controllers, databases,
/// etcd, then the namespaces.
pub struct SplitLab {
    fleet_a: Option<ReportFleet>,
    /// Stand-in probes of regions b and c, reporting to ctl-b and ctl-c.
    pub fleet_bc: ReportFleet,
    /// ctl-a, ctl-b, ctl-c.
    pub controllers: Vec<ControllerProcess>,
    /// m0 (primary, region a), m1 (b), m2 (c).
    pub db: MariaDbTopology,
    /// The witness etcd.
    pub etcd: Etcd,
    /// A client of it.
    pub store: Store,
    /// The namespaces.
    pub net: NetNs,
    /// Config, logs, state dirs.
    pub dir: tempfile::TempDir,
    /// The config file.
    pub config: PathBuf,
    /// The file traffic backend's weights.
    pub weights: PathBuf,
    /// The cluster name.
    pub cluster: String,
    /// What it was started with.
    pub settings: Settings,
}

fn outcomes(vantages: &[&str]) -> BTreeMap<(String, String), bool> {
    let mut o = BTreeMap::new();
    for v in vantages {
        for r in REGIONS {
            o.insert((svc(r), v.to_string()), true);
        }
        for m in 0..3 {
            o.insert((db_target(m), v.to_string()), true);
        }
    }
    o
}

impl SplitLab {
    /// Starts everything and waits until a leader leads, m0 is recorded as
    /// primary and ctl-a holds its primary lease.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(Settings::default()).await
    }

    /// [`Self::start`] with other `settings`.
    pub async fn start_with(settings: Settings) -> anyhow::Result<Self> {
        let net = NetNs::create(3).map_err(|e| anyhow::anyhow!("{e}"))?;
        let etcd = Etcd::single_on(net.host_addr()).await?;
        let db = MariaDbTopology::start_in(&net, &[0, 1, 2]).await?;
        db.exec(0, "CREATE DATABASE app").await?;
        db.exec(
            0,
            "CREATE TABLE app.w (id BIGINT PRIMARY KEY, sent_ms BIGINT NOT NULL)",
        )
        .await?;
        let dir = tempfile::Builder::new()
            .prefix("switchyard-fixture-split-")
            .tempdir()?;
        let cluster = format!("sb{}", std::process::id());
        let (config, weights) = write_config(
            dir.path(),
            &etcd.endpoints(),
            &cluster,
            &net,
            &db,
            &settings,
        );
        let mut controllers = Vec::new();
        for (i, r) in REGIONS.iter().enumerate() {
            let id = format!("ctl-{r}");
            let state = dir.path().join(format!("{id}-state"));
            let env: &[(&str, &str)] = if settings.route53.is_some() {
                &ROUTE53_ENV
            } else {
                &[]
            };
            controllers.push(
                ControllerProcess::start_in_with_env(
                    Path::new(env!("CARGO_BIN_EXE_switchyard")),
                    &config,
                    &id,
                    dir.path(),
                    &net,
                    i,
                    &["--state-dir".to_string(), state.display().to_string()],
                    env,
                )
                .await?,
            );
        }
        let fleet_a = ReportFleet::start(
            vec![controllers[0].grpc_url()],
            outcomes(&REGIONS),
            settings.report_every,
        );
        let fleet_bc = ReportFleet::start(
            vec![controllers[1].grpc_url(), controllers[2].grpc_url()],
            outcomes(&REGIONS),
            settings.report_every,
        );
        let store = Store::connect(&etcd.endpoints(), &cluster).await?;
        let lab = SplitLab {
            fleet_a: Some(fleet_a),
            fleet_bc,
            controllers,
            db,
            etcd,
            store,
            net,
            dir,
            config,
            weights,
            cluster,
            settings,
        };
        lab.wait_lease_held("ctl-a", "m0").await?;
        for c in &lab.controllers {
            c.wait_metric_at_least("switchyard_peers_reachable", 2.0, Duration::from_secs(20))
                .await?;
        }
        Ok(lab)
    }

    /// Waits until `holder` holds the primary lease of `orders` for `primary`.
    pub async fn wait_lease_held(&self, holder: &str, primary: &str) -> anyhow::Result<()> {
        let key = self.store.keys().primary_lease("orders");
        wait_for(
            &format!("{holder} to hold the primary lease for {primary}"),
            Duration::from_secs(40),
            || async {
                let v: Option<serde_json::Value> =
                    self.store.get_json(&key).await.map_err(|e| e.to_string())?;
                match v {
                    Some(v) if v["holder"] == holder && v["primary"] == primary => Ok(()),
                    other => Err(format!("lease is {other:?}")),
                }
            },
        )
        .await
    }

    /// The recorded primary of `orders`.
    pub async fn primary(&self) -> anyhow::Result<Option<String>> {
        let v: Option<serde_json::Value> = self
            .store
            .get_json(&self.store.keys().database("orders"))
            .await?;
        Ok(v.and_then(|v| v["primary"].as_str().map(str::to_string)))
    }

    /// Cuts region a off: iptables in its namespace, its probe's reports
    /// stop reaching b and c, and b and c see a's service and m0 down.
    pub fn isolate_a(&mut self) -> anyhow::Result<()> {
        self.net.partition(0).map_err(|e| anyhow::anyhow!("{e}"))?;
        self.fleet_a = None;
        self.fleet_bc.forget_vantage("a");
        self.fleet_bc.set_all(&svc("a"), &["b", "c"], false);
        self.fleet_bc.set_all(&db_target(0), &["b", "c"], false);
        Ok(())
    }

    /// Cuts region `i` off from etcd alone (its links to the other regions
    /// stay), with a rule in its namespace dropping what it sends to etcd.
    pub fn cut_etcd_from(&self, i: usize) -> anyhow::Result<()> {
        let (host, port) = self.etcd_host_port()?;
        self.rule(i, "-I", &["-d", &host, "-p", "tcp", "--dport", &port])
    }

    /// Undoes [`cut_etcd_from`](Self::cut_etcd_from).
    pub fn restore_etcd_to(&self, i: usize) -> anyhow::Result<()> {
        let (host, port) = self.etcd_host_port()?;
        self.rule(i, "-D", &["-d", &host, "-p", "tcp", "--dport", &port])
    }

    /// Cuts the link between regions `i` and `j` (both ways: a rule in
    /// `i`'s namespace drops what it sends to `j`, so `j`'s packets get no
    /// answer either). Everything else stays: etcd, the other regions, the
    /// harness's unix sockets and metrics scrapes from the host.
    pub fn cut_link(&self, i: usize, j: usize) -> anyhow::Result<()> {
        let to = self.net.addr(j).to_string();
        self.rule(i, "-I", &["-d", &to])
    }

    /// Undoes [`cut_link`](Self::cut_link).
    pub fn restore_link(&self, i: usize, j: usize) -> anyhow::Result<()> {
        let to = self.net.addr(j).to_string();
        self.rule(i, "-D", &["-d", &to])
    }

    fn etcd_host_port(&self) -> anyhow::Result<(String, String)> {
        let endpoint = self
            .etcd
            .endpoint(0)
            .trim_start_matches("http://")
            .to_string();
        let (host, port) = endpoint
            .rsplit_once(':')
            .ok_or_else(|| anyhow::anyhow!("endpoint {endpoint}"))?;
        Ok((host.to_string(), port.to_string()))
    }

    /// Inserts (`-I`, at the top) or deletes (`-D`) an OUTPUT rule dropping
    /// what matches `matches`, in region `i`'s namespace.
    fn rule(&self, i: usize, op: &str, matches: &[&str]) -> anyhow::Result<()> {
        let mut args = vec![
            "netns",
            "exec",
            self.net.name(i),
            "iptables",
            "-w",
            op,
            "OUTPUT",
        ];
        if op == "-I" {
            args.push("1");
        }
        args.extend(matches);
        args.extend(["-j", "DROP"]);
        let out = std::process::Command::new("ip").args(&args).output()?;
        anyhow::ensure!(
            out.status.success(),
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }

    /// Waits until controller `i` counts exactly `n` peers reachable.
    pub async fn wait_peers(&self, i: usize, n: usize) -> anyhow::Result<()> {
        let c = &self.controllers[i];
        wait_for(
            &format!("{} to reach {n} peers", c.id()),
            Duration::from_secs(20),
            || async {
                match c.metric("switchyard_peers_reachable").await {
                    Ok(Some(v)) if v as usize == n => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            },
        )
        .await
    }

    /// Sets what each of `vantages` reports of `target` to every
    /// controller still hearing its probes.
    pub fn set_seen(&self, target: &str, vantages: &[&str], up: bool) {
        if let Some(f) = &self.fleet_a {
            f.set_all(target, vantages, up);
        }
        self.fleet_bc.set_all(target, vantages, up);
    }

    /// The index of the controller that says it leads, if one does.
    pub async fn leader(&self) -> Option<usize> {
        for (i, c) in self.controllers.iter().enumerate() {
            if c.metric("switchyard_leader").await.ok().flatten() == Some(1.0) {
                return Some(i);
            }
        }
        None
    }

    /// Rejoins region a: the links come back and every vantage sees it up.
    pub fn heal_a(&mut self) -> anyhow::Result<()> {
        self.net.heal(0).map_err(|e| anyhow::anyhow!("{e}"))?;
        for v in REGIONS {
            self.fleet_bc.set(&svc("a"), v, true);
            for m in 0..3 {
                self.fleet_bc.set(&db_target(m), v, true);
            }
            for r in REGIONS {
                self.fleet_bc.set(&svc(r), v, true);
            }
        }
        self.fleet_a = Some(ReportFleet::start(
            vec![self.controllers[0].grpc_url()],
            outcomes(&REGIONS),
            self.settings.report_every,
        ));
        Ok(())
    }

    /// Every history event (JSON), oldest first.
    pub async fn history(&self) -> anyhow::Result<Vec<serde_json::Value>> {
        Ok(self
            .store
            .list_json::<serde_json::Value>(&self.store.keys().history_prefix())
            .await?
            .into_iter()
            .map(|(_, v)| v)
            .collect())
    }

    /// Every journal entry (JSON).
    pub async fn journal(&self) -> anyhow::Result<Vec<serde_json::Value>> {
        Ok(self
            .store
            .list_json::<serde_json::Value>(&self.store.keys().journal_prefix())
            .await?
            .into_iter()
            .map(|(_, v)| v)
            .collect())
    }

    /// The record's weights in the file backend now.
    pub fn weights(&self) -> BTreeMap<String, u32> {
        let all: BTreeMap<String, BTreeMap<String, u32>> =
            serde_json::from_slice(&std::fs::read(&self.weights).unwrap_or_default())
                .unwrap_or_default();
        all.get(RECORD).cloned().unwrap_or_default()
    }

    /// Every controller's log, for a failed run.
    pub fn dump_logs(&self) {
        for c in &self.controllers {
            eprintln!("--- {} log ---\n{}", c.id(), c.log());
        }
    }

    /// A guard that prints every controller's log if the test panics
    /// while it lives (a failed assertion).
    pub fn logs_on_panic(&self) -> LogsOnPanic {
        LogsOnPanic(
            REGIONS
                .iter()
                .map(|r| self.dir.path().join(format!("ctl-{r}.log")))
                .collect(),
        )
    }
}

/// See [`SplitLab::logs_on_panic`].
pub struct LogsOnPanic(Vec<PathBuf>);

impl Drop for LogsOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for p in &self.0 {
                eprintln!(
                    "--- {} ---\n{}",
                    p.display(),
                    std::fs::read_to_string(p).unwrap_or_default()
                );
            }
        }
    }
}

fn write_config(
    dir: &Path,
    endpoints: &[String],
    cluster: &str,
    net: &NetNs,
    db: &MariaDbTopology,
    settings: &Settings,
) -> (PathBuf, PathBuf) {
    let weights = dir.join("weights.json");
    std::fs::write(dir.join("admin.secret"), ADMIN_PASSWORD).expect("secret");
    std::fs::write(dir.join("repl.secret"), REPL_PASSWORD).expect("secret");
    let mut t = format!(
        r#"
cluster = "{cluster}"

[etcd]
endpoints = [{endpoints}]
lease_ttl = "{LEASE_TTL_S}s"
primary_lease_ttl = "{primary_ttl_s}s"

[dns]
{dns}

[policy]
fall = {fall}
rise = {fall}
quorum = 2
stale_after = "3s"
max_evacuated = 1
failback = "manual"
db_failover = "auto"
"#,
        endpoints = endpoints
            .iter()
            .map(|e| format!("\"{e}\""))
            .collect::<Vec<_>>()
            .join(", "),
        dns = match &settings.route53 {
            Some(r) => format!(
                "backend = \"route53\"\nhosted_zone_id = \"{}\"\nendpoint = \"http://{}:{}\"\n\
                 max_requests_per_second = 50",
                r.zone_id,
                net.host_addr(),
                r.port
            ),
            None => format!("backend = \"file\"\npath = \"{}\"", weights.display()),
        },
        primary_ttl_s = settings.primary_ttl_s,
        fall = settings.fall,
    );
    for (i, r) in REGIONS.iter().enumerate() {
        t.push_str(&format!(
            "\n[[regions]]\nname = \"{r}\"\nweight = 100\npriority = {}\n",
            i + 1
        ));
        t.push_str(&format!(
            "\n[[controllers]]\nid = \"ctl-{r}\"\nregion = \"{r}\"\nlisten = \"{}:7000\"\n",
            net.addr(i)
        ));
    }
    t.push_str(&format!(
        "\n[[services]]\nname = \"api\"\nrecord = \"{RECORD}\"\nttl = 30\n"
    ));
    for (i, r) in REGIONS.iter().enumerate() {
        t.push_str(&format!(
            "\n[[services.endpoints]]\nregion = \"{r}\"\nvalue = \"192.0.2.{}\"\ntarget = \"{}:80\"\n",
            i + 1,
            net.addr(i)
        ));
    }
    t.push_str(
        "\n[[services.checks]]\nkind = \"http\"\ninterval = \"1s\"\ntimeout = \"500ms\"\npath = \"/\"\n",
    );
    t.push_str(&format!(
        "\n[credentials.admin]\nuser = \"{ADMIN_USER}\"\npassword = {{ file = \"{}\" }}\n\
         \n[credentials.repl]\nuser = \"{REPL_USER}\"\npassword = {{ file = \"{}\" }}\n\
         \n[[databases]]\nname = \"orders\"\nkind = \"mariadb\"\nmax_lag = \"{max_lag}s\"\n\
         credentials = \"admin\"\nreplication_credentials = \"repl\"\n\
         \n[databases.check]\ninterval = \"1s\"\ntimeout = \"500ms\"\n",
        dir.join("admin.secret").display(),
        dir.join("repl.secret").display(),
        max_lag = settings.max_lag_s,
    ));
    for (i, r) in REGIONS.iter().enumerate() {
        t.push_str(&format!(
            "\n[[databases.members]]\nid = \"m{i}\"\nregion = \"{r}\"\naddress = \"{}\"\n",
            db.address(i)
        ));
    }
    t.push_str(&switchyard_tests::operators::admin_operator(dir));
    let path = dir.join("switchyard.toml");
    std::fs::write(&path, t).expect("write config");
    let seed: BTreeMap<String, BTreeMap<String, u32>> = [(
        RECORD.to_string(),
        REGIONS.iter().map(|r| (r.to_string(), 100)).collect(),
    )]
    .into();
    std::fs::write(&weights, serde_json::to_vec(&seed).expect("json")).expect("seed weights");
    (path, weights)
}

/// One `read_only` sample of every member, `None` where it could not be read.
#[derive(Debug, Clone)]
pub struct Sample {
    /// When.
    pub at: Instant,
    /// m0, m1, m2.
    pub read_only: [Option<bool>; 3],
}

/// Asserts every member was read in at least 90 % of `samples` (a sample
/// may miss one on a busy machine; a check over unread samples would be
/// empty).
pub fn assert_mostly_read(samples: &[&Sample]) {
    for i in 0..3 {
        let read = samples.iter().filter(|s| s.read_only[i].is_some()).count();
        assert!(
            read * 10 >= samples.len() * 9 && !samples.is_empty(),
            "m{i} read in too few samples: {read} of {}",
            samples.len()
        );
    }
}

/// Samples every member's `read_only` every `every`, from outside every
/// network (unix sockets), until dropped.
pub struct Sampler {
    samples: Arc<Mutex<Vec<Sample>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    /// Starts sampling `db`'s members.
    pub fn start(db: &MariaDbTopology, every: Duration) -> Self {
        let opts: Vec<mysql_async::Opts> = (0..3).map(|i| db.opts_socket(i)).collect();
        let samples = Arc::new(Mutex::new(Vec::new()));
        let out = samples.clone();
        let task = tokio::spawn(async move {
            let mut conns: Vec<Option<mysql_async::Conn>> = vec![None, None, None];
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tick.tick().await;
                let at = Instant::now();
                let mut ro = [None; 3];
                for i in 0..3 {
                    if conns[i].is_none() {
                        conns[i] = tokio::time::timeout(
                            Duration::from_millis(500),
                            mysql_async::Conn::new(opts[i].clone()),
                        )
                        .await
                        .ok()
                        .and_then(Result::ok);
                    }
                    if let Some(c) = conns[i].as_mut() {
                        match c.query_first::<i64, _>("SELECT @@global.read_only").await {
                            Ok(v) => ro[i] = v.map(|v| v != 0),
                            // A fence kills sessions: reconnect next round.
                            Err(_) => conns[i] = None,
                        }
                    }
                }
                out.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(Sample { at, read_only: ro });
            }
        });
        Sampler { samples, task }
    }

    /// Every sample so far.
    pub fn samples(&self) -> Vec<Sample> {
        self.samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One insert of the writer.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// Row id.
    pub id: i64,
    /// When it was sent.
    pub sent: Instant,
    /// When the answer came.
    pub answered: Instant,
    /// Acknowledged (committed) or refused.
    pub acked: bool,
}

/// A client in region a inserting into m0 as the `app` user as fast as it
/// can (reconnecting after a killed session), recording every answer.
pub struct Writer {
    attempts: Arc<Mutex<Vec<Attempt>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Writer {
    /// Starts writing to member `i`.
    pub fn start(db: &MariaDbTopology, i: usize) -> Self {
        let opts = db.app_opts_socket(i);
        let attempts = Arc::new(Mutex::new(Vec::new()));
        let out = attempts.clone();
        let task = tokio::spawn(async move {
            let mut conn: Option<mysql_async::Conn> = None;
            let mut id = 0i64;
            loop {
                if conn.is_none() {
                    conn = mysql_async::Conn::new(opts.clone()).await.ok();
                    if conn.is_none() {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                }
                let Some(c) = conn.as_mut() else { continue };
                id += 1;
                let sent = Instant::now();
                let r = c
                    .exec_drop(
                        "INSERT INTO app.w (id, sent_ms) VALUES (?, ?)",
                        (id, chrono::Utc::now().timestamp_millis()),
                    )
                    .await;
                let answered = Instant::now();
                let acked = r.is_ok();
                out.lock().unwrap_or_else(|e| e.into_inner()).push(Attempt {
                    id,
                    sent,
                    answered,
                    acked,
                });
                if !acked {
                    // Killed session or read-only: a new connection, a pause.
                    conn = None;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                } else {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        });
        Writer { attempts, task }
    }

    /// Every attempt so far.
    pub fn attempts(&self) -> Vec<Attempt> {
        self.attempts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What one isolation trial measured, from the moment of the cut.
#[derive(Debug, Clone, Copy)]
pub struct Timeline {
    /// First sample with m0 read-only.
    pub fenced: Duration,
    /// First sample with m1 or m2 writable.
    pub promoted: Duration,
}

/// Reads the timeline off `samples` for a cut at `cut`.
pub fn timeline(samples: &[Sample], cut: Instant) -> Option<Timeline> {
    let after = samples.iter().filter(|s| s.at >= cut);
    let fenced = after
        .clone()
        .find(|s| s.read_only[0] == Some(true))?
        .at
        .duration_since(cut);
    let promoted = samples
        .iter()
        .filter(|s| s.at >= cut)
        .find(|s| s.read_only[1] == Some(false) || s.read_only[2] == Some(false))?
        .at
        .duration_since(cut);
    Some(Timeline { fenced, promoted })
}

/// The `p`-quantile (0–1) of `sorted`, nearest rank: the benches' figures.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// `d` in whole milliseconds, for the benches' tables.
pub fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}
