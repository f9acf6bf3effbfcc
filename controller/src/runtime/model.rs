//! From the validated config to the engine's own inputs: the topology, the
//! policy, and the names probe reports may use.

use std::collections::BTreeMap;

use switchyard_probes::replication::mysql::sim::SimNetwork;
use switchyard_probes::replication::{
    Credentials, Flavor, MemberSpec, MongoReplicaSet, MySqlReplicaSet, ReplicaSet, Rules, Timeouts,
};

use crate::api::ingest::KnownNames;
use crate::config::{self, Config, Mode};
use crate::engine::{self, DbFailoverMode, FailbackMode, TargetId};

/// The engine's view of what exists. Database primaries are unknown until the
/// store (or an observation) says which member is primary.
pub fn topology(cfg: &Config) -> engine::Topology {
    let regions = cfg
        .regions
        .iter()
        .map(|r| {
            (
                r.name.clone(),
                engine::Region {
                    weight: u32::from(r.weight),
                    priority: r.priority,
                },
            )
        })
        .collect();
    let records = cfg
        .services
        .iter()
        .map(|s| {
            let endpoints = s
                .endpoints
                .iter()
                .map(|e| {
                    let weight = cfg.region(&e.region).map_or(0, |r| u32::from(r.weight));
                    (
                        e.region.clone(),
                        engine::Endpoint {
                            target: TargetId::service(&s.name, &e.region),
                            weight,
                        },
                    )
                })
                .collect();
            (s.record.clone(), engine::Record { endpoints })
        })
        .collect();
    let databases = cfg
        .databases
        .iter()
        .map(|d| {
            let members = d
                .members
                .iter()
                .map(|m| {
                    (
                        m.id.clone(),
                        engine::Member {
                            region: m.region.clone(),
                            target: TargetId::db_member(&d.name, &m.id),
                        },
                    )
                })
                .collect();
            (
                d.name.clone(),
                engine::Database {
                    members,
                    primary: String::new(),
                },
            )
        })
        .collect();
    engine::Topology {
        regions,
        records,
        databases,
        witnesses: cfg.witnesses.iter().map(|w| w.name.clone()).collect(),
    }
}

/// The engine's policy from the config's.
pub fn policy(cfg: &Config) -> engine::Policy {
    let p: &config::Policy = &cfg.policy;
    engine::Policy {
        fall: p.fall,
        rise: p.rise,
        quorum: cfg.quorum(),
        stale_after: cfg.stale_after(),
        failback: match p.failback {
            Mode::Auto => FailbackMode::Auto,
            Mode::Manual => FailbackMode::Manual,
        },
        failback_after: p.failback_after,
        ramp: p.ramp.clone(),
        ramp_step: p.ramp_step,
        db_failover: match p.db_failover {
            Mode::Auto => DbFailoverMode::Auto,
            Mode::Manual => DbFailoverMode::Manual,
        },
        anti_flap: p.anti_flap,
        max_evacuated: p.max_evacuated as usize,
        settle_window: p.settle_window,
    }
}

/// The targets and vantages (regions and witnesses) a probe report may name.
pub fn known_names(topology: &engine::Topology, cluster: &str) -> KnownNames {
    let mut targets = std::collections::HashSet::new();
    for r in topology.records.values() {
        for e in r.endpoints.values() {
            targets.insert(e.target.as_str().to_string());
        }
    }
    for d in topology.databases.values() {
        for m in d.members.values() {
            targets.insert(m.target.as_str().to_string());
        }
    }
    KnownNames {
        cluster: cluster.to_string(),
        targets,
        regions: topology.vantages().map(str::to_owned).collect(),
    }
}

/// Base weights of every record: what traffic looks like when all is well.
pub fn base_weights(topology: &engine::Topology) -> BTreeMap<String, BTreeMap<String, u32>> {
    topology
        .records
        .iter()
        .map(|(name, r)| {
            (
                name.clone(),
                r.endpoints
                    .iter()
                    .map(|(region, e)| (region.clone(), e.weight))
                    .collect(),
            )
        })
        .collect()
}

