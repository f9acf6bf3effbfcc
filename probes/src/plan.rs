//! What one probe checks, as plain data: the controller builds a
//! [`ProbePlan`] from its config, so this crate never depends on the
//! controller's config types (dependencies point `controller → probes`).

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::error::PlanError;

/// Default [`ProbePlan::buffer_per_controller`]: about one second of reports
/// at 10,000 checks/s, or minutes at ordinary rates.
pub const DEFAULT_BUFFER_PER_CONTROLLER: usize = 10_000;

/// Everything one probe process does: its identity, its vantage region and
/// every target of every region, with their checks.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbePlan {
    /// Stable id of this probe process (kept across restarts), carried in
    /// every report so controllers can tell probes apart.
    pub probe_id: String,
    /// The region this probe runs in: its vantage in every report.
    pub vantage: String,
    /// The cluster this probe reports for, carried in every report so a
    /// controller of another cluster refuses it; empty: unnamed.
    pub cluster: String,
    /// Every target this probe checks, of every region.
    pub targets: Vec<TargetPlan>,
    /// Most checks running at once. A check holds its slot for at most its
    /// timeout, so hung targets can take at most
    /// [`ProbePlan::worst_case_concurrency`] slots on average; the
    /// recommended value adds a margin so that healthy checks still find one.
    pub max_concurrency: usize,
    /// Reports kept per controller while it is slow or away; when full the
    /// oldest is dropped (and counted), never the newest.
    pub buffer_per_controller: usize,
    /// Source address for HTTP, TCP, gRPC and DNS checks; `None` lets the
    /// kernel choose. Lets a test (or a multi-homed host) give one probe a
    /// network path of its own, e.g. one that a firewall rule cuts off.
    pub source_address: Option<IpAddr>,
    /// PEM certificates trusted for HTTPS checks in addition to the system's
    /// roots (a private CA); `None`: system roots only.
    pub extra_ca_pem: Option<String>,
}

impl ProbePlan {
    /// A plan with the recommended concurrency for `targets`, the default
    /// buffer, no source address and no extra CA.
    pub fn new(
        probe_id: impl Into<String>,
        vantage: impl Into<String>,
        targets: Vec<TargetPlan>,
    ) -> Self {
        let mut plan = ProbePlan {
            probe_id: probe_id.into(),
            vantage: vantage.into(),
            cluster: String::new(),
            targets,
            max_concurrency: 1,
            buffer_per_controller: DEFAULT_BUFFER_PER_CONTROLLER,
            source_address: None,
            extra_ca_pem: None,
        };
        plan.max_concurrency = plan.recommended_concurrency();
        plan
    }

    /// Number of check instances (every check of every target).
    pub fn check_count(&self) -> usize {
        self.targets.iter().map(|t| t.checks.len()).sum()
    }

    /// Slots busy on average if every target hung: the sum over checks of
    /// timeout / interval. Below this the semaphore starves healthy checks
    /// while every target hangs; the peak is somewhat higher when phases
    /// bunch up (only `max_concurrency ≥` [`ProbePlan::check_count`] rules
    /// out any wait at all).
    pub fn worst_case_concurrency(&self) -> usize {
        let load: f64 = self
            .targets
            .iter()
            .flat_map(|t| &t.checks)
            .filter(|c| !c.interval.is_zero())
            .map(|c| c.timeout.as_secs_f64() / c.interval.as_secs_f64())
            .sum();
        load.ceil() as usize
    }

    /// [`ProbePlan::worst_case_concurrency`] with a 25 % margin (phases
    /// bunch up) plus a few slots: what [`ProbePlan::new`] uses.
    pub fn recommended_concurrency(&self) -> usize {
        recommended_slots(self.worst_case_concurrency() as f64)
    }

    /// Checks the plan before anything runs: every error here is fatal and
    /// names the target and check.
    pub fn validate(&self) -> Result<(), PlanError> {
        if self.probe_id.trim().is_empty() {
            return Err(PlanError::EmptyField("probe_id"));
        }
        if self.vantage.trim().is_empty() {
            return Err(PlanError::EmptyField("vantage"));
        }
        if self.max_concurrency == 0 {
            return Err(PlanError::Zero("max_concurrency"));
        }
        if self.buffer_per_controller == 0 {
            return Err(PlanError::Zero("buffer_per_controller"));
        }
        let mut seen = HashSet::new();
        for target in &self.targets {
            if target.id.trim().is_empty() {
                return Err(PlanError::EmptyField("target id"));
            }
            for check in &target.checks {
                if !seen.insert((target.id.as_str(), check.name.as_str())) {
                    return Err(PlanError::DuplicateCheck {
                        target: target.id.clone(),
                        check: check.name.clone(),
                    });
                }
                check.validate(&target.id)?;
            }
        }
        Ok(())
    }
}

