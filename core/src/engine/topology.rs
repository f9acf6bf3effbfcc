//! What exists: regions, traffic records with one endpoint per region, and
//! databases with their members — the engine's own view, independent of the
//! config schema.

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

/// The identity of one probed thing (a service endpoint or a database member),
/// e.g. `svc:api@us-east` or `db:orders/orders-2`. Probes report against it and
/// the engine keys verdicts by it; every target belongs to exactly one region.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TargetId(pub String);

impl TargetId {
    /// The conventional id of `service`'s endpoint in `region`, so probes and
    /// the controller name it the same way.
    pub fn service(service: &str, region: &str) -> Self {
        Self(format!("svc:{service}@{region}"))
    }

    /// The conventional id of database member `member` of `database`.
    pub fn db_member(database: &str, member: &str) -> Self {
        Self(format!("db:{database}/{member}"))
    }

    /// The id as text, for messages and borrowed look-ups.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for TargetId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TargetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for TargetId {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

/// Everything the engine may route traffic to or fail over, keyed by name so
/// iteration (and therefore every decision) is deterministic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    /// Region name → its traffic weight and priority.
    pub regions: BTreeMap<String, Region>,
    /// DNS record name → its endpoints, one per region.
    pub records: BTreeMap<String, Record>,
    /// Database name → its members and current primary.
    pub databases: BTreeMap<String, Database>,
    /// Vantages that are not regions: probes in a third place that vote on
    /// every target but host nothing, so that two regions can still make a
    /// quorum when one of them is lost with its probe. Every region is a
    /// vantage too; reports from any other name are refused at ingest.
    #[serde(default)]
    pub witnesses: BTreeSet<String>,
}

impl Topology {
    /// Every name a probe report may come from: the regions and the
    /// witnesses.
    pub fn vantages(&self) -> impl Iterator<Item = &str> {
        self.regions
            .keys()
            .chain(self.witnesses.iter())
            .map(String::as_str)
    }
}

/// One region's place in traffic decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Region {
    /// Default share of traffic (records carry their own per-region weight).
    pub weight: u32,
    /// Order for taking traffic and breaking ties: lower is preferred.
    pub priority: u32,
}

/// A weighted DNS record served from several regions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Region name → the endpoint serving this record there.
    pub endpoints: BTreeMap<String, Endpoint>,
}

/// One region's endpoint of a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// The probed target behind this endpoint.
    pub target: TargetId,
    /// This record's weight in this region when every region is healthy.
    pub weight: u32,
}

/// A replicated database: where its members live and which one is primary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Database {
    /// Member id → where it runs and how it is probed.
    pub members: BTreeMap<String, Member>,
    /// The member id of the current primary.
    pub primary: String,
}

/// One database member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The region it runs in.
    pub region: String,
    /// The probed target for this member.
    pub target: TargetId,
}
