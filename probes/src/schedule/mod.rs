//! The scheduler: every check on its own interval grid, bounded by its
//! timeout, with at most `max_concurrency` running at once.
//!
//! Each check is one task that sleeps until its next grid time
//! (`start + phase + k × interval`, never "interval after the last run
//! finished", so ticks do not drift), takes a slot of the shared semaphore,
//! runs under its timeout, frees the slot and hands the result to a
//! [`RunSink`], which must not block. A hung target therefore holds one slot
//! for at most its timeout, and all hung targets together hold
//! `Σ timeout/interval` slots on average; sized with a margin above that
//! ([`crate::plan::recommended_slots`]), healthy checks find a free slot
//! even while many targets hang. Any wait shows as *scheduling delay*
//! (actual start − grid time), measured on every run.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::checks::{Check, Failure, FailureKind};
use crate::metrics::CheckMetrics;
use crate::stats::{CheckStats, ProbeStats};

pub mod phase;

/// One check of one target, ready to schedule.
#[derive(Debug, Clone)]
pub struct Job {
    /// Target id, as reports carry it.
    pub target: Arc<str>,
    /// Check name, as reports carry it.
    pub check_name: Arc<str>,
    /// Time between grid points.
    pub interval: Duration,
    /// Time one run may take.
    pub timeout: Duration,
    /// Offset of the grid from the scheduler's start, below `interval`.
    pub phase: Duration,
    /// What runs.
    pub check: Arc<dyn Check>,
}

/// One finished run.
#[derive(Debug, Clone)]
pub struct RunRecord<'a> {
    /// Target id.
    pub target: &'a Arc<str>,
    /// Check name.
    pub check: &'a Arc<str>,
    /// Up, or down with the reason.
    pub result: &'a Result<(), Failure>,
    /// How long the run took (up to its timeout).
    pub latency: Duration,
    /// The grid time it was due.
    pub scheduled: Instant,
    /// When it actually started (after waiting for a slot).
    pub started: Instant,
}

/// Where finished runs go. Called on the check's task: it must return at
/// once (push to a buffer), never wait for the network.
pub trait RunSink: Send + Sync {
    /// Takes one finished run.
    fn record(&self, run: RunRecord<'_>);
}

/// Runs jobs until dropped or shut down.
#[derive(Debug)]
pub struct Scheduler {
    tasks: JoinSet<()>,
}

impl Scheduler {
    /// Starts one task per job on the current runtime; grids start at `start`.
    pub fn start(
        jobs: Vec<(Job, Arc<CheckStatsHandle>)>,
        max_concurrency: usize,
        sink: Arc<dyn RunSink>,
        stats: Arc<ProbeStats>,
        start: Instant,
    ) -> Self {
        let slots = Arc::new(Semaphore::new(max_concurrency.max(1)));
        let mut tasks = JoinSet::new();
        for (job, handle) in jobs {
            tasks.spawn(run_job(
                job,
                handle,
                slots.clone(),
                sink.clone(),
                stats.clone(),
                start,
            ));
        }
        Scheduler { tasks }
    }

    /// Stops every check at once (runs in flight are dropped, unreported).
    pub async fn shutdown(mut self) {
        self.tasks.shutdown().await;
    }

    /// Waits until a task ends; they only end by panicking, so this
    /// returns the panic message (a bug: the probe should stop).
    pub async fn failed(&mut self) -> Option<String> {
        match self.tasks.join_next().await {
            Some(Err(e)) if e.is_panic() => Some(format!("check task panicked: {e}")),
            Some(Err(e)) => Some(format!("check task ended: {e}")),
            Some(Ok(())) => Some("check task ended".to_string()),
            None => None,
        }
    }
}

/// A check's own counters and metric handles.
#[derive(Debug)]
pub struct CheckStatsHandle {
    pub(crate) stats: Arc<CheckStats>,
    pub(crate) metrics: CheckMetrics,
}

impl CheckStatsHandle {
    pub(crate) fn new(stats: Arc<CheckStats>, kind: &'static str) -> Self {
        CheckStatsHandle {
            stats,
            metrics: CheckMetrics::new(kind),
        }
    }
}

async fn run_job(
    job: Job,
    handle: Arc<CheckStatsHandle>,
    slots: Arc<Semaphore>,
    sink: Arc<dyn RunSink>,
    stats: Arc<ProbeStats>,
    start: Instant,
) {
    let mut scheduled = start + job.phase;
    loop {
        tokio::time::sleep_until(scheduled).await;
        // The semaphore is never closed; an error would mean it was, and
        // then there is nothing left to schedule.
        let Ok(slot) = slots.acquire().await else {
            return;
        };
        let started = Instant::now();
        let delay = started.saturating_duration_since(scheduled);
        stats.record_delay(delay);
        handle
            .stats
            .max_delay_us
            .fetch_max(delay.as_micros() as u64, Relaxed);
        handle.stats.runs.fetch_add(1, Relaxed);
        handle.metrics.delayed(delay.as_secs_f64());

        let result = match tokio::time::timeout(job.timeout, job.check.run()).await {
            Ok(r) => r,
            Err(_) => Err(Failure::new(
                FailureKind::Timeout,
                format!("no answer within {:?}", job.timeout),
            )),
        };
        let latency = started.elapsed();
        drop(slot);

        if result.is_err() {
            handle.stats.failures.fetch_add(1, Relaxed);
        }
        handle
            .metrics
            .ran(result.as_ref().err().map(|f| f.kind), latency.as_secs_f64());
        sink.record(RunRecord {
            target: &job.target,
            check: &job.check_name,
            result: &result,
            latency,
            scheduled,
            started,
        });

        let (next, missed) = next_tick(scheduled, job.interval, Instant::now());
        if missed > 0 {
            handle.stats.missed.fetch_add(missed, Relaxed);
            handle.metrics.missed(missed);
        }
        scheduled = next;
    }
}

/// The next grid time after `scheduled`, and how many grid times were
/// skipped because they are a whole interval or more in the past. A tick
/// less than an interval late still runs (late, and its delay is measured).
pub fn next_tick(scheduled: Instant, interval: Duration, now: Instant) -> (Instant, u64) {
    let next = scheduled + interval;
    if now <= next {
        return (next, 0);
    }
    let behind = now.duration_since(next).as_nanos() / interval.as_nanos().max(1);
    let skipped = behind.min(u128::from(u32::MAX)) as u32;
    (next + interval * skipped, u64::from(skipped))
}

#[cfg(test)]
mod tests;
