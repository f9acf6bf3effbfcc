//! Running an orchestration's steps under its [`StepGuard`]: ask before
//! each step, bound it by the budget granted, record it when done; and the
//! failure injection points of the `failpoints` feature.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::error::ReplError;
use crate::guard::{Step, StepGuard};

/// A failure injection point named `$name` (an `&str` expression), compiled
/// in only with the `failpoints` feature (tests). Configured to `return`, it
/// makes the enclosing function return an error, as if the step there had
/// failed; the orchestration's error handling then runs as it would.
macro_rules! failpoint {
    ($name:expr) => {
        #[cfg(feature = "failpoints")]
        {
            let name: &str = $name;
            fail::fail_point!(name, |_| Err($crate::error::ReplError::Command {
                member: "failpoint".to_string(),
                statement: name.to_string(),
                detail: "failure injected".to_string(),
            }));
        }
    };
}
pub(crate) use failpoint;

/// One orchestration's view of its guard.
pub(crate) struct Steps<'g> {
    guard: &'g dyn StepGuard,
    finished: Vec<Step>,
    /// The guard refused a step or could not record one: stop, undo nothing.
    refused: AtomicBool,
}

impl<'g> Steps<'g> {
    /// Reads what an earlier run of the same orchestration finished.
    pub(crate) fn new(guard: &'g dyn StepGuard) -> Self {
        Steps {
            guard,
            finished: guard.finished(),
            refused: AtomicBool::new(false),
        }
    }

    /// True once the guard refused a step (or failed to record one): the
    /// orchestration must stop where it is and undo nothing.
    pub(crate) fn refused(&self) -> bool {
        self.refused.load(Ordering::SeqCst)
    }

    /// The candidate an earlier run chose, and the position it had to
    /// reach (the last `Chosen` recorded).
    pub(crate) fn chosen(&self) -> Option<(String, Option<String>)> {
        self.finished.iter().rev().find_map(|s| match s {
            Step::Chosen {
                member,
                catch_up_to,
            } => Some((member.clone(), catch_up_to.clone())),
            _ => None,
        })
    }

    /// Whether an earlier run of this orchestration finished `step`.
    pub(crate) fn finished_before(&self, step: &Step) -> bool {
        self.finished.contains(step)
    }

    /// Whether an earlier run of this orchestration promoted `member`.
    pub(crate) fn promoted(&self, member: &str) -> bool {
        self.finished
            .iter()
            .any(|s| matches!(s, Step::Promote { member: m } if m == member))
    }

    /// Asks to start `step`: its deadline and budget, or the refusal. The
    /// deadline handed to the work is a tenth of the budget (at most
    /// 200 ms) before the budget's end, so reads bounded by it (an
    /// unreachable member) end as results, not as the step's timeout.
    pub(crate) async fn begin(&self, step: &Step) -> Result<(Instant, Duration), ReplError> {
        match self.guard.begin(step).await {
            Ok(budget) => {
                let slack = (budget / 10).min(Duration::from_millis(200));
                Ok((switchyard_host::time::now() + budget - slack, budget))
            }
            Err(e) => {
                self.refused.store(true, Ordering::SeqCst);
                tracing::warn!(%step, error = %e, "step refused: stopping here");
                Err(e)
            }
        }
    }

    /// Records `step` as finished.
    pub(crate) async fn done(&self, step: &Step) -> Result<(), ReplError> {
        let r = self.guard.done(step).await;
        if r.is_err() {
            self.refused.store(true, Ordering::SeqCst);
        }
        r
    }

    /// Runs `work` as `step`: asks the guard, runs it under a timeout of the
    /// budget granted (`work` gets the deadline, to bound its statements
    /// server-side too), and records it done when it succeeded.
    pub(crate) async fn run<T, F, Fut>(&self, step: Step, work: F) -> Result<T, ReplError>
    where
        F: FnOnce(Instant) -> Fut,
        Fut: Future<Output = Result<T, ReplError>>,
    {
        let (deadline, budget) = self.begin(&step).await?;
        let out = bounded(&step, budget, work(deadline)).await?;
        self.done(&step).await?;
        Ok(out)
    }
}

/// `fut` under a timeout of `budget`, a timeout reported as `step`'s.
pub(crate) async fn bounded<T>(
    step: &Step,
    budget: Duration,
    fut: impl Future<Output = Result<T, ReplError>>,
) -> Result<T, ReplError> {
    match switchyard_host::time::timeout(budget, fut).await {
        Ok(r) => r,
        Err(_) => Err(ReplError::StepTimeout {
            step: step.to_string(),
            budget,
        }),
    }
}
