//! The report stream: every finished check run becomes one
//! [`ProbeReport`], numbered, and is pushed into every controller's bounded
//! buffer without waiting; one link per controller streams its buffer out
//! and reconnects on its own. A slow or dead controller fills (and drops
//! from) its own buffer only: probing and the other controllers never wait.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

use crate::clock::Clock;
use crate::proto::{Outcome, ProbeReport};
use crate::schedule::{RunRecord, RunSink};

mod backoff;
mod buffer;
pub(crate) mod stream;

pub use backoff::Backoff;
pub use buffer::ReportBuffer;

/// Turns runs into reports and fans them out to every controller's buffer.
#[derive(Debug)]
pub struct Reporter {
    probe_id: String,
    vantage: String,
    cluster: String,
    sequence: AtomicU64,
    clock: Arc<dyn Clock>,
    buffers: Vec<Arc<ReportBuffer>>,
}

impl Reporter {
    /// A reporter for this probe, feeding `buffers` (one per controller).
    pub fn new(
        probe_id: String,
        vantage: String,
        cluster: String,
        clock: Arc<dyn Clock>,
        buffers: Vec<Arc<ReportBuffer>>,
    ) -> Self {
        Reporter {
            probe_id,
            vantage,
            cluster,
            sequence: AtomicU64::new(0),
            clock,
            buffers,
        }
    }
}

impl RunSink for Reporter {
    fn record(&self, run: RunRecord<'_>) {
        let sequence = self.sequence.fetch_add(1, Relaxed) + 1;
        let (outcome, reason) = match run.result {
            Ok(()) => (Outcome::Up, String::new()),
            Err(f) => (Outcome::Down, f.to_string()),
        };
        let report = ProbeReport {
            probe_id: self.probe_id.clone(),
            vantage_region: self.vantage.clone(),
            target: run.target.to_string(),
            check: run.check.to_string(),
            outcome: outcome as i32,
            reason,
            latency_us: run.latency.as_micros().min(u128::from(u64::MAX)) as u64,
            observed_at_unix_ms: self.clock.now_unix_ms(),
            sequence,
            cluster: self.cluster.clone(),
        };
        if let Some((last, rest)) = self.buffers.split_last() {
            for b in rest {
                b.push(report.clone());
            }
            last.push(report);
        }
    }
}
