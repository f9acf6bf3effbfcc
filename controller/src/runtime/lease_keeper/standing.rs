//! The lease keeper's decisions for one database, as a state machine with
//! named states and no I/O: where the keeper stands with the primary
//! ([`Standing`]), how a new reading moves it ([`Standing::after_reading`]),
//! and what the keeper must do next ([`next`]). The driver
//! ([`super::LeaseKeeper`]) reads etcd and the primary, feeds what it saw
//! in, and performs the [`Move`] it gets back.

use std::time::Duration;

use tokio::time::Instant;

/// Where this controller stands with one database's primary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// The primary is in another region (or not known yet): no lease here.
    NotOurs,
    /// The primary is in this region and this controller reads it.
    /// `elsewhere`: the controller seen holding the lease, when another
    /// one does (said once per holder).
    Readable {
        /// Who holds the lease, if another controller does.
        elsewhere: Option<String>,
    },
    /// The primary is in this region and has not been readable since
    /// `since`.
    UnreadableSince {
        /// When reads started failing.
        since: Instant,
    },
    /// Unreadable for longer than the detection time, yet neither refusing
    /// connections nor fenceable: maybe alive and writable. The lease is
    /// kept (so it is not replaced automatically) and an operator decides.
    AliveButUnreadable {
        /// When reads started failing.
        since: Instant,
    },
}

impl Standing {
    /// The standing after reading the primary at `now`: `ours` (the
    /// primary is in this region) and `readable` (this controller read
    /// it). An unreadable spell keeps its start; a readable reading ends it.
    pub fn after_reading(&self, ours: bool, readable: bool, now: Instant) -> Standing {
        match (ours, readable, self) {
            (false, _, _) => Standing::NotOurs,
            (true, true, Standing::Readable { elsewhere }) => Standing::Readable {
                elsewhere: elsewhere.clone(),
            },
            (true, true, _) => Standing::Readable { elsewhere: None },
            (true, false, Standing::AliveButUnreadable { since }) => {
                Standing::AliveButUnreadable { since: *since }
            }
            (true, false, Standing::UnreadableSince { since }) => {
                Standing::UnreadableSince { since: *since }
            }
            (true, false, _) => Standing::UnreadableSince { since: now },
        }
    }

    /// When reads of the primary started failing, if they are failing.
    pub fn unreadable_since(&self) -> Option<Instant> {
        match self {
            Standing::UnreadableSince { since } | Standing::AliveButUnreadable { since } => {
                Some(*since)
            }
            _ => None,
        }
    }

    /// The standing once this controller kept its lease for an unreadable
    /// primary that could not be shown unable to take writes: alive but
    /// unreadable. True when that is news (to be said once).
    pub fn kept_for_an_unreadable_primary(&mut self) -> bool {
        let since = self.unreadable_since();
        match (&*self, since) {
            (Standing::AliveButUnreadable { .. }, _) => false,
            (_, Some(since)) => {
                *self = Standing::AliveButUnreadable { since };
                true
            }
            _ => false,
        }
    }

    /// Records that `holder` holds the lease; true when that is news (a
    /// new holder, to be said once).
    pub fn held_by(&mut self, holder: &str) -> bool {
        match self {
            Standing::Readable { elsewhere } if elsewhere.as_deref() != Some(holder) => {
                *elsewhere = Some(holder.to_string());
                true
            }
            _ => false,
        }
    }

    /// Records that this controller holds the lease now.
    pub fn holding(&mut self) {
        if let Standing::Readable { elsewhere } = self {
            *elsewhere = None;
        }
    }
}

/// What the lease this controller holds for the database says, if it
/// holds one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holding {
    /// The grant was confirmed applied (a grant whose answer was lost is
    /// not, until its key is read back).
    pub verified: bool,
    /// The primary the lease vouches for.
    pub primary: String,
    /// The database epoch it vouches for.
    pub epoch: Option<u64>,
}

/// What the keeper does next for one database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Move {
    /// Nothing this tick.
    Wait,
    /// The primary left this region: release the lease held for it.
    Release,
    /// Unreadable past the detection time while holding the lease: give
    /// it up only if the primary is shown unable to take writes — it
    /// refuses connections (`refused`), or this controller fences it.
    GiveUpIfSafe {
        /// The server refused the connection: not running, no fence needed.
        refused: bool,
        /// How long it has been unreadable.
        unreadable_for: Duration,
    },
    /// The grant's answer was lost: read the key back to see whether it
    /// applied.
    Verify,
    /// The lease vouches for another primary or epoch than the store
    /// records: rewrite its value.
    Rewrite,
    /// No lease held, the primary readable: see who holds the key, and
    /// take it if nobody does.
    Acquire,
}

