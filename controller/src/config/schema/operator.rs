//! `[[operators]]`: who may use the operator API, and with which role.

use std::path::PathBuf;

use serde::Deserialize;

/// What an operator may do; each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read: status, plan, history.
    Viewer,
    /// Also act: pause, resume, drain, undrain, failback, failover,
    /// switchover, cancel.
    Operator,
    /// Also override the safety rails: `failover --force`.
    Admin,
}

impl Role {
    /// The role as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

/// One identity of the operator API, authenticated by a bearer token. The
/// config holds the token's SHA-256 (`token_sha256`, hex) or names a file
/// holding the token itself (`token_file`, read at start); never the token.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Operator {
    /// Who this is: recorded in history with every change it makes.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// SHA-256 of the token, 64 hex digits (`printf %s TOKEN | sha256sum`).
    #[serde(default)]
    pub token_sha256: Option<String>,
    /// A file holding the token (one line).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}
