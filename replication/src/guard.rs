//! Steps and their guard: how an orchestration (failover, switchover,
//! unfence) asks permission before every external step and records each
//! step it finished.
//!
//! The controller's leader may lose its lease while an orchestration runs
//! (a pause, a partition). SQL statements are outside etcd's fence, so the
//! only protection is timing: a step starts only while the leader's lease is
//! certain to outlast it, and ends (or is abandoned) within the budget the
//! guard granted. The guard also journals every finished [`Step`], so an
//! orchestration resumed by the next leader continues where the last one
//! stopped instead of starting over (and, say, choosing another candidate
//! after the first one was already made writable).
//!
//! This crate defines the protocol; the controller implements it against its
//! lease and its journal. [`Unguarded`] allows everything, for tools and
//! tests that run without a leader.

use std::time::Duration;

use crate::error::ReplError;

pub use switchyard_core::step::Step;

/// Asked before every external step of an orchestration, and told when one
/// is done.
///
/// The contract for implementations of [`crate::ReplicaSet`]:
/// - no statement or command is sent to any member outside a step that
///   [`StepGuard::begin`] allowed;
/// - a step ends within the budget `begin` granted: it is run under a
///   timeout of that budget, and a wait longer than the budget is cut into
///   slices, each asking `begin` again;
/// - when `begin` or `done` fails, the orchestration stops at once and
///   returns that error, undoing nothing (undoing is a step too, and a
///   deposed leader may not take it);
/// - steps in [`StepGuard::finished`] are not repeated blindly: a resumed
///   run re-reads the world and continues with the recorded decision.
#[async_trait::async_trait]
pub trait StepGuard: Send + Sync {
    /// May `step` start now? `Ok(budget)`: start it, and end it within
    /// `budget`. `Err` (normally [`ReplError::Deposed`]): do not start it.
    async fn begin(&self, step: &Step) -> Result<Duration, ReplError>;

    /// `step` finished; recorded so a resumed run does not redo it. An
    /// `Err` stops the orchestration (the record could not be written).
    async fn done(&self, step: &Step) -> Result<(), ReplError>;

    /// The steps an earlier run of this same orchestration finished, oldest
    /// first (empty for a new one).
    fn finished(&self) -> Vec<Step>;
}

/// A guard that allows every step with a fixed budget and remembers
/// nothing: for tools and tests that run without a leader.
#[derive(Debug, Clone, Copy)]
pub struct Unguarded {
    /// The budget granted to every step.
    pub budget: Duration,
}

impl Default for Unguarded {
    fn default() -> Self {
        Unguarded {
            budget: Duration::from_secs(30),
        }
    }
}

#[async_trait::async_trait]
impl StepGuard for Unguarded {
    async fn begin(&self, _step: &Step) -> Result<Duration, ReplError> {
        Ok(self.budget)
    }

    async fn done(&self, _step: &Step) -> Result<(), ReplError> {
        Ok(())
    }

    fn finished(&self) -> Vec<Step> {
        Vec::new()
    }
}
