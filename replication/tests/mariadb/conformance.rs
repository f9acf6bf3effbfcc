//! The `ReplicaSet` contract (`switchyard_replication::conformance`), run by
//! the MySQL adapter against real MariaDB servers and against simulated
//! ones (`mysql::sim`), on the wall clock and on a paused one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use switchyard_replication::conformance::{Lab as ConformanceLab, run};
use switchyard_replication::mysql::sim::SimNetwork;
use switchyard_replication::{Credentials, Flavor, MemberSpec, MySqlReplicaSet, Rules};

use crate::common::{Lab, app_insert, id};

/// Real servers: the application login for writes, the admin for errant
/// ones, SIGKILL for a crash.
struct Real {
    lab: Lab,
    next: AtomicU64,
}

impl Real {
    fn index(member: &str) -> Result<usize, String> {
        member
            .strip_prefix("db")
            .and_then(|i| i.parse().ok())
            .ok_or_else(|| format!("no member {member}"))
    }
}

#[async_trait::async_trait]
impl ConformanceLab for Real {
    fn ids(&self) -> [String; 3] {
        [id(0), id(1), id(2)]
    }

    async fn write(&self, member: &str) -> Result<(), String> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        app_insert(self.lab.topo.port(Self::index(member)?), n)
            .await
            .map_err(|e| e.to_string())
    }

    async fn write_as_admin(&self, member: &str) -> Result<(), String> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.lab
            .insert_admin(Self::index(member)?, n, 1)
            .await
            .map_err(|e| e.to_string())
    }

    async fn crash(&mut self, member: &str) -> Result<(), String> {
        self.lab.topo.kill9(Self::index(member)?);
        Ok(())
    }

    async fn stop_applier(&self, member: &str) -> Result<(), String> {
        self.lab
            .topo
            .exec(Self::index(member)?, "STOP SLAVE SQL_THREAD")
            .await
            .map_err(|e| e.to_string())
    }
}

#[tokio::test]
async fn the_adapter_on_real_mariadb_conforms() -> anyhow::Result<()> {
    let lab = Lab::start().await?;
    let set = lab.set.clone();
    let mut real = Real {
        lab,
        next: AtomicU64::new(1),
    };
    run(&set, &mut real).await?;
    Ok(())
}

/// Simulated servers `sim-db0:3306` … with server ids 1001 … .
struct Sim {
    net: SimNetwork,
}

fn address(member: &str) -> String {
    format!("sim-{member}:3306")
}

impl Sim {
    /// db0 writable, db1 and db2 replicating from it; and the adapter.
    fn start() -> (Sim, MySqlReplicaSet) {
        let net = SimNetwork::new();
        for i in 0..3 {
            net.add_server(&address(&id(i)), 1001 + i as u32);
        }
        for i in 1..3 {
            net.replicate(&address(&id(i)), &address(&id(0)));
        }
        let specs = (0..3)
            .map(|i| {
                MemberSpec::new(
                    id(i),
                    "local",
                    address(&id(i)),
                    Credentials::new("admin", "x"),
                )
            })
            .collect();
        let rules = Rules {
            max_lag: Duration::from_secs(10),
            catch_up_timeout: Duration::from_secs(5),
            ..Rules::default()
        };
        let set =
            MySqlReplicaSet::new(Flavor::MariaDb, specs, rules, Credentials::new("repl", "x"))
                .expect("valid specs")
                .simulated(&net);
        (Sim { net }, set)
    }
}

#[async_trait::async_trait]
impl ConformanceLab for Sim {
    fn ids(&self) -> [String; 3] {
        [id(0), id(1), id(2)]
    }

    async fn write(&self, member: &str) -> Result<(), String> {
        self.net
            .write(&address(member))
            .map(drop)
            .map_err(|e| e.to_string())
    }

    async fn write_as_admin(&self, member: &str) -> Result<(), String> {
        self.net
            .write_as_admin(&address(member))
            .map(drop)
            .map_err(|e| e.to_string())
    }

    async fn crash(&mut self, member: &str) -> Result<(), String> {
        self.net.crash(&address(member));
        Ok(())
    }

    async fn stop_applier(&self, member: &str) -> Result<(), String> {
        self.net.stop_applier(&address(member));
        Ok(())
    }
}

#[tokio::test]
async fn the_adapter_on_simulated_mariadb_conforms() -> anyhow::Result<()> {
    let (mut sim, set) = Sim::start();
    run(&set, &mut sim).await?;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn the_adapter_on_simulated_mariadb_conforms_on_a_paused_clock() -> anyhow::Result<()> {
    let (mut sim, set) = Sim::start();
    run(&set, &mut sim).await?;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_lagging_simulated_replica_reports_its_lag_and_catches_up() -> anyhow::Result<()> {
    use switchyard_replication::ReplicaSet;
    let (sim, set) = Sim::start();
    sim.net
        .set_apply_delay(&address("db2"), Duration::from_secs(30));
    sim.net.write(&address("db0"))?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let s = set.observe().await?;
    let lagging = s.member("db2").expect("db2");
    assert_eq!(lagging.lag, Some(Duration::from_secs(5)), "{lagging:?}");
    let primary = s
        .member("db0")
        .and_then(|m| m.position.clone())
        .expect("position");
    assert!(
        !lagging
            .position
            .as_ref()
            .expect("position")
            .contains(&primary)
    );
    assert!(
        lagging
            .received
            .as_ref()
            .expect("received")
            .contains(&primary)
    );
    tokio::time::sleep(Duration::from_secs(26)).await;
    let s = set.observe().await?;
    let caught_up = s.member("db2").expect("db2");
    assert_eq!(caught_up.lag, Some(Duration::ZERO), "{caught_up:?}");
    assert!(
        caught_up
            .position
            .as_ref()
            .expect("position")
            .contains(&primary)
    );
    Ok(())
}
