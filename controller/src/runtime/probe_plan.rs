//! From the config to a probe's plan: every target of every region, with
//! the checks the config gives it, seen from one vantage region. The probes
//! crate takes plain data, so this is where config meets it.

use switchyard_probes::replication::Flavor;
use switchyard_probes::{
    CheckKind, CheckSpec, DnsCheck, DnsRecordType, GrpcCheck, HttpCheck, MongoDbCheck, MySqlCheck,
    ProbePlan, TargetPlan, TcpCheck,
};

use crate::config::{self, Check, Config, DatabaseKind};
use crate::engine::TargetId;
use crate::runtime::model::AdapterError;

/// The plan of probe `probe_id` running in `vantage`. Database passwords
/// are resolved now, so a missing secret stops the probe at start.
pub fn probe_plan(cfg: &Config, probe_id: &str, vantage: &str) -> Result<ProbePlan, AdapterError> {
    let mut targets = Vec::new();
    for s in &cfg.services {
        for e in &s.endpoints {
            let mut checks = Vec::new();
            for (i, c) in s.checks.iter().enumerate() {
                checks.push(CheckSpec {
                    name: check_name(&s.checks, i, c),
                    interval: c.interval(),
                    timeout: c.timeout(),
                    kind: service_check(c, &e.target),
                });
            }
            targets.push(TargetPlan {
                id: TargetId::service(&s.name, &e.region).0,
                region: e.region.clone(),
                checks,
            });
        }
    }
    for db in &cfg.databases {
        for m in &db.members {
            let creds = credentials(cfg, db, m)?;
            let kind = match db.kind {
                DatabaseKind::Mariadb | DatabaseKind::Mysql => CheckKind::MySql(MySqlCheck {
                    flavor: if db.kind == DatabaseKind::Mariadb {
                        Flavor::MariaDb
                    } else {
                        Flavor::MySql
                    },
                    address: m.address.clone(),
                    user: creds.0,
                    password: creds.1,
                    // The role moves with failovers: reachability and
                    // replication health are what the probe judges.
                    expect_read_only: None,
                    max_lag: Some(db.max_lag),
                }),
                DatabaseKind::Mongodb => CheckKind::MongoDb(MongoDbCheck {
                    address: m.address.clone(),
                    user: Some(creds.0),
                    password: Some(creds.1),
                    max_lag: Some(db.max_lag),
                }),
            };
            targets.push(TargetPlan {
                id: TargetId::db_member(&db.name, &m.id).0,
                region: m.region.clone(),
                checks: vec![CheckSpec {
                    name: db.kind.as_str().to_string(),
                    interval: db.check.interval,
                    timeout: db.check.timeout,
                    kind,
                }],
            });
        }
    }
    let mut plan = ProbePlan::new(probe_id, vantage, targets);
    plan.cluster = cfg.cluster.clone();
    Ok(plan)
}

/// The check's kind, numbered when a service has several of one kind.
fn check_name(all: &[Check], i: usize, c: &Check) -> String {
    let same = all.iter().filter(|o| o.kind() == c.kind()).count();
    if same > 1 {
        format!("{}-{}", c.kind(), i + 1)
    } else {
        c.kind().to_string()
    }
}

fn service_check(c: &Check, target: &str) -> CheckKind {
    match c {
        Check::Http(h) | Check::Https(h) => {
            let scheme = if matches!(c, Check::Https(_)) {
                "https"
            } else {
                "http"
            };
            CheckKind::Http(HttpCheck {
                url: format!("{scheme}://{target}{}", h.path),
                expect_status: h.expect_status,
                body_contains: h.body_contains.clone(),
                host_header: h.host_header.clone(),
                max_latency: h.max_latency,
            })
        }
        Check::Tcp(_) => CheckKind::Tcp(TcpCheck {
            address: target.to_string(),
        }),
        Check::Dns(d) => CheckKind::Dns(DnsCheck {
            server: d
                .server
                .as_deref()
                .unwrap_or(target)
                .parse()
                .unwrap_or_else(|_| std::net::SocketAddr::from(([127, 0, 0, 1], 53))),
            name: d.name.clone(),
            record_type: DnsRecordType::A,
            expect: d.expect.clone(),
        }),
        Check::Grpc(g) => CheckKind::Grpc(GrpcCheck {
            address: target.to_string(),
            service: g.service.clone(),
        }),
    }
}

fn credentials(
    cfg: &Config,
    db: &config::Database,
    m: &config::Member,
) -> Result<(String, String), AdapterError> {
    let creds = cfg
        .member_credentials(db, m)
        .ok_or_else(|| AdapterError::NoCredentials {
            database: db.name.clone(),
            member: m.id.clone(),
        })?;
    let password = creds
        .password
        .resolve()
        .map_err(|source| AdapterError::Secret {
            database: db.name.clone(),
            member: m.id.clone(),
            source,
        })?;
    Ok((creds.user.clone(), password.expose().to_string()))
}

/// The probe's default id: stable across restarts on one host.
pub fn default_probe_id(vantage: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "probe".into());
    format!("{vantage}@{host}")
}
