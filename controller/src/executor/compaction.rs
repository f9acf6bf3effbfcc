//! Keeps the journal and history bounded: finished intents beyond the
//! newest `keep_finished` are deleted (their history event, written in the
//! same txn as their outcome, is the lasting record), and history keeps
//! the newest `history_max_events` events no older than `history_max_age`.
//! Pending intents and journal entries that cannot be decoded are never
//! deleted: the first are work, the second are for a person to look at.
//! History is trimmed by key range (time order), whatever its entries hold.
//!
//! What to delete is a pure function of what was read ([`plan`]); the
//! leader carries it out in fenced txns of at most [`MAX_TXN_OPS`]
//! operations, at most [`MAX_DELETES_PER_ROUND`] intents a round, so a
//! journal grown large costs a new leader a few small txns per round and
//! never delays its first action.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::journal::{JournalEntry, Status};
use super::{ExecError, Executor};
use crate::config::Journal;
use crate::store::Leadership;
use crate::store::kv::Op;
use crate::store::pages::{self, Decoded};

/// Operations per fenced txn (etcd refuses more than 128 by default; the
/// fence compare takes none of them, but keep a margin).
pub const MAX_TXN_OPS: usize = 100;
/// Finished intents deleted per round at most.
pub const MAX_DELETES_PER_ROUND: usize = 1_000;
/// History keys read per chunk to find the count cut-off (keys only: about
/// 60 bytes each, far under the message cap).
pub const MAX_HISTORY_TRIM_PER_ROUND: i64 = 20_000;
/// Chunks per round at most.
pub const MAX_HISTORY_TRIM_CHUNKS: usize = 10;

/// What a read of the journal found, and what to delete.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JournalPlan {
    /// Ids of finished intents to delete, oldest first.
    pub delete: Vec<String>,
    /// Intents still pending.
    pub pending: usize,
    /// Keys whose value could not be decoded (kept, alarmed).
    pub undecodable: Vec<String>,
}

/// Picks the finished intents beyond the newest `keep` (ids sort by term,
/// then order), at most `max` of them. Pure.
pub fn plan(journal: &Decoded<JournalEntry>, keep: usize, max: usize) -> JournalPlan {
    let mut finished: Vec<&str> = journal
        .values
        .iter()
        .filter(|(_, e)| e.status != Status::Pending)
        .map(|(id, _)| id.as_str())
        .collect();
    finished.sort_unstable();
    let excess = finished.len().saturating_sub(keep);
    JournalPlan {
        delete: finished[..excess]
            .iter()
            .take(max)
            .map(|s| s.to_string())
            .collect(),
        pending: journal
            .values
            .iter()
            .filter(|(_, e)| e.status == Status::Pending)
            .count(),
        undecodable: journal.undecodable.iter().map(|(k, _)| k.clone()).collect(),
    }
}

/// The history key suffix below which events are older than `max_age` at
/// `now` (history keys start with the event's Unix time in milliseconds,
/// zero-padded to 13 digits). Pure.
pub fn age_cutoff(now: DateTime<Utc>, max_age: Duration) -> String {
    let age = chrono::Duration::from_std(max_age).unwrap_or(chrono::Duration::MAX);
    let cutoff = now
        .checked_sub_signed(age)
        .map_or(0, |t| t.timestamp_millis().max(0));
    format!("{cutoff:013}")
}

/// What a compaction round did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Compacted {
    /// Finished intents deleted.
    pub intents: usize,
    /// Intents still pending.
    pub pending: usize,
    /// Journal keys that could not be decoded.
    pub undecodable: Vec<String>,
    /// Whether history was trimmed (by age or count).
    pub history_trimmed: bool,
}

impl Executor {
    /// One compaction round under `retention`; fenced, so a deposed leader
    /// deletes nothing.
    pub async fn compact(
        &self,
        leader: &Leadership,
        retention: &Journal,
        now: DateTime<Utc>,
    ) -> Result<Compacted, ExecError> {
        let keys = self.store.keys();
        let journal: Decoded<JournalEntry> = self.store.scan_json(&keys.journal_prefix()).await?;
        let p = plan(
            &journal,
            retention.keep_finished as usize,
            MAX_DELETES_PER_ROUND,
        );
        for chunk in p.delete.chunks(MAX_TXN_OPS) {
            let ops = chunk
                .iter()
                .map(|id| Op::delete(keys.journal(id)))
                .collect();
            self.store.fenced_txn(leader, ops).await?;
        }
        let history_trimmed = self.trim_history(leader, retention, now).await?;
        Ok(Compacted {
            intents: p.delete.len(),
            pending: p.pending,
            undecodable: p.undecodable,
            history_trimmed,
        })
    }

