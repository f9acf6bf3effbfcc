//! What the rejoin watcher decides, with no I/O: which findings about a
//! database's members are news this leadership (each is reported once),
//! what a report says, and when the accounts that bypass `read_only`
//! differ from what etcd holds. The driver ([`super::watch`]) reads etcd
//! and the members, performs what this book asks and tells it what was
//! done.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use switchyard_probes::replication::Snapshot;

use crate::executor::{HistoryEvent, history_id};

/// Member → the accounts that bypass its `read_only`.
pub type Bypass = BTreeMap<String, Vec<String>>;

/// Something to report about a member that is not the recorded primary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The database.
    pub database: String,
    /// The member.
    pub member: String,
    /// What kind: `errant` (transactions the primary lacks) or `writable`
    /// (a second writable member).
    pub what: &'static str,
    /// What an operator reads.
    pub text: String,
}

/// Every finding about `db`'s reachable members other than its recorded
/// `primary`, as `snapshot` shows them.
pub fn findings(db: &str, primary: &str, snapshot: &Snapshot) -> Vec<Finding> {
    let mut out = Vec::new();
    for m in snapshot
        .members
        .iter()
        .filter(|m| m.reachable && m.id != primary)
    {
        let finding = |what, text| Finding {
            database: db.to_string(),
            member: m.id.clone(),
            what,
            text,
        };
        if !m.errant.is_empty() {
            out.push(finding(
                "errant",
                format!(
                    "member {} has transactions the primary {} lacks: {}; it stays fenced and out \
                     of replication until an operator decides (apply them to the primary, or \
                     discard them and rebuild the member)",
                    m.id,
                    primary,
                    m.errant.join(",")
                ),
            ));
        }
        if m.read_only == Some(false) {
            out.push(finding(
                "writable",
                format!(
                    "member {} is writable but the recorded primary is {}: two writable \
                     members; fence the wrong one by hand",
                    m.id, primary
                ),
            ));
        }
    }
    out
}

/// The history event that reports `f`, by controller `by` leading the
/// database's epoch `epoch`, at `now`, and its id.
pub fn report(f: &Finding, by: &str, epoch: u64, now: DateTime<Utc>) -> (String, HistoryEvent) {
    let event = HistoryEvent {
        at: now,
        by: by.to_string(),
        what: format!("rejoin {}/{}: {}", f.database, f.member, f.text),
        reasons: vec![format!(
            "seen reachable again by the leader (epoch {epoch})"
        )],
        journal_id: None,
        steps: Vec::new(),
    };
    // The kind is in the id: one member can be errant and writable at
    // once, and both reports go out in the same millisecond.
    let hid = history_id(
        now,
        &format!("rejoin-{}-{}-{}", f.database, f.member, f.what),
    );
    (hid, event)
}

/// What the watcher knows during one leadership.
#[derive(Debug, Default)]
pub struct Book {
    /// Findings reported: (database, member, what).
    reported: BTreeSet<(String, String, &'static str)>,
    /// Database → its bypass as etcd holds it (read once, then as
    /// written).
    bypass: BTreeMap<String, Bypass>,
}

impl Book {
    /// The findings of `snapshot` not reported yet this leadership.
    pub fn news(&self, db: &str, primary: &str, snapshot: &Snapshot) -> Vec<Finding> {
        findings(db, primary, snapshot)
            .into_iter()
            .filter(|f| {
                !self
                    .reported
                    .contains(&(f.database.clone(), f.member.clone(), f.what))
            })
            .collect()
    }

    /// `f` was reported: it is no news again this leadership.
    pub fn reported(&mut self, f: &Finding) {
        self.reported
            .insert((f.database.clone(), f.member.clone(), f.what));
    }

    /// Whether `db`'s bypass as etcd holds it is known (it is read once a
    /// leadership, before the first comparison).
    pub fn knows_bypass(&self, db: &str) -> bool {
        self.bypass.contains_key(db)
    }

    /// `db`'s bypass as etcd holds it (read, or just written).
    pub fn stored_bypass(&mut self, db: &str, value: Bypass) {
        self.bypass.insert(db.to_string(), value);
    }

    /// The bypass to write for `db` after `snapshot`, when it differs from
    /// what etcd holds: a change, not every look, is an etcd write.
    /// Members that could not be read keep their last entry.
    pub fn bypass_change(&self, db: &str, snapshot: &Snapshot) -> Option<Bypass> {
        let stored = self.bypass.get(db);
        let mut now = stored.cloned().unwrap_or_default();
        for m in snapshot.members.iter().filter(|m| m.reachable) {
            if m.read_only_bypass.is_empty() {
                now.remove(&m.id);
            } else {
                now.insert(m.id.clone(), m.read_only_bypass.clone());
            }
        }
        (stored != Some(&now)).then_some(now)
    }
}

#[cfg(test)]
#[path = "book_tests.rs"]
mod tests;