/// One thing whose health the controller judges: a service endpoint in a
/// region or a database member.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetPlan {
    /// The id reports carry and the controller knows, e.g.
    /// `"svc:api@us-east"` or `"db:orders/orders-2"`.
    pub id: String,
    /// The region the target is in (for logs; reports carry the vantage).
    pub region: String,
    /// Its checks; each run is reported on its own.
    pub checks: Vec<CheckSpec>,
}

/// One check of a target: how often, how long it may take, and what.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckSpec {
    /// Unique within the target; reports carry it in `check`.
    pub name: String,
    /// Time between runs; runs stay on this grid (no drift).
    pub interval: Duration,
    /// Time one run may take before it counts as down; below `interval`.
    pub timeout: Duration,
    /// What to do.
    pub kind: CheckKind,
}

impl CheckSpec {
    /// The kind as a short label (`http`, `https`, `tcp`, …), for metrics.
    pub fn kind_label(&self) -> &'static str {
        self.kind.label()
    }

    fn validate(&self, target: &str) -> Result<(), PlanError> {
        let at = |why: String| PlanError::BadCheck {
            target: target.to_string(),
            check: self.name.clone(),
            why,
        };
        if self.name.trim().is_empty() {
            return Err(at("the check has no name".into()));
        }
        if self.interval.is_zero() {
            return Err(at("interval is zero".into()));
        }
        if self.timeout.is_zero() || self.timeout >= self.interval {
            return Err(at(format!(
                "timeout {:?} must be above zero and below interval {:?}",
                self.timeout, self.interval
            )));
        }
        self.kind.validate(self.timeout).map_err(at)
    }
}

/// What a check does; each kind has its own fields.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckKind {
    /// HTTP or HTTPS GET (by the URL's scheme).
    Http(HttpCheck),
    /// A TCP connect.
    Tcp(TcpCheck),
    /// A DNS query to a given server.
    Dns(DnsCheck),
    /// `grpc.health.v1.Health/Check`.
    Grpc(GrpcCheck),
    /// A MySQL or MariaDB member: reachable, read-only as expected,
    /// replication running, lag within limit.
    MySql(MySqlCheck),
    /// A MongoDB replica set member: healthy state, lag within limit.
    MongoDb(MongoDbCheck),
}

impl CheckKind {
    /// Short label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            CheckKind::Http(h) if h.url.starts_with("https:") => "https",
            CheckKind::Http(_) => "http",
            CheckKind::Tcp(_) => "tcp",
            CheckKind::Dns(_) => "dns",
            CheckKind::Grpc(_) => "grpc",
            CheckKind::MySql(_) => "mysql",
            CheckKind::MongoDb(_) => "mongodb",
        }
    }

    fn validate(&self, timeout: Duration) -> Result<(), String> {
        match self {
            CheckKind::Http(h) => {
                crate::checks::http::HttpRequestPlan::parse(h).map_err(|e| e.to_string())?;
                if let Some(max) = h.max_latency
                    && max >= timeout
                {
                    return Err(format!(
                        "max_latency {max:?} must be below timeout {timeout:?}"
                    ));
                }
                Ok(())
            }
            CheckKind::Tcp(t) => split_host_port(&t.address).map(|_| ()),
            CheckKind::Dns(d) => {
                if d.name.trim().is_empty() {
                    Err("dns check has no name to query".into())
                } else {
                    Ok(())
                }
            }
            CheckKind::Grpc(g) => split_host_port(&g.address).map(|_| ()),
            CheckKind::MySql(m) => split_host_port(&m.address).map(|_| ()),
            CheckKind::MongoDb(m) => split_host_port(&m.address).map(|_| ()),
        }
    }
}

/// HTTP(S) GET expectations.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpCheck {
    /// `http://host:port/path` or `https://…`; the host may be an address
    /// (then set `host_header` for virtual hosts and TLS).
    pub url: String,
    /// The status that counts as up (redirects are not followed).
    pub expect_status: u16,
    /// A substring the body must contain (the first 64 KiB are read).
    pub body_contains: Option<String>,
    /// `Host` header, and TLS server name (SNI and certificate name), when
    /// the URL's host is not the name the service answers to.
    pub host_header: Option<String>,
    /// Slower answers (headers, and body when `body_contains` is set) count
    /// as down; below the check's timeout.
    pub max_latency: Option<Duration>,
}

impl HttpCheck {
    /// A GET of `url` expecting 200 and nothing else.
    pub fn get(url: impl Into<String>) -> Self {
        HttpCheck {
            url: url.into(),
            expect_status: 200,
            body_contains: None,
            host_header: None,
            max_latency: None,
        }
    }
}

/// A TCP connect.
#[derive(Debug, Clone, PartialEq)]
pub struct TcpCheck {
    /// `host:port` (`[v6]:port` for IPv6).
    pub address: String,
}

/// DNS record types a DNS check can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DnsRecordType {
    /// IPv4 address.
    #[default]
    A,
    /// IPv6 address.
    Aaaa,
    /// Alias.
    Cname,
    /// Text.
    Txt,
    /// Mail exchanger.
    Mx,
    /// Name server.
    Ns,
}

