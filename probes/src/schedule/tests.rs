//! Scheduler tests on tokio's paused clock: checks that take exactly as
//! long as the test says, so grid times and delays are exact.

use std::sync::Mutex;

use super::*;
use crate::checks::CheckFuture;

/// Sleeps `takes`, then passes; `None` hangs forever.
#[derive(Debug)]
struct Scripted {
    takes: Option<Duration>,
}

impl Check for Scripted {
    fn run(&self) -> CheckFuture<'_> {
        let takes = self.takes;
        Box::pin(async move {
            match takes {
                Some(d) => {
                    tokio::time::sleep(d).await;
                    Ok(())
                }
                None => std::future::pending().await,
            }
        })
    }
}

#[derive(Debug, Clone)]
struct Seen {
    target: String,
    scheduled: Instant,
    started: Instant,
    latency: Duration,
    failure: Option<FailureKind>,
}

#[derive(Default)]
struct Recorder(Mutex<Vec<Seen>>);

impl RunSink for Recorder {
    fn record(&self, run: RunRecord<'_>) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(Seen {
            target: run.target.to_string(),
            scheduled: run.scheduled,
            started: run.started,
            latency: run.latency,
            failure: run.result.as_ref().err().map(|f| f.kind),
        });
    }
}

impl Recorder {
    fn of(&self, target: &str) -> Vec<Seen> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|s| s.target == target)
            .cloned()
            .collect()
    }
}

fn job(target: &str, interval_ms: u64, timeout_ms: u64, phase_ms: u64, takes: Option<u64>) -> Job {
    Job {
        target: target.into(),
        check_name: "c".into(),
        interval: Duration::from_millis(interval_ms),
        timeout: Duration::from_millis(timeout_ms),
        phase: Duration::from_millis(phase_ms),
        check: Arc::new(Scripted {
            takes: takes.map(Duration::from_millis),
        }),
    }
}

fn start(jobs: Vec<Job>, slots: usize) -> (Scheduler, Arc<Recorder>, Arc<ProbeStats>, Instant) {
    let handles: Vec<_> = jobs
        .into_iter()
        .map(|j| {
            let s = Arc::new(CheckStats::new(&j.target, &j.check_name));
            (j, Arc::new(CheckStatsHandle::new(s, "test")))
        })
        .collect();
    let stats = Arc::new(ProbeStats::new(
        handles.iter().map(|(_, h)| h.stats.clone()).collect(),
        vec![],
    ));
    let rec = Arc::new(Recorder::default());
    let t0 = Instant::now();
    let s = Scheduler::start(handles, slots, rec.clone(), stats.clone(), t0);
    (s, rec, stats, t0)
}

#[tokio::test(start_paused = true)]
async fn ticks_stay_on_the_grid_however_long_runs_take() {
    let (s, rec, _, t0) = start(vec![job("slow", 100, 90, 7, Some(60))], 4);
    tokio::time::sleep(Duration::from_millis(1_050)).await;
    let runs = rec.of("slow");
    assert_eq!(runs.len(), 10, "{runs:?}");
    for (k, r) in runs.iter().enumerate() {
        let grid = t0 + Duration::from_millis(7 + 100 * k as u64);
        assert_eq!(r.scheduled, grid, "run {k} is off the grid");
        assert_eq!(r.started, grid, "run {k} started late");
        assert_eq!(r.latency, Duration::from_millis(60));
    }
    s.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_hung_check_is_cut_at_its_timeout_and_keeps_its_grid() {
    let (s, rec, stats, t0) = start(vec![job("hung", 100, 40, 0, None)], 4);
    tokio::time::sleep(Duration::from_millis(550)).await;
    let runs = rec.of("hung");
    // Runs at 0, 100, …, 500 ms, each cut at +40 ms.
    assert_eq!(runs.len(), 6);
    for (k, r) in runs.iter().enumerate() {
        assert_eq!(r.started, t0 + Duration::from_millis(100 * k as u64));
        assert_eq!(r.latency, Duration::from_millis(40));
        assert_eq!(r.failure, Some(FailureKind::Timeout));
    }
    assert_eq!(stats.check("hung", "c").map(|c| c.failures), Some(6));
    s.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn hung_targets_never_delay_other_checks_with_the_recommended_slots() {
    // Fifty hung checks hold a slot half of every interval; fifty healthy
    // ones take 5 ms. Slots as the plan recommends for that load.
    let mut jobs: Vec<Job> = (0..50)
        .map(|i| job(&format!("hung{i}"), 100, 50, i * 2, None))
        .collect();
    jobs.extend((0..50).map(|i| job(&format!("ok{i}"), 100, 50, i * 2 + 1, Some(5))));
    let load: f64 = jobs
        .iter()
        .map(|j| j.timeout.as_secs_f64() / j.interval.as_secs_f64())
        .sum();
    let slots = crate::plan::recommended_slots(load);
    assert!(
        slots < jobs.len(),
        "the test must not give every check a slot"
    );
    let (s, rec, stats, _) = start(jobs, slots);
    tokio::time::sleep(Duration::from_millis(5_200)).await;
    for i in 0..50 {
        let runs = rec.of(&format!("ok{i}"));
        assert!(runs.len() >= 51, "ok{i} ran {} times", runs.len());
        assert!(
            runs.iter().all(|r| r.started == r.scheduled),
            "ok{i} waited"
        );
        let hung = rec.of(&format!("hung{i}"));
        assert!(hung.len() >= 51, "hung{i} ran {} times", hung.len());
        assert!(hung.iter().all(|r| r.failure == Some(FailureKind::Timeout)));
    }
    assert_eq!(stats.max_scheduling_delay(), Duration::ZERO);
    s.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn too_few_slots_show_as_scheduling_delay() {
    // One slot: the hung check holds it 80 ms of every 100, so the healthy
    // check due 10 ms after the hung one waits 70 ms each time.
    let (s, rec, stats, _) = start(
        vec![
            job("hung", 100, 80, 0, None),
            job("ok", 100, 80, 10, Some(1)),
        ],
        1,
    );
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let ok = rec.of("ok");
    assert!(!ok.is_empty());
    for r in &ok {
        assert_eq!(r.started - r.scheduled, Duration::from_millis(70));
    }
    assert_eq!(
        stats.check("ok", "c").map(|c| c.max_scheduling_delay),
        Some(Duration::from_millis(70))
    );
    s.shutdown().await;
}

#[test]
fn next_tick_skips_only_whole_missed_intervals() {
    let t0 = Instant::now();
    let i = Duration::from_millis(100);
    assert_eq!(
        next_tick(t0, i, t0 + Duration::from_millis(30)),
        (t0 + i, 0)
    );
    // 50 ms late for the next tick: still run it, late.
    assert_eq!(
        next_tick(t0, i, t0 + Duration::from_millis(150)),
        (t0 + i, 0)
    );
    // 250 ms past the next tick: skip two, keep the grid.
    assert_eq!(
        next_tick(t0, i, t0 + Duration::from_millis(350)),
        (t0 + Duration::from_millis(300), 2)
    );
}
