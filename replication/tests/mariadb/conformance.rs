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

    async fn restart(&mut self, member: &str) -> Result<(), String> {
        let i = Self::index(member)?;
        self.lab.topo.stop(i).await;
        self.lab.topo.restart(i).await.map_err(|e| e.to_string())
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

/// The three simulated members as the adapter is given them.
fn specs() -> Vec<MemberSpec> {
    (0..3)
        .map(|i| {
            MemberSpec::new(
                id(i),
                "local",
                address(&id(i)),
                Credentials::new("admin", "x"),
            )
        })
        .collect()
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
        let specs = specs();
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

    async fn restart(&mut self, member: &str) -> Result<(), String> {
        self.net.crash(&address(member));
        self.net.restart(&address(member));
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

impl Sim {
    /// The adapter as controller `client` would run it: its sessions come
    /// from `client`, so a partition can stop them and not another's.
    fn adapter_of(&self, client: &str) -> MySqlReplicaSet {
        let specs = specs();
        MySqlReplicaSet::new(
            Flavor::MariaDb,
            specs,
            Rules::default(),
            Credentials::new("repl", "x"),
        )
        .expect("valid specs")
        .simulated(&self.net.as_client(client))
    }
}

/// A partition between one controller and the primary leaves another
/// controller reaching it: what one sees as unreachable the other sees
/// writable. A global cut could not tell these apart.
#[tokio::test(start_paused = true)]
async fn a_partition_hides_the_primary_from_one_controller_only() -> anyhow::Result<()> {
    use switchyard_replication::ReplicaSet;
    let (sim, _) = Sim::start();
    let (a, b) = (sim.adapter_of("ctl-a"), sim.adapter_of("ctl-b"));
    sim.net.partition("ctl-b", &address("db0"), true);
    let seen_by_a = a.observe().await?;
    let seen_by_b = b.observe().await?;
    let (pa, pb) = (
        seen_by_a.member("db0").expect("db0"),
        seen_by_b.member("db0").expect("db0"),
    );
    assert!(pa.reachable && pa.read_only == Some(false), "{pa:?}");
    assert!(!pb.reachable, "{pb:?}");
    assert!(seen_by_b.member("db1").expect("db1").reachable);
    // The application on ctl-b's side of the cut cannot write there; on
    // ctl-a's it can.
    assert!(sim.net.writable_from("ctl-a", &address("db0")));
    assert!(!sim.net.writable_from("ctl-b", &address("db0")));
    assert!(sim.net.as_client("ctl-b").write(&address("db0")).is_err());
    sim.net.partition("ctl-b", &address("db0"), false);
    let healed = b.observe().await?;
    assert!(healed.member("db0").expect("db0").reachable);
    Ok(())
}

/// A replica cut from its source (one link, one way dropped) stops
/// receiving while the controllers still read both, and catches up once
/// the link heals.
#[tokio::test(start_paused = true)]
async fn a_replica_cut_from_its_source_stops_receiving_and_catches_up() -> anyhow::Result<()> {
    use switchyard_replication::ReplicaSet;
    let (sim, set) = Sim::start();
    sim.net.drop_link(&address("db0"), &address("db2"), true);
    let gtid = sim.net.write(&address("db0"))?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let s = set.observe().await?;
    let cut = s.member("db2").expect("db2");
    assert!(cut.reachable, "{cut:?}");
    assert_eq!(cut.lag, None, "no source, no lag: {cut:?}");
    let applied = |m: &str| sim.net.applied(&address(m)).unwrap_or_default();
    assert!(applied("db1").contains(&gtid), "db1 {}", applied("db1"));
    assert!(!applied("db2").contains(&gtid), "db2 {}", applied("db2"));
    sim.net.drop_link(&address("db0"), &address("db2"), false);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(applied("db2").contains(&gtid), "db2 {}", applied("db2"));
    Ok(())
}

/// A simulated server counts its dead-man switch's deadline on its own
/// clock: a server 10 % fast fires a switch held for 11 s (less the
/// event's period and the renewal's budget) a tenth early on tokio's
/// clock, as a real host whose crystal runs fast would (the simulator
/// gives every member a rate, docs/SIMULATION.md).
#[tokio::test(start_paused = true)]
async fn a_simulated_servers_dead_man_counts_on_its_own_clock() -> anyhow::Result<()> {
    use switchyard_replication::ReplicaSet;
    use tokio::time::Instant;
    let (sim, set) = Sim::start();
    let db0 = address("db0");
    sim.net.set_clock_rate(&db0, 100_000);
    let start = Instant::now();
    set.hold_dead_man("db0", start + Duration::from_secs(11))
        .await?;
    let fired = loop {
        if !sim.net.writable(&db0) {
            break start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    // On a clock at tokio's rate it fires by the 11 s asked for, and not
    // much before: here a tenth of what it counted goes.
    assert!(
        fired < Duration::from_millis(10_300) && fired > Duration::from_millis(8_000),
        "fired after {fired:?}"
    );
    Ok(())
}
