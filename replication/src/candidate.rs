//! Which replica to promote, pure: a function of a [`Snapshot`] and the
//! [`Rules`], with every decision explained.
//!
//! The rules, in the order they apply:
//!
//! 1. **Exclusions**, each with its reason: the primary being replaced; not a
//!    replica; unreachable; replication not healthy (applier failed, or
//!    stopped with received transactions left unapplied; receiver not
//!    running while the primary is reachable);
//!    lag over `max_lag` (judged by [`crate::lag::judge`]: the lag the
//!    server reports now, else the one last seen while the primary was
//!    alive, unless the replica has since applied everything the primary
//!    had then); promotion rule `must_not`; position unknown.
//!    A replica with **errant transactions** (see [`crate::snapshot::errant`])
//!    is excluded while a clean candidate remains.
//! 2. **Most advanced**: the candidate must have (or have received) every
//!    transaction every other remaining candidate has, errant ones aside.
//!    Candidates behind it are excluded; if no candidate contains all the
//!    others, the replicas have **diverged** and nothing is chosen
//!    automatically ([`NoChoice::Divergent`]): a person picks with a forced
//!    failover naming the member.
//! 3. **Ranking** of the equally advanced: healthy regions before the
//!    `down_regions`, then lower region priority, then `prefer` before
//!    `neutral`, then the one that has already applied everything it
//!    received, then lower judged lag, then the id (so the answer is
//!    stable).
//!
//! A failover may name its target instead ([`vet_target`]): without force it
//! must pass the same rules; with force only what makes promotion possible
//! at all is required (it exists, is reachable, its position is known), and
//! what others have that it lacks is reported as lost.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::gtid::{Missing, Position};
use crate::lag::{Judged, LagHistory, judge};
use crate::snapshot::{ContactErrorKind, MemberState, Role, Snapshot, errant};
use crate::spec::{Promotion, Rules};

/// A member that was not chosen, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exclusion {
    /// Member id.
    pub member: String,
    /// Every reason, in rule order.
    pub reasons: Vec<String>,
}

impl fmt::Display for Exclusion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.member, self.reasons.join("; "))
    }
}

/// The chosen member and the explanation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    /// The member to promote.
    pub member: String,
    /// Why it won, for the report and the CLI.
    pub reasons: Vec<String>,
    /// Every other member and why it was not chosen.
    pub excluded: Vec<Exclusion>,
    /// Errant transactions found on replicas (member, GTIDs); reported even
    /// when they did not matter for the choice.
    pub errant: Vec<(String, Vec<String>)>,
    /// Transactions other replicas have that the chosen one lacks (member,
    /// GTIDs): empty unless the choice was forced or a replica that may not
    /// be promoted is ahead. Those replicas cannot follow the new primary.
    pub lacking: Vec<(String, Vec<String>)>,
    /// What the chosen member has received: promotion waits until it has
    /// applied all of it.
    pub catch_up_to: Option<Position>,
    /// How far behind the chosen member was when last seen (now, or while
    /// the primary was alive): for the report, also when the rules ignored
    /// it (a forced choice, or a replica that has caught up since).
    pub lag: Option<std::time::Duration>,
}

/// Why nothing was chosen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NoChoice {
    /// Every member was excluded; each with its reasons.
    NoCandidate {
        /// The members and why.
        excluded: Vec<Exclusion>,
    },
    /// No candidate has every transaction of the others.
    Divergent {
        /// The candidates that were compared.
        candidates: Vec<String>,
        /// "a lacks X that b has", for every pair that differs.
        details: Vec<String>,
    },
    /// A named target does not qualify (and the failover was not forced).
    TargetRefused {
        /// The target.
        member: String,
        /// Why.
        reasons: Vec<String>,
    },
    /// A named target is not a member.
    UnknownMember {
        /// The name given.
        member: String,
        /// The members there are.
        known: Vec<String>,
    },
}

impl fmt::Display for NoChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoChoice::NoCandidate { excluded } => {
                let parts: Vec<String> = excluded.iter().map(ToString::to_string).collect();
                write!(f, "no candidate: {}", parts.join(" | "))
            }
            NoChoice::Divergent {
                candidates,
                details,
            } => write!(
                f,
                "divergent replicas ({}): {}",
                candidates.join(", "),
                details.join("; ")
            ),
            NoChoice::TargetRefused { member, reasons } => {
                write!(f, "{member} cannot be promoted: {}", reasons.join("; "))
            }
            NoChoice::UnknownMember { member, known } => {
                write!(f, "no member {member:?} (members: {})", known.join(", "))
            }
        }
    }
}

