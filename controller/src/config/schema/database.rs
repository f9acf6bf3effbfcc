//! Databases: replica sets whose primary Switchyard may move between regions.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use crate::config::duration;

/// A replicated database (`[[databases]]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Database {
    /// Unique name, used in etcd keys and `switchyard failover --database`.
    pub name: String,
    /// Engine, which decides how promotion and fencing are done.
    pub kind: DatabaseKind,
    /// A DNS name (trailing dot) that always points at the primary.
    #[serde(default)]
    pub writer_record: Option<String>,
    /// A replica further behind than this is never promoted.
    #[serde(deserialize_with = "duration::deserialize")]
    pub max_lag: Duration,
    /// MongoDB only: allow a forced reconfig that may lose writes when the
    /// majority is gone (default false).
    #[serde(default)]
    pub allow_data_loss: bool,
    /// MariaDB: arm a dead-man switch on the primary (default false):
    /// a server-side event that turns it read-only unless its region's
    /// controller renewed a deadline, so a primary whose region has no live
    /// controller fences itself before anyone can promote around it. Needs
    /// `event_scheduler = ON` on every member and `EVENT`, `CREATE` on the
    /// controller's account; turned off, the controller removes the event.
    #[serde(default)]
    pub dead_man: bool,
    /// Default credential set (a `[credentials.<name>]`) for members.
    #[serde(default)]
    pub credentials: Option<String>,
    /// Credential set replicas use to connect to their source (`REPLICATION
    /// SLAVE`) when the controller repoints them; absent: each member's own
    /// credentials.
    #[serde(default)]
    pub replication_credentials: Option<String>,
    /// The servers of the replica set (`[[databases.members]]`).
    #[serde(default)]
    pub members: Vec<Member>,
    /// How members are checked (`[databases.check]`, optional).
    #[serde(default)]
    pub check: DatabaseCheck,
}

/// Database engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseKind {
    /// MySQL with GTID replication.
    Mysql,
    /// MariaDB with GTID replication.
    Mariadb,
    /// A MongoDB replica set.
    Mongodb,
}

impl DatabaseKind {
    /// The kind as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            DatabaseKind::Mysql => "mysql",
            DatabaseKind::Mariadb => "mariadb",
            DatabaseKind::Mongodb => "mongodb",
        }
    }
}

impl fmt::Display for DatabaseKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One server of a database.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    /// Unique id within the database.
    pub id: String,
    /// The declared region it runs in.
    pub region: String,
    /// `host:port` the controller connects to.
    pub address: String,
    /// Credential set overriding the database's default.
    #[serde(default)]
    pub credentials: Option<String>,
    /// Whether it may become primary (default `neutral`).
    #[serde(default)]
    pub promotion: Promotion,
}

/// A member's promotion rule: the replication crate's own type, so the config
/// and candidate selection cannot disagree on what a rule means.
pub use switchyard_probes::replication::Promotion;

/// How often members are checked (`[databases.check]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseCheck {
    /// How often (default 5s).
    #[serde(deserialize_with = "duration::deserialize")]
    pub interval: Duration,
    /// Time allowed per attempt (default 2s); must be below `interval`.
    #[serde(deserialize_with = "duration::deserialize")]
    pub timeout: Duration,
}

impl Default for DatabaseCheck {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
        }
    }
}