/// A DNS query that the given server must answer.
#[derive(Debug, Clone, PartialEq)]
pub struct DnsCheck {
    /// The server to ask (UDP, then TCP on truncation).
    pub server: SocketAddr,
    /// The name to query, fully qualified (trailing dot).
    pub name: String,
    /// The record type to ask for.
    pub record_type: DnsRecordType,
    /// Record data one answer must equal (e.g. `192.0.2.10`, or a name with
    /// its trailing dot); `None`: any non-empty answer is up.
    pub expect: Option<String>,
}

/// The gRPC health checking protocol over plaintext HTTP/2.
#[derive(Debug, Clone, PartialEq)]
pub struct GrpcCheck {
    /// `host:port`.
    pub address: String,
    /// The service to ask about; `None` asks about the whole server (`""`).
    pub service: Option<String>,
}

/// A MySQL or MariaDB member.
#[derive(Debug, Clone, PartialEq)]
pub struct MySqlCheck {
    /// Which server: the SQL differs (`SHOW SLAVE STATUS` columns, `super_read_only`).
    pub flavor: switchyard_replication::Flavor,
    /// `host:port`.
    pub address: String,
    /// Login (needs `REPLICATION CLIENT`/`SLAVE MONITOR` to read replica status).
    pub user: String,
    /// Password.
    pub password: String,
    /// `Some(true)`: must be read-only (a replica); `Some(false)`: must be
    /// writable (the primary); `None`: either. The role moves with
    /// failovers, so `None` is the usual choice.
    pub expect_read_only: Option<bool>,
    /// When the member replicates: lag above this is down; `None`: any lag.
    pub max_lag: Option<Duration>,
}

/// A MongoDB replica set member.
#[derive(Debug, Clone, PartialEq)]
pub struct MongoDbCheck {
    /// `host:port`.
    pub address: String,
    /// Login (`None`: no authentication).
    pub user: Option<String>,
    /// Password.
    pub password: Option<String>,
    /// A secondary further behind the primary than this is down.
    pub max_lag: Option<Duration>,
}

/// Slots for an average load of `load` busy slots: 25 % more (phases
/// bunch up) plus 8.
pub fn recommended_slots(load: f64) -> usize {
    (load.max(0.0) * 1.25).ceil() as usize + 8
}

/// Splits `host:port` (or `[v6]:port`) with the replication crate's rules;
/// the error names the address.
pub(crate) fn split_host_port(address: &str) -> Result<(String, u16), String> {
    crate::replication::spec::split_address(address)
        .ok_or_else(|| format!("address {address:?} is not host:port"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(name: &str, interval_ms: u64, timeout_ms: u64) -> CheckSpec {
        CheckSpec {
            name: name.into(),
            interval: Duration::from_millis(interval_ms),
            timeout: Duration::from_millis(timeout_ms),
            kind: CheckKind::Http(HttpCheck::get("http://127.0.0.1:80/")),
        }
    }

    fn plan(checks: Vec<CheckSpec>) -> ProbePlan {
        ProbePlan::new(
            "p1",
            "a",
            vec![TargetPlan {
                id: "svc:api@a".into(),
                region: "a".into(),
                checks,
            }],
        )
    }

    #[test]
    fn a_sound_plan_validates() {
        assert_eq!(plan(vec![http("http", 1000, 500)]).validate(), Ok(()));
    }

    #[test]
    fn timeout_must_be_below_interval() {
        let err = plan(vec![http("http", 1000, 1000)]).validate().unwrap_err();
        assert!(err.to_string().contains("below interval"), "{err}");
    }

    #[test]
    fn duplicate_check_names_are_refused() {
        let err = plan(vec![http("x", 1000, 500), http("x", 2000, 500)])
            .validate()
            .unwrap_err();
        assert!(matches!(err, PlanError::DuplicateCheck { .. }), "{err}");
    }

    #[test]
    fn bad_addresses_are_refused() {
        let mut p = plan(vec![http("tcp", 1000, 500)]);
        p.targets[0].checks[0].kind = CheckKind::Tcp(TcpCheck {
            address: "no-port".into(),
        });
        assert!(p.validate().is_err());
        assert_eq!(split_host_port("[::1]:80"), Ok(("::1".to_string(), 80u16)));
    }

    #[test]
    fn worst_case_concurrency_sums_timeout_over_interval() {
        let checks = (0..10).map(|i| http(&format!("c{i}"), 1000, 500)).collect();
        let p = plan(checks);
        assert_eq!(p.worst_case_concurrency(), 5);
        assert_eq!(p.recommended_concurrency(), 15);
        assert_eq!(p.max_concurrency, 15);
    }

    #[test]
    fn max_latency_must_be_below_timeout() {
        let mut c = http("http", 1000, 500);
        if let CheckKind::Http(h) = &mut c.kind {
            h.max_latency = Some(Duration::from_millis(600));
        }
        assert!(plan(vec![c]).validate().is_err());
    }
}