/// Chooses the replica to promote in place of `snapshot.primary`, judging
/// lag with `history` (what was seen while the primary was alive).
pub fn choose_candidate(
    snapshot: &Snapshot,
    rules: &Rules,
    history: &LagHistory,
) -> Result<Choice, NoChoice> {
    let mut eval = Evaluation::new(snapshot, rules, history);
    eval.drop_errant_if_clean_exists();
    let best = eval.most_advanced()?;
    let winner = eval.rank(&best);
    Ok(eval.into_choice(winner, Vec::new()))
}

/// Checks a named target. Without `force` it must pass every rule and be the
/// most advanced; with `force` it needs only to be reachable with a known
/// position, and whatever the others have that it lacks is reported.
pub fn vet_target(
    snapshot: &Snapshot,
    rules: &Rules,
    history: &LagHistory,
    target: &str,
    force: bool,
) -> Result<Choice, NoChoice> {
    let Some(t) = snapshot.members.iter().position(|m| m.id == target) else {
        return Err(NoChoice::UnknownMember {
            member: target.to_string(),
            known: snapshot.ids(),
        });
    };
    let mut eval = Evaluation::new(snapshot, rules, history);
    let m = &snapshot.members[t];
    if force {
        let mut hard = Vec::new();
        if !m.reachable {
            hard.push(unreachable_reason(m));
        }
        if m.position.is_none() {
            hard.push("its replication position is unknown".to_string());
        }
        if snapshot.primary.as_deref() == Some(target) {
            hard.push("it is the primary being replaced".to_string());
        }
        if m.role == Role::Arbiter {
            hard.push("it is an arbiter and holds no data".to_string());
        }
        if !hard.is_empty() {
            return Err(NoChoice::TargetRefused {
                member: target.to_string(),
                reasons: hard,
            });
        }
        let lacking = eval.lacking(t);
        let mut choice = eval.into_choice(t, lacking);
        choice.reasons.insert(
            0,
            format!("named by the operator: promote {target} (forced)"),
        );
        return Ok(choice);
    }
    if let Some(reasons) = eval.excluded[t].clone() {
        return Err(NoChoice::TargetRefused {
            member: target.to_string(),
            reasons,
        });
    }
    eval.drop_errant_if_clean_exists();
    if let Some(reasons) = eval.excluded[t].clone() {
        return Err(NoChoice::TargetRefused {
            member: target.to_string(),
            reasons,
        });
    }
    let best = eval.most_advanced()?;
    if !best.contains(&t) {
        let reasons = eval.excluded[t].clone().unwrap_or_default();
        return Err(NoChoice::TargetRefused {
            member: target.to_string(),
            reasons,
        });
    }
    let mut choice = eval.into_choice(t, Vec::new());
    choice
        .reasons
        .insert(0, format!("named by the operator: promote {target}"));
    Ok(choice)
}

/// Per-member verdicts while the rules run.
struct Evaluation<'a> {
    snapshot: &'a Snapshot,
    rules: &'a Rules,
    /// `None` while still a candidate.
    excluded: Vec<Option<Vec<String>>>,
    /// Errant transactions per member.
    errant: Vec<Missing>,
    /// Received position without the errant part, per member.
    clean: Vec<Option<Position>>,
    /// Each member's lag as judged.
    lags: Vec<Judged>,
    reasons: Vec<String>,
}

impl<'a> Evaluation<'a> {
    fn new(snapshot: &'a Snapshot, rules: &'a Rules, history: &LagHistory) -> Self {
        let members = &snapshot.members;
        let primary = snapshot.primary_state();
        let primary_reachable = primary.is_some_and(|p| p.reachable);
        let errant: Vec<Missing> = (0..members.len())
            .map(|i| errant(members, snapshot.primary.as_deref(), i))
            .collect();
        let clean = members
            .iter()
            .zip(&errant)
            .map(|(m, e)| m.best_position().map(|p| p.without(e)))
            .collect();
        let lags: Vec<Judged> = members
            .iter()
            .map(|m| judge(m, snapshot, history))
            .collect();
        let excluded = members
            .iter()
            .zip(&lags)
            .map(|(m, lag)| {
                let r = exclusions(m, lag, snapshot, rules, primary_reachable);
                (!r.is_empty()).then_some(r)
            })
            .collect();
        Evaluation {
            snapshot,
            rules,
            excluded,
            errant,
            clean,
            lags,
            reasons: Vec::new(),
        }
    }

    fn candidates(&self) -> Vec<usize> {
        (0..self.excluded.len())
            .filter(|&i| self.excluded[i].is_none())
            .collect()
    }

