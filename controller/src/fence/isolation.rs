//! Is this controller cut off? The assessment is pure and lives in
//! [`switchyard_core::isolation`] (re-exported here); this module adds
//! [`FenceDeadline`], which says by when a primary-lease holder that
//! cannot renew must start, and finish, fencing, on tokio's clock.

use std::time::Duration;

use tokio::time::Instant;

pub use switchyard_core::isolation::*;

/// By when a primary-lease holder that cannot renew must fence, counted
/// on its own monotonic clock from the send time of its last renewal etcd
/// acknowledged (`last_renewed`):
///
/// - `done_by` = `last_renewed` + TTL − `margin`: the fence must be over by
///   then. etcd cannot expire the lease before `last_renewed` + TTL (it
///   counts the TTL from when it *received* that renewal), and the leader's
///   gate opens only once etcd has deleted the key, so `margin` is what is
///   left for clock-rate drift and scheduling between the fence's end and
///   the earliest promotion.
/// - `start_by` = `done_by` − `budget`: the latest start of a fence bounded
///   by `budget` that still ends by `done_by`.
///
/// With the default numbers for a 4 s primary lease (renewal every 1 s,
/// margin 1 s, budget 1 s): `start_by` = +2 s, `done_by` = +3 s, and etcd
/// expires the lease at +4 s at the earliest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FenceDeadline {
    /// The latest instant at which the fence must *start*.
    pub start_by: Instant,
    /// The instant by which the fence must be *done*.
    pub done_by: Instant,
}

impl FenceDeadline {
    /// From the send time of the last renewal etcd acknowledged, the lease
    /// TTL, the safety margin and the fence's budget. When margin and budget
    /// exceed the TTL, both instants are `last_renewed` itself (fence at
    /// once).
    pub fn new(last_renewed: Instant, ttl: Duration, margin: Duration, budget: Duration) -> Self {
        let done = ttl.saturating_sub(margin);
        Self {
            start_by: last_renewed + done.saturating_sub(budget),
            done_by: last_renewed + done,
        }
    }

    /// How long is left at `now` before the fence must start (zero once
    /// passed).
    pub fn remaining(&self, now: Instant) -> Duration {
        self.start_by.saturating_duration_since(now)
    }

    /// True once the fence must have started: renewals have failed for so
    /// long that only the fence's budget is left before `done_by`.
    pub fn overdue(&self, now: Instant) -> bool {
        now >= self.start_by
    }

    /// When to start fencing, given when isolation was first seen and how
    /// long a blip may last before it counts (`grace`): after the grace, but
    /// never later than `start_by`.
    pub fn act_at(&self, isolated_since: Instant, grace: Duration) -> Instant {
        (isolated_since + grace).min(self.start_by)
    }

    /// True when an isolated controller must fence now.
    pub fn must_fence(&self, now: Instant, isolated_since: Instant, grace: Duration) -> bool {
        now >= self.act_at(isolated_since, grace)
    }
}

#[cfg(test)]
#[path = "isolation_tests.rs"]
mod tests;
