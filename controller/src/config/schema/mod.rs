//! The config schema, v1: what a `switchyard.toml` may say.
//!
//! Every struct denies unknown keys, so a typo is an error with the list of
//! valid keys instead of a silently ignored setting. Types here only describe
//! shape and defaults; cross-field rules live in `config::validate`.

mod database;
mod de;
mod dns;
mod journal;
mod operator;
mod policy;
mod service;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

pub use database::{Database, DatabaseCheck, DatabaseKind, Member, Promotion};
pub use dns::{Dns, Embedded, FileDns, Route53};
pub use journal::Journal;
pub use operator::{Operator, Role};
pub use policy::{Mode, Policy};
pub use service::{
    AnswerMode, Check, DnsCheck, Endpoint, GrpcCheck, HttpCheck, RecordType, Service, TcpCheck,
};

use super::duration;
use super::secret::Secret;

/// A whole Switchyard deployment: one file describes every region, and every
/// controller and probe reads the same file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Cluster name; namespaces every etcd key (`/switchyard/<cluster>/...`).
    pub cluster: String,
    /// Where controllers elect a leader and keep state.
    pub etcd: Etcd,
    /// One controller per region (`[[controllers]]`).
    #[serde(default)]
    pub controllers: Vec<Controller>,
    /// The regions traffic and primaries move between (`[[regions]]`).
    #[serde(default)]
    pub regions: Vec<Region>,
    /// Vantages in a third place that vote but host nothing
    /// (`[[witnesses]]`), so a two-region deployment keeps a quorum when a
    /// whole region, its probe included, is gone.
    #[serde(default)]
    pub witnesses: Vec<Witness>,
    /// Weighted DNS records with per-region endpoints (`[[services]]`).
    #[serde(default)]
    pub services: Vec<Service>,
    /// Replicated databases whose primary may move (`[[databases]]`).
    #[serde(default)]
    pub databases: Vec<Database>,
    /// Named credential sets (`[credentials.<name>]`) that databases refer to.
    #[serde(default)]
    pub credentials: BTreeMap<String, Credentials>,
    /// The DNS backend that carries traffic weights.
    #[serde(deserialize_with = "de::tagged")]
    pub dns: Dns,
    /// Thresholds and guard rails of the decision engine.
    #[serde(default)]
    pub policy: Policy,
    /// How much of the journal and history etcd keeps.
    #[serde(default)]
    pub journal: Journal,
    /// TLS on the controllers' gRPC port (probe ingest, peer pings):
    /// absent means plaintext.
    #[serde(default)]
    pub tls: Option<GrpcTls>,
    /// Who may use the operator API (`[[operators]]`); none: the API
    /// refuses every call.
    #[serde(default)]
    pub operators: Vec<Operator>,
}

/// Mutual TLS on the controllers' gRPC port. Every controller serves with
/// `cert_file`/`key_file` and accepts only clients whose certificate
/// `ca_file` signed; probes and peer pings present the same kind of
/// certificate and check the controller's against `ca_file`. A probe's
/// certificate names the vantages it may report for with URI SANs
/// `switchyard://<cluster>/vantage/<region>`: a report for any other vantage
/// is refused (a vantage is a region or a witness). A controller's
/// certificate must name the address it registers, the one it bound (an IP
/// SAN for an IP address). The files are checked every 2 s: a renewed set
/// that loads is used from the next handshake on, one that does not is
/// refused and the set in use stays (no restart). There is no mixed mode:
/// every process gets `[tls]` at once.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcTls {
    /// The CA that signs every controller's and probe's certificate.
    pub ca_file: PathBuf,
    /// This host's certificate (PEM, leaf first).
    pub cert_file: PathBuf,
    /// Its private key (PEM).
    pub key_file: PathBuf,
}

/// The URI SAN a probe certificate carries for each vantage it may report
/// for.
pub fn vantage_uri(cluster: &str, vantage: &str) -> String {
    format!("switchyard://{cluster}/vantage/{vantage}")
}

impl Config {
    /// The region called `name`, if declared.
    pub fn region(&self, name: &str) -> Option<&Region> {
        self.regions.iter().find(|r| r.name == name)
    }

    /// The witness called `name`, if declared.
    pub fn witness(&self, name: &str) -> Option<&Witness> {
        self.witnesses.iter().find(|w| w.name == name)
    }

    /// Whether a probe may run as `name`: a declared region or witness.
    pub fn is_vantage(&self, name: &str) -> bool {
        self.region(name).is_some() || self.witness(name).is_some()
    }

    /// How many vantages vote: one probe per region and per witness.
    pub fn vantage_count(&self) -> usize {
        self.regions.len() + self.witnesses.len()
    }

    /// The number of fresh vantages that must agree before a target is Down:
    /// `policy.quorum`, or by default a majority of the vantages (regions
    /// and witnesses; at least 2 when there are 2 or more).
    pub fn quorum(&self) -> usize {
        self.policy.quorum_for(self.vantage_count())
    }

    /// Every check probes run, as (where it is configured, interval,
    /// timeout): each service's checks and each database's member check.
    pub fn check_timings(&self) -> Vec<(String, Duration, Duration)> {
        let mut out = Vec::new();
        for (i, s) in self.services.iter().enumerate() {
            for (j, c) in s.checks.iter().enumerate() {
                out.push((
                    format!("services[{i}].checks[{j}]"),
                    c.interval(),
                    c.timeout(),
                ));
            }
        }
        for (i, d) in self.databases.iter().enumerate() {
            let default = if d.check == DatabaseCheck::default() {
                " (the default)"
            } else {
                ""
            };
            out.push((
                format!("databases[{i}].check{default}"),
                d.check.interval,
                d.check.timeout,
            ));
        }
        out
    }