    /// Deletes history older than the retention age (one range delete),
    /// then the oldest events beyond the retained count, in chunks.
    async fn trim_history(
        &self,
        leader: &Leadership,
        retention: &Journal,
        now: DateTime<Utc>,
    ) -> Result<bool, ExecError> {
        let prefix = self.store.keys().history_prefix();
        // By age: everything below the cut-off key, whatever it holds.
        let cutoff = format!("{prefix}{}", age_cutoff(now, retention.history_max_age));
        let oldest = self
            .store
            .page(&prefix, None, pages::Direction::Forward, 1)
            .await?;
        let mut trimmed = oldest
            .entries
            .first()
            .is_some_and(|(k, _)| format!("{prefix}{k}") < cutoff);
        if trimmed {
            let op = Op::delete_range(prefix.clone(), cutoff);
            self.store.fenced_txn(leader, vec![op]).await?;
        }
        // By count: up to the excess-th oldest key, a bounded chunk at a
        // time (the keys of one chunk must fit one answer).
        for _ in 0..MAX_HISTORY_TRIM_CHUNKS {
            let count = self.store.count(&prefix).await?;
            let excess =
                (count - i64::from(retention.history_max_events)).min(MAX_HISTORY_TRIM_PER_ROUND);
            if excess <= 0 {
                break;
            }
            let keys = self.store.page_keys(&prefix, excess).await?;
            let Some(last) = keys.last() else { break };
            // Up to and including `last`: the first key after it.
            let end = format!("{prefix}{last}\0");
            let op = Op::delete_range(prefix.clone(), end);
            self.store.fenced_txn(leader, vec![op]).await?;
            trimmed = true;
        }
        Ok(trimmed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::journal::{ActionSpec, entry_id};

    fn entry(token: i64, seq: u64, status: Status) -> (String, JournalEntry) {
        let id = entry_id(token, seq);
        let e = JournalEntry {
            id: id.clone(),
            action: ActionSpec::Unfence {
                database: "d".into(),
                member: "m".into(),
            },
            reasons: vec![],
            status,
            created_by: "c".into(),
            created_at: DateTime::from_timestamp(0, 0).unwrap_or_default(),
            finished_by: None,
            finished_at: None,
            outcome: None,
            request: None,
            steps: vec![],
            retryable: None,
            write_unavailable_ms: None,
        };
        (id, e)
    }

    #[test]
    fn only_finished_intents_beyond_the_newest_are_deleted() {
        let journal = Decoded {
            values: vec![
                entry(1, 1, Status::Done),
                entry(1, 2, Status::Failed),
                entry(1, 3, Status::Pending),
                entry(2, 1, Status::Done),
                entry(10, 1, Status::Done),
            ],
            undecodable: vec![("000000000003-000001".into(), "bad".into())],
        };
        let cases: [(usize, usize, &[&str]); 5] = [
            (100, 1000, &[]),
            (4, 1000, &[]),
            (2, 1000, &["000000000001-000001", "000000000001-000002"]),
            (
                0,
                1000,
                &[
                    "000000000001-000001",
                    "000000000001-000002",
                    "000000000002-000001",
                    "000000000010-000001",
                ],
            ),
            (0, 1, &["000000000001-000001"]),
        ];
        for (keep, max, want) in cases {
            let p = plan(&journal, keep, max);
            assert_eq!(p.delete, want, "keep {keep} max {max}");
            assert_eq!(p.pending, 1);
            assert_eq!(p.undecodable, ["000000000003-000001"]);
        }
    }

    #[test]
    fn the_age_cutoff_is_a_history_key_prefix() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        assert_eq!(age_cutoff(now, Duration::from_secs(1_000)), "1699999000000");
        // Older than time itself: nothing is cut.
        assert_eq!(age_cutoff(now, Duration::MAX), "0000000000000");
        // Keys compare as text, in time order.
        let hid = crate::executor::history_id(now, "x");
        assert!(hid.as_str() >= age_cutoff(now, Duration::from_secs(1)).as_str());
    }
}
