//! The local fencer: what an isolated controller does to its own region.
//!
//! It fences every member of its region that may take writes (read-only on,
//! `super_read_only` where it exists, user sessions killed — see
//! [`ReplicaSet::fence`]) and appends what it did to a local JSON-lines file
//! first, because etcd is unreachable at that moment: the records reach
//! history when etcd answers again ([`LocalFencer::pending_records`], then
//! [`LocalFencer::acknowledge`]). The file survives a controller restart.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use switchyard_probes::replication::{ReplicaSet, Snapshot};
use tokio::sync::Mutex;

/// What went wrong keeping the local record (fencing failures themselves
/// are records, not errors).
#[derive(Debug, thiserror::Error)]
pub enum FenceLogError {
    /// The record file could not be read or written.
    #[error("fence record file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A line of the record file is not a record.
    #[error("fence record file {path}, line {line}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The decoder's words.
        reason: String,
    },
}

/// The outcome of fencing one member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum FenceOutcome {
    /// Read-only on and sessions killed.
    Fenced,
    /// The fence failed; the member may still be writable.
    Failed {
        /// The adapter's words.
        error: String,
    },
}

/// What a fence was made under: the database's recorded primary and epoch
/// as this controller last read them, and the primary lease it held for
/// that primary. The promotion gate counts a fence only for that primary,
/// epoch and lease ([`crate::fence::gate::judge_record`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FencedUnder {
    /// The recorded primary.
    pub primary: String,
    /// The database epoch (`state/databases/<db>`).
    pub epoch: u64,
    /// The etcd lease id of the primary lease this controller held for it;
    /// `None` when it held none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_id: Option<i64>,
}

/// One fence an isolated controller did (or tried), for history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FenceRecord {
    /// When it was done.
    pub at: DateTime<Utc>,
    /// The database.
    pub database: String,
    /// The member fenced.
    pub member: String,
    /// What came of it.
    pub result: FenceOutcome,
    /// Why the controller fenced (its isolation assessment at the time).
    #[serde(default)]
    pub reason: String,
    /// The primary, epoch and lease it was made under; `None` when this
    /// controller knew none (then it never opens the promotion gate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub under: Option<FencedUnder>,
}

/// The controller's local record of fences, shared by every database's
/// fencer and the task that writes records to history: appends and
/// rewrites are serialised, so none is lost between them.
#[derive(Debug)]
pub struct FenceLog {
    path: PathBuf,
    lock: Mutex<()>,
}

impl FenceLog {
    /// The log kept in `path` (created on the first record).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            lock: Mutex::new(()),
        }
    }

    /// Appends records (each line synced).
    pub async fn append(&self, records: &[FenceRecord]) -> Result<(), FenceLogError> {
        let _guard = self.lock.lock().await;
        for r in records {
            append(&self.path, r)?;
        }
        Ok(())
    }

    /// Every record not yet acknowledged as written to history.
    pub async fn pending(&self) -> Result<Vec<FenceRecord>, FenceLogError> {
        let _guard = self.lock.lock().await;
        read_all(&self.path)
    }

    /// Removes `written` once they are in history; records added since are
    /// kept.
    pub async fn acknowledge(&self, written: &[FenceRecord]) -> Result<(), FenceLogError> {
        let _guard = self.lock.lock().await;
        let mut left = read_all(&self.path)?;
        for w in written {
            if let Some(i) = left.iter().position(|r| r == w) {
                left.remove(i);
            }
        }
        rewrite(&self.path, &left)
    }
}

/// Fences one database's members in this controller's region.
pub struct LocalFencer {
    database: String,
    members: BTreeSet<String>,
    set: Arc<dyn ReplicaSet>,
    log: Arc<FenceLog>,
    // One fence of this database at a time.
    lock: Mutex<()>,
}

impl std::fmt::Debug for LocalFencer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalFencer")
            .field("database", &self.database)
            .field("members", &self.members)
            .field("log", &self.log.path)
            .finish()
    }
}

impl LocalFencer {
    /// A fencer for `database`, allowed to touch only `members` (the ids of
    /// its members in this controller's region), recording to `record_path`
    /// (created on first fence; may be shared by every database's fencer of
    /// the controller, as appends are whole lines).
    pub fn new(
        database: impl Into<String>,
        members: impl IntoIterator<Item = String>,
        set: Arc<dyn ReplicaSet>,
        record_path: impl Into<PathBuf>,
    ) -> Self {
        Self::with_log(database, members, set, Arc::new(FenceLog::new(record_path)))
    }

