//! A client that writes like an application during a switchover and
//! records every acknowledged commit. Also compiled into the benchmark.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use switchyard_tests::wait::wait_for;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::common::{PATIENCE, app_conn};

/// What the writer saw.
#[derive(Debug, Default, Clone)]
pub struct Writes {
    /// Ids whose INSERT was acknowledged (committed).
    pub acked: Vec<u64>,
    /// Attempts that failed.
    pub failures: u64,
    /// The longest time between two acknowledged writes.
    pub longest_gap: Duration,
    /// Ports written to, in order of first use.
    pub targets: Vec<u16>,
}

/// A client that inserts rows continuously, as the application would, and
/// finds the writable member again itself when its writes fail (as a proxy
/// that follows `read_only` does).
pub struct Writer {
    stop: Arc<AtomicBool>,
    writes: Arc<Mutex<Writes>>,
    task: tokio::task::JoinHandle<()>,
}

impl Writer {
    /// Starts writing to `ports[0]`, ids from `first`.
    pub fn start(ports: Vec<u16>, first: u64) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let writes = Arc::new(Mutex::new(Writes::default()));
        let task = tokio::spawn(write_loop(ports, first, stop.clone(), writes.clone()));
        Writer { stop, writes, task }
    }

    /// How many writes were acknowledged so far.
    pub async fn acked(&self) -> usize {
        self.writes.lock().await.acked.len()
    }

    /// Waits until `n` more writes than now are acknowledged.
    pub async fn wait_more(&self, n: usize) -> anyhow::Result<()> {
        let target = self.acked().await + n;
        wait_for("writes to be acknowledged", PATIENCE, || async move {
            let now = self.acked().await;
            if now >= target {
                Ok(())
            } else {
                Err(format!("{now} of {target}"))
            }
        })
        .await
    }

    /// Starts a new measurement of the longest gap.
    pub async fn reset_gap(&self) {
        self.writes.lock().await.longest_gap = Duration::ZERO;
    }

    /// The longest gap since the last reset, and a new measurement.
    pub async fn take_gap(&self) -> Duration {
        std::mem::take(&mut self.writes.lock().await.longest_gap)
    }

    /// Stops writing and returns what happened.
    pub async fn stop(self) -> Writes {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.task.await;
        self.writes.lock().await.clone()
    }
}

async fn write_loop(
    ports: Vec<u16>,
    first: u64,
    stop: Arc<AtomicBool>,
    writes: Arc<Mutex<Writes>>,
) {
    let mut next = first;
    let mut target = ports[0];
    let mut conn: Option<Conn> = None;
    let mut last_ack = Instant::now();
    writes.lock().await.targets.push(target);
    while !stop.load(Ordering::SeqCst) {
        if conn.is_none() {
            conn = app_conn(target).await.ok();
        }
        let id = next;
        next += 1;
        let ok = match conn.as_mut() {
            Some(c) => tokio::time::timeout(
                Duration::from_secs(2),
                c.query_drop(format!("INSERT INTO app.t (id) VALUES ({id})")),
            )
            .await
            .is_ok_and(|r| r.is_ok()),
            None => false,
        };
        let mut w = writes.lock().await;
        if ok {
            let now = Instant::now();
            w.longest_gap = w.longest_gap.max(now - last_ack);
            last_ack = now;
            w.acked.push(id);
            drop(w);
            // The application's pace: a write every couple of milliseconds.
            tokio::time::sleep(Duration::from_millis(2)).await;
            continue;
        }
        w.failures += 1;
        drop(w);
        conn = None;
        if let Some(p) = find_writable(&ports).await {
            if p != target {
                writes.lock().await.targets.push(p);
            }
            target = p;
        } else {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// The first member whose `read_only` is off, as the application sees it.
async fn find_writable(ports: &[u16]) -> Option<u16> {
    for &p in ports {
        let Ok(Ok(mut c)) = tokio::time::timeout(Duration::from_millis(500), app_conn(p)).await
        else {
            continue;
        };
        let ro: Option<i64> = c.query_first("SELECT @@read_only").await.ok().flatten();
        c.disconnect().await.ok();
        if ro == Some(0) {
            return Some(p);
        }
    }
    None
}