/// Why the database adapters could not be built.
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    /// A password reference could not be resolved.
    #[error("database {database}, member {member}: {source}")]
    Secret {
        /// The database.
        database: String,
        /// The member.
        member: String,
        /// Why.
        source: crate::config::SecretError,
    },
    /// No credential set applies (the config check reports this too).
    #[error("database {database}, member {member}: no credentials configured")]
    NoCredentials {
        /// The database.
        database: String,
        /// The member.
        member: String,
    },
    /// The adapter refused the member list.
    #[error("database {database}: {source}")]
    Spec {
        /// The database.
        database: String,
        /// Why.
        source: switchyard_probes::replication::ReplError,
    },
}

/// One `ReplicaSet` adapter per database, with passwords resolved now (a
/// missing secret stops the controller at start, not during a failover).
pub fn replica_sets(
    cfg: &Config,
) -> Result<BTreeMap<String, std::sync::Arc<dyn ReplicaSet>>, AdapterError> {
    replica_sets_where(cfg, |_| true, None)
}

/// [`replica_sets`] (every member) or, with `region`, [`local_replica_sets`],
/// whose MariaDB and MySQL members are the simulated servers of `network`
/// (the simulator's; MongoDB sets stay as they are).
pub fn simulated_replica_sets(
    cfg: &Config,
    region: Option<&str>,
    network: &SimNetwork,
) -> Result<BTreeMap<String, std::sync::Arc<dyn ReplicaSet>>, AdapterError> {
    replica_sets_where(cfg, |m| region.is_none_or(|r| m.region == r), Some(network))
}

/// One adapter per database that has members in `region`, holding only
/// those members: what an isolated controller fences. It never reaches
/// across the cut (a member behind it would hold every call up to its
/// connect timeout, past the fence deadline).
pub fn local_replica_sets(
    cfg: &Config,
    region: &str,
) -> Result<BTreeMap<String, std::sync::Arc<dyn ReplicaSet>>, AdapterError> {
    replica_sets_where(cfg, |m| m.region == region, None)
}

fn replica_sets_where(
    cfg: &Config,
    keep: impl Fn(&config::Member) -> bool,
    network: Option<&SimNetwork>,
) -> Result<BTreeMap<String, std::sync::Arc<dyn ReplicaSet>>, AdapterError> {
    let mut out: BTreeMap<String, std::sync::Arc<dyn ReplicaSet>> = BTreeMap::new();
    for db in &cfg.databases {
        let mut members = Vec::with_capacity(db.members.len());
        for m in db.members.iter().filter(|m| keep(m)) {
            let credentials = resolve(
                cfg,
                &db.name,
                &m.id,
                m.credentials.as_ref().or(db.credentials.as_ref()),
            )?;
            let mut spec = MemberSpec::new(&m.id, &m.region, &m.address, credentials);
            spec.promotion = m.promotion;
            spec.region_priority = cfg.region(&m.region).map_or(u32::MAX, |r| r.priority);
            members.push(spec);
        }
        if members.is_empty() {
            continue;
        }
        let rules = Rules {
            max_lag: db.max_lag,
            allow_data_loss: db.allow_data_loss,
            ..Rules::default()
        };
        let spec_err = |source| AdapterError::Spec {
            database: db.name.clone(),
            source,
        };
        let set: std::sync::Arc<dyn ReplicaSet> = match db.kind {
            config::DatabaseKind::Mariadb | config::DatabaseKind::Mysql => {
                let flavor = if db.kind == config::DatabaseKind::Mariadb {
                    Flavor::MariaDb
                } else {
                    Flavor::MySql
                };
                let repl = match &db.replication_credentials {
                    Some(name) => resolve(cfg, &db.name, "(replication)", Some(name))?,
                    None => members
                        .first()
                        .map(|m| m.credentials.clone())
                        .unwrap_or_else(|| Credentials::new("", "")),
                };
                // Connecting gets the member check's timeout (default 2 s),
                // as the probes do: a member that cannot be reached within
                // it is Down to them, and a failover's observation of a
                // dead, cut-off old primary should not wait longer for it.
                let set = MySqlReplicaSet::new(flavor, members, rules, repl)
                    .map_err(spec_err)?
                    .with_timeouts(Timeouts {
                        connect: db.check.timeout,
                        dead_man_grace: dead_man_grace(cfg.etcd.primary_lease_ttl()),
                        ..Timeouts::default()
                    })
                    .with_dead_man(db.dead_man);
                std::sync::Arc::new(match network {
                    Some(net) => set.simulated(net),
                    None => set,
                })
            }
            config::DatabaseKind::Mongodb => std::sync::Arc::new(
                MongoReplicaSet::new(members, rules, db.check.timeout).map_err(spec_err)?,
            ),
        };
        out.insert(db.name.clone(), set);
    }
    Ok(out)
}

