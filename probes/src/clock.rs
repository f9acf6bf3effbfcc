//! Wall-clock time for report timestamps, behind a trait so tests can fix
//! it. Scheduling uses `tokio::time::Instant` (pausable in tests), never
//! this clock.

use std::time::{SystemTime, UNIX_EPOCH};

/// Source of the Unix time stamped on reports (`observed_at_unix_ms`).
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Milliseconds since the Unix epoch.
    fn now_unix_ms(&self) -> i64;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}
