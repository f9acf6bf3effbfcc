//! What every MariaDB test needs: a topology of real servers with an
//! adapter over it, an application user that `read_only` applies to, and
//! polling helpers. Also compiled into the switchover benchmark.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};
use switchyard_replication::{
    Credentials, FailoverRequest, Flavor, MemberSpec, MemberState, MySqlReplicaSet, ReplError,
    ReplicaSet, Rules, Snapshot, Step, StepGuard, Unguarded,
};
use switchyard_tests::MariaDbTopology;
use switchyard_tests::mariadb::{ADMIN_PASSWORD, ADMIN_USER, REPL_PASSWORD, REPL_USER};
use switchyard_tests::wait::wait_for;

/// The application's login: no `READ_ONLY ADMIN`, so `read_only` stops it.
pub const APP_USER: &str = "app";
/// Its password.
pub const APP_PASSWORD: &str = "app-test";
/// How long tests wait for a condition before failing.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A guard that allows every step (30 s each): these tests run no leader.
pub static FREE: Unguarded = Unguarded {
    budget: Duration::from_secs(30),
};

/// A step guard for tests: a journal of finished steps that a resumed run
/// is given back (clones share it), a record of every step begun, and
/// optionally a leader deposed after a number of steps.
#[derive(Clone, Default)]
pub struct Journal {
    inner: Arc<Mutex<JournalState>>,
}

#[derive(Default)]
struct JournalState {
    done: Vec<Step>,
    begun: Vec<Step>,
    allow: Option<usize>,
}

impl Journal {
    /// Allows every step.
    pub fn new() -> Self {
        Self::default()
    }

    /// Allows `n` steps, then refuses every other one (deposed).
    pub fn refusing_after(n: usize) -> Self {
        let j = Self::default();
        j.inner.lock().unwrap().allow = Some(n);
        j
    }

    /// The same journal for the next leader: every step allowed, what was
    /// finished kept, the record of begun steps started afresh.
    pub fn resume(&self) -> Self {
        let done = self.done();
        let j = Self::default();
        j.inner.lock().unwrap().done = done;
        j
    }

    /// Steps recorded done, oldest first.
    pub fn done(&self) -> Vec<Step> {
        self.inner.lock().unwrap().done.clone()
    }

    /// Steps begun (allowed), oldest first.
    pub fn begun(&self) -> Vec<Step> {
        self.inner.lock().unwrap().begun.clone()
    }

    /// The member recorded as chosen, if any.
    pub fn chosen(&self) -> Option<String> {
        self.done().into_iter().find_map(|s| match s {
            Step::Chosen { member, .. } => Some(member),
            _ => None,
        })
    }
}

#[async_trait::async_trait]
impl StepGuard for Journal {
    async fn begin(&self, step: &Step) -> Result<Duration, ReplError> {
        let mut j = self.inner.lock().unwrap();
        if j.allow.is_some_and(|n| j.begun.len() >= n) {
            return Err(ReplError::Deposed {
                step: step.to_string(),
                detail: "the test deposed this leader".into(),
            });
        }
        j.begun.push(step.clone());
        Ok(Duration::from_secs(30))
    }

    async fn done(&self, step: &Step) -> Result<(), ReplError> {
        self.inner.lock().unwrap().done.push(step.clone());
        Ok(())
    }

    fn finished(&self) -> Vec<Step> {
        self.done()
    }
}

/// The ids of the members that are reachable and writable right now, read
/// straight from the servers still running (not through the adapter).
pub async fn writable_members(
    topo: &MariaDbTopology,
    alive: &[usize],
) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for &i in alive {
        if topo.variable(i, "read_only").await? == "0" {
            out.push(id(i));
        }
    }
    Ok(out)
}

/// A failover request, in the order of the old positional arguments.
pub fn req(to: Option<&str>, force: bool, expected_old_primary: Option<&str>) -> FailoverRequest {
    FailoverRequest {
        to: to.map(str::to_string),
        force,
        expected_old_primary: expected_old_primary.map(str::to_string),
        down_regions: BTreeSet::new(),
    }
}

/// Member `i` of the topology is member id `db{i}`.
pub fn id(i: usize) -> String {
    format!("db{i}")
}

/// A running topology and the adapter over it.
pub struct Lab {
    /// The servers (dropped last: they stop with it).
    pub topo: MariaDbTopology,
    /// The adapter under test.
    pub set: MySqlReplicaSet,
}

/// The specs of every member, with the admin login.
pub fn specs(topo: &MariaDbTopology) -> Vec<MemberSpec> {
    (0..topo.len())
        .map(|i| {
            MemberSpec::new(
                id(i),
                "local",
                topo.address(i),
                Credentials::new(ADMIN_USER, ADMIN_PASSWORD),
            )
        })
        .collect()
}

/// Rules for tests: generous lag, a short catch-up.
pub fn rules() -> Rules {
    Rules {
        max_lag: Duration::from_secs(10),
        catch_up_timeout: Duration::from_secs(5),
        ..Rules::default()
    }
}

/// The adapter over `specs`.
pub fn replica_set(specs: Vec<MemberSpec>, rules: Rules) -> MySqlReplicaSet {
    MySqlReplicaSet::new(
        Flavor::MariaDb,
        specs,
        rules,
        Credentials::new(REPL_USER, REPL_PASSWORD),
    )
    .expect("valid specs")
}

impl Lab {
    /// A primary and two replicas, the `app` schema and user created and
    /// replicated everywhere.
    pub async fn start() -> anyhow::Result<Lab> {
        Self::start_with(|_| {}).await
    }

