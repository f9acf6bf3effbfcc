//! From the validated config to the engine's own inputs: the topology, the
//! policy, and the names probe reports may use.

use std::collections::BTreeMap;

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
    }
}

/// The engine's policy from the config's.
pub fn policy(cfg: &Config) -> engine::Policy {
    let p: &config::Policy = &cfg.policy;
    engine::Policy {
        fall: p.fall,
        rise: p.rise,
        quorum: cfg.quorum(),
        stale_after: p.stale_after,
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
    }
}

/// The targets and regions a probe report may name.
pub fn known_names(topology: &engine::Topology) -> KnownNames {
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
        targets,
        regions: topology.regions.keys().cloned().collect(),
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