    /// The longest interval of any check, if there is a check.
    pub fn longest_check_interval(&self) -> Option<Duration> {
        self.check_timings().into_iter().map(|(_, i, _)| i).max()
    }

    /// The staleness in force: `policy.stale_after`, or by default three
    /// times the longest check interval (ARCHITECTURE §4: a vantage with no
    /// report for 3 intervals is stale), so a vantage may miss two reports
    /// in a row before it stops voting and no check's reports are ever
    /// further apart than it (3s when there is no check at all).
    pub fn stale_after(&self) -> Duration {
        self.policy.stale_after.unwrap_or_else(|| {
            self.longest_check_interval()
                .map_or(Duration::from_secs(3), |i| i * STALE_INTERVALS)
        })
    }

    /// The credential set a member logs in with: its own override, else its
    /// database's default. `None` only for a config that failed validation.
    pub fn member_credentials(&self, db: &Database, member: &Member) -> Option<&Credentials> {
        let name = member.credentials.as_ref().or(db.credentials.as_ref())?;
        self.credentials.get(name)
    }
}

/// The etcd cluster the controllers share.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Etcd {
    /// Client URLs, e.g. `https://etcd-1.internal:2379`; at least one.
    pub endpoints: Vec<String>,
    /// TLS settings; absent means plain connections. Required for
    /// `https://` endpoints (its `ca_file` is what etcd's certificates are
    /// checked against).
    #[serde(default)]
    pub tls: Option<EtcdTls>,
    /// Name of the `[credentials.<name>]` set to log in to etcd with, when
    /// etcd's authentication is enabled (give that user a role limited to
    /// `/switchyard/<cluster>/`).
    #[serde(default)]
    pub credentials: Option<String>,
    /// TTL of the leader lease (default 5s): a dead leader is replaced
    /// within about this long, so keep it short (2–5s).
    #[serde(
        default = "default_lease_ttl",
        deserialize_with = "duration::deserialize"
    )]
    pub lease_ttl: Duration,
    /// TTL of each database's primary lease (default twice `lease_ttl`, at
    /// least 4s; whole seconds, at least 2s):
    /// the majority side promotes around an unreachable primary only after
    /// etcd has ended it, and an isolated controller fences its primaries
    /// before it can end (starting half a TTL after its last renewal).
    /// Longer means slower failovers of a cut-off region; shorter means
    /// less room for the isolated side to fence in time, and a busy host
    /// whose renewals stall for half a TTL (or that loses etcd for 3/16 of
    /// it while a peer reaches etcd) fences a healthy primary. 2s
    /// brings region loss to a writable database under 3s (docs/BENCHMARKS.md,
    /// `rto`); keep the default unless the hosts are dedicated and quiet.
    #[serde(default, deserialize_with = "duration::deserialize_option")]
    pub primary_lease_ttl: Option<Duration>,
}

impl Etcd {
    /// The primary lease TTL in force: the configured one, or twice the
    /// leader lease's but at least 4s (an isolated controller needs the
    /// time to notice and fence).
    pub fn primary_lease_ttl(&self) -> Duration {
        self.primary_lease_ttl
            .unwrap_or((self.lease_ttl * 2).max(Duration::from_secs(4)))
    }
}

/// How many of the longest check interval the default `stale_after` is.
pub const STALE_INTERVALS: u32 = 3;

fn default_lease_ttl() -> Duration {
    Duration::from_secs(5)
}

/// TLS to etcd. `config check` checks only that paths are given, not that
/// the files exist: the checking machine need not hold them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdTls {
    /// CA bundle that signed the etcd server certificates.
    pub ca_file: PathBuf,
    /// Client certificate for mutual TLS (with `key_file`).
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// Client key for mutual TLS (with `cert_file`).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

/// One controller process; each region should have one so it can fence its
/// own primaries when it is cut off.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Controller {
    /// Unique id, used in leader election and history.
    pub id: String,
    /// The declared region it runs in.
    pub region: String,
    /// gRPC listen address (probe ingest and operator API).
    #[serde(deserialize_with = "de::socket_addr")]
    pub listen: SocketAddr,
    /// Prometheus `/metrics` listen address; absent disables it.
    #[serde(default, deserialize_with = "de::socket_addr_option")]
    pub metrics_listen: Option<SocketAddr>,
}

/// A region: a failure domain that traffic and primaries move away from.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Region {
    /// Unique name, e.g. `us-east`.
    pub name: String,
    /// Base traffic weight (0–255) when every region is healthy; a Down
    /// region's share is spread over the rest in proportion to this.
    #[serde(deserialize_with = "de::weight")]
    pub weight: u8,
    /// Lower is preferred, both for promotion and for taking traffic back.
    pub priority: u32,
}

/// A witness (`[[witnesses]]`): a vantage in a third failure domain. Its
/// probe (`switchyard probe --region <name>`) checks every target and votes
/// like a region's, but it gets no traffic, no weight, no database members,
/// and needs no controller. With two regions it is what lets a quorum of 2
/// still be met when one region is lost together with its probe.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Witness {
    /// Unique name among regions and witnesses, e.g. `witness-us-central`.
    pub name: String,
}

/// A named login (`[credentials.<name>]`) for database members.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// User name (not secret).
    pub user: String,
    /// Where the password is kept; see [`Secret`].
    pub password: Secret,
}