/// How long a promotion or a lift holds an armed dead-man switch before the
/// region's lease keeper must have renewed it: half the primary lease.
/// Shorter than the lease, so a primary promoted into a region that dies
/// at once has fenced itself before the first lease taken for it (which
/// the promotion gate waits for) can run out.
pub fn dead_man_grace(primary_lease_ttl: std::time::Duration) -> std::time::Duration {
    primary_lease_ttl / 2
}

fn resolve(
    cfg: &Config,
    database: &str,
    member: &str,
    name: Option<&String>,
) -> Result<Credentials, AdapterError> {
    let secret_err = |source| AdapterError::Secret {
        database: database.to_string(),
        member: member.to_string(),
        source,
    };
    let creds =
        name.and_then(|n| cfg.credentials.get(n))
            .ok_or_else(|| AdapterError::NoCredentials {
                database: database.to_string(),
                member: member.to_string(),
            })?;
    let password = creds.password.resolve().map_err(secret_err)?;
    Ok(Credentials::new(&creds.user, password.expose()))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::{DateTime, TimeDelta, Utc};
    use switchyard_probes::proto::{Outcome, ProbeReport};

    use super::*;
    use crate::api::ingest::{Rejection, check_report};
    use crate::engine::{Action, ControlState, HealthBook, RegionStatus};

    /// Two regions a and b (api endpoints, database members db-a primary
    /// and db-b), auto failover, plus `extra` TOML.
    fn config(extra: &str) -> Config {
        let text = format!(
            r#"cluster = "two"
[etcd]
endpoints = ["http://127.0.0.1:2379"]
[dns]
backend = "file"
path = "/tmp/w.json"
[policy]
db_failover = "auto"
[[regions]]
name = "a"
weight = 100
priority = 1
[[regions]]
name = "b"
weight = 100
priority = 2
[[controllers]]
id = "ca"
region = "a"
listen = "127.0.0.1:7401"
[[controllers]]
id = "cb"
region = "b"
listen = "127.0.0.1:7402"
[[services]]
name = "api"
record = "api.example.com."
ttl = 30
[[services.endpoints]]
region = "a"
value = "192.0.2.1"
target = "10.0.0.1:80"
[[services.endpoints]]
region = "b"
value = "192.0.2.2"
target = "10.0.0.2:80"
[[services.checks]]
kind = "tcp"
interval = "1s"
timeout = "500ms"
[credentials.admin]
user = "sy"
password = {{ env = "PW" }}
[[databases]]
name = "orders"
kind = "mariadb"
max_lag = "5s"
credentials = "admin"
[[databases.members]]
id = "db-a"
region = "a"
address = "10.0.0.1:3306"
[[databases.members]]
id = "db-b"
region = "b"
address = "10.0.0.2:3306"
{extra}"#
        );
        match config::parse(&text) {
            Ok(c) => c.config,
            Err(d) => panic!("test config invalid: {d:#?}"),
        }
    }

    fn report(target: &str, vantage: &str, at: DateTime<Utc>, up: bool) -> ProbeReport {
        ProbeReport {
            probe_id: format!("{vantage}@test"),
            vantage_region: vantage.into(),
            target: target.into(),
            check: "tcp".into(),
            outcome: if up { Outcome::Up } else { Outcome::Down } as i32,
            reason: String::new(),
            latency_us: 10,
            observed_at_unix_ms: at.timestamp_millis(),
            sequence: 1,
            cluster: String::new(),
        }
    }

    #[test]
    fn the_policy_carries_staleness_quorum_and_the_settle_window() {
        let cfg = config("[[witnesses]]\nname = \"w\"\n");
        let p = policy(&cfg);
        assert_eq!(p.quorum, 2, "a majority of 3 vantages");
        // 3 × the longest check interval: the database's default 5s.
        assert_eq!(p.stale_after, Duration::from_secs(15));
        assert_eq!(p.settle_window, Duration::from_secs(30));
        let topo = topology(&cfg);
        assert_eq!(topo.witnesses.iter().collect::<Vec<_>>(), ["w"]);
        assert!(!topo.regions.contains_key("w"), "a witness gets no weight");
        assert_eq!(base_weights(&topo)["api.example.com."].len(), 2);
    }

    /// Region a is lost with its probe: b and (if declared) the witness w
    /// report a's endpoint and primary down through ingest; the leader's
    /// decide then evacuates a and fails the primary over — or, without the
    /// witness, b alone cannot make the quorum and nothing happens.
    #[test]
    fn a_witness_report_is_accepted_and_makes_the_quorum() {
        for witness in [true, false] {
            let cfg = config(if witness {
                "[[witnesses]]\nname = \"w\"\n"
            } else {
                ""
            });
            let mut topo = topology(&cfg);
            topo.databases.get_mut("orders").expect("orders").primary = "db-a".into();
            let pol = policy(&cfg);
            let known = known_names(&topo, "");
            let now = DateTime::<Utc>::from_timestamp(1_750_000_000, 0).unwrap_or_default();
            let mut book = HealthBook::new();
            let mut rejected = Vec::new();
            for round in 0..pol.fall {
                let at = now - TimeDelta::milliseconds(100 * i64::from(pol.fall - round));
                for vantage in ["b", "w"] {
                    for (target, up) in [
                        ("svc:api@a", false),
                        ("db:orders/db-a", false),
                        ("svc:api@b", true),
                        ("db:orders/db-b", true),
                    ] {
                        match check_report(&mut report(target, vantage, at, up), &known, now) {
                            Ok(obs) => {
                                book.record(&obs, &pol);
                            }
                            Err(e) => rejected.push(e),
                        }
                    }
                }
            }
            let control = ControlState {
                weights: base_weights(&topo),
                ..ControlState::default()
            };
            let d = crate::engine::decide(&topo, &book, &control, &pol, now);
            let failover = d.plan.actions.iter().any(
                |a| matches!(a, Action::Failover { from_member, .. } if from_member == "db-a"),
            );
            let evacuated = d.plan.actions.iter().any(
                |a| matches!(a, Action::SetWeights { weights, .. } if weights.get("a") == Some(&0)),
            );
            if witness {
                assert!(rejected.is_empty(), "{rejected:?}");
                assert_eq!(d.regions["a"].status, RegionStatus::Down);
                assert!(failover && evacuated, "{:?}", d.plan);
            } else {
                assert!(
                    rejected
                        .iter()
                        .all(|r| *r == Rejection::UnknownRegion("w".into())),
                    "{rejected:?}"
                );
                assert_eq!(rejected.len(), 4 * pol.fall as usize);
                assert!(d.plan.actions.is_empty(), "{:?}", d.plan);
            }
        }
    }
}
