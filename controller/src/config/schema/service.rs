//! Services: a weighted DNS record, one endpoint per region, and the checks
//! that probes run against each endpoint.

use std::time::Duration;

use serde::Deserialize;

use crate::config::duration;

/// A service reached through one DNS name whose weights Switchyard moves.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Unique name, used in etcd keys, metrics and the CLI.
    pub name: String,
    /// The DNS record, fully qualified with a trailing dot: `api.example.com.`.
    pub record: String,
    /// DNS TTL in seconds: how long clients may keep using an evacuated region.
    pub ttl: u32,
    /// Record type of `endpoints[].value` (default `A`).
    #[serde(rename = "type", default)]
    pub record_type: RecordType,
    /// How the embedded DNS server answers a query (default `"one"`).
    #[serde(default)]
    pub answer: AnswerMode,
    /// At most one endpoint per region (`[[services.endpoints]]`).
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    /// What probes check on every endpoint (`[[services.checks]]`).
    #[serde(default, deserialize_with = "super::de::tagged_list")]
    pub checks: Vec<Check>,
}

/// DNS record type of a service's weighted records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum RecordType {
    /// IPv4 address records.
    #[default]
    A,
    /// IPv6 address records.
    #[serde(rename = "AAAA")]
    Aaaa,
    /// Alias to another host name.
    #[serde(rename = "CNAME")]
    Cname,
}

impl RecordType {
    /// The type as written in the config and in DNS.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordType::A => "A",
            RecordType::Aaaa => "AAAA",
            RecordType::Cname => "CNAME",
        }
    }
}

/// How an authoritative answer carries a weighted record's regions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AnswerMode {
    /// One record per answer, picked by weight (weight 0 never, unless all
    /// are 0): clients cannot undo the weighting by reordering, as they do
    /// with several records (k8gb #1943). What Route 53 does.
    #[default]
    One,
    /// Every record of weight > 0, in weighted random order: clients that
    /// try the next address on failure get a fallback. Embedded DNS only.
    All,
}

/// A service's presence in one region.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// The declared region this endpoint serves from.
    pub region: String,
    /// The record data published for this region: an IP for A/AAAA, a host
    /// name for CNAME.
    pub value: String,
    /// `host:port` that probes check (may differ from `value`, e.g. a
    /// health port or a private address).
    pub target: String,
}

/// One check, tagged by `kind`; each kind has its own fields so a field
/// that does not apply to a kind is an error, not ignored.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Check {
    /// HTTP GET on the endpoint's target.
    Http(HttpCheck),
    /// HTTPS GET on the endpoint's target.
    Https(HttpCheck),
    /// A TCP connect to the endpoint's target.
    Tcp(TcpCheck),
    /// A DNS query answered by the endpoint (or `server`).
    Dns(DnsCheck),
    /// The gRPC health checking protocol.
    Grpc(GrpcCheck),
}

impl Check {
    /// The `kind` as written in the config.
    pub fn kind(&self) -> &'static str {
        match self {
            Check::Http(_) => "http",
            Check::Https(_) => "https",
            Check::Tcp(_) => "tcp",
            Check::Dns(_) => "dns",
            Check::Grpc(_) => "grpc",
        }
    }

    /// How often the check runs.
    pub fn interval(&self) -> Duration {
        match self {
            Check::Http(c) | Check::Https(c) => c.interval,
            Check::Tcp(c) => c.interval,
            Check::Dns(c) => c.interval,
            Check::Grpc(c) => c.interval,
        }
    }

    /// How long one attempt may take before it counts as a failure.
    pub fn timeout(&self) -> Duration {
        match self {
            Check::Http(c) | Check::Https(c) => c.timeout,
            Check::Tcp(c) => c.timeout,
            Check::Dns(c) => c.timeout,
            Check::Grpc(c) => c.timeout,
        }
    }
}

/// `kind = "http"` or `"https"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpCheck {
    /// How often the check runs.
    #[serde(deserialize_with = "duration::deserialize")]
    pub interval: Duration,
    /// Time allowed per attempt; must be below `interval`.
    #[serde(deserialize_with = "duration::deserialize")]
    pub timeout: Duration,
    /// Request path (default `/`).
    #[serde(default = "default_path")]
    pub path: String,
    /// Status that counts as up (default 200).
    #[serde(default = "default_status")]
    pub expect_status: u16,
    /// A substring the body must contain.
    #[serde(default)]
    pub body_contains: Option<String>,
    /// `Host` header (and TLS server name) to send, when the target is an address.
    #[serde(default)]
    pub host_header: Option<String>,
    /// Slower answers than this count as down (must be below `timeout`).
    #[serde(default, deserialize_with = "duration::deserialize_option")]
    pub max_latency: Option<Duration>,
}

fn default_path() -> String {
    "/".to_owned()
}

fn default_status() -> u16 {
    200
}

/// `kind = "tcp"`: up when a connection opens.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpCheck {
    /// How often the check runs.
    #[serde(deserialize_with = "duration::deserialize")]
    pub interval: Duration,
    /// Time allowed per attempt; must be below `interval`.
    #[serde(deserialize_with = "duration::deserialize")]
    pub timeout: Duration,
}

/// `kind = "dns"`: a query that must be answered.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsCheck {
    /// How often the check runs.
    #[serde(deserialize_with = "duration::deserialize")]
    pub interval: Duration,
    /// Time allowed per attempt; must be below `interval`.
    #[serde(deserialize_with = "duration::deserialize")]
    pub timeout: Duration,
    /// The name to query (fully qualified, trailing dot).
    pub name: String,
    /// `host:port` of the server to ask; default: the endpoint's target.
    #[serde(default)]
    pub server: Option<String>,
    /// Record data the answer must contain; absent: any answer is up.
    #[serde(default)]
    pub expect: Option<String>,
}

/// `kind = "grpc"`: `grpc.health.v1.Health/Check`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcCheck {
    /// How often the check runs.
    #[serde(deserialize_with = "duration::deserialize")]
    pub interval: Duration,
    /// Time allowed per attempt; must be below `interval`.
    #[serde(deserialize_with = "duration::deserialize")]
    pub timeout: Duration,
    /// Service name to ask about; absent: the whole server.
    #[serde(default)]
    pub service: Option<String>,
}