    /// Like [`Lab::start`], letting the test adjust the specs.
    pub async fn start_with(adjust: impl FnOnce(&mut Vec<MemberSpec>)) -> anyhow::Result<Lab> {
        Self::start_n(2, adjust).await
    }

    /// A primary and `replicas` replicas, specs adjusted by `adjust`.
    pub async fn start_n(
        replicas: usize,
        adjust: impl FnOnce(&mut Vec<MemberSpec>),
    ) -> anyhow::Result<Lab> {
        let topo = MariaDbTopology::start(replicas).await?;
        for sql in [
            "CREATE DATABASE app",
            "CREATE TABLE app.t (id BIGINT PRIMARY KEY, note VARCHAR(64) NOT NULL DEFAULT '')",
            &format!("CREATE USER '{APP_USER}'@'%' IDENTIFIED BY '{APP_PASSWORD}'"),
            &format!("GRANT SELECT, INSERT ON app.* TO '{APP_USER}'@'%'"),
        ] {
            topo.exec(0, sql).await?;
        }
        let mut specs = specs(&topo);
        adjust(&mut specs);
        let lab = Lab {
            set: replica_set(specs, rules()),
            topo,
        };
        let all: Vec<usize> = (1..=replicas).collect();
        lab.wait_caught_up(&all).await?;
        Ok(lab)
    }

    /// Restarts member `i`.
    pub async fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        self.topo.restart(i).await
    }

    /// Observes, failing the test if observing fails.
    pub async fn observe(&self) -> Snapshot {
        self.set.observe().await.expect("observe")
    }

    /// Waits until every member in `members` has applied all the observed
    /// primary has.
    pub async fn wait_caught_up(&self, members: &[usize]) -> anyhow::Result<()> {
        wait_for("replicas to catch up", PATIENCE, || async move {
            let s = self.set.observe().await.map_err(|e| e.to_string())?;
            let p = s
                .primary_state()
                .and_then(|m| m.position.clone())
                .ok_or("primary position unknown")?;
            for &i in members {
                let m = s.member(&id(i)).ok_or("no member")?;
                let have = m.position.as_ref().ok_or("position unknown")?;
                if !have.contains(&p) {
                    return Err(format!("{} at {have}, primary at {p}", m.id));
                }
            }
            Ok(())
        })
        .await
    }

    /// Waits until `pred` holds for member `i`'s observed state.
    pub async fn wait_member(
        &self,
        i: usize,
        what: &str,
        pred: impl Fn(&MemberState) -> bool,
    ) -> anyhow::Result<MemberState> {
        let pred = &pred;
        wait_for(what, PATIENCE, || async move {
            let s = self.set.observe().await.map_err(|e| e.to_string())?;
            let m = s.member(&id(i)).cloned().ok_or("no member")?;
            if pred(&m) {
                Ok(m)
            } else {
                Err(format!("{m:?}"))
            }
        })
        .await
    }

    /// Inserts `n` rows on member `i` as the admin (ids from `first`).
    pub async fn insert_admin(&self, i: usize, first: u64, n: u64) -> anyhow::Result<()> {
        for id in first..first + n {
            self.topo
                .exec(i, &format!("INSERT INTO app.t (id) VALUES ({id})"))
                .await?;
        }
        Ok(())
    }

    /// Every id in `app.t` on member `i`.
    pub async fn ids_on(&self, i: usize) -> anyhow::Result<BTreeSet<u64>> {
        let rows: Vec<u64> = self.topo.query(i, "SELECT id FROM app.t").await?;
        Ok(rows.into_iter().collect())
    }

    /// What the servers look like, to prove that a refused call changed
    /// nothing: per member read_only, binlog state and replication source.
    pub async fn fingerprint(&self) -> anyhow::Result<Vec<String>> {
        let all: Vec<usize> = (0..self.topo.len()).collect();
        self.fingerprint_alive(&all).await
    }

    /// [`Lab::fingerprint`] of the members still running.
    pub async fn fingerprint_alive(&self, members: &[usize]) -> anyhow::Result<Vec<String>> {
        let mut out = Vec::new();
        for &i in members {
            let ro = self.topo.variable(i, "read_only").await?;
            let state = self.topo.variable(i, "gtid_binlog_state").await?;
            let row: Option<mysql_async::Row> =
                self.topo.query_first(i, "SHOW SLAVE STATUS").await?;
            let src = row
                .map(|r| {
                    let h: Option<String> = r.get("Master_Host");
                    let p: Option<String> = r.get("Master_Port");
                    let sql: Option<String> = r.get("Slave_SQL_Running");
                    format!("{h:?}:{p:?} sql={sql:?}")
                })
                .unwrap_or_else(|| "no source".into());
            out.push(format!("{i}: read_only={ro} state={state} {src}"));
        }
        Ok(out)
    }
}

/// An application login to member `port`.
pub async fn app_conn(port: u16) -> anyhow::Result<Conn> {
    let opts = OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(port)
        .user(Some(APP_USER))
        .pass(Some(APP_PASSWORD))
        .prefer_socket(false);
    let c = tokio::time::timeout(Duration::from_secs(2), Conn::new(opts))
        .await
        .context("connect timed out")??;
    Ok(c)
}

/// One insert as the application on member `port`.
pub async fn app_insert(port: u16, id: u64) -> anyhow::Result<()> {
    let mut c = app_conn(port).await?;
    c.query_drop(format!("INSERT INTO app.t (id) VALUES ({id})"))
        .await?;
    c.disconnect().await.ok();
    Ok(())
}
