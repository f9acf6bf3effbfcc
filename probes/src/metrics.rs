//! The probe's metrics (the `metrics` facade; the binary installs the
//! Prometheus exporter). Handles are made once per check and controller, so
//! a check run costs a few atomic adds, not a registry lookup. No label
//! carries a target: 10,000 targets would be 10,000 series per metric.

use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};

use crate::checks::FailureKind;

/// Check runs, by kind and outcome (`up`/`down`).
pub const CHECKS: &str = "switchyard_probe_checks_total";
/// Failed runs, by kind and reason (the [`FailureKind`] label).
pub const FAILURES: &str = "switchyard_probe_check_failures_total";
/// Run duration in seconds, by kind.
pub const LATENCY: &str = "switchyard_probe_check_duration_seconds";
/// Actual start − scheduled start, in seconds.
pub const SCHEDULING_DELAY: &str = "switchyard_probe_scheduling_delay_seconds";
/// Ticks skipped because the previous run (or its wait for a slot) overran.
pub const TICKS_MISSED: &str = "switchyard_probe_ticks_missed_total";
/// Reports dropped from a full buffer, by controller.
pub const DROPPED: &str = "switchyard_probe_reports_dropped_total";
/// Reports handed to a controller's stream, by controller.
pub const SENT: &str = "switchyard_probe_reports_sent_total";
/// Report streams that ended, by controller and why.
pub const STREAM_ENDS: &str = "switchyard_probe_stream_ends_total";
/// Controllers with an open report stream now.
pub const CONNECTED: &str = "switchyard_probe_controllers_connected";

/// The handles one check needs.
#[derive(Debug, Clone)]
pub struct CheckMetrics {
    up: Counter,
    down: Counter,
    latency: Histogram,
    delay: Histogram,
    missed: Counter,
    kind: &'static str,
}

impl CheckMetrics {
    /// Handles for a check of `kind`.
    pub fn new(kind: &'static str) -> Self {
        CheckMetrics {
            up: counter!(CHECKS, "kind" => kind, "outcome" => "up"),
            down: counter!(CHECKS, "kind" => kind, "outcome" => "down"),
            latency: histogram!(LATENCY, "kind" => kind),
            delay: histogram!(SCHEDULING_DELAY),
            missed: counter!(TICKS_MISSED),
            kind,
        }
    }

    /// One run finished.
    pub fn ran(&self, failure: Option<FailureKind>, seconds: f64) {
        self.latency.record(seconds);
        match failure {
            None => self.up.increment(1),
            Some(kind) => {
                self.down.increment(1);
                counter!(FAILURES, "kind" => self.kind, "reason" => kind.label()).increment(1);
            }
        }
    }

    /// One run started `seconds` after its grid time.
    pub fn delayed(&self, seconds: f64) {
        self.delay.record(seconds);
    }

    /// `n` ticks were skipped.
    pub fn missed(&self, n: u64) {
        self.missed.increment(n);
    }
}

/// The handles one controller's stream needs.
#[derive(Debug, Clone)]
pub struct ControllerMetrics {
    /// Reports dropped from its buffer.
    pub dropped: Counter,
    /// Reports handed to its stream.
    pub sent: Counter,
    /// 1 while its stream is open.
    pub connected: Gauge,
    url: String,
}

impl ControllerMetrics {
    /// Handles for the controller at `url`.
    pub fn new(url: &str) -> Self {
        ControllerMetrics {
            dropped: counter!(DROPPED, "controller" => url.to_string()),
            sent: counter!(SENT, "controller" => url.to_string()),
            connected: gauge!("switchyard_probe_controller_connected", "controller" => url.to_string()),
            url: url.to_string(),
        }
    }

    /// A stream ended for `why` (a [`crate::error::StreamError`] label).
    pub fn stream_ended(&self, why: &'static str) {
        counter!(STREAM_ENDS, "controller" => self.url.clone(), "why" => why).increment(1);
    }
}

/// Sets the connected-controllers gauge.
pub fn set_connected(n: usize) {
    gauge!(CONNECTED).set(n as f64);
}
