//! The DNS backend that carries traffic weights, tagged by `backend`.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// `[dns]`: where weighted records are published.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "backend", rename_all = "lowercase")]
pub enum Dns {
    /// Amazon Route 53 weighted records.
    Route53(Route53),
    /// Switchyard's own authoritative server, run by every controller.
    Embedded(Embedded),
    /// Weights kept in a local JSON file: for dry runs, the lab and tests.
    File(FileDns),
}

impl Dns {
    /// The backend name as written in the config.
    pub fn backend(&self) -> &'static str {
        match self {
            Dns::Route53(_) => "route53",
            Dns::Embedded(_) => "embedded",
            Dns::File(_) => "file",
        }
    }
}

/// `backend = "route53"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route53 {
    /// The hosted zone holding the service records, e.g. `Z0123456789ABC`.
    pub hosted_zone_id: String,
    /// API endpoint override URL (a test server such as moto); absent: AWS.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// AWS region for signing (default `us-east-1`; Route 53 is global).
    #[serde(default = "default_aws_region")]
    pub aws_region: String,
    /// Client-side rate limit of API calls (default 10).
    #[serde(default = "default_rate")]
    pub max_requests_per_second: u32,
}

fn default_aws_region() -> String {
    "us-east-1".to_owned()
}

fn default_rate() -> u32 {
    10
}

/// `backend = "embedded"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Embedded {
    /// Address every controller's DNS server listens on (UDP and TCP).
    #[serde(deserialize_with = "super::de::socket_addr")]
    pub listen: SocketAddr,
    /// The zone served (trailing dot); every service record must be in it.
    pub zone: String,
}

/// `backend = "file"`: no DNS at all, the weights a controller would set are
/// written to a JSON file (and each change to `<path>.calls`), so a dry run
/// or a test can read them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDns {
    /// The weights file; created on the first change.
    pub path: PathBuf,
}