    fn exclude(&mut self, i: usize, reason: String) {
        self.excluded[i].get_or_insert_with(Vec::new).push(reason);
    }

    fn drop_errant_if_clean_exists(&mut self) {
        let c = self.candidates();
        if c.iter().any(|&i| self.errant[i].is_empty()) {
            for i in c {
                if !self.errant[i].is_empty() {
                    let items = self.errant[i].items().join(",");
                    self.exclude(
                        i,
                        format!("has errant transactions {items} and a clean replica exists"),
                    );
                }
            }
        }
    }

    /// The candidates whose clean position contains every other candidate's.
    fn most_advanced(&mut self) -> Result<Vec<usize>, NoChoice> {
        let c = self.candidates();
        if c.is_empty() {
            return Err(NoChoice::NoCandidate {
                excluded: self.exclusion_list(None),
            });
        }
        let pos = |i: usize| self.clean[i].as_ref().expect("candidates have positions");
        let best: Vec<usize> = c
            .iter()
            .copied()
            .filter(|&i| c.iter().all(|&j| pos(i).contains(pos(j))))
            .collect();
        if best.is_empty() {
            let mut details = Vec::new();
            for &i in &c {
                for &j in &c {
                    let m = pos(j).missing_from(pos(i));
                    if i != j && !m.is_empty() {
                        details.push(format!(
                            "{} lacks {} that {} has",
                            self.id(i),
                            m.items().join(","),
                            self.id(j)
                        ));
                    }
                }
            }
            return Err(NoChoice::Divergent {
                candidates: c.iter().map(|&i| self.id(i).to_string()).collect(),
                details,
            });
        }
        let leader = best[0];
        let behind: Vec<(usize, String)> = c
            .iter()
            .filter(|i| !best.contains(i))
            .map(|&i| {
                let m = pos(leader).missing_from(pos(i));
                (
                    i,
                    format!("behind {}: lacks {}", self.id(leader), m.items().join(",")),
                )
            })
            .collect();
        for (i, why) in behind {
            self.exclude(i, why);
        }
        if c.len() > 1 {
            self.reasons.push(format!(
                "most advanced: has every transaction of {}",
                c.iter()
                    .filter(|&&i| i != leader)
                    .map(|&i| self.id(i))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        } else {
            self.reasons.push("the only eligible replica".to_string());
        }
        Ok(best)
    }

    /// Orders the equally advanced candidates and returns the winner.
    fn rank(&mut self, best: &[usize]) -> usize {
        let snapshot: &'a Snapshot = self.snapshot;
        let rules: &'a Rules = self.rules;
        let members = &snapshot.members;
        let lags = &self.lags;
        let key = |i: usize| {
            let m = &members[i];
            (
                rules.down_regions.contains(&m.region),
                m.region_priority,
                m.promotion != Promotion::Prefer,
                !caught_up(m),
                lags[i].judged.unwrap_or_default(),
                m.id.clone(),
            )
        };
        let keys: std::collections::BTreeMap<usize, RankKey> =
            best.iter().map(|&i| (i, key(i))).collect();
        let key = |i: usize| keys[&i].clone();
        let mut order = best.to_vec();
        order.sort_by_key(|&a| key(a));
        let winner = order[0];
        let w = &members[winner];
        let region_state = if rules.down_regions.contains(&w.region) {
            "down: no member of a healthy region qualifies"
        } else {
            "healthy"
        };
        self.reasons.push(format!(
            "region {} (priority {}) is {region_state}",
            w.region, w.region_priority
        ));
        if w.promotion == Promotion::Prefer {
            self.reasons.push("promotion rule prefer".to_string());
        }
        for &other in &order[1..] {
            let why = tie_reason(&key(winner), &key(other), &members[other]);
            self.exclude(other, format!("equally advanced, but {why}"));
        }
        winner
    }

    /// What other replicas have that member `t` lacks.
    fn lacking(&self, t: usize) -> Vec<(String, Vec<String>)> {
        let Some(tp) = self.snapshot.members[t].best_position() else {
            return Vec::new();
        };
        self.snapshot
            .members
            .iter()
            .enumerate()
            .filter(|(i, m)| *i != t && m.reachable && m.role == Role::Replica)
            .filter_map(|(i, m)| {
                let clean = self.clean[i].as_ref()?;
                let miss = clean.missing_from(tp);
                (!miss.is_empty()).then(|| (m.id.clone(), miss.items()))
            })
            .collect()
    }

    fn id(&self, i: usize) -> &str {
        &self.snapshot.members[i].id
    }

    fn exclusion_list(&self, except: Option<usize>) -> Vec<Exclusion> {
        self.excluded
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != except)
            .filter_map(|(i, r)| {
                r.as_ref().map(|r| Exclusion {
                    member: self.id(i).to_string(),
                    reasons: r.clone(),
                })
            })
            .collect()
    }

    fn into_choice(mut self, winner: usize, mut lacking: Vec<(String, Vec<String>)>) -> Choice {
        if lacking.is_empty() {
            // Replicas excluded for other reasons but ahead of the winner.
            lacking = self.lacking(winner);
        }
        let errant = self
            .snapshot
            .members
            .iter()
            .zip(&self.errant)
            .filter(|(_, e)| !e.is_empty())
            .map(|(m, e)| (m.id.clone(), e.items()))
            .collect();
        for (id, miss) in &lacking {
            self.reasons.push(format!(
                "{id} has {} that {} lacks: it cannot follow the new primary",
                miss.join(","),
                self.id(winner)
            ));
        }
        let w = &self.snapshot.members[winner];
        let lag = &self.lags[winner];
        if lag.seen.is_some_and(|l| !l.is_zero()) || lag.judged.is_some_and(|l| !l.is_zero()) {
            self.reasons.push(format!("{}: {}", w.id, lag.note));
        }
        Choice {
            lag: lag.seen.or(lag.judged),
            member: w.id.clone(),
            reasons: std::mem::take(&mut self.reasons),
            excluded: self.exclusion_list(Some(winner)),
            errant,
            lacking,
            catch_up_to: self.clean[winner].clone(),
        }
    }
}

/// The reasons a member is not a candidate, before positions are compared.
fn exclusions(
    m: &MemberState,
    lag: &Judged,
    snapshot: &Snapshot,
    rules: &Rules,
    primary_reachable: bool,
) -> Vec<String> {
    let mut r = Vec::new();
    if snapshot.primary.as_deref() == Some(m.id.as_str()) {
        r.push("it is the primary being replaced".to_string());
        return r;
    }
    if !m.reachable {
        r.push(unreachable_reason(m));
        return r;
    }
    if m.role != Role::Replica {
        r.push(format!("not a replica (role {})", m.role));
        return r;
    }
    if let Some(e) = &m.sql_error {
        r.push(format!("replication applier failed: {e}"));
    } else if !m.sql_running && !caught_up(m) {
        r.push(
            "replication applier (SQL thread) stopped with received transactions not applied"
                .to_string(),
        );
    }
    if primary_reachable && !m.io_running {
        match &m.io_error {
            Some(e) => r.push(format!("cannot receive from the reachable primary: {e}")),
            None => r.push("replication receiver (IO thread) not running".to_string()),
        }
    }
    if let Some(l) = lag.judged
        && l > rules.max_lag
    {
        r.push(format!(
            "lag {}s over the limit of {}s: {}",
            l.as_secs(),
            rules.max_lag.as_secs(),
            lag.note
        ));
    }
    if m.promotion == Promotion::MustNot {
        r.push("promotion rule must_not".to_string());
    }
    if m.best_position().is_none() {
        r.push("replication position unknown".to_string());
    }
    r
}

fn unreachable_reason(m: &MemberState) -> String {
    match &m.contact_error {
        Some(e) if e.kind == ContactErrorKind::AccessDenied => {
            format!(
                "refused our login (wrong credentials or grants): {}",
                e.detail
            )
        }
        Some(e) => format!("unreachable: {}", e.detail),
        None => "unreachable".to_string(),
    }
}

/// Has applied everything it received (no relay log left).
fn caught_up(m: &MemberState) -> bool {
    match (&m.position, &m.received) {
        (Some(p), Some(r)) => p.contains(r),
        _ => true,
    }
}

type RankKey = (bool, u32, bool, bool, std::time::Duration, String);

fn tie_reason(w: &RankKey, o: &RankKey, other: &MemberState) -> String {
    match () {
        _ if w.0 != o.0 => format!("its region {} is down", other.region),
        _ if w.1 != o.1 => format!(
            "its region {} has a lower priority ({} > {})",
            other.region, o.1, w.1
        ),
        _ if w.2 != o.2 => "the winner is marked prefer".to_string(),
        _ if w.3 != o.3 => "it has not applied all it received yet".to_string(),
        _ if w.4.cmp(&o.4) != Ordering::Equal => {
            format!("it lags more ({}s)", o.4.as_secs())
        }
        _ => "ties are broken by id".to_string(),
    }
}

#[cfg(test)]
#[path = "candidate_tests.rs"]
mod tests;
