//! One controller's bounded report buffer: the scheduler pushes without
//! ever waiting, the controller's stream pops. When full, the oldest report
//! is dropped and counted: the newest say most about the present.

use std::collections::VecDeque;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::metrics::ControllerMetrics;
use crate::proto::ProbeReport;
use crate::stats::ControllerStats;

/// A bounded FIFO of reports for one controller.
#[derive(Debug)]
pub struct ReportBuffer {
    queue: Mutex<VecDeque<ProbeReport>>,
    capacity: usize,
    ready: Notify,
    closed: AtomicBool,
    stats: Arc<ControllerStats>,
    metrics: ControllerMetrics,
}

impl ReportBuffer {
    pub(crate) fn new(
        capacity: usize,
        stats: Arc<ControllerStats>,
        metrics: ControllerMetrics,
    ) -> Self {
        ReportBuffer {
            queue: Mutex::new(VecDeque::with_capacity(capacity.min(4096))),
            capacity: capacity.max(1),
            ready: Notify::new(),
            closed: AtomicBool::new(false),
            stats,
            metrics,
        }
    }

    /// Adds a report, dropping the oldest when full. Never waits.
    pub fn push(&self, report: ProbeReport) {
        let dropped = {
            let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            let dropped = if q.len() >= self.capacity {
                q.pop_front().is_some()
            } else {
                false
            };
            q.push_back(report);
            dropped
        };
        if dropped {
            self.stats.dropped.fetch_add(1, Relaxed);
            self.metrics.dropped.increment(1);
        }
        self.ready.notify_one();
    }

    /// The oldest report, waiting for one; `None` once closed and empty.
    pub async fn pop(&self) -> Option<ProbeReport> {
        loop {
            if let Some(r) = self
                .queue
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop_front()
            {
                return Some(r);
            }
            if self.closed.load(Acquire) {
                return None;
            }
            // notify_one keeps a permit when no one waits, so a push between
            // the check above and this await is not missed.
            self.ready.notified().await;
        }
    }

    /// No more pushes: [`ReportBuffer::pop`] drains what is left, then ends.
    pub fn close(&self) {
        self.closed.store(true, Release);
        self.ready.notify_one();
    }

    /// Closed, and nothing left to send.
    pub fn is_finished(&self) -> bool {
        self.closed.load(Acquire) && self.is_empty()
    }

    /// Reports waiting.
    pub fn len(&self) -> usize {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Nothing waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn buffer(cap: usize) -> ReportBuffer {
        ReportBuffer::new(
            cap,
            Arc::new(ControllerStats::new("http://c")),
            ControllerMetrics::new("http://c"),
        )
    }

    fn report(seq: u64) -> ProbeReport {
        ProbeReport {
            sequence: seq,
            cluster: String::new(),
            ..ProbeReport::default()
        }
    }

    #[tokio::test]
    async fn a_full_buffer_drops_the_oldest_and_counts() {
        let b = buffer(3);
        for seq in 1..=5 {
            b.push(report(seq));
        }
        assert_eq!(b.stats.dropped.load(Relaxed), 2);
        b.close();
        let mut got = vec![];
        while let Some(r) = b.pop().await {
            got.push(r.sequence);
        }
        assert_eq!(got, vec![3, 4, 5]);
        assert!(b.is_finished());
    }

    #[tokio::test]
    async fn pop_waits_for_a_push() {
        let b = Arc::new(buffer(3));
        let waiter = tokio::spawn({
            let b = b.clone();
            async move { b.pop().await.map(|r| r.sequence) }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        b.push(report(7));
        let got = tokio::time::timeout(Duration::from_secs(1), waiter).await;
        assert!(matches!(got, Ok(Ok(Some(7)))), "{got:?}");
    }

    #[tokio::test]
    async fn close_wakes_a_waiting_pop() {
        let b = Arc::new(buffer(3));
        let waiter = tokio::spawn({
            let b = b.clone();
            async move { b.pop().await.is_none() }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        b.close();
        let got = tokio::time::timeout(Duration::from_secs(1), waiter).await;
        assert!(matches!(got, Ok(Ok(true))), "{got:?}");
    }
}
