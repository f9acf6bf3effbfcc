//! A traffic backend held in memory: the simulator's DNS. It keeps the
//! same contract as the real backends (the `TrafficBackend` conformance
//! suite runs on it), applies a change whole or not at all, and can be
//! made unavailable, so a simulation can fail the DNS step and check
//! what every record's weights are after each event.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::records::RecordBook;
use super::stored::{merge, stored_state};
use super::{Applied, RecordState, TrafficBackend, TrafficChange, TrafficError, Weights, validate};

/// Weights in memory; clones share them (one "DNS provider" seen by every
/// controller of a simulation).
#[derive(Debug, Clone, Default)]
pub struct MemoryBackend {
    inner: Arc<Shared>,
    book: Option<RecordBook>,
}

#[derive(Debug, Default)]
struct Shared {
    records: Mutex<BTreeMap<String, Weights>>,
    down: AtomicBool,
    applied: AtomicU64,
    /// Counts applied changes, for whoever checks after each one.
    changes: tokio::sync::watch::Sender<u64>,
}

impl MemoryBackend {
    /// An empty backend that, like the real ones, refuses records, regions
    /// and members `book` does not declare and reads back their values.
    pub fn with_records(book: RecordBook) -> Self {
        MemoryBackend {
            inner: Arc::default(),
            book: Some(book),
        }
    }

    /// Makes every call fail as unavailable (`true`) or answer again: a
    /// provider outage.
    pub fn set_available(&self, available: bool) {
        self.inner.down.store(!available, Ordering::SeqCst);
    }

    /// Every record's stored weights now (a writer record: `1` at its
    /// member): what the simulator's invariants read.
    pub fn snapshot(&self) -> BTreeMap<String, Weights> {
        self.lock().clone()
    }

    /// The applied changes as a counter that moves on each: wait on it to
    /// check the weights after every change.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    /// How many changes were applied (whole, each counted once).
    pub fn applied(&self) -> u64 {
        self.inner.applied.load(Ordering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Weights>> {
        self.inner
            .records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn available(&self) -> Result<(), TrafficError> {
        if self.inner.down.load(Ordering::SeqCst) {
            return Err(TrafficError::Unavailable(
                "the in-memory DNS provider is down".into(),
            ));
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl TrafficBackend for MemoryBackend {
    async fn read(&self, record: &str) -> Result<RecordState, TrafficError> {
        self.available()?;
        let stored = self.lock().get(record).cloned().unwrap_or_default();
        Ok(stored_state(self.book.as_ref(), record, stored))
    }

    async fn apply_change(&self, change: &TrafficChange) -> Result<Applied, TrafficError> {
        self.available()?;
        validate(change)?;
        if let Some(book) = &self.book {
            book.check(change)?;
        }
        let changed = merge(&mut self.lock(), change);
        self.inner.applied.fetch_add(1, Ordering::SeqCst);
        self.inner.changes.send_modify(|n| *n += 1);
        Ok(Applied { changed })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traffic::RecordChange;

    /// A provider outage fails both calls and changes nothing; once back,
    /// the backend holds what it held.
    #[tokio::test]
    async fn an_outage_fails_every_call_and_loses_nothing() {
        let b = MemoryBackend::default();
        let change = RecordChange {
            record: "api.".into(),
            weights: [("a".to_string(), 100), ("b".to_string(), 0)].into(),
        };
        b.apply(std::slice::from_ref(&change)).await.expect("apply");
        b.set_available(false);
        assert!(matches!(
            b.read("api.").await,
            Err(TrafficError::Unavailable(_))
        ));
        let other = RecordChange {
            weights: [("a".to_string(), 0), ("b".to_string(), 100)].into(),
            ..change
        };
        assert!(b.apply(&[other]).await.is_err());
        b.set_available(true);
        assert_eq!(b.read("api.").await.expect("read").weights()["a"], 100);
        assert_eq!(b.applied(), 1);
    }
}
