//! What an adapter is built from: members, credentials and the rules of
//! promotion, as plain data, so that this crate never depends on the
//! controller's config types (the controller converts its own).

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Whether a member may become primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Promotion {
    /// Chosen before neutral members when equally up to date and in an
    /// equally good region.
    Prefer,
    /// Eligible.
    #[default]
    Neutral,
    /// Never promoted automatically (a backup or analytics replica); only a
    /// forced failover naming it promotes it.
    MustNot,
}

impl fmt::Display for Promotion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Promotion::Prefer => "prefer",
            Promotion::Neutral => "neutral",
            Promotion::MustNot => "must_not",
        })
    }
}

/// A user name and password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// User name (not secret).
    pub user: String,
    /// Password (never printed by `Debug`).
    pub password: String,
}

impl Credentials {
    /// Convenience constructor.
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            user: user.into(),
            password: password.into(),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// One server of a replica set, as the controller's config describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberSpec {
    /// Unique id within the database (what reports and the CLI name).
    pub id: String,
    /// The region it runs in.
    pub region: String,
    /// `host:port` the controller connects to (`[v6]:port` for IPv6).
    pub address: String,
    /// `host:port` the *other members* use to replicate from it, when it
    /// differs from `address` (e.g. a private name); defaults to `address`.
    /// Also how a replica's configured source is matched to a member.
    #[serde(default)]
    pub replication_address: Option<String>,
    /// Administrative login the controller uses on this member.
    pub credentials: Credentials,
    /// Whether it may become primary.
    #[serde(default)]
    pub promotion: Promotion,
    /// Its region's priority: lower is preferred (the controller's region
    /// `priority`).
    #[serde(default)]
    pub region_priority: u32,
}

impl MemberSpec {
    /// Builds a neutral member in a region of priority 0; adjust the public
    /// fields for the rest.
    pub fn new(
        id: impl Into<String>,
        region: impl Into<String>,
        address: impl Into<String>,
        credentials: Credentials,
    ) -> Self {
        Self {
            id: id.into(),
            region: region.into(),
            address: address.into(),
            replication_address: None,
            credentials,
            promotion: Promotion::Neutral,
            region_priority: 0,
        }
    }

    /// The address other members replicate from.
    pub fn source_address(&self) -> &str {
        self.replication_address.as_deref().unwrap_or(&self.address)
    }
}

/// The rules of promotion for one database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rules {
    /// A replica further behind than this is not promoted automatically
    /// (a forced failover ignores it). Lag unknown to the server (e.g. the
    /// primary is gone) does not exclude a replica: its relay log is applied
    /// before promotion, bounded by `catch_up_timeout`.
    pub max_lag: Duration,
    /// How long a failover waits for the candidate to apply what it has
    /// received before giving up and changing nothing.
    pub catch_up_timeout: Duration,
    /// Regions the controller considers down: their members are ranked after
    /// every member of a healthy region, never chosen while one qualifies.
    #[serde(default)]
    pub down_regions: BTreeSet<String>,
    /// MongoDB only: allow a forced reconfig when the majority is lost, which
    /// may roll back majority-committed writes. Off by default.
    #[serde(default)]
    pub allow_data_loss: bool,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            max_lag: Duration::from_secs(10),
            catch_up_timeout: Duration::from_secs(30),
            down_regions: BTreeSet::new(),
            allow_data_loss: false,
        }
    }
}

/// Splits `host:port` (`[v6]:port` for IPv6) for drivers that want them apart.
pub fn split_address(address: &str) -> Option<(String, u16)> {
    let (host, port) = address.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() || host.contains(char::is_whitespace) {
        return None;
    }
    Some((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_split_into_host_and_port() {
        assert_eq!(
            split_address("127.0.0.1:3306"),
            Some(("127.0.0.1".into(), 3306))
        );
        assert_eq!(split_address("[::1]:3307"), Some(("::1".into(), 3307)));
        assert_eq!(
            split_address("db-1.example:3306"),
            Some(("db-1.example".into(), 3306))
        );
        assert_eq!(split_address("db-1.example"), None);
        assert_eq!(split_address(":3306"), None);
        assert_eq!(split_address("h:99999"), None);
    }

    #[test]
    fn passwords_never_show_in_debug() {
        let c = Credentials::new("switchyard", "hunter2");
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
