//! Live progress of an operator request (failover, switchover) on the
//! terminal: which phase it is in, read from the leader's journal while
//! the CLI waits. A spinner on stderr, drawn only when stderr is a
//! terminal (indicatif hides itself otherwise), so scripts and `--output
//! json` see nothing of it; the outcome line itself goes to stdout.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::executor::{JournalEntry, Status};

/// Where a request stands, from what the CLI can read of it.
pub fn phase(entry: Option<&JournalEntry>, gate: Option<&str>) -> String {
    match (entry, gate) {
        (Some(e), _) if e.status == Status::Pending => match e.steps.last() {
            Some(last) => format!(
                "{}: {} step(s) done, last: {last}",
                e.action.kind(),
                e.steps.len()
            ),
            None => format!("{}: started by {}", e.action.kind(), e.created_by),
        },
        (Some(e), _) => format!("{}: finished", e.action.kind()),
        (None, Some(reason)) => format!("waiting at the promotion gate: {reason}"),
        (None, None) => "handed to the leader, waiting for it to start".into(),
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
    use crate::executor::ActionSpec;
    use switchyard_probes::replication::Step;

    fn entry(status: Status, steps: Vec<Step>) -> JournalEntry {
        JournalEntry {
            id: "000000000001-000001".into(),
            action: ActionSpec::Switchover {
                database: "orders".into(),
                to_member: "m1".into(),
            },
            reasons: vec![],
            status,
            created_by: "ctl-a".into(),
            created_at: chrono::DateTime::from_timestamp(0, 0).unwrap_or_default(),
            finished_by: None,
            finished_at: None,
            outcome: None,
            request: Some("r".into()),
            steps,
            retryable: None,
            write_unavailable_ms: None,
        }
    }

    #[test]
    fn each_phase_is_told_apart() {
        let fence = Step::Fence {
            member: "m0".into(),
        };
        let running = entry(Status::Pending, vec![Step::Observe, fence]);
        let cases = [
            (None, None, "handed to the leader"),
            (
                None,
                Some("lease held"),
                "waiting at the promotion gate: lease held",
            ),
            (
                Some(entry(Status::Pending, vec![])),
                None,
                "switchover: started by ctl-a",
            ),
            (
                Some(running),
                None,
                "switchover: 2 step(s) done, last: fence m0",
            ),
            (
                Some(entry(Status::Done, vec![])),
                None,
                "switchover: finished",
            ),
        ];
        for (e, gate, expected) in cases {
            let got = phase(e.as_ref(), gate);
            assert!(got.starts_with(expected), "{got:?} vs {expected:?}");
        }
    }
}
