//! A recorded primary that is up but read-only with no fence to explain
//! it: a server that crashed or was restarted and came back with
//! `read_only = ON` from its own config (as `docs/SAFETY.md` tells
//! operators to configure every member) before anyone replaced it. The
//! probes see it answer, so no failover starts, and nothing else would
//! make it take writes again: every write is refused until a person acts.
//! The simulator found this (`docs/SIMULATION.md`).
//!
//! The leader lifts it through the same journaled `unfence` action as an
//! isolation fence, when it has seen the state hold for [`HOLD`]: the
//! primary reachable, read-only and replicating from nobody, every other
//! member readable and read-only. The adapter checks again that no other
//! member is writable before it turns `read_only` off.

use std::time::Duration;

use switchyard_probes::replication::Snapshot;
use tokio::time::Instant;

/// How often the leader looks at a recorded primary whose region is
/// healthy.
pub const CHECK_EVERY: Duration = Duration::from_secs(2);

/// How long the state must hold, over two looks at least, before the
/// leader acts: a switchover or a fence of this leader's holds the
/// database's lane and is never raced, and a restart that turns the
/// server writable itself is not.
pub const HOLD: Duration = Duration::from_secs(4);

/// Whether `snapshot` shows `primary` restarted read-only: reachable,
/// read-only, replicating from nobody, and every other member readable
/// and read-only (one that cannot be read might be writable).
pub fn restarted_read_only(snapshot: &Snapshot, primary: &str) -> bool {
    let Some(p) = snapshot.member(primary) else {
        return false;
    };
    p.reachable
        && p.read_only == Some(true)
        && p.source.is_none()
        && !p.io_running
        && snapshot
            .members
            .iter()
            .filter(|m| m.id != primary)
            .all(|m| m.reachable && m.read_only == Some(true))
}

/// Where the watch of one database stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Watch {
    /// When the state was first seen, in the current run of sightings.
    pub since: Option<Instant>,
    /// When to look next.
    pub next: Option<Instant>,
}

/// What to do after a look at `now` that did (`seen`) or did not see the
/// state: the new watch, and whether to lift the primary's read-only now.
pub fn after_look(watch: Watch, seen: bool, now: Instant) -> (Watch, bool) {
    let next = Some(now + CHECK_EVERY);
    if !seen {
        return (Watch { since: None, next }, false);
    }
    let since = watch.since.unwrap_or(now);
    let act = now.saturating_duration_since(since) >= HOLD;
    (
        Watch {
            since: if act { None } else { Some(since) },
            next,
        },
        act,
    )
}

/// Whether it is time to look again.
pub fn due(watch: &Watch, now: Instant) -> bool {
    watch.next.is_none_or(|n| now >= n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_acts_only_once_the_state_has_held_over_two_looks() {
        let t0 = Instant::now();
        let (w, act) = after_look(Watch::default(), true, t0);
        assert!(!act);
        assert_eq!(w.since, Some(t0));
        let (w, act) = after_look(w, true, t0 + CHECK_EVERY);
        assert!(!act, "2 s of a 4 s hold");
        let (w2, act) = after_look(w, true, t0 + HOLD);
        assert!(act);
        assert_eq!(w2.since, None, "a new run of sightings after acting");
        // A look that does not see it starts over.
        let (w, _) = after_look(w, false, t0 + HOLD);
        let (_, act) = after_look(w, true, t0 + HOLD + CHECK_EVERY);
        assert!(!act);
    }

    #[test]
    fn it_is_due_at_first_and_then_every_check() {
        let t0 = Instant::now();
        assert!(due(&Watch::default(), t0));
        let (w, _) = after_look(Watch::default(), false, t0);
        assert!(!due(&w, t0 + CHECK_EVERY / 2));
        assert!(due(&w, t0 + CHECK_EVERY));
    }
}
