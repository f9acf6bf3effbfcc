//! `[journal]`: how much of the action journal and its history etcd keeps.

use std::time::Duration;

use serde::Deserialize;

use crate::config::duration;

/// Every field has a default, so `[journal]` may be omitted entirely.
/// Without a bound, every action adds keys forever: etcd's database grows
/// towards its quota (2 GiB by default), when it refuses every write,
/// the leader's included.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Journal {
    /// Finished intents kept in the journal (newest first) for `status`;
    /// older ones are deleted, their record living on in history
    /// (default 100).
    pub keep_finished: u32,
    /// History events kept, newest first (default 10000).
    pub history_max_events: u32,
    /// History events older than this are deleted (default "30d").
    #[serde(deserialize_with = "duration::deserialize")]
    pub history_max_age: Duration,
}

impl Default for Journal {
    fn default() -> Self {
        Journal {
            keep_finished: 100,
            history_max_events: 10_000,
            history_max_age: Duration::from_secs(30 * 24 * 3600),
        }
    }
}