/// What the keeper does next, from its standing (after this tick's
/// reading), the lease it holds, the primary and epoch the store records,
/// whether the primary refused the connection, and the detection time.
/// A primary it cannot read is never given a lease, and a lease vouching
/// for a primary in this region is given up only through
/// [`Move::GiveUpIfSafe`] (it is also released when the primary leaves
/// the region, and dropped when a grant is found not to have applied).
pub fn next(
    standing: &Standing,
    held: Option<&Holding>,
    primary: &str,
    epoch: u64,
    refused: bool,
    now: Instant,
    detection: Duration,
) -> Move {
    if *standing == Standing::NotOurs {
        return if held.is_some() {
            Move::Release
        } else {
            Move::Wait
        };
    }
    if let (Some(since), Some(_)) = (standing.unreadable_since(), held) {
        let unreadable_for = now.saturating_duration_since(since);
        if unreadable_for >= detection {
            return Move::GiveUpIfSafe {
                refused,
                unreadable_for,
            };
        }
    }
    match held {
        Some(h) if !h.verified => Move::Verify,
        Some(h) if h.primary != primary || h.epoch != Some(epoch) => Move::Rewrite,
        Some(_) => Move::Wait,
        None if matches!(standing, Standing::Readable { .. }) => Move::Acquire,
        None => Move::Wait,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(verified: bool, primary: &str, epoch: u64) -> Holding {
        Holding {
            verified,
            primary: primary.into(),
            epoch: Some(epoch),
        }
    }

    #[test]
    fn readings_move_the_standing() {
        let t0 = switchyard_host::time::now();
        let later = t0 + Duration::from_secs(5);
        let unread = Standing::UnreadableSince { since: t0 };
        let alive = Standing::AliveButUnreadable { since: t0 };
        let seen = Standing::Readable {
            elsewhere: Some("b".into()),
        };
        let table = [
            // (before, ours, readable, after)
            (Standing::NotOurs, false, true, Standing::NotOurs),
            (seen.clone(), false, true, Standing::NotOurs),
            (
                Standing::NotOurs,
                true,
                true,
                Standing::Readable { elsewhere: None },
            ),
            // A holder seen stays known while the primary stays readable.
            (seen.clone(), true, true, seen.clone()),
            (
                Standing::NotOurs,
                true,
                false,
                Standing::UnreadableSince { since: later },
            ),
            (
                seen.clone(),
                true,
                false,
                Standing::UnreadableSince { since: later },
            ),
            // An unreadable spell keeps its start…
            (unread.clone(), true, false, unread.clone()),
            (alive.clone(), true, false, alive.clone()),
            // …and a readable reading ends it.
            (unread, true, true, Standing::Readable { elsewhere: None }),
            (alive, true, true, Standing::Readable { elsewhere: None }),
        ];
        for (before, ours, readable, after) in table {
            assert_eq!(
                before.after_reading(ours, readable, later),
                after,
                "{before:?} ours={ours} readable={readable}"
            );
        }
    }

    #[test]
    fn the_next_move_for_each_standing() {
        let t0 = switchyard_host::time::now();
        let d = Duration::from_secs(3);
        let readable = Standing::Readable { elsewhere: None };
        let unread = Standing::UnreadableSince { since: t0 };
        let alive = Standing::AliveButUnreadable { since: t0 };
        let ok = held(true, "m1", 7);
        let at = |s: u64| t0 + Duration::from_secs(s);
        let give_up = |refused, secs| Move::GiveUpIfSafe {
            refused,
            unreadable_for: Duration::from_secs(secs),
        };
        let table = [
            // (standing, held, now, refused, move)
            (Standing::NotOurs, None, at(0), false, Move::Wait),
            (
                Standing::NotOurs,
                Some(ok.clone()),
                at(0),
                false,
                Move::Release,
            ),
            (readable.clone(), None, at(0), false, Move::Acquire),
            (readable.clone(), Some(ok.clone()), at(0), false, Move::Wait),
            (
                readable.clone(),
                Some(held(false, "m1", 7)),
                at(0),
                false,
                Move::Verify,
            ),
            (
                readable.clone(),
                Some(held(true, "m0", 7)),
                at(0),
                false,
                Move::Rewrite,
            ),
            (
                readable.clone(),
                Some(held(true, "m1", 6)),
                at(0),
                false,
                Move::Rewrite,
            ),
            // Never a lease for a primary this controller cannot read.
            (unread.clone(), None, at(10), false, Move::Wait),
            // Within the detection time a held lease is renewed as usual.
            (unread.clone(), Some(ok.clone()), at(2), false, Move::Wait),
            (
                unread.clone(),
                Some(ok.clone()),
                at(3),
                false,
                give_up(false, 3),
            ),
            (
                unread.clone(),
                Some(ok.clone()),
                at(4),
                true,
                give_up(true, 4),
            ),
            // An unverified grant is verified while the primary is
            // unreadable within the detection time…
            (
                unread.clone(),
                Some(held(false, "m1", 7)),
                at(1),
                false,
                Move::Verify,
            ),
            // …and past it, giving up comes first.
            (
                unread.clone(),
                Some(held(false, "m1", 7)),
                at(5),
                false,
                give_up(false, 5),
            ),
            // A stale value is rewritten while unreadable, too.
            (
                unread.clone(),
                Some(held(true, "m0", 7)),
                at(1),
                false,
                Move::Rewrite,
            ),
            (
                Standing::NotOurs,
                Some(held(false, "m1", 7)),
                at(0),
                false,
                Move::Release,
            ),
            // Alive but unreadable: asked again every tick (a fence may
            // succeed later, or the server stop).
            (
                alive.clone(),
                Some(ok.clone()),
                at(9),
                false,
                give_up(false, 9),
            ),
            (alive, None, at(9), false, Move::Wait),
        ];
        for (standing, held, now, refused, want) in table {
            assert_eq!(
                next(&standing, held.as_ref(), "m1", 7, refused, now, d),
                want,
                "{standing:?} held={held:?}"
            );
        }
    }

    #[test]
    fn each_news_is_said_once() {
        let t0 = switchyard_host::time::now();
        let mut s = Standing::UnreadableSince { since: t0 };
        assert!(s.kept_for_an_unreadable_primary());
        assert_eq!(s, Standing::AliveButUnreadable { since: t0 });
        assert!(!s.kept_for_an_unreadable_primary());
        let mut r = Standing::Readable { elsewhere: None };
        assert!(r.held_by("b"));
        assert!(!r.held_by("b"));
        assert!(r.held_by("c"));
        r.holding();
        assert_eq!(r, Standing::Readable { elsewhere: None });
        assert!(!Standing::NotOurs.held_by("b"));
    }
}
