//! A traffic backend that keeps weights in a JSON file and appends every
//! mutating call to a journal of calls next to it (`<file>.calls`, one JSON
//! line each).
//!
//! It is a real backend for dry runs and the lab (the weights a controller
//! would set, visible with `cat`), and the stand-in the controller tests
//! count calls with across processes. Writes go through a temp file and a
//! rename, so a reader never sees half a file, and an advisory lock
//! serialises writers in different processes. An apply whose caller stopped
//! waiting (its step's budget ran out) while the lock was held elsewhere
//! gives up without writing: a timed-out step never lands later.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::records::RecordBook;
use super::stored::{merge, stored_state};
use super::{Applied, RecordState, TrafficBackend, TrafficChange, TrafficError, Weights, validate};

/// Weights in a JSON file: `{ "record": { "region": weight } }` (a writer
/// record is kept as `{ "member id": 1 }`).
#[derive(Debug, Clone)]
pub struct FileBackend {
    path: PathBuf,
    book: Option<RecordBook>,
}

impl FileBackend {
    /// A backend over `path` (created on the first apply) that accepts any
    /// record and region and knows no record data.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileBackend {
            path: path.into(),
            book: None,
        }
    }

    /// A backend over `path` that, like the real ones, refuses records,
    /// regions and members `book` does not declare, reads back their record
    /// data, and can move writer records.
    pub fn with_records(path: impl Into<PathBuf>, book: RecordBook) -> Self {
        FileBackend {
            path: path.into(),
            book: Some(book),
        }
    }

    /// The journal of calls: one JSON line per `apply`.
    pub fn calls_path(&self) -> PathBuf {
        calls_path(&self.path)
    }

    fn load(&self) -> Result<BTreeMap<String, Weights>, TrafficError> {
        load(&self.path)
    }
}

/// The calls journal of a weights file.
pub fn calls_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".calls");
    PathBuf::from(p)
}

