//! A process's freeze switch: every task a controller spawns through
//! [`spawn`] or [`spawn_in`] inherits the switch of the task that spawned
//! it, and is not polled while the switch is on. That is what `SIGSTOP`
//! does to a process — its timers do not fire, its statements are not
//! sent, and when it is let go every timer that came due fires at once —
//! so the simulator can pause one controller of three sharing a runtime
//! and check that a controller paused past its lease takes no step when
//! it wakes (docs/SAFETY.md, S2).
//!
//! Outside a frozen scope (every shipping controller) [`spawn`] is
//! `tokio::spawn`: one task-local lookup that finds nothing.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use tokio::task::{AbortHandle, JoinHandle, JoinSet};

tokio::task_local! {
    static FREEZE: Freeze;
}

/// One process's switch; clones share it.
#[derive(Clone, Default)]
pub struct Freeze(Arc<Mutex<State>>);

#[derive(Default)]
struct State {
    frozen: bool,
    /// The tasks that found the switch on, to wake when it goes off.
    parked: Vec<Waker>,
}

impl std::fmt::Debug for Freeze {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Freeze")
            .field("frozen", &self.is_frozen())
            .finish()
    }
}

impl Freeze {
    /// A switch that is off.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Freezes (`true`) every task under this switch at its next yield,
    /// or lets them all run again.
    pub fn set(&self, frozen: bool) {
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

    /// Whether the switch is on.
    pub fn is_frozen(&self) -> bool {
        self.lock().frozen
    }

    /// Runs `f` (which spawns a process's tasks) so that every task it
    /// spawns through [`spawn`] or [`spawn_in`] is under this switch.
    pub fn enter<R>(&self, f: impl FnOnce() -> R) -> R {
        FREEZE.sync_scope(self.clone(), f)
    }

    fn wrap<F: Future>(&self, inner: F) -> impl Future<Output = F::Output> + use<F> {
        FREEZE.scope(
            self.clone(),
            Gated {
                freeze: self.clone(),
                inner: Box::pin(inner),
            },
        )
    }
}

/// A future that is not polled while its switch is on.
struct Gated<F> {
    freeze: Freeze,
    inner: Pin<Box<F>>,
}

impl<F: Future> Future for Gated<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        {
            let mut s = self.freeze.lock();
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

/// `tokio::spawn`, under the spawning task's freeze switch if it has one.
pub fn spawn<F>(f: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match FREEZE.try_with(Freeze::clone) {
        Ok(freeze) => tokio::spawn(freeze.wrap(f)),
        Err(_) => tokio::spawn(f),
    }
}

/// `JoinSet::spawn`, under the spawning task's freeze switch if it has
/// one.
pub fn spawn_in<T, F>(set: &mut JoinSet<T>, f: F) -> AbortHandle
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    match FREEZE.try_with(Freeze::clone) {
        Ok(freeze) => set.spawn(freeze.wrap(f)),
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
        let freeze = Freeze::new();
        let ticks = Arc::new(AtomicU32::new(0));
        let child_ticks = Arc::new(AtomicU32::new(0));
        let (t, c) = (ticks.clone(), child_ticks.clone());
        let outside = Arc::new(AtomicU32::new(0));
        let o = outside.clone();
        freeze.enter(|| {
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
        freeze.set(true);
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(ticks.load(Ordering::SeqCst), 10, "frozen: no tick");
        assert_eq!(child_ticks.load(Ordering::SeqCst), 10, "a child too");
        assert!(outside.load(Ordering::SeqCst) >= 60, "others run on");
        freeze.set(false);
        tokio::time::sleep(Duration::from_millis(50)).await;
        // A sleep that came due while frozen fires once on waking.
        assert_eq!(ticks.load(Ordering::SeqCst), 11);
        assert_eq!(child_ticks.load(Ordering::SeqCst), 11);
    }
}