    /// Like [`new`](Self::new), recording to a log shared with other
    /// fencers and the history writer.
    pub fn with_log(
        database: impl Into<String>,
        members: impl IntoIterator<Item = String>,
        set: Arc<dyn ReplicaSet>,
        log: Arc<FenceLog>,
    ) -> Self {
        Self {
            database: database.into(),
            members: members.into_iter().collect(),
            set,
            log,
            lock: Mutex::new(()),
        }
    }

    /// The database it fences.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// Fences every member of this region that may take writes: reachable
    /// with `read_only` off or unknown (a primary, or a misconfigured
    /// replica), or — with `include_unreachable` — unreachable from here
    /// (it may be writable; the attempt is recorded either way). Members
    /// already read-only are left alone, so fencing twice does nothing the
    /// second time. Every target is fenced at once, and all are fenced
    /// before anything is recorded: a failing record file never stops a
    /// fence. Each record says what it was made `under`. Returns the
    /// records, and the record file's error if appending failed.
    pub async fn fence_region(
        &self,
        now: DateTime<Utc>,
        reason: &str,
        under: Option<&FencedUnder>,
    ) -> Result<Vec<FenceRecord>, FenceLogError> {
        let (records, logged) = self.fence_targets(now, reason, true, under).await;
        logged.map(|()| records)
    }

    /// [`fence_region`](Self::fence_region) with the choice of targets and
    /// the record error returned beside the records.
    pub async fn fence_targets(
        &self,
        now: DateTime<Utc>,
        reason: &str,
        include_unreachable: bool,
        under: Option<&FencedUnder>,
    ) -> (Vec<FenceRecord>, Result<(), FenceLogError>) {
        let _guard = self.lock.lock().await;
        let targets = match self.set.observe().await {
            Ok(snapshot) => self.targets(&snapshot, include_unreachable),
            // Nothing could be read: try every local member.
            Err(_) => self.members.iter().cloned().collect(),
        };
        let fences = targets.iter().map(|member| async move {
            let result = match self.set.fence(member).await {
                Ok(()) => FenceOutcome::Fenced,
                Err(e) => FenceOutcome::Failed {
                    error: e.to_string(),
                },
            };
            (member.clone(), result)
        });
        let done = futures_util::future::join_all(fences).await;
        let records: Vec<FenceRecord> = done
            .into_iter()
            .map(|(member, result)| {
                let outcome = if result == FenceOutcome::Fenced {
                    "fenced"
                } else {
                    "failed"
                };
                metrics::counter!("switchyard_local_fences_total", "outcome" => outcome)
                    .increment(1);
                tracing::warn!(database = %self.database, %member, ?result, "isolated: fenced local member");
                FenceRecord {
                    at: now,
                    database: self.database.clone(),
                    member,
                    result,
                    reason: reason.to_string(),
                    under: under.cloned(),
                }
            })
            .collect();
        let logged = self.log.append(&records).await;
        (records, logged)
    }

    /// Every record in the file not yet acknowledged as written to history
    /// (all databases sharing the file).
    pub async fn pending_records(&self) -> Result<Vec<FenceRecord>, FenceLogError> {
        self.log.pending().await
    }

    /// Removes `written` from the file once they are in history. Records
    /// added since the caller read them are kept.
    pub async fn acknowledge(&self, written: &[FenceRecord]) -> Result<(), FenceLogError> {
        self.log.acknowledge(written).await
    }

    fn targets(&self, snapshot: &Snapshot, include_unreachable: bool) -> Vec<String> {
        snapshot
            .members
            .iter()
            .filter(|m| self.members.contains(&m.id))
            .filter(|m| {
                if m.reachable {
                    m.read_only != Some(true)
                } else {
                    include_unreachable
                }
            })
            .map(|m| m.id.clone())
            .collect()
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> FenceLogError + '_ {
    move |source| FenceLogError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn line_of(record: &FenceRecord) -> String {
    // A record of strings and a timestamp always serialises.
    let mut line = serde_json::to_string(record).unwrap_or_default();
    line.push('\n');
    line
}

fn append(path: &Path, record: &FenceRecord) -> Result<(), FenceLogError> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io_err(path))?;
    f.write_all(line_of(record).as_bytes())
        .map_err(io_err(path))?;
    f.sync_data().map_err(io_err(path))
}

fn read_all(path: &Path) -> Result<Vec<FenceRecord>, FenceLogError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(path)(e)),
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| FenceLogError::Corrupt {
                path: path.to_path_buf(),
                line: i + 1,
                reason: e.to_string(),
            })
        })
        .collect()
}

/// Replaces the file atomically (write a sibling, fsync, rename).
fn rewrite(path: &Path, records: &[FenceRecord]) -> Result<(), FenceLogError> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
        for r in records {
            f.write_all(line_of(r).as_bytes()).map_err(io_err(&tmp))?;
        }
        f.sync_data().map_err(io_err(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io_err(path))
}