fn load(path: &Path) -> Result<BTreeMap<String, Weights>, TrafficError> {
    match std::fs::read(path) {
        Ok(bytes) if bytes.is_empty() => Ok(BTreeMap::new()),
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| TrafficError::Unavailable(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(TrafficError::Unavailable(format!(
            "{}: {e}",
            path.display()
        ))),
    }
}

fn io(path: &Path, e: std::io::Error) -> TrafficError {
    TrafficError::Unavailable(format!("{}: {e}", path.display()))
}

#[async_trait::async_trait]
impl TrafficBackend for FileBackend {
    async fn read(&self, record: &str) -> Result<RecordState, TrafficError> {
        let stored = self.load()?.remove(record).unwrap_or_default();
        Ok(stored_state(self.book.as_ref(), record, stored))
    }

    async fn apply_change(&self, change: &TrafficChange) -> Result<Applied, TrafficError> {
        validate(change)?;
        if let Some(book) = &self.book {
            book.check(change)?;
        }
        let path = self.path.clone();
        let change = change.clone();
        // The blocking call cannot be cancelled; when this future is
        // dropped (the step's budget ran out) the flag tells it to give up
        // before it writes anything, so a timed-out apply never lands later.
        let abandoned = Arc::new(AtomicBool::new(false));
        let _abandon = AbandonOnDrop(abandoned.clone());
        tokio::task::spawn_blocking(move || apply_locked(&path, &change, &abandoned))
            .await
            .map_err(|e| TrafficError::Unavailable(e.to_string()))?
    }
}

/// Sets its flag when dropped: the caller no longer waits for the result.
struct AbandonOnDrop(Arc<AtomicBool>);

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// How often a waiting apply tries the lock again.
const LOCK_RETRY: std::time::Duration = std::time::Duration::from_millis(10);

fn apply_locked(
    path: &Path,
    change: &TrafficChange,
    abandoned: &AtomicBool,
) -> Result<Applied, TrafficError> {
    let lock_path = {
        let mut p = path.as_os_str().to_owned();
        p.push(".lock");
        PathBuf::from(p)
    };
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| io(&lock_path, e))?;
    let gave_up = || {
        TrafficError::Unavailable(
            "the caller stopped waiting before the lock was free; nothing was applied".into(),
        )
    };
    loop {
        match lock.try_lock() {
            Ok(()) => break,
            Err(std::fs::TryLockError::WouldBlock) => {
                if abandoned.load(Ordering::SeqCst) {
                    return Err(gave_up());
                }
                std::thread::sleep(LOCK_RETRY);
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(&lock_path, e)),
        }
    }
    if abandoned.load(Ordering::SeqCst) {
        return Err(gave_up());
    }
    let mut all = load(path)?;
    let changed = merge(&mut all, change);
    let tmp = {
        let mut p = path.as_os_str().to_owned();
        p.push(".tmp");
        PathBuf::from(p)
    };
    let json = serde_json::to_vec_pretty(&all).map_err(|e| TrafficError::Refused(e.to_string()))?;
    {
        let mut f = File::create(&tmp).map_err(|e| io(&tmp, e))?;
        f.write_all(&json).map_err(|e| io(&tmp, e))?;
        f.sync_all().map_err(|e| io(&tmp, e))?;
    }
    // The last moment to give up: after the rename the change is made.
    if abandoned.load(Ordering::SeqCst) {
        let _ = std::fs::remove_file(&tmp);
        return Err(gave_up());
    }
    std::fs::rename(&tmp, path).map_err(|e| io(path, e))?;
    let calls = calls_path(path);
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&calls)
        .map_err(|e| io(&calls, e))?;
    let line = serde_json::to_string(change).map_err(|e| TrafficError::Refused(e.to_string()))?;
    writeln!(f, "{line}").map_err(|e| io(&calls, e))?;
    f.sync_all().map_err(|e| io(&calls, e))?;
    drop(lock);
    Ok(Applied { changed })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traffic::RecordChange;

    fn change(record: &str, w: &[(&str, u32)]) -> RecordChange {
        RecordChange {
            record: record.into(),
            weights: w.iter().map(|(r, w)| (r.to_string(), *w)).collect(),
        }
    }

    #[tokio::test]
    async fn applies_reads_back_and_journals_each_call() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = FileBackend::new(dir.path().join("w.json"));
        assert!(b.read("api.").await.expect("read").is_empty());
        b.apply(&[change("api.", &[("a", 100), ("b", 0)])])
            .await
            .expect("apply");
        assert_eq!(b.read("api.").await.expect("read").weights()["a"], 100);
        b.apply(&[change("api.", &[("a", 50), ("b", 50)])])
            .await
            .expect("apply");
        let calls = std::fs::read_to_string(b.calls_path()).expect("calls");
        assert_eq!(calls.lines().count(), 2);
    }

    /// An apply whose caller gave up while another process held the lock
    /// writes nothing when the lock is freed: a timed-out step never lands
    /// later (before the fix, each abandoned apply was written once the
    /// lock came free).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_apply_abandoned_while_waiting_for_the_lock_never_lands() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("w.json");
        let b = FileBackend::new(path.clone());
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.path().join("w.json.lock"))
            .expect("lock file");
        lock.lock().expect("lock");
        for _ in 0..3 {
            let timed_out = switchyard_host::time::timeout(
                std::time::Duration::from_millis(100),
                b.apply(&[change("api.", &[("a", 100), ("b", 0)])]),
            )
            .await;
            assert!(timed_out.is_err(), "it waits while the lock is held");
        }
        drop(lock);
        // Longer than any abandoned apply needs to notice and give up.
        switchyard_host::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(!b.calls_path().exists(), "an abandoned apply was written");
        assert!(b.read("api.").await.expect("read").is_empty());
        // The next apply goes through.
        b.apply(&[change("api.", &[("a", 100), ("b", 0)])])
            .await
            .expect("apply");
        let calls = std::fs::read_to_string(b.calls_path()).expect("calls");
        assert_eq!(calls.lines().count(), 1);
    }

    #[tokio::test]
    async fn refuses_to_zero_a_record_and_changes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = FileBackend::new(dir.path().join("w.json"));
        b.apply(&[change("api.", &[("a", 1)])])
            .await
            .expect("apply");
        let err = b
            .apply(&[change("web.", &[("a", 5)]), change("api.", &[("a", 0)])])
            .await
            .expect_err("refused");
        assert!(!err.retryable());
        assert_eq!(b.read("api.").await.expect("read").weights()["a"], 1);
        assert!(b.read("web.").await.expect("read").is_empty());
    }
}
