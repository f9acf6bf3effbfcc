//! Errors of the probe, each classified: a *fatal* error stops the probe
//! before it runs (a plan or address that can never work), a *retryable*
//! one is retried with backoff and never stops probing.
//!
//! A failed check is not an error: it is a [`crate::Failure`], reported as
//! `OUTCOME_DOWN` with its reason.

use thiserror::Error;

/// A plan that cannot run. Always fatal: fix the config.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PlanError {
    /// A field that names something is empty.
    #[error("{0} is empty")]
    EmptyField(&'static str),
    /// A count that must be positive is zero.
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    /// Two checks of one target share a name, so their reports would mix.
    #[error("target {target:?} has two checks named {check:?}")]
    DuplicateCheck {
        /// The target.
        target: String,
        /// The repeated name.
        check: String,
    },
    /// One check is malformed.
    #[error("target {target:?}, check {check:?}: {why}")]
    BadCheck {
        /// The target.
        target: String,
        /// The check.
        check: String,
        /// What is wrong.
        why: String,
    },
    /// The extra CA certificates cannot be used.
    #[error("extra CA certificates: {0}")]
    BadCa(String),
}

/// Why the probe could not start or stopped.
#[derive(Debug, Error)]
pub enum ProbeError {
    /// The plan is invalid.
    #[error("invalid probe plan: {0}")]
    Plan(#[from] PlanError),
    /// No controller to report to.
    #[error("no controller to report to")]
    NoControllers,
    /// A controller URL that can never be connected to.
    #[error("controller URL {url:?} is invalid: {why}")]
    BadController {
        /// The URL as given.
        url: String,
        /// What is wrong.
        why: String,
    },
    /// A probe task ended abnormally (a bug): the probe stops so that a
    /// supervisor restarts it rather than leaving it half-working.
    #[error("probe task failed: {0}")]
    TaskFailed(String),
}

/// Why one report stream to one controller ended. Always retried with
/// backoff: a probe never gives up on a controller.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StreamError {
    /// No connection (refused, unreachable, timed out).
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The controller refused a report with `INVALID_ARGUMENT`: its config
    /// does not know a target or region of this probe's plan.
    #[error("controller rejected a report (config mismatch?): {0}")]
    Rejected(String),
    /// The stream broke (controller restarted, network cut, keepalive lost).
    #[error("stream broke: {0}")]
    Broken(String),
}

impl StreamError {
    /// True when the controller's config and this probe's plan disagree: a
    /// person must act, so it is logged at error level.
    pub fn is_config_mismatch(&self) -> bool {
        matches!(self, StreamError::Rejected(_))
    }

    /// Short label for the metric.
    pub fn label(&self) -> &'static str {
        match self {
            StreamError::Connect(_) => "connect",
            StreamError::Rejected(_) => "rejected",
            StreamError::Broken(_) => "broken",
        }
    }
}

/// An error and its causes on one line ("transport error: connection
/// refused"): tonic's errors print only "transport error" without their
/// source.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
