//! A process's host: its pause switch and its clock's rate. Every task a
//! controller spawns through [`spawn`] or [`spawn_in`] inherits the host
//! of the task that spawned it.
//!
//! - The switch: a task is not polled while its host is frozen. That is
//!   what `SIGSTOP` does to a process — its timers do not fire, its
//!   statements are not sent, and when it is let go every timer that came
//!   due fires at once — so the simulator can pause one controller of
//!   three sharing a runtime and check that a controller paused past its
//!   lease takes no step when it wakes (docs/SAFETY.md, S2).
//! - The rate: [`crate::time`] reads the host's monotonic clock, which
//!   runs `1 + ppm/10⁶` times as fast as tokio's, so the simulator can give
//!   each host a crystal of its own and check the safety argument's bound
//!   on drift (docs/SAFETY.md, "Clocks").
//!
//! Outside a host's scope (every shipping controller) [`spawn`] is
//! `tokio::spawn` and the clock is tokio's: one task-local lookup that
//! finds nothing.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::task::{AbortHandle, JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::Rate;

tokio::task_local! {
    pub(crate) static HOST: Host;
}

/// One process's host; clones share it.
#[derive(Clone)]
pub struct Host(Arc<Inner>);

struct Inner {
    state: Mutex<State>,
    pace: Pace,
}

/// A host clock against tokio's: local time is
/// `origin + (t − origin)·rate` for tokio's `t`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pace {
    origin: Instant,
    rate: Rate,
}

impl Pace {
    /// This clock's reading at tokio's instant `t`.
    pub(crate) fn local(&self, t: Instant) -> Instant {
        self.stretch(t, |d| self.rate.local_span(d))
    }

    /// Tokio's instant at which this clock reads `local`.
    pub(crate) fn tokio(&self, local: Instant) -> Instant {
        self.stretch(local, |d| self.rate.tokio_span(d))
    }

    /// How long on tokio's clock this clock takes to count `d`.
    pub(crate) fn tokio_span(&self, d: Duration) -> Duration {
        self.rate.tokio_span(d)
    }

    /// `t` with its distance from the origin mapped by `span`, either side.
    fn stretch(&self, t: Instant, span: impl Fn(Duration) -> Duration) -> Instant {
        match t.checked_duration_since(self.origin) {
            Some(ahead) => self.origin + span(ahead),
            None => self.origin.checked_sub(span(self.origin - t)).unwrap_or(t),
        }
    }
}

#[derive(Default)]
struct State {
    frozen: bool,
    /// The tasks that found the switch on, to wake when it goes off.
    parked: Vec<Waker>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("frozen", &self.is_frozen())
            .field("rate", &self.0.pace.rate)
            .finish()
    }
}

impl Default for Host {
    fn default() -> Self {
        Self::new()
    }
}

impl Host {
    /// A host that runs, with a clock as fast as tokio's.
    pub fn new() -> Self {
        Self::with_rate_ppm(0)
    }

    /// A host that runs, whose clock gains `ppm` microseconds a second on
    /// tokio's (loses them, negative), counted from now.
    ///
    /// # Panics
    ///
    /// If the clock would stand still or run backwards (`ppm ≤ −10⁶`).
    pub fn with_rate_ppm(ppm: i64) -> Self {
        Host(Arc::new(Inner {
            state: Mutex::new(State::default()),
            pace: Pace {
                origin: Instant::now(),
                rate: Rate::from_ppm(ppm),
            },
        }))
    }

    /// The clock's rate, unless it is tokio's.
    pub(crate) fn pace(&self) -> Option<Pace> {
        (self.0.pace.rate != Rate::TOKIO).then_some(self.0.pace)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.0
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Freezes (`true`) every task of this host at its next yield, or
    /// lets them all run again.
    pub fn set_frozen(&self, frozen: bool) {
        let parked = {
            let mut s = self.lock();
            s.frozen = frozen;
            if frozen {
                Vec::new()
            } else {
                std::mem::take(&mut s.parked)
            }
        };
        parked.into_iter().for_each(Waker::wake);
    }

    /// Whether the host is frozen.
    pub fn is_frozen(&self) -> bool {
        self.lock().frozen
    }

    /// Runs `f` (which spawns a process's tasks) so that every task it
    /// spawns through [`spawn`] or [`spawn_in`] is on this host.
    pub fn enter<R>(&self, f: impl FnOnce() -> R) -> R {
        HOST.sync_scope(self.clone(), f)
    }

    fn wrap<F: Future>(&self, inner: F) -> impl Future<Output = F::Output> + use<F> {
        HOST.scope(
            self.clone(),
            Gated {
                host: self.clone(),
                inner: Box::pin(inner),
            },
        )
    }
}

/// A future that is not polled while its host is frozen.
struct Gated<F> {
    host: Host,
    inner: Pin<Box<F>>,
}

impl<F: Future> Future for Gated<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        {
            let mut s = self.host.lock();
            if s.frozen {
                if !s.parked.iter().any(|w| w.will_wake(cx.waker())) {
                    s.parked.push(cx.waker().clone());
                }
                return Poll::Pending;
            }
        }
        self.inner.as_mut().poll(cx)
    }
}

/// `tokio::spawn`, on the spawning task's host if it has one.
pub fn spawn<F>(f: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match HOST.try_with(Host::clone) {
        Ok(host) => tokio::spawn(host.wrap(f)),
        Err(_) => tokio::spawn(f),
    }
}

/// `JoinSet::spawn`, on the spawning task's host if it has one.
pub fn spawn_in<T, F>(set: &mut JoinSet<T>, f: F) -> AbortHandle
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    match HOST.try_with(Host::clone) {
        Ok(host) => set.spawn(host.wrap(f)),
        Err(_) => set.spawn(f),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_frozen_process_and_its_children_do_not_run_until_let_go() {
        let host = Host::new();
        let ticks = Arc::new(AtomicU32::new(0));
        let child_ticks = Arc::new(AtomicU32::new(0));
        let (t, c) = (ticks.clone(), child_ticks.clone());
        let outside = Arc::new(AtomicU32::new(0));
        let o = outside.clone();
        host.enter(|| {
            spawn(async move {
                spawn(async move {
                    loop {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        c.fetch_add(1, Ordering::SeqCst);
                    }
                });
                loop {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    t.fetch_add(1, Ordering::SeqCst);
                }
            });
        });
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                o.fetch_add(1, Ordering::SeqCst);
            }
        });
        tokio::time::sleep(Duration::from_millis(1_050)).await;
        assert_eq!(ticks.load(Ordering::SeqCst), 10);
        assert_eq!(child_ticks.load(Ordering::SeqCst), 10);
        host.set_frozen(true);
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(ticks.load(Ordering::SeqCst), 10, "frozen: no tick");
        assert_eq!(child_ticks.load(Ordering::SeqCst), 10, "a child too");
        assert!(outside.load(Ordering::SeqCst) >= 60, "others run on");
        host.set_frozen(false);
        tokio::time::sleep(Duration::from_millis(50)).await;
        // A sleep that came due while frozen fires once on waking.
        assert_eq!(ticks.load(Ordering::SeqCst), 11);
        assert_eq!(child_ticks.load(Ordering::SeqCst), 11);
    }
}
