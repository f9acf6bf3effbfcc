//! A traffic backend that keeps weights in a JSON file and appends every
//! mutating call to a journal of calls next to it (`<file>.calls`, one JSON
//! line each).
//!
//! It is a real backend for dry runs and the lab (the weights a controller
//! would set, visible with `cat`), and the stand-in the controller tests
//! count calls with across processes. Writes go through a temp file and a
//! rename, so a reader never sees half a file, and an advisory lock
//! serialises writers in different processes.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::{RecordChange, TrafficBackend, TrafficError, Weights, validate};

/// Weights in a JSON file: `{ "record": { "region": weight } }`.
#[derive(Debug, Clone)]
pub struct FileBackend {
    path: PathBuf,
}

impl FileBackend {
    /// A backend over `path` (created on the first apply).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileBackend { path: path.into() }
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
    async fn read(&self, record: &str) -> Result<Weights, TrafficError> {
        Ok(self.load()?.remove(record).unwrap_or_default())
    }

    async fn apply(&self, changes: &[RecordChange]) -> Result<(), TrafficError> {
        validate(changes)?;
        let path = self.path.clone();
        let changes = changes.to_vec();
        tokio::task::spawn_blocking(move || apply_locked(&path, &changes))
            .await
            .map_err(|e| TrafficError::Unavailable(e.to_string()))?
    }
}

fn apply_locked(path: &Path, changes: &[RecordChange]) -> Result<(), TrafficError> {
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
    lock.lock().map_err(|e| io(&lock_path, e))?;
    let mut all = load(path)?;
    for c in changes {
        all.insert(c.record.clone(), c.weights.clone());
    }
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
    std::fs::rename(&tmp, path).map_err(|e| io(path, e))?;
    let calls = calls_path(path);
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&calls)
        .map_err(|e| io(&calls, e))?;
    let line = serde_json::to_string(changes).map_err(|e| TrafficError::Refused(e.to_string()))?;
    writeln!(f, "{line}").map_err(|e| io(&calls, e))?;
    f.sync_all().map_err(|e| io(&calls, e))?;
    drop(lock);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(b.read("api.").await.expect("read")["a"], 100);
        b.apply(&[change("api.", &[("a", 50), ("b", 50)])])
            .await
            .expect("apply");
        let calls = std::fs::read_to_string(b.calls_path()).expect("calls");
        assert_eq!(calls.lines().count(), 2);
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
        assert_eq!(b.read("api.").await.expect("read")["a"], 1);
        assert!(b.read("web.").await.expect("read").is_empty());
    }
}
