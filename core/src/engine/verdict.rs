//! Per-target verdicts: only fresh vantages vote, and only a quorum of them
//! can call a target Down — so a probe cut off from one region can never
//! evacuate that region on its own.

use std::fmt::Write as _;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::health::{HealthBook, VantageHealth, VantageStatus};
use super::policy::{Policy, delta};
use super::topology::TargetId;

/// What the controller believes about a target after counting votes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Verdict {
    /// A quorum and a majority of fresh vantages say up.
    Up,
    /// A quorum of fresh vantages say down.
    Down,
    /// Not enough fresh agreement either way; never causes an action.
    Unknown,
}

/// A verdict with the vote counts and the words a person needs to trust it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetVerdict {
    /// The outcome.
    pub verdict: Verdict,
    /// Vantages whose last report is within `stale_after` of now.
    pub fresh: u32,
    /// Fresh vantages that say Up.
    pub up: u32,
    /// Fresh vantages that say Down.
    pub down: u32,
    /// Vantages that reported once but are stale now and did not vote.
    pub stale: u32,
    /// Fresh vantages whose latest report failed, whatever their debounced
    /// status: a quorum of them on a target not yet Down means it is
    /// trending down (used to tell regions failing together from one
    /// region failing alone).
    #[serde(default)]
    pub failing: u32,
    /// Which vantages said what and which rule applied. Empty when every fresh
    /// vantage agrees the target is Up: the counts say it all, and the common
    /// case stays cheap.
    pub reasons: Vec<String>,
}

/// Vote counts for one target, before any text is made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    pub fresh: u32,
    pub up: u32,
    pub down: u32,
    pub stale: u32,
    pub failing: u32,
}

impl Tally {
    /// Counts the votes of `vantages` that reported at or after `cutoff`.
    pub(crate) fn count<'a>(
        vantages: impl Iterator<Item = &'a VantageHealth>,
        cutoff: DateTime<Utc>,
    ) -> Self {
        let mut t = Tally::default();
        for h in vantages {
            if h.last_seen < cutoff {
                t.stale += 1;
                continue;
            }
            t.fresh += 1;
            if h.fails > 0 {
                t.failing += 1;
            }
            match h.status {
                VantageStatus::Up => t.up += 1,
                VantageStatus::Down => t.down += 1,
                VantageStatus::Unknown => {}
            }
        }
        t
    }

    /// The verdict rule of ARCHITECTURE §4.
    pub(crate) fn verdict(&self, quorum: usize) -> Verdict {
        let (fresh, up, down) = (self.fresh as usize, self.up as usize, self.down as usize);
        if fresh < quorum {
            Verdict::Unknown
        } else if down >= quorum {
            Verdict::Down
        } else if up >= quorum && up * 2 > fresh {
            Verdict::Up
        } else {
            Verdict::Unknown
        }
    }
}

/// The oldest `last_seen` that still counts as fresh at `now`.
pub(crate) fn fresh_cutoff(now: DateTime<Utc>, stale_after: TimeDelta) -> DateTime<Utc> {
    now.checked_sub_signed(stale_after)
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Counts the fresh votes on `target` and applies the quorum rule: fewer fresh
/// vantages than `quorum` → Unknown; at least `quorum` say Down → Down; at
/// least `quorum` and a majority of the fresh say Up → Up; else Unknown.
pub fn verdict(
    book: &HealthBook,
    target: &TargetId,
    policy: &Policy,
    now: DateTime<Utc>,
) -> TargetVerdict {
    let cutoff = fresh_cutoff(now, delta(policy.stale_after));
    verdict_at(book, target, policy.quorum_count(), cutoff)
}

/// [`verdict`] with the policy already reduced to numbers, for `decide`'s loop.
pub(crate) fn verdict_at(
    book: &HealthBook,
    target: &TargetId,
    quorum: usize,
    cutoff: DateTime<Utc>,
) -> TargetVerdict {
    let tally = Tally::count(book.vantages(target.as_str()).map(|(_, h)| h), cutoff);
    let verdict = tally.verdict(quorum);
    let unanimous_up =
        verdict == Verdict::Up && tally.up == tally.fresh && tally.stale == 0 && tally.failing == 0;
    let reasons = if unanimous_up {
        Vec::new()
    } else {
        vec![explain(book, target, &tally, verdict, quorum, cutoff)]
    };
    TargetVerdict {
        verdict,
        fresh: tally.fresh,
        up: tally.up,
        down: tally.down,
        stale: tally.stale,
        failing: tally.failing,
        reasons,
    }
}

/// One sentence naming the vantages on each side and the rule that decided.
/// (Writing to a `String` cannot fail, hence the ignored `fmt::Result`s.)
fn explain(
    book: &HealthBook,
    target: &TargetId,
    tally: &Tally,
    verdict: Verdict,
    quorum: usize,
    cutoff: DateTime<Utc>,
) -> String {
    let mut s = String::with_capacity(160);
    let _ = match verdict {
        Verdict::Down => write!(
            s,
            "{target} Down: {} of {} fresh vantages say down (quorum {quorum})",
            tally.down, tally.fresh
        ),
        Verdict::Up => write!(
            s,
            "{target} Up: {} of {} fresh vantages say up (quorum {quorum} and a majority)",
            tally.up, tally.fresh
        ),
        Verdict::Unknown if (tally.fresh as usize) < quorum => write!(
            s,
            "{target} Unknown: only {} fresh vantage(s), quorum is {quorum}",
            tally.fresh
        ),
        Verdict::Unknown => write!(
            s,
            "{target} Unknown: no quorum ({quorum}) and majority either way among {} fresh vantages",
            tally.fresh
        ),
    };
    // Which vantages to name after each label: fresh ones by status, fresh
    // ones whose latest report failed though they do not say Down (yet),
    // and stale ones.
    #[derive(Clone, Copy)]
    enum Pick {
        Status(VantageStatus),
        FailingNotDown,
        Stale,
    }
    for (label, pick) in [
        ("down by", Pick::Status(VantageStatus::Down)),
        ("up by", Pick::Status(VantageStatus::Up)),
        ("undecided", Pick::Status(VantageStatus::Unknown)),
        ("latest report failed at", Pick::FailingNotDown),
        ("stale", Pick::Stale),
    ] {
        let mut first = true;
        for (name, h) in book.vantages(target.as_str()) {
            let fresh = h.last_seen >= cutoff;
            let hit = match pick {
                Pick::Status(status) => fresh && h.status == status,
                Pick::FailingNotDown => fresh && h.fails > 0 && h.status != VantageStatus::Down,
                Pick::Stale => !fresh,
            };
            if !hit {
                continue;
            }
            s.push_str(if first { "; " } else { ", " });
            if first {
                s.push_str(label);
                s.push(' ');
                first = false;
            }
            s.push_str(name);
        }
    }
    s
}
