//! Live progress of an operator request (failover, switchover) on the
//! terminal: which phase it is in, read from the leader's journal while
//! the CLI waits. A spinner on stderr, drawn only when stderr is a
//! terminal (indicatif hides itself otherwise), so scripts and `--output
//! json` see nothing of it; the outcome line itself goes to stdout.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use super::ops::{RequestState, RequestStatus};

/// Where a request stands, in words, from what the CLI can read of it.
pub fn phase(state: &RequestState) -> String {
    match state.status {
        RequestStatus::Queued => "handed to the leader, waiting for it to start".into(),
        RequestStatus::WaitingAtGate => format!(
            "waiting at the promotion gate: {}",
            state.gate.as_deref().unwrap_or("")
        ),
        RequestStatus::Running => match state.steps.last() {
            Some(last) => format!("{} step(s) done, last: {last}", state.steps.len()),
            None => "started".into(),
        },
        other => other.as_str().to_string(),
    }
}

/// A spinner with the current phase.
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// Starts the spinner (invisible when stderr is not a terminal).
    pub fn start(what: &str) -> Self {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {elapsed:>4} {prefix}: {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_prefix(what.to_string());
        bar.enable_steady_tick(Duration::from_millis(100));
        Progress { bar }
    }

    /// Shows `phase` as the current one.
    pub fn phase(&self, phase: String) {
        self.bar.set_message(phase);
    }

    /// Removes the spinner, before the outcome is printed.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(status: RequestStatus, gate: Option<&str>, steps: &[&str]) -> RequestState {
        RequestState {
            status,
            gate: gate.map(str::to_string),
            steps: steps.iter().map(|s| s.to_string()).collect(),
            ..RequestState::default()
        }
    }

    #[test]
    fn each_phase_is_told_apart() {
        let cases = [
            (
                state(RequestStatus::Queued, None, &[]),
                "handed to the leader",
            ),
            (
                state(RequestStatus::WaitingAtGate, Some("lease held"), &[]),
                "waiting at the promotion gate: lease held",
            ),
            (state(RequestStatus::Running, None, &[]), "started"),
            (
                state(RequestStatus::Running, None, &["observe", "fence m0"]),
                "2 step(s) done, last: fence m0",
            ),
        ];
        for (s, expected) in cases {
            let got = phase(&s);
            assert!(got.starts_with(expected), "{got:?} vs {expected:?}");
        }
    }
}
